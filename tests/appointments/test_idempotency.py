"""A retry of one request gets the stored answer; a new request after the call's state changed runs.

Retell retries a failed or timed-out custom function up to 2 times (120 s each by
default), and the live socket's tool calls run through the same entry point with the
call id. Only the call's latest invocation, when it is the same function with the same
arguments and younger than CUSTOM_FUNCTION_RETRY_WINDOW_SECONDS, is answered again.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from appointments.models import Appointment, FunctionInvocation
from tests.appointments.conftest import BERLIN, berlin
from tests.appointments.test_handlers import BOOK, call

MONDAY = BOOK
TUESDAY = {**BOOK, "date": "Dienstag"}


def age_invocations(seconds: float) -> None:
    """The call's invocations were made `seconds` ago (as if Retell retried that much later)."""
    FunctionInvocation.objects.update(created_at=timezone.now() - timedelta(seconds=seconds))


def statuses() -> dict[str, str]:
    return {f"{a.start.astimezone(BERLIN):%a %H:%M}": a.status for a in Appointment.objects.order_by("start", "pk")}


# --- the found sequences ---------------------------------------------------------------------
@pytest.mark.django_db
def test_a_second_cancel_after_a_new_booking_cancels_the_new_booking(praxis, kontrolle):
    # given: the caller booked Monday, cancelled it, then booked Tuesday in the same call
    call(praxis, "collect_appointment_information", MONDAY)
    call(praxis, "cancel_appointment", {})
    tuesday = call(praxis, "collect_appointment_information", TUESDAY)

    # when: they cancel again with the same (empty) arguments
    result = call(praxis, "cancel_appointment", {})

    # then: Tuesday is cancelled, and that is what the caller hears
    assert result["ok"] is True
    assert result["appointment_id"] == tuesday["appointment_id"]
    assert result["message"] == "Ihr Termin am Dienstag, 24. März um 10 Uhr ist storniert."
    assert statuses() == {"Mon 10:00": "cancelled", "Tue 10:00": "cancelled"}


@pytest.mark.django_db
def test_the_same_booking_after_a_cancel_books_again(praxis, kontrolle):
    # given: a booking the caller cancelled in this call
    first = call(praxis, "collect_appointment_information", MONDAY)
    call(praxis, "cancel_appointment", {})

    # when: they ask for the very same booking again
    again = call(praxis, "collect_appointment_information", MONDAY)

    # then: it is booked anew (a new pending appointment), not answered from the first answer
    assert again["ok"] is True
    assert again["appointment_id"] != first["appointment_id"]
    assert Appointment.objects.get(pk=again["appointment_id"]).status == "pending"
    assert Appointment.objects.get(pk=first["appointment_id"]).status == "cancelled"


@pytest.mark.django_db
def test_move_then_move_back_then_move_again_moves_each_time(praxis, kontrolle):
    # given: a booking moved to Tuesday and back to Monday in this call
    call(praxis, "collect_appointment_information", MONDAY)
    to_tuesday = {"new_date": "Dienstag", "new_time": "10 Uhr"}
    call(praxis, "change_appointment_details", to_tuesday)
    back = call(praxis, "change_appointment_details", {"new_date": "Montag", "new_time": "10 Uhr"})

    # when: the caller changes their mind once more, with the first move's arguments
    again = call(praxis, "change_appointment_details", to_tuesday)

    # then: the appointment held on Monday moves to Tuesday
    assert again["ok"] is True
    assert again["previous_appointment_id"] == back["appointment_id"]
    assert Appointment.objects.get(pk=again["appointment_id"]).start == berlin(2026, 3, 24, 10, 0)
    assert Appointment.objects.filter(status__in=Appointment.ACTIVE_STATUSES).count() == 1


@pytest.mark.django_db
def test_cancel_with_a_date_then_without_cancels_the_other_appointment(praxis, kontrolle):
    # given: two bookings in this call, Monday's cancelled by its date
    call(praxis, "collect_appointment_information", MONDAY)
    call(praxis, "collect_appointment_information", TUESDAY)
    call(praxis, "cancel_appointment", {"date": "Montag"})

    # when: the caller cancels without naming a date
    result = call(praxis, "cancel_appointment", {})

    # then: the one still held, Tuesday, is cancelled
    assert result["message"] == "Ihr Termin am Dienstag, 24. März um 10 Uhr ist storniert."
    assert statuses() == {"Mon 10:00": "cancelled", "Tue 10:00": "cancelled"}


