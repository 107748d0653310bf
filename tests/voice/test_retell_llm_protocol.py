"""The Retell Custom LLM protocol core, driven with plain data (no sockets, no Django)."""

import json

import pytest

from voice.protocols.retell_llm import (
    CallDetailsReceived,
    CallState,
    CancelResponse,
    CloseConnection,
    IgnoredFrame,
    MalformedFrame,
    ProtocolUsageError,
    RetellLLMConnection,
    SendFrame,
    StartResponse,
    TranscriptUpdated,
)

T0 = 1_700_000_000.0
USER_HI = [{"role": "agent", "content": "Hello, how can I help?"}, {"role": "user", "content": "Hi, I need a cleaning"}]


def frames(actions):
    return [a.frame for a in actions if isinstance(a, SendFrame)]


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def request(response_id, kind="response_required", transcript=USER_HI, **extra):
    return json.dumps({"interaction_type": kind, "response_id": response_id, "transcript": transcript, **extra})


@pytest.fixture
def conn():
    connection = RetellLLMConnection()
    connection.open(T0)
    connection.begin("Hello, how can I help?")
    return connection


# --- opening: config and begin message ---------------------------------------------------

def test_open_sends_config_with_reconnect_call_details_and_tool_transcript():
    connection = RetellLLMConnection()

    sent = frames(connection.open(T0))

    assert sent == [{"response_type": "config", "config": {
        "auto_reconnect": True, "call_details": True, "transcript_with_tool_calls": True}}]


def test_begin_message_is_response_zero_with_the_greeting_and_complete():
    connection = RetellLLMConnection()
    connection.open(T0)

    sent = frames(connection.begin("Praxis Dr. Weiß, guten Tag!"))

    assert sent == [{"response_type": "response", "response_id": 0, "content": "Praxis Dr. Weiß, guten Tag!",
                     "content_complete": True}]


def test_begin_message_is_empty_when_the_agent_waits_for_the_caller():
    connection = RetellLLMConnection()
    connection.open(T0)

    sent = frames(connection.begin(""))

    assert sent[0]["response_id"] == 0 and sent[0]["content"] == "" and sent[0]["content_complete"] is True


def test_begin_before_open_or_twice_is_a_usage_error():
    connection = RetellLLMConnection()
    with pytest.raises(ProtocolUsageError):
        connection.begin("Hi")
    connection.open(T0)
    connection.begin("Hi")
    with pytest.raises(ProtocolUsageError):
        connection.begin("Hi")


def test_config_without_auto_reconnect_is_sent_as_configured():
    connection = RetellLLMConnection(auto_reconnect=False, call_details=False, transcript_with_tool_calls=False)

    sent = frames(connection.open(T0))

    assert sent[0]["config"] == {"auto_reconnect": False, "call_details": False, "transcript_with_tool_calls": False}


# --- ping_pong -----------------------------------------------------------------------------

def test_ping_from_retell_is_answered_with_our_timestamp(conn):
    actions = conn.receive(json.dumps({"interaction_type": "ping_pong", "timestamp": 1703302407333}), T0 + 0.5)

    assert frames(actions) == [{"response_type": "ping_pong", "timestamp": int((T0 + 0.5) * 1000)}]


def test_own_ping_every_two_seconds_when_auto_reconnect(conn):
    assert conn.tick(T0 + 1.9) == []

    at_two = frames(conn.tick(T0 + 2.0))
    too_soon = conn.tick(T0 + 3.0)
    at_four = frames(conn.tick(T0 + 4.0))

    assert at_two == [{"response_type": "ping_pong", "timestamp": int((T0 + 2.0) * 1000)}]
    assert too_soon == []
    assert at_four == [{"response_type": "ping_pong", "timestamp": int((T0 + 4.0) * 1000)}]


def test_answering_a_ping_restarts_our_own_ping_interval(conn):
    conn.receive(json.dumps({"interaction_type": "ping_pong", "timestamp": 1}), T0 + 1.5)

    assert conn.tick(T0 + 2.5) == []
    assert conn.seconds_until_tick(T0 + 2.5) == pytest.approx(1.0)
    assert len(frames(conn.tick(T0 + 3.5))) == 1


def test_no_own_ping_without_auto_reconnect():
    connection = RetellLLMConnection(auto_reconnect=False)
    connection.open(T0)
    connection.begin("")

    assert connection.tick(T0 + 10) == []


