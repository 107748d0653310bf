"""Tenant-scoped reads of appointments: opening windows, free slots, alternatives, lookups.

Every function takes the company; times are aware datetimes, days are calendar days
in the company's time zone. Times given are normalised to UTC on entry and times
returned are UTC, so that all arithmetic and comparisons here are in real time (see
`appointments.localtime`); read them in the company's zone only to show them.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from tenants.models import Company
from tenants.validators import WEEKDAYS

from .localtime import as_utc, clock_reaches, day_bounds, is_second_occurrence
from .models import Appointment, Closure, Resource, Service
from .understanding import Period, match_services, understand

Lane = Resource | None


def phone_region(company: Company) -> str:
    """The country a company's numbers are read in: its own phone's, else by its language."""
    region = "DE" if company.language == "de" else "US"
    if company.phone:
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(company.phone)) or region
        except phonenumbers.NumberParseException:
            pass
    return region


def phone_e164(*, company: Company, number: str) -> str:
    """A number as said ('030 1234567', '49 151 23456789', 'null eins fünf eins …') in E.164, read in the
    company's own country (appointments.understanding); ValidationError when it is no valid number."""
    found = understand(number, region=phone_region(company), expecting="phone")
    if found.phone and found.phone != "caller":
        return found.phone
    raise ValidationError("%(value)s is not a phone number.", params={"value": number}, code="invalid_phone")


def default_duration() -> timedelta:
    return timedelta(minutes=settings.APPOINTMENT_DEFAULT_DURATION_MINUTES)


def service_span(service: Service | None) -> tuple[timedelta, timedelta]:
    """(duration, buffer) of a service, or the default for companies without a catalogue."""
    if service is None:
        return default_duration(), timedelta(0)
    return service.duration, service.buffer


def closure_on(*, company: Company, day: date) -> Closure | None:
    return Closure.objects.filter(company=company, first_day__lte=day, last_day__gte=day).first()


def opening_windows(*, company: Company, day: date) -> list[tuple[datetime, datetime]]:
    """The day's opening ranges as [opens, closes) UTC instants; empty when closed (weekly hours or a closure).

    A range keeps its wall-clock meaning across a change of the clocks: 01:00-04:00 is two
    real hours on the spring night, four on the autumn night. An edge inside the skipped
    hour is the moment the clocks jump past it; a range wholly inside it is dropped.
    """
    ranges = (company.opening_hours or {}).get(WEEKDAYS[day.weekday()], [])
    if not ranges or closure_on(company=company, day=day):
        return []
    zone = company.zone
    windows = [(clock_reaches(day, time.fromisoformat(opens), zone), clock_reaches(day, time.fromisoformat(closes), zone))
               for opens, closes in ranges]
    return [(opens, closes) for opens, closes in windows if opens < closes]


def lanes_for(*, company: Company, service: Service | None) -> list[Lane]:
    """Where a service can be booked: each active resource of the kind it needs, else the company's one lane.

    A company that has configured no resource of that kind books on the company lane,
    so its appointments never overlap at all.
    """
    if service is not None and service.resource_kind:
        resources = list(Resource.objects.filter(company=company, kind=service.resource_kind, active=True)
                         .order_by("name", "pk"))
        if resources:
            return resources
    return [None]


def _lane_key(lane: Lane) -> int | None:
    return lane.pk if lane is not None else None


def busy_intervals(*, company: Company, lanes: Iterable[Lane], start: datetime, end: datetime,
                   exclude_pk: int | None = None) -> dict[int | None, list[tuple[datetime, datetime]]]:
    """Per lane, the [start, blocked_until) intervals (UTC) of active appointments that touch [start, end)."""
    keys = {_lane_key(lane) for lane in lanes}
    lane_filter = Q(resource__isnull=True) if None in keys else Q(pk__in=[])
    if keys - {None}:
        lane_filter |= Q(resource_id__in=keys - {None})
    rows = (Appointment.objects.filter(company=company, status__in=Appointment.ACTIVE_STATUSES,
                                       start__lt=end, blocked_until__gt=start)
            .filter(lane_filter).exclude(pk=exclude_pk).values_list("resource_id", "start", "blocked_until"))
    busy: dict[int | None, list[tuple[datetime, datetime]]] = {key: [] for key in keys}
    for resource_id, busy_from, busy_until in rows:
        busy.setdefault(resource_id, []).append((busy_from, busy_until))
    return busy


