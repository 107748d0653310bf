"""The embedded receptionist at the engine level: English and German scripts, the tool
calls it asks the session to run (with their arguments), corrections, and what it says."""

import copy

import pytest

from tests.voice.conversation import Conversation, Reply
from voice.dialog.base import AgentInfo, CallContext, CompanyInfo, ServiceInfo
from voice.dialog.receptionist import ReceptionistEngine, opening_hours_text

HOURS = {"mon": [["08:00", "18:00"]], "tue": [["08:00", "18:00"]], "wed": [["08:00", "18:00"]],
         "thu": [["08:00", "18:00"]], "fri": [["08:00", "14:00"]]}


def context(language="en", *, caller="+12125550199", services=None, phone="+12125550134",
            greeting="Bright Smile Dental, this is {{agent_name}}. How can I help?", variables=None):
    company = CompanyInfo(id=1, name="Bright Smile Dental" if language == "en" else "Praxis Dr. Weiß",
                          region="US" if language == "en" else "DE",
                          phone=phone, address="200 Park Avenue South\nNew York, NY 10003" if language == "en"
                          else "Friedrichstraße 100, 10117 Berlin",
                          opening_hours=HOURS, timezone="America/New_York" if language == "en" else "Europe/Berlin",
                          language=language)
    agent = AgentInfo(id=1, agent_id="agent_x", name="Sophie", language="en-US" if language == "en" else "de-DE",
                      begin_message=greeting)
    if services is None:
        services = ([ServiceInfo("Cleaning", "120 dollars"), ServiceInfo("Checkup", "80 dollars")] if language == "en"
                    else [ServiceInfo("Zahnreinigung", "80 Euro"), ServiceInfo("Kontrolle", "50 Euro")])
    return CallContext(call_id="call_1", company=company, agent=agent, services=services, caller_number=caller,
                       variables=variables or {})


def talk(language="en", **kwargs):
    tool_results = kwargs.pop("tool_results", None)
    return Conversation(ReceptionistEngine(), context(language, **kwargs), tool_results=tool_results)


# --- booking ----------------------------------------------------------------------------------

def test_english_booking_asks_for_what_is_missing_confirms_takes_a_correction_and_books():
    call = talk("en")

    asked_day = call.say("Hi, I'd like to book a cleaning please")
    asked_name = call.say("Tomorrow at 10 am")
    confirm = call.say("It's Anna Schmidt")
    corrected = call.say("No, Wednesday instead")
    booked = call.say("Yes, please")
    bye = call.say("No, that's all, thanks")

    assert "which day" in asked_day.text.lower() and not asked_day.tool_calls
    # The time is checked before the read-back, with the service it is for.
    assert asked_name.text == "Let me check. May I have your name, please?"
    assert [(c.name, c.arguments) for c in asked_name.tool_calls] == [("check_availability", {
        "date": "tomorrow", "time": "10:00", "service": "Cleaning"})]
    assert confirm.text == "So that's a cleaning for Anna Schmidt tomorrow at 10 am. Shall I book that?"
    assert not confirm.tool_calls
    assert corrected.text == "Let me check. So that's a cleaning for Anna Schmidt on Wednesday at 10 am. Shall I book that?"
    assert [(c.name, c.arguments) for c in booked.tool_calls] == [("collect_appointment_information", {
        "name": "Anna Schmidt", "date": "Wednesday", "time": "10:00", "service": "Cleaning"})]
    assert "anything else" in booked.text.lower()
    assert bye.end_call and "goodbye" in bye.text.lower()


def test_german_booking_with_a_correction_books_the_corrected_day():
    call = talk("de", caller="+491701234567")

    asked_day = call.say("Guten Tag, ich hätte gern einen Termin zur Zahnreinigung")
    asked_name = call.say("Morgen um 9 Uhr")
    confirm = call.say("Mein Name ist Hans Müller")
    corrected = call.say("Nein, lieber Mittwoch")
    booked = call.say("Ja, genau")
    bye = call.say("Nein danke, auf Wiederhören")

    assert asked_day.text == "An welchem Tag passt es Ihnen?"
    assert asked_name.text == "Ich schaue kurz nach. Wie ist Ihr Name, bitte?"
    assert confirm.text == "Also: Zahnreinigung für Hans Müller morgen um 9 Uhr. Soll ich das so buchen?"
    assert corrected.text == ("Ich schaue kurz nach. Also: Zahnreinigung für Hans Müller am Mittwoch um 9 Uhr. "
                              "Soll ich das so buchen?")
    assert [(c.name, c.arguments) for c in booked.tool_calls] == [("collect_appointment_information", {
        "name": "Hans Müller", "date": "Mittwoch", "time": "09:00", "service": "Zahnreinigung"})]
    assert "Kann ich sonst noch etwas" in booked.text
    assert bye.end_call and "Auf Wiederhören" in bye.text


