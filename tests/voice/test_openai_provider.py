"""The OpenAI-compatible provider against a fake streaming chat-completions server on loopback."""

import json

import pytest

from appointments.function_specs import FUNCTION_SPECS
from audit.circuit import CircuitBreaker
from tenants.fields import Secret
from tests.fakes.llm import Fail, FakeLLM, Hang, Raw, Text, ToolCalls
from tests.voice.conversation import Conversation
from voice.dialog.base import AgentInfo, CallContext, CompanyInfo, Turn
from voice.dialog.openai_provider import REMINDER_NOTE, OpenAIChatEngine, conversation_messages

COMPANY_ID = 9101


@pytest.fixture
def llm():
    fake = FakeLLM().start()
    CircuitBreaker(f"llm:company:{COMPANY_ID}").reset()
    yield fake
    fake.stop()
    CircuitBreaker(f"llm:company:{COMPANY_ID}").reset()


def context(llm, *, phone="+12125550134", language="en-US", base_url=None):
    company = CompanyInfo(id=COMPANY_ID, name="Bright Smile Dental", phone=phone, address="200 Park Avenue South",
                          opening_hours={"mon": [["08:00", "18:00"]]}, timezone="America/New_York", language="en",
                          llm_base_url=llm.base_url if base_url is None else base_url, llm_model="gpt-test",
                          llm_api_key=Secret.from_plaintext("sk-test-key-1234"))
    agent = AgentInfo(id=1, agent_id="agent_dental001", name="Sophie", language=language,
                      begin_message="Bright Smile Dental, Sophie speaking.",
                      general_prompt="You are the friendly receptionist of {{company_name}}.",
                      custom_instructions="Never give medical advice.", dialog_engine="openai")
    return CallContext(call_id="call_llm_1", company=company, agent=agent, caller_number="+12125550199")


def talk(llm, **kwargs):
    results = kwargs.pop("tool_results", None)
    return Conversation(OpenAIChatEngine(), context(llm, **kwargs), tool_results=results)


def test_text_is_streamed_chunk_by_chunk_with_the_agents_prompt_and_the_key(llm):
    llm.script(Text(["We're open ", "Monday from 8 to 6."]))
    call = talk(llm)

    reply = call.say("When are you open?")

    assert reply.chunks == ["We're open ", "Monday from 8 to 6."]
    body, headers = llm.requests[0], llm.headers[0]
    assert headers["Authorization"] == "Bearer sk-test-key-1234"
    assert body["model"] == "gpt-test" and body["stream"] is True
    assert [t["function"]["name"] for t in body["tools"]] == list(FUNCTION_SPECS)
    assert body["tools"][0]["function"]["parameters"] == FUNCTION_SPECS["collect_appointment_information"]["parameters"]
    system = body["messages"][0]
    assert system["role"] == "system"
    assert "You are the friendly receptionist of Bright Smile Dental." in system["content"]
    assert "Never give medical advice." in system["content"]
    assert "Bright Smile Dental, Sophie speaking." in system["content"]
    assert body["messages"][1:] == [{"role": "assistant", "content": "Bright Smile Dental, Sophie speaking."},
                                    {"role": "user", "content": "When are you open?"}]


def test_a_streamed_tool_call_is_assembled_run_and_the_stream_resumed_with_its_result(llm):
    llm.script(ToolCalls([("call_abc", "check_availability", '{"date": "tomorrow", "time": "10:00"}')], pieces=4),
               Text(["Tomorrow at 10 is free."]))
    free = {"available": True, "message": "Tomorrow at 10:00 is free."}
    call = talk(llm, tool_results={"check_availability": free})

    reply = call.say("Do you have tomorrow at 10?")

    assert [(c.tool_call_id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_abc", "check_availability", {"date": "tomorrow", "time": "10:00"})]
    assert reply.text == "Tomorrow at 10 is free."
    resumed = llm.requests[1]["messages"]
    assert resumed[-2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_abc", "type": "function",
         "function": {"name": "check_availability", "arguments": '{"date": "tomorrow", "time": "10:00"}'}}]}
    assert resumed[-1]["role"] == "tool" and resumed[-1]["tool_call_id"] == "call_abc"
    assert json.loads(resumed[-1]["content"]) == free


def test_two_tool_calls_in_one_stream_are_both_run_in_order(llm):
    llm.script(ToolCalls([("c1", "check_availability", '{"date": "Monday"}'),
                          ("c2", "check_availability", '{"date": "Tuesday"}')]),
               Text(["Both days are free."]))
    call = talk(llm)

    reply = call.say("Monday or Tuesday?")

    assert [c.arguments["date"] for c in reply.tool_calls] == ["Monday", "Tuesday"]
    assert [m["tool_call_id"] for m in llm.requests[1]["messages"] if m["role"] == "tool"] == ["c1", "c2"]


def test_a_call_to_an_unknown_function_is_not_run_and_the_model_is_told(llm):
    llm.script(ToolCalls([("c1", "delete_everything", "{}")]), Text(["Sorry, I can't do that."]))
    call = talk(llm)

    reply = call.say("Delete everything")

    assert reply.tool_calls == []
    assert json.loads(llm.requests[1]["messages"][-1]["content"])["error"] == "invalid_call"


