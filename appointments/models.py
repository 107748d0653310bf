"""Services offered, staff and rooms, closures, appointments and custom-function results.

A company's weekly opening hours are `Company.opening_hours`; closures here take out
whole days. Two appointments never overlap on one booking lane: the lane is the
resource (a staff member or a room) or, for appointments without one, the company
itself. On PostgreSQL an exclusion constraint enforces it (migration 0002, the one
database-specific part); on SQLite booking transactions are serialised instead (see
`appointments.services`).
"""

from datetime import timedelta
from typing import ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from tenants.models import TenantOwned
from tenants.roles import READ_ONLY_POLICY
from tenants.validators import validate_e164

from .localtime import local_text


class ResourceKind(models.TextChoices):
    STAFF = "staff", "Staff member"
    ROOM = "room", "Room"


class Service(TenantOwned):
    """Something a caller can book, e.g. a check-up or a cleaning."""

    name = models.CharField(max_length=120)
    duration_minutes = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(5)], help_text="How long the appointment lasts.")
    buffer_minutes = models.PositiveSmallIntegerField(
        default=0, help_text="Kept free after each appointment (cleaning up, notes).")
    price = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)
    resource_kind = models.CharField(
        "needs a", max_length=8, choices=ResourceKind.choices, blank=True,
        help_text="Book one free staff member or room of this kind; empty: the practice as a whole.")
    active = models.BooleanField(default=True, help_text="Inactive services cannot be booked.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="service_name_unique_per_company"),
            models.CheckConstraint(condition=Q(duration_minutes__gte=5), name="service_duration_at_least_5"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    @property
    def buffer(self) -> timedelta:
        return timedelta(minutes=self.buffer_minutes)


class Resource(TenantOwned):
    """A staff member or a room; a service that needs one books one that is free."""

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=8, choices=ResourceKind.choices, default=ResourceKind.STAFF)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company__name", "kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="resource_name_unique_per_company"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class Closure(TenantOwned):
    """Whole days on which the company takes no appointments (holidays, training)."""

    first_day = models.DateField()
    last_day = models.DateField(help_text="Inclusive; the same as the first day for a single day.")
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["company__name", "first_day"]
        constraints = [
            models.CheckConstraint(condition=Q(last_day__gte=F("first_day")), name="closure_last_day_not_before_first"),
        ]

    def __str__(self) -> str:
        span = str(self.first_day) if self.first_day == self.last_day else f"{self.first_day} – {self.last_day}"
        return f"{span} {self.reason}".strip()

    def clean(self) -> None:
        super().clean()
        if self.first_day and self.last_day and self.last_day < self.first_day:
            raise ValidationError({"last_day": "The last day cannot be before the first day."})


class Appointment(TenantOwned):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending (held until the call ends)"
        CONFIRMED = "confirmed", "Confirmed"
        CANCELLED = "cancelled", "Cancelled"
        RESCHEDULED = "rescheduled", "Rescheduled (moved to another appointment)"
        NO_SHOW = "no_show", "No-show"

    # The statuses that hold their time: only these may not overlap.
    ACTIVE_STATUSES: ClassVar = (Status.PENDING, Status.CONFIRMED)

    customer_name = models.CharField(max_length=200)
    phone = models.CharField(max_length=20, blank=True, validators=[validate_e164],
                             help_text="E.164, e.g. +493083793369.")
    service = models.ForeignKey(Service, on_delete=models.RESTRICT, null=True, blank=True,
                                related_name="appointments")
    resource = models.ForeignKey(Resource, on_delete=models.RESTRICT, null=True, blank=True,
                                 related_name="appointments", help_text="The staff member or room, if any.")
    start = models.DateTimeField(db_index=True)
    end = models.DateTimeField()
    # end + the service's buffer: the time the appointment keeps its lane busy.
    blocked_until = models.DateTimeField(editable=False)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    call_id = models.CharField("Retell call id", max_length=128, blank=True, db_index=True)
    notes = models.TextField(blank=True)
    is_test = models.BooleanField(
        "test", default=False, db_index=True,
        help_text="Made by a test call (webhook tester, call simulator, scenario): holds its time like any "
                  "other, but is never sent to the practice's backend.")
    backend_id = models.CharField("practice backend id", max_length=128, blank=True)
    rescheduled_to = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True,
                                       related_name="rescheduled_from", editable=False)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="appointment_ends_after_start"),
            models.CheckConstraint(condition=Q(blocked_until__gte=F("end")), name="appointment_blocked_until_end"),
        ]
        indexes = [models.Index(fields=["company", "start"], name="appointment_company_start")]

    def __str__(self) -> str:
        if self.start is None or self.company_id is None:
            return self.customer_name
        return f"#{self.pk} {self.customer_name} {local_text(self.start, self.company.zone, '%Y-%m-%d %H:%M')}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    def clean(self) -> None:
        super().clean()
        if self.start and self.end and self.end <= self.start:
            raise ValidationError({"start": "An appointment must end after it starts."})
        if self.resource_id and self.service_id and self.service.resource_kind \
                and self.resource.kind != self.service.resource_kind:
            raise ValidationError({"resource": "This service needs a %(kind)s."
                                   % {"kind": self.service.get_resource_kind_display().lower()}})


class FunctionInvocation(TenantOwned):
    """One executed custom-function request of a call, numbered in the call, with its answer.

    A request gets a stored answer only when it repeats the call's latest invocation
    (same function, same canonical arguments) within CUSTOM_FUNCTION_RETRY_WINDOW_SECONDS:
    that is Retell retrying it. Anything else runs and takes the call's next `seq`;
    the unique (company, call_id, seq) is the claim two racing requests contend for.
    """

    call_id = models.CharField(max_length=128)
    seq = models.PositiveIntegerField("no. in call", help_text="1 for the call's first request, then 2, 3, ...")
    name = models.CharField(max_length=100)
    args_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical JSON of the arguments.")
    args = models.JSONField(default=dict)
    result = models.JSONField(default=dict)
    retries_answered = models.PositiveIntegerField(
        default=0, help_text="Repeats of this request answered with this stored result (Retell's retries).")
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_policy: ClassVar = READ_ONLY_POLICY

    class Meta:
        ordering = ["-created_at", "-seq"]
        constraints = [
            models.UniqueConstraint(fields=["company", "call_id", "seq"], name="function_invocation_seq_per_call"),
        ]
        # The calls where a function succeeded (the Analytics page's outcomes and booking
        # conversion): without it each chart read the whole table once per function.
        indexes = [models.Index(fields=["company", "name", "call_id"], condition=models.Q(result__ok=True),
                                name="function_invocation_ok")]

    def __str__(self) -> str:
        return f"{self.name} ({self.call_id} #{self.seq})"
