"""The embedded receptionist: the default dialog engine, offline and deterministic.

It books, moves and cancels appointments, answers availability, opening hours,
address and price questions, puts the caller through to the practice when asked, and
says goodbye; in English or German as the agent's language says. The language
understanding is `understanding.understand`; the policy below decides what to ask
next, confirms before anything is booked, moved or cancelled, and takes corrections
("no, Wednesday instead" / "nein, lieber Mittwoch"). The appointment work itself is a
`ToolCall` the call session runs through the same handlers as the custom-function
endpoint; its result comes back into the generator. A short "One moment, please." /
"Let me check." goes out before it, so the caller hears something while the database
works (the answer's first chunk never waits for a tool).

Before the read-back of a booking, the time asked for is checked (check_availability), so
a closed, taken or non-existent time is refused with alternatives before the caller says yes.

Its memory lives in `context.state` (kept by the session only for turns that were answered):
    task       None | "book" | "reschedule" | "cancel" | "availability"
    slots      what the caller gave for the task (days as language-neutral keys)
    awaiting   what the last question asked for
    question   the last question, repeated when the caller went quiet
    reminders  reminders in a row
    checked    the (day, time, service) last found free, so it is not checked twice
    booked     the appointment booked in this call: {"appointment_id", "date", "time", "service", "name"}
    seen       the tool_call_ids whose results it has taken in
    language   the caller's language, when a multilingual agent follows the caller
What the tools really did, even in a turn the caller interrupted, is the session's ledger
(`context.effects`): a result the caller never heard is taken in at the next turn, so an
interrupted "yes" that booked Thursday, followed by "no, Friday after all", moves that
booking instead of booking a second one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from appointments.speech import joined, service_in_sentence
from appointments.understanding import (
    WEEKDAY_NAMES,
    WEEKDAYS,
    Understanding,
    UnclearDate,
    UnclearTime,
    bare_answer,
    date_phrase,
    day_range,
    match_service,
    resolve_day,
    spoken_date,
    spoken_time,
    understand,
)

from .base import CallContext, DialogEngine, EndCall, Event, TextChunk, ToolCall, Transfer, Turn

MAX_REMINDERS = 3

PHRASES = {
    "en": {
        "how_can_i_help": "How can I help you?",
        "not_understood": "Sorry, I didn't catch that. Would you like to book, move or cancel an appointment?",
        "still_there": "Are you still there?",
        "goodbye": "Thank you for calling. Goodbye!",
        "goodbye_silent": "I can't hear you, so I'll end the call now. Please call again. Goodbye!",
        "transfer": "Of course, I'll put you through now.",
        "no_transfer": "I'm sorry, there's no one I can put you through to right now. I can help you with "
                       "appointments, though.",
        "anything_else": "Is there anything else I can help you with?",
        "alright": "Alright.",
        "ask_name": "May I have your name, please?",
        "ask_service": "What is the appointment for?",
        "ask_service_known": "What is the appointment for? We offer {services}.",
        "ask_date": "Which day would suit you?",
        "ask_time": "And at what time?",
        "ask_time_daypart": "What time in the {daypart} suits you?",
        "ask_day_in_span": "Which day {span} would suit you?",
        "ask_which_service": "Would you like {choices}?",
        "unknown_service": "We don't offer {said}, I'm afraid. We offer {services}. Which would you like?",
        "unclear_time": "Sorry, which time exactly?",
        "unclear_date": "Sorry, which day exactly?",
        "ask_phone_again": "Sorry, I didn't get that number. Could you say it again, digit by digit?",
        "confirm_move_booked": "I had already booked your appointment {old_date} at {old_time}. Shall I move it to "
                               "{date} at {time}?",
        "transfer_again": "I'm putting you through now.",
        "still_here": "Yes, I'm still here. Is there anything else I can help you with?",
        "ask_phone": "What's the best number to reach you?",
        "ask_new_date": "To which day would you like to move it?",
        "ask_availability_date": "For which day should I check?",
        "ask_price_service": "Which service would you like the price for?",
        "ask_change": "No problem. What would you like to change?",
        "confirm_book": "So that's {service} for {name} {date} at {time}. Shall I book that?",
        "service_article": "{article} {service}",
        "confirm_reschedule": "I'll move your appointment{current} to {date} at {time}. Is that right?",
        "confirm_cancel": "Shall I cancel your appointment{date}?",
        "from_date": " from {date}",
        "booked": "You're all set: {service} {date} at {time}.",
        "rescheduled": "Done, your appointment is now {date} at {time}.",
        "cancelled": "Your appointment is cancelled.",
        "checked": "I've checked {date}.",
        "offer_booking": "Shall I book an appointment for you?",
        "tool_failed": "I'm sorry, I couldn't do that right now. Shall I put you through to the team?",
        "tool_failed_no_phone": "I'm sorry, I couldn't do that right now. Please try again a little later.",
        "pick_other": "Which other day or time would suit you?",
        "pick_offered": "Which of them suits you?",
        "pick_service": "Which of them would you like?",
        "one_moment": "One moment, please.",
        "let_me_check": "Let me check.",
        "ask_booked_name": "Under which name was the appointment booked?",
        "ask_which": "Which day is the appointment you mean?",
        "hours_none": "I'm sorry, I don't have our opening hours at hand.",
        "hours_intro": "We're open {ranges}.",
        "hours_day_closed": "On {day} we're closed.",
        "hours_day_open": "On {day} we're open {ranges}.",
        "hours_range": "from {start} to {end}",
        "hours_days": "{first} to {last}",
        "and": "and",
        "address": "You'll find us at {address}.",
        "address_none": "I'm sorry, I don't have the address at hand.",
        "price": "{service} costs {price}.",
        "price_unknown": "I'm sorry, I don't have a price for {service} here. The team can tell you.",
        "you_are_welcome": "You're welcome!",
        "dayparts": {"morning": "morning", "noon": "lunchtime", "afternoon": "afternoon", "evening": "evening",
                     "night": "night"},
    },
    "de": {
        "how_can_i_help": "Wie kann ich Ihnen helfen?",
        "not_understood": "Entschuldigung, das habe ich nicht verstanden. Möchten Sie einen Termin buchen, "
                          "verschieben oder absagen?",
        "still_there": "Sind Sie noch da?",
        "goodbye": "Vielen Dank für Ihren Anruf. Auf Wiederhören!",
        "goodbye_silent": "Ich kann Sie leider nicht hören und beende jetzt das Gespräch. Rufen Sie gern "
                          "wieder an. Auf Wiederhören!",
        "transfer": "Gern, ich verbinde Sie jetzt.",
        "no_transfer": "Es tut mir leid, ich kann Sie gerade mit niemandem verbinden. Bei Terminen helfe ich "
                       "Ihnen aber gern.",
        "anything_else": "Kann ich sonst noch etwas für Sie tun?",
        "alright": "In Ordnung.",
        "ask_name": "Wie ist Ihr Name, bitte?",
        "ask_service": "Worum geht es bei dem Termin?",
        "ask_service_known": "Worum geht es bei dem Termin? Wir bieten {services} an.",
        "ask_date": "An welchem Tag passt es Ihnen?",
        "ask_time": "Und um wie viel Uhr?",
        "ask_time_daypart": "Um wie viel Uhr am {daypart}?",
        "ask_day_in_span": "An welchem Tag {span} passt es Ihnen?",
        "ask_which_service": "Möchten Sie {choices}?",
        "unknown_service": "{said} bieten wir leider nicht an. Möglich ist {services}. Was davon möchten Sie?",
        "unclear_time": "Entschuldigung, welche Uhrzeit genau?",
        "unclear_date": "Entschuldigung, welcher Tag genau?",
        "ask_phone_again": "Die Nummer habe ich leider nicht richtig verstanden. Können Sie sie bitte noch einmal "
                           "Ziffer für Ziffer sagen?",
        "confirm_move_booked": "Ich hatte Ihren Termin {old_date} um {old_time} schon eingetragen. Soll ich ihn auf "
                               "{date} um {time} verlegen?",
        "transfer_again": "Ich verbinde Sie jetzt.",
        "still_here": "Ja, ich bin noch da. Kann ich sonst noch etwas für Sie tun?",
        "ask_phone": "Unter welcher Nummer erreichen wir Sie?",
        "ask_new_date": "Auf welchen Tag möchten Sie den Termin verschieben?",
        "ask_availability_date": "Für welchen Tag soll ich nachsehen?",
        "ask_price_service": "Für welche Leistung möchten Sie den Preis wissen?",
        "ask_change": "Kein Problem. Was möchten Sie ändern?",
        "confirm_book": "Also: {service} für {name} {date} um {time}. Soll ich das so buchen?",
        "service_article": "{service}",
        "confirm_reschedule": "Ich verschiebe Ihren Termin{current} auf {date} um {time}. Passt das?",
        "confirm_cancel": "Soll ich Ihren Termin{date} absagen?",
        "from_date": " von {date}",
        "booked": "Alles klar: {service} {date} um {time} ist eingetragen.",
        "rescheduled": "Erledigt, Ihr Termin ist jetzt {date} um {time}.",
        "cancelled": "Ihr Termin ist abgesagt.",
        "checked": "Ich habe {date} nachgesehen.",
        "offer_booking": "Soll ich Ihnen einen Termin eintragen?",
        "tool_failed": "Das hat leider gerade nicht geklappt. Soll ich Sie mit dem Team verbinden?",
        "tool_failed_no_phone": "Das hat leider gerade nicht geklappt. Bitte versuchen Sie es etwas später noch "
                                "einmal.",
        "pick_other": "Welcher andere Tag oder welche andere Uhrzeit würde Ihnen passen?",
        "pick_offered": "Was davon passt Ihnen?",
        "pick_service": "Was davon möchten Sie?",
        "one_moment": "Einen Moment, bitte.",
        "let_me_check": "Ich schaue kurz nach.",
        "ask_booked_name": "Auf welchen Namen wurde der Termin gebucht?",
        "ask_which": "An welchem Tag ist der Termin, den Sie meinen?",
        "hours_none": "Unsere Öffnungszeiten habe ich leider gerade nicht zur Hand.",
        "hours_intro": "Wir haben {ranges} geöffnet.",
        "hours_day_closed": "Am {day} haben wir geschlossen.",
        "hours_day_open": "Am {day} haben wir {ranges} geöffnet.",
        "hours_range": "von {start} bis {end}",
        "hours_days": "{first} bis {last}",
        "and": "und",
        "address": "Unsere Adresse ist {address}.",
        "address_none": "Die Adresse habe ich leider gerade nicht zur Hand.",
        "price": "{service} kostet {price}.",
        "price_unknown": "Einen Preis für {service} habe ich leider nicht hier. Das Team kann Ihnen das sagen.",
        "you_are_welcome": "Gern geschehen!",
        "dayparts": {"morning": "Vormittag", "noon": "Mittag", "afternoon": "Nachmittag", "evening": "Abend",
                     "night": "Nacht"},
    },
}

TASK_INTENTS = ("reschedule", "cancel", "book", "availability")
TOOL_OF_TASK = {"book": "collect_appointment_information", "reschedule": "change_appointment_details",
                "cancel": "cancel_appointment", "availability": "check_availability"}
# A part of the day as the appointment handlers read it in a time field.
DAYPART_WORDS = {"en": {"morning": "morning", "noon": "noon", "afternoon": "afternoon", "evening": "evening",
                        "night": "at night"},
                 "de": {"morning": "vormittags", "noon": "mittags", "afternoon": "nachmittags", "evening": "abends",
                        "night": "nachts"}}


def _hhmm_spoken(value: str, language: str) -> str:
    return spoken_time(value, language) if language == "en" else spoken_time(value, language).replace(" Uhr", "")


def opening_hours_text(opening_hours: dict, language: str, day: str | None = None) -> str:
    """Opening hours as one short sentence, e.g. "We're open Monday to Thursday from 8 am to 6 pm"."""
    p = PHRASES[language]
    if not opening_hours:
        return p["hours_none"]

    def ranges_of(pairs) -> str:
        parts = []
        for start, end in pairs:
            if language == "de":
                parts.append(p["hours_range"].format(start=_hhmm_spoken(start, language),
                                                     end=spoken_time(end, language)))
            else:
                parts.append(p["hours_range"].format(start=spoken_time(start, language),
                                                     end=spoken_time(end, language)))
        return f" {p['and']} ".join(parts)

    names = WEEKDAY_NAMES[language]
    if day is not None:
        pairs = opening_hours.get(day) or []
        if not pairs:
            return p["hours_day_closed"].format(day=names[day])
        return p["hours_day_open"].format(day=names[day], ranges=ranges_of(pairs))
    groups: list[list] = []   # [first_day, last_day, pairs]
    for weekday in WEEKDAYS:
        pairs = opening_hours.get(weekday) or []
        if not pairs:
            continue
        previous = groups[-1] if groups else None
        if (previous and previous[2] == pairs
                and WEEKDAYS.index(previous[1]) == WEEKDAYS.index(weekday) - 1):
            previous[1] = weekday
        else:
            groups.append([weekday, weekday, pairs])
    if not groups:
        return p["hours_none"]
    spans = []
    for first, last, pairs in groups:
        days = names[first] if first == last else p["hours_days"].format(first=names[first], last=names[last])
        spans.append(f"{days} {ranges_of(pairs)}")
    joined = spans[0] if len(spans) == 1 else ", ".join(spans[:-1]) + f" {p['and']} " + spans[-1]
    return p["hours_intro"].format(ranges=joined)


def _succeeded(result) -> bool:
    if not isinstance(result, dict):
        return False
    return not (result.get("error") or result.get("success") is False or result.get("ok") is False)


def _message(result) -> str:
    """What a handler's result says to speak, if it says anything."""
    if isinstance(result, dict):
        for key in ("message", "speech", "result"):
            if isinstance(result.get(key), str) and result[key].strip():
                return result[key].strip()
    return ""


