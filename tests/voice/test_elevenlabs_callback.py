"""POST /api/elevenlabs/callback: X-API-Key, ElevenLabs-Signature when a secret is set, transcripts attached."""

import hashlib
import hmac
import json
import time

import pytest

from audit.models import WebhookReceipt
from tests.fakes import retell
from voice.models import Call
from voice.services import call_apply_event

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection
URL = "/api/elevenlabs/callback"
EL_KEY, EL_SECRET = "el-key-alpha-1234567890", "wsec_alpha_secret"


def transcription(conversation_id: str = "conv_1", **variables) -> bytes:
    return json.dumps({"type": "post_call_transcription", "event_timestamp": int(time.time()), "data": {
        "agent_id": "el_agent", "conversation_id": conversation_id, "status": "done",
        "transcript": [{"role": "agent", "message": "Guten Tag!", "time_in_call_secs": 0},
                       {"role": "user", "message": "Einen Termin bitte.", "time_in_call_secs": 3}],
        "metadata": {"start_time_unix_secs": 1763800000, "call_duration_secs": 42, "termination_reason": "end"},
        "analysis": {"call_successful": "success", "transcript_summary": "Wants an appointment."},
        "conversation_initiation_client_data": {"dynamic_variables": variables}}}).encode()


def el_signature(body: bytes, secret: str, at: int | None = None) -> str:
    # ElevenLabs' scheme (shared/reference/twilio_elevenlabs.md B4), computed here independently.
    at = at if at is not None else int(time.time())
    return f"t={at},v0=" + hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()


def post(client, body: bytes, query: str = "", **headers):
    return client.post(URL + query, data=body, content_type="application/json", **headers)


@pytest.fixture
def el_company(company_a):
    company_a.elevenlabs_api_key = EL_KEY
    company_a.save()
    return company_a


def test_a_transcription_with_the_right_key_is_attached_to_its_call(client, el_company, celery_eager):
    call_apply_event(company=el_company, event="call_ended", call_payload=retell.call_object("call_77", "agent_x"))

    response = post(client, transcription(call_id="call_77"), HTTP_X_API_KEY=EL_KEY)

    assert response.status_code == 200
    call = Call.objects.get()
    assert call.attachments["elevenlabs"]["conversation_id"] == "conv_1"
    assert call.attachments["elevenlabs"]["analysis"]["transcript_summary"] == "Wants an appointment."
    assert call.transcript.startswith("Agent: Guten Tag")  # Retell's own transcript is kept
    receipt = WebhookReceipt.objects.get()
    assert receipt.status == "processed" and receipt.headers["X-Api-Key"] == "[redacted]"


def test_a_transcription_of_an_unknown_call_makes_one(client, el_company, celery_eager):
    post(client, transcription(), HTTP_X_API_KEY=EL_KEY)

    call = Call.objects.get()
    assert (call.call_id, call.source, call.duration_ms) == ("conv_1", "elevenlabs", 42_000)
    assert call.transcript == "Agent: Guten Tag!\nUser: Einen Termin bitte."


@pytest.mark.parametrize("headers, code", [({}, "api_key_missing"),
                                           ({"HTTP_X_API_KEY": "wrong"}, "api_key_invalid")])
def test_a_missing_or_wrong_key_answers_401(client, el_company, headers, code):
    response = post(client, transcription(), **headers)

    assert response.status_code == 401 and response.json()["error"]["code"] == code
    assert WebhookReceipt.objects.get().status == "rejected"


def test_the_company_can_be_named_and_then_its_key_is_required(client, el_company):
    assert post(client, transcription(), "?company=alpha", HTTP_X_API_KEY=EL_KEY).status_code == 200
    assert post(client, transcription(), "?company=alpha", HTTP_X_API_KEY="wrong").status_code == 401
    assert post(client, transcription(), "?company=nobody", HTTP_X_API_KEY=EL_KEY).status_code == 404


@pytest.fixture
def signing_company(el_company):
    el_company.elevenlabs_webhook_secret = EL_SECRET
    el_company.save()
    return el_company


def test_with_a_secret_a_valid_signature_is_enough(client, signing_company):
    body = transcription()

    response = post(client, body, "?company=alpha", HTTP_ELEVENLABS_SIGNATURE=el_signature(body, EL_SECRET))

    assert response.status_code == 200
    assert WebhookReceipt.objects.get().status == "verified"


@pytest.mark.parametrize("case", ["missing", "wrong_secret", "tampered", "stale"])
def test_with_a_secret_a_bad_signature_answers_401_even_with_the_right_key(client, signing_company, case):
    body = transcription()
    signature = {"missing": None, "wrong_secret": el_signature(body, "other"),
                 "tampered": el_signature(body + b" ", EL_SECRET),
                 "stale": el_signature(body, EL_SECRET, at=int(time.time()) - 3600)}[case]
    headers = {"HTTP_X_API_KEY": EL_KEY}
    if signature:
        headers["HTTP_ELEVENLABS_SIGNATURE"] = signature

    response = post(client, body, **headers)

    assert response.status_code == 401 and response.json()["error"]["code"].startswith("signature_")


def test_other_callback_types_are_stored_and_ignored(client, el_company):
    body = json.dumps({"type": "post_call_audio", "data": {"conversation_id": "conv_1"}}).encode()

    response = post(client, body, HTTP_X_API_KEY=EL_KEY)

    assert response.status_code == 200 and response.json() == {"status": "ignored"}
    assert WebhookReceipt.objects.get().status == "ignored"


def test_a_repeated_transcription_is_a_duplicate(client, el_company):
    body = transcription()
    post(client, body, HTTP_X_API_KEY=EL_KEY)
    post(client, body, HTTP_X_API_KEY=EL_KEY)

    assert sorted(WebhookReceipt.objects.values_list("status", flat=True)) == ["duplicate", "verified"]
