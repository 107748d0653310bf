"""Admin of services, staff and rooms, closures and appointments, with a day view.

Appointment writes go through the same services as the custom functions: adding
books (and is refused, with alternatives, where a caller would be refused), moving
reschedules, cancelling cancels. Times are shown and entered in the company's time zone:
an entered time that occurs twice (the repeated hour) is its first occurrence, one the
clocks skip is a form error, and a shown time that occurs twice names its zone
abbreviation (02:30 CEST / 02:30 CET).
"""

from datetime import date, datetime, timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from audit.actor import Actor
from audit.admin import ReadOnlyTenantAdmin
from tenants.admin import CompanyAdmin, TenantAdmin
from tenants.models import Company, user_memberships
from tenants.selectors import companies_allowing
from tenants.validators import normalize_e164

from . import selectors, services, speech
from .localtime import NonexistentLocalTime, day_bounds, local_text, wall_clock
from .models import Appointment, Closure, FunctionInvocation, Resource, Service


@admin.register(Service)
class ServiceAdmin(TenantAdmin):
    list_display = ["name", "company", "duration_minutes", "buffer_minutes", "price", "resource_kind", "active"]
    list_filter = ["active", "resource_kind"]
    search_fields = ["name"]
    list_select_related = ["company"]
    fields = ["company", "name", "duration_minutes", "buffer_minutes", "price", "resource_kind", "active"]


@admin.register(Resource)
class ResourceAdmin(TenantAdmin):
    list_display = ["name", "kind", "company", "active"]
    list_filter = ["kind", "active"]
    search_fields = ["name"]
    list_select_related = ["company"]
    fields = ["company", "name", "kind", "active"]


@admin.register(Closure)
class ClosureAdmin(TenantAdmin):
    list_display = ["first_day", "last_day", "reason", "company"]
    search_fields = ["reason"]
    list_select_related = ["company"]
    fields = ["company", "first_day", "last_day", "reason"]


@admin.display(description="closures")
def company_closures(model_admin, company: Company):
    """Beside the company's opening hours: its closures from today on, each linked, and a link to add one."""
    if company is None or company.pk is None:
        return "Save the company first; then add its closures here."
    upcoming = Closure.objects.filter(company=company, last_day__gte=timezone.localdate(timezone.now(), company.zone))
    rows = format_html_join("", '<li><a href="{}">{}</a></li>',
                            ((reverse("admin:appointments_closure_change", args=[c.pk]), str(c)) for c in upcoming))
    return format_html('{}<a href="{}?company={}" class="addlink">Add a closure</a>',
                       format_html("<ul>{}</ul>", rows) if rows else "No closures ahead. ",
                       reverse("admin:appointments_closure_add"), company.pk)


CompanyAdmin.company_closures = company_closures
CompanyAdmin.beside_opening_hours.append("company_closures")


@admin.register(FunctionInvocation)
class FunctionInvocationAdmin(ReadOnlyTenantAdmin):
    """What each custom-function request of a call ran and answered, numbered in the call; the
    retries Retell sent of it were answered with the same result (counted, not listed)."""

    list_display = ["created_at", "company", "call_id", "seq", "name", "retries_answered"]
    list_filter = ["name"]
    search_fields = ["call_id"]
    list_select_related = ["company"]
    fields = ["created_at", "company", "call_id", "seq", "name", "args", "result", "retries_answered", "args_hash"]
    readonly_fields = fields


def _admin_zone(request):
    """The time zone list filters count days in: the user's first company's, else the server's."""
    for membership in user_memberships(request.user):
        return Company.objects.get(pk=membership.company_id).zone
    return timezone.get_default_timezone()


