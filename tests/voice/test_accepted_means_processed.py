"""Accepted means processed (issue 11, item 2): what the intake answered 204/200 the worker
processes, a bad field dropped or cut alone and recorded on the receipt; a receipt that still
fails is given up with its reason after a bounded number of tries, and shows in /health and
in the admin as needing attention."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import Delivery, WebhookReceipt
from tests.conftest import RETELL_KEY
from tests.fakes import retell
from voice.models import Call
from voice.services import call_apply_event, receipts_sweep

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection
URL, EL_URL = "/api/retell/webhook", "/api/elevenlabs/callback"
EL_KEY = "el-key-alpha-1234567890"
Status = WebhookReceipt.Status


def deep(levels: int, leaf=1):
    for _ in range(levels):
        leaf = [leaf]
    return leaf


def _call_ended(call_id: str, **fields) -> bytes:
    return retell.event_body("call_ended", retell.call_object(call_id, "agent_abc123", **fields))


def _deep_body(call_id: str, where: str) -> bytes:
    """A call_ended whose `where` (a call field, or a key beside the call) is nested 990 levels deep
    (orjson reads up to 1024; Python's json gives up before)."""
    placeholder = '"DEEP"'
    if where == "beside":
        body = retell.event_body("call_ended", retell.call_object(call_id, "agent_abc123"), extra="DEEP")
    elif where == "metadata":
        body = _call_ended(call_id, metadata={"deep": "DEEP"})
    else:
        body = _call_ended(call_id, **{where: "DEEP"})
    return body.replace(placeholder.encode(), ("[" * 990 + "1" + "]" * 990).encode())


# (what, body, the call field whose note the receipt carries)
FOUND = [
    ("call_status over 32 characters", lambda c: _call_ended(c, call_status="ended_" + "x" * 60), "status"),
    ("NUL in the transcript", lambda c: _call_ended(c, transcript="Agent: Guten\x00 Tag"), "transcript"),
    ("start timestamp out of range", lambda c: _call_ended(c, start_timestamp=10**300), "started_at"),
    ("end timestamp out of range", lambda c: _call_ended(c, end_timestamp=10**20), "ended_at"),
    ("negative timestamp out of range", lambda c: _call_ended(c, start_timestamp=-(10**17)), "started_at"),
    ("metadata nested 990 deep", lambda c: _deep_body(c, "metadata"), "metadata"),
    ("transcript_object nested 990 deep", lambda c: _deep_body(c, "transcript_object"), "transcript_turns"),
    ("a key beside the call nested 990 deep", lambda c: _deep_body(c, "beside"), None),
    ("metadata that is not an object", lambda c: _call_ended(c, metadata=[1, 2]), "metadata"),
    ("call_status that is not text", lambda c: _call_ended(c, call_status={"s": 1}), "status"),
    ("invalid recording_url", lambda c: _call_ended(c, recording_url="not a url"), "recording_url"),
    ("over-long recording_url", lambda c: _call_ended(c, recording_url="https://r.test/" + "a" * 3000),
     "recording_url"),
    ("NUL in from_number", lambda c: _call_ended(c, from_number="+49\x00151"), "from_number"),
    ("over-long disconnection_reason", lambda c: _call_ended(c, disconnection_reason="x" * 100),
     "disconnection_reason"),
    ("duration_ms out of range", lambda c: _call_ended(c, duration_ms=2**63), "duration_ms"),
    ("negative duration_ms", lambda c: _call_ended(c, duration_ms=-5), "duration_ms"),
    ("NUL in metadata keys and values", lambda c: _call_ended(c, metadata={"k\x00": "v\x00"}), "metadata"),
    ("NUL in a dynamic variable", lambda c: _call_ended(c, retell_llm_dynamic_variables={"name": "E\x00"}),
     "dynamic_variables"),
    ("NUL in the call analysis", lambda c: _call_ended(c, call_analysis={"call_summary": "\x00"}), "analysis"),
]


@pytest.fixture
def backend(retell_agent, fake_backend, settings):
    settings.DELIVERY_CIRCUIT_FAILURES = 1000
    company = retell_agent.company
    company.backend_url, company.backend_api_key = fake_backend.url, "backend-key-alpha"
    company.save()
    return fake_backend


@pytest.mark.parametrize(("what", "make", "field"), FOUND, ids=[f[0] for f in FOUND])
def test_a_call_ended_with_a_bad_field_is_processed_and_forwarded(client, backend, celery_eager, what, make, field):
    # given: a signed call_ended carrying the flaw
    body = make("call_flaw")

    # when: Retell sends it
    response = client.post(URL, data=body, content_type="application/json", **retell.headers(body, RETELL_KEY))

    # then: it is accepted and processed: the call is recorded and forwarded, the flaw noted
    assert response.status_code == 204
    receipt = WebhookReceipt.objects.get(call_id="call_flaw")
    assert receipt.status == Status.PROCESSED, (receipt.error_code, receipt.error_message)
    call = Call.objects.get(call_id="call_flaw")
    assert (call.last_event, call.to_number) == ("call_ended", "+493083793369")  # the rest of the event applied
    assert Delivery.objects.filter(kind=Delivery.Kind.CALL_RECORD, idempotency_key="call_record:call_flaw").exists()
    if field is not None:
        assert any(note.startswith(f"call.{field}:") for note in receipt.notes), receipt.notes


def test_a_cleaned_value_keeps_what_could_be_kept(retell_agent):
    payload = retell.call_object("call_kept", "agent_abc123", call_status="ended_" + "x" * 60,
                                 transcript="Agent: Guten\x00 Tag", start_timestamp=10**300)

    notes: list[str] = []
    call = call_apply_event(company=retell_agent.company, event="call_ended", call_payload=payload, notes=notes)

    call.refresh_from_db()
    assert call.status == ("ended_" + "x" * 60)[:32]
    assert call.transcript == "Agent: Guten Tag"
    assert call.started_at is None and call.ended_at is not None
    assert sorted(notes) == ["call.started_at: out of range, dropped",
                             "call.status: cut to 32 characters", "call.transcript: NUL characters removed"]


# --- ElevenLabs ------------------------------------------------------------------------
def _transcription(conversation_id: str = "conv_1", *, metadata=None, turns=None, variables=None,
                   analysis=None) -> bytes:
    return json.dumps({"type": "post_call_transcription", "data": {
        "agent_id": "el_agent", "conversation_id": conversation_id, "status": "done",
        "transcript": turns if turns is not None else [{"role": "agent", "message": "Guten Tag!"}],
        "metadata": {"start_time_unix_secs": 1763800000, "call_duration_secs": 42, **(metadata or {})},
        "analysis": analysis or {"call_successful": "success"},
        "conversation_initiation_client_data": {"dynamic_variables": variables or {}}}}).encode()


EL_FOUND = [
    ("start time out of range", _transcription(metadata={"start_time_unix_secs": 10**300})),
    ("duration out of range", _transcription(metadata={"call_duration_secs": 10**300})),
    ("negative duration", _transcription(metadata={"call_duration_secs": -3})),
    ("duration beyond a double in milliseconds", _transcription(metadata={"call_duration_secs": -1e308})),
    ("NUL in a transcript message", _transcription(turns=[{"role": "user", "message": "Hallo\x00"}])),
    ("analysis nested 990 deep", _transcription(analysis={"x": "DEEP"}).replace(
        b'"DEEP"', b"[" * 990 + b"1" + b"]" * 990)),
    ("NUL in the call_id variable", _transcription(variables={"call_id": "call\x00_1"})),
    ("a transcript that is not a list of turns", _transcription(turns=[["x"], 3, None])),
]


@pytest.mark.parametrize(("what", "body"), EL_FOUND, ids=[f[0] for f in EL_FOUND])
def test_an_elevenlabs_transcription_with_a_bad_field_is_attached(client, company_a, celery_eager, what, body):
    company_a.elevenlabs_api_key = EL_KEY
    company_a.save()

    response = client.post(EL_URL, data=body, content_type="application/json", HTTP_X_API_KEY=EL_KEY)

    assert response.status_code == 200
    receipt = WebhookReceipt.objects.get(call_id="conv_1")
    assert receipt.status == Status.PROCESSED, (receipt.error_code, receipt.error_message)
    assert Call.objects.get(company=company_a).attachments["elevenlabs"]["conversation_id"] == "conv_1"


# --- Bounded retries, visible failures --------------------------------------------------
def _verified_receipt(company, call_id: str, **fields) -> WebhookReceipt:
    body = _call_ended(call_id)
    return WebhookReceipt.objects.create(**{
        "provider": "retell", "company": company, "endpoint": URL, "body": body, "kind": "event",
        "event_type": "call_ended", "call_id": call_id, "dedupe_key": f"call_ended:{call_id}",
        "status": Status.VERIFIED, "received_at": timezone.now() - timedelta(minutes=5), **fields})


def test_a_receipt_whose_tries_are_spent_is_given_up_with_its_reason_and_not_run_again(retell_agent, settings):
    # given: a receipt whose every try was started and none finished (a worker killed each time)
    receipt = _verified_receipt(retell_agent.company, "call_spent", attempts=settings.RECEIPT_MAX_ATTEMPTS)

    # when: the sweeper finds it
    receipts_sweep()

    # then: it is not run again; it is failed for good, saying why
    receipt.refresh_from_db()
    assert not Call.objects.exists()
    assert (receipt.status, receipt.next_attempt_at, receipt.attempts) == (
        Status.FAILED, None, settings.RECEIPT_MAX_ATTEMPTS)
    assert receipt.error_code == "tries_spent" and str(settings.RECEIPT_MAX_ATTEMPTS) in receipt.error_message


def test_a_try_is_counted_before_it_runs_so_crashes_count(retell_agent, settings):
    # given: a receipt whose earlier tries never finished, one short of the limit
    receipt = _verified_receipt(retell_agent.company, "call_once_more", attempts=settings.RECEIPT_MAX_ATTEMPTS - 1)

    # when: the sweeper runs it, and it succeeds
    receipts_sweep()

    # then: the try it made is counted, within the limit
    receipt.refresh_from_db()
    assert (receipt.status, receipt.attempts) == (Status.PROCESSED, settings.RECEIPT_MAX_ATTEMPTS)


def test_health_reports_failed_receipts_without_turning_503(client, retell_agent):
    # given: one receipt given up an hour ago, one failed and due again
    spent = _verified_receipt(retell_agent.company, "call_a", status=Status.FAILED, attempts=8)
    WebhookReceipt.objects.filter(pk=spent.pk).update(received_at=timezone.now() - timedelta(hours=1))
    _verified_receipt(retell_agent.company, "call_b", status=Status.FAILED, attempts=2,
                      next_attempt_at=timezone.now() + timedelta(minutes=1))
    _verified_receipt(retell_agent.company, "call_c", status=Status.PROCESSED)

    response = client.get("/health")

    assert response.status_code == 200
    receipts = response.json()["receipts"]
    assert (receipts["failed"], receipts["given_up"]) == (2, 1)
    assert 3590 <= receipts["oldest_failed_age_s"] <= 3700


def test_the_receipts_admin_lists_those_needing_attention(client, retell_agent):
    from tests.factories import make_member

    spent = _verified_receipt(retell_agent.company, "call_spent", status=Status.FAILED, attempts=8)
    retrying = _verified_receipt(retell_agent.company, "call_retry", status=Status.FAILED, attempts=2,
                                 next_attempt_at=timezone.now() + timedelta(minutes=1))
    cleaned = _verified_receipt(retell_agent.company, "call_clean", status=Status.PROCESSED,
                                notes=["call.transcript: NUL characters removed"])
    _verified_receipt(retell_agent.company, "call_fine", status=Status.PROCESSED)
    client.force_login(make_member(retell_agent.company, "owner"))

    def listed(attention: str) -> set[str]:
        response = client.get("/admin/audit/webhookreceipt/", {"attention": attention})
        assert response.status_code == 200
        return {r.call_id for r in response.context["cl"].result_list}

    assert listed("given_up") == {spent.call_id}
    assert listed("retrying") == {retrying.call_id}
    assert listed("cleaned") == {cleaned.call_id}
    assert listed("any") == {spent.call_id, retrying.call_id, cleaned.call_id}
