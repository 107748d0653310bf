"""REST API resources of appointments (/api/v1/): services, closures and appointments.

Bookings, moves and cancellations go through appointments.services, the booking rules the
admin and the custom functions use, so the API can never double-book; services and closures
are saved as the admin saves them (audited instance_save). Conventions: api.base.
"""

from __future__ import annotations

from datetime import datetime

import django_filters
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action

from api.filters import TenantFilterSet
from api.base import InstanceViewSet, TenantViewSet
from api.errors import ApiError, conflict
from api.idempotency import idempotent
from api.schema import IDEMPOTENCY_KEY, Error
from api.serializers import TenantSerializer
from tenants.models import Company
from tenants.validators import normalize_e164
from voice.models import Call

from . import selectors, services
from .localtime import NonexistentLocalTime, day_bounds, wall_clock
from .models import Appointment, Closure, Resource, Service


class _SameCompanyRelated(serializers.PrimaryKeyRelatedField):
    """A row of the request user's companies (restrict view); which company is checked by the model."""

    def __init__(self, model, **kwargs) -> None:
        self.model = model
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        return self.model.objects.restrict(getattr(request, "user", None), "view")


# --- services and closures ----------------------------------------------------------------------
class ServiceSerializer(TenantSerializer):
    class Meta:
        model = Service
        fields = ["id", "company", "name", "duration_minutes", "buffer_minutes", "price", "resource_kind", "active",
                  "created_at", "updated_at"]


class ServiceFilter(TenantFilterSet):
    class Meta:
        model = Service
        fields = ["company", "active", "resource_kind"]


@extend_schema_view(
    list=extend_schema(summary="List services", description="The services callers can book (and inactive ones)."),
    retrieve=extend_schema(summary="Read a service"),
    create=extend_schema(summary="Add a service", description="Owner, admin or editor of the company."),
    partial_update=extend_schema(summary="Change a service"),
    update=extend_schema(summary="Replace a service"),
    destroy=extend_schema(summary="Delete a service",
                          description="409 in_use while appointments name it: make it inactive instead."),
)
class ServiceViewSet(InstanceViewSet):
    model = Service
    serializer_class = ServiceSerializer
    filterset_class = ServiceFilter
    ordering = ("name", "id")
    extra_errors = {"destroy": [409]}


class ClosureSerializer(TenantSerializer):
    class Meta:
        model = Closure
        fields = ["id", "company", "first_day", "last_day", "reason", "created_at"]

    def validate(self, attrs):
        first = attrs.get("first_day", getattr(self.instance, "first_day", None))
        last = attrs.get("last_day", getattr(self.instance, "last_day", None))
        if first and last and last < first:
            raise serializers.ValidationError({"last_day": "The last day cannot be before the first day."})
        return attrs


class ClosureFilter(TenantFilterSet):
    until = django_filters.DateFilter(field_name="first_day", lookup_expr="lte", help_text="Closures that begin "
                                      "on or before this day.")
    since = django_filters.DateFilter(field_name="last_day", lookup_expr="gte", help_text="Closures that last "
                                      "until this day or later.")

    class Meta:
        model = Closure
        fields = ["company", "since", "until"]


@extend_schema_view(
    list=extend_schema(summary="List closures", description="Whole days without appointments (holidays)."),
    retrieve=extend_schema(summary="Read a closure"),
    create=extend_schema(summary="Add a closure"),
    partial_update=extend_schema(summary="Change a closure"),
    update=extend_schema(summary="Replace a closure"),
    destroy=extend_schema(summary="Delete a closure"),
)
class ClosureViewSet(InstanceViewSet):
    model = Closure
    serializer_class = ClosureSerializer
    filterset_class = ClosureFilter
    ordering = ("first_day", "id")
    extra_errors = {"destroy": [409]}


# --- appointments ---------------------------------------------------------------------------------
class StartField(serializers.DateTimeField):
    """ISO 8601. With an offset it is that instant; without one, the wall-clock time in the
    appointment's company's time zone (first occurrence of a repeated hour; a skipped one is 400)."""

    def enforce_timezone(self, value):
        return value  # a naive value stays naive: the company's zone is applied once it is known


def _instant(value: datetime, company: Company, field: str = "start") -> datetime:
    if value.tzinfo is not None:
        return value
    try:
        return wall_clock(value.date(), value.time(), company.zone)
    except NonexistentLocalTime as gap:
        raise serializers.ValidationError({field: [f"{gap}."]}) from None


def _phone(value: str, company: Company) -> str:
    # As the admin's form reads it: in any common spelling, in the company's country.
    try:
        return selectors.phone_e164(company=company, number=value) if value else ""
    except ValidationError as exc:
        raise serializers.ValidationError({"phone": exc.messages}) from None


