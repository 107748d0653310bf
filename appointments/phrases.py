"""Dates and times as callers say them, in English or German, resolved in a company's time zone.

`parse_when(date_text, time_text, language=..., zone=..., now=...)` returns a `When`: a
calendar day, a wall-clock time and/or a part of the day. Nothing here reads the
clock: `now` is always passed in.

dateparser does the general work (month names, "24. November", "in drei Tagen",
"next week"...). It is wrapped where it falls short for a receptionist:
- relative days ("morgen", "übermorgen", "tomorrow") and weekdays with "next",
  "nächsten", "am", "this" are resolved here, as calendar days, never by adding 24
  hours to an instant (which is wrong across a DST change);
- parts of the day ("vormittag", "nachmittag", "abends", "morning", "afternoon") and
  German "Dienstagmorgen" / "heute morgen" (morning, not tomorrow);
- clock times: "um 10", "10 Uhr", "10 Uhr 30", "halb drei", "viertel nach zehn",
  "half past two", "3 pm", "14:30", number words;
- a day and a time become an aware datetime with `zoneinfo`, so 10:00 on the Sunday of
  the change to summer time is 10:00+02:00.
An hour from 1 to 7 said without am/pm or a part of the day is taken as afternoon
(a practice is not open at 3 at night).
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dateparser

from .localtime import local_datetime


class UnclearDate(ValueError):
    """The caller said a date we could not resolve."""


class UnclearTime(ValueError):
    """The caller said a time we could not resolve."""


@dataclass(frozen=True)
class Period:
    name: str  # morning / afternoon / evening
    start: time
    end: time


PERIODS = {
    "morning": Period("morning", time(6, 0), time(12, 0)),
    "afternoon": Period("afternoon", time(12, 0), time(18, 0)),
    "evening": Period("evening", time(17, 0), time(22, 0)),
}


@dataclass(frozen=True)
class When:
    day: date | None = None
    clock: time | None = None
    period: Period | None = None

    def at(self, zone: ZoneInfo) -> datetime | None:
        """The instant (UTC) of day and time in `zone` (None unless both are known); see localtime.wall_clock.

        A repeated time is its first occurrence; a skipped one raises NonexistentLocalTime.
        """
        if self.day is None or self.clock is None:
            return None
        return local_datetime(self.day, self.clock, zone)


NUMBER_WORDS = {
    # German
    "ein": 1, "eins": 1, "zwei": 2, "drei": 3, "vier": 4, "fünf": 5, "fuenf": 5, "sechs": 6, "sieben": 7,
    "acht": 8, "neun": 9, "zehn": 10, "elf": 11, "zwölf": 12, "zwoelf": 12, "dreizehn": 13, "vierzehn": 14,
    "fünfzehn": 15, "fuenfzehn": 15, "sechzehn": 16, "siebzehn": 17, "achtzehn": 18, "neunzehn": 19,
    "zwanzig": 20,
    # English
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12,
}
_NUM = r"(\d{1,2}|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")"

WEEKDAYS = {
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6,
    "montag": 0, "dienstag": 1, "mittwoch": 2, "donnerstag": 3, "freitag": 4, "samstag": 5, "sonnabend": 5,
    "sonntag": 6,
}
_WEEKDAY = "(" + "|".join(WEEKDAYS) + ")"

PERIOD_WORDS = {
    "vormittags": "morning", "vormittag": "morning", "morgens": "morning", "früh": "morning", "frueh": "morning",
    "morning": "morning",
    "nachmittags": "afternoon", "nachmittag": "afternoon", "afternoon": "afternoon",
    "abends": "evening", "abend": "evening", "evening": "evening", "tonight": "evening",
}

# Words that carry no date of their own once the rest is taken out.
FILLER = {
    "am", "um", "den", "der", "die", "dem", "the", "on", "at", "bitte", "please", "so", "gegen", "für",
    "for", "of", "in", "und", "and", "ca", "circa", "about", "around", "uhr", "o'clock", "oclock", "ab",
    "this", "diesen", "diese", "dieser", "next", "nächsten", "nächste", "kommenden", "coming", "day",
    "tag", "zeit", "time", "gerne", "gern", "vielleicht", "maybe", "possible", "möglich", "ok", "okay",
}


def _number(token: str) -> int:
    return int(token) if token.isdigit() else NUMBER_WORDS[token]


def _normalise(text: str) -> str:
    text = (text or "").lower().strip()
    text = text.replace("\u00a0", " ").replace(",", " ").replace("?", " ").replace("!", " ")
    text = re.sub(r"\b(a)\.m\.", "am", text)
    text = re.sub(r"\b(p)\.m\.", "pm", text)
    # "Dienstagmorgen", "Montagnachmittag": a weekday and a part of the day.
    text = re.sub(_WEEKDAY + r"(morgen|vormittag|nachmittag|abend)s?\b", r"\1 \2", text)
    # "heute morgen", "Dienstag morgen", "morgen früh" keep "morgen" as a time of day.
    text = re.sub(r"\b(heute|" + _WEEKDAY[1:-1] + r")\s+morgen\b", r"\1 morgens", text)
    return re.sub(r"\s+", " ", text)


def _take(pattern: str, text: str):
    """(match, text without the match) for the first match of `pattern`, else (None, text)."""
    match = re.search(pattern, text)
    if match is None:
        return None, text
    return match, (text[:match.start()] + " " + text[match.end():]).strip()


def _clock(hour: int, minute: int, *, suffix: str | None, period: Period | None) -> time:
    if suffix == "am":
        hour = 0 if hour == 12 else hour
    elif suffix == "pm":
        hour = hour if hour == 12 else hour + 12
    elif period is not None and period.name in ("afternoon", "evening") and hour < 12:
        hour += 12
    elif period is None and 1 <= hour <= 7:
        hour += 12  # "um drei" in a practice is 15:00
    elif hour == 0:
        hour = 12  # "halb eins" is 12:30
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise UnclearTime(f"{hour}:{minute:02d} is not a time of day")
    return time(hour, minute)


def _extract_period(text: str) -> tuple[Period | None, str]:
    for word in sorted(PERIOD_WORDS, key=len, reverse=True):
        match, rest = _take(r"(?:\bin the |\bam |\bzum )?\b" + re.escape(word) + r"\b", text)
        if match:
            return PERIODS[PERIOD_WORDS[word]], rest
    return None, text


def _extract_time(text: str, period: Period | None, *, bare_number: bool) -> tuple[time | None, str]:
    suffix = r"\s*(uhr|h|am|pm|o'clock|oclock)\b"
    patterns = [
        # 14:30, 9.15 uhr, 10:00 am
        (r"\b(\d{1,2})[:.](\d{2})(?:" + suffix + r")?", lambda m: (_number(m[1]), int(m[2]), m[3])),
        # 10 uhr 30
        (r"\b(\d{1,2}) uhr (\d{1,2})\b", lambda m: (_number(m[1]), int(m[2]), None)),
        # halb drei = 2:30; viertel nach zehn; viertel vor zehn; dreiviertel zehn
        (r"\bhalb " + _NUM + r"\b", lambda m: (_number(m[1]) - 1, 30, None)),
        (r"\bviertel nach " + _NUM + r"\b", lambda m: (_number(m[1]), 15, None)),
        (r"\b(?:viertel vor|dreiviertel) " + _NUM + r"\b", lambda m: (_number(m[1]) - 1, 45, None)),
        (r"\bhalf past " + _NUM + r"\b", lambda m: (_number(m[1]), 30, None)),
        (r"\bquarter past " + _NUM + r"\b", lambda m: (_number(m[1]), 15, None)),
        (r"\bquarter to " + _NUM + r"\b", lambda m: (_number(m[1]) - 1, 45, None)),
        # 10 uhr, 3 pm, ten o'clock
        (r"\b" + _NUM + suffix, lambda m: (_number(m[1]), 0, m[2])),
        # um 10, at ten, gegen 3
        (r"\b(?:um|at|gegen|around|ab) " + _NUM + r"\b", lambda m: (_number(m[1]), 0, None)),
        (r"\b(?:mittags?|noon|midday)\b", lambda m: (12, 0, "noon")),
    ]
    if bare_number:
        patterns.append((r"^" + _NUM + r"$", lambda m: (_number(m[1]), 0, None)))
    for pattern, read in patterns:
        match, rest = _take(pattern, text)
        if match is None:
            continue
        hour, minute, said = read(match)
        if said == "noon":
            return time(12, 0), rest
        said = said if said in ("am", "pm") else None
        return _clock(hour % 24 if hour >= 0 else 23, minute, suffix=said, period=period), rest
    return None, text


def _next_weekday(today: date, weekday: int) -> date:
    ahead = (weekday - today.weekday()) % 7
    return today + timedelta(days=ahead or 7)


def _extract_day(text: str, today: date, language: str) -> tuple[date | None, time | None, str]:
    """(day, time given with it in an ISO stamp, rest) from the relative and numeric forms."""
    match, rest = _take(r"\b\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?", text)
    if match:
        try:
            stamp = datetime.fromisoformat(match[0].upper())
        except ValueError:
            raise UnclearDate(match[0]) from None
        has_time = len(match[0]) > 10
        return stamp.date(), (stamp.time().replace(second=0, microsecond=0) if has_time else None), rest
    match, rest = _take(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})?(?!\d)", text)
    if match is None:
        match, rest = _take(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?\b", text)
        if match is not None and language == "en":
            match = (match[0], match[2], match[1], match[3])  # 11/24 is month/day in English
    if match is not None:
        day_n, month_n = int(match[1]), int(match[2])
        year = int(match[3]) if match[3] else today.year
        year += 2000 if year < 100 else 0
        try:
            found = date(year, month_n, day_n)
        except ValueError:
            raise UnclearDate(match[0]) from None
        if not match[3] and found < today:
            found = found.replace(year=found.year + 1)
        return found, None, rest
    for pattern, days in ((r"\b(übermorgen|uebermorgen|day after tomorrow)\b", 2),
                          (r"\b(morgen|tomorrow)\b", 1), (r"\b(heute|today|tonight)\b", 0)):
        match, rest = _take(pattern, text)
        if match:
            if days == 0 and match[1] == "tonight":
                rest = rest + " evening"
            return today + timedelta(days=days), None, rest
    next_week, rest_nw = _take(r"\b(next week|nächste woche|naechste woche|kommende woche)\b", text)
    match, rest = _take(r"\b(?:(?:next|this|on|coming|nächsten|nächster|nächste|naechsten|kommenden|"
                        r"kommender|diesen|am) )?" + _WEEKDAY + r"s?\b", rest_nw if next_week else text)
    if match:
        weekday = WEEKDAYS[match[1]]
        if next_week:
            monday = today - timedelta(days=today.weekday()) + timedelta(days=7)
            return monday + timedelta(days=weekday), None, rest
        return _next_weekday(today, weekday), None, rest
    if next_week:
        return today - timedelta(days=today.weekday()) + timedelta(days=7), None, rest_nw
    return None, None, text


def _meaningful(text: str) -> bool:
    return any(word not in FILLER for word in re.findall(r"[\w'.]+", text))


def _dateparser_day(text: str, local_now: datetime, language: str) -> date | None:
    other = "en" if language == "de" else "de"
    parsed = dateparser.parse(
        text, languages=[language, other],
        settings={
            # A naive wall-clock base: dateparser is asked for a calendar day only.
            "RELATIVE_BASE": local_now.replace(tzinfo=None),
            "PREFER_DATES_FROM": "future",
            "DATE_ORDER": "DMY" if language == "de" else "MDY",
            "REQUIRE_PARTS": [],
        })
    return parsed.date() if parsed else None


def parse_when(date_text: str = "", time_text: str = "", *, language: str, zone: ZoneInfo,
               now: datetime) -> When:
    """Resolve what a caller said about a day and a time, relative to `now` in `zone`.

    Raises UnclearDate / UnclearTime when something was said that cannot be resolved.
    """
    local_now = now.astimezone(zone)
    today = local_now.date()
    date_part, time_part = _normalise(date_text), _normalise(time_text)

    day, stamp_time, date_rest = _extract_day(date_part, today, language) if date_part else (None, None, "")
    if day is None and time_part:
        # "morgen um 10" may all arrive in the time field.
        day, stamp_time, time_part = _extract_day(time_part, today, language)

    period, time_part = _extract_period(time_part)
    if period is None:
        period, date_rest = _extract_period(date_rest)
    clock = stamp_time
    if clock is None and time_part:
        clock, time_part = _extract_time(time_part, period, bare_number=True)
    if clock is None and date_rest:
        clock, date_rest = _extract_time(date_rest, period, bare_number=False)
    if day is None and date_rest and _meaningful(date_rest):
        day = _dateparser_day(date_rest, local_now, language)
        date_rest = ""
    if date_part and day is None:
        raise UnclearDate(date_text)
    if time_part and clock is None and period is None and _meaningful(time_part):
        raise UnclearTime(time_text)
    return When(day=day, clock=clock, period=period)