# --- call_details and update_only ------------------------------------------------------------

def test_call_details_are_reported_and_kept_in_the_call_state(conn):
    call = {"call_id": "c1", "agent_id": "agent_abc123", "from_number": "+491701234567",
            "retell_llm_dynamic_variables": {"customer_name": "John Doe"}}

    actions = conn.receive(json.dumps({"interaction_type": "call_details", "call": call}), T0)

    assert actions == [CallDetailsReceived(call)]
    assert conn.state.call == call


def test_update_only_updates_the_transcript_and_asks_for_nothing(conn):
    actions = conn.receive(json.dumps({"interaction_type": "update_only", "transcript": USER_HI,
                                       "turntaking": "user_turn"}), T0)

    assert actions == [TranscriptUpdated(USER_HI, "user_turn")]
    assert conn.state.transcript == USER_HI


# --- response_required: streaming -----------------------------------------------------------

def test_response_required_starts_a_response_for_its_id(conn):
    actions = conn.receive(request(1), T0)

    assert actions == [StartResponse(1, False, USER_HI, None)]


def test_streamed_chunks_share_the_id_and_only_the_last_is_complete(conn):
    conn.receive(request(3), T0)

    sent = frames(conn.chunk(3, "I'm doing great, ") + conn.chunk(3, "thank you.") + conn.complete(3, now=T0))

    assert [f["response_id"] for f in sent] == [3, 3, 3]
    assert [f["content_complete"] for f in sent] == [False, False, True]
    assert "".join(f["content"] for f in sent) == "I'm doing great, thank you."
    assert all(f["response_type"] == "response" for f in sent)


def test_nothing_of_an_id_is_sent_after_it_completed(conn):
    conn.receive(request(3), T0)
    conn.complete(3, "Done.", now=T0)

    assert conn.chunk(3, "late") == [] and conn.complete(3, now=T0) == []


def test_transcript_with_tool_calls_is_passed_on_with_the_request(conn):
    with_tools = [{"role": "tool_call_invocation", "tool_call_id": "t1", "name": "check_availability",
                   "arguments": "{}"}]

    actions = conn.receive(request(2, transcript_with_tool_calls=with_tools), T0)

    assert of(actions, StartResponse)[0].transcript_with_tool_calls == with_tools


# --- superseding -----------------------------------------------------------------------------

def test_newer_response_required_cancels_the_older_stream_and_drops_its_chunks(conn):
    conn.receive(request(1), T0)
    first = frames(conn.chunk(1, "Let me see"))

    actions = conn.receive(request(2), T0 + 0.3)
    stale = conn.chunk(1, " what we have") + conn.complete(1, now=T0)
    fresh = frames(conn.chunk(2, "Sure.") + conn.complete(2, now=T0))

    assert first[0]["response_id"] == 1
    assert actions == [CancelResponse(1), StartResponse(2, False, USER_HI, None)]
    assert stale == []
    assert [f["response_id"] for f in fresh] == [2, 2]


def test_reminder_required_supersedes_a_running_response_too(conn):
    conn.receive(request(4), T0)

    actions = conn.receive(request(5, kind="reminder_required"), T0 + 10)

    assert actions == [CancelResponse(4), StartResponse(5, True, USER_HI, None)]
    assert conn.chunk(4, "old") == []


def test_update_only_does_not_supersede_the_running_response(conn):
    conn.receive(request(6), T0)

    actions = conn.receive(json.dumps({"interaction_type": "update_only", "transcript": USER_HI}), T0 + 0.1)

    assert not of(actions, CancelResponse)
    assert frames(conn.chunk(6, "Still answering."))[0]["response_id"] == 6


def test_a_request_not_newer_than_the_latest_is_ignored(conn):
    conn.receive(request(7), T0)

    actions = conn.receive(request(7), T0) + conn.receive(request(6), T0)

    assert [type(a) for a in actions] == [IgnoredFrame, IgnoredFrame]
    assert conn.is_current(7)


# --- reminders, end_call, transfer, interrupts ---------------------------------------------------

