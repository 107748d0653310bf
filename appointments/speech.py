"""Short sentences the agent speaks, in the company's language (German or English).

Day and month names come from Django's own German and English formats.
"""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.utils import formats, translation

from .localtime import ambiguous_reading

TEXTS = {
    "booked": {
        "de": "Ich habe Ihnen den Termin am {when}{service} eingetragen, auf den Namen {name}.",
        "en": "I have booked you in for {when}{service}, under the name {name}.",
    },
    "taken": {
        "de": "Am {when} ist leider schon belegt.",
        "en": "{when} is already taken, I'm afraid.",
    },
    "past": {
        "de": "Dieser Zeitpunkt liegt leider schon in der Vergangenheit.",
        "en": "That time is already in the past.",
    },
    "closed": {
        "de": "Am {day} haben wir geschlossen{reason}.",
        "en": "We are closed on {day}{reason}.",
    },
    "outside_hours": {
        "de": "Um {time} haben wir am {day} keine Sprechzeit.",
        "en": "We are not open at {time} on {day}.",
    },
    "offer": {"de": "Frei wäre {options}.", "en": "I could offer {options}."},
    "nothing_free": {
        "de": "In den nächsten {days} Tagen ist leider nichts mehr frei.",
        "en": "There is nothing free in the next {days} days, I'm afraid.",
    },
    "day_full": {"de": "Am {day} ist leider nichts mehr frei.", "en": "{day} is fully booked, I'm afraid."},
    "available": {"de": "Am {when} ist noch frei.", "en": "{when} is available."},
    "nonexistent_time": {
        "de": "Am {day} gibt es {time} nicht, weil die Uhren von {skipped_from} auf {skipped_to} vorgestellt werden.",
        "en": "There is no {time} on {day}, because the clocks go forward from {skipped_from} to {skipped_to}.",
    },
    "day_free": {"de": "Am {day} ist frei um {times}.", "en": "On {day} I have {times} free."},
    "span_free": {"de": "{span} wäre frei {options}.", "en": "{span} I could offer {options}."},
    "span_full": {"de": "{span} ist leider nichts mehr frei.", "en": "{span} is fully booked, I'm afraid."},
    "time_needed": {
        "de": "Um wie viel Uhr möchten Sie kommen? Am {day} ist frei um {times}.",
        "en": "What time would suit you? On {day} I have {times} free.",
    },
    "date_needed": {"de": "An welchem Tag möchten Sie kommen?", "en": "Which day would suit you?"},
    "unclear_date": {
        "de": "Das Datum habe ich leider nicht verstanden. An welchem Tag möchten Sie kommen?",
        "en": "Sorry, I did not catch the date. Which day would suit you?",
    },
    "unclear_time": {
        "de": "Die Uhrzeit habe ich leider nicht verstanden. Um wie viel Uhr möchten Sie kommen?",
        "en": "Sorry, I did not catch the time. What time would suit you?",
    },
    "service_needed": {
        "de": "Welche Behandlung möchten Sie: {services}?",
        "en": "Which service would you like: {services}?",
    },
    "unknown_service": {
        "de": "{said} bieten wir leider nicht an. Möglich ist {services}.",
        "en": "We don't offer {said}, I'm afraid. We offer {services}.",
    },
    "invalid_phone": {
        "de": "Die Telefonnummer habe ich leider nicht verstanden. Können Sie sie bitte wiederholen?",
        "en": "Sorry, I did not catch the phone number. Could you repeat it, please?",
    },
    "invalid_arguments": {
        "de": "Mir fehlen noch Angaben: {fields}.",
        "en": "I still need {fields}.",
    },
    "not_found": {
        "de": "Ich finde leider keinen anstehenden Termin {who}.",
        "en": "I cannot find an upcoming appointment {who}.",
    },
    "ambiguous": {
        "de": "Ich finde mehrere Termine {who}: {options}. Welchen meinen Sie?",
        "en": "I found several appointments {who}: {options}. Which one do you mean?",
    },
    "who_phone": {"de": "unter Ihrer Telefonnummer", "en": "under your phone number"},
    "who_name": {"de": "auf den Namen {name}", "en": "under the name {name}"},
    "who_nobody": {"de": "ohne Namen oder Telefonnummer", "en": "without a name or a phone number"},
    "rescheduled": {
        "de": "Ich habe Ihren Termin auf {when} verlegt.",
        "en": "I have moved your appointment to {when}.",
    },
    "cancelled": {
        "de": "Ihr Termin am {when} ist storniert.",
        "en": "Your appointment on {when} is cancelled.",
    },
}

