"""The custom functions as the agent calls them: validated, idempotent, answering in the company's language."""

import pytest

from appointments.handlers import UnknownFunction, run_custom_function
from appointments.models import Appointment, Closure, FunctionInvocation, Service
from tests.appointments.conftest import berlin, new_york

NOW = berlin(2026, 3, 20, 9, 0)  # Friday
BOOK = {"name": "Erika Muster", "date": "Montag", "time": "10 Uhr", "service": "Kontrolle"}


def call(company, name, args, *, call_id="call_1", caller="+4915112345678", now=NOW):
    return run_custom_function(company=company, name=name, args=args, call_id=call_id, caller_number=caller, now=now)


@pytest.mark.django_db
def test_collect_books_a_pending_appointment_for_the_call_and_says_so_in_german(praxis, kontrolle):
    result = call(praxis, "collect_appointment_information", BOOK)

    assert result["ok"] is True
    assert result["message"] == ("Ich habe Ihnen den Termin am Montag, 23. März um 10 Uhr für Kontrolle "
                                 "eingetragen, auf den Namen Erika Muster.")
    appointment = Appointment.objects.get(pk=result["appointment_id"])
    assert (appointment.status, appointment.call_id, appointment.phone) == ("pending", "call_1", "+4915112345678")
    assert appointment.start == berlin(2026, 3, 23, 10, 0)
    assert result["start"] == "2026-03-23T10:00:00+01:00"


@pytest.mark.django_db
def test_the_same_call_function_and_args_twice_books_once_and_answers_the_same(praxis, kontrolle):
    first = call(praxis, "collect_appointment_information", BOOK)
    retry = call(praxis, "collect_appointment_information", dict(reversed(list(BOOK.items()))))

    assert retry == first
    assert Appointment.objects.count() == 1
    assert FunctionInvocation.objects.get().result == first


@pytest.mark.django_db
def test_another_call_with_the_same_args_is_a_new_request_and_finds_the_slot_taken(praxis, kontrolle):
    call(praxis, "collect_appointment_information", BOOK)

    other = call(praxis, "collect_appointment_information", BOOK, call_id="call_2")

    assert other["ok"] is False
    assert other["error"] == "taken"
    assert other["message"] == ("Am Montag, 23. März um 10 Uhr ist leider schon belegt. "
                                "Frei wäre um 9:15 Uhr, um 9:30 Uhr oder um 10:30 Uhr.")
    assert other["alternatives"] == ["2026-03-23T09:15:00+01:00", "2026-03-23T09:30:00+01:00",
                                     "2026-03-23T10:30:00+01:00"]
    assert Appointment.objects.count() == 1


@pytest.mark.django_db
def test_without_a_call_id_requests_are_not_deduplicated(praxis, kontrolle):
    first = call(praxis, "collect_appointment_information", BOOK, call_id=None)
    second = call(praxis, "collect_appointment_information", BOOK, call_id=None)

    assert first["ok"] is True and second["ok"] is False
    assert FunctionInvocation.objects.count() == 0


@pytest.mark.django_db
def test_missing_arguments_answer_a_short_speakable_error(praxis, kontrolle):
    result = call(praxis, "collect_appointment_information", {"name": "Erika"})

    assert result == {"ok": False, "error": "invalid_arguments", "fields": ["date", "time"],
                      "message": "Mir fehlen noch Angaben: das Datum und die Uhrzeit."}
    assert Appointment.objects.count() == 0


@pytest.mark.django_db
def test_arguments_of_the_wrong_type_are_invalid_not_a_crash(dental, cleaning):
    result = call(dental, "check_availability", {"date": 20260324})

    assert result["ok"] is False
    assert result["error"] == "invalid_arguments"
    assert result["message"] == "I still need the date."


def test_an_unknown_function_raises(praxis):
    with pytest.raises(UnknownFunction):
        call(praxis, "order_pizza", {})


