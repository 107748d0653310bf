"""The live socket's turns on the Call row: transcript, tools with results, latency."""

import pytest
from django.urls import reverse

from tests.fakes import retell
from voice.models import Call, LiveTurnLatency
from voice.services import call_apply_event, call_record_live_turns

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection

TRANSCRIPT = [{"role": "agent", "content": "Praxis Sonnenschein, guten Tag."},
              {"role": "user", "content": "Ich möchte morgen um 10 einen Termin."}]


def turn(response_id: int, **fields) -> dict:
    return {"response_id": response_id, "reminder": False, "started_at": 1_790_000_000.0 + response_id,
            "resumed": False, "first_chunk_ms": 4.2, "complete_ms": 31.5, "content": "Gern.",
            "tool_calls": [], "end_call": False, "transfer_number": None, "superseded": False, **fields}


def test_turns_are_recorded_on_a_call_the_webhooks_have_not_made_yet(retell_agent):
    company = retell_agent.company

    call_record_live_turns(company=company, agent=retell_agent, call_id="call_live_1", transcript=TRANSCRIPT[:1],
                          turns=[turn(1)])
    call_record_live_turns(company=company, agent=retell_agent, call_id="call_live_1", transcript=TRANSCRIPT,
                          turns=[turn(2, tool_calls=[{"tool_call_id": "t1", "name": "check_availability",
                                                    "arguments": {"date": "morgen"},
                                                    "result": {"ok": True, "message": "Frei."}}])])

    call = Call.objects.get(call_id="call_live_1")
    assert (call.company, call.agent) == (company, retell_agent)
    assert [t["response_id"] for t in call.live_turns] == [1, 2]
    assert call.live_turns[1]["tool_calls"][0]["result"] == {"ok": True, "message": "Frei."}
    assert call.live_transcript == TRANSCRIPT


def test_a_turn_answered_again_after_a_reconnect_replaces_its_record(retell_agent):
    company = retell_agent.company
    call_record_live_turns(company=company, call_id="call_live_2", transcript=TRANSCRIPT, turns=[turn(3, superseded=True, complete_ms=None)])
    call_record_live_turns(company=company, call_id="call_live_2", transcript=TRANSCRIPT, turns=[turn(3, resumed=True)])

    [record] = Call.objects.get(call_id="call_live_2").live_turns
    assert record["resumed"] is True and record["superseded"] is False


def test_webhook_events_and_live_turns_fill_the_same_row_in_any_order(retell_agent):
    company = retell_agent.company
    call_record_live_turns(company=company, call_id="call_live_3", transcript=TRANSCRIPT, turns=[turn(1)])
    call_apply_event(company=company, event="call_ended", call_payload=retell.call_object("call_live_3", "agent_abc123"),
                     agent=retell_agent)
    call_record_live_turns(company=company, call_id="call_live_3", transcript=TRANSCRIPT, turns=[turn(2)])

    call = Call.objects.get(call_id="call_live_3")
    assert call.last_event == "call_ended" and call.status
    assert [t["response_id"] for t in call.live_turns] == [1, 2]


def test_the_admin_shows_each_turn_with_latency_tools_and_results_escaped(owner_client, retell_agent):
    call_record_live_turns(company=retell_agent.company, agent=retell_agent, call_id="call_live_4",
                          transcript=TRANSCRIPT,
                          turns=[turn(1, content="<script>alert(1)</script>", first_chunk_ms=12.0, end_call=True,
                                    tool_calls=[{"name": "collect_appointment_information",
                                                 "arguments": {"name": "Anna"},
                                                 "result": {"ok": True, "message": "Gebucht."}}])])
    call = Call.objects.get(call_id="call_live_4")

    html = owner_client.get(reverse("admin:voice_call_change", args=[call.pk])).content.decode()

    assert "12 ms" in html and "32 ms" in html
    assert "collect_appointment_information" in html and "Gebucht." in html and "ends the call" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def latency_rows(call_id):
    return [(r.response_id, r.started_at.timestamp(), r.first_chunk_ms, r.complete_ms, r.dialog_engine, r.agent_id)
            for r in LiveTurnLatency.objects.filter(call__call_id=call_id).order_by("response_id")]


def test_each_turn_recorded_is_a_latency_row_matching_it_once_per_response_id(retell_agent):
    company = retell_agent.company
    retell_agent.dialog_engine = "embedded"
    first = [turn(1, first_chunk_ms=120.5, complete_ms=900.0), turn(2, superseded=True, first_chunk_ms=None,
                                                                      complete_ms=None)]
    call_record_live_turns(company=company, agent=retell_agent, call_id="call_live_5", transcript=TRANSCRIPT,
                           turns=first, dialog_engine="openai")
    # turn 2 answered again after a reconnect, by the engine the agent is set to
    call_record_live_turns(company=company, agent=retell_agent, call_id="call_live_5", transcript=TRANSCRIPT,
                           turns=[turn(2, resumed=True, first_chunk_ms=80.0, complete_ms=450.25)])

    call = Call.objects.get(call_id="call_live_5")
    expected = [(t["response_id"], t["started_at"], t["first_chunk_ms"], t["complete_ms"]) for t in call.live_turns]
    assert [row[:4] for row in latency_rows("call_live_5")] == expected == [
        (1, 1_790_000_001.0, 120.5, 900.0), (2, 1_790_000_002.0, 80.0, 450.25)]
    assert [row[4:] for row in latency_rows("call_live_5")] == [("openai", retell_agent.pk),
                                                                ("embedded", retell_agent.pk)]
    assert LiveTurnLatency.objects.get(call=call, response_id=1).company == company


def test_a_latency_that_is_not_a_number_is_stored_as_none(retell_agent):
    call_record_live_turns(company=retell_agent.company, agent=retell_agent, call_id="call_live_6",
                           transcript=TRANSCRIPT, turns=[turn(1, first_chunk_ms="fast", complete_ms=True)])

    assert len(Call.objects.get(call_id="call_live_6").live_turns) == 1
    assert [row[:4] for row in latency_rows("call_live_6")] == [(1, 1_790_000_001.0, None, None)]