@dataclass
class Plan:
    """What a turn says and does: words, then optionally one tool whose result `after` turns into
    the rest of the answer, then a transfer or the end of the call."""
    text: str = ""
    tool: ToolCall | None = None
    after: Callable[[dict], str] | None = None
    transfer: str | None = None
    end_call: bool = False


class ReceptionistEngine(DialogEngine):
    name = "embedded"

    async def respond(self, turn: Turn, context: CallContext) -> AsyncGenerator[Event, dict | None]:
        plan = self._plan(turn, context)
        if plan.tool is not None:
            # Something to hear at once: the appointment work takes a moment.
            yield TextChunk(plan.text + " ")
            result = yield plan.tool
            yield TextChunk(plan.after(result if isinstance(result, dict) else {}))
        elif plan.text:
            yield TextChunk(plan.text)
        if plan.transfer:
            yield Transfer(plan.transfer)
        if plan.end_call:
            yield EndCall()

    def _plan(self, turn: Turn, context: CallContext) -> Plan:
        st = context.state
        for key, default in (("task", None), ("slots", {}), ("awaiting", None), ("reminders", 0), ("seen", [])):
            st.setdefault(key, default)
        unheard = self._catch_up(st, context, turn)

        if turn.reminder:
            p = PHRASES[context.language]
            st["reminders"] += 1
            if st["reminders"] > MAX_REMINDERS:
                return Plan(p["goodbye_silent"], end_call=True)
            return Plan(" ".join(filter(None, [unheard, p["still_there"], st.get("question")])))
        st["reminders"] = 0

        said = turn.caller_said()
        u = self._understand(said, st, context)
        lang = context.language
        p = PHRASES[lang]
        awaiting = st["awaiting"]

        # An answer that ended with a transfer did not happen (the caller spoke over it): put the
        # caller through unless they have moved on to something else.
        if turn.interrupted_transfer and not self._moves_on(u):
            self._reset(st)
            return Plan(p["transfer_again"], transfer=turn.interrupted_transfer)

        # A booking the caller did not hear about, or just heard, then a correction: move that booking.
        if st.get("booked") and (unheard or awaiting == "anything_else") and self._corrects(u) and not (
                u.intents & {"cancel", "availability", "hours", "address", "price", "human", "goodbye", "done"}):
            return Plan(self._move_booked(st, u, context))
        prefix = [unheard] if unheard else []

        # "No thanks" to a confirmation drops the task; the call goes on.
        if awaiting == "confirm" and "done" in u.intents and "goodbye" not in u.intents:
            self._reset(st)
            return Plan(self._ask(st, p["alright"] + " " + p["anything_else"], "anything_else"))

        # Leaving: a goodbye, or "no" to "anything else?".
        if ("goodbye" in u.intents or "done" in u.intents
                or (awaiting == "anything_else" and (u.no or u.intents == {"thanks"}) and not u.has_details()
                    and not (u.intents & {*TASK_INTENTS, "hours", "address", "price", "human"}))):
            self._reset(st)
            return Plan(" ".join(prefix + [p["goodbye"]]), end_call=True)

        # A human, asked for or accepted.
        if "human" in u.intents or (awaiting == "transfer_offer" and u.yes):
            if context.company.phone:
                self._reset(st)
                return Plan(" ".join(prefix + [p["transfer"]]), transfer=context.company.phone)
            return Plan(" ".join(prefix + [self._ask(st, p["no_transfer"] + " " + p["how_can_i_help"], None)]))
        if awaiting == "transfer_offer" and u.no:
            self._reset(st)
            return Plan(self._ask(st, p["alright"] + " " + p["anything_else"], "anything_else"))

        # The answer to a confirmation: yes runs the task, a change is confirmed again.
        if awaiting == "confirm" and st["task"]:
            if self._apply(st, u, context, awaiting):
                return self._proceed(st, context, turn, prefix)
            if u.yes:
                tool = self._tool_call(st, context, turn)
                return Plan(" ".join(prefix + [p["one_moment"]]), tool=tool,
                            after=lambda result: self._after_result(st, context, result, tool.tool_call_id))
            if u.no:
                return Plan(self._ask(st, p["ask_change"], "change"))

        # After an availability check: "yes" or a time books.
        if awaiting == "book_offer":
            if u.yes or u.clock or "book" in u.intents:
                slots = st["slots"]
                st["task"] = "book"
                st["slots"] = {k: slots[k] for k in ("date", "time", "service") if slots.get(k)}
                self._apply(st, u, context, None)
                return self._proceed(st, context, turn, prefix)
            if u.no and not u.intents:
                self._reset(st)
                return Plan(self._ask(st, p["alright"] + " " + p["anything_else"], "anything_else"))

        sentences: list[str] = list(prefix)
        if "hours" in u.intents:
            sentences.append(opening_hours_text(context.company.opening_hours, lang, u.weekday))
        if "address" in u.intents:
            address = ", ".join(line.strip() for line in context.company.address.splitlines() if line.strip())
            sentences.append(p["address"].format(address=address) if address else p["address_none"])
        if "price" in u.intents or awaiting == "price_service":
            price = self._price(u, said, st, context, awaiting)
            if price is None:
                return Plan(" ".join(sentences + [self._ask(st, p["ask_price_service"], "price_service")]))
            sentences.append(price)
            if awaiting == "price_service":
                awaiting = st["awaiting"] = None

        new_task = next((t for t in TASK_INTENTS if t in u.intents), None)
        if new_task == "availability" and st["task"] in ("book", "reschedule"):
            new_task = None  # "do you have anything on Thursday?" while booking gives the day
        if new_task and new_task != st["task"]:
            keep = {k: v for k, v in st["slots"].items() if k in ("name", "phone")}
            st["task"], st["slots"] = new_task, keep
            awaiting = None
        self._apply(st, u, context, awaiting)

        if st["task"]:
            return self._proceed(st, context, turn, sentences)
        if len(sentences) > len(prefix) or (prefix and (u.yes or not u.has_details())):
            sentences.append(self._ask(st, p["anything_else"], "anything_else"))
        elif turn.interrupted_end_call and not u.has_details():
            sentences.append(self._ask(st, p["still_here"], "anything_else"))
        elif "greeting" in u.intents and not u.has_details():
            sentences.append(self._ask(st, p["how_can_i_help"], None))
        elif "thanks" in u.intents:
            sentences.append(p["you_are_welcome"] + " " + self._ask(st, p["anything_else"], "anything_else"))
        elif not said:
            sentences.append(self._ask(st, p["how_can_i_help"], None))
        else:
            sentences.append(self._ask(st, p["not_understood"], None))
        return Plan(" ".join(sentences))

    def _proceed(self, st: dict, context: CallContext, turn: Turn, sentences: list[str]) -> Plan:
        """What comes next for the task: the question for what is missing, a check of the time
        asked for (before the read-back), or the availability the caller asked about."""
        p = PHRASES[context.language]
        question = self._clarify(st, context)
        if question is None and (st["task"] == "availability" and st["slots"].get("date") or self._needs_check(st)):
            tool = self._check_call(st, context, turn)
            if st["task"] == "availability":
                after = lambda result: self._after_result(st, context, result, tool.tool_call_id)  # noqa: E731
            else:
                after = lambda result: self._after_check(st, context, result, tool.tool_call_id)  # noqa: E731
            return Plan(" ".join(sentences + [p["let_me_check"]]), tool=tool, after=after)
        return Plan(" ".join(sentences + [question or self._next_step(st, context)]))

    # --- understanding, in the call's language ---------------------------------------------------------

    EXPECTING = {"date": "date", "which": "date", "time": "time", "name": "name", "phone": "phone",
                 "confirm": "name"}

    def _understand(self, said: str, st: dict, context: CallContext) -> Understanding:
        company = context.company
        zone = ZoneInfo(company.timezone)
        u = understand(said, context.services, region=company.region or None, zone=zone,
                       today=datetime.now(zone).date(), language=context.language,
                       expecting=self.EXPECTING.get(st.get("awaiting")))
        if context.agent.language == "multi" and u.language and u.language != context.language:
            st["language"] = u.language  # a multilingual agent answers in the caller's language
        return u

    @staticmethod
    def _moves_on(u: Understanding) -> bool:
        """Does the caller ask for something new (rather than "yes", "thanks" or "hello?")?"""
        return bool(u.intents & {*TASK_INTENTS, "hours", "address", "price", "goodbye", "done"} or u.has_details())

    @staticmethod
    def _corrects(u: Understanding) -> bool:
        return bool((u.no or u.shift_minutes) and (u.dates or u.clock or u.shift_minutes)) or bool(
            (u.dates or u.clock) and not u.yes and not (u.intents & set(TASK_INTENTS) - {"reschedule"}))

    # --- the ledger: what the tools did in turns the caller interrupted ----------------------------------

    def _catch_up(self, st: dict, context: CallContext, turn: Turn) -> str:
        """Take in tool results of earlier turns that were superseded (the caller never heard
        them); return what they would have said. A request answered again skips its own."""
        unheard = []
        for effect in context.effects:
            if effect["tool_call_id"] in st["seen"] or effect.get("response_id") == turn.response_id:
                continue
            st["seen"].append(effect["tool_call_id"])
            result = effect.get("result")
            if effect["name"] == "check_availability" or not _succeeded(result):
                continue
            if effect["name"] == "collect_appointment_information":
                args = effect.get("arguments") or {}
                st["booked"] = {"appointment_id": result.get("appointment_id"), "date": args.get("date"),
                                "time": args.get("time"), "service": args.get("service") or result.get("service"),
                                "name": args.get("name")}
            elif effect["name"] == "change_appointment_details" and st.get("booked"):
                args = effect.get("arguments") or {}
                st["booked"].update(appointment_id=result.get("appointment_id"), date=args.get("new_date"),
                                    time=args.get("new_time"))
            elif effect["name"] == "cancel_appointment":
                st.pop("booked", None)
            self._reset(st)
            st["awaiting"] = "anything_else"
            unheard.append(_message(result))
        return " ".join(m for m in unheard if m)

    def _move_booked(self, st: dict, u: Understanding, context: CallContext) -> str:
        """The caller corrects a booking made in this call: offer to move it (not to book again)."""
        p = PHRASES[context.language]
        lang = context.language
        booked = st["booked"]
        old_date = self._key_of(booked.get("date"), context) or booked.get("date")
        new_date = u.date or old_date
        new_time = self._time_of(u, new_date, context) or booked.get("time")
        if u.shift_minutes and booked.get("time"):
            new_time = _shifted(booked["time"], u.shift_minutes)
        st["task"] = "reschedule"
        st["slots"] = {"appointment_id": booked.get("appointment_id"), "current_date": old_date,
                       "new_date": new_date, "new_time": new_time}
        return self._ask(st, p["confirm_move_booked"].format(
            old_date=spoken_date(old_date, lang) if old_date else "",
            old_time=spoken_time(booked["time"], lang) if booked.get("time") else "",
            date=spoken_date(new_date, lang, preposition=False) if new_date else "",
            time=spoken_time(new_time, lang) if new_time else ""), "confirm")

    def _key_of(self, phrase: str | None, context: CallContext) -> str | None:
        """A day phrase as a tool took it ("Mittwoch") back to its key."""
        if not phrase:
            return None
        found = understand(phrase, language=context.language)
        return found.date

    # --- policy ---------------------------------------------------------------------------------

    @staticmethod
    def _reset(st: dict) -> None:
        st.update(task=None, slots={}, awaiting=None, question=None, checked=None)

    @staticmethod
    def _ask(st: dict, question: str, awaiting: str | None) -> str:
        st["awaiting"] = awaiting
        st["question"] = question
        return question

    def _time_of(self, u: Understanding, date_key: str | None, context: CallContext) -> str | None:
        """The clock time said, resolved by the company's opening hours on that day when the caller
        left am/pm open (3 is 15:00 at a practice open 8 to 18)."""
        if u.clock is None:
            return None
        ranges = []
        day = self._day(date_key, context)
        if day is not None:
            ranges = [(time.fromisoformat(a), time.fromisoformat(b))
                      for a, b in (context.company.opening_hours or {}).get(WEEKDAYS[day.weekday()], [])]
        try:
            return u.clock.resolve(period=u.period, open_ranges=ranges).strftime("%H:%M")
        except UnclearTime:
            return None

    @staticmethod
    def _day(date_key: str | None, context: CallContext) -> date | None:
        if not date_key:
            return None
        today = datetime.now(ZoneInfo(context.company.timezone)).date()
        try:
            return resolve_day(date_key, today)
        except UnclearDate:
            return None

    def _apply(self, st: dict, u: Understanding, context: CallContext, awaiting: str | None) -> bool:
        """Put what the caller said into the task's slots; True when a slot changed."""
        task, slots = st["task"], st["slots"]
        if task is None:
            return False
        before = dict(slots)
        slots.pop("unclear", None)
        if u.name:
            slots["name"] = u.name
        if u.phone == "caller":
            if context.caller_number:
                slots["phone"] = context.caller_number
        elif u.phone:
            slots["phone"] = u.phone
        elif u.phone_said:
            slots["unclear"] = "phone"
        if task in ("book", "availability"):
            if u.service_known:
                slots["service"] = u.service
            elif u.service_choices:
                slots["service_choices"] = u.service_choices
            elif u.service and not context.services:
                slots["service"] = u.service
            elif u.service and context.services:
                slots["unknown_service"] = u.service  # said, but not offered: told so, and asked again
            elif awaiting == "service" and not context.services and bare_answer(u.text) and not u.has_details():
                slots["service"] = bare_answer(u.text)
        date_unclear = any("date" in item or "weekday" in item for item in u.unclear)
        time_unclear = bool(u.unclear) and not date_unclear
        if "hours" in u.intents and not (u.intents & set(TASK_INTENTS)):
            pass  # "are you open on Friday?" names a day to ask about, not the appointment's
        elif date_unclear:
            slots["unclear"] = "date"
        elif task == "reschedule":
            if awaiting == "which" and u.date:
                slots["current_date"] = u.date  # which of the caller's appointments is meant
            elif len(u.dates) >= 2:
                slots["current_date"], slots["new_date"] = u.dates[0], u.dates[-1]
            elif u.date:
                slots["new_date"] = self._in_span(slots.get("new_date"), u.date)
        elif u.date:
            slots["date"] = self._in_span(slots.get("date"), u.date)
            slots.pop("daypart", None)
        time_key = "new_time" if task == "reschedule" else "time"
        date_key = slots.get("new_date" if task == "reschedule" else "date")
        if time_unclear:
            slots["unclear"] = "time"
        elif u.clock is not None and len({(c.hour, c.minute) for c in [u.clock]}) == 1:
            resolved = self._time_of(u, date_key, context)
            if resolved:
                slots[time_key] = resolved
        elif u.shift_minutes and slots.get(time_key):
            slots[time_key] = _shifted(slots[time_key], u.shift_minutes)
        if u.daypart and u.clock is None:
            slots["daypart"] = u.daypart
            slots.pop(time_key, None)
        return slots != before

    @staticmethod
    def _in_span(current: str | None, said: str) -> str:
        """A weekday said after "next week": that weekday of next week."""
        if current and current.startswith("week:") and current.count(":") == 1 and said in WEEKDAYS:
            return f"{current}:{said}"
        return said

    def _clarify(self, st: dict, context: CallContext) -> str | None:
        """A question when something said could not be read (never a guess)."""
        p = PHRASES[context.language]
        slots = st["slots"]
        unclear = slots.pop("unclear", None)
        if unclear == "date":
            return self._ask(st, p["unclear_date"], "date")
        if unclear == "time":
            return self._ask(st, p["unclear_time"], "time")
        if unclear == "phone":
            return self._ask(st, p["ask_phone_again"], "phone")
        unknown = slots.pop("unknown_service", None)
        if unknown and not slots.get("service") and context.services:
            offered = joined([service_in_sentence(s.name, context.language) for s in context.services],
                             context.language)
            return self._ask(st, p["unknown_service"].format(said=unknown, services=offered), "service")
        choices = slots.pop("service_choices", None)
        if choices and not slots.get("service"):
            listed = joined([service_in_sentence(c, context.language) for c in choices], context.language)
            return self._ask(st, p["ask_which_service"].format(choices=listed), "service")
        return None

    @staticmethod
    def _needs_check(st: dict) -> bool:
        """A booking's service, day and time (or part of the day, or a week) are known and not checked yet."""
        if st["task"] != "book":
            return False
        slots = st["slots"]
        day = slots.get("date")
        if not day or not slots.get("service") or (
                not slots.get("time") and not slots.get("daypart") and not _is_span(day)):
            return False
        return st.get("checked") != _check_key(slots)

    @staticmethod
    def _availability_args(slots: dict, language: str) -> dict:
        """check_availability's arguments: the day, the time or part of the day, the service."""
        args = {"date": date_phrase(slots["date"], language)}
        if slots.get("time"):
            args["time"] = slots["time"]
        elif slots.get("daypart"):
            args["time"] = DAYPART_WORDS[language][slots["daypart"]]
        if slots.get("service"):
            args["service"] = slots["service"]
        return args

    def _check_call(self, st: dict, context: CallContext, turn: Turn) -> ToolCall:
        return ToolCall(f"{context.call_id}-{turn.response_id}-check_availability", "check_availability",
                        self._availability_args(st["slots"], context.language))

    def _after_check(self, st: dict, context: CallContext, result: dict, tool_call_id: str) -> str:
        """After checking the time asked for: on to the next question, or why not and what is free."""
        p = PHRASES[context.language]
        st["seen"].append(tool_call_id)
        slots = st["slots"]
        if not isinstance(result, dict) or (result.get("ok") is False and not _message(result)):
            return self._failed(st, context)
        if slots.get("time") and result.get("available") is not False and not result.get("error"):
            st["checked"] = _check_key(slots)
            message = _message(result)  # "Tomorrow at 10 am is available."
            return (message + " " if message else "") + self._next_step(st, context)
        message = _message(result)
        if slots.get("time"):
            slots.pop("time", None)  # taken, closed or not a real time: another time is needed
            return (message + " " if message else "") + self._ask(st, p["pick_other"], "change")
        # A part of the day or a week: the free times are the answer; the caller picks one.
        st["checked"] = _check_key(slots)
        if result.get("available") is False or result.get("error"):
            slots.pop("daypart", None)
            return (message + " " if message else "") + self._ask(st, p["pick_other"], "change")
        return (message + " " if message else "") + self._ask(st, p["pick_offered"], "time")

    def _next_step(self, st: dict, context: CallContext) -> str:
        """The question for what the task still lacks, or the confirmation once it has it all."""
        p = PHRASES[context.language]
        lang = context.language
        task, slots = st["task"], st["slots"]
        has_phone = bool(slots.get("phone") or context.caller_number)
        if task == "book":
            if not slots.get("service") and context.services:
                services = [service_in_sentence(s.name, lang) for s in context.services][:4]
                return self._ask(st, p["ask_service_known"].format(services=joined(services, lang, both=True)),
                                 "service")
            if not slots.get("service"):
                return self._ask(st, p["ask_service"], "service")
            if not slots.get("date"):
                return self._ask(st, p["ask_date"], "date")
            if _is_span(slots["date"]):
                return self._ask(st, p["ask_day_in_span"].format(span=date_phrase(slots["date"], lang)), "date")
            if not slots.get("time"):
                if slots.get("daypart"):
                    return self._ask(st, p["ask_time_daypart"].format(
                        daypart=p["dayparts"][slots["daypart"]]), "time")
                return self._ask(st, p["ask_time"], "time")
            if not slots.get("name"):
                return self._ask(st, p["ask_name"], "name")
            if not has_phone:
                return self._ask(st, p["ask_phone"], "phone")
            service = p["service_article"].format(service=service_in_sentence(slots["service"], lang),
                                                  article=_article(service_in_sentence(slots["service"], lang)))
            return self._ask(st, p["confirm_book"].format(
                service=service, name=slots["name"], date=spoken_date(slots["date"], lang),
                time=spoken_time(slots["time"], lang)), "confirm")
        if task == "reschedule":
            if not has_phone and not slots.get("name") and not slots.get("appointment_id"):
                return self._ask(st, p["ask_name"], "name")
            if not slots.get("new_date"):
                return self._ask(st, p["ask_new_date"], "date")
            if _is_span(slots["new_date"]):
                return self._ask(st, p["ask_day_in_span"].format(span=date_phrase(slots["new_date"], lang)), "date")
            if not slots.get("new_time"):
                return self._ask(st, p["ask_time"], "time")
            current = (p["from_date"].format(date=spoken_date(slots["current_date"], lang, preposition=False))
                       if slots.get("current_date") else "")
            return self._ask(st, p["confirm_reschedule"].format(
                current=current, date=spoken_date(slots["new_date"], lang, preposition=False),
                time=spoken_time(slots["new_time"], lang)), "confirm")
        if task == "cancel":
            if not has_phone and not slots.get("name"):
                return self._ask(st, p["ask_name"], "name")
            date = " " + spoken_date(slots["date"], lang) if slots.get("date") else ""
            return self._ask(st, p["confirm_cancel"].format(date=date), "confirm")
        # availability without a day yet
        return self._ask(st, p["ask_availability_date"], "date")

    @staticmethod
    def _arguments(st: dict, context: CallContext) -> dict:
        lang, task, slots = context.language, st["task"], st["slots"]
        phone = slots.get("phone") if slots.get("phone") and slots.get("phone") != context.caller_number else None
        if task == "book":
            args = {"name": slots["name"], "date": date_phrase(slots["date"], lang), "time": slots["time"],
                    "service": slots["service"]}
            if phone:
                args["phone"] = phone
            return args
        if task == "reschedule":
            args = {"new_date": date_phrase(slots["new_date"], lang), "new_time": slots["new_time"]}
            if slots.get("appointment_id"):
                args["appointment_id"] = slots["appointment_id"]
            elif slots.get("current_date"):
                args["current_date"] = date_phrase(slots["current_date"], lang)
        elif task == "cancel":
            args = {"date": date_phrase(slots["date"], lang)} if slots.get("date") else {}
        else:
            return ReceptionistEngine._availability_args(slots, lang)
        if slots.get("name") and not slots.get("appointment_id"):
            args["name"] = slots["name"]
        if phone:
            args["phone"] = phone
        return args

    @staticmethod
    def _tool_call(st: dict, context: CallContext, turn: Turn) -> ToolCall:
        name = TOOL_OF_TASK[st["task"]]
        return ToolCall(f"{context.call_id}-{turn.response_id}-{name}", name, ReceptionistEngine._arguments(st, context))

    def _after_result(self, st: dict, context: CallContext, result: dict, tool_call_id: str) -> str:
        """What to say once the handler answered the task's tool call."""
        p = PHRASES[context.language]
        lang, task, slots = context.language, st["task"], st["slots"]
        st["seen"].append(tool_call_id)
        message = _message(result)
        if task == "availability":
            if not _succeeded(result) and not message:
                return self._failed(st, context)
            spoken = message or p["checked"].format(date=spoken_date(slots["date"], lang))
            return spoken + " " + self._ask(st, p["offer_booking"], "book_offer")
        if _succeeded(result):
            if task == "book":
                st["booked"] = {"appointment_id": result.get("appointment_id") if isinstance(result, dict) else None,
                                "date": date_phrase(slots["date"], lang), "time": slots["time"],
                                "service": slots["service"], "name": slots["name"]}
            elif task == "reschedule" and st.get("booked") and (
                    slots.get("appointment_id") == st["booked"].get("appointment_id")):
                st["booked"].update(appointment_id=result.get("appointment_id") if isinstance(result, dict)
                                    else None, date=date_phrase(slots["new_date"], lang), time=slots["new_time"])
            elif task == "cancel":
                st.pop("booked", None)
            if not message:
                if task == "book":
                    message = p["booked"].format(service=service_in_sentence(slots["service"], lang),
                                                 date=spoken_date(slots["date"], lang),
                                                 time=spoken_time(slots["time"], lang))
                elif task == "reschedule":
                    message = p["rescheduled"].format(date=spoken_date(slots["new_date"], lang),
                                                      time=spoken_time(slots["new_time"], lang))
                else:
                    message = p["cancelled"]
            self._reset(st)
            return message + " " + self._ask(st, p["anything_else"], "anything_else")
        if message:
            # Refused with a reason: the follow-up question depends on what was wrong.
            error = result.get("error") if isinstance(result, dict) else None
            if error in ("unknown_service", "service_needed"):
                slots.pop("service", None)  # the message names the services offered
                return message + " " + self._ask(st, p["pick_service"], "service")
            if error == "not_found":
                if not slots.get("name"):
                    return message + " " + self._ask(st, p["ask_booked_name"], "name")
                self._reset(st)
                return message + " " + self._ask(st, p["anything_else"], "anything_else")
            if error == "ambiguous":
                return message + " " + self._ask(st, p["ask_which"], "which")
            # e.g. the slot is taken (the message offers alternatives): ask for another time.
            return message + " " + self._ask(st, p["pick_other"], "change")
        return self._failed(st, context)

    def _failed(self, st: dict, context: CallContext) -> str:
        p = PHRASES[context.language]
        if context.company.phone:
            return self._ask(st, p["tool_failed"], "transfer_offer")
        return self._ask(st, p["tool_failed_no_phone"], None)

    def _price(self, u: Understanding, said: str, st: dict, context: CallContext, awaiting: str | None) -> str | None:
        p = PHRASES[context.language]
        name = u.service or st["slots"].get("service")
        if not name and awaiting == "price_service":
            name = bare_answer(said) or None
        if not name:
            return None
        service = next((s for s in context.services if s.name == match_service(
            name, [s.name for s in context.services])), None)
        if service is not None and service.price:
            return p["price"].format(service=service.name, price=service.price)
        return p["price_unknown"].format(service=service.name if service else name)


def _is_span(date_key: str | None) -> bool:
    return bool(date_key) and day_range(date_key, date(2000, 1, 3)) is not None


def _check_key(slots: dict) -> list:
    return [slots.get("date"), slots.get("time") or slots.get("daypart"), slots.get("service")]


def _shifted(hhmm: str, minutes: int) -> str:
    moved = datetime.combine(date(2000, 1, 3), time.fromisoformat(hhmm)) + timedelta(minutes=minutes)
    return moved.strftime("%H:%M")


def _article(service: str) -> str:
    return "an" if service[:1].lower() in "aeiou" else "a"

