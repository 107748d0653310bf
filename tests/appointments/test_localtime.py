"""A day and a wall-clock time in a zone become a real instant: skipped times refused, repeated ones the first."""

from datetime import UTC, date, datetime, time, timedelta

import pytest

from appointments.localtime import (NonexistentLocalTime, ambiguous_reading, as_utc, clock_reaches, day_bounds,
                                    is_ambiguous, is_second_occurrence, wall_clock)
from tests.appointments.conftest import BERLIN, NEW_YORK, berlin

# The changes of 2027: Berlin skips 02:00-03:00 on 28 March and repeats it on 31 October;
# New York skips 02:00-03:00 on 14 March and repeats 01:00-02:00 on 7 November.
BERLIN_SPRING, BERLIN_AUTUMN = date(2027, 3, 28), date(2027, 10, 31)
NEW_YORK_SPRING, NEW_YORK_AUTUMN = date(2027, 3, 14), date(2027, 11, 7)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_an_ordinary_wall_clock_time_is_its_instant_in_utc():
    instant = wall_clock(date(2027, 3, 29), time(10, 0), BERLIN)

    assert instant == utc(2027, 3, 29, 8, 0)
    assert instant.tzinfo is UTC


@pytest.mark.parametrize(("day", "zone", "before", "after"), [
    (BERLIN_SPRING, BERLIN, utc(2027, 3, 28, 0, 59, 59, 999999), utc(2027, 3, 28, 1, 0)),
    (NEW_YORK_SPRING, NEW_YORK, utc(2027, 3, 14, 6, 59, 59, 999999), utc(2027, 3, 14, 7, 0)),
])
def test_a_skipped_wall_clock_time_raises_naming_the_instants_around_the_gap(day, zone, before, after):
    with pytest.raises(NonexistentLocalTime) as gap:
        wall_clock(day, time(2, 30), zone)

    assert isinstance(gap.value, ValueError)
    assert (gap.value.day, gap.value.clock, gap.value.zone) == (day, time(2, 30), zone)
    assert (gap.value.before, gap.value.after) == (before, after)
    assert (gap.value.skipped_from, gap.value.skipped_to) == (time(2, 0), time(3, 0))
    assert gap.value.after.astimezone(zone).time() == time(3, 0)


def test_a_half_hour_change_skips_half_an_hour():
    from zoneinfo import ZoneInfo
    lord_howe = ZoneInfo("Australia/Lord_Howe")  # goes forward from 02:00 to 02:30

    with pytest.raises(NonexistentLocalTime) as gap:
        wall_clock(date(2027, 10, 3), time(2, 15), lord_howe)

    assert (gap.value.skipped_from, gap.value.skipped_to) == (time(2, 0), time(2, 30))
    assert wall_clock(date(2027, 10, 3), time(2, 30), lord_howe) == gap.value.after


def test_the_summer_occurrence_is_daylight_time_also_where_winter_time_is_the_zones_dst():
    from zoneinfo import ZoneInfo
    dublin = ZoneInfo("Europe/Dublin")  # its data calls winter time the (negative) daylight-saving time

    first = wall_clock(date(2027, 10, 31), time(1, 30), dublin)

    assert (ambiguous_reading(first, dublin), ambiguous_reading(first + timedelta(hours=1), dublin)) == (
        "daylight", "standard")


@pytest.mark.parametrize(("day", "clock", "zone", "first"), [
    (BERLIN_AUTUMN, time(2, 30), BERLIN, utc(2027, 10, 31, 0, 30)),
    (NEW_YORK_AUTUMN, time(1, 30), NEW_YORK, utc(2027, 11, 7, 5, 30)),
])
def test_a_repeated_wall_clock_time_is_its_first_occurrence_in_daylight_time(day, clock, zone, first):
    instant = wall_clock(day, clock, zone)

    assert instant == first
    assert ambiguous_reading(instant, zone) == "daylight"
    second = instant + timedelta(hours=1)
    assert second.astimezone(zone).time() == clock
    assert ambiguous_reading(second, zone) == "standard"
    assert is_second_occurrence(second, zone) and not is_second_occurrence(instant, zone)


def test_arithmetic_on_a_wall_clock_instant_is_real_time_across_the_repeated_hour():
    start = wall_clock(BERLIN_AUTUMN, time(2, 30), BERLIN)

    end = start + timedelta(minutes=30)

    assert end - start == timedelta(minutes=30)
    assert end.astimezone(BERLIN).isoformat() == "2027-10-31T02:00:00+01:00"


def test_a_time_read_only_once_is_not_ambiguous():
    assert not is_ambiguous(utc(2027, 10, 31, 2, 0), BERLIN)  # 03:00 CET
    assert ambiguous_reading(utc(2027, 10, 31, 2, 0), BERLIN) is None


@pytest.mark.parametrize(("day", "clock", "reads"), [
    (BERLIN_SPRING, time(2, 30), "2027-03-28T03:00:00+02:00"),  # inside the gap: the gap's end
    (BERLIN_SPRING, time(4, 0), "2027-03-28T04:00:00+02:00"),
    (BERLIN_AUTUMN, time(2, 30), "2027-10-31T02:30:00+02:00"),  # repeated: the first occurrence
])
def test_the_clock_reaches_a_time_at_its_instant_or_at_the_end_of_the_gap(day, clock, reads):
    assert clock_reaches(day, clock, BERLIN).astimezone(BERLIN).isoformat() == reads


@pytest.mark.parametrize(("day", "zone", "hours"), [
    (BERLIN_SPRING, BERLIN, 23), (BERLIN_AUTUMN, BERLIN, 25), (date(2027, 6, 1), BERLIN, 24),
    (NEW_YORK_SPRING, NEW_YORK, 23), (NEW_YORK_AUTUMN, NEW_YORK, 25),
])
def test_a_days_bounds_span_its_real_length(day, zone, hours):
    start, end = day_bounds(day, zone)

    assert end - start == timedelta(hours=hours)
    assert start.astimezone(zone).replace(tzinfo=None) == datetime.combine(day, time(0, 0))


def test_a_day_whose_midnight_is_skipped_starts_when_the_clocks_have_gone_forward():
    from zoneinfo import ZoneInfo
    havana = ZoneInfo("America/Havana")  # goes forward at midnight: 00:00 becomes 01:00

    start, end = day_bounds(date(2027, 3, 14), havana)

    assert start.astimezone(havana).isoformat() == "2027-03-14T01:00:00-04:00"
    assert end - start == timedelta(hours=23)


def test_as_utc_keeps_the_instant_refuses_naive_times_and_skipped_wall_clock_times():
    assert as_utc(berlin(2027, 10, 31, 2, 30)) == utc(2027, 10, 31, 0, 30)
    assert as_utc(berlin(2027, 10, 31, 2, 30)).tzinfo is UTC
    with pytest.raises(ValueError):
        as_utc(datetime(2027, 3, 29, 10, 0))
    with pytest.raises(NonexistentLocalTime):
        as_utc(berlin(2027, 3, 28, 2, 30))