def _free(intervals: list[tuple[datetime, datetime]], start: datetime, until: datetime) -> bool:
    return all(until <= busy_from or start >= busy_until for busy_from, busy_until in intervals)


@dataclass(frozen=True)
class SlotProblem:
    code: str  # past / closed / outside_hours / taken
    closure: Closure | None = None


def slot_problem(*, company: Company, service: Service | None, start: datetime, now: datetime | None = None,
                 exclude_pk: int | None = None, lanes: list[Lane] | None = None) -> SlotProblem | None:
    """Why `start` cannot be booked for `service`, or None when some lane is free then.

    `start` and `now` are aware datetimes (ValueError if naive, NonexistentLocalTime for a
    wall-clock time in a ZoneInfo that the clocks skip).
    """
    start, now = as_utc(start), as_utc(now or timezone.now())
    duration, buffer = service_span(service)
    if start < now:
        return SlotProblem("past")
    day = start.astimezone(company.zone).date()
    closure = closure_on(company=company, day=day)
    if closure is not None:
        return SlotProblem("closed", closure)
    windows = opening_windows(company=company, day=day)
    if not any(opens <= start and start + duration <= closes for opens, closes in windows):
        return SlotProblem("outside_hours")
    lanes = lanes if lanes is not None else lanes_for(company=company, service=service)
    busy = busy_intervals(company=company, lanes=lanes, start=start, end=start + duration + buffer,
                          exclude_pk=exclude_pk)
    if not any(_free(busy[_lane_key(lane)], start, start + duration + buffer) for lane in lanes):
        return SlotProblem("taken")
    return None


def free_lanes(*, company: Company, service: Service | None, start: datetime, lanes: list[Lane],
               exclude_pk: int | None = None) -> list[Lane]:
    """The lanes on which `service` can start at `start` (aware) without overlapping, in the order given."""
    start = as_utc(start)
    duration, buffer = service_span(service)
    busy = busy_intervals(company=company, lanes=lanes, start=start, end=start + duration + buffer,
                          exclude_pk=exclude_pk)
    return [lane for lane in lanes if _free(busy[_lane_key(lane)], start, start + duration + buffer)]


def free_starts(*, company: Company, service: Service | None, day: date, now: datetime,
                period: Period | None = None, exclude_pk: int | None = None) -> list[datetime]:
    """Every bookable start (UTC) on `day`, earliest first.

    The grid steps APPOINTMENT_SLOT_MINUTES of real time from each window's opening, so a
    time the clocks skip is never on it; a start that reads as the second occurrence of a
    repeated wall-clock time is left out, as a caller asking for that time means the first.
    """
    duration, buffer = service_span(service)
    now = as_utc(now)
    windows = opening_windows(company=company, day=day)
    if not windows:
        return []
    zone = company.zone
    if period is not None:
        low, high = clock_reaches(day, period.start, zone), clock_reaches(day, period.end, zone)
        windows = [(max(opens, low), min(closes, high)) for opens, closes in windows if opens < high and closes > low]
    lanes = lanes_for(company=company, service=service)
    step = timedelta(minutes=settings.APPOINTMENT_SLOT_MINUTES)
    busy = busy_intervals(company=company, lanes=lanes, start=windows[0][0] if windows else now,
                          end=(windows[-1][1] + buffer) if windows else now, exclude_pk=exclude_pk)
    starts = []
    for opens, closes in windows:
        candidate = opens
        while candidate + duration <= closes:
            if candidate >= now and not is_second_occurrence(candidate, zone) and any(
                    _free(busy[_lane_key(lane)], candidate, candidate + duration + buffer) for lane in lanes):
                starts.append(candidate)
            candidate += step
    return starts


