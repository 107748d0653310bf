"""The booking rules: opening hours, closures, no overlap per lane, alternatives, confirm and release."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from appointments.models import Appointment, Closure, Resource, ResourceKind, Service
from appointments.services import (SlotUnavailable, appointment_book, appointment_cancel, appointment_reschedule,
                                   appointments_confirm_for_call, appointments_release_expired)
from audit.actor import Actor
from audit.models import AuditEntry
from tests.appointments.conftest import berlin

ACTOR = Actor.system("test")
NOW = berlin(2026, 3, 20, 9, 0)  # a Friday
MONDAY = (2026, 3, 23)


def book(company, start, service=None, **kwargs):
    return appointment_book(actor=ACTOR, company=company, customer_name=kwargs.pop("name", "Erika Muster"),
                            start=start, service=service, now=kwargs.pop("now", NOW), **kwargs)


@pytest.mark.django_db
def test_a_free_slot_inside_opening_hours_is_booked_pending_and_audited(praxis, kontrolle):
    appointment = book(praxis, berlin(*MONDAY, 10, 0), kontrolle, phone="+4915112345678", call_id="call_1")

    assert appointment.status == Appointment.Status.PENDING
    assert appointment.end - appointment.start == timedelta(minutes=30)
    assert appointment.call_id == "call_1"
    assert AuditEntry.objects.filter(object_type="appointments.appointment", object_id=str(appointment.pk),
                                     action="book").exists()


@pytest.mark.django_db
def test_a_taken_slot_is_refused_with_the_nearest_free_times_that_day(praxis, kontrolle):
    book(praxis, berlin(*MONDAY, 10, 0), kontrolle)

    with pytest.raises(SlotUnavailable) as refused:
        book(praxis, berlin(*MONDAY, 10, 0), kontrolle, name="Max")

    assert refused.value.code == "taken"
    # 9:30 and 10:30 are 30 minutes away; of the two 45 minutes away the earlier wins.
    assert refused.value.alternatives == [berlin(*MONDAY, 9, 15), berlin(*MONDAY, 9, 30), berlin(*MONDAY, 10, 30)]
    assert Appointment.objects.filter(company=praxis).count() == 1


@pytest.mark.django_db
def test_overlap_counts_the_buffer_after_an_appointment(dental, cleaning):
    from tests.appointments.conftest import new_york
    first = book(dental, new_york(2026, 3, 23, 10, 0), cleaning, now=new_york(2026, 3, 20, 9, 0))
    assert first.blocked_until == new_york(2026, 3, 23, 11, 0)

    with pytest.raises(SlotUnavailable):
        book(dental, new_york(2026, 3, 23, 10, 45), cleaning, now=new_york(2026, 3, 20, 9, 0))
    assert book(dental, new_york(2026, 3, 23, 11, 0), cleaning, now=new_york(2026, 3, 20, 9, 0)).pk


@pytest.mark.django_db
def test_outside_opening_hours_is_refused_with_alternatives_inside_them(praxis, kontrolle):
    with pytest.raises(SlotUnavailable) as refused:
        book(praxis, berlin(*MONDAY, 17, 45), kontrolle)  # would end 18:15

    assert refused.value.code == "outside_hours"
    assert refused.value.alternatives == [berlin(*MONDAY, 17, 0), berlin(*MONDAY, 17, 15), berlin(*MONDAY, 17, 30)]


@pytest.mark.django_db
def test_a_closure_day_is_refused_and_alternatives_start_the_next_open_day(praxis, kontrolle):
    Closure.objects.create(company=praxis, first_day=MONDAY and berlin(*MONDAY, 0).date(),
                           last_day=berlin(2026, 3, 24, 0).date(), reason="Fortbildung")

    with pytest.raises(SlotUnavailable) as refused:
        book(praxis, berlin(*MONDAY, 10, 0), kontrolle)

    assert refused.value.code == "closed"
    assert refused.value.closure_reason == "Fortbildung"
    assert refused.value.alternatives[0] == berlin(2026, 3, 25, 8, 0)


@pytest.mark.django_db
def test_the_past_is_refused(praxis, kontrolle):
    with pytest.raises(SlotUnavailable) as refused:
        book(praxis, berlin(2026, 3, 19, 10, 0), kontrolle)
    assert refused.value.code == "past"


@pytest.mark.django_db
def test_two_staff_members_take_two_bookings_of_one_slot_and_the_third_is_refused(praxis):
    service = Service.objects.create(company=praxis, name="Beratung", duration_minutes=30,
                                     resource_kind=ResourceKind.STAFF)
    anna = Resource.objects.create(company=praxis, name="Dr. Anna", kind=ResourceKind.STAFF)
    ben = Resource.objects.create(company=praxis, name="Dr. Ben", kind=ResourceKind.STAFF)

    first = book(praxis, berlin(*MONDAY, 10, 0), service)
    second = book(praxis, berlin(*MONDAY, 10, 0), service)
    with pytest.raises(SlotUnavailable):
        book(praxis, berlin(*MONDAY, 10, 0), service)

    assert {first.resource, second.resource} == {anna, ben}


@pytest.mark.django_db
def test_the_database_refuses_an_overlap_that_skips_the_service_check(praxis, kontrolle):
    # The one database-specific rule: PostgreSQL's exclusion constraint, not Python, is the guard.
    assert connection.vendor == "postgresql"
    first = book(praxis, berlin(*MONDAY, 10, 0), kontrolle)
    overlapping = Appointment(company=praxis, customer_name="Sneaky", start=first.start + timedelta(minutes=10),
                              end=first.end + timedelta(minutes=10), blocked_until=first.end + timedelta(minutes=10),
                              status=Appointment.Status.CONFIRMED)
    with pytest.raises(IntegrityError, match="appointment_no_overlap_per_lane"), transaction.atomic():
        overlapping.save()

    # A cancelled row holds no time, so the same insert is accepted once the first is cancelled.
    appointment_cancel(actor=ACTOR, appointment=first)
    overlapping.pk = None
    overlapping.save()


@pytest.mark.django_db
def test_confirm_for_call_confirms_the_calls_pending_appointments_once(praxis, kontrolle):
    mine = book(praxis, berlin(*MONDAY, 10, 0), kontrolle, call_id="call_A")
    other_call = book(praxis, berlin(*MONDAY, 11, 0), kontrolle, call_id="call_B")

    confirmed = appointments_confirm_for_call(actor=ACTOR, company=praxis, call_id="call_A")
    again = appointments_confirm_for_call(actor=ACTOR, company=praxis, call_id="call_A")

    assert [a.pk for a in confirmed] == [mine.pk]
    assert again == []
    mine.refresh_from_db()
    other_call.refresh_from_db()
    assert mine.status == Appointment.Status.CONFIRMED and mine.confirmed_at is not None
    assert other_call.status == Appointment.Status.PENDING
    assert AuditEntry.objects.filter(object_id=str(mine.pk), action="confirm").count() == 1


@pytest.mark.django_db
def test_release_cancels_pending_appointments_older_than_the_ttl_and_frees_their_time(praxis, kontrolle, settings):
    settings.APPOINTMENT_PENDING_TTL_MINUTES = 30
    held = book(praxis, berlin(*MONDAY, 10, 0), kontrolle, call_id="call_lost")
    fresh = book(praxis, berlin(*MONDAY, 11, 0), kontrolle, call_id="call_live")
    confirmed = book(praxis, berlin(*MONDAY, 12, 0), kontrolle, status=Appointment.Status.CONFIRMED)
    Appointment.objects.filter(pk=held.pk).update(created_at=timezone.now() - timedelta(minutes=31))

    released = appointments_release_expired(actor=ACTOR)

    assert released == 1
    held.refresh_from_db(), fresh.refresh_from_db(), confirmed.refresh_from_db()
    assert held.status == Appointment.Status.CANCELLED
    assert "no call_ended" in held.notes and "call_lost" in held.notes
    assert fresh.status == Appointment.Status.PENDING
    assert confirmed.status == Appointment.Status.CONFIRMED
    assert appointments_confirm_for_call(actor=ACTOR, company=praxis, call_id="call_lost") == []
    assert book(praxis, berlin(*MONDAY, 10, 0), kontrolle, name="Next caller").pk


@pytest.mark.django_db
def test_release_counts_from_an_injected_now(praxis, kontrolle, settings):
    settings.APPOINTMENT_PENDING_TTL_MINUTES = 30
    book(praxis, berlin(*MONDAY, 10, 0), kontrolle, call_id="call_x")

    assert appointments_release_expired(actor=ACTOR, now=timezone.now() + timedelta(minutes=29)) == 0
    assert appointments_release_expired(actor=ACTOR, now=timezone.now() + timedelta(minutes=31)) == 1


@pytest.mark.django_db
def test_reschedule_by_a_few_minutes_moves_the_appointment_and_keeps_the_old_as_rescheduled(praxis, kontrolle):
    old = book(praxis, berlin(*MONDAY, 10, 0), kontrolle, call_id="call_1", status=Appointment.Status.CONFIRMED)

    new = appointment_reschedule(actor=ACTOR, appointment=old, start=berlin(*MONDAY, 10, 15), now=NOW)

    old.refresh_from_db()
    assert old.status == Appointment.Status.RESCHEDULED
    assert old.rescheduled_to == new
    assert (new.start, new.status, new.call_id) == (berlin(*MONDAY, 10, 15), Appointment.Status.CONFIRMED, "call_1")


@pytest.mark.django_db
def test_reschedule_to_a_taken_slot_changes_nothing(praxis, kontrolle):
    mine = book(praxis, berlin(*MONDAY, 10, 0), kontrolle)
    book(praxis, berlin(*MONDAY, 14, 0), kontrolle, name="Someone else")

    with pytest.raises(SlotUnavailable) as refused:
        appointment_reschedule(actor=ACTOR, appointment=mine, start=berlin(*MONDAY, 14, 0), now=NOW)

    mine.refresh_from_db()
    assert mine.status == Appointment.Status.PENDING
    assert berlin(*MONDAY, 13, 30) in refused.value.alternatives
    assert Appointment.objects.count() == 2


@pytest.mark.django_db
def test_celery_beat_runs_the_release_task_every_minute(praxis, kontrolle, settings):
    from appointments.tasks import appointments_release_expired_task

    entry = settings.CELERY_BEAT_SCHEDULE["appointments-release-expired"]
    assert entry["task"] == appointments_release_expired_task.name
    held = book(praxis, berlin(*MONDAY, 10, 0), kontrolle, call_id="call_gone")
    Appointment.objects.filter(pk=held.pk).update(created_at=timezone.now() - timedelta(hours=1))

    assert appointments_release_expired_task.apply().get() == 1
    held.refresh_from_db()
    assert held.status == Appointment.Status.CANCELLED


@pytest.mark.django_db
def test_a_booked_service_cannot_be_deleted_but_its_company_can(praxis, kontrolle):
    from django.db.models import RestrictedError

    book(praxis, berlin(*MONDAY, 10, 0), kontrolle)

    with pytest.raises(RestrictedError), transaction.atomic():
        kontrolle.delete()
    praxis.delete()

    assert not Appointment.objects.exists() and not Service.objects.exists()