def test_everything_in_one_sentence_goes_straight_to_the_confirmation():
    call = talk("en")

    reply = call.say("My name is Tom Baker, I want to book a checkup on Friday at 2:30 pm")

    assert reply.text == "Let me check. So that's a checkup for Tom Baker on Friday at 2:30 pm. Shall I book that?"
    assert [c.name for c in reply.tool_calls] == ["check_availability"]


def test_a_time_correction_at_the_confirmation_changes_only_the_time():
    call = talk("en")
    call.say("I'd like to book a cleaning tomorrow at 10 am, my name is Anna Schmidt")

    corrected = call.say("No, at 11 please")
    booked = call.say("Yes")

    assert corrected.text == "Let me check. So that's a cleaning for Anna Schmidt tomorrow at 11 am. Shall I book that?"
    assert booked.tool_calls[0].arguments["time"] == "11:00"
    assert booked.tool_calls[0].arguments["date"] == "tomorrow"


def test_no_without_a_correction_asks_what_to_change_and_books_nothing():
    call = talk("de")
    call.say("Ich möchte einen Termin zur Kontrolle am Freitag um 10 Uhr, ich heiße Eva Klein")

    asked = call.say("Nein")
    confirm = call.say("Donnerstag")

    assert asked.text == "Kein Problem. Was möchten Sie ändern?" and not asked.tool_calls
    assert confirm.text == "Ich schaue kurz nach. Also: Kontrolle für Eva Klein am Donnerstag um 10 Uhr. Soll ich das so buchen?"


def test_without_the_callers_number_it_asks_for_one_and_passes_it_on():
    call = talk("en", caller=None)

    asked = call.say("I'd like to book a cleaning tomorrow at 10 am, my name is Anna Schmidt")
    call.say("It's 212 555 0188")
    booked = call.say("Yes")

    assert asked.text.endswith("What's the best number to reach you?")
    assert booked.tool_calls[0].arguments["phone"] == "+12125550188"


def test_a_number_that_is_no_valid_number_is_asked_again():
    call = talk("de", caller=None)
    call.say("Ich möchte einen Termin zur Kontrolle am Freitag um 10 Uhr, ich heiße Eva Klein")

    asked_again = call.say("12345678")
    confirm = call.say("0151 23456789")
    booked = call.say("Ja")

    assert asked_again.text.startswith("Die Nummer habe ich leider nicht richtig verstanden")
    assert confirm.text.startswith("Also: Kontrolle für Eva Klein")
    assert booked.tool_calls[0].arguments["phone"] == "+4915123456789"


def test_a_service_not_in_the_catalogue_is_taken_as_said():
    call = talk("en", services=[])

    asked = call.say("I'd like to make an appointment")
    call.say("A root canal treatment")
    call.say("Monday at 9")
    call.say("Anna Schmidt")
    booked = call.say("Yes")

    assert asked.text == "What is the appointment for?"
    assert booked.tool_calls[0].arguments == {"name": "Anna Schmidt", "date": "Monday", "time": "09:00",
                                              "service": "root canal treatment"}


def test_a_taken_slot_is_said_and_another_time_is_asked_for():
    taken = {"success": False, "message": "10 am is taken; 11 am or 2 pm are free."}
    call = talk("en", tool_results={"collect_appointment_information": taken})
    call.say("Book a cleaning tomorrow at 10 am, my name is Anna Schmidt")

    refused = call.say("Yes")
    confirm = call.say("11 am then")

    assert refused.text.startswith("One moment, please. 10 am is taken; 11 am or 2 pm are free.")
    assert confirm.text == "Let me check. So that's a cleaning for Anna Schmidt tomorrow at 11 am. Shall I book that?"