def alternatives(*, company: Company, service: Service | None, wanted: datetime, now: datetime,
                 count: int | None = None, period: Period | None = None,
                 exclude_pk: int | None = None) -> list[datetime]:
    """The nearest free starts (UTC) to `wanted`: that day first (closest in real time), then the following days."""
    count = count or settings.APPOINTMENT_ALTERNATIVES
    wanted, now = as_utc(wanted), as_utc(now)
    zone = company.zone
    day = max(wanted, now).astimezone(zone).date()
    same_day = [s for s in free_starts(company=company, service=service, day=day, now=now, period=period,
                                       exclude_pk=exclude_pk) if s != wanted]
    chosen = sorted(same_day, key=lambda s: (abs(s - wanted), s))[:count]
    for offset in range(1, settings.APPOINTMENT_SEARCH_DAYS + 1):
        if len(chosen) >= count:
            break
        later = free_starts(company=company, service=service, day=day + timedelta(days=offset), now=now,
                            period=period, exclude_pk=exclude_pk)
        chosen += later[:count - len(chosen)]
    return sorted(chosen)


def free_starts_around(*, company: Company, service: Service | None, instant: datetime, now: datetime,
                       count: int | None = None, exclude_pk: int | None = None) -> list[datetime]:
    """The free starts (UTC) nearest to `instant` on both sides of it, earliest first.

    The last free start before `instant` and the first at or after it, then the next
    nearest in real time, from the calendar day of `instant` and the days either side
    (a gap at midnight has its two sides on two days); when no start follows there, the
    later ones come from the alternatives search of the following days.
    """
    count = count or settings.APPOINTMENT_ALTERNATIVES
    instant, now = as_utc(instant), as_utc(now)
    day = instant.astimezone(company.zone).date()
    pool = [start for offset in (-1, 0, 1)
            for start in free_starts(company=company, service=service, day=day + timedelta(days=offset), now=now,
                                     exclude_pk=exclude_pk)]
    before, after = [s for s in pool if s < instant], [s for s in pool if s >= instant]
    if not after:
        after = alternatives(company=company, service=service, wanted=instant, now=now, count=count,
                             exclude_pk=exclude_pk)
    chosen = before[-1:] + after[:1]
    rest = sorted(before[:-1] + after[1:], key=lambda s: (abs(s - instant), s))
    return sorted(chosen + rest[:max(count - len(chosen), 0)])


def services_named(*, company: Company, said: str) -> list[Service]:
    """The active services a caller's words name (appointments.understanding.match_services): one,
    several when the words fit several equally, or none."""
    offered = {service.name: service for service in active_services(company=company)}
    return [offered[name] for name in match_services(said or "", list(offered))]


def active_services(*, company: Company) -> list[Service]:
    return list(Service.objects.filter(company=company, active=True).order_by("name"))


def appointments_for_caller(*, company: Company, phone: str = "", name: str = "", day: date | None = None,
                            now: datetime | None = None) -> list[Appointment]:
    """The caller's upcoming active appointments: by phone, else by name; narrowed by name and day."""
    now = now or timezone.now()
    upcoming = (Appointment.objects.filter(company=company, status__in=Appointment.ACTIVE_STATUSES, end__gt=now)
                .select_related("service", "resource").order_by("start"))
    found = list(upcoming.filter(phone=phone)) if phone else []
    name = (name or "").strip()
    if found and name and len(found) > 1:
        narrowed = [a for a in found if name.lower() in a.customer_name.lower()]
        found = narrowed or found
    if not found and name:
        found = list(upcoming.filter(customer_name__iexact=name)) or list(upcoming.filter(customer_name__icontains=name))
    if day is not None:
        found = [a for a in found if a.start.astimezone(company.zone).date() == day]
    return found


def appointments_on_day(*, company: Company, day: date, queryset=None):
    """A day's appointments of a company (in its time zone, 23 to 25 hours), by start; `queryset` may pre-restrict them."""
    start, end = day_bounds(day, company.zone)
    queryset = queryset if queryset is not None else Appointment.objects.all()
    return (queryset.filter(company=company, start__gte=start, start__lt=end)
            .select_related("service", "resource").order_by("start", "pk"))