def test_reminder_required_is_answered_like_a_response(conn):
    actions = conn.receive(request(8, kind="reminder_required"), T0)

    sent = frames(conn.complete(8, "Are you still there?", now=T0))

    assert actions == [StartResponse(8, True, USER_HI, None)]
    assert sent == [{"response_type": "response", "response_id": 8, "content": "Are you still there?",
                     "content_complete": True}]


def test_end_call_is_set_on_the_last_chunk_and_the_socket_closes_1000_after_the_grace(conn):
    conn.receive(request(10), T0)

    sent = frames(conn.complete(10, "Goodbye.", now=T0 + 1, end_call=True))
    before = of(conn.tick(T0 + 20.5), CloseConnection)
    after = of(conn.tick(T0 + 21.0), CloseConnection)

    assert sent == [{"response_type": "response", "response_id": 10, "content": "Goodbye.",
                     "content_complete": True, "end_call": True}]
    assert before == [] and after == [CloseConnection(1000, "call ended")]
    assert conn.state.ended and conn.closed


def test_transfer_number_is_set_on_the_last_chunk(conn):
    conn.receive(request(11), T0)

    sent = frames(conn.complete(11, "I'll put you through.", now=T0, transfer_number="+493083793369"))

    assert sent[0]["transfer_number"] == "+493083793369" and sent[0]["content_complete"] is True
    assert "end_call" not in sent[0]


def test_ending_and_transferring_at_once_is_a_usage_error(conn):
    conn.receive(request(12), T0)
    with pytest.raises(ProtocolUsageError):
        conn.complete(12, now=T0, end_call=True, transfer_number="+493083793369")


def test_agent_interrupt_counts_its_own_interrupt_id(conn):
    first = frames(conn.interrupt("One moment please.", now=T0))
    second = frames(conn.interrupt("Sorry, the line is bad.", now=T0))

    assert first == [{"response_type": "agent_interrupt", "interrupt_id": 1, "content": "One moment please.",
                      "content_complete": True, "no_interruption_allowed": True}]
    assert second[0]["interrupt_id"] == 2
    assert "response_id" not in first[0]


# --- tools -----------------------------------------------------------------------------------

def test_tool_invocation_sends_arguments_as_a_json_string(conn):
    sent = frames(conn.tool_invocation("call_1", "check_availability", {"date": "morgen", "time": "10:00"}))

    assert sent[0]["response_type"] == "tool_call_invocation"
    assert sent[0]["tool_call_id"] == "call_1" and sent[0]["name"] == "check_availability"
    assert isinstance(sent[0]["arguments"], str)
    assert json.loads(sent[0]["arguments"]) == {"date": "morgen", "time": "10:00"}


def test_tool_invocation_refuses_arguments_that_are_not_a_json_object(conn):
    with pytest.raises(ProtocolUsageError):
        conn.tool_invocation("call_1", "x", "[1, 2]")
    with pytest.raises(ProtocolUsageError):
        conn.tool_invocation("call_1", "x", "{not json")


def test_tool_result_carries_content_as_text_and_successful_when_known(conn):
    reported = frames(conn.tool_result("call_1", {"available": True}, successful=True))
    unreported = frames(conn.tool_result("call_2", "done"))

    assert reported == [{"response_type": "tool_call_result", "tool_call_id": "call_1",
                         "content": '{"available":true}', "successful": True}]
    assert unreported == [{"response_type": "tool_call_result", "tool_call_id": "call_2", "content": "done"}]


# --- malformed and unknown input --------------------------------------------------------------