class AppointmentSerializer(TenantSerializer):
    agent_id = serializers.CharField(read_only=True, allow_null=True, source="agent_of_call",
                                     help_text="The Retell agent id of the call it was booked in; null otherwise.")
    start = serializers.DateTimeField(read_only=True)

    class Meta:
        model = Appointment
        fields = ["id", "company", "customer_name", "phone", "service", "resource", "start", "end", "status",
                  "call_id", "agent_id", "notes", "is_test", "backend_id", "rescheduled_to", "confirmed_at",
                  "created_at", "updated_at"]
        read_only_fields = ["company", "service", "resource", "end", "call_id", "is_test", "backend_id",
                            "rescheduled_to", "confirmed_at", "created_at", "updated_at"]


class AppointmentChangeSerializer(serializers.Serializer):
    """The details a PATCH changes; moving and cancelling have their own actions."""

    customer_name = serializers.CharField(max_length=200, required=False)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True,
                                  help_text="In any common spelling; stored in E.164.")
    notes = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=[Appointment.Status.PENDING, Appointment.Status.CONFIRMED,
                                              Appointment.Status.NO_SHOW], required=False,
                                     help_text="Confirm a pending one or mark a no-show; cancel with /cancel/.")


class AppointmentCreateSerializer(serializers.Serializer):
    company = serializers.PrimaryKeyRelatedField(queryset=Company.objects.none())
    customer_name = serializers.CharField(max_length=200)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True, default="",
                                  help_text="In any common spelling; stored in E.164.")
    service = serializers.PrimaryKeyRelatedField(queryset=Service.objects.none(), required=False, allow_null=True)
    resource = serializers.PrimaryKeyRelatedField(queryset=Resource.objects.none(), required=False, allow_null=True,
                                                  help_text="A staff member or room; empty: a free one.")
    start = StartField(help_text="ISO 8601; without an offset, wall-clock time in the company's time zone.")
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    status = serializers.ChoiceField(choices=[Appointment.Status.CONFIRMED, Appointment.Status.PENDING],
                                     default=Appointment.Status.CONFIRMED)

    def get_fields(self):
        fields = super().get_fields()
        user = getattr(self.context.get("request"), "user", None)
        fields["company"].queryset = Company.objects.restrict(user, "view")
        fields["service"].queryset = Service.objects.restrict(user, "view")
        fields["resource"].queryset = Resource.objects.restrict(user, "view")
        return fields


class AppointmentMoveSerializer(serializers.Serializer):
    start = StartField(help_text="ISO 8601; without an offset, wall-clock time in the company's time zone.")
    service = serializers.PrimaryKeyRelatedField(queryset=Service.objects.none(), required=False, allow_null=True,
                                                 help_text="Another service; empty keeps the current one.")
    resource = serializers.PrimaryKeyRelatedField(queryset=Resource.objects.none(), required=False, allow_null=True)

    def get_fields(self):
        fields = super().get_fields()
        user = getattr(self.context.get("request"), "user", None)
        fields["service"].queryset = Service.objects.restrict(user, "view")
        fields["resource"].queryset = Resource.objects.restrict(user, "view")
        return fields


class AppointmentCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class AppointmentFilter(TenantFilterSet):
    day = django_filters.DateFilter(method="on_day", help_text="A calendar day in each company's time zone.")
    status = django_filters.MultipleChoiceFilter(choices=Appointment.Status.choices)
    agent = django_filters.CharFilter(method="of_agent", help_text="A Retell agent id: appointments booked in "
                                                                   "its calls.")
    phone = django_filters.CharFilter(method="of_phone", help_text="The caller's number, in any common spelling.")
    call_id = django_filters.CharFilter()
    service = django_filters.NumberFilter(field_name="service_id", help_text="A service id.")

    class Meta:
        model = Appointment
        fields = ["company", "day", "status", "agent", "phone", "call_id", "service"]

    def on_day(self, queryset, name, value):
        condition = Q(pk__in=[])
        for company in Company.objects.filter(pk__in=queryset.values("company_id")):
            low, high = day_bounds(value, company.zone)
            condition |= Q(company=company, start__gte=low, start__lt=high)
        return queryset.filter(condition)

    def of_agent(self, queryset, name, value):
        calls = Call.objects.filter(company=OuterRef("company"), agent__agent_id=value).values("call_id")
        return queryset.exclude(call_id="").filter(call_id__in=Subquery(calls))

    def of_phone(self, queryset, name, value):
        # Read in each company's own country, as its bookings were; not a number: matched as sent.
        condition = Q(phone=value)
        for company in Company.objects.filter(pk__in=queryset.values("company_id")):
            try:
                condition |= Q(company=company, phone=normalize_e164(value, selectors.phone_region(company)))
            except ValidationError:
                pass
        return queryset.filter(condition)


SLOT_MESSAGES = {
    "past": "That time is in the past.",
    "closed": "The practice is closed that day.",
    "outside_hours": "That is outside the opening hours.",
    "taken": "That time is taken.",
    "inactive_service": "That service cannot be booked at the moment.",
}


def _slot_refused(refused: services.SlotUnavailable) -> ApiError:
    message = SLOT_MESSAGES.get(refused.code, "That time cannot be booked.")
    if refused.closure_reason:
        message += f" ({refused.closure_reason})"
    return conflict(f"slot_{refused.code}", message + (" See alternatives." if refused.alternatives else ""),
                    alternatives=[serializers.DateTimeField().to_representation(a) for a in refused.alternatives])