FIELD_WORDS = {
    "name": {"de": "Ihr Name", "en": "your name"},
    "date": {"de": "das Datum", "en": "the date"},
    "time": {"de": "die Uhrzeit", "en": "the time"},
    "service": {"de": "die Behandlung", "en": "the service"},
    "phone": {"de": "die Telefonnummer", "en": "the phone number"},
    "new_date": {"de": "das neue Datum", "en": "the new date"},
    "new_time": {"de": "die neue Uhrzeit", "en": "the new time"},
    "current_date": {"de": "das Datum des Termins", "en": "the date of the appointment"},
}

# Which of the two occurrences of a repeated wall-clock time (see localtime.ambiguous_reading).
OCCURRENCE_WORDS = {
    "daylight": {"de": "Sommerzeit", "en": "daylight time"},
    "standard": {"de": "Winterzeit", "en": "standard time"},
}

PERIOD_WORDS = {
    "morning": {"de": "vormittags", "en": "in the morning"},
    "afternoon": {"de": "nachmittags", "en": "in the afternoon"},
    "evening": {"de": "abends", "en": "in the evening"},
}


def language_of(company) -> str:
    return "de" if company.language == "de" else "en"


def say(key: str, language: str, **values) -> str:
    return TEXTS[key][language].format(**values)


def joined(items: list[str], language: str, *, both: bool = False) -> str:
    """'a, b oder c' / 'a, b or c'; with `both`, 'und' / 'and'."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    word = {("de", False): "oder", ("de", True): "und", ("en", False): "or", ("en", True): "and"}[(language, both)]
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def service_in_sentence(name: str, language: str) -> str:
    """A service's name as said inside a sentence: German keeps its capitals (nouns are written
    so); English lowers words written with a capital only at the start ("Teeth cleaning" ->
    "teeth cleaning"), and keeps acronyms and names with inner capitals ("MRI", "iTero")."""
    if language == "de":
        return name
    return " ".join(word[:1].lower() + word[1:] if word[:1].isupper() and word[1:] == word[1:].lower() else word
                    for word in name.split(" "))


def day_words(day: date, language: str) -> str:
    with translation.override(language):
        return formats.date_format(day, "l, j. F" if language == "de" else "l, F j")


def time_words(moment: datetime | time, language: str) -> str:
    """The clock reading of `moment` as spoken: '14:30 Uhr', '2:30 PM'.

    A datetime in a ZoneInfo whose reading occurs twice that day (the repeated hour)
    says which occurrence: '2:30 Uhr Sommerzeit' / '2:30 AM standard time'. A naive
    datetime or a time is read as it is.
    """
    if language == "de":
        words = f"{moment.hour} Uhr" if moment.minute == 0 else f"{moment.hour}:{moment.minute:02d} Uhr"
    else:
        hour = moment.hour % 12 or 12
        suffix = "AM" if moment.hour < 12 else "PM"
        words = f"{hour} {suffix}" if moment.minute == 0 else f"{hour}:{moment.minute:02d} {suffix}"
    if isinstance(moment, datetime) and isinstance(moment.tzinfo, ZoneInfo):
        reading = ambiguous_reading(moment, moment.tzinfo)
        if reading is not None:
            words += " " + OCCURRENCE_WORDS[reading][language]
    return words


def when_words(moment: datetime, zone, language: str) -> str:
    local = moment.astimezone(zone)
    joiner = " um " if language == "de" else " at "
    return day_words(local.date(), language) + joiner + time_words(local, language)


def options_words(starts: list[datetime], zone, language: str, *, same_day_as: datetime | None = None) -> str:
    """Alternatives as one phrase; times on the asked-for day without repeating the day."""
    day = same_day_as.astimezone(zone).date() if same_day_as else None
    words = []
    for start in starts:
        local = start.astimezone(zone)
        if day is not None and local.date() == day:
            words.append(("um " if language == "de" else "at ") + time_words(local, language))
        else:
            words.append(("am " if language == "de" else "") + when_words(start, zone, language))
    return joined(words, language)


def span_words(first: date, last: date, language: str) -> str:
    """A span of days to start a sentence: "Zwischen Montag, 7. Dezember und Freitag, 11. Dezember"."""
    if language == "de":
        return f"Zwischen {day_words(first, language)} und {day_words(last, language)}"
    return f"Between {day_words(first, language)} and {day_words(last, language)}"


def field_words(fields: list[str], language: str) -> str:
    return joined([FIELD_WORDS.get(f, {}).get(language, f) for f in fields], language, both=True)