@pytest.mark.parametrize("raw, reason", [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"transcript": []}', "no interaction_type"),
    ('{"interaction_type": "response_required", "transcript": []}', "integer response_id"),
    ('{"interaction_type": "response_required", "response_id": "3", "transcript": []}', "integer response_id"),
    ('{"interaction_type": "response_required", "response_id": true, "transcript": []}', "integer response_id"),
    ('{"interaction_type": "update_only", "transcript": "hello"}', "transcript list"),
    ('{"interaction_type": "call_details", "call": null}', "call object"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_a_malformed_frame_is_reported_and_the_call_goes_on(conn, raw, reason):
    actions = conn.receive(raw, T0)

    assert len(actions) == 1 and isinstance(actions[0], MalformedFrame)
    assert reason in actions[0].reason
    assert of(conn.receive(request(1), T0), StartResponse)


def test_an_unknown_interaction_type_is_ignored(conn):
    actions = conn.receive(json.dumps({"interaction_type": "agent_swap", "x": 1}), T0)

    assert actions == [IgnoredFrame("agent_swap")]
    assert not frames(actions)


# --- reconnect ---------------------------------------------------------------------------------

def test_reconnect_does_not_greet_twice_and_answers_the_request_left_open():
    # given a call whose connection died while response 4 was streaming
    first = RetellLLMConnection()
    first.open(T0)
    first.begin("Hello!")
    first.receive(request(4), T0 + 1)
    first.chunk(4, "Half an ans")
    saved = first.state.to_dict()

    # when Retell connects again for the same call
    second = RetellLLMConnection(state=CallState.from_dict(saved))
    second.open(T0 + 6)
    actions = second.begin("Hello!")

    # then it waits with an empty begin message and answers response 4 again
    assert frames(actions)[0] == {"response_type": "response", "response_id": 0, "content": "",
                                  "content_complete": True}
    assert of(actions, StartResponse) == [StartResponse(4, False, USER_HI, None)]
    assert second.resumed and second.state.connections == 2
    assert frames(second.chunk(4, "A full answer.") + second.complete(4, now=T0 + 6))[-1]["content_complete"]


def test_reconnect_after_a_completed_answer_starts_nothing_and_keeps_counting():
    first = RetellLLMConnection()
    first.open(T0)
    first.begin("Hello!")
    first.receive(request(2), T0)
    first.complete(2, "Sure.", now=T0)
    first.written(2)
    first.interrupt("Hold on.", now=T0)

    second = RetellLLMConnection(state=CallState.from_dict(first.state.to_dict()))
    second.open(T0 + 7)
    actions = second.begin("Hello!")

    assert not of(actions, StartResponse)
    assert frames(second.interrupt("Back.", now=T0 + 7))[0]["interrupt_id"] == 2
    assert of(second.receive(request(3), T0 + 8), StartResponse)


def test_call_state_survives_a_round_trip_through_plain_data():
    state = CallState(greeted=True, latest_response_id=9, pending={"response_id": 9, "reminder": True},
                      transcript=USER_HI, call={"call_id": "c"}, next_interrupt_id=3)

    assert CallState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    assert CallState.from_dict(None) == CallState()


def test_a_connection_that_learns_its_call_late_adopts_the_saved_state():
    # given a call greeted on an earlier connection, now reconnected on a path that names no agent
    earlier = CallState(greeted=True, latest_response_id=5, completed_response_id=5, next_interrupt_id=2,
                        connections=1)
    connection = RetellLLMConnection()
    connection.open(T0)
    connection.receive(json.dumps({"interaction_type": "call_details", "call": {"call_id": "c"}}), T0)
    connection.receive(request(6), T0)

    # when call_details has named the agent and its saved state is adopted
    connection.adopt(earlier)
    actions = connection.begin("Hello!")

    # then the caller is not greeted again and request 6, heard meanwhile, is answered
    assert frames(actions)[0]["content"] == ""
    assert of(actions, StartResponse) == [StartResponse(6, False, USER_HI, None)]
    assert connection.resumed and connection.state.connections == 2 and connection.state.call == {"call_id": "c"}


def test_a_request_heard_before_the_begin_message_is_started_by_begin():
    connection = RetellLLMConnection()
    connection.open(T0)

    heard = connection.receive(request(1), T0)
    begun = connection.begin("Hi!")

    assert heard == []
    assert of(begun, StartResponse) == [StartResponse(1, False, USER_HI, None)]


# --- answered when written ----------------------------------------------------------------------

def test_a_request_stays_pending_until_its_final_frame_is_reported_written(conn):
    conn.receive(request(3), T0)
    conn.complete(3, "Sure.", now=T0)
    decided = conn.state.to_dict()

    conn.written(3)

    assert decided["pending"] == {"response_id": 3, "reminder": False}
    assert conn.state.pending is None and conn.state.completed_response_id == 3


def test_a_reconnect_answers_again_a_request_whose_final_frame_was_decided_but_not_written():
    # given a connection that decided the last frame of response 4, and died before writing it
    first = RetellLLMConnection()
    first.open(T0)
    first.begin("Hello!")
    first.receive(request(4), T0 + 1)
    first.complete(4, "An answer the caller never got.", now=T0 + 1)

    # when Retell connects again for the same call
    second = RetellLLMConnection(state=CallState.from_dict(first.state.to_dict()))
    second.open(T0 + 6)
    actions = second.begin("Hello!")

    # then response 4 is answered again
    assert of(actions, StartResponse) == [StartResponse(4, False, USER_HI, None)]


def test_the_final_frame_of_an_older_id_written_late_leaves_the_newer_request_pending(conn):
    conn.receive(request(1), T0)
    conn.complete(1, "First.", now=T0)
    conn.receive(request(2), T0 + 0.005)

    conn.written(1)

    assert conn.state.pending == {"response_id": 2, "reminder": False}
    assert conn.is_current(2)


# --- a transfer or end_call that did not happen -------------------------------------------------------

def test_a_newer_request_after_a_written_transfer_reports_the_transfer_interrupted(conn):
    conn.receive(request(1), T0)
    conn.complete(1, "I'll put you through.", now=T0, transfer_number="+493083793369")
    conn.written(1)

    [start] = of(conn.receive(request(2), T0 + 2), StartResponse)

    assert start.interrupted_transfer == "+493083793369" and start.interrupted_end_call is False


def test_a_transfer_superseded_before_its_final_frame_was_decided_is_reported_interrupted(conn):
    conn.receive(request(1), T0)
    conn.ending(1, transfer_number="+493083793369")

    actions = conn.receive(request(2), T0 + 0.1)

    assert of(actions, CancelResponse) == [CancelResponse(1)]
    assert of(actions, StartResponse)[0].interrupted_transfer == "+493083793369"


def test_a_transfer_decided_but_not_written_before_the_newer_request_is_reported_interrupted(conn):
    conn.receive(request(1), T0)
    conn.complete(1, "I'll put you through.", now=T0, transfer_number="+493083793369")

    [start] = of(conn.receive(request(2), T0 + 0.005), StartResponse)

    assert start.interrupted_transfer == "+493083793369"


def test_an_interrupted_transfer_is_given_to_newer_requests_until_one_is_answered(conn):
    conn.receive(request(1), T0)
    conn.complete(1, "I'll put you through.", now=T0, transfer_number="+493083793369")
    conn.written(1)
    conn.receive(request(2), T0 + 1)

    [superseding] = of(conn.receive(request(3), T0 + 1.1), StartResponse)
    conn.complete(3, "Shall I put you through now?", now=T0 + 2)
    conn.written(3)
    [after_answer] = of(conn.receive(request(4), T0 + 3), StartResponse)

    assert superseding.interrupted_transfer == "+493083793369"
    assert after_answer.interrupted_transfer is None and after_answer.interrupted_end_call is False


def test_an_answer_without_a_transfer_is_not_reported_interrupted(conn):
    conn.receive(request(1), T0)
    conn.ending(1, transfer_number="+493083793369")
    conn.complete(1, "Sorry, something went wrong.", now=T0)  # the final frame carries no transfer
    conn.written(1)

    [start] = of(conn.receive(request(2), T0 + 1), StartResponse)

    assert start.interrupted_transfer is None


def test_an_interrupted_transfer_survives_a_reconnect():
    first = RetellLLMConnection()
    first.open(T0)
    first.begin("Hello!")
    first.receive(request(1), T0)
    first.complete(1, "I'll put you through.", now=T0, transfer_number="+493083793369")
    first.written(1)
    first.receive(request(2), T0 + 1)

    second = RetellLLMConnection(state=CallState.from_dict(json.loads(json.dumps(first.state.to_dict()))))
    second.open(T0 + 6)
    [start] = of(second.begin("Hello!"), StartResponse)

    assert (start.response_id, start.interrupted_transfer) == (2, "+493083793369")


def test_a_newer_request_after_the_goodbye_cancels_the_hang_up(conn):
    conn.receive(request(10), T0)
    conn.complete(10, "Goodbye.", now=T0 + 1, end_call=True)
    conn.written(10)

    [start] = of(conn.receive(request(11), T0 + 2), StartResponse)
    later = conn.tick(T0 + 60)

    assert start.interrupted_end_call is True and start.interrupted_transfer is None
    assert of(later, CloseConnection) == []
    assert not conn.state.ended and not conn.closed
    assert conn.seconds_until_tick(T0 + 60) <= 2.0
