"""One understanding of what callers say: the inputs the calls issue found, each the right value.

The dialog engine (`understand`) and the custom-function handlers (`parse_when`) read callers'
words with the same package, so a phrase means the same on both paths.
"""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from appointments.understanding import UnclearDate, UnclearTime, date_phrase, parse_when, understand
from appointments.understanding.evaluation import CORPORA, evaluate

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
GERMAN_SERVICES = ["Kontrolluntersuchung", "Professionelle Zahnreinigung", "Beratungsgespräch"]
ENGLISH_SERVICES = ["Check-up", "Teeth cleaning", "Whitening consultation"]
# A Wednesday.
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=BERLIN)


def both_ways(text: str, *, language="de", zone=BERLIN):
    """The time as the dialog engine reads it and as a handler reads it from a function argument."""
    engine = understand(text, language=language).time
    handler = parse_when("morgen", text, language=language, zone=zone, now=NOW).clock
    return engine, handler.strftime("%H:%M") if handler else None


@pytest.mark.parametrize("said, expected", [
    ("fünf vor halb drei", "14:25"), ("um dreiviertel zehn", "09:45"), ("fünf nach halb drei", "14:35"),
    ("zehn vor drei", "14:50"), ("kurz nach drei", "15:05"), ("gegen drei", "15:00"), ("viertel nach zehn", "10:15"),
    ("viertel vor elf", "10:45"), ("viertel zehn", "09:15"), ("halb eins", "12:30"), ("um 14:30", "14:30"),
    ("um 9.15 Uhr", "09:15"), ("zehn Uhr dreißig", "10:30"), ("Mittags", "12:00"), ("um 3 Uhr", "15:00"),
])
def test_german_clock_idioms_mean_the_same_to_the_engine_and_the_handlers(said, expected):
    # Given a German caller's time, when the engine and a handler read it, then both get the same time.
    assert both_ways(said) == (expected, expected)


@pytest.mark.parametrize("said, expected", [
    ("quarter past ten", "10:15"), ("quarter to ten", "09:45"), ("half past two", "14:30"), ("ten past three", "15:10"),
    ("twenty to four", "15:40"), ("noon", "12:00"), ("midnight", "00:00"), ("at 9 in the morning", "09:00"),
    ("three in the afternoon", "15:00"), ("2:30 pm", "14:30"), ("ten o'clock", "10:00"), ("half nine", "09:30"),
])
def test_english_clock_idioms_mean_the_same_to_the_engine_and_the_handlers(said, expected):
    assert both_ways(said, language="en", zone=NEW_YORK) == (expected, expected)


def test_am_donnerstag_morgen_um_neun_is_thursday_at_nine_and_heute_morgen_is_this_morning():
    thursday = understand("am Donnerstag morgen um neun")
    this_morning = understand("heute morgen")

    assert (thursday.dates, thursday.time, thursday.daypart) == (["thu"], "09:00", "morning")
    assert (this_morning.dates, this_morning.daypart) == (["today"], "morning")
    when = parse_when("am Donnerstag morgen um neun", "", language="de", zone=BERLIN, now=NOW)
    assert (when.day, when.clock) == (date(2026, 12, 3), time(9, 0))


def test_an_hour_without_am_or_pm_follows_the_opening_hours_then_one_rule():
    # Given a practice open 8 to 18, "um 7" can only be 7 am or 7 pm: neither is open, so the rule decides.
    hours = {"thu": [["08:00", "18:00"]]}
    read = lambda said: parse_when("Donnerstag", said, language="de", zone=BERLIN, now=NOW,  # noqa: E731
                                   opening_hours=hours).clock
    assert read("um 7") == time(7, 0)
    assert read("um 5") == time(17, 0)
    # An evening practice (14-22): "um 8" is 20:00, inside the hours.
    evening = parse_when("Donnerstag", "um 8", language="de", zone=BERLIN, now=NOW,
                         opening_hours={"thu": [["14:00", "22:00"]]})
    assert evening.clock == time(20, 0)


def test_an_iso_time_with_an_offset_is_converted_to_the_companys_zone():
    # Given an LLM or a custom function sends UTC, then it is 10:00 in New York, not 15:00 wall-clock time.
    when = parse_when("2026-12-03T15:00:00Z", "", language="en", zone=NEW_YORK, now=NOW)
    offset = parse_when("2026-12-03", "2026-12-03T16:00:00+01:00", language="en", zone=NEW_YORK, now=NOW)

    assert (when.day, when.clock) == (date(2026, 12, 3), time(10, 0))
    assert (offset.day, offset.clock) == (date(2026, 12, 3), time(10, 0))
    assert understand("2026-12-03T15:00:00Z", zone=NEW_YORK).time == "10:00"


