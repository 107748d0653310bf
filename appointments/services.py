"""Every write of appointments: book, reschedule, cancel, confirm after a call, release, admin edits.

The custom-function handlers and the admin call these same functions.

How "no overlap" is kept under concurrency:
- PostgreSQL: the exclusion constraint of migration 0002 refuses a second active
  appointment on the same lane and time. A booking checks first (cheap, usually
  right), then inserts in a savepoint; when a concurrent booking won the race the
  insert fails with SQLSTATE 23P01 and the next lane, or the alternatives, are tried.
- SQLite (the embedded run, which has no exclusion constraints): the booking
  transaction first writes to the company row, which takes SQLite's single write lock,
  so the check and the insert of concurrent bookings run one after the other.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.actor import Actor
from audit.services import instance_save
from tenants.models import Company

from . import selectors
from .localtime import as_utc
from .models import Appointment, Resource, Service

EXCLUSION_CONSTRAINT = "appointment_no_overlap_per_lane"


@dataclass
class SlotUnavailable(Exception):
    """The wanted start cannot be booked; `alternatives` are the nearest free starts."""

    code: str  # past / closed / outside_hours / taken / inactive_service
    wanted: datetime
    alternatives: list[datetime] = field(default_factory=list)
    closure_reason: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.wanted.isoformat()}"


def _is_overlap(error: IntegrityError) -> bool:
    cause = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None) or getattr(getattr(cause, "diag", None), "sqlstate", None)
    return sqlstate == "23P01" or EXCLUSION_CONSTRAINT in str(error)


def _serialise_bookings(company: Company) -> None:
    """On databases without the exclusion constraint, take the write lock before checking."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:  # a write that changes nothing, for SQLite's lock
            cursor.execute(f"UPDATE {Company._meta.db_table} SET id = id WHERE id = %s", [company.pk])


def _unavailable(problem, *, company, service, start, now, exclude_pk=None) -> SlotUnavailable:
    return SlotUnavailable(
        code=problem.code, wanted=start,
        alternatives=selectors.alternatives(company=company, service=service, wanted=start, now=now,
                                            exclude_pk=exclude_pk),
        closure_reason=problem.closure.reason if problem.closure else "")


def _check_service(company: Company, service: Service | None) -> None:
    if service is None:
        return
    if service.company_id != company.pk:
        raise ValidationError({"service": "Choose one of this company's own services."})
    if not service.active:
        raise ValidationError({"service": f"{service.name} cannot be booked at the moment."})


@transaction.atomic
def appointment_book(*, actor: Actor, company: Company, customer_name: str, start: datetime,
                     service: Service | None = None, phone: str = "", resource: Resource | None = None,
                     call_id: str = "", notes: str = "", status: str = Appointment.Status.PENDING,
                     backend_id: str = "", confirmed_at: datetime | None = None,
                     now: datetime | None = None, is_test: bool = False) -> Appointment:
    """Book `start` on a free lane; raise SlotUnavailable (with alternatives) when it cannot be.

    Inside opening hours, not on a closure day, not in the past, and never overlapping
    another active appointment on the same lane. `start` is aware (ValueError if naive,
    NonexistentLocalTime for a wall-clock time in a ZoneInfo that the clocks skip) and is
    stored in UTC, so end and blocked_until lie the service's real duration and buffer after it.
    `is_test`: made by a test call (it holds its time, but never reaches the practice's backend).
    """
    now = as_utc(now or timezone.now())
    if timezone.is_naive(start):
        raise ValueError("start must be an aware datetime")
    start = as_utc(start)
    _check_service(company, service)
    _serialise_bookings(company)
    lanes = [resource] if resource is not None else selectors.lanes_for(company=company, service=service)
    problem = selectors.slot_problem(company=company, service=service, start=start, now=now, lanes=lanes)
    if problem is not None:
        raise _unavailable(problem, company=company, service=service, start=start, now=now)
    duration, buffer = selectors.service_span(service)
    if status == Appointment.Status.CONFIRMED and confirmed_at is None:
        confirmed_at = now
    for lane in selectors.free_lanes(company=company, service=service, start=start, lanes=lanes):
        appointment = Appointment(
            company=company, customer_name=customer_name.strip(), phone=phone, service=service, resource=lane,
            start=start, end=start + duration, blocked_until=start + duration + buffer, status=status,
            call_id=call_id, notes=notes, backend_id=backend_id, confirmed_at=confirmed_at, is_test=is_test)
        try:
            return instance_save(actor=actor, instance=appointment, action="book")  # a savepoint
        except IntegrityError as error:
            if not _is_overlap(error):
                raise
            # A concurrent booking took this lane between the check and the insert.
    raise SlotUnavailable(code="taken", wanted=start,
                          alternatives=selectors.alternatives(company=company, service=service, wanted=start,
                                                              now=now))


