"""Protocol conformance over a real socket: the ASGI application on loopback, a client
speaking Retell's frames (shared/reference/retell.md §1)."""

import asyncio
import json
import uuid

import pytest
from websockets.exceptions import InvalidStatus

from audit.circuit import CircuitBreaker
from retell_config.models import Agent
from tests.factories import make_company
from tests.fakes import free_port
from tests.fakes.llm import Fail, FakeLLM, Text
from tests.voice.retell_client import RetellClient
from voice.simulator import CallEnded, SimulatedCall

pytestmark = pytest.mark.e2e

HOURS = {"mon": [["08:00", "18:00"]], "tue": [["08:00", "18:00"]], "wed": [["08:00", "18:00"]],
         "thu": [["08:00", "18:00"]], "fri": [["08:00", "14:00"]]}
GREETING = "Bright Smile Dental, this is Sophie. How can I help?"


def run(scenario):
    return asyncio.run(asyncio.wait_for(scenario, 30))


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex


@pytest.fixture
def dental(live_db):
    company = make_company("Bright Smile Dental", slug="bright-smile", timezone="America/New_York", language="en",
                           phone="+12125550134", address="200 Park Avenue South, New York", opening_hours=HOURS)
    return Agent.objects.create(company=company, agent_id="agent_dental001", name="Sophie", language="en-US",
                                begin_message=GREETING)


@pytest.fixture
def url(asgi_server, dental):
    return lambda call_id, agent=dental: f"{asgi_server}/retell-llm/{agent.socket_token}/{call_id}"


@pytest.fixture
def slow_llm(dental):
    """The agent answers with an OpenAI-compatible LLM that streams slowly."""
    fake = FakeLLM().start()
    company = dental.company
    company.llm_base_url, company.llm_model, company.llm_api_key = fake.base_url, "gpt-test", "sk-test"
    company.save()
    dental.dialog_engine = "openai"
    dental.save()
    CircuitBreaker(f"llm:company:{company.pk}").reset()
    yield fake
    fake.stop()
    CircuitBreaker(f"llm:company:{company.pk}").reset()


# --- opening ------------------------------------------------------------------------------------------

def test_connect_sends_config_then_the_greeting_as_response_zero(url):
    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        config, begin = await client.opening()
        await client.close()
        return config, begin

    config, begin = run(scenario())

    assert config == {"response_type": "config", "config": {"auto_reconnect": True, "call_details": True,
                                                            "transcript_with_tool_calls": True}}
    assert begin == {"response_type": "response", "response_id": 0, "content": GREETING, "content_complete": True}


def test_an_agent_without_a_greeting_waits_for_the_caller(url, dental):
    dental.begin_message = ""
    dental.save()

    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        _, begin = await client.opening()
        await client.close()
        return begin

    assert run(scenario())["content"] == ""


def test_greeting_variables_come_from_call_details(url, dental):
    dental.begin_message = "Hello {{customer_name}}, this is {{agent_name}}."
    dental.save()
    call_id = new_call_id()

    async def scenario():
        client = await RetellClient.open(url(call_id))
        await client.read()
        await client.send({"interaction_type": "call_details", "call": {
            "call_id": call_id, "agent_id": "agent_dental001", "from_number": "+12125550199",
            "retell_llm_dynamic_variables": {"customer_name": "John"}}})
        begin = await client.read_until(lambda f: f.get("response_type") == "response")
        await client.close()
        return begin

    assert run(scenario())["content"] == "Hello John, this is Sophie."


def test_an_unknown_agent_token_is_refused_at_the_handshake(asgi_server, dental):
    async def scenario():
        with pytest.raises(InvalidStatus) as refused:
            await RetellClient.open(f"{asgi_server}/retell-llm/{'x' * 43}/{new_call_id()}")
        return refused.value.response.status_code

    assert run(scenario()) == 403


# --- ping_pong ---------------------------------------------------------------------------------------