@pytest.mark.django_db
def test_english_company_gets_english_answers_and_new_york_times(dental, cleaning):
    result = call(dental, "collect_appointment_information",
                  {"name": "John Smith", "date": "next Tuesday", "time": "3 pm", "phone": "(212) 555-0199"},
                  caller="+12125550100", now=new_york(2026, 3, 20, 9, 0))

    assert result["ok"] is True
    assert result["message"] == ("I have booked you in for Tuesday, March 24 at 3 PM for a cleaning, "
                                 "under the name John Smith.")
    appointment = Appointment.objects.get(pk=result["appointment_id"])
    assert appointment.start == new_york(2026, 3, 24, 15, 0)
    assert appointment.phone == "+12125550199"


@pytest.mark.django_db
def test_a_closure_is_refused_with_a_speakable_reason_and_alternatives(praxis, kontrolle):
    Closure.objects.create(company=praxis, first_day=berlin(2026, 3, 23, 0).date(),
                           last_day=berlin(2026, 3, 23, 0).date(), reason="Fortbildung")

    result = call(praxis, "collect_appointment_information", BOOK)

    assert result["ok"] is False
    assert result["error"] == "closed"
    assert result["message"].startswith("Am Montag, 23. März haben wir geschlossen (Fortbildung). Frei wäre am "
                                        "Dienstag, 24. März um 8 Uhr")


@pytest.mark.django_db
def test_outside_opening_hours_is_refused_in_english_with_alternatives(dental, cleaning):
    result = call(dental, "collect_appointment_information", {"name": "Jo", "date": "Monday", "time": "7 am"},
                  now=new_york(2026, 3, 20, 9, 0))

    assert result["error"] == "outside_hours"
    assert result["message"] == ("We are not open at 7 AM on Monday, March 23. "
                                 "I could offer at 8 AM, at 8:15 AM or at 8:30 AM.")


@pytest.mark.django_db
def test_a_part_of_the_day_without_a_time_asks_for_the_time_with_free_times(praxis, kontrolle):
    result = call(praxis, "collect_appointment_information", {**BOOK, "date": "Montag", "time": "nachmittags"})

    assert result["error"] == "time_needed"
    assert result["message"].startswith("Um wie viel Uhr möchten Sie kommen? Am Montag, 23. März ist frei um 12 Uhr")
    assert Appointment.objects.count() == 0


@pytest.mark.django_db
def test_several_services_and_none_named_asks_which(praxis, kontrolle):
    Service.objects.create(company=praxis, name="Zahnreinigung", duration_minutes=60)

    result = call(praxis, "collect_appointment_information", {k: v for k, v in BOOK.items() if k != "service"})

    assert result["error"] == "service_needed"
    assert result["message"] == "Welche Behandlung möchten Sie: Kontrolle oder Zahnreinigung?"


@pytest.mark.django_db
def test_check_availability_of_a_time_and_of_a_day(praxis, kontrolle):
    call(praxis, "collect_appointment_information", BOOK)

    taken = call(praxis, "check_availability", {"date": "Montag", "time": "10:00"}, call_id="call_2")
    free = call(praxis, "check_availability", {"date": "Montag", "time": "11:00"}, call_id="call_2")
    day = call(praxis, "check_availability", {"date": "Samstag"}, call_id="call_2")

    assert (taken["ok"], taken["available"], taken["reason"]) == (True, False, "taken")
    assert free["message"] == "Am Montag, 23. März um 11 Uhr ist noch frei."
    assert (day["available"], day["reason"]) == (False, "closed")
    assert day["message"].startswith("Am Samstag, 21. März haben wir geschlossen. Frei wäre am Montag, 23. März um 8 Uhr")


@pytest.mark.django_db
def test_change_finds_the_callers_appointment_by_their_number_and_moves_it(praxis, kontrolle):
    booked = call(praxis, "collect_appointment_information", BOOK)

    moved = call(praxis, "change_appointment_details", {"new_date": "Dienstag", "new_time": "halb drei"},
                 call_id="call_2")

    assert moved["ok"] is True
    assert moved["message"] == "Ich habe Ihren Termin auf Dienstag, 24. März um 14:30 Uhr verlegt."
    assert moved["previous_appointment_id"] == booked["appointment_id"]
    assert Appointment.objects.get(pk=booked["appointment_id"]).status == "rescheduled"


