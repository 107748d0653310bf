"""The found sequences through POST /api/mcp/retell/custom-function, signed as Retell signs them."""

import json
from datetime import date

import pytest

from appointments.models import Appointment
from tests.conftest import RETELL_KEY, next_weekday_iso
from tests.fakes import retell

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection
FUNCTIONS_URL = "/api/mcp/retell/custom-function"
FIRST_DAY = next_weekday_iso()
SECOND_DAY = next_weekday_iso((date.fromisoformat(FIRST_DAY) - date.today()).days + 1)


def function(client, name: str, args: dict, call_id: str = "call_1") -> dict:
    call = retell.call_object(call_id, "agent_abc123", status="ongoing", turns=2)
    body = json.dumps({"name": name, "call": call, "args": args}).encode()
    response = client.post(FUNCTIONS_URL, data=body, content_type="application/json",
                           **retell.headers(body, RETELL_KEY))
    assert response.status_code == 200
    return response.json()


def booking(day: str) -> dict:
    return {"name": "Erika Muster", "date": day, "time": "10:00", "service": "Kontrolle"}


def test_a_second_cancel_after_a_new_booking_cancels_the_new_booking(client, bookable_agent):
    # given: book, cancel, book another day, in one call
    first = function(client, "collect_appointment_information", booking(FIRST_DAY))
    function(client, "cancel_appointment", {})
    second = function(client, "collect_appointment_information", booking(SECOND_DAY))

    # when: the caller cancels again with the same empty arguments
    result = function(client, "cancel_appointment", {})

    # then: the second booking is cancelled too
    assert (result["ok"], result["appointment_id"], result["status"]) == (True, second["appointment_id"], "cancelled")
    assert set(Appointment.objects.values_list("pk", "status")) == {
        (first["appointment_id"], "cancelled"), (second["appointment_id"], "cancelled")}


def test_the_same_booking_after_a_cancel_books_again(client, bookable_agent):
    # given: a booking cancelled in the call
    first = function(client, "collect_appointment_information", booking(FIRST_DAY))
    function(client, "cancel_appointment", {})

    # when: the very same booking is asked for again
    again = function(client, "collect_appointment_information", booking(FIRST_DAY))

    # then: it is held again, as a new pending appointment
    assert again["ok"] is True and again["appointment_id"] != first["appointment_id"]
    assert Appointment.objects.get(pk=again["appointment_id"]).status == "pending"


def test_a_retry_right_after_gets_the_stored_answer_even_after_the_slot_changed(client, bookable_agent):
    # given: a free-slot answer in call_1, then call_2 books that slot
    free = function(client, "check_availability", {"date": FIRST_DAY, "time": "10:00"})
    function(client, "collect_appointment_information", booking(FIRST_DAY), call_id="call_2")

    # when: Retell retries call_1's request
    retry = function(client, "check_availability", {"date": FIRST_DAY, "time": "10:00"})

    # then: the answer of the request it retries
    assert retry == free and free["available"] is True