def test_ping_pong_is_answered_and_the_server_pings_on_its_own_every_two_seconds(url):
    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        await client.opening()
        await client.send({"interaction_type": "ping_pong", "timestamp": 1703302407333})
        answer = await client.read_until(lambda f: f["response_type"] == "ping_pong", timeout=1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        unprompted = await client.read_until(lambda f: f["response_type"] == "ping_pong", timeout=3)
        waited = loop.time() - started
        await client.close()
        return answer, unprompted, waited

    answer, unprompted, waited = run(scenario())

    assert isinstance(answer["timestamp"], int) and answer["timestamp"] > 1_700_000_000_000
    assert set(unprompted) == {"response_type", "timestamp"}
    assert 1.0 < waited < 2.6


# --- answering -----------------------------------------------------------------------------------------

def test_a_response_is_streamed_under_its_id_with_only_the_last_frame_complete(url):
    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        await client.opening()
        response_id = await client.say("What are your opening hours?")
        text, last = await client.read_response(response_id)
        await client.close()
        return response_id, text, [f for f in client.received if f.get("response_id") == response_id]

    response_id, text, frames = run(scenario())

    assert text.startswith("We're open Monday to Thursday from 8 am to 6 pm and Friday from 8 am to 2 pm.")
    assert [f["content_complete"] for f in frames] == [False] * (len(frames) - 1) + [True]
    assert all(f["response_type"] == "response" for f in frames)


def test_a_newer_request_supersedes_a_slow_stream_and_no_stale_chunk_follows(url, slow_llm):
    slow_llm.script(Text([f"word{i} " for i in range(40)], delay=0.05), Text(["Quick answer."]))

    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        await client.opening()
        first = await client.say("Tell me everything about your practice")
        await client.read_until(lambda f: f.get("response_id") == first)
        # The reader is not blocked by the running stream: a ping is answered meanwhile.
        await client.send({"interaction_type": "ping_pong", "timestamp": 1})
        await client.read_until(lambda f: f["response_type"] == "ping_pong", timeout=1)
        second = await client.say("Actually, just one thing")
        text, _ = await client.read_response(second)
        await asyncio.sleep(0.3)  # anything late of the first stream would arrive now
        await client.send({"interaction_type": "ping_pong", "timestamp": 2})
        await client.read_until(lambda f: f["response_type"] == "ping_pong", timeout=1)
        await client.close()
        return first, second, text, client.received

    first, second, text, received = run(scenario())

    ids = [f.get("response_id") for f in received if f["response_type"] == "response"]
    first_of_second = ids.index(second)
    assert text == "Quick answer."
    assert first not in ids[first_of_second:]
    assert not any(f.get("response_id") == first and f["content_complete"] for f in received
                   if f["response_type"] == "response")
    assert len(slow_llm.requests) == 2


def test_update_only_needs_no_answer_and_does_not_cancel_one(url, slow_llm):
    slow_llm.script(Text(["One, ", "two, ", "three."], delay=0.1))

    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        await client.opening()
        response_id = await client.say("Count to three")
        await client.send({"interaction_type": "update_only", "transcript": client.transcript,
                           "turntaking": "agent_turn"})
        text, _ = await client.read_response(response_id)
        await client.close()
        return text

    assert run(scenario()) == "One, two, three."


def test_a_reminder_is_answered(url):
    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        await client.opening()
        client.agent_said(GREETING)
        response_id = await client.say("", kind="reminder_required")
        text, _ = await client.read_response(response_id)
        await client.close()
        return text

    assert run(scenario()) == "Are you still there?"


def test_goodbye_ends_the_call_and_the_server_closes_with_1000(url, settings):
    settings.RETELL_LLM_END_CALL_GRACE = 0.3

    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        await client.opening()
        response_id = await client.say("Thanks, goodbye!")
        text, last = await client.read_response(response_id)
        code = await client.closed_with()
        return text, last, code

    text, last, code = run(scenario())

    assert text == "Thank you for calling. Goodbye!"
    assert last["end_call"] is True
    assert code == 1000


def test_a_caller_who_speaks_again_after_the_goodbye_is_answered_and_not_hung_up_on(url, settings):
    # given a goodbye with end_call, after which the caller goes on talking
    settings.RETELL_LLM_END_CALL_GRACE = 0.3

    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        await client.opening()
        goodbye = await client.say("Thanks, goodbye!")
        _, last = await client.read_response(goodbye)
        client.agent_said("Thank you for calling. Goodbye!")
        asked = await client.say("Oh wait, where are you located?")
        answer, _ = await client.read_response(asked)
        # when the old hang-up deadline has long passed
        await asyncio.sleep(0.6)
        await client.send({"interaction_type": "ping_pong", "timestamp": 1})
        pong = await client.read_until(lambda f: f["response_type"] == "ping_pong", timeout=1)
        await client.close()
        return last, answer, pong

    last, answer, pong = run(scenario())

    # then the socket is still open: the newer request cancelled the hang-up
    assert last["end_call"] is True
    assert answer.startswith("You'll find us at 200 Park Avenue South")
    assert pong["response_type"] == "ping_pong"


def test_asking_for_a_human_transfers_to_the_company_number(url):
    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        await client.opening()
        response_id = await client.say("Can I speak to a real person please?")
        text, last = await client.read_response(response_id)
        await client.close()
        return text, last

    text, last = run(scenario())

    assert text == "Of course, I'll put you through now."
    assert last["transfer_number"] == "+12125550134" and "end_call" not in last


def test_a_transfer_the_caller_barged_into_is_sent_again_on_a_yes_and_offered_again_otherwise(url, slow_llm):
    # given an LLM agent that offered, after a failure, to put the caller through, and did
    slow_llm.script(Fail(500), Text(["How else can I help?"]))

    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        await client.opening()
        answers = []
        for said in ("I need an appointment", "Yes please",
                     # when the caller speaks while the agent announces the transfer (Retell drops it)
                     "Yes, thanks!", "Hello?", "Yes"):
            response_id = await client.say(said)
            text, last = await client.read_response(response_id)
            client.agent_said(text)
            answers.append((text, last.get("transfer_number")))
        await client.close()
        return answers

    offer, transfer, again, hello, yes = run(scenario())

    # then a yes sends the transfer again; other words have it offered again
    assert offer[0].startswith("I'm sorry") and transfer == ("Of course, I'll put you through now.", "+12125550134")
    assert again == ("Of course, I'll put you through now.", "+12125550134")
    assert hello == ("Shall I put you through to the team now?", None)
    assert yes == ("Of course, I'll put you through now.", "+12125550134")
    assert len(slow_llm.requests) == 1


def test_a_tool_the_engine_calls_is_reported_around_the_answer(url):
    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        await client.opening()
        response_id = await client.say("Do you have anything free tomorrow?")
        text, _ = await client.read_response(response_id)
        await client.close()
        return response_id, text, client.received

    response_id, text, received = run(scenario())

    kinds = [f["response_type"] for f in received if f["response_type"] != "ping_pong"]
    invocation = next(f for f in received if f["response_type"] == "tool_call_invocation")
    result = next(f for f in received if f["response_type"] == "tool_call_result")
    assert kinds.index("tool_call_invocation") < kinds.index("tool_call_result") < len(kinds) - 1
    assert invocation["name"] == "check_availability"
    assert isinstance(invocation["arguments"], str) and json.loads(invocation["arguments"]) == {"date": "tomorrow"}
    assert result["tool_call_id"] == invocation["tool_call_id"] and isinstance(result["content"], str)
    assert text  # the caller always hears something


# --- bad input -----------------------------------------------------------------------------------------------

def test_malformed_and_unknown_frames_are_skipped_and_the_call_goes_on(url):
    async def scenario():
        client = await RetellClient.open(url(new_call_id()))
        await client.opening()
        await client.send("{this is not json")
        await client.send('{"interaction_type": "response_required", "transcript": []}')
        await client.send({"interaction_type": "something_new", "payload": 1})
        response_id = await client.say("Where are you located?")
        text, _ = await client.read_response(response_id)
        await client.close()
        return text

    assert run(scenario()).startswith("You'll find us at 200 Park Avenue South, New York.")


# --- reconnects -----------------------------------------------------------------------------------------

def test_a_reconnect_of_the_same_call_goes_on_with_the_conversation(url):
    call_id = new_call_id()

    async def scenario():
        first = await RetellClient.open(url(call_id))
        await first.opening()
        asked = await first.say("I'd like to book a cleaning")
        question, _ = await first.read_response(asked)
        first.agent_said(question)
        await first.close()

        second = await RetellClient.open(url(call_id))
        second.transcript, second.next_response_id = first.transcript, first.next_response_id
        _, begin = await second.opening()
        answered = await second.say("Tomorrow at 10 am")
        reply, _ = await second.read_response(answered)
        await second.close()
        return question, begin, reply

    question, begin, reply = run(scenario())

    assert question == "Which day would suit you?"
    assert begin["content"] == ""  # not greeted twice
    assert reply.startswith("Let me check. ") and reply.endswith("is available. May I have your name, please?")


def test_an_unreadable_saved_state_starts_the_call_afresh(url, dental):
    from django.core.cache import cache

    from voice.retell_session import state_key

    call_id = new_call_id()
    cache.set(state_key(dental.pk, call_id), "not a call state", 60)

    async def scenario():
        client = await RetellClient.open(url(call_id))
        _, begin = await client.opening()
        await client.close()
        return begin

    assert run(scenario())["content"] == GREETING


def test_a_reconnect_mid_stream_answers_the_open_request(url, slow_llm):
    slow_llm.script(Text(["Let me ", "think ", "about ", "that ", "for ", "a ", "while."], delay=0.15),
                    Text(["Here is the whole answer."]))
    call_id = new_call_id()

    async def scenario():
        first = await RetellClient.open(url(call_id))
        await first.opening()
        response_id = await first.say("What should I bring to my appointment?")
        await first.read_until(lambda f: f.get("response_id") == response_id)
        await first.close()  # Retell gave up on this connection mid-stream
        await asyncio.sleep(0.3)

        second = await RetellClient.open(url(call_id))
        _, begin = await second.opening()
        text, _ = await second.read_response(response_id)
        await second.close()
        return begin, text

    begin, text = run(scenario())

    assert begin["content"] == ""
    assert text == "Here is the whole answer."


def test_a_request_whose_answer_was_not_yet_written_when_the_socket_died_is_answered_after_the_reconnect(
        url, dental, slow_llm):
    # given a long answer the server cannot write out: Retell's side has stopped reading
    slow_llm.script(Text(["x" * 65536] * 160 + [" The end."]), Text(["Here is the whole answer."]))
    call_id = new_call_id()

    async def scenario():
        call = SimulatedCall(url(call_id), call_id=call_id, agent_id=dental.agent_id, from_number="+12125550199")
        await call.connect()
        call.stall()
        asking = asyncio.ensure_future(call.say("Tell me everything about your practice"))
        while slow_llm.replies_sent < 1:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the engine has the whole reply: the final frame is decided, not written
        # when the socket dies and Retell connects again for the same call
        await call.drop()
        with pytest.raises(CallEnded):
            await asking
        answered = await call.reconnect()
        await call.hang_up()
        return call, answered

    call, answered = run(scenario())

    # then the open request is answered on the new socket, without a second greeting
    assert answered.response_id == 1 and answered.text == "Here is the whole answer."
    assert call.begin_messages == [GREETING, ""]
    assert call.stale_frames == 0


# --- the plain path ---------------------------------------------------------------------------------------

@pytest.fixture
def plain_company(dental):
    company = dental.company
    company.retell_llm_plain_path_enabled = True
    company.save()
    return company


def test_plain_path_waits_for_call_details_naming_an_agent_of_an_allowing_company(asgi_server, dental,
                                                                                  plain_company):
    call_id = new_call_id()

    async def scenario():
        client = await RetellClient.open(f"{asgi_server}/retell-llm/{call_id}")
        config = await client.read()
        with pytest.raises(TimeoutError):
            await client.read_until(lambda f: f.get("response_type") == "response", timeout=0.5)
        await client.send({"interaction_type": "call_details", "call": {"call_id": call_id,
                                                                         "agent_id": "agent_dental001"}})
        begin = await client.read_until(lambda f: f.get("response_type") == "response")
        await client.close()
        return config, begin

    config, begin = run(scenario())

    assert config["response_type"] == "config"
    assert begin == {"response_type": "response", "response_id": 0, "content": GREETING, "content_complete": True}


def test_plain_path_closes_when_call_details_names_another_companys_agent(asgi_server, plain_company):
    other = make_company("Closed Practice", slug="closed-practice")
    Agent.objects.create(company=other, agent_id="agent_other", name="Other", begin_message="Hi")
    call_id = new_call_id()

    async def scenario():
        client = await RetellClient.open(f"{asgi_server}/retell-llm/{call_id}")
        await client.read()
        await client.send({"interaction_type": "call_details", "call": {"call_id": call_id, "agent_id": "agent_other"}})
        code = await client.closed_with()
        return code, [f for f in client.received if f["response_type"] == "response"]

    code, responses = run(scenario())

    assert code == 1008 and responses == []


def test_plain_path_closes_when_call_details_are_for_another_call(asgi_server, plain_company):
    async def scenario():
        client = await RetellClient.open(f"{asgi_server}/retell-llm/{new_call_id()}")
        await client.read()
        await client.send({"interaction_type": "call_details", "call": {"call_id": new_call_id(),
                                                                         "agent_id": "agent_dental001"}})
        return await client.closed_with()

    assert run(scenario()) == 1008


def test_plain_path_closes_when_call_details_never_come(asgi_server, plain_company, settings):
    settings.RETELL_LLM_CALL_DETAILS_TIMEOUT = 0.3

    async def scenario():
        client = await RetellClient.open(f"{asgi_server}/retell-llm/{new_call_id()}")
        return await client.closed_with()

    assert run(scenario()) == 1008


def test_plain_path_is_refused_at_the_handshake_when_no_company_allows_it(asgi_server, dental):
    async def scenario():
        with pytest.raises(InvalidStatus) as refused:
            await RetellClient.open(f"{asgi_server}/retell-llm/{new_call_id()}")
        return refused.value.response.status_code

    assert run(scenario()) == 403


# --- a reconnect to another server process ------------------------------------------------------------------

@pytest.fixture
def daphne_process(transactional_db, tmp_path):
    """The same application under daphne in its own process, on the test database and Redis."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    from django.conf import settings as django_settings
    from django.db import connection

    port = free_port()
    db = connection.settings_dict
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "REDIS_URL": django_settings.REDIS_URL,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"}
    root = Path(__file__).resolve().parents[2]
    log = open(tmp_path / "daphne.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                "config.asgi:application"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError((tmp_path / "daphne.log").read_text()[-2000:]) from None
            time.sleep(0.1)
    yield f"ws://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
    log.close()


def test_a_reconnect_to_another_server_process_goes_on_with_the_conversation(url, dental, daphne_process):
    call_id = new_call_id()

    async def scenario():
        first = await RetellClient.open(url(call_id))          # uvicorn, in this process
        await first.opening()
        await first.send({"interaction_type": "call_details", "call": {
            "call_id": call_id, "agent_id": "agent_dental001", "direction": "inbound",
            "from_number": "+12125550199", "to_number": "+12125550134"}})
        asked = await first.say("I'd like to book a cleaning tomorrow at 10 am")
        question, _ = await first.read_response(asked)
        first.agent_said(question)
        await first.close()

        second = await RetellClient.open(f"{daphne_process}/retell-llm/{dental.socket_token}/{call_id}")
        second.transcript, second.next_response_id = first.transcript, first.next_response_id
        _, begin = await second.opening()
        answered = await second.say("It's Anna Schmidt")
        reply, _ = await second.read_response(answered)
        await second.close()
        return question, begin, reply

    question, begin, reply = run(scenario())

    assert question.startswith("Let me check. ") and question.endswith(
        "is available. May I have your name, please?")
    assert begin["content"] == ""
    assert reply.startswith("So that's a cleaning for Anna Schmidt tomorrow at 10 am.")
