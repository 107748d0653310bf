"""call_apply_event: the same Retell events in any order, or twice, give the same call."""

import itertools

import pytest

from tests.fakes import retell
from voice.models import Call
from voice.services import CallOfAnotherCompany, call_apply_event

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection

COMPARED = ["status", "started_at", "ended_at", "duration_ms", "disconnection_reason", "transcript",
            "transcript_turns", "recording_url", "analysis", "from_number", "to_number", "direction",
            "dynamic_variables", "last_event", "events", "agent_id"]


def lifecycle(call_id: str, agent_id: str) -> list[tuple[str, dict]]:
    analysed = retell.call_object(call_id, agent_id, call_analysis={"call_summary": "Booked a cleaning.",
                                                                    "user_sentiment": "Positive"})
    return [
        ("call_started", retell.call_object(call_id, agent_id, status="ongoing", turns=0, transcript="")),
        ("transcript_updated", retell.call_object(call_id, agent_id, status="ongoing", turns=2)),
        ("transcript_updated", retell.call_object(call_id, agent_id, status="ongoing", turns=4)),
        ("call_ended", retell.call_object(call_id, agent_id)),
        ("call_analyzed", analysed),
    ]


def state(call: Call) -> dict:
    call.refresh_from_db()
    return {name: getattr(call, name) for name in COMPARED}


def test_events_in_order_build_the_full_call(retell_agent):
    company = retell_agent.company
    for event, payload in lifecycle("call_1", "agent_abc123"):
        call = call_apply_event(company=company, event=event, call_payload=payload, agent=retell_agent)

    got = state(call)
    assert got["status"] == "ended" and got["last_event"] == "call_analyzed"
    assert got["duration_ms"] == 95_000 and got["disconnection_reason"] == "user_hangup"
    assert len(got["transcript_turns"]) == 6
    assert got["analysis"]["call_summary"] == "Booked a cleaning."
    assert got["agent_id"] == retell_agent.pk


@pytest.mark.parametrize("order", [list(reversed(range(5))), [3, 0, 4, 2, 1], [4, 1, 3, 0, 2]])
def test_events_in_any_order_give_the_same_call(retell_agent, order):
    company = retell_agent.company
    events = lifecycle("call_1", "agent_abc123")
    for event, payload in events:
        in_order = call_apply_event(company=company, event=event, call_payload=payload, agent=retell_agent)
    expected = state(in_order)
    in_order.delete()

    for index in order:
        event, payload = events[index]
        got = call_apply_event(company=company, event=event, call_payload=payload, agent=retell_agent)

    assert state(got) == expected


def test_every_event_applied_twice_changes_nothing(retell_agent):
    company = retell_agent.company
    events = lifecycle("call_1", "agent_abc123")
    for event, payload in events:
        call = call_apply_event(company=company, event=event, call_payload=payload)
    before = state(call)

    for event, payload in itertools.chain(events, reversed(events)):
        call_apply_event(company=company, event=event, call_payload=payload)

    assert state(call) == before
    assert Call.objects.count() == 1


def test_an_older_transcript_update_never_replaces_a_newer_one(retell_agent):
    company = retell_agent.company
    newer = retell.call_object("call_1", "agent_abc123", status="ongoing", turns=5)
    older = retell.call_object("call_1", "agent_abc123", status="ongoing", turns=3)

    call_apply_event(company=company, event="transcript_updated", call_payload=newer)
    call = call_apply_event(company=company, event="transcript_updated", call_payload=older)

    assert len(state(call)["transcript_turns"]) == 5


def test_a_call_id_of_another_company_is_refused(retell_agent, company_b):
    payload = retell.call_object("call_1", "agent_abc123")
    call_apply_event(company=retell_agent.company, event="call_ended", call_payload=payload)

    with pytest.raises(CallOfAnotherCompany):
        call_apply_event(company=company_b, event="call_analyzed", call_payload=payload)