@pytest.mark.parametrize("date_text, time_text, error", [
    ("Montag oder Dienstag", "", UnclearDate), ("am Freitag, den 3. Dezember", "", UnclearDate),
    ("morgen", "fünf vor", UnclearTime), ("morgen", "zehn oder elf Uhr", UnclearTime), ("blubb", "", UnclearDate),
])
def test_words_with_meaning_left_over_are_unclear_not_guessed(date_text, time_text, error):
    with pytest.raises(error):
        parse_when(date_text, time_text, language="de", zone=BERLIN, now=NOW)


def test_the_name_slot_takes_a_name_only():
    assert understand("Dann um 13 Uhr.", expecting="name").name is None
    assert understand("Jörg Müller.", expecting="name").name == "Jörg Müller"
    assert understand("Ja.", expecting="name").name is None
    correction = understand("nein, der Name ist Jörg Müller")
    assert (correction.name, correction.name_correction, correction.no) == ("Jörg Müller", True, True)
    assert understand("no, the name is John Carter").name == "John Carter"


@pytest.mark.parametrize("said, region, expected", [
    ("49 151 23456789", "DE", "+4915123456789"), ("0151 23456789", "DE", "+4915123456789"),
    ("1 212 555 0134", "US", "+12125550134"), ("null eins fünf eins zwei drei vier fünf sechs sieben acht neun", "DE",
                                                "+4915123456789"),
])
def test_phone_numbers_are_read_in_the_companys_region(said, region, expected):
    assert understand(said, region=region, expecting="phone").phone == expected


def test_a_number_that_is_no_valid_number_is_asked_again_not_kept():
    reading = understand("12345678", region="DE", expecting="phone")

    assert reading.phone is None and reading.phone_said == "12345678"


@pytest.mark.parametrize("said, services, expected", [
    ("Ich hätte gern einen Beratungstermin", GERMAN_SERVICES, "Beratungsgespräch"),
    ("einen Termin zur Kontrolle", GERMAN_SERVICES, "Kontrolluntersuchung"),
    ("eine Reinigung bitte", GERMAN_SERVICES, "Professionelle Zahnreinigung"),
    ("I'd like a cleaning", ENGLISH_SERVICES, "Teeth cleaning"),
    ("a checkup", ENGLISH_SERVICES, "Check-up"), ("a check up", ENGLISH_SERVICES, "Check-up"),
    ("a cleaning please", GERMAN_SERVICES, "Professionelle Zahnreinigung"),
])
def test_compounds_short_forms_and_the_other_language_find_the_service(said, services, expected):
    assert understand(said, services).service == expected


@pytest.mark.parametrize("opening, intent", [
    ("Hallo, ich brauche eine Kontrolluntersuchung am Freitag um 15 Uhr.", "book"),
    ("Kann ich nächste Woche zur Kontrolle kommen?", "book"),
    ("Ich möchte mit Frau Doktor sprechen.", "human"),
    ("Hi, can I get a check-up tomorrow morning?", "book"),
])
def test_the_openings_that_went_unheard_are_understood(opening, intent):
    services = ENGLISH_SERVICES if opening.startswith("Hi") else GERMAN_SERVICES
    assert intent in understand(opening, services).intents


@pytest.mark.parametrize("key", ["today", "tomorrow", "day_after_tomorrow", "mon", "next:fri", "11-24", "2026-11-24",
                                 "week:next", "week:next:wed", "week:this", "weekend", "in:3", "dom:24",
                                 "week:after_next", "week:next:early", "week:this:late"])
@pytest.mark.parametrize("language", ["de", "en"])
def test_a_day_said_back_is_read_back_as_the_same_day(key, language):
    assert understand(date_phrase(key, language), language=language).dates == [key]


@pytest.mark.parametrize("language", ["de", "en"])
@pytest.mark.parametrize("corpus", CORPORA)
def test_each_corpus_has_two_hundred_utterances_and_its_share_never_falls(language, corpus):
    report = evaluate(language, corpus)

    assert report.total >= 200
    assert report.share >= report.floor, [(m.say, m.wrong) for m in report.misses]


def test_a_phone_number_said_as_a_function_argument_is_read_as_the_caller_says_it(company_a):
    # Given an LLM passes the digits as the caller said them, then the handlers store the German mobile number.
    from appointments.selectors import phone_e164

    assert phone_e164(company=company_a, number="49 151 23456789") == "+4915123456789"
    with pytest.raises(ValidationError):
        phone_e164(company=company_a, number="12345678")