SLOT_CONFLICT = OpenApiResponse(Error, description="The time cannot be booked (code slot_taken, slot_past, "
                                                   "slot_closed, slot_outside_hours): `alternatives` lists the "
                                                   "nearest free starts.")


@extend_schema_view(
    list=extend_schema(summary="List appointments",
                       description="Filter by day (in the company's zone), status (repeatable), agent, phone."),
    retrieve=extend_schema(summary="Read an appointment"),
    partial_update=extend_schema(summary="Change an appointment's details", request=AppointmentChangeSerializer,
                                 description="Name, phone, notes; status to confirmed or no_show. Moving and "
                                             "cancelling have their own actions. 409 not_active for a cancelled "
                                             "or moved one reopened."),
    create=extend_schema(summary="Book an appointment", request=AppointmentCreateSerializer,
                         parameters=[IDEMPOTENCY_KEY],
                         responses={201: AppointmentSerializer, 409: SLOT_CONFLICT},
                         description="Through the booking rules: inside opening hours, not on a closure, not in "
                                     "the past, never overlapping. Send an Idempotency-Key to retry safely."),
)
class AppointmentViewSet(TenantViewSet):
    model = Appointment
    serializer_class = AppointmentSerializer
    filterset_class = AppointmentFilter
    select_related = ("company", "service", "resource")
    ordering = ("start", "id")
    http_method_names = ["get", "post", "patch", "head", "options"]
    extra_errors = {"create": [409, 422], "partial_update": [409], "move": [409], "cancel": [409]}

    def get_queryset(self):
        agent = Call.objects.filter(company=OuterRef("company"), call_id=OuterRef("call_id")).values(
            "agent__agent_id")[:1]
        return super().get_queryset().annotate(agent_of_call=Subquery(agent))

    def create(self, request, *args, **kwargs):
        body = AppointmentCreateSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        data = body.validated_data
        company = self.company_for_new(data["company"])

        def book():
            try:
                appointment = services.appointment_book(
                    actor=self.actor, company=company, customer_name=data["customer_name"],
                    start=_instant(data["start"], company), service=data.get("service"),
                    phone=_phone(data["phone"], company), resource=data.get("resource"), notes=data["notes"],
                    status=data["status"])
            except services.SlotUnavailable as refused:
                raise _slot_refused(refused) from None
            return self.row_response(self.refreshed(appointment), status.HTTP_201_CREATED)

        return idempotent(request, company=company, respond=book)

    def partial_update(self, request, *args, **kwargs):
        body = AppointmentChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            appointment = self.locked_object(if_match_required=True)
            data = dict(body.validated_data)
            if "phone" in data:
                data["phone"] = _phone(data["phone"], appointment.company)
            try:
                services.appointment_update(actor=self.actor, appointment=appointment, **data)
            except ValidationError as exc:
                if "status" in getattr(exc, "error_dict", {}):
                    raise conflict("not_active", "; ".join(exc.message_dict["status"])) from None
                raise
        return self.row_response(self.refreshed(appointment))

    @extend_schema(summary="Move an appointment", request=AppointmentMoveSerializer,
                   responses={200: AppointmentSerializer, 409: SLOT_CONFLICT},
                   description="Through the booking rules: the appointment becomes `rescheduled` and points to "
                               "the new one, which is answered. 409 not_active for one that is not pending or "
                               "confirmed; 409 slot_* with alternatives when the new time cannot be booked.")
    @action(detail=True, methods=["post"], required="change")
    def move(self, request, pk=None):
        body = AppointmentMoveSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            appointment = self.locked_object(if_match_required=False)
            if not appointment.is_active:
                raise conflict("not_active", f"Only a pending or confirmed appointment can be moved (this one is "
                                             f"{appointment.status}).")
            try:
                moved = services.appointment_reschedule(
                    actor=self.actor, appointment=appointment,
                    start=_instant(body.validated_data["start"], appointment.company),
                    service=body.validated_data.get("service"), resource=body.validated_data.get("resource"))
            except services.SlotUnavailable as refused:
                raise _slot_refused(refused) from None
        return self.row_response(self.refreshed(moved))

    @extend_schema(summary="Cancel an appointment", request=AppointmentCancelSerializer,
                   responses={200: AppointmentSerializer},
                   description="Frees its time. Cancelling a cancelled one changes nothing; 409 not_active for "
                               "a moved or missed one.")
    @action(detail=True, methods=["post"], required="change")
    def cancel(self, request, pk=None):
        body = AppointmentCancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            appointment = self.locked_object(if_match_required=False)
            try:
                services.appointment_cancel(actor=self.actor, appointment=appointment,
                                            reason=body.validated_data["reason"])
            except ValidationError as exc:
                raise conflict("not_active", " ".join(exc.messages)) from None
        return self.row_response(self.refreshed(appointment))