@pytest.mark.django_db
def test_cancelling_what_this_call_already_cancelled_answers_that_it_is_cancelled(praxis, kontrolle):
    # given: the call's only booking, cancelled, then an availability check
    booked = call(praxis, "collect_appointment_information", MONDAY)
    call(praxis, "cancel_appointment", {"date": "Montag"})
    call(praxis, "check_availability", {"date": "Montag", "time": "10 Uhr"})

    # when: the caller (or the agent re-answering) cancels again
    result = call(praxis, "cancel_appointment", {})

    # then: what is so: that appointment is cancelled (not "no appointment found")
    assert result["ok"] is True
    assert result["appointment_id"] == booked["appointment_id"]
    assert result["status"] == "cancelled"
    assert result["message"] == "Ihr Termin am Montag, 23. März um 10 Uhr ist storniert."


@pytest.mark.django_db
def test_cancelling_again_what_this_call_cancelled_from_an_earlier_call_says_it_is_cancelled(praxis, kontrolle):
    # given: a booking from an earlier call, cancelled in this one, then a check
    call(praxis, "collect_appointment_information", MONDAY, call_id="call_1")
    call(praxis, "cancel_appointment", {}, call_id="call_2")
    call(praxis, "check_availability", {"date": "Montag"}, call_id="call_2")

    # when: this call cancels again
    result = call(praxis, "cancel_appointment", {}, call_id="call_2")

    # then: it hears that the appointment it cancelled is cancelled
    assert result["ok"] is True
    assert result["message"] == "Ihr Termin am Montag, 23. März um 10 Uhr ist storniert."


@pytest.mark.django_db
def test_a_stranger_cancelling_in_another_call_still_finds_nothing(praxis, kontrolle):
    # given: a booking cancelled in call_1
    call(praxis, "collect_appointment_information", MONDAY)
    call(praxis, "cancel_appointment", {})

    # when: another call, from another number, cancels
    result = call(praxis, "cancel_appointment", {}, call_id="call_2", caller="+493099999999")

    # then: nothing of call_1 is reported to it
    assert result["error"] == "not_found"


@pytest.mark.django_db
def test_rebooking_after_an_availability_check_answers_the_booking_the_call_holds(praxis, kontrolle):
    # given: a booking, then an availability check of the same slot in the same call
    booked = call(praxis, "collect_appointment_information", MONDAY)
    call(praxis, "check_availability", {"date": "Montag", "time": "10 Uhr"})

    # when: the agent sends the same booking again (a different name spelling case included)
    again = call(praxis, "collect_appointment_information", {**MONDAY, "name": "erika muster"})

    # then: the booking the call holds is the answer, as a success, and nothing new is booked
    assert again["ok"] is True
    assert again["appointment_id"] == booked["appointment_id"]
    assert again["message"] == booked["message"]
    assert Appointment.objects.count() == 1
    assert FunctionInvocation.objects.filter(name="collect_appointment_information").count() == 2


@pytest.mark.django_db
def test_the_same_slot_for_another_name_in_the_same_call_is_taken(praxis, kontrolle):
    call(praxis, "collect_appointment_information", MONDAY)
    call(praxis, "check_availability", {"date": "Montag"})

    other = call(praxis, "collect_appointment_information", {**MONDAY, "name": "Max Muster"})

    assert other["error"] == "taken"
    assert Appointment.objects.count() == 1


@pytest.mark.django_db
def test_availability_checks_between_run_each_time_and_see_the_booking(praxis, kontrolle):
    # given: an availability check, then a booking of that slot
    before = call(praxis, "check_availability", {"date": "Montag", "time": "10 Uhr"})
    call(praxis, "collect_appointment_information", MONDAY)

    # when: the same check again
    after = call(praxis, "check_availability", {"date": "Montag", "time": "10 Uhr"})

    # then: it ran again and sees the slot taken
    assert (before["available"], after["available"], after["reason"]) == (True, False, "taken")


@pytest.mark.django_db
def test_two_calls_of_the_same_caller_are_separate(praxis, kontrolle):
    # given: the caller booked in one call and cancelled in a second one
    first = call(praxis, "collect_appointment_information", MONDAY, call_id="call_1")
    call(praxis, "cancel_appointment", {}, call_id="call_2")

    # when: in the second call they book the same again, and call_1's request is retried
    second = call(praxis, "collect_appointment_information", MONDAY, call_id="call_2")
    retried = call(praxis, "collect_appointment_information", MONDAY, call_id="call_1")

    # then: call_2 booked anew; the retry of call_1 gets call_1's stored answer
    assert second["ok"] is True and second["appointment_id"] != first["appointment_id"]
    assert Appointment.objects.get(pk=second["appointment_id"]).call_id == "call_2"
    assert retried == first