def test_a_time_the_check_refuses_is_answered_with_alternatives_before_the_read_back():
    # Given the check says the practice is closed then, when the caller names the time,
    # then the refusal and the alternatives come before any read-back, and nothing is booked.
    closed = {"ok": True, "available": False, "reason": "outside_hours",
              "message": "We are not open at 7 PM on Friday. I could offer 5:30 PM."}
    answers = iter([closed, {"ok": True, "available": True, "message": "5:30 PM is available."}])
    call = talk("en", tool_results={"check_availability": lambda args: next(answers)})
    call.say("I'd like to book a cleaning, my name is Anna Schmidt")

    refused = call.say("Friday at 7 pm")
    confirm = call.say("5:30 then")

    assert refused.text == ("Let me check. We are not open at 7 PM on Friday. I could offer 5:30 PM. "
                            "Which other day or time would suit you?")
    assert [c.name for c in refused.tool_calls] == ["check_availability"]
    assert confirm.text == ("Let me check. 5:30 PM is available. So that's a cleaning for Anna Schmidt on Friday "
                            "at 5:30 pm. Shall I book that?")


def test_a_failed_handler_gets_an_apology_and_a_transfer_on_yes():
    call = talk("en", tool_results={"collect_appointment_information": {"error": "unavailable"}})
    call.say("Book a cleaning tomorrow at 10 am, my name is Anna Schmidt")

    failed = call.say("Yes")
    transfer = call.say("Yes please")

    assert "sorry" in failed.text.lower() and "put you through" in failed.text.lower()
    assert transfer.transfer == "+12125550134"


def test_the_caller_hears_a_word_before_the_appointment_work_starts():
    call = talk("de")
    call.say("Ich hätte gern einen Termin zur Zahnreinigung morgen um 9 Uhr, mein Name ist Hans Müller")

    booked = call.say("Ja")
    checked = call.say("Haben Sie am Freitag noch etwas frei?")

    assert booked.chunks[0] == "Einen Moment, bitte. " and len(booked.chunks) == 2
    assert checked.chunks[0] == "Ich schaue kurz nach. " and len(checked.chunks) == 2


# --- rescheduling and cancelling ---------------------------------------------------------------

def test_english_reschedule_moves_from_one_day_to_another():
    call = talk("en")

    confirm = call.say("I need to move my appointment from Monday to Friday at 3 pm")
    moved = call.say("Yes, that's right")

    assert confirm.text == "I'll move your appointment from Monday to Friday at 3 pm. Is that right?"
    assert [(c.name, c.arguments) for c in moved.tool_calls] == [("change_appointment_details", {
        "current_date": "Monday", "new_date": "Friday", "new_time": "15:00"})]


def test_german_reschedule_asks_for_the_time_and_confirms():
    call = talk("de")

    asked = call.say("Ich möchte meinen Termin auf nächsten Freitag verschieben")
    confirm = call.say("Um halb drei")
    moved = call.say("Ja")

    assert asked.text == "Und um wie viel Uhr?"
    assert confirm.text == "Ich verschiebe Ihren Termin auf nächsten Freitag um 14:30 Uhr. Passt das?"
    assert [(c.name, c.arguments) for c in moved.tool_calls] == [("change_appointment_details", {
        "new_date": "nächsten Freitag", "new_time": "14:30"})]


def test_cancel_confirms_first_and_sends_the_date():
    call = talk("en")

    confirm = call.say("I have to cancel my appointment on Wednesday")
    cancelled = call.say("Yes")

    assert confirm.text == "Shall I cancel your appointment on Wednesday?" and not confirm.tool_calls
    assert [(c.name, c.arguments) for c in cancelled.tool_calls] == [("cancel_appointment", {"date": "Wednesday"})]
    assert "anything else" in cancelled.text.lower()


def test_german_cancel_without_callers_number_asks_the_name():
    call = talk("de", caller=None)

    asked = call.say("Ich muss meinen Termin absagen")
    confirm = call.say("Hans Müller")
    cancelled = call.say("Ja, bitte")

    assert asked.text == "Wie ist Ihr Name, bitte?"
    assert confirm.text == "Soll ich Ihren Termin absagen?"
    assert [(c.name, c.arguments) for c in cancelled.tool_calls] == [("cancel_appointment", {"name": "Hans Müller"})]


