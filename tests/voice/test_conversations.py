"""Whole calls over a real socket: the ASGI application on loopback, Retell's side spoken by
voice.simulator (call_details, update_only, response_required with the growing transcript),
the embedded receptionist, and the appointment rows the calls leave in PostgreSQL."""

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from time import monotonic, sleep
from zoneinfo import ZoneInfo

import pytest

from appointments.models import Appointment, Service
from appointments.services import appointment_book, service_ensure
from audit.actor import Actor
from retell_config.services import agent_update, agent_upsert
from tenants.services import company_create
from voice.models import Call
from voice.simulator import SimulatedCall, new_call_id

pytestmark = pytest.mark.e2e

EVERY_DAY = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
SETUP = Actor.system("conversation tests")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
EN_CALLER = "+12125550199"
DE_CALLER = "+4915112345678"


def _agent(company, agent_id: str, language: str, greeting: str):
    agent, _ = agent_upsert(actor=SETUP, company=company, agent_id=agent_id, name="Sophie")
    agent, _, _ = agent_update(actor=SETUP, agent=agent, fields={"language": language, "begin_message": greeting},
                               push=False)
    return agent


@pytest.fixture
def dental(live_db):
    """An English practice open every day, with two services."""
    company = company_create(actor=SETUP, name="Bright Smile Dental", slug="bright-smile",
                             timezone="America/New_York", language="en", phone="+12125550134",
                             opening_hours=EVERY_DAY)
    service_ensure(actor=SETUP, company=company, name="Cleaning", duration_minutes=30, price=120)
    service_ensure(actor=SETUP, company=company, name="Check-up", duration_minutes=30, price=80)
    return _agent(company, "agent_dental_en", "en-US", "Bright Smile Dental, this is Sophie. How can I help?")


@pytest.fixture
def praxis(live_db):
    """A German practice open every day, with two services."""
    company = company_create(actor=SETUP, name="Zahnarztpraxis Dr. Weiß", slug="praxis-weiss",
                             timezone="Europe/Berlin", language="de", phone="+493083793369",
                             opening_hours=EVERY_DAY)
    service_ensure(actor=SETUP, company=company, name="Zahnreinigung", duration_minutes=30, price=90)
    service_ensure(actor=SETUP, company=company, name="Kontrolluntersuchung", duration_minutes=30, price=50)
    return _agent(company, "agent_praxis_de", "de-DE", "Praxis Dr. Weiß, guten Tag. Wie kann ich helfen?")


def today_in(zone: ZoneInfo) -> date:
    return datetime.now(zone).date()


def next_weekday(zone: ZoneInfo, weekday: int) -> date:
    """The day a caller means by a bare weekday: the next one after today."""
    today = today_in(zone)
    return today + timedelta(days=(weekday - today.weekday()) % 7 or 7)


