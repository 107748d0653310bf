"""The admin's call simulator over real sockets: a browser-like client logged in with the admin
session talks to CallSimulatorConsumer, which calls this server's own Retell socket
(voice.simulator's client), so the embedded receptionist answers, books and is timed."""

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from appointments.models import Appointment
from audit.models import ActivityLogEntry, AuditEntry
from retell_config.models import Agent
from tenants.demo import demo_seed
from tests.factories import make_member
from voice.models import Call

pytestmark = pytest.mark.e2e


@pytest.fixture
def demo(live_db, monkeypatch):
    monkeypatch.setenv("VOICEDESK_DEMO_PASSWORD", "demo-pass-for-tests")
    demo_seed()
    return {"de": Agent.objects.select_related("company").get(agent_id="agent_abc123"),
            "en": Agent.objects.select_related("company").get(agent_id="agent_dental001")}


def session_cookie(client, user) -> str:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


class Page:
    """What the simulator page's script does: one socket, JSON messages both ways."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.seen: list[dict] = []

    async def next(self, kind: str, timeout: float = 20) -> dict:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            self.seen.append(message)
            if message["type"] == kind:
                return message
            if message["type"] == "error" and kind != "error":
                raise AssertionError(f"error while waiting for {kind}: {message}")

    async def send(self, **message) -> None:
        await self.ws.send(json.dumps(message))

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.seen if m["type"] == kind]


def simulate(asgi_server, agent_pk, cookie, script, *, origin="http://127.0.0.1"):
    async def go():
        headers = {"Cookie": cookie} if cookie else {}
        async with connect(f"{asgi_server}/admin/call-simulator/{agent_pk}/", additional_headers=headers,
                           origin=origin) as ws:
            page = Page(ws)
            await script(page)
            return page

    return asyncio.run(asyncio.wait_for(go(), 90))


def test_a_german_simulated_call_streams_the_answers_books_a_test_appointment_and_releases_it(
        asgi_server, client, demo):
    agent = demo["de"]
    owner = make_member(agent.company, "owner")
    lines = ["Guten Tag, ich hätte gern einen Termin für eine Kontrolluntersuchung", "Mittwoch um 10 Uhr",
             "Mein Name ist Hans Müller", "Ja, genau"]
    held = {}

    async def script(page):
        ready = await page.next("ready")
        assert ready["may_call"] is True
        await page.send(type="start")
        started = await page.next("started")
        held["started"] = started
        for line in lines:
            await page.send(type="say", text=line)
            held.setdefault("turns", []).append(await page.next("turn"))
        # Before hanging up, the booking holds its time as a test appointment of this call.
        held["during"] = await asyncio.to_thread(
            lambda: list(Appointment.objects.filter(call_id=started["call_id"]).values_list("status", "is_test")))
        await page.send(type="hang_up")
        held["ended"] = await page.next("ended")

    page = simulate(asgi_server, agent.pk, session_cookie(client, owner), script)

    started, turns = held["started"], held["turns"]
    assert started["greeting"].startswith("Guten Tag, Sie sind mit AskProAI Demo Company verbunden")
    assert "[agent-token]" in started["socket"] and agent.socket_token not in started["socket"]
    assert turns[0]["text"] == "An welchem Tag passt es Ihnen?"
    booking = turns[3]
    assert [t["name"] for t in booking["tools"]] == ["collect_appointment_information"]
    assert json.loads(booking["tools"][0]["result"])["ok"] is True
    assert "Hans Müller" in booking["text"]
    assert all(t["first_chunk_ms"] is not None and t["complete_ms"] >= t["first_chunk_ms"] for t in turns)
    # The answer arrived in chunks before its turn summary; the tools as invocation and result frames.
    chunks = "".join(m["text"] for m in page.of("chunk") if m["response_id"] == booking["response_id"])
    assert chunks.strip() == booking["text"]
    assert [m["name"] for m in page.of("tool_call")] == ["check_availability", "collect_appointment_information"]
    assert len(page.of("tool_result")) == 2
    assert held["during"] == [("pending", True)]
    assert held["ended"] == {"type": "ended", "reason": "user_hangup", "released": 1, "call_id": started["call_id"]}

    call = Call.objects.get(call_id=started["call_id"])
    assert call.test_origin == Call.TestOrigin.CALL_SIMULATOR and call.agent == agent
    assert call.status == "ended" and call.disconnection_reason == "user_hangup" and call.ended_at is not None
    [appointment] = Appointment.objects.filter(call_id=call.call_id)
    assert appointment.is_test and appointment.status == Appointment.Status.CANCELLED
    kinds = set(ActivityLogEntry.objects.filter(data__call_id=call.call_id).values_list("kind", flat=True))
    assert {"simulator.call_started", "simulator.call_ended"} <= kinds
    assert AuditEntry.objects.filter(action="simulator.call", object_id=str(call.pk), actor_label=owner.username).exists()


def test_the_agent_ending_the_call_ends_the_simulated_call(asgi_server, client, demo):
    agent = demo["en"]
    editor = make_member(agent.company, "editor")
    held = {}

    async def script(page):
        await page.next("ready")
        await page.send(type="start")
        held["started"] = await page.next("started")
        await page.send(type="say", text="No, that's all, thanks")
        held["turn"] = await page.next("turn")
        held["ended"] = await page.next("ended")

    simulate(asgi_server, agent.pk, session_cookie(client, editor), script)

    assert held["turn"]["end_call"] is True
    assert held["ended"]["reason"] == "agent_hangup" and held["ended"]["released"] == 0
    assert Call.objects.get(call_id=held["started"]["call_id"]).disconnection_reason == "agent_hangup"


def test_closing_the_page_mid_call_releases_the_booking(asgi_server, client, demo):
    agent = demo["en"]
    owner = make_member(agent.company, "owner")
    held = {}

    async def script(page):
        await page.next("ready")
        await page.send(type="start")
        held["call_id"] = (await page.next("started"))["call_id"]
        for line in ["I'd like to book a teeth cleaning on Wednesday at 10 am", "My name is Anna Schmidt",
                     "Yes, please"]:
            await page.send(type="say", text=line)
            await page.next("turn")
        # The page closes without hanging up.

    simulate(asgi_server, agent.pk, session_cookie(client, owner), script)

    [appointment] = wait_for_rows(lambda: list(Appointment.objects.filter(
        call_id=held["call_id"], status=Appointment.Status.CANCELLED)))
    assert appointment.is_test
    assert Call.objects.get(call_id=held["call_id"]).disconnection_reason == "user_hangup"


def wait_for_rows(read, seconds: float = 10.0):
    import time

    deadline = time.monotonic() + seconds
    while True:
        rows = read()
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_a_viewer_may_open_the_simulator_but_not_start_a_call(asgi_server, client, demo):
    agent = demo["de"]
    viewer = make_member(agent.company, "viewer")
    held = {}

    async def script(page):
        held["ready"] = await page.next("ready")
        await page.send(type="start")
        held["error"] = await page.next("error")

    simulate(asgi_server, agent.pk, session_cookie(client, viewer), script)

    assert held["ready"]["may_call"] is False
    assert held["error"]["code"] == "forbidden"
    assert not Call.objects.filter(test_origin=Call.TestOrigin.CALL_SIMULATOR).exists()


def test_another_companys_agent_is_not_found_and_an_anonymous_page_is_told_to_log_in(asgi_server, client, demo):
    owner_de = make_member(demo["de"].company, "owner")
    held = {}

    async def other(page):
        held["other"] = await page.next("error")
        held["other_close"] = await page.ws.wait_closed() or page.ws.close_code

    async def anonymous(page):
        held["anonymous"] = await page.next("error")
        await page.ws.wait_closed()
        held["anonymous_close"] = page.ws.close_code

    simulate(asgi_server, demo["en"].pk, session_cookie(client, owner_de), other)
    simulate(asgi_server, demo["de"].pk, "", anonymous)

    assert held["other"] == {"type": "error", "code": "no_agent", "message": "No such agent among those you may see."}
    assert "Bright Smile" not in json.dumps(held["other"])
    assert held["anonymous"]["code"] == "not_authenticated" and held["anonymous_close"] == 4401
    assert not Call.objects.exists()


def test_a_member_limited_to_one_agent_cannot_reach_the_others(asgi_server, client, demo):
    from guardian.shortcuts import assign_perm

    main = demo["de"]
    backup = Agent.objects.get(agent_id="agent_xyz789")
    member = make_member(main.company, "editor", limited=True)
    assign_perm("retell_config.view_agent", member, main)
    assign_perm("retell_config.change_agent", member, main)
    held = {}

    async def granted(page):
        held["granted"] = await page.next("ready")

    async def other(page):
        held["other"] = await page.next("error")

    cookie = session_cookie(client, member)
    simulate(asgi_server, main.pk, cookie, granted)
    simulate(asgi_server, backup.pk, cookie, other)

    assert held["granted"]["may_call"] is True
    assert held["other"]["code"] == "no_agent"


def test_a_page_of_another_origin_is_refused_at_the_handshake(asgi_server, client, demo):
    owner = make_member(demo["de"].company, "owner")

    with pytest.raises(InvalidStatus) as refused:
        simulate(asgi_server, demo["de"].pk, session_cookie(client, owner), lambda page: page.next("ready"),
                 origin="https://evil.example.com")

    assert refused.value.response.status_code == 403


def test_a_refused_call_socket_is_a_clear_message_and_ends_the_call(asgi_server, client, demo):
    agent = demo["de"]
    owner = make_member(agent.company, "owner")
    held = {}

    async def script(page):
        await page.next("ready")
        # The token changes after the page opened: this server refuses the simulator's socket.
        await asyncio.to_thread(lambda: Agent.objects.filter(pk=agent.pk).update(socket_token="x" * 40))
        await page.send(type="start")
        held["error"] = await page.next("error")
        held["ended"] = await page.next("ended")
        await page.send(type="say", text="Hallo?")
        held["no_call"] = await page.next("error")

    simulate(asgi_server, agent.pk, session_cookie(client, owner), script)

    assert held["error"]["code"] == "socket_unreachable"
    assert "refused the call socket" in held["error"]["message"] and "(HTTP 403)" in held["error"]["message"]
    assert "x" * 40 not in held["error"]["message"]
    assert held["ended"]["reason"] == "error_llm_websocket_open"
    assert held["no_call"]["code"] == "no_call"


def test_bad_messages_get_error_frames(asgi_server, client, demo):
    owner = make_member(demo["de"].company, "owner")
    held = []

    async def script(page):
        await page.next("ready")
        await page.ws.send("not json")
        held.append(await page.next("error"))
        await page.send(type="say", text="   ")
        held.append(await page.next("error"))
        await page.send(type="dance")
        held.append(await page.next("error"))

    simulate(asgi_server, demo["de"].pk, session_cookie(client, owner), script)

    assert [e["code"] for e in held] == ["invalid", "invalid", "invalid"]


@pytest.fixture
def llm_agent(demo):
    """The English demo agent answers with an OpenAI-compatible LLM (a loopback fake)."""
    from audit.circuit import CircuitBreaker
    from tests.fakes.llm import FakeLLM

    agent = demo["en"]
    fake = FakeLLM().start()
    company = agent.company
    company.llm_base_url, company.llm_model, company.llm_api_key = fake.base_url, "gpt-test", "sk-test"
    company.save()
    agent.dialog_engine = "openai"
    agent.save()
    CircuitBreaker(f"llm:company:{company.pk}").reset()
    yield agent, fake
    fake.stop()
    CircuitBreaker(f"llm:company:{company.pk}").reset()


def test_the_llm_engine_streams_its_chunks_runs_its_tool_and_answers_a_silence(asgi_server, client, llm_agent):
    from tests.fakes.llm import Text, ToolCalls

    agent, llm = llm_agent
    llm.script(ToolCalls([("call_1", "check_availability",
                           '{"date": "Thursday", "time": "09:00", "service": "Check-up"}')]),
               Text(["Thursday at 9 ", "is ", "free."], delay=0.02), Text(["Are you ", "still there?"]))
    owner = make_member(agent.company, "owner")
    held = {}

    async def script(page):
        await page.next("ready")
        await page.send(type="start")
        await page.next("started")
        await page.send(type="say", text="Is Thursday at 9 free for a check-up?")
        held["answer"] = await page.next("turn")
        await page.send(type="silence")
        held["reminder"] = await page.next("turn")
        await page.send(type="hang_up")
        await page.next("ended")

    page = simulate(asgi_server, agent.pk, session_cookie(client, owner), script)

    answer, reminder = held["answer"], held["reminder"]
    assert answer["text"] == "Thursday at 9 is free."
    assert [m["text"] for m in page.of("chunk") if m["response_id"] == answer["response_id"]] == [
        "Thursday at 9 ", "is ", "free."]
    [tool] = answer["tools"]
    assert tool["name"] == "check_availability" and json.loads(tool["arguments"])["time"] == "09:00"
    assert json.loads(tool["result"])["ok"] is True
    assert reminder["reminder"] is True and reminder["text"] == "Are you still there?"
    assert len(llm.requests) == 3
