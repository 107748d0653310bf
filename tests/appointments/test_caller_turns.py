"""Caller turns as the dialog engines read them: dates, times, names, numbers and intents, EN and DE."""

import pytest

from appointments.understanding import date_phrase, name_from_answer, spoken_date, spoken_time, understand
from voice.dialog.base import ServiceInfo

SERVICES = [ServiceInfo("Dental cleaning"), ServiceInfo("Zahnreinigung"), ServiceInfo("Checkup")]


@pytest.mark.parametrize("said, dates, time", [
    ("tomorrow at 10 am", ["tomorrow"], "10:00"),
    ("the day after tomorrow at 2:30 pm", ["day_after_tomorrow"], "14:30"),
    ("next Tuesday at half past nine", ["next:tue"], "09:30"),
    ("on Friday at 3", ["fri"], "15:00"),
    ("November 24th at quarter to eleven", ["11-24"], "10:45"),
    ("on the 24th of November", ["11-24"], None),
    ("2026-11-24 at 16:00", ["2026-11-24"], "16:00"),
    ("morgen um 9 Uhr", ["tomorrow"], "09:00"),
    ("übermorgen um 10 Uhr 30", ["day_after_tomorrow"], "10:30"),
    ("am Mittwoch um halb drei", ["wed"], "14:30"),
    ("nächsten Montag um viertel nach zehn", ["next:mon"], "10:15"),
    ("am 24.11.2026 um 8:15", ["2026-11-24"], "08:15"),
    ("am Donnerstag morgen um neun", ["thu"], "09:00"),
    ("am 3. Dezember", ["12-03"], None),
    ("Guten Morgen", [], None),
    ("von Montag auf Freitag", ["mon", "fri"], None),
])
def test_dates_and_times(said, dates, time):
    understood = understand(said, language="de" if " um " in f" {said} " or said[:1] in "aümn" else "en")

    assert understood.dates == dates
    assert understood.time == time


@pytest.mark.parametrize("said, intents", [
    ("I'd like to book an appointment", {"book"}),
    ("Can I reschedule my appointment?", {"reschedule"}),
    ("I need to cancel my appointment", {"cancel"}),
    ("Ich möchte meinen Termin absagen", {"cancel"}),
    ("Ich möchte meinen Termin verschieben", {"reschedule"}),
    ("Do you have anything free on Thursday?", {"availability"}),
    ("Wie sind Ihre Öffnungszeiten?", {"hours"}),
    ("Where are you located?", {"address"}),
    ("Was kostet eine Zahnreinigung?", {"price"}),
    ("Can I talk to a real person?", {"human"}),
    ("Tschüss!", {"goodbye"}),
    ("Ich möchte mit Frau Doktor sprechen.", {"human"}),
])
def test_intents(said, intents):
    assert understand(said).intents == intents


@pytest.mark.parametrize("said, yes, no", [
    ("Yes, please", True, False), ("Ja, genau", True, False), ("Richtig", True, False),
    ("No, Wednesday instead", False, True), ("Nein, lieber Mittwoch", False, True), ("Nope", False, True),
])
def test_yes_and_no(said, yes, no):
    understood = understand(said)

    assert (understood.yes, understood.no) == (yes, no)


def test_name_phone_and_service_in_one_sentence():
    understood = understand("My name is Anna Schmidt, I need a dental cleaning, call me on +49 171 2345678", SERVICES)

    assert understood.name == "Anna Schmidt"
    assert understood.phone == "+491712345678"
    assert understood.service == "Dental cleaning"
    assert "book" in understood.intents


@pytest.mark.parametrize("said, service", [
    ("I'd like to book a cleaning tomorrow at 10 am", "cleaning"),
    ("I need a root canal please", "root canal"),
    ("I'd like to book a root canal treatment", "root canal treatment"),
    ("an appointment for a filling on Monday", "filling"),
    ("Ich hätte gern einen Termin zur Kontrolle am Montag", "Kontrolle"),
    ("I'd like to book an appointment for tomorrow", None),
])
def test_a_service_outside_the_catalogue_is_taken_from_the_words_around_it(said, service):
    understood = understand(said)

    assert understood.service == service and not understood.service_known


def test_a_short_form_of_a_compound_service_name_finds_the_service():
    catalogue = [ServiceInfo("Zahnreinigung"), ServiceInfo("Kontrolluntersuchung")]

    assert understand("einen Termin zur Kontrolle bitte", catalogue).service == "Kontrolluntersuchung"
    assert understand("Ich möchte einen Termin am Montag", catalogue).service is None


def test_a_date_is_not_taken_for_a_phone_number():
    understood = understand("on 2026-11-24 please")

    assert understood.phone is None and understood.dates == ["2026-11-24"]


def test_the_callers_own_number():
    assert understand("just use this number").phone == "caller"
    assert understand("unter dieser Nummer").phone == "caller"


@pytest.mark.parametrize("answer, name", [
    ("It's Anna Schmidt", "Anna Schmidt"), ("ja, Hans Müller", "Hans Müller"), ("anna schmidt", "Anna Schmidt"),
    ("Ich heiße Eva Klein", "Eva Klein"), ("sorry", None), ("Dann um 13 Uhr.", None), ("Ja.", None),
    ("Morgen um 10, Anna Schmidt", "Anna Schmidt"), ("Ich weiß nicht.", None),
])
def test_a_name_given_as_an_answer(answer, name):
    assert understand(answer, expecting="name").name == name


def test_dates_and_times_are_said_back_in_the_agents_language():
    assert date_phrase("next:wed", "de") == "nächsten Mittwoch"
    assert date_phrase("11-24", "en") == "November 24"
    assert date_phrase("11-24", "de") == "24. November"
    assert spoken_date("wed", "en") == "on Wednesday"
    assert spoken_date("tomorrow", "de") == "morgen"
    assert spoken_date("2026-11-24", "de") == "am 24. November 2026"
    assert spoken_time("14:30", "en") == "2:30 pm" and spoken_time("09:00", "de") == "9 Uhr"
    assert name_from_answer("Jörg Müller.") == "Jörg Müller"
