"""The call session: its turn records (each request timed where its frames leave for the socket,
with what was said and the tools run, for the Call row's writer), the order of its frames, and
what a turn's effects leave behind when the turn is superseded or the socket dies (the ledger,
the open request answered after a reconnect)."""

import asyncio
import copy
import json
import uuid

import pytest
from django.core.cache import cache

from retell_config.models import Agent
from tests.factories import make_company
from voice.dialog.base import DialogEngine, TextChunk, ToolCall, ToolCalls
from voice.retell_session import RetellCallSession, state_key

HOURS = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def agent(live_db):
    company = make_company("Bright Smile Dental", slug="bright-smile", timezone="America/New_York", language="en",
                           phone="+12125550134", opening_hours=HOURS)
    return Agent.objects.select_related("company").get(pk=Agent.objects.create(
        company=company, agent_id="agent_turns", name="Sophie", language="en-US", begin_message="Hello!").pk)


class Socket:
    """What the consumer gives a session: a send and a close, here collecting the frames."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.arrived = asyncio.Event()

    async def send(self, text: str) -> None:
        self.frames.append(json.loads(text))
        self.arrived.set()

    async def close(self, code: int) -> None:
        pass

    async def until(self, predicate, timeout: float = 5.0) -> dict:
        async def wait():
            while True:
                found = next((f for f in self.frames if predicate(f)), None)
                if found is not None:
                    return found
                self.arrived.clear()
                await self.arrived.wait()
        return await asyncio.wait_for(wait(), timeout)


def request(response_id: int, *said: str) -> str:
    return json.dumps({"interaction_type": "response_required", "response_id": response_id,
                       "transcript": [{"role": "user", "content": text} for text in said]})


def complete(response_id):
    return lambda f: f.get("response_id") == response_id and f.get("content_complete")


def converse(agent, script, *, engine=None, call_id=None, socket=None, on_turn=None):
    """Runs `script(session, socket)` on a started session; returns the session and the turns it reported."""
    async def scenario():
        nonlocal socket
        socket = socket or Socket()
        session = RetellCallSession(call_id=call_id or f"call_{uuid.uuid4().hex}", agent=agent, send=socket.send,
                                    close=socket.close, on_turn=on_turn or reported.append, engine=engine)
        await session.start()
        await socket.until(lambda f: f.get("response_id") == 0)
        await script(session, socket)
        await session.stop()
        return session

    reported = []
    return asyncio.run(asyncio.wait_for(scenario(), 20)), reported


def test_each_answered_request_is_timed_from_arrival_to_its_first_and_last_frame(agent):
    async def script(session, socket):
        await session.receive(request(1, "What are your opening hours?"))
        await socket.until(complete(1))

    session, reported = converse(agent, script)

    [turn] = session.turns
    assert reported == [turn]
    assert turn.response_id == 1 and not turn.reminder and not turn.superseded and not turn.resumed
    assert turn.content.startswith("We're open Monday to Sunday from 8 am to 6 pm.")
    assert 0 < turn.first_chunk_ms <= turn.complete_ms < 5000
    assert turn.started_at > 1_700_000_000 and turn.tool_calls == []
    assert turn.to_dict()["first_chunk_ms"] == turn.first_chunk_ms


def test_a_tool_run_during_a_turn_is_recorded_with_its_result(agent):
    async def script(session, socket):
        await session.receive(request(1, "Do you have anything free tomorrow?"))
        await socket.until(complete(1))

    session, _ = converse(agent, script)

    [tool] = session.turns[0].tool_calls
    assert tool["name"] == "check_availability" and tool["arguments"] == {"date": "tomorrow"}
    assert tool["successful"] is True and tool["result"]["ok"] is True
    assert session.turns[0].content.startswith("Let me check. On ")


def test_the_first_chunk_of_a_tool_turn_leaves_before_the_tool_runs(agent):
    async def script(session, socket):
        await session.receive(request(1, "Do you have anything free tomorrow?"))
        await socket.until(complete(1))
        return socket.frames

    frames = []

    async def keep(session, socket):
        frames.extend(await script(session, socket))

    converse(agent, keep)

    kinds = [(f["response_type"], f.get("content_complete")) for f in frames
             if f["response_type"] in ("response", "tool_call_invocation", "tool_call_result")
             and f.get("response_id") != 0]
    assert kinds[:3] == [("response", False), ("tool_call_invocation", None), ("tool_call_result", None)]


def test_a_superseded_request_is_recorded_as_superseded_and_the_newer_one_as_answered(agent):
    async def script(session, socket):
        await session.receive(request(1, "Hello"))
        await session.receive(request(2, "Hello", "Where are you located?"))
        await socket.until(complete(2))

    session, reported = converse(agent, script)

    first, second = session.turns
    assert (first.response_id, first.superseded, first.first_chunk_ms) == (1, True, None)
    assert (second.response_id, second.superseded) == (2, False) and second.complete_ms is not None
    assert reported == [first, second]


def test_a_goodbye_turn_records_the_end_of_the_call(agent):
    async def script(session, socket):
        await session.receive(request(1, "Thanks, goodbye!"))
        await socket.until(complete(1))

    session, _ = converse(agent, script)

    assert session.turns[0].end_call is True and session.turns[0].content == "Thank you for calling. Goodbye!"


def test_turns_reach_the_call_row_in_batches_and_all_of_them_by_the_time_the_call_stops(agent):
    from channels.db import database_sync_to_async

    from voice.models import Call

    def recorded(call_id):
        return len(Call.objects.filter(call_id=call_id).values_list("live_turns", flat=True).first() or [])

    seen_before_stop = {}

    async def script(session, socket):
        questions = ["What are your opening hours?", "Where are you?", "What are your opening hours?",
                     "Where are you?", "What are your opening hours?", "Where are you?"]
        for number, question in enumerate(questions, start=1):
            await session.receive(request(number, question))
            await socket.until(complete(number))
            if number == 4:
                seen_before_stop["after 4"] = await database_sync_to_async(recorded)(session.call_id)
        await asyncio.sleep(0.5)  # the batch of five has been handed to a writer by now
        seen_before_stop["after 6"] = await database_sync_to_async(recorded)(session.call_id)

    session, _ = converse(agent, script)

    assert seen_before_stop == {"after 4": 0, "after 6": 5}
    assert recorded(session.call_id) == 6


def test_each_recorded_turn_has_a_latency_row_naming_the_engine_that_answered_it(agent):
    from voice.models import LiveTurnLatency

    async def script(session, socket):
        for number in (1, 2):
            await session.receive(request(number, "What are your opening hours?"))
            await socket.until(complete(number))

    agent.dialog_engine = "openai"  # the agent's setting; this session is given the receptionist
    from voice.dialog.receptionist import ReceptionistEngine

    session, _ = converse(agent, script, engine=ReceptionistEngine())

    rows = LiveTurnLatency.objects.filter(call__call_id=session.call_id).order_by("response_id")
    assert [(r.response_id, r.first_chunk_ms, r.complete_ms, r.dialog_engine, r.agent_id, r.company_id)
            for r in rows] == [(t.response_id, t.first_chunk_ms, t.complete_ms, "embedded", agent.pk, agent.company_id)
                               for t in session.turns]
    # a datetime keeps microseconds
    assert [r.started_at.timestamp() for r in rows] == pytest.approx([t.started_at for t in session.turns], abs=1e-6)
    assert all(t.first_chunk_ms is not None for t in session.turns)


# --- a turn's effects survive interruption ----------------------------------------------------------

class ScriptedEngine(DialogEngine):
    """A dialog engine for these tests: each response id plays its own script, an async
    generator function of (turn, context); what each turn saw is kept in `seen`."""

    name = "scripted"

    def __init__(self, **scripts) -> None:
        self.scripts = scripts
        self.seen: dict[int, dict] = {}

    def respond(self, turn, context):
        self.seen[turn.response_id] = {"turn": turn, "effects": copy.deepcopy(context.effects),
                                       "state": copy.deepcopy(context.state)}
        return self.scripts[f"r{turn.response_id}"](turn, context)


async def hang(*_):
    await asyncio.Event().wait()


def says(text):
    async def script(turn, context):
        yield TextChunk(text)
    return script


class StallingSocket(Socket):
    """A socket whose writes stop at the first frame `stall_at` matches (as on a congested
    network); the call then dies with that frame unwritten."""

    def __init__(self, stall_at) -> None:
        super().__init__()
        self.stall_at = stall_at
        self.stalled = asyncio.Event()

    async def send(self, text: str) -> None:
        if self.stall_at(json.loads(text)):
            self.stalled.set()
            await asyncio.Event().wait()
        await super().send(text)


def frame_ids(frames):
    return [f["response_id"] for f in frames if f["response_type"] == "response" and f["response_id"]]


def test_back_to_back_requests_never_send_a_frame_of_the_older_id_after_the_newer_one_started(agent):
    # given a first answer that has just been decided when the second request arrives
    decided = asyncio.Event()

    async def first(turn, context):
        yield TextChunk("First.")
        decided.set()

    socket = Socket()

    async def script(session, socket):
        await session.receive(request(1, "Hello"))
        await decided.wait()
        await session.receive(request(2, "Hello", "Hello?"))
        await socket.until(complete(2))

    converse(agent, script, engine=ScriptedEngine(r1=first, r2=says("Second.")), socket=socket)

    # then every frame of response 1 left before the first frame of response 2
    ids = frame_ids(socket.frames)
    assert ids == sorted(ids) and ids.count(1) == 2


def test_a_request_whose_final_frame_was_not_written_is_answered_after_the_reconnect(agent):
    # given a call whose socket died with the final frame of response 1 unwritten
    call_id = f"call_{uuid.uuid4().hex}"
    stalling = StallingSocket(complete(1))

    async def die_before_the_last_frame(session, socket):
        await session.receive(request(1, "What are your opening hours?"))
        await socket.stalled.wait()

    converse(agent, die_before_the_last_frame, call_id=call_id, socket=stalling)

    # when Retell connects again for the same call
    async def reconnect(session, socket):
        await socket.until(complete(1))

    session, _ = converse(agent, reconnect, call_id=call_id)

    # then response 1 is answered on the new socket
    [turn] = session.turns
    assert turn.resumed and turn.content.startswith("We're open Monday to Sunday")


def is_result(tool_call_id):
    return lambda f: f.get("response_type") == "tool_call_result" and f.get("tool_call_id") == tool_call_id


def test_a_tool_run_by_a_superseded_turn_is_in_the_ledger_the_next_turn_reads(agent):
    # given a turn that ran a tool and was superseded before its answer went out
    async def book_then_hang(turn, context):
        yield ToolCall("t1", "check_availability", {"date": "tomorrow"})
        await hang()
        yield TextChunk("never said")

    engine = ScriptedEngine(r1=book_then_hang, r2=says("Which day then?"))

    async def script(session, socket):
        await session.receive(request(1, "Ja."))
        await socket.until(is_result("t1"))
        await session.receive(request(2, "Ja.", "Ach nein, doch lieber Freitag."))
        await socket.until(complete(2))

    session, _ = converse(agent, script, engine=engine)

    # then the next turn knows what ran, and that the caller never heard its result
    [effect] = engine.seen[2]["effects"]
    assert {k: effect[k] for k in ("tool_call_id", "name", "arguments", "response_id", "answered")} == {
        "tool_call_id": "t1", "name": "check_availability", "arguments": {"date": "tomorrow"},
        "response_id": 1, "answered": False}
    assert effect["result"]["ok"] is True
    assert session.turns[0].superseded and session.turns[0].tool_calls[0]["tool_call_id"] == "t1"


def test_a_tool_whose_answer_was_written_is_marked_answered(agent):
    async def check(turn, context):
        result = yield ToolCall("t1", "check_availability", {"date": "tomorrow"})
        yield TextChunk(result["message"])

    engine = ScriptedEngine(r1=check, r2=says("Anything else?"))

    async def script(session, socket):
        await session.receive(request(1, "Anything free tomorrow?"))
        await socket.until(complete(1))
        await session.receive(request(2, "Anything free tomorrow?", "Thanks"))
        await socket.until(complete(2))

    converse(agent, script, engine=engine)

    assert [(e["tool_call_id"], e["answered"]) for e in engine.seen[2]["effects"]] == [("t1", True)]


def test_the_ledger_survives_a_dead_socket_and_a_re_answer_replaces_its_entry(agent):
    # given a turn that ran a tool, then lost its socket before its final frame was written
    call_id = f"call_{uuid.uuid4().hex}"

    async def check(turn, context):
        result = yield ToolCall("t1", "check_availability", {"date": "tomorrow"})
        yield TextChunk(result["message"])

    first = ScriptedEngine(r1=check)

    async def die_before_the_last_frame(session, socket):
        await session.receive(request(1, "Anything free tomorrow?"))
        await socket.stalled.wait()

    converse(agent, die_before_the_last_frame, call_id=call_id, socket=StallingSocket(complete(1)), engine=first)

    # when Retell reconnects and the request is answered again, running the same tool call
    again = ScriptedEngine(r1=check)

    async def reconnect(session, socket):
        await socket.until(complete(1))

    session, _ = converse(agent, reconnect, call_id=call_id, engine=again)

    # then the re-answer saw the tool unanswered, and the ledger holds it once, answered
    assert [(e["tool_call_id"], e["response_id"], e["answered"]) for e in again.seen[1]["effects"]] == [
        ("t1", 1, False)]
    assert [(e["tool_call_id"], e["answered"]) for e in session.effects] == [("t1", True)]
    saved = cache.get(state_key(agent.pk, call_id))
    assert [(e["tool_call_id"], e["answered"]) for e in saved["effects"]] == [("t1", True)]


def test_the_re_answer_after_a_reconnect_starts_from_the_memory_before_that_turn(agent):
    call_id = f"call_{uuid.uuid4().hex}"

    async def remember(turn, context):
        context.state["turns"] = context.state.get("turns", 0) + 1
        yield TextChunk(f"Turn {context.state['turns']}.")

    async def die_before_the_last_frame(session, socket):
        await session.receive(request(1, "Hello"))
        await socket.until(complete(1))
        await session.receive(request(2, "Hello", "Hello?"))
        await socket.stalled.wait()

    converse(agent, die_before_the_last_frame, call_id=call_id, socket=StallingSocket(complete(2)),
             engine=ScriptedEngine(r1=remember, r2=remember))
    again = ScriptedEngine(r2=remember)

    async def reconnect(session, socket):
        await socket.until(complete(2))

    converse(agent, reconnect, call_id=call_id, engine=again)

    assert again.seen[2]["state"] == {"turns": 1}


def test_parallel_tool_calls_run_at_once_each_reported_and_answered_in_order(agent):
    async def both(turn, context):
        results = yield ToolCalls((ToolCall("a", "check_availability", {"date": "tomorrow"}),
                                   ToolCall("b", "check_availability", {"date": "2031-03-03"})))
        context.state["results"] = results
        yield TextChunk("Checked both.")

    engine = ScriptedEngine(r1=both, r2=says("Bye."))
    socket = Socket()

    async def script(session, socket):
        await session.receive(request(1, "Tomorrow or on 3 March 2031?"))
        await socket.until(complete(1))
        await session.receive(request(2, "Thanks"))
        await socket.until(complete(2))

    session, _ = converse(agent, script, engine=engine, socket=socket)

    tool_frames = [(f["response_type"], f["tool_call_id"]) for f in socket.frames
                   if f["response_type"].startswith("tool_call")]
    assert sorted(tool_frames[:2]) == [("tool_call_invocation", "a"), ("tool_call_invocation", "b")]
    assert sorted(tool_frames[2:]) == [("tool_call_result", "a"), ("tool_call_result", "b")]
    by_id = {e["tool_call_id"]: e for e in session.effects}
    assert engine.seen[2]["state"]["results"] == [by_id["a"]["result"], by_id["b"]["result"]]
    assert by_id["a"]["arguments"] == {"date": "tomorrow"} and by_id["b"]["arguments"] == {"date": "2031-03-03"}
    assert {r["tool_call_id"] for r in session.turns[0].tool_calls} == {"a", "b"}


def test_a_newer_turn_waits_for_the_tool_the_superseded_turn_is_still_running(agent):
    # given a turn whose tool is held up (its claim of the call's function waits on a lock),
    # and a newer request that supersedes the turn meanwhile
    import hashlib
    import threading

    from django.db import connection, transaction

    from appointments.handlers import canonical_args
    from appointments.models import FunctionInvocation

    call_id = f"call_{uuid.uuid4().hex}"
    args = {"date": "tomorrow"}
    held, release = threading.Event(), threading.Event()

    def hold_the_claim():
        try:
            with transaction.atomic():
                FunctionInvocation.objects.create(
                    company=agent.company, call_id=call_id, seq=1, name="check_availability", args=args, result={},
                    args_hash=hashlib.sha256(canonical_args(args).encode()).hexdigest())
                held.set()
                release.wait(10)
                transaction.set_rollback(True)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_claim)
    holder.start()
    held.wait(5)

    async def check_then_hang(turn, context):
        yield ToolCall("t1", "check_availability", args)
        await hang()
        yield TextChunk("never said")

    engine = ScriptedEngine(r1=check_then_hang, r2=says("Which day then?"))

    async def script(session, socket):
        await session.receive(request(1, "Anything tomorrow?"))
        await socket.until(lambda f: f.get("response_type") == "tool_call_invocation")
        await session.receive(request(2, "Anything tomorrow?", "Or rather Friday?"))
        release.set()
        await socket.until(complete(2))

    reported = []
    try:
        converse(agent, script, engine=engine, call_id=call_id,
                 on_turn=lambda turn: reported.append(copy.deepcopy(turn.to_dict())))
    finally:
        release.set()
        holder.join(10)

    # then the newer turn started only once the tool had run, and knew its result
    assert [e["tool_call_id"] for e in engine.seen[2]["effects"]] == ["t1"]
    # and the superseded turn was reported with what its tool did
    assert [(t["response_id"], t["superseded"]) for t in reported] == [(1, True), (2, False)]
    assert reported[0]["tool_calls"][0]["result"]["ok"] is True