def test_no_thanks_to_a_confirmation_drops_the_booking_but_not_the_call():
    call = talk("de")
    call.say("Ich möchte einen Termin zur Kontrolle am Freitag um 10 Uhr, ich heiße Eva Klein")

    reply = call.say("Nein danke")

    assert reply.text == "In Ordnung. Kann ich sonst noch etwas für Sie tun?"
    assert not reply.tool_calls and not reply.end_call


def test_cancel_declined_books_nothing():
    call = talk("en")
    call.say("Cancel my appointment please")

    declined = call.say("No")

    assert not declined.tool_calls


# --- availability --------------------------------------------------------------------------------

def test_availability_is_checked_then_booking_offered_and_continued():
    free = {"available": True, "message": "Thursday morning is free from 8 to 11."}
    call = talk("en", tool_results={"check_availability": free})

    checked = call.say("Do you have anything free on Thursday morning?")
    asked = call.say("Yes, at 9")
    asked_name = call.say("A checkup")
    confirm = call.say("Anna Schmidt")

    assert [(c.name, c.arguments) for c in checked.tool_calls] == [("check_availability", {
        "date": "Thursday", "time": "morning"})]
    assert checked.text == "Let me check. Thursday morning is free from 8 to 11. Shall I book an appointment for you?"
    assert asked.text.startswith("What is the appointment for?")
    assert asked_name.text == "Let me check. Thursday morning is free from 8 to 11. May I have your name, please?"
    assert [(c.name, c.arguments) for c in asked_name.tool_calls] == [("check_availability", {
        "date": "Thursday", "time": "09:00", "service": "Checkup"})]
    assert confirm.text == "So that's a checkup for Anna Schmidt on Thursday at 9 am. Shall I book that?"


def test_german_availability_with_a_time_passes_the_time():
    call = talk("de", tool_results={"check_availability": {"available": False, "message": "Leider belegt."}})

    checked = call.say("Haben Sie morgen um 10 Uhr noch was frei?")

    assert checked.tool_calls[0].arguments == {"date": "morgen", "time": "10:00"}
    assert checked.text.startswith("Ich schaue kurz nach. Leider belegt.")


def test_german_availability_for_a_part_of_the_day_asks_for_that_part_only():
    call = talk("de", tool_results={"check_availability": {"available": True, "message": "Frei um 8 Uhr."}})

    checked = call.say("Haben Sie morgen Vormittag noch was frei?")

    assert checked.tool_calls[0].arguments == {"date": "morgen", "time": "vormittags"}


# --- answers that do not fit the question, refusals ------------------------------------------------

def test_a_name_given_when_asked_for_the_service_is_kept_as_the_name_and_the_service_asked_again():
    call = talk("en")
    call.say("Do I need an appointment? I'd like one on Friday at 11")

    asked_again = call.say("I'm Tom Baker")
    confirm = call.say("A cleaning")

    assert asked_again.text == "What is the appointment for? We offer cleaning and checkup."
    assert confirm.text == "Let me check. So that's a cleaning for Tom Baker on Friday at 11 am. Shall I book that?"


def test_an_answer_naming_nothing_of_the_catalogue_is_asked_again_and_a_short_form_is_taken():
    call = talk("de", services=[ServiceInfo("Zahnreinigung"), ServiceInfo("Kontrolluntersuchung")])
    call.say("Ich hätte gern einen Termin am Freitag um 10 Uhr")

    asked_again = call.say("Müller")
    taken = call.say("Kontrolle")

    assert asked_again.text == "Worum geht es bei dem Termin? Wir bieten Zahnreinigung und Kontrolluntersuchung an."
    assert taken.text == "Ich schaue kurz nach. Wie ist Ihr Name, bitte?"
    call.say("Eva Klein")
    assert call.say("Ja").tool_calls[0].arguments["service"] == "Kontrolluntersuchung"


def test_a_service_outside_the_catalogue_is_refused_at_once_and_asked_for_again():
    call = talk("en")

    refused = call.say("I'd like to book a root canal tomorrow at 10 am, my name is Anna Schmidt")
    confirm = call.say("A cleaning then")

    assert refused.text == "We don't offer root canal, I'm afraid. We offer cleaning or checkup. Which would you like?"
    assert not refused.tool_calls
    assert confirm.text == "Let me check. So that's a cleaning for Anna Schmidt tomorrow at 10 am. Shall I book that?"