def at(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


@dataclass(frozen=True)
class BargeIn:
    """The caller says `said` and speaks again (`then`) as soon as the answer reaches `when`."""
    said: str
    then: str
    when: str = "tool_result"


def call(asgi_server, agent, lines, *, caller):
    """One whole call: the greeting, then each caller line answered in full (a BargeIn line: the
    answer to its second part). Returns (call, turns)."""
    async def scenario():
        simulated = SimulatedCall(f"{asgi_server}/retell-llm/{agent.socket_token}/{call_id}", call_id=call_id,
                                  agent_id=agent.agent_id, from_number=caller, to_number=practice_number)
        await simulated.connect()
        turns = []
        for line in lines:
            if isinstance(line, BargeIn):
                turns.append(await simulated.say_over(line.said, then=line.then, when=line.when))
            else:
                turns.append(await simulated.say(line))
            if turns[-1].end_call:
                break
        await simulated.hang_up()
        return simulated, turns

    call_id, practice_number = new_call_id(), agent.company.phone
    return asyncio.run(asyncio.wait_for(scenario(), 60))


def appointments_of(agent):
    return list(Appointment.objects.filter(company=agent.company).select_related("service").order_by("pk"))


# --- booking --------------------------------------------------------------------------------------------

def test_english_booking_with_a_correction_leaves_one_pending_appointment_on_the_corrected_day(asgi_server, dental):
    simulated, turns = call(asgi_server, dental, [
        "Hi, I'd like to book a cleaning please",
        "Tomorrow at 10 am",
        "It's Anna Schmidt",
        "No, Wednesday instead",
        "Yes, please",
        "No, that's all, thanks",
    ], caller=EN_CALLER)

    assert simulated.greeting == "Bright Smile Dental, this is Sophie. How can I help?"
    assert turns[0].text == "Which day would suit you?"
    # The time is checked before the read-back; the answer says it is free.
    assert turns[1].text.startswith("Let me check. ") and turns[1].text.endswith(
        "at 10 AM is available. May I have your name, please?")
    assert [t.name for t in turns[1].tool_calls] == ["check_availability"]
    assert turns[2].text == "So that's a cleaning for Anna Schmidt tomorrow at 10 am. Shall I book that?"
    assert turns[3].text.startswith("Let me check. ") and turns[3].text.endswith(
        "So that's a cleaning for Anna Schmidt on Wednesday at 10 am. Shall I book that?")
    booking = turns[4]
    assert [(t.name, t.successful) for t in booking.tool_calls] == [("collect_appointment_information", True)]
    assert "Anna Schmidt" in booking.text and "anything else" in booking.text
    assert turns[5].end_call and simulated.stale_frames == 0
    [appointment] = appointments_of(dental)
    assert appointment.status == Appointment.Status.PENDING
    assert appointment.service.name == "Cleaning"
    assert appointment.start == at(next_weekday(NEW_YORK, 2), 10, 0, NEW_YORK)
    assert appointment.start.astimezone(NEW_YORK).hour == 10
    assert appointment.customer_name == "Anna Schmidt"
    assert appointment.phone == EN_CALLER
    assert appointment.call_id == simulated.call_id

    # The call's row has the live conversation: every turn with its latency, the tool with its result.
    live = recorded_turns(simulated.call_id, expected=len(turns))
    assert all(turn["first_chunk_ms"] is not None and turn["complete_ms"] is not None for turn in live)
    [tool] = [tool for turn in live for tool in turn["tool_calls"] if tool["name"] != "check_availability"]
    assert tool["name"] == "collect_appointment_information" and tool["result"]["ok"] is True
    assert tool["arguments"]["name"] == "Anna Schmidt"
    assert Call.objects.get(call_id=simulated.call_id).agent == dental


def recorded_turns(call_id: str, *, expected: int, seconds: float = 10.0) -> list:
    """The turns the server recorded on the call's row (written just after each answer)."""
    deadline = monotonic() + seconds
    while True:
        found = Call.objects.filter(call_id=call_id).values_list("live_turns", flat=True).first() or []
        if len(found) >= expected or monotonic() > deadline:
            return found
        sleep(0.1)


def test_german_booking_with_a_correction_leaves_one_pending_appointment_on_the_corrected_day(asgi_server, praxis):
    simulated, turns = call(asgi_server, praxis, [
        "Guten Tag, ich hätte gern einen Termin zur Zahnreinigung",
        "Morgen um 9 Uhr",
        "Mein Name ist Hans Müller",
        "Nein, lieber Mittwoch",
        "Ja, genau",
        "Nein danke, auf Wiederhören",
    ], caller=DE_CALLER)

    assert turns[0].text == "An welchem Tag passt es Ihnen?"
    assert turns[1].text.startswith("Ich schaue kurz nach. Am ") and turns[1].text.endswith(
        "um 9 Uhr ist noch frei. Wie ist Ihr Name, bitte?")
    assert turns[2].text == "Also: Zahnreinigung für Hans Müller morgen um 9 Uhr. Soll ich das so buchen?"
    assert turns[3].text.endswith("Also: Zahnreinigung für Hans Müller am Mittwoch um 9 Uhr. Soll ich das so buchen?")
    assert [t.name for t in turns[4].tool_calls] == ["collect_appointment_information"]
    assert "Hans Müller" in turns[4].text and "Kann ich sonst noch etwas" in turns[4].text
    assert turns[5].end_call
    [appointment] = appointments_of(praxis)
    assert appointment.status == Appointment.Status.PENDING
    assert appointment.service.name == "Zahnreinigung"
    assert appointment.start == at(next_weekday(BERLIN, 2), 9, 0, BERLIN)
    assert appointment.customer_name == "Hans Müller"
    assert appointment.phone == DE_CALLER
    assert appointment.call_id == simulated.call_id


def test_english_taken_slot_is_answered_with_alternatives_and_the_caller_takes_one(asgi_server, dental):
    wednesday = next_weekday(NEW_YORK, 2)
    cleaning = Service.objects.get(company=dental.company, name="Cleaning")
    taken = appointment_book(actor=SETUP, company=dental.company, customer_name="Earlier Caller",
                             start=at(wednesday, 10, 0, NEW_YORK), service=cleaning, phone="+12125550100",
                             status=Appointment.Status.CONFIRMED)

    simulated, turns = call(asgi_server, dental, [
        "I'd like to book a cleaning on Wednesday at 10 am",
        "Then 10:30 please",
        "My name is Anna Schmidt",
        "Yes, please",
    ], caller=EN_CALLER)

    # The taken time is refused with alternatives before the read-back, not after the caller's yes.
    refused = turns[0]
    [tool] = refused.tool_calls
    assert tool.name == "check_availability" and '"available": false' in tool.result
    assert '"reason": "taken"' in tool.result
    assert refused.text.startswith("Let me check. Wednesday") and "already taken" in refused.text
    assert "10:30 AM" in refused.text and "Which other day or time would suit you?" in refused.text
    assert turns[1].text.endswith("May I have your name, please?")
    assert turns[2].text == "So that's a cleaning for Anna Schmidt on Wednesday at 10:30 am. Shall I book that?"
    assert [(t.name, t.successful) for t in turns[3].tool_calls] == [("collect_appointment_information", True)]
    earlier, booked = appointments_of(dental)
    assert earlier.pk == taken.pk and earlier.status == Appointment.Status.CONFIRMED
    assert booked.start == at(wednesday, 10, 30, NEW_YORK)
    assert (booked.status, booked.customer_name, booked.phone) == (Appointment.Status.PENDING, "Anna Schmidt",
                                                                     EN_CALLER)


def test_german_taken_slot_is_answered_with_alternatives_and_the_caller_takes_one(asgi_server, praxis):
    wednesday = next_weekday(BERLIN, 2)
    cleaning = Service.objects.get(company=praxis.company, name="Zahnreinigung")
    appointment_book(actor=SETUP, company=praxis.company, customer_name="Frühere Anruferin",
                     start=at(wednesday, 9, 0, BERLIN), service=cleaning, phone="+4915100000000",
                     status=Appointment.Status.CONFIRMED)

    simulated, turns = call(asgi_server, praxis, [
        "Ich möchte am Mittwoch um 9 Uhr einen Termin zur Zahnreinigung",
        "Dann um 9:30",
        "Hans Müller",
        "Ja, bitte",
    ], caller=DE_CALLER)

    refused = turns[0]
    assert [t.name for t in refused.tool_calls] == ["check_availability"]
    assert "9:30 Uhr" in refused.text and "Welcher andere Tag oder welche andere Uhrzeit" in refused.text
    assert turns[2].text == "Also: Zahnreinigung für Hans Müller am Mittwoch um 9:30 Uhr. Soll ich das so buchen?"
    assert [(t.name, t.successful) for t in turns[3].tool_calls] == [("collect_appointment_information", True)]
    _, booked = appointments_of(praxis)
    assert booked.start == at(wednesday, 9, 30, BERLIN)
    assert (booked.status, booked.customer_name, booked.phone) == (Appointment.Status.PENDING, "Hans Müller",
                                                                     DE_CALLER)


# --- rescheduling and cancelling --------------------------------------------------------------------------

def _existing(agent, service_name: str, start: datetime, phone: str, name: str) -> Appointment:
    service = Service.objects.get(company=agent.company, name=service_name)
    return appointment_book(actor=SETUP, company=agent.company, customer_name=name, start=start, service=service,
                            phone=phone, status=Appointment.Status.CONFIRMED)


def test_english_rescheduling_moves_the_callers_appointment_to_the_day_and_time_said(asgi_server, dental):
    tomorrow = today_in(NEW_YORK) + timedelta(days=1)
    old = _existing(dental, "Check-up", at(tomorrow, 9, 0, NEW_YORK), EN_CALLER, "Anna Schmidt")

    simulated, turns = call(asgi_server, dental, [
        "Hi, I need to reschedule my appointment",
        "To Thursday at 2 pm",
        "Yes, that's right",
    ], caller=EN_CALLER)

    assert turns[0].text == "To which day would you like to move it?"
    assert turns[1].text == "I'll move your appointment to Thursday at 2 pm. Is that right?"
    assert [(t.name, t.successful) for t in turns[2].tool_calls] == [("change_appointment_details", True)]
    old.refresh_from_db()
    assert old.status == Appointment.Status.RESCHEDULED
    new = old.rescheduled_to
    assert new.start == at(next_weekday(NEW_YORK, 3), 14, 0, NEW_YORK)
    assert (new.status, new.service.name, new.customer_name, new.phone) == (
        Appointment.Status.CONFIRMED, "Check-up", "Anna Schmidt", EN_CALLER)


def test_german_rescheduling_with_a_correction_moves_to_the_corrected_day(asgi_server, praxis):
    tomorrow = today_in(BERLIN) + timedelta(days=1)
    old = _existing(praxis, "Kontrolluntersuchung", at(tomorrow, 11, 0, BERLIN), DE_CALLER, "Hans Müller")

    simulated, turns = call(asgi_server, praxis, [
        "Ich muss meinen Termin verschieben",
        "Auf Donnerstag um 15 Uhr",
        "Nein, lieber Freitag",
        "Ja, passt",
    ], caller=DE_CALLER)

    assert turns[1].text == "Ich verschiebe Ihren Termin auf Donnerstag um 15 Uhr. Passt das?"
    assert turns[2].text == "Ich verschiebe Ihren Termin auf Freitag um 15 Uhr. Passt das?"
    assert [t.successful for t in turns[3].tool_calls] == [True]
    old.refresh_from_db()
    assert old.status == Appointment.Status.RESCHEDULED
    assert old.rescheduled_to.start == at(next_weekday(BERLIN, 4), 15, 0, BERLIN)
    assert old.rescheduled_to.status == Appointment.Status.CONFIRMED


def test_english_cancelling_cancels_the_callers_appointment(asgi_server, dental):
    tomorrow = today_in(NEW_YORK) + timedelta(days=1)
    mine = _existing(dental, "Cleaning", at(tomorrow, 15, 0, NEW_YORK), EN_CALLER, "Anna Schmidt")
    someone_elses = _existing(dental, "Cleaning", at(tomorrow, 16, 0, NEW_YORK), "+12125550111", "Bob Miller")

    simulated, turns = call(asgi_server, dental, [
        "I'd like to cancel my appointment tomorrow",
        "Yes",
        "No, that's all. Bye!",
    ], caller=EN_CALLER)

    assert turns[0].text == "Shall I cancel your appointment tomorrow?"
    assert [(t.name, t.successful) for t in turns[1].tool_calls] == [("cancel_appointment", True)]
    assert turns[2].end_call
    mine.refresh_from_db()
    someone_elses.refresh_from_db()
    assert mine.status == Appointment.Status.CANCELLED
    assert someone_elses.status == Appointment.Status.CONFIRMED


def test_german_cancelling_cancels_the_callers_appointment(asgi_server, praxis):
    tomorrow = today_in(BERLIN) + timedelta(days=1)
    mine = _existing(praxis, "Zahnreinigung", at(tomorrow, 10, 0, BERLIN), DE_CALLER, "Hans Müller")

    simulated, turns = call(asgi_server, praxis, [
        "Ich möchte meinen Termin absagen",
        "Ja, bitte",
        "Nein danke, tschüss",
    ], caller=DE_CALLER)

    assert turns[0].text == "Soll ich Ihren Termin absagen?"
    assert [(t.name, t.successful) for t in turns[1].tool_calls] == [("cancel_appointment", True)]
    assert turns[2].end_call
    mine.refresh_from_db()
    assert mine.status == Appointment.Status.CANCELLED


def test_an_appointment_booked_from_another_number_is_found_by_name_and_moved(asgi_server, dental):
    tomorrow = today_in(NEW_YORK) + timedelta(days=1)
    old = _existing(dental, "Cleaning", at(tomorrow, 9, 0, NEW_YORK), "+12125550177", "Anna Schmidt")

    simulated, turns = call(asgi_server, dental, [
        "I need to move my appointment",
        "To Thursday at 2 pm",
        "Yes",
        "Anna Schmidt",
        "Yes",
    ], caller=EN_CALLER)

    assert [t.successful for t in turns[2].tool_calls] == [False]
    assert turns[2].text.endswith("Under which name was the appointment booked?")
    assert turns[3].text == "I'll move your appointment to Thursday at 2 pm. Is that right?"
    assert [t.successful for t in turns[4].tool_calls] == [True]
    old.refresh_from_db()
    assert old.status == Appointment.Status.RESCHEDULED
    assert old.rescheduled_to.start == at(next_weekday(NEW_YORK, 3), 14, 0, NEW_YORK)
    assert old.rescheduled_to.phone == "+12125550177"  # the appointment keeps its own number


# --- calls that go right: interruptions, names, the clock, openings, languages ----------------------------

def test_a_yes_interrupted_after_its_booking_then_corrected_moves_that_booking(asgi_server, praxis):
    # Given "Ja." books Thursday and the caller, as its result goes out, says "Ach nein, doch lieber
    # Freitag.", when the call goes on, then the Thursday booking is moved: one appointment, on Friday.
    thursday, friday = next_weekday(BERLIN, 3), next_weekday(BERLIN, 4)
    simulated, turns = call(asgi_server, praxis, [
        "Ich hätte gern eine Zahnreinigung am Donnerstag um 9 Uhr, mein Name ist Hans Müller.",
        BargeIn("Ja.", then="Ach nein, doch lieber Freitag."),
        "Ja, bitte.",
    ], caller=DE_CALLER)

    interrupted = simulated.turns[1]
    assert [t.name for t in interrupted.tool_calls] == ["collect_appointment_information"]
    assert turns[1].text == ("Ich hatte Ihren Termin am Donnerstag um 9 Uhr schon eingetragen. Soll ich ihn auf "
                             "Freitag um 9 Uhr verlegen?")
    assert [(t.name, t.successful) for t in turns[2].tool_calls] == [("change_appointment_details", True)]
    first, moved = appointments_of(praxis)
    assert first.start == at(thursday, 9, 0, BERLIN) and first.status == Appointment.Status.RESCHEDULED
    assert first.rescheduled_to_id == moved.pk
    assert moved.start == at(friday, 9, 0, BERLIN) and moved.status == Appointment.Status.PENDING
    assert moved.call_id == simulated.call_id and moved.customer_name == "Hans Müller"


def test_a_time_given_for_the_name_and_then_the_name_books_that_name_at_that_time(asgi_server, praxis):
    friday = next_weekday(BERLIN, 4)
    kontrolle = Service.objects.get(company=praxis.company, name="Kontrolluntersuchung")
    simulated, turns = call(asgi_server, praxis, [
        "Hallo, ich brauche eine Kontrolluntersuchung am Freitag um 15 Uhr.",
        "Dann um 13 Uhr.",
        "Jörg Müller.",
        "Ja.",
    ], caller=DE_CALLER)

    assert turns[2].text == "Also: Kontrolluntersuchung für Jörg Müller am Freitag um 13 Uhr. Soll ich das so buchen?"
    [appointment] = appointments_of(praxis)
    assert (appointment.customer_name, appointment.service, appointment.start) == (
        "Jörg Müller", kontrolle, at(friday, 13, 0, BERLIN))


def test_a_time_outside_opening_hours_is_refused_with_alternatives_before_the_read_back(asgi_server, dental):
    dental.company.opening_hours = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    dental.company.save(update_fields=["opening_hours"])
    simulated, turns = call(asgi_server, dental, [
        "I'd like to book a cleaning on Friday at 7 pm, my name is Anna Schmidt",
    ], caller=EN_CALLER)

    [refused] = turns
    assert refused.text.startswith("Let me check. We are not open at 7 PM on Friday")
    assert refused.text.endswith("Which other day or time would suit you?")
    assert "So that's" not in refused.text and not appointments_of(dental)


def opening_answer(asgi_server, agent, opening, caller):
    simulated, [answer] = call(asgi_server, agent, [opening], caller=caller)
    assert [t.name for t in answer.tool_calls] == ["check_availability"]
    return answer.text


def test_next_week_for_a_check_up_is_answered_with_the_first_free_days(asgi_server, praxis):
    text = opening_answer(asgi_server, praxis, "Kann ich nächste Woche zur Kontrolle kommen?", DE_CALLER)

    assert text.startswith("Ich schaue kurz nach. Zwischen Montag") and "wäre frei am Montag" in text
    assert text.endswith("Was davon passt Ihnen?")


def test_a_check_up_on_friday_at_three_goes_on_to_the_name(asgi_server, praxis):
    text = opening_answer(asgi_server, praxis, "Hallo, ich brauche eine Kontrolluntersuchung am Freitag um 15 Uhr.",
                          DE_CALLER)

    assert text.endswith("um 15 Uhr ist noch frei. Wie ist Ihr Name, bitte?")


def test_a_check_up_tomorrow_morning_is_answered_with_the_free_morning_times(asgi_server, dental):
    text = opening_answer(asgi_server, dental, "Hi, can I get a check-up tomorrow morning?", EN_CALLER)

    assert text.startswith("Let me check. On ") and " I have " in text and text.endswith("Which of them suits you?")


def test_a_multilingual_agent_at_a_german_practice_books_in_english_for_an_english_caller(asgi_server, praxis):
    agent, _, _ = agent_update(actor=SETUP, agent=praxis, fields={"language": "multi"}, push=False)
    simulated, turns = call(asgi_server, agent, [
        "Hi, I'd like to book a cleaning tomorrow at 10 am, please.",
        "My name is Anna Schmidt.",
        "Yes, please.",
    ], caller=EN_CALLER)

    assert turns[0].text.startswith("Let me check.") and turns[0].text.endswith("May I have your name, please?")
    assert turns[1].text.startswith("So that's")
    assert [(t.name, t.successful) for t in turns[2].tool_calls] == [("collect_appointment_information", True)]
    assert "anything else" in turns[2].text
    [appointment] = appointments_of(praxis)
    assert appointment.customer_name == "Anna Schmidt"


def test_a_transfer_the_caller_barged_into_is_sent_again(asgi_server, praxis):
    simulated, turns = call(asgi_server, praxis, [
        BargeIn("Ich möchte bitte mit einem Mitarbeiter sprechen.", then="Ja, danke!", when="chunk"),
    ], caller=DE_CALLER)

    assert turns[0].transfer_number == praxis.company.phone
    assert turns[0].text == "Ich verbinde Sie jetzt."