def service_ensure(*, actor: Actor, company: Company, name: str, duration_minutes: int,
                   buffer_minutes: int = 0, price=None, resource_kind: str = "") -> tuple[Service, bool]:
    """The company's service of that name, created with these values when it does not exist yet."""
    existing = Service.objects.filter(company=company, name=name).first()
    if existing is not None:
        return existing, False
    service = Service(company=company, name=name, duration_minutes=duration_minutes, buffer_minutes=buffer_minutes,
                      price=price, resource_kind=resource_kind)
    return instance_save(actor=actor, instance=service), True


def _locked(appointment: Appointment) -> Appointment:
    return Appointment.objects.select_for_update(of=("self",)).select_related(
        "service", "resource", "company").get(pk=appointment.pk)


def _append_note(notes: str, line: str) -> str:
    return f"{notes}\n{line}".strip() if line else notes


@transaction.atomic
def appointment_reschedule(*, actor: Actor, appointment: Appointment, start: datetime,
                           service: Service | None = None, resource: Resource | None = None,
                           now: datetime | None = None) -> Appointment:
    """Move an active appointment: the old row becomes `rescheduled` and points to a new one.

    The new appointment keeps the customer, call, status and backend id. When the new
    time cannot be booked, nothing changes and SlotUnavailable names alternatives
    (which may include times the old appointment itself held). `start` is read as in
    appointment_book.
    """
    now = as_utc(now or timezone.now())
    start = as_utc(start)
    old = _locked(appointment)
    if not old.is_active:
        raise ValidationError(f"Only a pending or confirmed appointment can be moved (this one is {old.status}).")
    company = old.company
    service = service if service is not None else old.service
    keep_status = old.status
    try:
        with transaction.atomic():
            # Free the old time first, so a move by a few minutes does not collide with itself.
            old.status = Appointment.Status.RESCHEDULED
            instance_save(actor=actor, instance=old, action="reschedule")
            new = appointment_book(
                actor=actor, company=company, customer_name=old.customer_name, start=start, service=service,
                phone=old.phone, resource=resource, call_id=old.call_id, status=keep_status, is_test=old.is_test,
                backend_id=old.backend_id, confirmed_at=old.confirmed_at,
                notes=_append_note(old.notes, f"Moved from #{old.pk}."), now=now)
            old.rescheduled_to = new
            old.notes = _append_note(old.notes, f"Moved to #{new.pk}.")
            instance_save(actor=actor, instance=old, action="reschedule")
            return new
    except SlotUnavailable:
        appointment.refresh_from_db()
        raise


@transaction.atomic
def appointment_cancel(*, actor: Actor, appointment: Appointment, reason: str = "") -> Appointment:
    """Cancel an active appointment (cancelling a cancelled one changes nothing)."""
    locked = _locked(appointment)
    if locked.status == Appointment.Status.CANCELLED:
        return locked
    if not locked.is_active:
        raise ValidationError(f"Only a pending or confirmed appointment can be cancelled (this one is {locked.status}).")
    locked.status = Appointment.Status.CANCELLED
    locked.notes = _append_note(locked.notes, f"Cancelled: {reason}" if reason else "Cancelled.")
    return instance_save(actor=actor, instance=locked, action="cancel")


