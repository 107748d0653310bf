"""What callers say, understood in one place: dates, times, names, phone numbers, services, intents.

The dialog engines (`understand`, on each caller turn), the custom-function handlers
(`parse_when`, on a function's `date` / `time` arguments, whether a caller, Retell's LLM or
an OpenAI-compatible LLM filled them) and the receptionist's read-back (`date_phrase`,
`spoken_date`, `spoken_time`) all use this package, so a phrase means the same everywhere.
Plain Python (no Django): `phonenumbers` for numbers, `zoneinfo` for days, `dateparser`
only as the last resort for a day phrase none of the patterns reads.

Days are language-neutral keys ("tomorrow", "wed", "next:wed", "11-24", "2026-11-24",
"week:next", "in:3", "dom:24"; see `resolve_day`); said back in either language with
`date_phrase`, which this package reads back to the same key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone

from .intents import intents_of, language_of, polarity, wants
from .lexicon import MONTH_NAMES, WEEKDAY_NAMES, WEEKDAYS
from .names import introduced_name, is_correction, name_from_answer
from .phones import read_phone
from .services import bare_answer, match_service, match_services, service_phrase
from .text import Scan, normalise
from .when import (
    PERIODS,
    Clock,
    Period,
    UnclearDate,
    UnclearTime,
    WhenReading,
    day_range,
    drop_agreeing_weekday,
    read_when,
    resolve_day,
)

__all__ = [
    "PERIODS", "Clock", "Period", "UnclearDate", "UnclearTime", "Understanding", "When", "bare_answer", "date_phrase",
    "day_range",
    "match_service", "match_services", "name_from_answer", "parse_when", "resolve_day", "spoken_date", "spoken_time",
    "understand", "WEEKDAYS", "WEEKDAY_NAMES",
]

TASK_INTENTS = ("reschedule", "cancel", "book", "availability")


@dataclass
class Understanding:
    """One caller turn, read. Fields not said are None / empty."""
    text: str
    intents: set = field(default_factory=set)
    yes: bool = False
    no: bool = False
    dates: list = field(default_factory=list)        # day keys, in the order said
    clock: Clock | None = None                       # the clock time said (am/pm possibly open)
    daypart: str | None = None                       # morning / noon / afternoon / evening / night
    period: Period | None = None                     # a part of the day or a range of hours
    shift_minutes: int | None = None                 # "eine Stunde später": +60
    name: str | None = None
    name_correction: bool = False                    # "nein, der Name ist …"
    phone: str | None = None                         # E.164, or "caller" for the caller's own number
    phone_said: str | None = None                    # digits heard that are no valid number
    service: str | None = None                       # a catalogue name, else the caller's words for one
    service_known: bool = False
    service_choices: list = field(default_factory=list)   # catalogue names matched equally well
    unclear: list = field(default_factory=list)      # fragments with meaning that could not be read
    language: str | None = None                      # "de" / "en" when the words say so clearly
    day_words: set = field(default_factory=set)      # words read as a day, a time or a number

    @property
    def date(self) -> str | None:
        return self.dates[-1] if self.dates else None

    @property
    def time(self) -> str | None:
        """The clock time as HH:MM by the default rule (no opening hours known)."""
        if self.clock is None:
            return None
        try:
            return self.clock.hhmm(period=self.period)
        except UnclearTime:
            return None

    @property
    def weekday(self) -> str | None:
        for key in reversed(self.dates):
            day = key.split(":")[-1]
            if day in WEEKDAYS:
                return day
        return None

    def has_details(self) -> bool:
        return bool(self.dates or self.clock or self.name or self.phone or self.service or self.daypart)


def understand(text: str, services=(), *, region: str | None = None, zone=None, today: date | None = None,
               language: str | None = None, expecting: str | None = None) -> Understanding:
    """Read one caller turn.

    `services`: the company's catalogue (names, or objects with `.name`); `region`: the
    ISO country numbers are read in; `zone` / `today`: the company's time zone and day
    (an ISO time with an offset is converted; a weekday that contradicts a date is unclear);
    `language`: the agent's, for 11/12 (month first in English); `expecting`: what the agent just asked for ("name", "time", "phone", ...), so a bare
    answer is read as that.
    """
    names = [getattr(s, "name", s) for s in services]
    result = Understanding(text=text)
    scan = Scan.of(text)
    lowered = normalise(text)
    phone_box: list = []
    reading: WhenReading = read_when(scan, zone=zone, language=language, time_field=expecting == "time",
                                     after_dates=lambda: phone_box.append(read_phone(scan, region,
                                                                                    expected=expecting == "phone")))
    phone, own = phone_box[0] if phone_box else (None, False)
    if phone is not None:
        result.phone, result.phone_said = (phone.e164, None) if phone.e164 else (None, phone.said)
    elif own:
        result.phone = "caller"
    result.unclear = list(reading.unclear)
    result.dates = _consistent(reading.dates, today, result)
    result.clock = reading.clock
    result.period = reading.period
    result.daypart = reading.period.name if reading.period and reading.period.name != "range" else None
    result.shift_minutes = reading.shift_minutes
    result.day_words = {w for start, end, what in scan.taken if what in ("date", "time", "iso", "phone")
                        for w in lowered[start:end].split()}

    choices = match_services(text, names) if names else []
    if len(choices) == 1:
        result.service, result.service_known = choices[0], True
    elif len(choices) > 1:
        result.service_choices = choices
    else:
        result.service = service_phrase(text, skip=result.day_words)

    result.intents = intents_of(text, has_when=bool(result.dates or result.clock or result.period))
    result.yes, result.no = polarity(text)
    result.language = language_of(lowered)
    service_words = {w.lower() for n in names for w in re.findall(r"[\wäöüß-]+", n)}
    result.name = introduced_name(text)
    if result.name and result.name.lower() in service_words:
        result.name = None
    if result.name is None and expecting == "name" and not (result.intents - {"greeting", "thanks"}):
        result.name = name_from_answer(text, allowed=result.day_words | service_words)
    result.name_correction = bool(result.name) and is_correction(text)
    if not (result.intents & {*TASK_INTENTS, "price", "hours"}):
        named = result.service_known or result.service_choices
        if (named and (result.dates or result.clock or result.period or wants(lowered))) or (
                result.service and wants(lowered)):
            result.intents.add("book")  # "Ich brauche eine Kontrolluntersuchung am Freitag"
    if result.shift_minutes and re.search(r"\btermin|\bappointment|\bit\b", lowered) and not (
            result.intents & {"cancel", "availability"}):
        result.intents.discard("book")
        result.intents.add("reschedule")  # "den Termin eine Stunde später"
    return result


def _consistent(keys: list[str], today: date | None, result: Understanding) -> list[str]:
    """A weekday said with a date is dropped when they agree, and unclear when they do not."""
    if today is None:
        return keys
    keys, conflict = drop_agreeing_weekday(keys, today)
    if conflict:
        result.unclear.append("weekday and date disagree")
    return keys


# --- for the appointment handlers ------------------------------------------------------------------

@dataclass(frozen=True)
class When:
    """What a function's date and time arguments say, resolved to a calendar day in the company's zone."""
    day: date | None = None
    clock: time | None = None
    period: Period | None = None
    span: tuple[date, date] | None = None    # a week or a weekend: no single day named
    instant: datetime | None = None          # an ISO stamp with an offset: exactly this moment

    def at(self, zone) -> datetime | None:
        """The instant (UTC) of day and clock in `zone` (None unless both are known).

        A repeated wall-clock time is its first occurrence, a skipped one raises
        appointments.localtime.NonexistentLocalTime; a stamp with an offset is its own instant.
        """
        if self.instant is not None:
            return self.instant.astimezone(timezone.utc)
        if self.day is None or self.clock is None:
            return None
        from appointments.localtime import wall_clock

        return wall_clock(self.day, self.clock, zone)


FILLER = {
    "am", "um", "den", "der", "die", "dem", "the", "on", "at", "bitte", "please", "so", "gegen", "für", "for", "of",
    "in", "und", "and", "ca", "circa", "about", "around", "uhr", "oclock", "ab", "this", "diesen", "diese", "dieser",
    "next", "nächsten", "nächste", "kommenden", "coming", "day", "tag", "zeit", "time", "gerne", "gern",
    "vielleicht", "maybe", "possible", "möglich", "ok", "okay", "termin", "appointment", "a", "an", "eine", "einen",
    "ja", "yes", "dann", "then", "lieber", "rather", "instead",
}


def _meaningful(text: str) -> bool:
    return any(word not in FILLER for word in re.findall(r"[\w'.]+", text))


def _dateparser_day(text: str, local_now: datetime, language: str) -> date | None:
    import dateparser

    parsed = dateparser.parse(text, languages=[language, "en" if language == "de" else "de"], settings={
        "RELATIVE_BASE": local_now.replace(tzinfo=None), "PREFER_DATES_FROM": "future",
        "DATE_ORDER": "DMY" if language == "de" else "MDY", "REQUIRE_PARTS": []})
    return parsed.date() if parsed else None


def parse_when(date_text: str = "", time_text: str = "", *, language: str, zone, now: datetime,
               opening_hours: dict | None = None) -> When:
    """Resolve a date and a time as said (or as ISO) to a day and a clock time in `zone`.

    `opening_hours` ({"mon": [["08:00", "18:00"]], ...}) decides an hour said without am/pm
    (see `Clock.resolve`). Raises UnclearDate / UnclearTime for anything said that cannot be
    read, or that says two different days or times; a week or a weekend gives `span`.
    """
    today = now.astimezone(zone).date()
    date_scan, time_scan = Scan.of(date_text), Scan.of(time_text)
    on_date = read_when(date_scan, language=language, zone=zone)
    on_time = read_when(time_scan, language=language, zone=zone, time_field=True)
    keys, conflict = drop_agreeing_weekday(on_date.dates or on_time.dates, today)
    if conflict:
        raise UnclearDate(date_text)
    days = set()
    span = None
    for key in keys:
        found = resolve_day(key, today)
        if found is None:
            span = day_range(key, today)
        else:
            days.add(found)
    if len(days) > 1:
        raise UnclearDate(date_text)
    day = next(iter(days)) if days else None
    date_rest = date_scan.rest()
    if day is None and span is None and date_text.strip():
        if on_date.unclear or not _meaningful(date_rest):
            raise UnclearDate(date_text)
        day = _dateparser_day(date_rest, now.astimezone(zone), language)
        if day is None:
            raise UnclearDate(date_text)
    clocks = on_time.clocks or on_date.clocks
    period = on_time.period or on_date.period
    if len({(c.hour, c.minute) for c in clocks}) > 1 or (time_text.strip() and on_time.unclear):
        raise UnclearTime(time_text)
    if time_text.strip() and not clocks and period is None and _meaningful(time_scan.rest()):
        raise UnclearTime(time_text)
    clock = None
    if clocks:
        ranges = []
        if day is not None and opening_hours:
            ranges = [(time.fromisoformat(a), time.fromisoformat(b))
                      for a, b in opening_hours.get(WEEKDAYS[day.weekday()], [])]
        clock = clocks[0].resolve(period=period, open_ranges=ranges)
    instant = (on_time.instants or on_date.instants or [None])[0]
    return When(day=day, clock=clock, period=period if clock is None else None, span=span if day is None else None,
                instant=instant if clock is not None else None)


# --- saying days and times back ---------------------------------------------------------------------

_SPANS = {
    "week:next": ("next week", "nächste Woche"), "week:this": ("this week", "diese Woche"),
    "week:after_next": ("the week after next", "übernächste Woche"),
    "week:next:early": ("early next week", "Anfang nächster Woche"),
    "week:this:late": ("the end of the week", "Ende der Woche"),
    "weekend": ("at the weekend", "am Wochenende"), "weekend:next": ("next weekend", "am nächsten Wochenende"),
}
_RELATIVE = {"today": ("today", "heute"), "tomorrow": ("tomorrow", "morgen"),
             "day_after_tomorrow": ("the day after tomorrow", "übermorgen")}
_WEEK_WORDS = {"this": ("this week", "diese Woche"), "next": ("next week", "nächste Woche"),
               "after_next": ("the week after next", "übernächste Woche")}


def _ordinal_en(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def date_phrase(key: str, language: str) -> str:
    """The day key as words that `understand` and `parse_when` read back to the same key."""
    en = language == "en"
    index = 0 if en else 1
    if key in _RELATIVE:
        return _RELATIVE[key][index]
    if key in _SPANS:
        return _SPANS[key][index]
    if key.startswith("next:"):
        day = WEEKDAY_NAMES[language][key[5:]]
        return f"next {day}" if en else f"nächsten {day}"
    if key in WEEKDAYS:
        return WEEKDAY_NAMES[language][key]
    if key.startswith("week:"):
        _, week, weekday = key.split(":")
        return f"{WEEKDAY_NAMES[language][weekday]} {_WEEK_WORDS[week][index]}"
    if key.startswith("in:"):
        days = int(key[3:])
        return f"in {days} days" if en else f"in {days} Tagen"
    if key.startswith("dom:"):
        return f"the {_ordinal_en(int(key[4:]))}" if en else f"am {int(key[4:])}."
    parts = key.split("-")
    if len(parts) == 3:
        return key
    month, day = int(parts[0]), int(parts[1])
    month_name = MONTH_NAMES[language][month - 1]
    return f"{month_name} {day}" if en else f"{day}. {month_name}"


def spoken_date(key: str, language: str, *, preposition: bool = True) -> str:
    """The day as said in a sentence: "tomorrow", "on Wednesday", "am Mittwoch" (or bare: "Wednesday")."""
    en = language == "en"
    if key in _RELATIVE or key in _SPANS or key.startswith(("next:", "in:")):
        return date_phrase(key, language)
    if key.startswith("dom:"):
        return (f"on the {_ordinal_en(int(key[4:]))}" if en else f"am {int(key[4:])}.") if preposition \
            else (f"the {_ordinal_en(int(key[4:]))}" if en else f"der {int(key[4:])}.")
    phrase = date_phrase(key, language)
    parts = key.split("-")
    if len(parts) == 3:
        year, month, day = (int(p) for p in parts)
        month_name = MONTH_NAMES[language][month - 1]
        phrase = f"{month_name} {day}, {year}" if en else f"{day}. {month_name} {year}"
    if not preposition:
        return phrase
    return f"on {phrase}" if en else f"am {phrase}"


def spoken_time(hhmm: str, language: str) -> str:
    """14:30 -> "2:30 pm" / "14:30 Uhr"; 09:00 -> "9 am" / "9 Uhr"."""
    hour, minute = (int(p) for p in hhmm.split(":"))
    if language == "de":
        return f"{hour} Uhr" if minute == 0 else f"{hour}:{minute:02d} Uhr"
    if (hour, minute) == (12, 0):
        return "noon"
    if (hour, minute) == (0, 0):
        return "midnight"
    suffix = "am" if hour < 12 else "pm"
    twelve = hour % 12 or 12
    return f"{twelve} {suffix}" if minute == 0 else f"{twelve}:{minute:02d} {suffix}"
