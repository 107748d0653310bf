"""Appointments on the nights the clocks change, in Berlin and New York: real lengths, no skipped times.

The rule: a wall-clock time the clocks skip is never offered and, asked for, is answered
with the nearest real free times; a wall-clock time that occurs twice means its first
occurrence (daylight time) and is read back saying so; opening hours keep their
wall-clock meaning (01:00-04:00 is two real hours in spring, four in autumn).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone as django_timezone

from appointments import selectors
from appointments.handlers import run_custom_function
from appointments.localtime import wall_clock
from appointments.models import Appointment, Service
from appointments.services import SlotUnavailable, appointment_book
from audit.actor import Actor
from tests.appointments.conftest import BERLIN, NEW_YORK
from tenants.roles import Role
from tests.factories import make_company, make_member, make_user

ACTOR = Actor.system("test")
EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ROUND_THE_CLOCK = {day: [["00:00", "23:59"]] for day in EVERY_DAY}
CALLER_DE, CALLER_EN = "+4915112345678", "+12125550100"


@dataclass(frozen=True)
class Place:
    """A 24/7 company's zone and its 2027 changes: `skipped` does not exist on `spring`, `repeated`
    occurs twice on `autumn`."""

    company: str  # the fixture
    service: str  # the fixture of its one 30-minute service
    zone: ZoneInfo
    spring: date
    autumn: date
    skipped: time
    repeated: time
    caller: str

    def now(self, day: date) -> datetime:
        """A week before `day`, at 9:00 local."""
        return wall_clock(day - timedelta(days=7), time(9, 0), self.zone)

    def reads(self, moments) -> list[str]:
        return [m.astimezone(self.zone).isoformat() for m in moments]


BERLIN_PLACE = Place("notdienst", "kontrolle_24h", BERLIN, date(2027, 3, 28), date(2027, 10, 31), time(2, 30),
                     time(2, 30), CALLER_DE)
NEW_YORK_PLACE = Place("night_desk", "checkup_24h", NEW_YORK, date(2027, 3, 14), date(2027, 11, 7), time(2, 30),
                       time(1, 30), CALLER_EN)
PLACES = pytest.mark.parametrize("place", [BERLIN_PLACE, NEW_YORK_PLACE], ids=["berlin", "new_york"])


@pytest.fixture
def notdienst(db):
    return make_company("Notdienst Mitte", slug="notdienst", timezone="Europe/Berlin", language="de",
                        phone="+493012345678", opening_hours=ROUND_THE_CLOCK)


@pytest.fixture
def night_desk(db):
    return make_company("Night Desk", slug="night-desk", timezone="America/New_York", language="en",
                        phone="+12125550134", opening_hours=ROUND_THE_CLOCK)


@pytest.fixture
def kontrolle_24h(notdienst):
    return Service.objects.create(company=notdienst, name="Kontrolle", duration_minutes=30)


@pytest.fixture
def checkup_24h(night_desk):
    return Service.objects.create(company=night_desk, name="Check-up", duration_minutes=30)


@pytest.fixture
def setting(request):
    """(company, service) of the parametrised place."""
    place = request.getfixturevalue("place")
    return request.getfixturevalue(place.company), request.getfixturevalue(place.service)


def stamp(day: date, clock: time) -> dict:
    # An ISO stamp keeps these tests independent of how spoken hours are understood.
    return {"date": f"{day.isoformat()}T{clock:%H:%M}", "time": ""}


def call(company, name, args, place, *, now):
    return run_custom_function(company=company, name=name, args=args, call_id=None, caller_number=place.caller,
                               now=now)


def book(company, start, service, *, now, name="Erika Muster", **kwargs):
    return appointment_book(actor=ACTOR, company=company, customer_name=name, start=start, service=service,
                            now=now, **kwargs)


# --- a skipped time is never offered and answered with the nearest real times -----------------
NEAREST_TO_THE_GAP = {
    "berlin": ["2027-03-28T01:45:00+01:00", "2027-03-28T03:00:00+02:00", "2027-03-28T03:15:00+02:00"],
    "new_york": ["2027-03-14T01:45:00-05:00", "2027-03-14T03:00:00-04:00", "2027-03-14T03:15:00-04:00"],
}
SKIPPED_MESSAGE = {
    "berlin": ("Am Sonntag, 28. März gibt es 2:30 Uhr nicht, weil die Uhren von 2 Uhr auf 3 Uhr vorgestellt "
               "werden. Frei wäre um 1:45 Uhr, um 3 Uhr oder um 3:15 Uhr."),
    "new_york": ("There is no 2:30 AM on Sunday, March 14, because the clocks go forward from 2 AM to 3 AM. "
                 "I could offer at 1:45 AM, at 3 AM or at 3:15 AM."),
}


def key(place: Place) -> str:
    return "berlin" if place is BERLIN_PLACE else "new_york"


@PLACES
@pytest.mark.django_db
def test_check_availability_of_a_skipped_time_says_it_does_not_exist_and_offers_the_times_around_it(place, setting):
    company, _ = setting

    result = call(company, "check_availability", stamp(place.spring, place.skipped), place,
                  now=place.now(place.spring))

    assert (result["ok"], result["available"], result["reason"]) == (True, False, "nonexistent_time")
    assert result["alternatives"] == NEAREST_TO_THE_GAP[key(place)]
    assert result["message"] == SKIPPED_MESSAGE[key(place)]


@PLACES
@pytest.mark.django_db
def test_booking_a_skipped_time_books_nothing_and_offers_the_times_around_it(place, setting):
    company, _ = setting

    result = call(company, "collect_appointment_information",
                  {"name": "Erika Muster", **stamp(place.spring, place.skipped)}, place, now=place.now(place.spring))

    assert (result["ok"], result["error"]) == (False, "nonexistent_time")
    assert result["alternatives"] == NEAREST_TO_THE_GAP[key(place)]
    assert result["message"] == SKIPPED_MESSAGE[key(place)]
    assert not Appointment.objects.exists()


@PLACES
@pytest.mark.django_db
def test_moving_to_a_skipped_time_keeps_the_appointment_and_offers_the_times_around_it(place, setting):
    company, service = setting
    now = place.now(place.spring)
    existing = book(company, wall_clock(place.spring - timedelta(days=1), time(10, 0), place.zone), service,
                    now=now, phone=place.caller)

    result = call(company, "change_appointment_details",
                  {"new_date": stamp(place.spring, place.skipped)["date"], "new_time": ""}, place, now=now)

    assert (result["ok"], result["error"]) == (False, "nonexistent_time")
    assert result["alternatives"] == NEAREST_TO_THE_GAP[key(place)]
    existing.refresh_from_db()
    assert existing.status == Appointment.Status.PENDING
    assert Appointment.objects.count() == 1


@PLACES
@pytest.mark.django_db
def test_the_slot_search_steps_real_time_and_offers_nothing_in_the_gap(place, setting):
    company, service = setting

    starts = selectors.free_starts(company=company, service=service, day=place.spring, now=place.now(place.spring))

    local = [s.astimezone(place.zone) for s in starts]
    assert not [t for t in local if time(2, 0) <= t.time() < time(3, 0)]
    assert all(b - a == timedelta(minutes=15) for a, b in zip(starts, starts[1:], strict=False))
    # 00:00 to 23:59 on a 23-hour day: 22 h 59 min, the last start 30 minutes before the close.
    assert (local[0].time(), local[-1].time(), len(starts)) == (time(0, 0), time(23, 15), 90)


@PLACES
@pytest.mark.django_db
def test_a_taken_time_next_to_the_gap_offers_real_neighbours_not_skipped_times(place, setting):
    company, service = setting
    now = place.now(place.spring)
    book(company, wall_clock(place.spring, time(3, 0), place.zone), service, now=now)

    with pytest.raises(SlotUnavailable) as refused:
        book(company, wall_clock(place.spring, time(3, 0), place.zone), service, now=now, name="Max")

    # 03:30 and 01:30 are 30 real minutes away; of 01:15 and 03:45 (45 minutes) the earlier.
    assert [t.time() for t in (a.astimezone(place.zone) for a in refused.value.alternatives)] == [
        time(1, 15), time(1, 30), time(3, 30)]


@pytest.mark.django_db
def test_a_skipped_midnight_offers_the_evening_before_and_the_first_times_after_the_gap():
    # Havana goes forward at midnight: the gap's two sides lie on two calendar days.
    havana = ZoneInfo("America/Havana")
    company = make_company("Guardia", slug="guardia", timezone=havana.key, language="en",
                           opening_hours=ROUND_THE_CLOCK)

    result = run_custom_function(company=company, name="check_availability", args={"date": "2027-03-14T00:30"},
                                 call_id=None, now=wall_clock(date(2027, 3, 7), time(9, 0), havana))

    assert result["reason"] == "nonexistent_time"
    assert result["alternatives"] == ["2027-03-13T23:15:00-05:00", "2027-03-14T01:00:00-04:00",
                                      "2027-03-14T01:15:00-04:00"]
    assert result["message"] == ("There is no 12:30 AM on Sunday, March 14, because the clocks go forward from "
                                 "12 AM to 1 AM. I could offer Saturday, March 13 at 11:15 PM, at 1 AM or at 1:15 AM.")


# --- a repeated time is its first occurrence, booked for its real length and read back ---------
REPEATED_BOOKED = {
    "berlin": ("Ich habe Ihnen den Termin am Sonntag, 31. Oktober um 2:30 Uhr Sommerzeit für Kontrolle "
               "eingetragen, auf den Namen Erika Muster."),
    "new_york": ("I have booked you in for Sunday, November 7 at 1:30 AM daylight time for a check-up, "
                 "under the name Erika Muster."),
}


@PLACES
@pytest.mark.django_db
def test_booking_a_repeated_time_books_its_first_occurrence_for_the_services_real_length(place, setting):
    company, _ = setting

    result = call(company, "collect_appointment_information",
                  {"name": "Erika Muster", **stamp(place.autumn, place.repeated)}, place,
                  now=place.now(place.autumn))

    assert result["ok"] is True, result
    appointment = Appointment.objects.get(pk=result["appointment_id"])
    assert appointment.end - appointment.start == timedelta(minutes=30)
    assert appointment.start == wall_clock(place.autumn, place.repeated, place.zone)
    assert appointment.start.astimezone(place.zone).fold == 0
    assert result["message"] == REPEATED_BOOKED[key(place)]


@PLACES
@pytest.mark.django_db
def test_check_availability_of_a_repeated_time_answers_for_the_first_occurrence_and_says_which(place, setting):
    company, _ = setting

    result = call(company, "check_availability", stamp(place.autumn, place.repeated), place,
                  now=place.now(place.autumn))

    assert (result["ok"], result["available"]) == (True, True)
    first = wall_clock(place.autumn, place.repeated, place.zone)
    assert result["start"] == first.astimezone(place.zone).isoformat()
    assert result["message"] == {
        "berlin": "Am Sonntag, 31. Oktober um 2:30 Uhr Sommerzeit ist noch frei.",
        "new_york": "Sunday, November 7 at 1:30 AM daylight time is available.",
    }[key(place)]


@PLACES
@pytest.mark.django_db
def test_moving_to_a_repeated_time_books_the_first_occurrence_for_the_real_length(place, setting):
    company, service = setting
    now = place.now(place.autumn)
    book(company, wall_clock(place.autumn - timedelta(days=1), time(10, 0), place.zone), service, now=now,
         phone=place.caller)

    result = call(company, "change_appointment_details",
                  {"new_date": stamp(place.autumn, place.repeated)["date"], "new_time": ""}, place, now=now)

    assert result["ok"] is True, result
    moved = Appointment.objects.get(pk=result["appointment_id"])
    assert moved.start == wall_clock(place.autumn, place.repeated, place.zone)
    assert moved.end - moved.start == timedelta(minutes=30)
    assert ("Sommerzeit" if place is BERLIN_PLACE else "daylight time") in result["message"]


@PLACES
@pytest.mark.django_db
def test_a_booking_that_ends_in_the_repeated_hour_lasts_its_real_length(place, setting):
    company, service = setting
    # Given in the zone, as a caller holding a local time passes it.
    last_first_slot = wall_clock(place.autumn, time(place.repeated.hour, 45), place.zone).astimezone(place.zone)

    appointment = book(company, last_first_slot, service, now=place.now(place.autumn))

    appointment.refresh_from_db()
    assert appointment.end - appointment.start == timedelta(minutes=30)
    assert appointment.end.astimezone(place.zone).time() == time(place.repeated.hour, 15)  # the second occurrence


@PLACES
@pytest.mark.django_db
def test_the_slot_search_never_offers_the_second_occurrence_of_a_repeated_time(place, setting):
    company, service = setting

    starts = selectors.free_starts(company=company, service=service, day=place.autumn, now=place.now(place.autumn))

    local = [s.astimezone(place.zone) for s in starts]
    assert not [t for t in local if t.fold == 1]
    assert [t.time() for t in local] == sorted(t.time() for t in local)  # each wall-clock reading once
    # 00:00 to 23:59 on a 25-hour day: 98 starts in real time, less the four of the second occurrence.
    assert len(starts) == 94


@PLACES
@pytest.mark.django_db
def test_a_start_before_the_repeated_hour_is_free_when_only_the_wall_clock_end_would_collide(place, setting):
    company, service = setting
    now = place.now(place.autumn)
    last_first_slot = wall_clock(place.autumn, time(place.repeated.hour, 45), place.zone)
    # 75 real minutes later (03:00 CET in Berlin, 02:00 EST in New York): only the wall-clock end of the
    # last first-occurrence slot (03:15 / 02:15) would reach into it, its real end does not.
    book(company, last_first_slot + timedelta(minutes=75), service, now=now)

    starts = selectors.free_starts(company=company, service=service, day=place.autumn, now=now)

    assert last_first_slot in starts


@PLACES
@pytest.mark.django_db
def test_a_taken_repeated_time_offers_the_nearest_times_in_real_time(place, setting):
    company, service = setting
    now = place.now(place.autumn)
    wanted = wall_clock(place.autumn, place.repeated, place.zone)
    book(company, wanted, service, now=now)

    with pytest.raises(SlotUnavailable) as refused:
        book(company, wanted, service, now=now, name="Max")

    # The first occurrence half an hour and more before; the times after the repeated hour are 90 minutes away.
    assert refused.value.alternatives == [wanted - timedelta(minutes=m) for m in (60, 45, 30)]


@pytest.mark.django_db
def test_a_taken_repeated_time_is_read_back_with_the_occurrence(notdienst, kontrolle_24h):
    place = BERLIN_PLACE
    now = place.now(place.autumn)
    book(notdienst, wall_clock(place.autumn, place.repeated, place.zone), kontrolle_24h, now=now)

    result = call(notdienst, "collect_appointment_information",
                  {"name": "Max", **stamp(place.autumn, place.repeated)}, place, now=now)

    assert result["error"] == "taken"
    assert result["message"] == ("Am Sonntag, 31. Oktober um 2:30 Uhr Sommerzeit ist leider schon belegt. "
                                 "Frei wäre um 1:30 Uhr, um 1:45 Uhr oder um 2 Uhr Sommerzeit.")


# --- buffers and opening hours across a change ---------------------------------------------------
@pytest.mark.django_db
def test_a_buffer_across_the_autumn_change_keeps_the_lane_for_its_real_length(night_desk, checkup_24h):
    place = NEW_YORK_PLACE
    cleaning = Service.objects.create(company=night_desk, name="Cleaning", duration_minutes=45, buffer_minutes=15)
    start = wall_clock(place.autumn, time(1, 0), place.zone).astimezone(place.zone)  # given in the zone

    appointment = book(night_desk, start, cleaning, now=place.now(place.autumn))

    appointment.refresh_from_db()
    assert appointment.end - appointment.start == timedelta(minutes=45)
    assert appointment.blocked_until - appointment.start == timedelta(hours=1)
    assert appointment.blocked_until.astimezone(place.zone).isoformat() == "2027-11-07T01:00:00-05:00"


@pytest.mark.django_db
def test_a_buffer_across_the_spring_gap_keeps_the_lane_for_its_real_length(notdienst, kontrolle_24h):
    place = BERLIN_PLACE
    long_one = Service.objects.create(company=notdienst, name="Behandlung", duration_minutes=60, buffer_minutes=30)
    start = wall_clock(place.spring, time(1, 30), place.zone).astimezone(place.zone)  # given in the zone

    appointment = book(notdienst, start, long_one, now=place.now(place.spring))

    appointment.refresh_from_db()
    assert appointment.end.astimezone(place.zone).isoformat() == "2027-03-28T03:30:00+02:00"
    assert appointment.blocked_until - appointment.start == timedelta(minutes=90)


NIGHT_SHIFT = {"sun": [["01:00", "04:00"]]}


@pytest.mark.parametrize(("zone", "day", "hours"), [
    (BERLIN, date(2027, 3, 28), 2), (BERLIN, date(2027, 10, 31), 4),
    (NEW_YORK, date(2027, 3, 14), 2), (NEW_YORK, date(2027, 11, 7), 4),
])
@pytest.mark.django_db
def test_opening_hours_across_a_change_keep_their_wall_clock_meaning(zone, day, hours):
    company = make_company("Nachtschicht", slug="nachtschicht", timezone=zone.key, opening_hours=NIGHT_SHIFT)
    service = Service.objects.create(company=company, name="Kontrolle", duration_minutes=30)

    [(opens, closes)] = selectors.opening_windows(company=company, day=day)
    starts = selectors.free_starts(company=company, service=service, day=day,
                                   now=datetime(2027, 1, 1, tzinfo=UTC))

    assert closes - opens == timedelta(hours=hours)
    assert (opens.astimezone(zone).time(), closes.astimezone(zone).time()) == (time(1, 0), time(4, 0))
    # Every real quarter hour that ends by the close, less the second occurrence of the repeated hour.
    assert len(starts) == {2: 7, 4: 15 - 4}[hours]


@pytest.mark.parametrize(("ranges", "reads"), [
    ([["02:30", "05:00"]], [("2027-03-28T03:00:00+02:00", "2027-03-28T05:00:00+02:00")]),
    ([["01:00", "02:30"]], [("2027-03-28T01:00:00+01:00", "2027-03-28T03:00:00+02:00")]),
])
@pytest.mark.django_db
def test_an_opening_or_closing_time_inside_the_gap_is_when_the_clocks_have_gone_forward(ranges, reads):
    company = make_company("Nachtschicht", slug="nachtschicht", timezone="Europe/Berlin",
                           opening_hours={"sun": ranges})

    windows = selectors.opening_windows(company=company, day=date(2027, 3, 28))

    assert [(o.astimezone(BERLIN).isoformat(), c.astimezone(BERLIN).isoformat()) for o, c in windows] == reads


@pytest.mark.django_db
def test_a_booking_at_an_opening_inside_the_gap_is_refused_only_where_the_clock_is_not_yet_open():
    company = make_company("Nachtschicht", slug="nachtschicht", timezone="Europe/Berlin",
                           opening_hours={"sun": [["02:30", "05:00"]]})
    now = BERLIN_PLACE.now(BERLIN_PLACE.spring)

    opened = book(company, wall_clock(date(2027, 3, 28), time(3, 0), BERLIN), None, now=now)
    with pytest.raises(SlotUnavailable) as refused:
        book(company, wall_clock(date(2027, 3, 28), time(1, 45), BERLIN), None, now=now)

    assert opened.pk
    assert refused.value.code == "outside_hours"


@pytest.mark.django_db
def test_a_day_lists_its_appointments_across_all_25_hours(notdienst, kontrolle_24h):
    place = BERLIN_PLACE
    now = place.now(place.autumn)
    first = book(notdienst, wall_clock(place.autumn, time(0, 0), place.zone), kontrolle_24h, now=now)
    last = book(notdienst, wall_clock(place.autumn, time(23, 15), place.zone), kontrolle_24h, now=now)
    book(notdienst, wall_clock(place.autumn + timedelta(days=1), time(0, 0), place.zone), kontrolle_24h, now=now)

    listed = list(selectors.appointments_on_day(company=notdienst, day=place.autumn))

    assert listed == [first, last]


# --- the admin: entering and showing times on the nights of a change -----------------------------
ADD = reverse("admin:appointments_appointment_add")
DAY = reverse("admin:appointments_appointment_day")


def next_change_day(zone: ZoneInfo, *, forward: bool) -> date:
    """The next day, two days ahead or later, on which the clocks in `zone` go forward (or back)."""
    day = django_timezone.now().date() + timedelta(days=2)
    while True:
        before = datetime.combine(day, time(0, 0), tzinfo=zone).utcoffset()
        after = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone).utcoffset()
        if before != after and (after > before) == forward:
            return day
        day += timedelta(days=1)


def admin_form(company, service, day: date, clock: str) -> dict:
    return {"customer_name": "Max Mustermann", "phone": "030 1234567", "service": service.pk, "resource": "",
            "start_0": day.isoformat(), "start_1": clock, "notes": "", "company": company.pk}


@pytest.fixture
def notdienst_owner(client, notdienst):
    client.force_login(make_member(notdienst, Role.OWNER))
    return client


@pytest.mark.django_db
def test_a_superuser_entering_a_skipped_time_gets_a_form_error_not_a_server_error(client, notdienst, kontrolle_24h):
    # A superuser's forms read times in the server's zone (UTC), where 02:30 exists.
    client.force_login(make_user(is_superuser=True))
    spring = next_change_day(BERLIN, forward=True)

    response = client.post(ADD, admin_form(notdienst, kontrolle_24h, spring, "02:30"))

    assert response.status_code == 200
    assert "does not exist" in response.context["adminform"].form.errors["start"][0]
    assert not Appointment.objects.exists()


@pytest.mark.django_db
def test_an_owner_entering_a_skipped_time_is_told_the_clocks_go_forward(notdienst_owner, notdienst, kontrolle_24h):
    spring = next_change_day(BERLIN, forward=True)

    response = notdienst_owner.post(ADD, admin_form(notdienst, kontrolle_24h, spring, "02:30"))

    assert response.status_code == 200
    error = response.context["adminform"].form.errors["start"][0]
    assert "the clocks go forward from 02:00 to 03:00" in error
    assert not Appointment.objects.exists()


@pytest.mark.django_db
def test_an_owner_entering_a_repeated_time_books_its_first_occurrence(notdienst_owner, notdienst, kontrolle_24h):
    autumn = next_change_day(BERLIN, forward=False)

    response = notdienst_owner.post(ADD, admin_form(notdienst, kontrolle_24h, autumn, "02:30"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    appointment = Appointment.objects.get()
    assert appointment.start == wall_clock(autumn, time(2, 30), BERLIN)
    assert appointment.end - appointment.start == timedelta(minutes=30)


@pytest.mark.django_db
def test_the_day_view_tells_the_two_occurrences_of_the_repeated_hour_apart(notdienst_owner, notdienst,
                                                                           kontrolle_24h):
    autumn = next_change_day(BERLIN, forward=False)
    first = wall_clock(autumn, time(2, 15), BERLIN)
    book(notdienst, first, kontrolle_24h, now=django_timezone.now())
    book(notdienst, first + timedelta(hours=1), kontrolle_24h, now=django_timezone.now(), name="Max")

    page = notdienst_owner.get(DAY, {"day": autumn.isoformat()}).content.decode()

    assert "02:15 CEST–02:45 CEST" in page
    assert "02:15 CET–02:45 CET" in page


@pytest.mark.django_db
def test_editing_an_appointment_in_the_second_occurrence_without_moving_it_keeps_its_time(notdienst_owner, notdienst,
                                                                                            kontrolle_24h):
    autumn = next_change_day(BERLIN, forward=False)
    second = wall_clock(autumn, time(2, 15), BERLIN) + timedelta(hours=1)  # 02:15 CET
    appointment = book(notdienst, second, kontrolle_24h, now=django_timezone.now(), status="confirmed")
    url = reverse("admin:appointments_appointment_change", args=[appointment.pk])

    response = notdienst_owner.post(url, {**admin_form(notdienst, kontrolle_24h, autumn, "02:15"),
                                          "customer_name": "Erika Muster-Neu", "status": "confirmed"})

    assert response.status_code == 302, response.context["adminform"].form.errors
    appointment.refresh_from_db()
    assert (appointment.customer_name, appointment.status, appointment.start) == (
        "Erika Muster-Neu", "confirmed", second)


@pytest.mark.django_db
def test_the_change_list_and_the_appointments_name_tell_the_two_occurrences_apart(notdienst_owner, notdienst,
                                                                                  kontrolle_24h):
    autumn = next_change_day(BERLIN, forward=False)
    first = book(notdienst, wall_clock(autumn, time(2, 15), BERLIN), kontrolle_24h, now=django_timezone.now())
    second = book(notdienst, first.start + timedelta(hours=1), kontrolle_24h, now=django_timezone.now())

    page = notdienst_owner.get(reverse("admin:appointments_appointment_changelist")).content.decode()

    assert f"{autumn:%d.%m.%Y} 02:15 CEST" in page and f"{autumn:%d.%m.%Y} 02:15 CET<" in page
    assert (str(first).endswith("02:15 CEST"), str(second).endswith("02:15 CET")) == (True, True)