def test_a_provider_error_becomes_an_apology_and_a_yes_transfers_without_asking_the_llm(llm):
    llm.script(Fail(500))
    call = talk(llm)

    apology = call.say("I need an appointment")
    transfer = call.say("Yes please")

    assert apology.text == "I'm sorry, I'm having technical trouble right now. Shall I put you through to the team?"
    assert transfer.transfer == "+12125550134"
    assert len(llm.requests) == 1


def test_a_provider_that_hangs_times_out_into_an_apology(llm, settings):
    settings.LLM_READ_TIMEOUT = 0.3
    llm.script(Hang(2))

    reply = talk(llm).say("Hello?")

    assert reply.text.startswith("I'm sorry, I'm having technical trouble")


def test_without_a_company_number_the_apology_offers_no_transfer(llm):
    llm.script(Fail(503))

    reply = talk(llm, phone="").say("Hello?")

    assert reply.text == "I'm sorry, I'm having technical trouble right now. Please call again a little later."


def test_german_agent_apologises_in_german(llm):
    llm.script(Fail(500))

    reply = talk(llm, language="de-DE").say("Hallo?")

    assert reply.text == "Entschuldigung, ich habe gerade technische Probleme. Soll ich Sie mit dem Team verbinden?"


def test_after_repeated_failures_the_circuit_opens_and_the_provider_is_not_called(llm):
    llm.script(Fail(500))
    call = talk(llm)
    for _ in range(3):
        call.say("Hello?")
        call.say("No")  # declines the transfer; the next turn asks the LLM again
    asked = len(llm.requests)

    reply = call.say("Are you there?")

    assert asked == 3
    assert len(llm.requests) == 3 and reply.text.startswith("I'm sorry")


def sse(*chunks) -> bytes:
    """An event stream of these chunks (dicts as JSON, strings as they are)."""
    return b"".join(f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n".encode() for c in chunks)


def chunk(delta: dict, finish_reason=None) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-test",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-test", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "We open at 8."}, "finish_reason": "stop"}]}
OFFER = "I'm sorry, I'm having technical trouble right now. Shall I put you through to the team?"


@pytest.mark.parametrize("answer", [
    Raw(json.dumps(COMPLETION).encode(), content_type="application/json"),   # not an event stream
    Raw(b""),                                                                  # a stream of no chunk
    Raw(sse("[DONE]")),                                                        # only [DONE]
    Raw(sse(chunk({"role": "assistant", "content": ""}), chunk({}, "stop"), "[DONE]")),  # no word in it
    Raw(sse(chunk({"content": "We open "}))),                                  # cut off: no end, no [DONE]
    Raw(sse("5", "[DONE]")),                                                   # chunks of the wrong shape
    Raw(sse({"choices": "all"}, "[DONE]")),
    Raw(sse({"choices": [{"delta": "We open at 8."}]}, "[DONE]")),
    Raw(sse({"choices": [{"delta": {"content": 8}}]}, "[DONE]")),
    Raw(sse({"choices": [{"delta": {"tool_calls": [5]}}]}, "[DONE]")),
], ids=["json", "empty", "done-only", "no-words", "cut-off", "number", "choices-string", "delta-string",
        "content-number", "tool-call-number"])
def test_an_empty_or_malformed_answer_is_a_failure_the_caller_hears_and_the_breaker_counts(llm, answer):
    llm.script(answer)
    call = talk(llm)

    reply = call.say("When do you open?")
    transfer = call.say("Yes please")

    assert reply.text.endswith(OFFER)
    assert transfer.transfer == "+12125550134"
    assert CircuitBreaker(f"llm:company:{COMPANY_ID}").state().failures == 1


def test_a_whole_answer_without_done_but_with_its_finish_reason_is_spoken(llm):
    llm.script(Raw(sse(chunk({"content": "We open at 8."}), chunk({}, "stop"))))

    reply = talk(llm).say("When do you open?")

    assert reply.text == "We open at 8."
    assert CircuitBreaker(f"llm:company:{COMPANY_ID}").state().failures == 0


def test_a_missing_llm_configuration_is_an_apology_not_silence(llm):
    reply = talk(llm, base_url="").say("Hello?")

    assert reply.text.startswith("I'm sorry") and llm.requests == []


def test_transcript_with_tool_calls_becomes_chat_messages_with_tool_results():
    turn = Turn(response_id=3, transcript=[], transcript_with_tool_calls=[
        {"role": "agent", "content": "Hello!"},
        {"role": "user", "content": "Is Monday free?"},
        {"role": "tool_call_invocation", "tool_call_id": "t1", "name": "check_availability",
         "arguments": '{"date": "Monday"}'},
        {"role": "tool_call_result", "tool_call_id": "t1", "content": '{"available": true}'},
        {"role": "tool_call_invocation", "tool_call_id": "t2", "name": "cancel_appointment", "arguments": "{}"},
        {"role": "agent", "content": "Monday is free."},
    ])

    messages = conversation_messages(turn)

    assert messages == [
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Is Monday free?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t1", "type": "function", "function": {
            "name": "check_availability", "arguments": '{"date": "Monday"}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": '{"available": true}'},
        {"role": "assistant", "content": "Monday is free."},
    ]


