"""A call through the endpoints: custom functions book, call_ended confirms and forwards."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from appointments.models import Appointment
from audit.models import ActivityLogEntry, Delivery, WebhookReceipt
from tests.conftest import RETELL_KEY, next_weekday_iso
from tests.fakes import retell
from voice.models import Call
from voice.services import receipts_sweep

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection
EVENTS_URL, FUNCTIONS_URL = "/api/retell/webhook", "/api/mcp/retell/custom-function"


def post(client, url, body: bytes, key: str = RETELL_KEY, **extra):
    return client.post(url, data=body, content_type="application/json", **retell.headers(body, key), **extra)


def booking_body(call_id: str = "call_1", agent_id: str = "agent_abc123") -> bytes:
    call = retell.call_object(call_id, agent_id, status="ongoing", turns=2)
    args = {"name": "Erika Muster", "date": next_weekday_iso(), "time": "10:00", "service": "Kontrolle"}
    return json.dumps({"name": "collect_appointment_information", "call": call, "args": args}).encode()


@pytest.fixture
def backend(bookable_agent, fake_backend, settings):
    settings.DELIVERY_CIRCUIT_FAILURES = 1000
    company = bookable_agent.company
    company.backend_url, company.backend_api_key = fake_backend.url, "backend-key-alpha"
    company.save()
    return fake_backend


def test_a_function_call_books_a_pending_appointment_and_answers_the_agent(client, bookable_agent):
    response = post(client, FUNCTIONS_URL, booking_body())

    assert response.status_code == 200
    result = response.json()
    assert result["ok"] is True and "message" in result
    appointment = Appointment.objects.get(pk=result["appointment_id"])
    assert (appointment.status, appointment.call_id, appointment.phone) == ("pending", "call_1", "+4915112345678")
    receipt = WebhookReceipt.objects.get()
    assert (receipt.kind, receipt.event_type, receipt.status) == ("function", "collect_appointment_information",
                                                                  "processed")


def test_a_retried_function_call_books_once(client, bookable_agent):
    body = booking_body()
    first, second = post(client, FUNCTIONS_URL, body), post(client, FUNCTIONS_URL, body)

    assert first.json() == second.json()
    assert Appointment.objects.count() == 1


def test_bare_args_name_the_function_and_agent_in_the_query(client, bookable_agent):
    body = json.dumps({"date": next_weekday_iso()}).encode()

    response = post(client, FUNCTIONS_URL + "?function=check_availability&agent_id=agent_abc123&call_id=call_9", body)

    assert response.status_code == 200 and response.json()["ok"] in (True, False)
    assert WebhookReceipt.objects.get().call_id == "call_9"


def test_bare_args_claiming_another_companys_agent_fail_its_signature(client, bookable_agent, company_b):
    from retell_config.models import Agent

    company_b.retell_api_key = "key_of_company_b"
    company_b.save()
    Agent.objects.create(company=company_b, agent_id="agent_b", name="B")
    body = json.dumps({"date": next_weekday_iso()}).encode()

    response = post(client, FUNCTIONS_URL + "?function=check_availability&agent_id=agent_b", body)  # A's key

    assert response.status_code == 401
    assert WebhookReceipt.objects.get().company == company_b


def test_an_unknown_function_answers_400(client, bookable_agent):
    body = json.dumps({"name": "order_pizza", "call": retell.call_object("call_1", "agent_abc123"),
                       "args": {}}).encode()

    response = post(client, FUNCTIONS_URL, body)

    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_function"


def test_invalid_arguments_get_a_speakable_answer(client, bookable_agent):
    body = json.dumps({"name": "collect_appointment_information",
                       "call": retell.call_object("call_1", "agent_abc123"), "args": {"name": "Erika"}}).encode()

    response = post(client, FUNCTIONS_URL, body)

    assert response.status_code == 200
    assert response.json()["ok"] is False and response.json()["message"]
    assert not Appointment.objects.exists()


def test_call_ended_confirms_the_booking_and_forwards_the_confirmation_and_the_call_record(
        client, backend, celery_eager):
    appointment_id = post(client, FUNCTIONS_URL, booking_body()).json()["appointment_id"]
    ended = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"))

    assert post(client, EVENTS_URL, ended).status_code == 204

    appointment = Appointment.objects.get(pk=appointment_id)
    assert appointment.status == "confirmed" and appointment.confirmed_at is not None
    confirm = backend.answered(200, "/api/appointments/confirm")
    record = backend.answered(200, "/api/calls/record")
    assert [r.body for r in confirm] == [{
        "appointment_id": str(appointment_id), "tenant_id": "alpha", "patient_id": "+4915112345678",
        "confirmed": True, "confirmed_at": appointment.confirmed_at.isoformat().replace("+00:00", "Z")}]
    [record] = record
    assert record.body["call_id"] == "call_1" and record.body["tenant_id"] == "alpha"
    assert record.body["phone_number"] == "+4915112345678" and record.body["duration"] == 95
    assert record.body["call_type"] == "appointment_booking" and record.body["outcome"] == "appointment_booked"
    assert record.body["transcript"].startswith("Agent: Guten Tag")
    assert record.headers["Authorization"] == "Bearer backend-key-alpha"
    assert WebhookReceipt.objects.get(event_type="call_ended").status == "processed"
    lines = list(ActivityLogEntry.objects.filter(data__call_id="call_1").order_by("pk").values_list("message", flat=True))
    for expected in ["Webhook received: call_ended", "Signature verified ✓", "Call ID: call_1",
                     "Custom function data found ✓", "Creating appointment...",
                     f"Appointment created: #{appointment_id} ✓", f"Appointment confirmed: #{appointment_id} ✓",
                     "Webhook processed successfully"]:
        assert expected in lines, expected


def test_events_in_reverse_order_through_the_endpoint_give_the_same_call(
        client, backend, celery_eager):
    def lifecycle(call_id):
        return [retell.event_body("call_started", retell.call_object(call_id, "agent_abc123", status="ongoing",
                                                                     turns=0, transcript="")),
                retell.event_body("call_ended", retell.call_object(call_id, "agent_abc123")),
                retell.event_body("call_analyzed", retell.call_object(call_id, "agent_abc123",
                                                                      call_analysis={"call_successful": True}))]

    for body in lifecycle("call_fwd"):
        post(client, EVENTS_URL, body)
    for body in reversed(lifecycle("call_rev")):
        post(client, EVENTS_URL, body)

    fields = ["status", "started_at", "ended_at", "duration_ms", "transcript", "analysis", "last_event", "events",
              "disconnection_reason", "agent_id"]
    forward, backward = (Call.objects.values(*fields).get(call_id=c) for c in ("call_fwd", "call_rev"))
    assert forward == backward and forward["last_event"] == "call_analyzed"
    assert len(backend.answered(200, "/api/calls/record")) == 2


def test_with_the_broker_down_the_event_is_stored_acknowledged_and_the_sweeper_processes_it(
        client, bookable_agent, broker_down):
    body = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"))

    response = post(client, EVENTS_URL, body)

    assert response.status_code == 204
    assert WebhookReceipt.objects.get().status == "verified" and not Call.objects.exists()

    receipts_sweep(now=timezone.now() + timedelta(minutes=1))

    assert WebhookReceipt.objects.get().status == "processed"
    assert Call.objects.get().status == "ended"


def test_a_receipt_no_retry_can_mend_is_given_up_at_once_with_its_reason(client, bookable_agent, celery_eager,
                                                                         company_b):
    from voice.services import call_apply_event

    # The call id already belongs to another company: processing fails, and no retry can mend it.
    call_apply_event(company=company_b, event="call_started", call_payload=retell.call_object("call_1", "x"))
    body = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"))

    post(client, EVENTS_URL, body)

    receipt = WebhookReceipt.objects.get(call_id="call_1")
    assert receipt.status == "failed" and receipt.error_code == "CallOfAnotherCompany"
    assert (receipt.attempts, receipt.next_attempt_at) == (1, None)
    assert receipt.error_message.startswith("Given up after 1 try: ") and "another company" in receipt.error_message
    assert Delivery.objects.count() == 0
    assert ActivityLogEntry.objects.filter(kind="webhook.failed", level="error").exists()
    assert ActivityLogEntry.objects.filter(kind="webhook.given_up", level="error").exists()