class WhenFilter(admin.SimpleListFilter):
    title = "date"
    parameter_name = "when"

    def lookups(self, request, model_admin):
        return [("today", "Today"), ("tomorrow", "Tomorrow"), ("week", "Next 7 days"),
                ("upcoming", "Upcoming"), ("past", "Past")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        zone = _admin_zone(request)
        now = timezone.now()
        today = now.astimezone(zone).date()
        ranges = {
            "today": day_bounds(today, zone),
            "tomorrow": day_bounds(today + timedelta(days=1), zone),
            "week": (day_bounds(today, zone)[0], day_bounds(today + timedelta(days=7), zone)[0]),
        }
        if self.value() in ranges:
            low, high = ranges[self.value()]
            return queryset.filter(start__gte=low, start__lt=high)
        if self.value() == "upcoming":
            return queryset.filter(start__gte=now)
        if self.value() == "past":
            return queryset.filter(start__lt=now)
        return queryset


class WallClockField(forms.SplitDateTimeField):
    """A day and a time as entered, kept naive: the form reads them in the company's zone, not the active one.

    (Django's own field reads them in the active zone and refuses a repeated time.)
    """

    def compress(self, data_list):
        if not data_list:
            return None
        if data_list[0] in self.empty_values:
            raise ValidationError(self.error_messages["invalid_date"], code="invalid_date")
        if data_list[1] in self.empty_values:
            raise ValidationError(self.error_messages["invalid_time"], code="invalid_time")
        return datetime.combine(*data_list)


class AppointmentForm(forms.ModelForm):
    """Start is entered as wall-clock time of the appointment's company; phone in any common form."""

    actor: Actor
    original: Appointment | None = None

    start = WallClockField(widget=AdminSplitDateTime, help_text=(
        "In the company's time zone; in the hour that repeats when the clocks go back, the first "
        "(summer time) one. The end follows from the service."))

    class Meta:
        model = Appointment
        fields = ["company", "customer_name", "phone", "service", "resource", "start", "status", "notes"]

    def clean_phone(self):
        phone = self.cleaned_data.get("phone", "")
        company = self.cleaned_data.get("company") or getattr(self.instance, "company", None)
        if phone:
            phone = selectors.phone_e164(company=company, number=phone) if company else normalize_e164(phone)
        return phone

    def clean(self):
        cleaned = super().clean()
        company = cleaned.get("company") if "company" in self.fields else None
        company = company or (self.instance.company if self.instance.company_id else None)
        entered = cleaned.get("start")
        if entered is None:
            return cleaned
        try:
            cleaned["start"] = start = self._instant(
                entered, company.zone if company is not None else timezone.get_current_timezone())
        except NonexistentLocalTime as gap:
            self.add_error("start", f"{gap}.")
            return cleaned
        if company is None or self.errors:
            return cleaned
        service, resource = cleaned.get("service"), cleaned.get("resource")
        duration, buffer = selectors.service_span(service)
        self.instance.start, self.instance.end = start, start + duration
        self.instance.blocked_until = start + duration + buffer
        original = self.original
        moving = original is None or (start, getattr(service, "pk", None), getattr(resource, "pk", None)) != (
            original.start, original.service_id, original.resource_id)
        if original is not None and moving and cleaned.get("status") != original.status:
            raise ValidationError("Move the appointment or change its status, one at a time.")
        if original is not None and moving and not original.is_active:
            raise ValidationError("Only a pending or confirmed appointment can be moved.")
        if moving:
            problem = selectors.slot_problem(
                company=company, service=service, start=start, exclude_pk=getattr(original, "pk", None),
                lanes=[resource] if resource is not None else None)
            if problem is not None:
                raise ValidationError({"start": self._refusal(company, service, start, problem)})
        return cleaned

    def _instant(self, entered: datetime, zone) -> datetime:
        """The instant (UTC) of the naive wall-clock time entered, read in `zone`."""
        original = self.original
        if original is not None and entered == original.start.astimezone(zone).replace(tzinfo=None):
            # Unchanged: keep the instant, also when it is the second occurrence of a repeated time.
            return original.start
        return wall_clock(entered.date(), entered.time(), zone)

    @staticmethod
    def _refusal(company, service, start, problem) -> str:
        text = {"past": "That time is in the past.", "closed": "The practice is closed that day.",
                "outside_hours": "That is outside the opening hours.",
                "taken": "That time is taken."}[problem.code]
        free = selectors.alternatives(company=company, service=service, wanted=start, now=timezone.now())
        if free:
            text += " Free: " + ", ".join(local_text(s, company.zone, "%a %d.%m. %H:%M") for s in free) + "."
        return text


@admin.register(Appointment)
class AppointmentAdmin(TenantAdmin):
    form = AppointmentForm
    list_display = ["start_local", "customer_name", "phone", "service", "resource", "status", "company", "call_id"]
    list_filter = ["status", ("service", admin.RelatedOnlyFieldListFilter), WhenFilter,
                   ("resource", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["customer_name", "phone", "call_id", "backend_id"]
    list_select_related = ["company", "service", "resource"]
    ordering = ["-start"]
    actions = ["confirm_selected", "cancel_selected"]
    readonly_fields = ["end_local", "call_id", "confirmed_at", "backend_id", "rescheduled_to", "created_at",
                       "updated_at"]

    def get_fields(self, request, obj=None):
        fields = ["company", "customer_name", "phone", "service", "resource", "start", "notes"]
        if obj is None:
            return fields
        return [*fields[:6], "end_local", "status", "notes", "call_id", "confirmed_at", "backend_id",
                "rescheduled_to", "created_at", "updated_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        original = Appointment.objects.filter(pk=obj.pk).first() if obj is not None else None
        return type(form.__name__, (form,), {"actor": Actor.from_request(request), "original": original})

    @admin.display(description="start", ordering="start")
    def start_local(self, obj: Appointment) -> str:
        return local_text(obj.start, obj.company.zone, "%a %d.%m.%Y %H:%M")

    @admin.display(description="end")
    def end_local(self, obj: Appointment) -> str:
        return f"{local_text(obj.end, obj.company.zone, '%a %d.%m.%Y %H:%M')} ({obj.company.timezone})"

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Show and read times in the appointment's company's zone.
        obj = self.get_object(request, object_id) if object_id else None
        zone = obj.company.zone if obj is not None else _admin_zone(request)
        with timezone.override(zone):
            return super().changeform_view(request, object_id, form_url, extra_context)

    # --- writes through the appointment services ------------------------------------------
    def save_instance(self, request, instance, m2m) -> None:
        actor = Actor.from_request(request)
        try:
            if instance._state.adding:
                saved = services.appointment_book(
                    actor=actor, company=instance.company, customer_name=instance.customer_name,
                    start=instance.start, service=instance.service, phone=instance.phone,
                    resource=instance.resource, notes=instance.notes, status=Appointment.Status.CONFIRMED)
                self._become(instance, saved)
                return
            original = Appointment.objects.get(pk=instance.pk)
            services.appointment_update(actor=actor, appointment=original, customer_name=instance.customer_name,
                                        phone=instance.phone, notes=instance.notes, status=instance.status)
            if (instance.start, instance.service_id, instance.resource_id) != (
                    original.start, original.service_id, original.resource_id):
                moved = services.appointment_reschedule(actor=actor, appointment=original, start=instance.start,
                                                        service=instance.service, resource=instance.resource)
                messages.info(request, f"Moved to appointment #{moved.pk}; this one is kept as rescheduled.")
            instance.refresh_from_db()
        except services.SlotUnavailable as refused:
            # Only when another booking took the time after the form was checked.
            raise PermissionDenied(f"The time was taken meanwhile ({refused.code}); please choose another.") from None

    @staticmethod
    def _become(instance: Appointment, saved: Appointment) -> None:
        for field in Appointment._meta.concrete_fields:
            setattr(instance, field.attname, getattr(saved, field.attname))
        instance._state.adding = False

    @admin.action(description="Confirm selected pending appointments", permissions=["change"])
    def confirm_selected(self, request, queryset):
        actor = Actor.from_request(request)
        changed = 0
        for appointment in queryset.filter(status=Appointment.Status.PENDING):
            if self.has_change_permission(request, appointment):
                services.appointment_update(actor=actor, appointment=appointment,
                                            status=Appointment.Status.CONFIRMED)
                changed += 1
        self.message_user(request, f"{changed} appointment(s) confirmed.")

    @admin.action(description="Cancel selected appointments", permissions=["change"])
    def cancel_selected(self, request, queryset):
        actor = Actor.from_request(request)
        changed = 0
        for appointment in queryset.filter(status__in=Appointment.ACTIVE_STATUSES):
            if self.has_change_permission(request, appointment):
                services.appointment_cancel(actor=actor, appointment=appointment, reason="in the admin")
                changed += 1
        self.message_user(request, f"{changed} appointment(s) cancelled.")

    # --- the day view ----------------------------------------------------------------------
    def get_urls(self):
        day = path("day/", self.admin_site.admin_view(self.day_view), name="appointments_appointment_day")
        return [day, *super().get_urls()]

    def day_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        companies = list(companies_allowing(user=request.user, model=Appointment, action="view").order_by("name"))
        company = companies[0] if companies else None
        if request.GET.get("company"):
            company = next((c for c in companies if str(c.pk) == request.GET["company"]), None)
            if company is None:
                raise Http404("No such company.")
        if company is None:
            raise Http404("No company to show.")
        try:
            day = date.fromisoformat(request.GET["day"]) if request.GET.get("day") else \
                timezone.now().astimezone(company.zone).date()
        except ValueError:
            raise Http404("The day is a date like 2026-03-23.") from None
        appointments = list(selectors.appointments_on_day(company=company, day=day,
                                                          queryset=self.get_queryset(request)))
        lanes = {r.pk: (str(r), []) for r in Resource.objects.filter(company=company, active=True)}
        unassigned = []
        for appointment in appointments:
            # Formatted here: templates would show aware times in the active zone, not the company's.
            appointment.time_range = (f"{local_text(appointment.start, company.zone, '%H:%M')}–"
                                      f"{local_text(appointment.end, company.zone, '%H:%M')}")
            if appointment.resource_id is None:
                unassigned.append(appointment)
            else:
                lanes.setdefault(appointment.resource_id, (str(appointment.resource), []))[1].append(appointment)
        columns = [(name, rows) for name, rows in lanes.values()]
        if unassigned or not columns:
            columns.insert(0, ("Practice (no staff or room)", unassigned))

        def link(other_day: date) -> str:
            return "?" + urlencode({"company": company.pk, "day": other_day.isoformat()})

        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Appointments on {speech.day_words(day, 'en')} {day.year}",
            "company": company,
            "companies": companies,
            "day": day,
            "columns": columns,
            "count": len(appointments),
            "previous_link": link(day - timedelta(days=1)),
            "next_link": link(day + timedelta(days=1)),
            "today_link": "?" + urlencode({"company": company.pk}),
            "windows": [f"{local_text(o, company.zone, '%H:%M')}–{local_text(c, company.zone, '%H:%M')}"
                        for o, c in selectors.opening_windows(company=company, day=day)],
            "closure": selectors.closure_on(company=company, day=day),
            "changelist_url": reverse("admin:appointments_appointment_changelist"),
        }
        return TemplateResponse(request, "admin/appointments/appointment/day_view.html", context)
