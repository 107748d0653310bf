"""Days and clock times as callers say them, in German and English.

`read_when(scan, ...)` takes the date and time phrases out of a `Scan` and returns a
`WhenReading`: the days said (as language-neutral keys, see `resolve_day`), the clock
time (a `Clock`, still open to am/pm where the caller left it open), a part of the day
or a range of hours, and the fragments that carried meaning but could not be read
(`unclear`, never guessed at). `parse_when` resolves a date and a time text against a
day in a time zone, for the appointment handlers; the receptionist keeps the keys.

Clock idioms read here: 14:30, 9.15 Uhr, 14h30, 10 Uhr, 10 Uhr 30, zehn Uhr dreißig,
um/gegen/so um/etwa 10, halb drei (2:30), viertel nach / vor zehn, viertel zehn (9:15),
dreiviertel zehn (9:45), fünf vor halb drei (2:25), zehn nach halb drei (2:40), kurz nach
drei, zwanzig vor vier; 10 am, 3 pm, ten o'clock, at ten, around 3, two thirty, ten oh
five, half past two, quarter past / to / of ten, ten past three, twenty to four, half
nine (9:30, British), noon, midnight, mittags, Mitternacht; "9 in the morning",
"3 nachmittags", "abends um 7". Ranges: zwischen 10 und 12, between 2 and 4, ab 14 Uhr,
after 3 pm, bis 11, before 10.

Hours said without am/pm or a part of the day are resolved by one rule (`Clock.resolve`):
the reading inside the opening hours when exactly one is, else 7 to 11 are morning and
1 to 6 afternoon; 12 is noon; 0 and 13 to 23 are what they say.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .lexicon import (
    DAYPART_WORDS,
    HOLIDAYS,
    MONTHS,
    NUMBER_WORDS,
    ORDINAL_WORDS,
    WEEKDAY_WORDS,
    WEEKDAYS,
    number_pattern,
    number_value,
)
from .text import Scan


class UnclearDate(ValueError):
    """A day was said that cannot be resolved."""


class UnclearTime(ValueError):
    """A time was said that cannot be resolved."""


# --- what is read ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """A part of the day, or a range of hours the caller named ("between 10 and 12")."""
    name: str          # morning / noon / afternoon / evening / night / range
    start: time
    end: time


PERIODS = {
    "morning": Period("morning", time(6, 0), time(12, 0)),
    "noon": Period("noon", time(11, 30), time(14, 0)),
    "afternoon": Period("afternoon", time(12, 0), time(18, 0)),
    "evening": Period("evening", time(17, 0), time(22, 0)),
    "night": Period("night", time(0, 0), time(6, 0)),
}


@dataclass(frozen=True)
class Clock:
    """A clock time as said. `hour` is 0-23 when `explicit` (24-hour form, am/pm, a part of the
    day said with it), else the 1-12 reading of a 12-hour clock face."""
    hour: int
    minute: int
    explicit: bool = False
    approximate: bool = False

    def resolve(self, *, period: Period | None = None, open_ranges: list[tuple[time, time]] = ()) -> time:
        """The time of day, by the one rule in the module docstring. Raises UnclearTime."""
        hour = self.hour
        if not self.explicit and 1 <= hour <= 11:
            morning, afternoon = time(hour, self.minute), time(hour + 12, self.minute)
            if period is not None and period.name != "range":
                hour += 12 if period.name in ("afternoon", "evening") or (
                    period.name == "noon" and hour <= 6) or (period.name == "night" and hour >= 7) else 0
            else:
                inside = [t for t in (morning, afternoon) if any(start <= t < end for start, end in open_ranges)]
                if len(inside) == 1:
                    hour = inside[0].hour
                elif hour <= 6:
                    hour += 12
        if not (0 <= hour <= 23 and 0 <= self.minute <= 59):
            raise UnclearTime(f"{hour}:{self.minute:02d}")
        return time(hour, self.minute)

    def hhmm(self, **kwargs) -> str:
        return self.resolve(**kwargs).strftime("%H:%M")


@dataclass
class WhenReading:
    dates: list[str] = field(default_factory=list)     # day keys, in the order said
    clocks: list[Clock] = field(default_factory=list)
    period: Period | None = None
    shift_minutes: int | None = None                   # "eine Stunde später": +60
    unclear: list[str] = field(default_factory=list)
    instants: list[datetime] = field(default_factory=list)   # ISO stamps with an offset, as said

    @property
    def clock(self) -> Clock | None:
        return self.clocks[0] if self.clocks else None


# --- patterns ------------------------------------------------------------------------------------

_N = number_pattern()
_HOUR = rf"(?P<hour>{_N})"
_MIN = rf"(?P<minute>{_N})"
_NOT_A_DURATION = (r"(?!\s*(?:tag|tage|tagen|woche|wochen|monat|monate|monaten|jahr|jahre|jahren|stunde|stunden"
                   r"|minute|minuten|mal|day|days|week|weeks|month|months|year|years|hour|hours|times|patient"
                   r"|personen|people|kinder|children)\b)")
_MONTH = "(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + ")"
_ORDINAL = "|".join(sorted(ORDINAL_WORDS, key=len, reverse=True))
_DAY_OF_MONTH = rf"(?P<day>\d{{1,2}}(?:\.|st|nd|rd|th)?|{_ORDINAL})"
_WEEKDAY = "(?P<weekday>" + "|".join(WEEKDAY_WORDS) + ")"
_YEAR = r"(?P<year>\d{4}|twenty\s+twenty[-\s](?:six|seven|eight|nine)|zweitausend(?:sechs|sieben|acht|neun)undzwanzig)"
_YEAR_WORDS = {"six": 2026, "seven": 2027, "eight": 2028, "nine": 2029, "sechs": 2026, "sieben": 2027, "acht": 2028,
               "neun": 2029}
_MERIDIEM = r"(?P<meridiem>am|pm)"
_DAYPART_AFTER = "(?P<daypart>" + "|".join(sorted(DAYPART_WORDS, key=len, reverse=True)) + ")"

_RELATIVE_DAYS = [
    (r"\b(?:the\s+)?day\s+after\s+tomorrow\b|\bübermorgen\b|\buebermorgen\b", "day_after_tomorrow"),
    (r"(?<!guten )\bmorgen\b|\btomorrow\b", "tomorrow"),
    (r"\bheute\b|\btoday\b", "today"),
]
_WEEKS = [
    (r"\bübernächste[nr]?\s+woche\b|\buebernaechste[nr]?\s+woche\b|\b(?:the\s+)?week\s+after\s+next\b", "week:after_next"),
    (r"\b(?:anfang|beginn)\s+(?:der\s+)?nächste[nr]?\s+woche\b|\bearly\s+next\s+week\b", "week:next:early"),
    (r"\bnächste[nr]?\s+woche\b|\bnaechste[nr]?\s+woche\b|\bkommende[nr]?\s+woche\b|\bnext\s+week\b"
     r"|\b(?:the\s+)?(?:coming|following)\s+week\b|\bin\s+der\s+nächsten\s+woche\b", "week:next"),
    (r"\bende\s+(?:der|dieser)\s+woche\b|\b(?:the\s+)?end\s+of\s+(?:the|this)\s+week\b|\blater\s+this\s+week\b",
     "week:this:late"),
    (r"\bdiese\s+woche\b|\bdieser\s+woche\b|\bthis\s+week\b|\bnoch\s+in\s+dieser\s+woche\b", "week:this"),
    (r"\b(?:am\s+|übers\s+)?(?:nächsten|kommenden)\s+wochenende\b|\bnext\s+weekend\b", "weekend:next"),
    (r"\b(?:am|übers|dieses|an\s+diesem)\s+wochenende\b|\b(?:at|on|over|this)\s+(?:the\s+)?weekend\b"
     r"|\bweekends\b|\bam\s+wochenende\b", "weekend"),
]


def _day_number(token: str) -> int | None:
    token = token.rstrip(".").lower()
    token = re.sub(r"(st|nd|rd|th)$", "", token) if token[:1].isdigit() else token
    if token.isdigit():
        return int(token)
    return ORDINAL_WORDS.get(token)


# --- reading -----------------------------------------------------------------------------------

def read_when(scan: Scan, *, language: str | None = None, zone: ZoneInfo | None = None,
              time_field: bool = False, after_dates=None) -> WhenReading:
    """Take the days and times out of `scan` (see the module docstring).

    `language` ("de"/"en") decides 11/12 (month/day in English, day/month in German);
    `zone` converts an ISO time with an offset to the company's wall clock; `time_field`:
    the whole text answers "what time?", so a bare number is an hour; `after_dates` runs once
    the written-out dates are out (ISO, 24.11., 11/24, "24. November"), before relative days
    and times are read (phone numbers are read there, before "10 30" could be a time).
    """
    reading = WhenReading()
    found: list[tuple[int, str]] = []  # (position, key) for dates
    _iso(scan, reading, found, zone)
    _numeric_dates(scan, found, language)
    _named_dates(scan, found)
    if after_dates is not None:
        after_dates()
    # "Bis wie viel Uhr …?", "what time …?": a question about a time, not a time said.
    scan.take(r"\b(?:bis|um|ab|von)?\s*wie\s*viel\s+uhr\b|\b(?:at|until|from)?\s*what\s+time\b", "question",
              lambda m: None)
    _relative_dates(scan, found, reading)
    clocks: list[tuple[int, Clock]] = []
    _clock_ranges(scan, reading, spans=True)
    _clock_idioms(scan, clocks)
    _clock_ranges(scan, reading, spans=False)
    _clocks(scan, clocks, time_field)
    reading.clocks.extend(clock for _, clock in sorted(clocks, key=lambda item: item[0]))
    _dayparts(scan, reading)
    _shifts(scan, reading)
    reading.dates = [key for _, key in sorted(found)]
    reading.clocks = _apply_daypart(reading.clocks, reading.period)
    _leftovers(scan, reading)
    return reading


def _iso(scan: Scan, reading: WhenReading, found: list, zone: ZoneInfo | None) -> None:
    pattern = (r"\b(\d{4})-(\d{2})-(\d{2})(?:[t ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
               r"\s?(z|[+-]\d{2}(?::?\d{2})?)?)?(?![\d:])")

    def handle(m: re.Match) -> bool:
        try:
            day = date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            reading.unclear.append(m.group(0).strip())
            return True
        if m[4] is None:
            found.append((m.start(), day.isoformat()))
            return True
        stamp = datetime(day.year, day.month, day.day, int(m[4]), int(m[5]))
        if m[7] and zone is not None:
            offset = m[7].upper().replace("Z", "+00:00")
            offset = offset if ":" in offset or len(offset) < 5 else offset[:3] + ":" + offset[3:]
            offset = offset if len(offset) > 3 else offset + ":00"
            aware = datetime.fromisoformat(stamp.isoformat() + offset)
            reading.instants.append(aware)
            stamp = aware.astimezone(zone).replace(tzinfo=None)
        found.append((m.start(), stamp.date().isoformat()))
        reading.clocks.append(Clock(stamp.hour, stamp.minute, explicit=True))
        return True

    scan.take(pattern, "iso", handle)


def _numeric_dates(scan: Scan, found: list, language: str | None) -> None:
    def dotted(m: re.Match) -> bool:
        day, month, year = int(m["d"]), int(m["m"]), m["y"]
        if not (1 <= day <= 31 and 1 <= month <= 12):
            return False
        found.append((m.start(), _date_key(day, month, year)))
        return True

    # 24.11.2026, 24.11.26, 24.11., and "am 24.11" (a day, by the word before it)
    scan.take(r"\b(?P<d>\d{1,2})\.\s?(?P<m>\d{1,2})\.\s?(?P<y>\d{4}|\d{2})?(?![\d:])", "date", dotted)
    scan.take(r"\b(?:am|den|vom|zum|bis|ab|on|the)\s+(?P<d>\d{1,2})\.(?P<m>\d{1,2})(?P<y>)(?![\d.:])", "date",
              dotted)

    def slashed(m: re.Match) -> bool:
        first, second = int(m[1]), int(m[2])
        month_first = (language == "en" and first <= 12) or second > 12
        day, month = (second, first) if month_first else (first, second)
        if not (1 <= day <= 31 and 1 <= month <= 12):
            return False
        found.append((m.start(), _date_key(day, month, m[3])))
        return True

    scan.take(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?\b", "date", slashed)


def _date_key(day: int, month: int, year: str | None) -> str:
    if year and not year.isdigit():
        year = str(next(value for word, value in _YEAR_WORDS.items() if re.search(rf"{word}(?:undzwanzig)?$", year)))
    if year:
        full = int(year) + (2000 if len(year) == 2 else 0)
        return f"{full:04d}-{month:02d}-{day:02d}"
    return f"{month:02d}-{day:02d}"


def _named_dates(scan: Scan, found: list) -> None:
    def day_month(m: re.Match) -> bool:
        day = _day_number(m["day"])
        if day is None or not 1 <= day <= 31:
            return False
        found.append((m.start(), _date_key(day, MONTHS[m["month"]], m["year"])))
        return True

    scan.take(rf"\b(?:(?:am|den|dem|on|the)\s+)?{_DAY_OF_MONTH}\s+(?:of\s+)?{_MONTH}\b(?:\s+{_YEAR}\b)?",
              "date", day_month)
    scan.take(rf"\b{_MONTH}\s+(?:the\s+)?{_DAY_OF_MONTH}(?![\d:])(?:,?\s+{_YEAR}\b)?", "date", day_month)
    holidays = "|".join(re.escape(h) for h in sorted(HOLIDAYS, key=len, reverse=True))
    scan.take(rf"\b(?:an\s+|am\s+|on\s+)?(?P<holiday>{holidays})\b", "date",
              lambda m: found.append((m.start(), HOLIDAYS[m["holiday"]])))

    def day_only(m: re.Match) -> bool:
        day = _day_number(m["day"])
        if day is None or not 1 <= day <= 31 or (m["day"].isdigit()):
            return False
        found.append((m.start(), f"dom:{day}"))
        return True

    # "am 24.", "the 24th", "am Vierundzwanzigsten": a day of the month, with an ordinal mark.
    scan.take(rf"\b(?:am|den|zum|bis\s+zum|on\s+the|the)\s+{_DAY_OF_MONTH}(?=\s|$)(?!\s*(?:uhr|minute))", "date",
              day_only)


def _relative_dates(scan: Scan, found: list, reading: WhenReading) -> None:
    # A weekday with a week: "Mittwoch nächste Woche", "nächste Woche Mittwoch", "Wednesday next week".
    weeks = "|".join(f"(?:{pattern})" for pattern, key in _WEEKS if key in ("week:next", "week:after_next",
                                                                               "week:this"))

    def weekday_in_week(m: re.Match) -> bool:
        week_text = m["week"]
        week = next(key for pattern, key in _WEEKS if re.fullmatch(pattern, week_text.strip()) or
                    re.search(pattern, week_text))
        found.append((m.start(), f"{week}:{WEEKDAY_WORDS[m['weekday']]}"))
        return True

    scan.take(rf"\b(?:am\s+|on\s+)?{_WEEKDAY}s?\s+(?:in\s+der\s+|of\s+)?(?P<week>{weeks})", "date", weekday_in_week)

    def weekdays_in_week(m: re.Match) -> bool:
        weekday_in_week(m)
        # "nächste Woche Montag oder Dienstag": the second weekday is in the same week.
        week = found[-1][1].rsplit(":", 1)[0]
        found.append((m.start("second"), f"{week}:{WEEKDAY_WORDS[m['second']]}"))
        return True

    scan.take(rf"(?P<week>{weeks})\s+(?:am\s+|on\s+)?{_WEEKDAY}s?\s+(?:oder|or|und|and)\s+(?:am\s+|on\s+)?"
              rf"(?P<second>{'|'.join(WEEKDAY_WORDS)})s?\b", "date", weekdays_in_week)
    scan.take(rf"(?P<week>{weeks})\s+(?:am\s+|on\s+)?{_WEEKDAY}s?\b", "date", weekday_in_week)
    for pattern, key in _WEEKS:
        scan.take(pattern, "date", lambda m, key=key: found.append((m.start(), key)))

    def in_days(m: re.Match) -> bool:
        count = 1 if m["n"] in ("einer", "einem", "a", "an", "one") else number_value(m["n"])
        if count is None:
            return False
        days = count * (7 if m["unit"].startswith(("woche", "week")) else 1)
        found.append((m.start(), f"in:{days}"))
        return True

    scan.take(rf"\b(?:heute\s+)?in\s+(?:about\s+|etwa\s+|ungefähr\s+)?(?P<n>einer|einem|a|an|{_N})\s+"
              r"(?P<unit>tagen|tag|days|day|wochen|woche|weeks|week)\b", "date", in_days)
    scan.take(rf"\b(?P<n>a|one|{_N})\s+(?P<unit>days?|weeks?)\s+(?:from\s+(?:today|now)|later)\b", "date", in_days)
    # "tomorrow … or else the day after": the day after the one just said.
    def and_the_day_after(m: re.Match) -> None:
        found.extend([(m.start(), "tomorrow"), (m.start("after"), "day_after_tomorrow")])
        scan.blank(m.start("after"), m.end("after"), "date")
        scan.blank(m.start(), m.start() + len(m.group(1)), "date")

    for m in list(re.finditer(r"\b(tomorrow|morgen)\b[^.?!]{0,80}?\b(?:or(?:\s+else)?|oder|sonst)\s+"
                              r"(?P<after>the\s+day\s+after|den\s+tag\s+danach|am\s+tag\s+danach)\b", scan.text)):
        and_the_day_after(m)
    for pattern, key in _RELATIVE_DAYS:
        scan.take(pattern, "date", lambda m, key=key: found.append((m.start(), key)))
    def tonight(m: re.Match) -> None:
        found.append((m.start(), "today"))
        reading.period = PERIODS["evening"]

    scan.take(r"\btonight\b", "date", tonight)
    # "this morning" is today's morning: "this" names the day, the part of the day is read later.
    scan.take(r"\bthis(?=\s+(?:morning|afternoon|evening)\b)", "date", lambda m: found.append((m.start(), "today")))

    def weekday(m: re.Match) -> bool:
        modifier = (m["modifier"] or "").strip()
        prefix = "next:" if modifier and modifier not in ("this", "diesen", "dieser", "on", "am") else ""
        found.append((m.start(), prefix + WEEKDAY_WORDS[m["weekday"]]))
        return True

    scan.take(rf"\b(?:(?P<modifier>next|this coming|this|coming|nächsten|nächster|naechsten|kommenden|kommender"
              rf"|diesen|dieser)\s+)?(?:(?:am|on)\s+)?{_WEEKDAY}s?\b", "date", weekday)


_FROM_WORDS = (r"ab|after|(?:irgendwann\s+)?nach|later\s+than|not\s+before|nicht\s+vor|no\s+earlier\s+than"
               r"|not\s+earlier\s+than|frühestens(?:\s+um)?|erst\s+ab|only\s+after|any\s*time\s+after")
_UNTIL_WORDS = r"bis|before|until|till|by|spätestens(?:\s+um)?|noch\s+vor|no\s+later\s+than|vor"


def _bound(words: list[str]) -> tuple[Clock, int] | None:
    """The clock time the first one to three `words` say, and how many words it took."""
    for count in range(min(3, len(words)), 0, -1):
        sub = Scan(" " + " ".join(words[:count]) + " ")
        clocks: list[tuple[int, Clock]] = []
        _clock_idioms(sub, clocks)
        _clocks(sub, clocks, time_field=True)
        if len(clocks) == 1 and not sub.rest():
            return clocks[0][1], count
    return None


def _clock_ranges(scan: Scan, reading: WhenReading, *, spans: bool) -> None:
    """Ranges of hours. `spans`: zwischen 10 und 12, between eight thirty and ten, von halb neun bis
    zehn (read before the clock idioms, whose times they hold); else one limit: ab 14 Uhr, after
    3 pm, nicht vor zehn, bis 11, spätestens um 11, by noon at the latest, "vor acht geht es
    nicht" / "anything before 9 doesn't work" (from then on); read after the idioms, so "five
    after nine" is a time."""
    def words_at(position: int) -> list[tuple[int, int, str]]:
        return [(m.start() + position, m.end() + position, m.group(0))
                for m in re.finditer(r"[^\s]+", scan.text[position:])][:8]

    def read(position: int):
        tokens = words_at(position)
        found = _bound([t[2].rstrip(".") for t in tokens])
        if found is None:
            return None
        clock, count = found
        return clock, tokens[count - 1][1]

    for m in list(re.finditer(r"\b(?:zwischen|between|von|from)\s+", scan.text) if spans else ()):
        first = read(m.end())
        if first is None:
            continue
        link = re.match(r"\s+(?:und|and|bis|to|till|until|-)\s+", scan.text[first[1]:])
        if link is None:
            continue
        second = read(first[1] + link.end())
        if second is None:
            continue
        start = first[0].resolve()
        end = second[0].resolve(open_ranges=[(start, time(23, 59))])
        if end > start:
            reading.period = Period("range", start, end)
            scan.blank(m.start(), second[1], "time")

    if spans:
        return
    for m in list(re.finditer(rf"\b(?:{_FROM_WORDS}|{_UNTIL_WORDS})\s+", scan.text)):
        if scan.text[m.start():m.end()].strip() != m.group(0).strip():
            continue
        bound = read(m.end())
        if bound is None or re.match(r"\s*(?:tag|tagen|woche|wochen|days?|weeks?|minuten|minutes|stunden|hours)\b",
                                     scan.text[bound[1]:]):
            continue  # "nach drei Tagen" is no time of day
        end = bound[1]
        word = m.group(0).strip()
        after = scan.text[end:]
        refused = re.match(r"[^.?!]*?\b(?:geht|gehts|geht's|kann ich)\b[^.?!]*\bnicht\b|[^.?!]*?\b(?:doesn'?t|does not|won'?t"
                           r"|can'?t|cannot)\b", after)
        latest = re.match(r"\s+(?:at\s+the\s+latest|spätestens)\b", after)
        if re.fullmatch(_FROM_WORDS, word) or (re.fullmatch(r"vor|before", word) and refused):
            reading.period = Period("range", bound[0].resolve(), time(23, 59))
        elif re.fullmatch(r"vor", word):
            continue  # "vor zehn" alone is "fünf vor" territory: read elsewhere or asked about
        else:
            reading.period = Period("range", time(0, 0), bound[0].resolve())
            if latest:
                end += latest.end()
        scan.blank(m.start(), end, "time")
        if refused and not re.fullmatch(_FROM_WORDS, word):
            scan.blank(end, end + refused.end(), "time")
    for m in list(re.finditer(r"\b(?P<a>[^\s]+(?:\s+[^\s]+)?)\s+at\s+the\s+latest\b", scan.text)):
        bound = _bound(m["a"].split())
        if bound is not None and bound[1] == len(m["a"].split()):
            reading.period = Period("range", time(0, 0), bound[0].resolve())
            scan.blank(m.start(), m.end(), "time")