def test_an_unknown_service_refusal_asks_for_the_service_not_another_time():
    refusal = {"ok": False, "error": "unknown_service", "message": "We don't offer root canal. We offer Cleaning."}
    call = talk("en", services=[], tool_results={"collect_appointment_information": refusal})
    call.say("I'd like to book a root canal tomorrow at 10 am, my name is Anna Schmidt")

    refused = call.say("Yes")

    assert refused.text == ("One moment, please. We don't offer root canal. We offer Cleaning. "
                            "Which of them would you like?")


def test_an_appointment_not_found_by_number_is_sought_by_the_name_it_was_booked_under():
    answers = iter([{"ok": False, "error": "not_found", "message": "I cannot find an upcoming appointment under "
                                                                   "your phone number."},
                    {"ok": True, "message": "Done."}])
    call = talk("en", tool_results={"change_appointment_details": lambda args: next(answers)})
    call.say("Please move my appointment to Friday at 3 pm")

    refused = call.say("Yes")
    confirm = call.say("Anna Schmidt")
    moved = call.say("Yes")

    assert refused.text.endswith("Under which name was the appointment booked?")
    assert confirm.text == "I'll move your appointment to Friday at 3 pm. Is that right?"
    assert moved.tool_calls[0].arguments == {"new_date": "Friday", "new_time": "15:00", "name": "Anna Schmidt"}


def test_several_appointments_found_asks_which_day_and_moves_that_one():
    answers = iter([{"ok": False, "error": "ambiguous", "message": "You have appointments on Monday and Tuesday."},
                    {"ok": True, "message": "Done."}])
    call = talk("en", tool_results={"change_appointment_details": lambda args: next(answers)})
    call.say("Please move my appointment to Friday at 3 pm")

    refused = call.say("Yes")
    confirm = call.say("The one on Tuesday")
    moved = call.say("Yes")

    assert refused.text.endswith("Which day is the appointment you mean?")
    assert confirm.text == "I'll move your appointment from Tuesday to Friday at 3 pm. Is that right?"
    assert moved.tool_calls[0].arguments == {"new_date": "Friday", "new_time": "15:00", "current_date": "Tuesday"}


# --- questions ------------------------------------------------------------------------------------

def test_opening_hours_in_english_and_german():
    en = talk("en").say("What are your opening hours?")
    de = talk("de").say("Wie sind Ihre Öffnungszeiten?")

    assert en.text.startswith("We're open Monday to Thursday from 8 am to 6 pm and Friday from 8 am to 2 pm.")
    assert de.text.startswith("Wir haben Montag bis Donnerstag von 8 bis 18 Uhr und Freitag von 8 bis 14 Uhr "
                              "geöffnet.")


def test_opening_hours_of_one_day():
    assert talk("en").say("Are you open on Saturday?").text.startswith("On Saturday we're closed.")
    assert talk("de").say("Haben Sie am Freitag geöffnet?").text.startswith(
        "Am Freitag haben wir von 8 bis 14 Uhr geöffnet.")


def test_german_open_question_with_auf_is_about_hours_but_moving_an_appointment_auf_a_day_is_not():
    asked = talk("de").say("Haben Sie am Samstag auf?")
    moving = talk("de").say("Ich möchte meinen Termin auf Freitag verschieben, haben Sie da Zeit?")

    assert asked.text.startswith("Am Samstag haben wir geschlossen.")
    assert moving.text == "Und um wie viel Uhr?"


def test_opening_hours_text_with_a_lunch_break():
    text = opening_hours_text({"mon": [["08:00", "12:00"], ["13:00", "18:00"]]}, "en")

    assert text == "We're open Monday from 8 am to noon and from 1 pm to 6 pm."


def test_address_question():
    assert talk("en").say("What's your address?").text.startswith(
        "You'll find us at 200 Park Avenue South, New York, NY 10003.")
    assert talk("de").say("Wo finde ich Sie?").text.startswith(
        "Unsere Adresse ist Friedrichstraße 100, 10117 Berlin.")


def test_price_of_a_service_from_the_catalogue():
    assert talk("en").say("How much is a cleaning?").text.startswith("Cleaning costs 120 dollars.")
    assert talk("de").say("Was kostet eine Zahnreinigung?").text.startswith("Zahnreinigung kostet 80 Euro.")


