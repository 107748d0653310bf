"""Dates and times said in German or English resolve in the company's time zone, across DST changes."""

from datetime import UTC, date, datetime, time

import pytest

from appointments.understanding import UnclearDate, UnclearTime, parse_when
from tests.appointments.conftest import BERLIN, NEW_YORK, berlin, new_york

# Saturdays before the Europe/Berlin changes of 2026: to summer time on Sunday 29 March,
# back to winter time on Sunday 25 October.
SAT_BEFORE_SPRING = berlin(2026, 3, 28, 12, 0)
SAT_BEFORE_AUTUMN = berlin(2026, 10, 24, 12, 0)


def resolve(date_text, time_text="", *, now=SAT_BEFORE_SPRING, zone=BERLIN, language="de"):
    return parse_when(date_text, time_text, language=language, zone=zone, now=now)


def test_morgen_um_10_uhr_on_the_saturday_before_summer_time_is_10_oclock_summer_time():
    when = resolve("morgen um 10 Uhr")
    assert when.at(BERLIN) == berlin(2026, 3, 29, 10, 0)
    assert when.at(BERLIN).astimezone(BERLIN).utcoffset().total_seconds() == 2 * 3600
    assert when.at(BERLIN).astimezone(UTC) == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)


def test_morgen_um_10_uhr_on_the_saturday_before_winter_time_is_10_oclock_winter_time():
    when = resolve("morgen", "10 Uhr", now=SAT_BEFORE_AUTUMN)
    assert when.at(BERLIN).astimezone(UTC) == datetime(2026, 10, 25, 9, 0, tzinfo=UTC)


def test_uebermorgen_vormittag_is_the_monday_morning_after_the_change():
    when = resolve("übermorgen vormittag")
    assert when.day == date(2026, 3, 30)
    assert when.clock is None
    assert when.period.name == "morning"


def test_tomorrow_is_the_companys_tomorrow_not_utcs():
    # 23:30 UTC on Friday is already 00:30 on Saturday in Berlin.
    late_friday_utc = datetime(2026, 3, 27, 23, 30, tzinfo=UTC)
    assert resolve("morgen", now=late_friday_utc).day == date(2026, 3, 29)


@pytest.mark.parametrize(("date_text", "time_text", "expected"), [
    ("morgen um 10 Uhr", "", (date(2026, 3, 29), time(10, 0))),
    ("morgen", "14:30", (date(2026, 3, 29), time(14, 30))),
    ("nächsten Dienstag", "halb drei", (date(2026, 3, 31), time(14, 30))),
    ("am Dienstag", "viertel nach zehn", (date(2026, 3, 31), time(10, 15))),
    ("24.11.", "10 Uhr 30", (date(2026, 11, 24), time(10, 30))),
    ("24. November", "um 9", (date(2026, 11, 24), time(9, 0))),
    ("in drei Tagen", "um drei", (date(2026, 3, 31), time(15, 0))),
    ("nächste Woche Mittwoch", "16 Uhr", (date(2026, 4, 1), time(16, 0))),
    ("2026-04-02", "08:45", (date(2026, 4, 2), time(8, 45))),
    ("2026-04-02T11:15", "", (date(2026, 4, 2), time(11, 15))),
])
def test_german_phrases(date_text, time_text, expected):
    when = resolve(date_text, time_text)
    assert (when.day, when.clock) == expected


@pytest.mark.parametrize(("date_text", "period"), [
    ("Dienstagmorgen", "morning"), ("morgen früh", "morning"), ("Dienstag nachmittags", "afternoon"),
])
def test_german_parts_of_the_day(date_text, period):
    when = resolve(date_text)
    assert when.period.name == period
    assert when.clock is None


def test_heute_morgen_is_this_morning_not_tomorrow():
    when = resolve("heute morgen", now=berlin(2026, 3, 27, 7, 0))
    assert (when.day, when.period.name) == (date(2026, 3, 27), "morning")


# New York changes to summer time on Sunday 8 March 2026.
SAT_BEFORE_US_SPRING = new_york(2026, 3, 7, 9, 0)


def resolve_en(date_text, time_text=""):
    return parse_when(date_text, time_text, language="en", zone=NEW_YORK, now=SAT_BEFORE_US_SPRING)


def test_tomorrow_at_10_in_new_york_on_the_saturday_before_summer_time():
    when = resolve_en("tomorrow at 10")
    assert when.at(NEW_YORK) == new_york(2026, 3, 8, 10, 0)
    assert when.at(NEW_YORK).astimezone(UTC) == datetime(2026, 3, 8, 14, 0, tzinfo=UTC)


def test_next_tuesday_afternoon_is_the_coming_tuesday_in_the_afternoon():
    when = resolve_en("next Tuesday afternoon")
    assert when.day == date(2026, 3, 10)
    assert when.period.name == "afternoon"


@pytest.mark.parametrize(("date_text", "time_text", "expected"), [
    ("tomorrow", "10 am", (date(2026, 3, 8), time(10, 0))),
    ("day after tomorrow", "3 pm", (date(2026, 3, 9), time(15, 0))),
    ("Friday", "noon", (date(2026, 3, 13), time(12, 0))),
    ("November 24", "half past two", (date(2026, 11, 24), time(14, 30))),
    ("11/24", "ten o'clock", (date(2026, 11, 24), time(10, 0))),
    ("in 3 days", "at 4", (date(2026, 3, 10), time(16, 0))),
    ("April 2nd", "9:15", (date(2026, 4, 2), time(9, 15))),
    ("2026-04-02", "14:30", (date(2026, 4, 2), time(14, 30))),
])
def test_english_phrases(date_text, time_text, expected):
    when = resolve_en(date_text, time_text)
    assert (when.day, when.clock) == expected


def test_a_weekday_named_on_that_weekday_is_next_week():
    assert resolve_en("Saturday").day == date(2026, 3, 14)


def test_gibberish_is_unclear_not_a_guess():
    with pytest.raises(UnclearDate):
        resolve("blubb")
    with pytest.raises(UnclearTime):
        resolve("morgen", "irgendwann vielleicht")
