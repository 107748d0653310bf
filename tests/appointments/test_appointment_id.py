"""change_appointment_details and cancel_appointment can name the appointment by the id a result gave.

Only an active appointment of the same company booked in this call, or under the
caller's own number, can be named; anything else is answered like not_found.
"""

import pytest

from appointments.models import Appointment
from appointments.services import appointment_book
from audit.actor import Actor
from tests.appointments.conftest import WEEKDAYS_8_TO_18, berlin
from tests.appointments.test_handlers import BOOK, NOW, call
from tests.factories import make_company

MONDAY = BOOK

@pytest.mark.django_db
def test_change_by_appointment_id_moves_exactly_that_appointment(praxis, kontrolle):
    # given: two bookings of this caller (asking by number alone would be ambiguous)
    call(praxis, "collect_appointment_information", MONDAY)
    wednesday = call(praxis, "collect_appointment_information", {**BOOK, "date": "Mittwoch"})

    # when: the agent moves the one it booked by its id
    moved = call(praxis, "change_appointment_details",
                 {"appointment_id": wednesday["appointment_id"], "new_date": "Freitag", "new_time": "9 Uhr"})

    # then: that one moved
    assert moved["ok"] is True
    assert moved["previous_appointment_id"] == wednesday["appointment_id"]
    assert moved["start"] == "2026-03-27T09:00:00+01:00"


@pytest.mark.django_db
def test_an_appointment_booked_in_this_call_under_another_number_can_be_named_by_id(praxis, kontrolle):
    booked = call(praxis, "collect_appointment_information", {**BOOK, "phone": "030 5555555"})

    result = call(praxis, "cancel_appointment", {"appointment_id": booked["appointment_id"]})

    assert result["ok"] is True
    assert Appointment.objects.get(pk=booked["appointment_id"]).status == "cancelled"


@pytest.mark.django_db
def test_an_appointment_under_the_callers_own_number_can_be_named_by_id_in_a_later_call(praxis, kontrolle):
    booked = call(praxis, "collect_appointment_information", MONDAY, call_id="call_1")

    result = call(praxis, "cancel_appointment", {"appointment_id": booked["appointment_id"]}, call_id="call_2")

    assert result["ok"] is True and result["appointment_id"] == booked["appointment_id"]


@pytest.mark.django_db
def test_someone_elses_appointment_named_by_id_is_answered_like_not_found(praxis, kontrolle):
    # given: another caller's booking made in another call
    theirs = call(praxis, "collect_appointment_information", MONDAY, call_id="call_1", caller="+4915199999999")

    # when: this caller names its id
    cancel = call(praxis, "cancel_appointment", {"appointment_id": theirs["appointment_id"]}, call_id="call_2")
    move = call(praxis, "change_appointment_details",
                {"appointment_id": theirs["appointment_id"], "new_date": "Dienstag", "new_time": "9 Uhr"},
                call_id="call_2")

    # then: not found, and nothing changed
    assert cancel == {"ok": False, "error": "not_found",
                      "message": "Ich finde leider keinen anstehenden Termin unter Ihrer Telefonnummer."}
    assert move["error"] == "not_found"
    assert Appointment.objects.get().status == "pending"


@pytest.mark.django_db
def test_another_companys_appointment_named_by_id_is_answered_like_not_found(praxis, kontrolle):
    other = make_company("Praxis Anders", slug="anders", opening_hours=WEEKDAYS_8_TO_18)
    theirs = appointment_book(actor=Actor.system("test"), company=other, customer_name="Erika Muster",
                              phone="+4915112345678", call_id="call_1", start=berlin(2026, 3, 23, 10, 0), now=NOW)

    result = call(praxis, "cancel_appointment", {"appointment_id": theirs.pk})

    assert result["error"] == "not_found"
    assert Appointment.objects.get().status == "pending"


@pytest.mark.django_db
def test_cancelling_by_id_what_this_call_cancelled_answers_that_it_is_cancelled(praxis, kontrolle):
    booked = call(praxis, "collect_appointment_information", MONDAY)
    call(praxis, "cancel_appointment", {"appointment_id": booked["appointment_id"]})
    call(praxis, "check_availability", {"date": "Montag"})

    again = call(praxis, "cancel_appointment", {"appointment_id": booked["appointment_id"]})

    assert again["ok"] is True
    assert again["message"] == "Ihr Termin am Montag, 23. März um 10 Uhr ist storniert."


@pytest.mark.django_db
def test_an_appointment_id_that_is_not_a_number_is_an_invalid_argument(praxis, kontrolle):
    result = call(praxis, "cancel_appointment", {"appointment_id": "the Monday one"})

    assert (result["error"], result["fields"]) == ("invalid_arguments", ["appointment_id"])


def test_the_specs_offer_appointment_id_to_change_and_cancel():
    from appointments.function_specs import FUNCTION_SPECS

    for name in ("change_appointment_details", "cancel_appointment"):
        prop = FUNCTION_SPECS[name]["parameters"]["properties"]["appointment_id"]
        assert prop["type"] == "integer" and "appointment_id" in prop["description"]
        assert "appointment_id" not in FUNCTION_SPECS[name]["parameters"]["required"]