def test_price_without_a_service_asks_which_one():
    call = talk("en")

    asked = call.say("How much does it cost?")
    answered = call.say("The checkup")

    assert asked.text == "Which service would you like the price for?"
    assert answered.text.startswith("Checkup costs 80 dollars.")


def test_a_question_during_a_booking_is_answered_and_the_booking_goes_on():
    call = talk("en")
    call.say("I'd like to book a cleaning")

    reply = call.say("Are you open on Friday?")

    assert reply.text == "On Friday we're open from 8 am to 2 pm. Which day would suit you?"


# --- a human, goodbyes, silence ----------------------------------------------------------------------

def test_a_request_for_a_human_transfers_to_the_company_number():
    en = talk("en").say("Can I talk to a real person?")
    de = talk("de", phone="+493083793369").say("Ich möchte bitte mit einem Mitarbeiter sprechen")

    assert en.transfer == "+12125550134" and en.text == "Of course, I'll put you through now."
    assert de.transfer == "+493083793369" and de.text == "Gern, ich verbinde Sie jetzt."


def test_no_transfer_without_a_company_number():
    reply = talk("en", phone="").say("I want to speak to someone")

    assert reply.transfer is None and "no one" in reply.text


def test_goodbye_ends_the_call():
    reply = talk("de").say("Danke, tschüss!")

    assert reply.end_call and reply.text == "Vielen Dank für Ihren Anruf. Auf Wiederhören!"


def test_a_reminder_repeats_the_open_question_and_the_fourth_ends_the_call():
    call = talk("en")
    call.say("I'd like to book a cleaning")

    first = call.silence()
    call.silence()
    call.silence()
    last = call.silence()

    assert first.text == "Are you still there? Which day would suit you?"
    assert last.end_call and not first.end_call


def test_something_not_understood_gets_a_short_offer():
    reply = talk("en").say("Blue elephants sing loudly")

    assert reply.text == "Sorry, I didn't catch that. Would you like to book, move or cancel an appointment?"


def test_greeting_fills_prompt_variables_from_the_call():
    ctx = context("en", greeting="Hi {{customer_name}}, this is {{agent_name}} at {{company_name}}.",
                  variables={"customer_name": "John"})

    assert ctx.greeting() == "Hi John, this is Sophie at Bright Smile Dental."
    assert context("en", greeting="Hello {{unknown}}, how can I help?").greeting() == "Hello, how can I help?"


@pytest.mark.parametrize("language, expected", [("en", "How can I help you?"), ("de", "Wie kann ich Ihnen helfen?")])
def test_a_plain_hello_is_answered_with_how_can_i_help(language, expected):
    assert talk(language).say("Hallo" if language == "de" else "Hello").text == expected


# --- calls that go right: the found inputs ---------------------------------------------------

KONTROLLE = [ServiceInfo("Kontrolluntersuchung"), ServiceInfo("Professionelle Zahnreinigung"),
             ServiceInfo("Beratungsgespräch")]


def test_a_time_given_for_the_name_is_a_time_and_the_name_said_later_is_booked():
    # Given the caller answers the name question with a time, then with the name, then yes,
    # when the booking is made, then it is under the name (not "Dann Um Uhr") at the new time.
    call = talk("de", services=KONTROLLE)
    call.say("Hallo, ich brauche eine Kontrolluntersuchung am Freitag um 15 Uhr.")

    moved = call.say("Dann um 13 Uhr.")
    confirm = call.say("Jörg Müller.")
    booked = call.say("Ja.")

    assert moved.text == "Ich schaue kurz nach. Wie ist Ihr Name, bitte?"
    assert moved.tool_calls[0].arguments["time"] == "13:00"
    assert confirm.text == ("Also: Kontrolluntersuchung für Jörg Müller am Freitag um 13 Uhr. "
                            "Soll ich das so buchen?")
    assert booked.tool_calls[0].arguments == {"name": "Jörg Müller", "date": "Freitag", "time": "13:00",
                                              "service": "Kontrolluntersuchung"}


