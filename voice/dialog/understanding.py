"""What a caller said, in English or German: the receptionist's language understanding.

Plain Python over the transcript text: `understand(text, services)` returns the
intents, a yes or no, dates, a time, a name, a phone number and a service it found.
Dates are kept as language-neutral keys ("tomorrow", "wed", "next:wed", "11-24",
"2026-11-24") and said back or handed to the appointment handlers in the agent's
language by `date_phrase` / `spoken_date`; the handlers resolve them in the
company's timezone (one place resolves dates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .base import ServiceInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_WORDS = {
    "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu", "friday": "fri",
    "saturday": "sat", "sunday": "sun",
    "montag": "mon", "dienstag": "tue", "mittwoch": "wed", "donnerstag": "thu", "freitag": "fri",
    "samstag": "sat", "sonnabend": "sat", "sonntag": "sun",
}
WEEKDAY_NAMES = {
    "en": {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
           "sat": "Saturday", "sun": "Sunday"},
    "de": {"mon": "Montag", "tue": "Dienstag", "wed": "Mittwoch", "thu": "Donnerstag", "fri": "Freitag",
           "sat": "Samstag", "sun": "Sonntag"},
}
MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12,
    "januar": 1, "jänner": 1, "februar": 2, "märz": 3, "mai": 5, "juni": 6, "juli": 7, "oktober": 10,
    "dezember": 12,
}
MONTH_NAMES = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "de": ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
           "November", "Dezember"],
}
RELATIVE_DAYS = {"today": ("today", "heute"), "tomorrow": ("tomorrow", "morgen"),
                 "day_after_tomorrow": ("the day after tomorrow", "übermorgen")}
NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12,
    "ein": 1, "eins": 1, "zwei": 2, "drei": 3, "vier": 4, "fünf": 5, "sechs": 6, "sieben": 7, "acht": 8,
    "neun": 9, "zehn": 10, "elf": 11, "zwölf": 12,
}
MINUTE_WORDS = {"fifteen": 15, "thirty": 30, "forty-five": 45, "forty five": 45, "fünfzehn": 15, "dreißig": 30,
                "dreissig": 30, "fünfundvierzig": 45}

_INTENT_PATTERNS = {
    "reschedule": r"reschedul\w*|move (?:my|the|it)\b|postpone|change (?:my|the) appointment|another (?:day|time)"
                  r"|verschieb\w*|umbuch\w*|umleg\w*|verleg\w*|anderen termin|termin ändern|ändern",
    "cancel": r"cancel\w*|call off|absag\w*|abzusagen|stornier\w*|streichen|nicht kommen",
    "book": r"\bbook\w*|appointment|schedule|make an? (?:appointment|booking)|come in|termin\w*|buchen|vereinbar\w*"
            r"|anmelden|reservier\w*",
    "availability": r"\bavailab\w*|\bfree\b|any (?:slots?|openings|time)|have (?:anything|something|time)|frei\b"
                    r"|freie[nm]?\b|verfügbar|noch platz|noch was|zeit hätten|zeit haben",
    "hours": r"opening hours|\bopen\b|\bclose[ds]?\b|closing|\bhours\b|öffnungszeit\w*|geöffnet|\boffen\b"
             r"|sprechzeit\w*|\b(?:haben|sind) sie\b[^.?!]*\b(?:auf|zu)\s*[?.!]?\s*$",
    "address": r"address|where are you|located|location|directions|find you|adresse|anschrift|wo sind sie"
               r"|wo finde|wo befinde|wegbeschreibung|wo ist die praxis",
    "price": r"how much|price|\bcosts?\b|\bfees?\b|charge|preis\w*|kostet|kosten|gebühr\w*",
    "human": r"human|real person|a person|someone|somebody|\bstaff\b|receptionist|operator|speak (?:to|with)"
             r"|talk (?:to|with)|mitarbeiter\w*|mensch\w*|jemand\w*|persönlich|durchstell\w*|verbind\w*"
             r"|rezeption",
    "goodbye": r"\bbye\b|goodbye|good bye|see you|tschüss?|auf wiederh\w*|auf wiederseh\w*|\bciao\b",
    "done": r"that'?s all|that is all|nothing else|no thanks|no thank you|das war'?s|das wäre alles|nichts weiter"
            r"|sonst nichts|nein danke",
    "thanks": r"\bthanks?\b|thank you|danke\w*",
    "greeting": r"\b(?:hello|hi|hey|hallo|servus|moin|grüß gott|guten (?:tag|morgen|abend))\b",
}
_YES = (r"yes|yeah|yep|yup|correct|right|sure|exactly|ok|okay|please do|sounds good|perfect|great|fine"
        r"|ja|jawohl|genau|richtig|stimmt|gerne?|passt|korrekt|einverstanden|prima|super")
_NO = r"no|nope|not|don't|dont|nein|nee|nö|nicht|falsch|lieber|instead|rather|actually|doch"
_POLAR = re.compile(rf"\b(?:(?P<no>{_NO})|(?P<yes>{_YES}))\b")

_NAME_INTRO = re.compile(
    r"(?:my name is|my name's|name is|this is|i am|i'm|it's|mein name ist|ich heiße|ich heisse|hier ist"
    r"|hier spricht|ich bin|name ist)\s+([A-ZÄÖÜ][\w'’-]+(?:\s+[A-ZÄÖÜ][\w'’-]+){0,2})", re.IGNORECASE)
_NOT_NAMES = {"calling", "looking", "interested", "not", "sorry", "just", "trying", "wondering", "a", "an",
              "the", "new", "patient", "patientin", "neupatient", "neupatientin", "kunde", "kundin", "hier",
              "leider", "nicht", "gerade", "noch", "sehr", "so", "also", "here", "still", "fine", "good", "ok",
              "okay", "going", "available", "free", "sure"}
_FILLERS = re.compile(
    r"^(?:(?:yes|yeah|sure|ok|okay|well|so|um|uh|hi|hello|it's|it is|that's|that is|my name is|name's|i'm|i am"
    r"|this is|the name is|ja|gerne|gern|also|äh|ähm|hallo|das ist|mein name ist|ich heiße|ich bin|hier ist"
    r"|sicher|klar|a|an|ein|eine|einen|for|für|i'd like|i would like|i need|i want|ich möchte|ich hätte gern"
    r"|ich brauche|please|bitte)\b[\s,.!]*)+", re.IGNORECASE)
_SERVICE_AFTER = re.compile(
    r"\b(?:(?:book|schedule|get|need|want|have)\s+(?:a|an)|for\s+(?:a|an|my)|für\s+(?:eine[nm]?|meine[nm]?)"
    r"|zur|zum)\s+([a-zäöüß-]+(?: [a-zäöüß-]+)?)", re.IGNORECASE)
_NOT_SERVICES = {"appointment", "appointments", "termin", "time", "day", "date", "moment", "second", "minute",
                 "person", "human", "someone", "call", "booking", "question", "price", "new", "quick"}
# Words that end a service name ("a cleaning at ten", "a cleaning please").
_SERVICE_STOPS = {"at", "on", "in", "for", "please", "and", "with", "um", "am", "an", "bitte", "und", "mit", "next",
                  "this", "the", "tomorrow", "today", "morgen", "heute"}


@dataclass
class Understanding:
    text: str
    intents: set = field(default_factory=set)
    yes: bool = False
    no: bool = False
    dates: list = field(default_factory=list)
    time: str | None = None
    daypart: str | None = None
    name: str | None = None
    phone: str | None = None
    service: str | None = None

    @property
    def date(self) -> str | None:
        return self.dates[-1] if self.dates else None

    @property
    def weekday(self) -> str | None:
        for key in reversed(self.dates):
            day = key.split(":")[-1]
            if day in WEEKDAYS:
                return day
        return None

    def has_details(self) -> bool:
        return bool(self.dates or self.time or self.name or self.phone or self.service)


def _consume(pattern: re.Pattern, text: str, handle) -> str:
    """Run `handle` on each match and blank the match out, so later patterns do not see it."""
    def replace(match):
        handle(match)
        return " " * len(match.group(0))
    return pattern.sub(replace, text)


_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_DOTTED_DATE = re.compile(r"\b(\d{1,2})\.\s?(\d{1,2})\.(?:\s?(\d{4}))?")
_MONTH_ALT = "|".join(sorted(MONTHS, key=len, reverse=True))
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th|\.)?\s+(?:of\s+)?({_MONTH_ALT})\b")
_MONTH_DAY = re.compile(rf"\b({_MONTH_ALT})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b")
_RELATIVE = re.compile(r"\b(?:the\s+)?day after tomorrow\b|\bübermorgen\b|\btomorrow\b|(?<!guten )\bmorgen\b"
                       r"|\btoday\b|\bheute\b")
_WEEKDAY = re.compile(r"\b(?:(next|this coming|nächste[nm]?|kommende[nm]?)\s+)?(?:am\s+|on\s+)?("
                      + "|".join(WEEKDAY_WORDS) + r")s?\b")


def _dates(lowered: str, found: list) -> str:
    spans: list[tuple[int, str]] = []

    def add(match, key):
        spans.append((match.start(), key))

    lowered = _consume(_ISO_DATE, lowered, lambda m: add(m, f"{int(m[1]):04d}-{int(m[2]):02d}-{int(m[3]):02d}"))
    lowered = _consume(_DOTTED_DATE, lowered, lambda m: add(
        m, f"{int(m[3]):04d}-{int(m[2]):02d}-{int(m[1]):02d}" if m[3] else f"{int(m[2]):02d}-{int(m[1]):02d}"))
    lowered = _consume(_DAY_MONTH, lowered, lambda m: add(m, f"{MONTHS[m[2]]:02d}-{int(m[1]):02d}"))
    lowered = _consume(_MONTH_DAY, lowered, lambda m: add(m, f"{MONTHS[m[1]]:02d}-{int(m[2]):02d}"))

    def relative(m):
        word = m.group(0).strip()
        key = ("day_after_tomorrow" if "after" in word or word == "übermorgen"
               else "tomorrow" if word in ("tomorrow", "morgen") else "today")
        add(m, key)

    lowered = _consume(_RELATIVE, lowered, relative)
    lowered = _consume(_WEEKDAY, lowered, lambda m: add(
        m, ("next:" if m[1] else "") + WEEKDAY_WORDS[m[2]]))
    found.extend(key for _, key in sorted(spans))
    return lowered


def _hour_value(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return NUMBER_WORDS.get(word)


_NUM = r"\d{1,2}|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
_CLOCK = re.compile(r"\b(\d{1,2})[:.](\d{2})\s*(a\.?m\.?|p\.?m\.?)?(?!\d)")
_HALF_PAST = re.compile(rf"\bhalf past ({_NUM})\b|\bhalb ({_NUM})\b")
_QUARTER = re.compile(rf"\bquarter (past|to) ({_NUM})\b|\bviertel (nach|vor) ({_NUM})\b")
_AMPM = re.compile(rf"\b({_NUM})(?:\s+(thirty|fifteen|forty[- ]five))?\s*(a\.?m\.?|p\.?m\.?|o'clock)(?!\w)")
_UHR = re.compile(rf"\b({_NUM})\s*uhr(?:\s*(\d{{1,2}}|{'|'.join(MINUTE_WORDS)}))?\b")
_AT = re.compile(rf"\b(?:at|um|gegen|around)\s+({_NUM})(?:\s+(thirty|fifteen|forty[- ]five|\d{{2}}))?\b")
_DAYPART = re.compile(r"\b(morning|vormittags?|morgens|früh|afternoon|nachmittags?|evening|abends?)\b")


def _time(lowered: str, result: Understanding) -> str:
    """The first clock time said, as HH:MM (hours 1 to 6 without am/pm are afternoon hours)."""
    candidates: list[tuple[int, int, int, str | None]] = []  # (position, hour, minute, meridiem)

    def minutes_of(word: str | None) -> int:
        if not word:
            return 0
        return int(word) if word.isdigit() else MINUTE_WORDS.get(word.replace("-", " "), MINUTE_WORDS.get(word, 0))

    def clock(m):
        candidates.append((m.start(), int(m[1]), int(m[2]), (m[3] or "")[:1] or None))

    def half(m):
        hour = _hour_value(m[1] or "")
        if hour is not None:
            candidates.append((m.start(), hour, 30, None))
        else:
            hour = _hour_value(m[2])
            if hour is not None:
                candidates.append((m.start(), (hour - 1) or 12, 30, None))

    def quarter(m):
        direction, word = (m[1], m[2]) if m[1] else (m[3], m[4])
        hour = _hour_value(word)
        if hour is None:
            return
        if direction in ("past", "nach"):
            candidates.append((m.start(), hour, 15, None))
        else:
            candidates.append((m.start(), (hour - 1) or 12, 45, None))

    def ampm(m):
        hour = _hour_value(m[1])
        if hour is not None:
            meridiem = None if m[3] == "o'clock" else m[3][:1]
            candidates.append((m.start(), hour, minutes_of(m[2]), meridiem))

    def uhr(m):
        hour = _hour_value(m[1])
        if hour is not None:
            candidates.append((m.start(), hour, minutes_of(m[2]), "24h"))

    def at(m):
        hour = _hour_value(m[1])
        if hour is not None:
            candidates.append((m.start(), hour, minutes_of(m[2]), None))

    for pattern, handle in ((_CLOCK, clock), (_HALF_PAST, half), (_QUARTER, quarter), (_AMPM, ampm), (_UHR, uhr),
                            (_AT, at)):
        lowered = _consume(pattern, lowered, handle)

    dayparts = _DAYPART.findall(lowered)
    if dayparts:
        word = dayparts[0]
        result.daypart = ("morning" if word.startswith(("morning", "vormittag", "morgens", "früh"))
                          else "afternoon" if word.startswith(("afternoon", "nachmittag")) else "evening")
    if candidates:
        _, hour, minute, meridiem = sorted(candidates)[0]
        if meridiem == "p" and hour < 12:
            hour += 12
        elif meridiem == "a" and hour == 12:
            hour = 0
        elif meridiem is None and (1 <= hour <= 6 or (result.daypart in ("afternoon", "evening") and hour < 12)):
            hour += 12
        if 0 <= hour <= 23 and 0 <= minute <= 59:
            result.time = f"{hour:02d}:{minute:02d}"
    return lowered


_PHONE = re.compile(r"(?<![\w:])(\+?\d[\d \-/()]{4,}\d)(?![\w:])")
_CALLER_NUMBER = re.compile(r"this number|the number i'?m calling from|same number|my number|diese[rn]? nummer"
                            r"|meine nummer|die nummer,? von der|mit der ich anrufe")


def _phone(lowered: str, result: Understanding) -> str:
    def handle(m):
        digits = re.sub(r"[^\d+]", "", m.group(1))
        if len(digits.lstrip("+")) >= 6 and result.phone is None:
            result.phone = digits
    lowered = _consume(_PHONE, lowered, handle)
    if result.phone is None and _CALLER_NUMBER.search(lowered):
        result.phone = "caller"
    return lowered


def match_service(text: str, services: list[ServiceInfo]) -> ServiceInfo | None:
    """The company service the caller named: the whole name, else a distinctive word of it."""
    lowered = text.lower()
    best, best_score = None, 0
    for service in services:
        name = service.name.lower()
        if name and name in lowered:
            score = 100 + len(name)
        else:
            words = [w for w in re.findall(r"[\wäöüß]+", name) if len(w) >= 5]
            score = max((len(w) for w in words if re.search(rf"\b{re.escape(w[:-1])}", lowered)), default=0)
            # A short form of a compound: "Kontrolle" for "Kontrolluntersuchung".
            said_words = [w for w in re.findall(r"[\wäöüß]+", lowered) if len(w) >= 6]
            score = max([score] + [len(s) for s in said_words for w in words if w.startswith(s[:-1])])
        if score > best_score:
            best, best_score = service, score
    return best


def _service(text: str, rest: str, services: list[ServiceInfo], result: Understanding) -> None:
    known = match_service(text, services)
    if known is not None:
        result.service = known.name
        return
    original = " " + text.replace("’", "'") + " "
    same_shape = len(original) == len(rest)
    for m in _SERVICE_AFTER.finditer(rest):
        words = []
        for word in (original[m.start(1):m.end(1)] if same_shape else m.group(1)).split():
            if word.lower() in _SERVICE_STOPS or word.lower() in WEEKDAY_WORDS:
                break
            if word.lower() not in _NOT_SERVICES:
                words.append(word)
        if words and words[0].lower() not in {"a", "nächsten"}:
            result.service = " ".join(words)
            return


def _name(text: str, result: Understanding) -> None:
    for m in _NAME_INTRO.finditer(text):
        words = m.group(1).split()
        kept = []
        for word in words:
            if word.lower().strip("'’") in _NOT_NAMES or not word[:1].isupper():
                break
            kept.append(word)
        if kept:
            result.name = " ".join(kept)
            return


def free_text_answer(text: str) -> str:
    """An answer stripped of fillers ("yes, it's …", "ja, gerne …"), for a question just asked."""
    cleaned = _FILLERS.sub("", text.strip()).strip(" .,!?")
    return re.sub(r"\s+", " ", cleaned)


def name_from_answer(text: str) -> str | None:
    """A name given as the answer to "what is your name?"."""
    probe = Understanding(text=text)
    _name(text, probe)
    if probe.name:
        return probe.name
    words = [w.strip(".,!?") for w in free_text_answer(text).split()][:4]
    words = [w for w in words if w and not any(ch.isdigit() for ch in w)]
    if not words or words[0].lower() in _NOT_NAMES:
        return None
    return " ".join(w if w[:1].isupper() else w.capitalize() for w in words)


def understand(text: str, services: list[ServiceInfo] = ()) -> Understanding:
    result = Understanding(text=text)
    lowered = " " + text.lower().replace("’", "'") + " "
    for intent, pattern in _INTENT_PATTERNS.items():
        if re.search(pattern, lowered):
            result.intents.add(intent)
    if "reschedule" in result.intents or "cancel" in result.intents:
        result.intents.discard("book")
    polar = _POLAR.search(lowered)
    if polar:
        result.no = polar.group("no") is not None
        result.yes = not result.no
    rest = _dates(lowered, result.dates)
    rest = _time(rest, result)
    rest = _phone(rest, result)
    _service(text, rest, list(services), result)
    _name(text, result)
    return result


# --- saying dates back ----------------------------------------------------------------------------

def date_phrase(key: str, language: str) -> str:
    """The date key as words the appointment handlers parse: "tomorrow", "Mittwoch", "24. November"."""
    index = 0 if language == "en" else 1
    if key in RELATIVE_DAYS:
        return RELATIVE_DAYS[key][index]
    if key.startswith("next:"):
        day = WEEKDAY_NAMES[language][key[5:]]
        return f"next {day}" if language == "en" else f"nächsten {day}"
    if key in WEEKDAYS:
        return WEEKDAY_NAMES[language][key]
    parts = key.split("-")
    if len(parts) == 3:
        return key
    month, day = int(parts[0]), int(parts[1])
    month_name = MONTH_NAMES[language][month - 1] if 1 <= month <= 12 else str(month)
    return f"{month_name} {day}" if language == "en" else f"{day}. {month_name}"


def spoken_date(key: str, language: str, *, preposition: bool = True) -> str:
    """The date as said in a sentence: "tomorrow", "on Wednesday", "am Mittwoch" (or bare: "Wednesday")."""
    phrase = date_phrase(key, language)
    if key in RELATIVE_DAYS or key.startswith("next:"):
        return phrase
    parts = key.split("-")
    if len(parts) == 3:
        year, month, day = (int(p) for p in parts)
        month_name = MONTH_NAMES[language][month - 1] if 1 <= month <= 12 else str(month)
        phrase = f"{month_name} {day}, {year}" if language == "en" else f"{day}. {month_name} {year}"
    if not preposition:
        return phrase
    return f"on {phrase}" if language == "en" else f"am {phrase}"


def spoken_time(hhmm: str, language: str) -> str:
    hour, minute = (int(p) for p in hhmm.split(":"))
    if language == "de":
        return f"{hour} Uhr" if minute == 0 else f"{hour}:{minute:02d} Uhr"
    suffix = "am" if hour < 12 else "pm"
    twelve = hour % 12 or 12
    return f"{twelve} {suffix}" if minute == 0 else f"{twelve}:{minute:02d} {suffix}"