def _clock(hour: int, minute: int, *, meridiem: str | None = None, approximate: bool = False) -> Clock | None:
    """A Clock from a reading; hours 13-23 and 0 are explicit, am/pm makes them explicit."""
    if not (0 <= minute <= 59) or not (0 <= hour <= 24):
        return None
    hour = 0 if hour == 24 else hour
    if meridiem == "pm":
        return Clock(hour if hour == 12 else (hour + 12) % 24, minute, explicit=True, approximate=approximate)
    if meridiem == "am":
        return Clock(0 if hour == 12 else hour, minute, explicit=True, approximate=approximate)
    return Clock(hour, minute, explicit=hour == 0 or hour >= 13, approximate=approximate)


def _offset_minutes(word: str) -> tuple[int, bool] | None:
    """The minutes of "fünf" / "viertel" / "quarter" / "kurz" (approximate) before nach/vor/past/to."""
    word = re.sub(r"\s+minuten?$|\s+minutes?$", "", word.strip())
    if word in ("viertel", "quarter", "a quarter"):
        return 15, False
    if word in ("half",):
        return 30, False
    if word in ("kurz", "ein paar", "paar", "a few", "a little", "just", "shortly", "a bit", "gleich"):
        return 5, True
    value = number_value(word)
    if value is None or not 1 <= value <= 29:
        return None
    return value, False