def test_a_reminder_asks_the_model_to_check_on_the_caller():
    turn = Turn(response_id=4, transcript=[{"role": "agent", "content": "Anything else?"}], reminder=True)

    assert conversation_messages(turn)[-1] == {"role": "user", "content": REMINDER_NOTE}


# --- parallel tool calls ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["openai", "ollama", "no_index"])
def test_parallel_tool_calls_are_assembled_by_id_and_run_as_one_batch(llm, shape):
    # given two parallel calls streamed as the provider streams them (Ollama: every delta index 0)
    llm.script(ToolCalls([("call_a", "check_availability", '{"date": "Monday"}'),
                          ("call_b", "check_availability", '{"date": "Tuesday"}')], shape=shape),
               Text(["Both days are free."]))
    call = talk(llm, tool_results={"check_availability": lambda args: {"available": True, "date": args["date"]}})

    reply = call.say("Monday or Tuesday?")

    # then they are two calls, run together, and each result goes back under its own id
    assert [(c.tool_call_id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_a", "check_availability", {"date": "Monday"}), ("call_b", "check_availability", {"date": "Tuesday"})]
    assert len(reply.batches) == 1
    resumed = llm.requests[1]["messages"]
    assert [c["id"] for c in resumed[-3]["tool_calls"]] == ["call_a", "call_b"]
    assert [(m["tool_call_id"], json.loads(m["content"])["date"]) for m in resumed[-2:]] == [
        ("call_a", "Monday"), ("call_b", "Tuesday")]


# --- the call's ledger of effects -----------------------------------------------------------------------

EFFECT = {"tool_call_id": "t9", "name": "collect_appointment_information",
          "arguments": {"date": "Thursday", "time": "10:00", "name": "Anna"},
          "result": {"ok": True, "message": "Booked Thursday at 10."}, "response_id": 3, "answered": False}


def test_a_tool_in_the_ledger_but_not_in_retells_transcript_is_given_to_the_llm_before_the_callers_words():
    turn = Turn(response_id=4, transcript=[], transcript_with_tool_calls=[
        {"role": "agent", "content": "Shall I book Thursday at 10?"},
        {"role": "tool_call_invocation", "tool_call_id": "t1", "name": "check_availability",
         "arguments": '{"date": "Thursday"}'},
        {"role": "tool_call_result", "tool_call_id": "t1", "content": '{"available": true}'},
        {"role": "user", "content": "Ja."},
        {"role": "user", "content": "Ach nein, doch lieber Freitag."},
    ])
    known = {**EFFECT, "tool_call_id": "t1", "name": "check_availability", "answered": True}

    messages = conversation_messages(turn, [known, EFFECT])

    assert messages[-4:] == [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t9", "type": "function", "function": {
            "name": "collect_appointment_information",
            "arguments": '{"date": "Thursday", "time": "10:00", "name": "Anna"}'}}]},
        {"role": "tool", "tool_call_id": "t9", "content": '{"ok": true, "message": "Booked Thursday at 10."}'},
        {"role": "user", "content": "Ja."},
        {"role": "user", "content": "Ach nein, doch lieber Freitag."},
    ]
    assert sum(1 for m in messages if m["role"] == "tool") == 2


def test_the_llm_is_told_what_ran_in_a_superseded_turn(llm):
    llm.script(Text(["I'll move it to Friday."]))
    call = talk(llm)
    call.context.effects.append(EFFECT)

    call.say("Ach nein, doch lieber Freitag.")

    tool_messages = [m for m in llm.requests[0]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["t9"]


# --- a transfer the caller interrupted ----------------------------------------------------------------

def test_an_interrupted_transfer_is_sent_again_when_the_caller_says_yes(llm):
    call = talk(llm)

    reply = call.say("Yes, thanks!", interrupted_transfer="+12125550134")

    assert reply.transfer == "+12125550134" and reply.text == "Of course, I'll put you through now."
    assert llm.requests == []


def test_an_interrupted_transfer_is_offered_again_and_a_yes_then_transfers(llm):
    call = talk(llm)

    offer = call.say("Hello?", interrupted_transfer="+12125550134")
    transfer = call.say("Yes")

    assert offer.text == "Shall I put you through to the team now?" and offer.transfer is None
    assert transfer.transfer == "+12125550134"
    assert llm.requests == []


def test_a_german_caller_hears_the_offer_again_in_german(llm):
    offer = talk(llm, language="de-DE").say("Hallo?", interrupted_transfer="+493083793369")

    assert offer.text == "Soll ich Sie jetzt mit dem Team verbinden?"


def test_a_caller_who_says_no_after_an_interrupted_transfer_is_answered_by_the_llm(llm):
    llm.script(Text(["How else can I help?"]))

    reply = talk(llm).say("No, wait, I have a question", interrupted_transfer="+12125550134")

    assert reply.transfer is None and reply.text == "How else can I help?"