# --- retries and the window ------------------------------------------------------------------
@pytest.mark.django_db
def test_a_retry_within_the_window_gets_the_stored_answer_and_is_counted(praxis, kontrolle):
    # given: a free-slot answer; then another call books that slot
    free = call(praxis, "check_availability", {"date": "Montag", "time": "10 Uhr"})
    call(praxis, "collect_appointment_information", MONDAY, call_id="call_2")
    age_invocations(359)

    # when: Retell retries the check (its third try, just inside the default window)
    retry = call(praxis, "check_availability", {"time": "10 Uhr", "date": "Montag"})

    # then: the stored answer, and the row says it answered one retry
    assert retry == free
    invocation = FunctionInvocation.objects.get(call_id="call_1")
    assert (invocation.seq, invocation.retries_answered) == (1, 1)


@pytest.mark.django_db
def test_a_retry_after_the_window_runs_again(praxis, kontrolle):
    # given: a free-slot answer older than the window; then another call books that slot
    call(praxis, "check_availability", {"date": "Montag", "time": "10 Uhr"})
    call(praxis, "collect_appointment_information", MONDAY, call_id="call_2")
    age_invocations(361)

    # when: the same request comes again
    later = call(praxis, "check_availability", {"date": "Montag", "time": "10 Uhr"})

    # then: it ran again and sees the slot taken
    assert (later["available"], later["reason"]) == (False, "taken")
    assert list(FunctionInvocation.objects.filter(call_id="call_1").order_by("seq")
                .values_list("seq", "retries_answered")) == [(1, 0), (2, 0)]


@pytest.mark.django_db
def test_the_window_is_a_setting(praxis, kontrolle, settings):
    settings.CUSTOM_FUNCTION_RETRY_WINDOW_SECONDS = 30
    call(praxis, "check_availability", {"date": "Montag", "time": "10 Uhr"})
    call(praxis, "collect_appointment_information", MONDAY, call_id="call_2")
    age_invocations(31)

    later = call(praxis, "check_availability", {"date": "Montag", "time": "10 Uhr"})

    assert later["available"] is False


@pytest.mark.django_db
def test_a_retry_of_an_earlier_request_after_another_one_ran_runs_again(praxis, kontrolle):
    # given: a check, then a booking of that slot, in one call
    call(praxis, "check_availability", {"date": "Montag", "time": "10 Uhr"})
    call(praxis, "collect_appointment_information", MONDAY)

    # when: the check comes again (no longer the call's latest request)
    again = call(praxis, "check_availability", {"date": "Montag", "time": "10 Uhr"})

    # then: it runs, and each request has its own number in the call
    assert again["available"] is False
    assert list(FunctionInvocation.objects.order_by("seq").values_list("seq", "name")) == [
        (1, "check_availability"), (2, "collect_appointment_information"), (3, "check_availability")]


@pytest.mark.django_db
def test_invalid_arguments_are_not_recorded_and_do_not_break_a_retry(praxis, kontrolle):
    booked = call(praxis, "collect_appointment_information", MONDAY)
    call(praxis, "collect_appointment_information", {"name": "Erika"})

    retry = call(praxis, "collect_appointment_information", MONDAY)

    assert retry == booked
    assert FunctionInvocation.objects.get().retries_answered == 1


@pytest.mark.django_db(transaction=True)  # the socket's database calls close the connection they ran on
def test_the_live_sockets_tool_calls_follow_the_same_rule(praxis, kontrolle):
    from asgiref.sync import async_to_sync

    from voice.retell_session import run_tool

    def tool(name: str, args: dict) -> dict:
        # The socket passes no `now`: the calendar is today's, so book a fixed future week.
        return async_to_sync(run_tool)(company=praxis, name=name, args=args, call_id="call_live",
                                       caller_number="+4915112345678")

    # given: over the live socket, a booking, its cancellation and a second booking
    tool("collect_appointment_information", {**MONDAY, "date": "2030-03-25"})
    tool("cancel_appointment", {})
    second = tool("collect_appointment_information", {**MONDAY, "date": "2030-03-26"})

    # when: the engine cancels again with the same arguments
    result = tool("cancel_appointment", {})

    # then: the second booking is cancelled
    assert (result["ok"], result["appointment_id"]) == (True, second["appointment_id"])
    assert set(Appointment.objects.values_list("status", flat=True)) == {"cancelled"}