@transaction.atomic
def appointment_update(*, actor: Actor, appointment: Appointment, customer_name: str | None = None,
                       phone: str | None = None, notes: str | None = None, status: str | None = None,
                       backend_id: str | None = None, now: datetime | None = None) -> Appointment:
    """Change the details that do not move the appointment; status changes keep their meaning.

    Cancelling goes through appointment_cancel, confirming sets confirmed_at, and
    nothing is set to `rescheduled` by hand (that is appointment_reschedule's).
    """
    locked = _locked(appointment)
    for name, value in (("customer_name", customer_name), ("phone", phone), ("notes", notes),
                        ("backend_id", backend_id)):
        if value is not None:
            setattr(locked, name, value)
    if status is not None and status != locked.status:
        if status == Appointment.Status.RESCHEDULED:
            raise ValidationError({"status": "Move an appointment by changing its start instead."})
        if status in Appointment.ACTIVE_STATUSES and not locked.is_active:
            raise ValidationError({"status": "A cancelled, moved or missed appointment cannot be reopened; "
                                             "book a new one."})
        if status == Appointment.Status.CANCELLED:
            instance_save(actor=actor, instance=locked)
            return appointment_cancel(actor=actor, appointment=locked)
        locked.status = status
        if status == Appointment.Status.CONFIRMED and locked.confirmed_at is None:
            locked.confirmed_at = now or timezone.now()
    return instance_save(actor=actor, instance=locked)


@transaction.atomic
def appointments_confirm_for_call(*, actor: Actor, company: Company, call_id: str) -> list[Appointment]:
    """The pending appointments collected during a call become confirmed; returns those it confirmed.

    Safe to repeat and to race: rows are locked and only pending ones change, so a
    second call returns [] and nothing is confirmed twice.
    """
    if not call_id:
        return []
    now = timezone.now()
    confirmed = []
    pending = (Appointment.objects.select_for_update()
               .filter(company=company, call_id=call_id, status=Appointment.Status.PENDING).order_by("pk"))
    for appointment in pending:
        appointment.status = Appointment.Status.CONFIRMED
        appointment.confirmed_at = now
        confirmed.append(instance_save(actor=actor, instance=appointment, action="confirm"))
    return confirmed


@transaction.atomic
def appointments_release_for_test_call(*, actor: Actor, company: Company, call_id: str) -> list[Appointment]:
    """Cancel the active test appointments a testing tool's call booked, so they stop holding their time.

    Only rows marked `is_test` change; repeating it releases nothing more.
    """
    if not call_id:
        return []
    released = []
    active = (Appointment.objects.select_for_update()
              .filter(company=company, call_id=call_id, is_test=True, status__in=Appointment.ACTIVE_STATUSES)
              .order_by("pk"))
    for appointment in active:
        appointment.status = Appointment.Status.CANCELLED
        appointment.notes = _append_note(appointment.notes, f"Released: test call {call_id} ended.")
        released.append(instance_save(actor=actor, instance=appointment, action="release"))
    return released


def appointments_release_expired(*, actor: Actor, now: datetime | None = None) -> int:
    """Release pending appointments whose call never ended within APPOINTMENT_PENDING_TTL_MINUTES.

    They become cancelled with a note saying why, which frees their time. Rows a
    concurrent confirmation holds are skipped (and confirmed by it).
    """
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.APPOINTMENT_PENDING_TTL_MINUTES)
    released = 0
    with transaction.atomic():
        expired = (Appointment.objects.select_for_update(skip_locked=True)
                   .filter(status=Appointment.Status.PENDING, created_at__lt=cutoff).order_by("pk"))
        for appointment in expired:
            appointment.status = Appointment.Status.CANCELLED
            appointment.notes = _append_note(
                appointment.notes,
                f"Released: no call_ended arrived within {settings.APPOINTMENT_PENDING_TTL_MINUTES} minutes"
                + (f" for call {appointment.call_id}." if appointment.call_id else "."))
            instance_save(actor=actor, instance=appointment, action="release")
            released += 1
    return released