@pytest.mark.parametrize("language, correction, name", [
    ("de", "Nein, der Name ist Jörg Müller.", "Jörg Müller"), ("de", "Jörg Müller.", "Jörg Müller"),
    ("en", "No, the name is John Carter.", "John Carter"),
])
def test_a_name_said_at_the_read_back_corrects_the_name(language, correction, name):
    call = talk(language)
    call.say("Ich möchte einen Termin zur Kontrolle am Freitag um 10 Uhr, ich heiße Hans Bauer" if language == "de"
             else "I'd like a checkup on Friday at 10 am, my name is Tom Baker")

    confirm = call.say(correction)
    booked = call.say("Ja" if language == "de" else "Yes")

    assert name in confirm.text
    assert booked.tool_calls[-1].arguments["name"] == name


def superseded(call: Conversation, text: str) -> Reply:
    """`text` is answered, but the caller speaks again before the answer is out: as the session
    does, the engine's memory of that turn is dropped, the caller heard nothing of it, and what
    its tools did stays in the call's ledger (context.effects)."""
    memory = copy.deepcopy(call.context.state)
    reply = call.say(text)
    call.context.state.clear()
    call.context.state.update(memory)
    call.transcript.pop()  # the answer nobody heard
    for tool, result in zip(reply.tool_calls, reply.results, strict=True):
        call.context.effects.append({"tool_call_id": tool.tool_call_id, "name": tool.name,
                                     "arguments": tool.arguments, "result": result,
                                     "response_id": call.response_id, "answered": False})
    return reply


def test_a_yes_whose_booking_was_interrupted_and_corrected_moves_that_booking():
    # Given "Ja" booked Thursday and the caller, 5 ms later, said "Ach nein, doch lieber Freitag",
    # when the next turn is answered, then it offers to move the Thursday booking, and yes moves it.
    booked = {"ok": True, "message": "Ich habe Ihnen den Termin eingetragen.", "appointment_id": 41}
    call = talk("de", services=KONTROLLE, tool_results={"collect_appointment_information": booked,
                                                        "change_appointment_details": {"ok": True, "message": "Verlegt."}})
    call.say("Ich hätte gern eine Zahnreinigung am Donnerstag um 9 Uhr, mein Name ist Hans Müller.")
    first = superseded(call, "Ja.")

    offer = call.say("Ach nein, doch lieber Freitag.")
    moved = call.say("Ja, bitte.")

    assert [t.name for t in first.tool_calls] == ["collect_appointment_information"]
    assert offer.text == ("Ich hatte Ihren Termin am Donnerstag um 9 Uhr schon eingetragen. Soll ich ihn auf "
                          "Freitag um 9 Uhr verlegen?")
    assert not offer.tool_calls
    assert [(t.name, t.arguments) for t in moved.tool_calls] == [("change_appointment_details", {
        "new_date": "Freitag", "new_time": "09:00", "appointment_id": 41})]


def test_a_booking_the_caller_did_not_hear_is_told_when_the_caller_only_says_hello():
    booked = {"ok": True, "message": "Ich habe Ihnen den Termin am Donnerstag um 9 Uhr eingetragen.",
              "appointment_id": 41}
    call = talk("de", services=KONTROLLE, tool_results={"collect_appointment_information": booked})
    call.say("Ich hätte gern eine Zahnreinigung am Donnerstag um 9 Uhr, mein Name ist Hans Müller.")
    superseded(call, "Ja.")

    told = call.say("Hallo?")

    assert told.text == ("Ich habe Ihnen den Termin am Donnerstag um 9 Uhr eingetragen. "
                         "Kann ich sonst noch etwas für Sie tun?")
    assert not told.tool_calls


def test_a_correction_right_after_a_booking_moves_it_instead_of_booking_again():
    call = talk("en", tool_results={"collect_appointment_information": {"ok": True, "appointment_id": 7}})
    call.say("I'd like to book a cleaning on Thursday at 10 am, my name is Anna Schmidt")
    call.say("Yes")

    offer = call.say("Oh no, rather Friday")

    assert offer.text == "I had already booked your appointment on Thursday at 10 am. Shall I move it to Friday at 10 am?"
    assert call.say("Yes").tool_calls[0].arguments == {"new_date": "Friday", "new_time": "10:00",
                                                        "appointment_id": 7}


@pytest.mark.parametrize("barge_in", ["Ja, danke!", "Hallo?", "Ja."])
def test_a_transfer_the_caller_interrupted_is_sent_again(barge_in):
    call = talk("de", phone="+493083793369")

    again = call.say(barge_in, interrupted_transfer="+493083793369")

    assert again.transfer == "+493083793369" and again.text == "Ich verbinde Sie jetzt."