def _minus(hour: int, minute: int, minutes: int) -> tuple[int, int]:
    total = (hour * 60 + minute - minutes) % (24 * 60)
    return total // 60, total % 60


def _twelve(hour: int) -> int:
    """The hour before a German "halb"/"viertel" hour on a 12-hour face: halb eins is 12:30."""
    return hour if hour > 12 else (hour - 1) or 12


_APPROX = r"(?P<approx>gegen|etwa|ungefähr|ungefaehr|circa|ca|so\s+gegen|so\s+um|um\s+etwa|around|about)"
# Said before any clock idiom: "um halb drei", "gegen viertel nach zehn", "at half past two".
_LEAD = rf"(?:(?:{_APPROX}|um|at|so\s+um|by|punkt|make\s+(?:that|it))\s+)?"


def _approximate(m: re.Match) -> bool:
    return bool(m.groupdict().get("approx"))


def _adder(clocks: list[tuple[int, Clock]]):
    def add(m: re.Match, clock: Clock | None) -> bool:
        if clock is None:
            return False
        clocks.append((m.start(), clock))
        return True
    return add


def _clock_idioms(scan: Scan, clocks: list[tuple[int, Clock]]) -> None:
    """Times said relative to an hour: halb drei, fünf vor halb drei, quarter to ten, ten past three."""
    add = _adder(clocks)
    offset_word = (rf"(?P<offset>{_N}(?:\s+minuten?|\s+minutes?)?|viertel|a\s+quarter|quarter|kurz|ein\s+paar"
                   r"(?:\s+minuten)?|a\s+few\s+minutes|a\s+little|just|shortly|gleich)")

    def german_offset(m: re.Match) -> bool:
        offset = _offset_minutes(re.sub(r"\s+", " ", m["offset"]))
        hour = number_value(m["hour"])
        if offset is None or hour is None or hour > 24:
            return False
        minutes, approximate = offset
        base_hour, base_minute = (_twelve(hour), 30) if m["half"] else (hour, 0)
        if m["direction"] == "nach":
            total = base_hour * 60 + base_minute + minutes
            hour_out, minute_out = (total // 60) % 24, total % 60
        else:
            hour_out, minute_out = _minus(base_hour, base_minute, minutes)
            hour_out = hour_out or (12 if base_hour <= 12 else 0)
        explicit = hour > 12
        return add(m, Clock(hour_out, minute_out, explicit=explicit, approximate=approximate or _approximate(m)))

    scan.take(rf"\b{_LEAD}{offset_word}\s+(?P<direction>nach|vor)\s+(?P<half>halb\s+)?{_HOUR}\b(?:\s*uhr\b)?"
              rf"{_NOT_A_DURATION}", "time", german_offset)

    def english_offset(m: re.Match) -> bool:
        offset = _offset_minutes(re.sub(r"\s+", " ", m["offset"]))
        hour = number_value(m["hour"])
        if offset is None or hour is None or hour > 24:
            return False
        minutes, approximate = offset
        if m["direction"] in ("past", "after"):
            return add(m, _clock(hour, minutes, meridiem=m["meridiem"], approximate=approximate))
        back_hour, back_minute = _minus(hour, 0, minutes)
        if hour <= 12:
            back_hour = back_hour or 12
        clock = _clock(back_hour, back_minute, meridiem=m["meridiem"], approximate=approximate)
        return add(m, clock)

    def english_offset_half(m: re.Match) -> bool:
        offset = _offset_minutes(re.sub(r"\s+", " ", m["offset"]))
        hour = number_value(m["hour"])
        if offset is None or hour is None or not 1 <= hour <= 12:
            return False
        minutes, approximate = offset
        base = hour * 60 + 30 + (minutes if m["direction"] in ("past", "after") else -minutes)
        return add(m, _clock(base // 60, base % 60, meridiem=m["meridiem"], approximate=approximate))

    # "a little before half past two", "five after half past nine"
    scan.take(rf"\b{_LEAD}{offset_word}\s+(?P<direction>past|after|to|till|before)\s+half\s+past\s+{_HOUR}\b"
              rf"(?:\s*{_MERIDIEM}\b)?", "time", english_offset_half)
    scan.take(rf"\b{_LEAD}(?:{offset_word}|(?P<halfword>half))\s+(?P<direction>past|after|to|till|til|before|of)\s+"
              rf"{_HOUR}\b(?:\s*{_MERIDIEM}\b)?{_NOT_A_DURATION}", "time",
              lambda m: english_offset(m) if not m["halfword"] else add(
                  m, _clock(number_value(m["hour"]) or -1, 30, meridiem=m["meridiem"])))

    def half(m: re.Match) -> bool:
        hour = number_value(m["hour"])
        if hour is None or not 1 <= hour <= 24:
            return False
        return add(m, Clock(_twelve(hour) % 24, 30, explicit=hour > 12, approximate=_approximate(m)))

    scan.take(rf"\b{_LEAD}halb\s+{_HOUR}\b(?:\s*uhr\b)?", "time", half)

    def quarters(m: re.Match) -> bool:
        hour = number_value(m["hour"])
        if hour is None or not 1 <= hour <= 24:
            return False
        minute = 45 if m["kind"] in ("dreiviertel", "drei viertel") else 15
        return add(m, Clock(_twelve(hour) % 24, minute, explicit=hour > 12, approximate=_approximate(m)))

    scan.take(rf"\b{_LEAD}(?P<kind>dreiviertel|drei\s+viertel|viertel)\s+{_HOUR}\b(?:\s*uhr\b)?", "time", quarters)

    def british_half(m: re.Match) -> bool:
        hour = number_value(m["hour"])
        return add(m, _clock(hour, 30)) if hour is not None and 1 <= hour <= 12 else False

    scan.take(rf"\b{_LEAD}half\s+{_HOUR}\b", "time", british_half)


def _clocks(scan: Scan, clocks: list[tuple[int, Clock]], time_field: bool) -> None:
    add = _adder(clocks)

    def colon(m: re.Match) -> bool:
        return add(m, _clock(int(m["hour"]), int(m["minute"]), meridiem=m["meridiem"]))

    scan.take(rf"\b{_LEAD}(?P<hour>\d{{1,2}})[:.](?P<minute>\d{{2}})(?!\d|\.\d)\s*(?:uhr\b|h\b)?\s*{_MERIDIEM}?\b",
              "time", colon)
    if time_field:
        # "zehn oder elf Uhr", "ten or eleven": both hours are read, and two times are unclear.
        scan.take(rf"\b{_HOUR}(?=\s+(?:oder|or)\s+{_N}\b)", "time",
                  lambda m: add(m, _clock(number_value(m["hour"]), 0)) if number_value(m["hour"]) is not None
                  else False)
    scan.take(r"\b(?P<hour>\d{1,2})\s?h\s?(?P<minute>\d{2})\b", "time",
              lambda m: add(m, _clock(int(m["hour"]), int(m["minute"]))))

    def uhr(m: re.Match) -> bool:
        hour = number_value(m["hour"])
        minute = number_value(m["minute"]) if m["minute"] else 0
        if hour is None or minute is None:
            return False
        return add(m, _clock(hour, minute, approximate=bool(m["approx"])))

    approx = _APPROX
    # "eight in the morning", "drei nachmittags": the hour here; the part of the day is read later.
    daypart_next = r"(?=\s+(?:in\s+the\s+(?:morning|afternoon|evening)|at\s+night|morgens|abends|nachmittags|vormittags|früh))"
    scan.take(rf"\b(?:(?:{approx}|um|at)\s+)?{_HOUR}{daypart_next}", "time",
              lambda m: add(m, _clock(number_value(m["hour"]), 0, approximate=bool(m["approx"])))
              if number_value(m["hour"]) is not None else False)
    scan.take(rf"\b(?:(?:{approx}|um)\s+)?{_HOUR}\s*uhr(?:\s+{_MIN})?\b(?!\s*minuten)", "time", uhr)

    def english_pair(m: re.Match) -> bool:
        hour = number_value(m["hour"])
        minute = m["minute"].strip()
        minute_value = int(minute) if minute.isdigit() else (
            number_value(minute.split()[-1]) if minute.startswith(("oh ", "o ")) else number_value(minute))
        if hour is None or minute_value is None or not (1 <= hour <= 12) or not (0 <= minute_value <= 59):
            return False
        daypart_after = re.match(r"\s+(?:in\s+the\s+(?:morning|afternoon|evening)|at\s+night)", scan.text[m.end():])
        if not (m["lead"] or m["meridiem"] or time_field or daypart_after):
            return False
        return add(m, _clock(hour, minute_value, meridiem=m["meridiem"], approximate=bool(m["approx"])))

    english_minutes = ("(?P<minute>(?:oh|o)\\s+(?:one|two|three|four|five|six|seven|eight|nine)|"
                       + "|".join(sorted((w for w, n in NUMBER_WORDS.items() if 10 <= n <= 59 and w.isascii()
                                          and not w.endswith(("zig", "zehn", "elf", "ssig"))),
                                         key=len, reverse=True)) + r"|\d{2})")
    scan.take(rf"\b(?P<lead>(?:{approx}|at|by|for|um|make\s+(?:that|it))\s+)?{_HOUR}\s+{english_minutes}\b"
              rf"(?:\s*{_MERIDIEM}\b)?",
              "time", english_pair)

    def meridiem(m: re.Match) -> bool:
        hour = number_value(m["hour"])
        if hour is None or (m["meridiem"] and not 1 <= hour <= 12):
            return False
        return add(m, _clock(hour, 0, meridiem=m["meridiem"], approximate=bool(m["approx"])))

    scan.take(rf"\b(?:(?:{approx}|at|by|um)\s+)?{_HOUR}\s*(?:{_MERIDIEM}|oclock)\b", "time", meridiem)

    def at(m: re.Match) -> bool:
        hour = number_value(m["hour"])
        minute = number_value(m["minute"]) if m["minute"] else 0
        if hour is None or minute is None or hour > 24:
            return False
        return add(m, _clock(hour, minute, approximate=bool(m["approx"])))

    # "three-ish", "like eight": an hour, roughly.
    def roughly(m: re.Match) -> bool:
        hour = number_value(m["hour"])
        return add(m, _clock(hour, 0, approximate=True)) if hour is not None else False

    scan.take(rf"\b(?:like\s+)?{_HOUR}-?ish\b", "time", roughly)
    scan.take(rf"\blike\s+{_HOUR}(?=\s*(?:$|,|\.|\?|or\b|oclock))", "time", roughly)
    scan.take(rf"\b(?:{approx}|um|at|so\s+um|punkt|make\s+(?:that|it))\s+{_HOUR}(?:\s+{_MIN}(?![\d]))?\b{_NOT_A_DURATION}"
              r"(?!\s+(?:vor|nach|past|to|after|before)\b)", "time", at)

    def word_time(m: re.Match) -> bool:
        word = m["word"]
        if word in ("midnight", "mitternacht"):
            return add(m, Clock(0, 0, explicit=True, approximate=bool(m["approx"])))
        return add(m, Clock(12, 0, explicit=True, approximate=bool(m["approx"])))

    scan.take(rf"(?<!über )\b(?:{approx}\s+|um\s+|at\s+|zu\s+)?(?P<word>noon|midday|midnight|mitternacht|mittag|mittags)\b"
              r"(?!\s*zeit)", "time", lambda m: word_time(m) if not clocks else False)
    if time_field:
        def bare(m: re.Match) -> bool:
            hour = number_value(m["hour"])
            return add(m, _clock(hour, 0)) if hour is not None else False

        scan.take(rf"(?:^|(?<=\soder)|(?<=\sor))\s*{_HOUR}\s*$", "time", bare)


def _dayparts(scan: Scan, reading: WhenReading) -> None:
    def daypart(m: re.Match) -> bool:
        if re.search(r"\b(?:good|guten)\s+$", scan.text[:m.start()]):
            return False  # "Good morning" greets
        name = DAYPART_WORDS[m["daypart"]]
        if reading.period is None or reading.period.name != "range":
            reading.period = PERIODS[name]
        return True

    scan.take(rf"\b(?:am\s+|zum\s+|in\s+the\s+|im\s+)?{_DAYPART_AFTER}\b", "time", daypart)


_LATER = r"später|spaeter|nach\s+hinten|back|later|afterwards"
_EARLIER = r"früher|frueher|eher|vorziehen|vorverlegen|nach\s+vorne|earlier|sooner|forward|\bup\b"
_AMOUNT = (rf"(?P<amount>eine\s+halbe|einer\s+halben|half\s+an|a\s+couple\s+of|ein\s+paar|eine|einer|an|a|{_N})\s+"
           r"(?P<unit>stunden?|stündchen|viertelstunde|minuten?|hours?|minutes?)\b")


def _shifts(scan: Scan, reading: WhenReading) -> None:
    """An amount of time later or earlier than the time in question: "eine Stunde später", "um eine
    Viertelstunde vorziehen", "push it back by half an hour", "move it up by fifteen minutes"."""
    def minutes_of(m: re.Match) -> int | None:
        amount, unit = m["amount"], m["unit"]
        hours = unit.startswith(("stund", "hour"))
        if unit == "viertelstunde":
            return 15
        if amount in ("eine halbe", "einer halben", "half an"):
            return 30
        if amount in ("a couple of", "ein paar"):
            return 120 if hours else None
        count = 1 if amount in ("eine", "einer", "an", "a") else number_value(amount)
        if count is None:
            return None
        return count * (60 if hours else 1)

    for m in list(re.finditer(rf"\b(?:um\s+|by\s+)?{_AMOUNT}", scan.text)):
        minutes = minutes_of(m)
        if minutes is None:
            continue
        sentence = scan.text[max(0, m.start() - 60):m.end() + 60]
        later, earlier = re.search(_LATER, sentence), re.search(_EARLIER, sentence)
        if bool(later) == bool(earlier):
            continue
        reading.shift_minutes = minutes * (1 if later else -1)
        scan.blank(m.start(), m.end(), "time")
        word = later or earlier
        position = scan.text.find(word.group(0), max(0, m.start() - 60))
        if position >= 0:
            scan.blank(position, position + len(word.group(0)), "time")
        return


def _apply_daypart(clocks: list[Clock], period: Period | None) -> list[Clock]:
    """A part of the day said with an open hour fixes it: "um 3 nachmittags" is 15:00."""
    if period is None or period.name == "range":
        return clocks
    return [clock if clock.explicit else replace(clock, hour=clock.resolve(period=period).hour, explicit=True)
            for clock in clocks]


# Fragments that carry a day or a time: when one is left unread, the caller is asked, never guessed for.
_MEANINGFUL_LEFTOVER = re.compile(
    rf"\b(?:{_N}|quarter|half|viertel)\s+(?:nach|vor|past|to|till|after|before)(?:\s+halb)?\b"
    r"|\b(?:halb|viertel|dreiviertel|uhr|oclock)\b|\b(?:" + "|".join(WEEKDAY_WORDS) + r")\b"
    r"|\b(?:im|in|am|den|on|of|next|nächsten|anfang|ende|mitte|early|late|end of)\s+(?:" + "|".join(MONTHS) + r")\b")


def _leftovers(scan: Scan, reading: WhenReading) -> None:
    for fragment in re.split(r"\s{2,}|(?<=\s)\b(?:und|and|oder|or|aber|but)\b", scan.text):
        fragment = fragment.strip()
        if fragment and _MEANINGFUL_LEFTOVER.search(fragment):
            reading.unclear.append(fragment)
    if len({(c.hour, c.minute) for c in reading.clocks}) > 1:
        reading.unclear.append("two times")
    if not reading.clocks and reading.shift_minutes is None and re.search(
            r"\b(?:später|spaeter|früher|frueher|eher|later|earlier)\b", scan.text):
        reading.unclear.append("later or earlier, by how much")


# --- resolving ----------------------------------------------------------------------------------------

def _next_weekday(today: date, weekday: int) -> date:
    ahead = (weekday - today.weekday()) % 7
    return today + timedelta(days=ahead or 7)


def _monday(today: date, weeks_ahead: int) -> date:
    return today - timedelta(days=today.weekday()) + timedelta(days=7 * weeks_ahead)


def day_range(key: str, today: date) -> tuple[date, date] | None:
    """The first and last day of a key that names a span ("week:next", "weekend"), else None."""
    if key == "week:this":
        return today, _monday(today, 1) - timedelta(days=1)
    if key == "week:this:late":
        return max(today, _monday(today, 0) + timedelta(days=3)), _monday(today, 1) - timedelta(days=1)
    if key == "week:next":
        return _monday(today, 1), _monday(today, 2) - timedelta(days=1)
    if key == "week:next:early":
        return _monday(today, 1), _monday(today, 1) + timedelta(days=2)
    if key == "week:after_next":
        return _monday(today, 2), _monday(today, 3) - timedelta(days=1)
    if key in ("weekend", "weekend:next"):
        saturday = _monday(today, 0) + timedelta(days=5)
        if key == "weekend:next" or saturday + timedelta(days=1) < today:
            saturday += timedelta(days=7)
        return max(today, saturday), saturday + timedelta(days=1)
    return None


def resolve_day(key: str, today: date) -> date | None:
    """The calendar day a key names, relative to `today` in the company's zone (None for a span).

    Keys: today, tomorrow, day_after_tomorrow, in:<days>, mon..sun (the next one after
    today), next:<weekday> (the same), week:<next|this|after_next>:<weekday>, MM-DD (this
    year, or the next when it has passed), YYYY-MM-DD, dom:<day> (this month, or the next
    when it has passed). Raises UnclearDate for a day that does not exist (30 February).
    """
    fixed = {"today": 0, "tomorrow": 1, "day_after_tomorrow": 2}
    if key in fixed:
        return today + timedelta(days=fixed[key])
    if key.startswith("in:"):
        return today + timedelta(days=int(key[3:]))
    if key in WEEKDAYS or key.startswith("next:"):
        return _next_weekday(today, WEEKDAYS.index(key.split(":")[-1]))
    if key.startswith(("week:", "weekend")):
        parts = key.split(":")
        if parts[-1] in WEEKDAYS:
            weeks = {"this": 0, "next": 1, "after_next": 2}[parts[1]]
            return _monday(today, weeks) + timedelta(days=WEEKDAYS.index(parts[-1]))
        return None
    try:
        if key.startswith("dom:"):
            day = int(key[4:])
            year, month = today.year, today.month
            if day < today.day:
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            if day > calendar.monthrange(year, month)[1]:
                raise UnclearDate(key)
            return date(year, month, day)
        parts = [int(p) for p in key.split("-")]
        if len(parts) == 3:
            return date(*parts)
        found = date(today.year, parts[0], parts[1])
        return found if found >= today else date(today.year + 1, parts[0], parts[1])
    except ValueError:
        raise UnclearDate(key) from None


def drop_agreeing_weekday(keys: list[str], today: date) -> tuple[list[str], bool]:
    """("Donnerstag, den 3. Dezember") -> the date alone when the weekday agrees; the second
    value is True when a weekday and a date disagree."""
    weekdays = [k for k in keys if k in WEEKDAYS or k.startswith("next:")]
    dated = [k for k in keys if k[:1].isdigit() or k.startswith("dom:")]
    if len(keys) != 2 or len(weekdays) != 1 or len(dated) != 1:
        return keys, False
    if weekday_conflict(keys, today):
        return keys, True
    return [k for k in keys if k not in weekdays], False


def weekday_conflict(keys: list[str], today: date) -> bool:
    """A weekday said with a date that falls on another weekday ("Donnerstag, den 3. Dezember" on a Friday)."""
    weekdays = [k for k in keys if k in WEEKDAYS or k.startswith("next:")]
    dated = [k for k in keys if k not in weekdays]
    if len(weekdays) != 1 or len(dated) != 1:
        return False
    try:
        day = resolve_day(dated[0], today)
    except UnclearDate:
        return True
    return day is not None and WEEKDAYS[day.weekday()] != weekdays[0].split(":")[-1]