@pytest.mark.django_db
def test_change_with_several_appointments_asks_which_then_uses_the_date(praxis, kontrolle):
    call(praxis, "collect_appointment_information", BOOK)
    call(praxis, "collect_appointment_information", {**BOOK, "date": "Mittwoch"})

    unclear = call(praxis, "change_appointment_details", {"new_date": "Freitag", "new_time": "9 Uhr"}, call_id="c2")
    moved = call(praxis, "change_appointment_details",
                 {"current_date": "Mittwoch", "new_date": "Freitag", "new_time": "9 Uhr"}, call_id="c2")

    assert unclear["error"] == "ambiguous"
    assert "Montag, 23. März um 10 Uhr oder Mittwoch, 25. März um 10 Uhr" in unclear["message"]
    assert moved["start"] == "2026-03-27T09:00:00+01:00"


@pytest.mark.django_db
def test_cancel_by_name_when_the_caller_calls_from_another_number(praxis, kontrolle):
    booked = call(praxis, "collect_appointment_information", BOOK)

    result = call(praxis, "cancel_appointment", {"name": "Erika Muster"}, call_id="call_2", caller="+493099999999")

    assert result["ok"] is True
    assert result["message"] == "Ihr Termin am Montag, 23. März um 10 Uhr ist storniert."
    assert Appointment.objects.get(pk=booked["appointment_id"]).status == "cancelled"


@pytest.mark.django_db
def test_cancel_finds_nothing_for_a_stranger(praxis, kontrolle):
    call(praxis, "collect_appointment_information", BOOK)

    result = call(praxis, "cancel_appointment", {}, call_id="call_2", caller="+493099999999")

    assert result == {"ok": False, "error": "not_found",
                      "message": "Ich finde leider keinen anstehenden Termin unter Ihrer Telefonnummer."}


@pytest.mark.django_db
def test_appointments_of_another_company_are_never_found(praxis, kontrolle, dental):
    call(praxis, "collect_appointment_information", BOOK)

    result = call(dental, "cancel_appointment", {"name": "Erika Muster"}, call_id="call_2")

    assert result["error"] == "not_found"
    assert Appointment.objects.get().status == "pending"


@pytest.mark.django_db
def test_booking_writes_the_activity_lines_of_the_debug_console(praxis, kontrolle):
    from audit.models import ActivityLogEntry

    booked = call(praxis, "collect_appointment_information", BOOK)
    call(praxis, "collect_appointment_information", BOOK, call_id="call_2")

    lines = list(ActivityLogEntry.objects.filter(company=praxis).order_by("pk").values_list("message", flat=True))
    assert lines == ["Creating appointment...", f"Appointment created: #{booked['appointment_id']} ✓",
                     "Creating appointment...", "Appointment not created: taken; 3 alternatives offered"]


@pytest.mark.django_db
def test_a_past_day_without_a_time_is_refused_as_past(praxis, kontrolle):
    result = call(praxis, "collect_appointment_information", {**BOOK, "date": "2026-03-19", "time": "vormittags"})

    assert result["error"] == "past"
    # "now" is Friday 9:00; the nearest starts from then on are offered.
    assert result["message"] == ("Dieser Zeitpunkt liegt leider schon in der Vergangenheit. "
                                 "Frei wäre um 9:15 Uhr, um 9:30 Uhr oder um 9:45 Uhr.")


@pytest.mark.django_db
def test_a_fully_closed_fortnight_says_nothing_is_free(praxis, kontrolle, settings):
    settings.APPOINTMENT_SEARCH_DAYS = 5
    Closure.objects.create(company=praxis, first_day=berlin(2026, 3, 20, 0).date(),
                           last_day=berlin(2026, 3, 31, 0).date(), reason="Umbau")

    result = call(praxis, "collect_appointment_information", BOOK)

    assert result["message"] == ("Am Montag, 23. März haben wir geschlossen (Umbau). "
                                 "In den nächsten 5 Tagen ist leider nichts mehr frei.")
    assert result["alternatives"] == []