def test_a_caller_who_interrupts_a_transfer_with_a_new_request_is_answered_instead():
    call = talk("en")

    answer = call.say("Actually, what are your opening hours?", interrupted_transfer="+12125550134")

    assert answer.transfer is None and answer.text.startswith("We're open Monday to Thursday")


def test_a_caller_who_speaks_after_the_goodbye_is_answered():
    call = talk("en")

    still_here = call.say("Hello?", interrupted_end_call=True)
    answered = call.say("What's your address?", interrupted_end_call=True)

    assert still_here.text == "Yes, I'm still here. Is there anything else I can help you with?"
    assert not still_here.end_call
    assert answered.text.startswith("You'll find us at 200 Park Avenue South")


@pytest.mark.parametrize("language, opening, expected", [
    ("de", "Hallo, ich brauche eine Kontrolluntersuchung am Freitag um 15 Uhr.", "Ich schaue kurz nach. Wie ist Ihr Name, bitte?"),
    ("de", "Ich möchte mit Frau Doktor sprechen.", "Gern, ich verbinde Sie jetzt."),
    ("en", "Hi, can I get a check-up tomorrow morning?", "Let me check."),
])
def test_openings_that_were_not_understood_are_answered(language, opening, expected):
    services = KONTROLLE if language == "de" else [ServiceInfo("Check-up"), ServiceInfo("Teeth cleaning")]
    reply = talk(language, services=services).say(opening)

    assert reply.text.startswith(expected)
    assert "nicht verstanden" not in reply.text and "didn't catch" not in reply.text


def test_next_week_is_checked_for_the_first_free_days_and_a_day_is_asked_for():
    free = {"ok": True, "available": True, "message": "Zwischen Montag und Sonntag wäre frei am Montag um 8 Uhr."}
    call = talk("de", services=KONTROLLE, tool_results={"check_availability": free})

    offered = call.say("Kann ich nächste Woche zur Kontrolle kommen?")
    day = call.say("Dienstag")

    assert offered.tool_calls[0].arguments == {"date": "nächste Woche", "service": "Kontrolluntersuchung"}
    assert offered.text.startswith("Ich schaue kurz nach. Zwischen Montag und Sonntag wäre frei")
    assert day.text == "Und um wie viel Uhr?"
    assert call.context.state["slots"]["date"] == "week:next:tue"


@pytest.mark.parametrize("said, question", [
    ("Um fünf vor.", "Entschuldigung, welche Uhrzeit genau?"),
    ("Zehn oder elf Uhr.", "Entschuldigung, welche Uhrzeit genau?"),
    ("Am Freitag, den 3. Dezember 2026.", "Entschuldigung, welcher Tag genau?"),  # 3.12.2026 is a Thursday
])
def test_words_left_unread_are_asked_about_not_guessed(said, question):
    call = talk("de", services=KONTROLLE)
    call.say("Ich hätte gern eine Kontrolle am Montag")

    asked = call.say(said)

    assert asked.text == question and not asked.tool_calls


def test_a_multilingual_agent_answers_an_english_caller_at_a_german_practice_in_english():
    ctx = context("de", services=KONTROLLE)
    ctx.agent = AgentInfo(id=1, agent_id="agent_x", name="Sophie", language="multi", begin_message="Guten Tag!")
    call = Conversation(ReceptionistEngine(), ctx)

    english = call.say("Hi, I'd like to book a cleaning, please.")
    german = call.say("Ach so, Entschuldigung, lieber auf Deutsch: am Montag bitte.")

    assert english.text == "Which day would suit you?"
    assert german.text == "Und um wie viel Uhr?"


def test_an_agent_set_to_one_language_keeps_it_for_a_caller_of_the_other():
    reply = talk("de", services=KONTROLLE).say("Hi, I'd like to book a cleaning, please.")

    assert reply.text == "An welchem Tag passt es Ihnen?"


def test_a_german_practices_filler_is_german():
    call = talk("de", services=KONTROLLE)
    call.say("Ich hätte gern eine Zahnreinigung am Donnerstag um 9 Uhr, mein Name ist Hans Müller.")

    assert call.say("Ja").chunks[0] == "Einen Moment, bitte. "
