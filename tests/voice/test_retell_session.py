"""The call session's turn records: each request timed where its frames leave for the socket,
with what was said and the tools run, for the Call row's writer."""

import asyncio
import json
import uuid

import pytest

from retell_config.models import Agent
from tests.factories import make_company
from voice.retell_session import RetellCallSession

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


def converse(agent, script):
    """Runs `script(session, socket)` on a started session; returns the session and the turns it reported."""
    async def scenario():
        socket = Socket()
        session = RetellCallSession(call_id=f"call_{uuid.uuid4().hex}", agent=agent, send=socket.send, close=socket.close,
                                    on_turn=reported.append)
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
