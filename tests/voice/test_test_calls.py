"""A testing tool's call (its Call row made first, marked with its tool) books test appointments, which
its call_ended releases, and nothing of it reaches the practice's backend."""

import json

import pytest

from appointments.models import Appointment
from audit.models import Delivery
from tests.conftest import RETELL_KEY, next_weekday_iso
from tests.fakes import retell
from voice.models import Call

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection
EVENTS_URL, FUNCTIONS_URL = "/api/retell/webhook", "/api/mcp/retell/custom-function"


def post(client, url, body: bytes):
    return client.post(url, data=body, content_type="application/json", **retell.headers(body, RETELL_KEY))


def book(client, call_id: str):
    call = retell.call_object(call_id, "agent_abc123", status="ongoing", turns=2)
    args = {"name": "Erika Muster", "date": next_weekday_iso(), "time": "10:00", "service": "Kontrolle"}
    response = post(client, FUNCTIONS_URL, json.dumps(
        {"name": "collect_appointment_information", "call": call, "args": args}).encode())
    assert response.status_code == 200 and response.json()["ok"] is True, response.content
    return Appointment.objects.get(pk=response.json()["appointment_id"])


@pytest.fixture
def backend(bookable_agent, fake_backend, settings):
    company = bookable_agent.company
    company.backend_url, company.backend_api_key = fake_backend.url, "backend-key-alpha"
    company.save()
    return fake_backend


def test_given_a_tester_call_when_it_books_and_ends_then_the_test_appointment_is_released_and_nothing_forwarded(
        client, bookable_agent, backend, celery_eager):
    Call.objects.create(company=bookable_agent.company, call_id="test_call_1",
                        test_origin=Call.TestOrigin.WEBHOOK_TESTER)

    appointment = book(client, "test_call_1")
    assert appointment.is_test is True

    ended = post(client, EVENTS_URL, retell.event_body("call_ended", retell.call_object("test_call_1", "agent_abc123")))

    assert ended.status_code in (200, 204)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED
    assert Delivery.objects.count() == 0
    call = Call.objects.get(call_id="test_call_1")
    assert call.test_origin == Call.TestOrigin.WEBHOOK_TESTER and call.is_test


def test_given_a_real_call_when_it_books_and_ends_then_it_is_confirmed_and_forwarded(
        client, bookable_agent, backend, celery_eager):
    appointment = book(client, "real_call_1")
    assert appointment.is_test is False

    post(client, EVENTS_URL, retell.event_body("call_ended", retell.call_object("real_call_1", "agent_abc123")))

    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CONFIRMED
    assert Delivery.objects.count() == 2  # the confirmation and the call record
    assert Call.objects.get(call_id="real_call_1").test_origin == ""


def test_a_test_mark_in_the_payload_makes_no_test_call(client, bookable_agent, backend):
    """The mark comes from this server's own Call row, never from what a payload claims."""
    call = retell.call_object("real_call_2", "agent_abc123", status="ongoing", turns=2)
    call["metadata"] = {"test": True, "test_origin": "webhook_tester"}
    args = {"name": "Erika Muster", "date": next_weekday_iso(), "time": "11:00", "service": "Kontrolle"}
    response = post(client, FUNCTIONS_URL, json.dumps(
        {"name": "collect_appointment_information", "call": call, "args": args}).encode())

    assert Appointment.objects.get(pk=response.json()["appointment_id"]).is_test is False


@pytest.mark.parametrize("function, extra", [
    ("cancel_appointment", {}),
    ("change_appointment_details", {"new_date": next_weekday_iso(), "new_time": "12:00"}),
])
def test_a_test_call_cannot_move_or_cancel_a_real_appointment(client, bookable_agent, function, extra):
    real = book(client, "real_call_3")
    Call.objects.create(company=bookable_agent.company, call_id="test_call_3",
                        test_origin=Call.TestOrigin.CALL_SIMULATOR)
    call = retell.call_object("test_call_3", "agent_abc123", status="ongoing", turns=2)  # the same caller number
    args = {"name": "Erika Muster", "date": next_weekday_iso(), "current_date": next_weekday_iso(), **extra}

    response = post(client, FUNCTIONS_URL, json.dumps({"name": function, "call": call, "args": args}).encode())

    assert response.json()["ok"] is False
    real.refresh_from_db()
    assert (real.status, real.start) == (Appointment.Status.PENDING, real.start)
    assert Appointment.objects.filter(is_test=True).count() == 0
