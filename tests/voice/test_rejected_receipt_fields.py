"""A refused request whose body could be read keeps what it named on its receipt: kind, event
(or function) and call id, so the receipts list says what was refused, not "-"."""

import json

import pytest

from audit.models import WebhookReceipt
from tests.conftest import RETELL_KEY
from tests.fakes import retell

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection


def post(client, url, body: bytes, **extra):
    return client.post(url, data=body, content_type="application/json", **extra)


def only_receipt() -> WebhookReceipt:
    [receipt] = WebhookReceipt.objects.all()
    return receipt


def test_an_event_with_a_bad_signature_keeps_its_kind_event_and_call_id(client, retell_agent):
    body = retell.event_body("call_started", retell.call_object("call_s1", "agent_abc123", status="ongoing"))

    response = post(client, "/api/retell/webhook", body, **retell.headers(body, "another key"))

    receipt = only_receipt()
    assert response.status_code == 401
    assert (receipt.status, receipt.error_code) == ("rejected", "signature_invalid")
    assert (receipt.kind, receipt.event_type, receipt.call_id) == ("event", "call_started", "call_s1")


def test_an_event_for_an_unknown_agent_keeps_what_it_named(client, db):
    body = retell.event_body("call_ended", retell.call_object("call_u1", "agent_nobody"))

    response = post(client, "/api/retell/webhook", body, **retell.headers(body, RETELL_KEY))

    receipt = only_receipt()
    assert response.status_code == 404 and receipt.error_code == "unknown_agent"
    assert (receipt.kind, receipt.event_type, receipt.call_id) == ("event", "call_ended", "call_u1")


def test_an_unsigned_function_call_keeps_the_function_and_call(client, retell_agent):
    body = json.dumps({"name": "check_availability", "args": {"date": "morgen"},
                       "call": {"call_id": "call_f1", "agent_id": "agent_abc123"}}).encode()

    response = post(client, "/api/mcp/retell/custom-function", body)

    receipt = only_receipt()
    assert response.status_code == 401 and receipt.error_code == "signature_missing"
    assert (receipt.kind, receipt.event_type, receipt.call_id) == ("function", "check_availability", "call_f1")


def test_bare_arguments_name_the_function_and_call_from_the_query(client, db):
    response = client.post("/api/mcp/retell/custom-function?function=cancel_appointment&call_id=call_q1",
                           data=b'{"date": "morgen"}', content_type="application/json")

    receipt = only_receipt()
    assert response.status_code == 400 and receipt.error_code == "agent_missing"
    assert (receipt.kind, receipt.event_type, receipt.call_id) == ("function", "cancel_appointment", "call_q1")


def test_an_elevenlabs_callback_for_no_company_keeps_its_type_and_conversation(client, db):
    body = json.dumps({"type": "post_call_transcription", "data": {"conversation_id": "conv_e1"}}).encode()

    response = post(client, "/api/elevenlabs/callback?company=nobody", body)

    receipt = only_receipt()
    assert response.status_code == 404
    assert (receipt.kind, receipt.event_type, receipt.call_id) == ("event", "post_call_transcription", "conv_e1")


def test_an_unreadable_body_names_nothing(client, db):
    response = post(client, "/api/retell/webhook", b'{"event": "call_ended", "call": ')

    receipt = only_receipt()
    assert response.status_code == 400 and receipt.error_code == "bad_json"
    assert (receipt.kind, receipt.event_type, receipt.call_id) == ("", "", "")


def test_what_a_refused_body_names_is_fitted_to_its_columns_with_a_note(client, db):
    body = retell.event_body("call_ended", retell.call_object("call_\x00" + "x" * 300, "agent_abc123"))

    response = post(client, "/api/retell/webhook", body)

    receipt = only_receipt()
    assert response.status_code == 400 and receipt.error_code == "invalid_field"
    assert receipt.kind == "event" and receipt.event_type == "call_ended"
    assert "\x00" not in receipt.call_id and len(receipt.call_id) <= 128 and receipt.notes
