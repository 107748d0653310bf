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

Everything it remembers lives in `context.state`:
    task       None | "book" | "reschedule" | "cancel" | "availability"
    slots      what the caller gave for the task (dates as language-neutral keys)
    awaiting   what the last question asked for
    question   the last question, repeated when the caller went quiet
    reminders  reminders in a row
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from .base import CallContext, DialogEngine, EndCall, Event, TextChunk, ToolCall, Transfer, Turn
from .understanding import (
    WEEKDAY_NAMES,
    WEEKDAYS,
    Understanding,
    date_phrase,
    free_text_answer,
    match_service,
    name_from_answer,
    spoken_date,
    spoken_time,
    understand,
)

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
        "ask_phone": "What's the best number to reach you?",
        "ask_new_date": "To which day would you like to move it?",
        "ask_availability_date": "For which day should I check?",
        "ask_price_service": "Which service would you like the price for?",
        "ask_change": "No problem. What would you like to change?",
        "confirm_book": "So that's {service} for {name} {date} at {time}. Shall I book that?",
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
        "dayparts": {"morning": "morning", "afternoon": "afternoon", "evening": "evening"},
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
        "ask_phone": "Unter welcher Nummer erreichen wir Sie?",
        "ask_new_date": "Auf welchen Tag möchten Sie den Termin verschieben?",
        "ask_availability_date": "Für welchen Tag soll ich nachsehen?",
        "ask_price_service": "Für welche Leistung möchten Sie den Preis wissen?",
        "ask_change": "Kein Problem. Was möchten Sie ändern?",
        "confirm_book": "Also: {service} für {name} {date} um {time}. Soll ich das so buchen?",
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
        "dayparts": {"morning": "Vormittag", "afternoon": "Nachmittag", "evening": "Abend"},
    },
}

TASK_INTENTS = ("reschedule", "cancel", "book", "availability")
TOOL_OF_TASK = {"book": "collect_appointment_information", "reschedule": "change_appointment_details",
                "cancel": "cancel_appointment", "availability": "check_availability"}
# A part of the day as the appointment handlers read it in a time field.
DAYPART_WORDS = {"en": {"morning": "morning", "afternoon": "afternoon", "evening": "evening"},
                 "de": {"morning": "vormittags", "afternoon": "nachmittags", "evening": "abends"}}


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


class ReceptionistEngine(DialogEngine):
    name = "embedded"

    async def respond(self, turn: Turn, context: CallContext) -> AsyncGenerator[Event, dict | None]:
        lang = context.language
        p = PHRASES[lang]
        st = context.state
        st.setdefault("task", None)
        st.setdefault("slots", {})
        st.setdefault("awaiting", None)
        st.setdefault("reminders", 0)

        if turn.reminder:
            st["reminders"] += 1
            if st["reminders"] > MAX_REMINDERS:
                yield TextChunk(p["goodbye_silent"])
                yield EndCall()
                return
            yield TextChunk(" ".join(filter(None, [p["still_there"], st.get("question")])))
            return
        st["reminders"] = 0

        said = turn.caller_said()
        u = understand(said, context.services)
        awaiting = st["awaiting"]

        # "No thanks" to a confirmation drops the task; the call goes on.
        if awaiting == "confirm" and "done" in u.intents and "goodbye" not in u.intents:
            self._reset(st)
            yield TextChunk(self._ask(st, p["alright"] + " " + p["anything_else"], "anything_else"))
            return

        # Leaving: a goodbye, or "no" to "anything else?".
        if ("goodbye" in u.intents or "done" in u.intents
                or (awaiting == "anything_else" and (u.no or u.intents == {"thanks"}) and not u.has_details()
                    and not (u.intents & {*TASK_INTENTS, "hours", "address", "price", "human"}))):
            self._reset(st)
            yield TextChunk(p["goodbye"])
            yield EndCall()
            return

        # A human, asked for or accepted.
        if "human" in u.intents or (awaiting == "transfer_offer" and u.yes):
            if context.company.phone:
                self._reset(st)
                yield TextChunk(p["transfer"])
                yield Transfer(context.company.phone)
                return
            yield TextChunk(self._ask(st, p["no_transfer"] + " " + p["how_can_i_help"], None))
            return
        if awaiting == "transfer_offer" and u.no:
            self._reset(st)
            yield TextChunk(self._ask(st, p["alright"] + " " + p["anything_else"], "anything_else"))
            return

        # The answer to a confirmation: yes runs the task, a change is confirmed again.
        if awaiting == "confirm" and st["task"]:
            changed = self._apply(st, u, said, context, awaiting)
            if changed:
                yield TextChunk(self._next_step(st, context))
                return
            if u.yes:
                # Something to hear at once: the appointment work takes a moment.
                yield TextChunk(p["one_moment"] + " ")
                result = yield self._tool_call(st, context, turn)
                yield TextChunk(self._after_result(st, context, result))
                return
            if u.no:
                yield TextChunk(self._ask(st, p["ask_change"], "change"))
                return

        # After an availability check: "yes" or a time books.
        if awaiting == "book_offer":
            if u.yes or u.time or "book" in u.intents:
                slots = st["slots"]
                st["task"] = "book"
                st["slots"] = {k: slots[k] for k in ("date", "time", "service") if slots.get(k)}
                self._apply(st, u, said, context, None)
                yield TextChunk(self._next_step(st, context))
                return
            if u.no and not u.intents:
                self._reset(st)
                yield TextChunk(self._ask(st, p["alright"] + " " + p["anything_else"], "anything_else"))
                return

        sentences: list[str] = []
        if "hours" in u.intents:
            sentences.append(opening_hours_text(context.company.opening_hours, lang, u.weekday))
        if "address" in u.intents:
            address = ", ".join(line.strip() for line in context.company.address.splitlines() if line.strip())
            sentences.append(p["address"].format(address=address) if address else p["address_none"])
        if "price" in u.intents or awaiting == "price_service":
            price = self._price(u, said, st, context, awaiting)
            if price is None:
                yield TextChunk(" ".join(sentences + [self._ask(st, p["ask_price_service"], "price_service")]))
                return
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
        self._apply(st, u, said, context, awaiting)

        if st["task"]:
            if st["task"] == "availability" and st["slots"].get("date"):
                yield TextChunk(" ".join(sentences + [p["let_me_check"]]) + " ")
                result = yield self._tool_call(st, context, turn)
                yield TextChunk(self._after_result(st, context, result))
                return
            sentences.append(self._next_step(st, context))
        elif sentences:
            sentences.append(self._ask(st, p["anything_else"], "anything_else"))
        elif "greeting" in u.intents and not u.has_details():
            sentences.append(self._ask(st, p["how_can_i_help"], None))
        elif "thanks" in u.intents:
            sentences.append(p["you_are_welcome"] + " " + self._ask(st, p["anything_else"], "anything_else"))
        elif not said:
            sentences.append(self._ask(st, p["how_can_i_help"], None))
        else:
            sentences.append(self._ask(st, p["not_understood"], None))
        yield TextChunk(" ".join(sentences))

    # --- policy ---------------------------------------------------------------------------------

    @staticmethod
    def _reset(st: dict) -> None:
        st.update(task=None, slots={}, awaiting=None, question=None)

    @staticmethod
    def _ask(st: dict, question: str, awaiting: str | None) -> str:
        st["awaiting"] = awaiting
        st["question"] = question
        return question

    def _apply(self, st: dict, u: Understanding, said: str, context: CallContext, awaiting: str | None) -> bool:
        """Put what the caller said into the task's slots; True when a slot changed."""
        task, slots = st["task"], st["slots"]
        if task is None:
            return False
        before = dict(slots)
        if u.name:
            slots["name"] = u.name
        elif awaiting == "name" and not u.intents:
            name = name_from_answer(said)
            if name:
                slots["name"] = name
        if u.phone == "caller":
            if context.caller_number:
                slots["phone"] = context.caller_number
        elif u.phone:
            slots["phone"] = u.phone
        if task in ("book", "availability"):
            if u.service:
                slots["service"] = u.service
            elif awaiting == "service" and said and not (u.intents or u.dates or u.time or u.name):
                answer = free_text_answer(said)
                if answer and context.services:
                    # With a catalogue, an answer that names none of it is asked again.
                    known = match_service(answer, context.services)
                    answer = known.name if known is not None else ""
                if answer:
                    slots["service"] = answer
        if "hours" in u.intents and not (u.intents & set(TASK_INTENTS)):
            pass  # "are you open on Friday?" names a day to ask about, not the appointment's
        elif task == "reschedule":
            if awaiting == "which" and u.date:
                slots["current_date"] = u.date  # which of the caller's appointments is meant
            elif len(u.dates) >= 2:
                slots["current_date"], slots["new_date"] = u.dates[0], u.dates[-1]
            elif u.date:
                slots["new_date"] = u.date
            if u.time:
                slots["new_time"] = u.time
        else:
            if u.date:
                slots["date"] = u.date
            if u.time:
                slots["time"] = u.time
        if u.daypart and not u.time:
            slots["daypart"] = u.daypart
        return slots != before

    def _next_step(self, st: dict, context: CallContext) -> str:
        """The question for what the task still lacks, or the confirmation once it has it all."""
        p = PHRASES[context.language]
        lang = context.language
        task, slots = st["task"], st["slots"]
        has_phone = bool(slots.get("phone") or context.caller_number)
        if task == "book":
            if not slots.get("service"):
                services = [s.name for s in context.services][:4]
                if services:
                    listed = ", ".join(services[:-1]) + f" {p['and']} " + services[-1] if len(services) > 1 \
                        else services[0]
                    return self._ask(st, p["ask_service_known"].format(services=listed), "service")
                return self._ask(st, p["ask_service"], "service")
            if not slots.get("date"):
                return self._ask(st, p["ask_date"], "date")
            if not slots.get("time"):
                if slots.get("daypart"):
                    return self._ask(st, p["ask_time_daypart"].format(
                        daypart=p["dayparts"][slots["daypart"]]), "time")
                return self._ask(st, p["ask_time"], "time")
            if not slots.get("name"):
                return self._ask(st, p["ask_name"], "name")
            if not has_phone:
                return self._ask(st, p["ask_phone"], "phone")
            return self._ask(st, p["confirm_book"].format(
                service=slots["service"], name=slots["name"], date=spoken_date(slots["date"], lang),
                time=spoken_time(slots["time"], lang)), "confirm")
        if task == "reschedule":
            if not has_phone and not slots.get("name"):
                return self._ask(st, p["ask_name"], "name")
            if not slots.get("new_date"):
                return self._ask(st, p["ask_new_date"], "date")
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

    def _arguments(self, st: dict, context: CallContext) -> dict:
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
            if slots.get("current_date"):
                args["current_date"] = date_phrase(slots["current_date"], lang)
        elif task == "cancel":
            args = {"date": date_phrase(slots["date"], lang)} if slots.get("date") else {}
        else:
            args = {"date": date_phrase(slots["date"], lang)}
            if slots.get("time"):
                args["time"] = slots["time"]
            elif slots.get("daypart"):
                args["time"] = DAYPART_WORDS[lang][slots["daypart"]]
            if slots.get("service"):
                args["service"] = slots["service"]
            return args
        if slots.get("name"):
            args["name"] = slots["name"]
        if phone:
            args["phone"] = phone
        return args

    def _tool_call(self, st: dict, context: CallContext, turn: Turn) -> ToolCall:
        task = st["task"]
        return ToolCall(f"{context.call_id}-{turn.response_id}-{task}", TOOL_OF_TASK[task],
                        self._arguments(st, context))

    def _after_result(self, st: dict, context: CallContext, result) -> str:
        """What to say once the handler answered the task's tool call."""
        p = PHRASES[context.language]
        lang, task, slots = context.language, st["task"], st["slots"]
        message = _message(result)
        if task == "availability":
            if not _succeeded(result) and not message:
                return self._failed(st, context)
            spoken = message or p["checked"].format(date=spoken_date(slots["date"], lang))
            return spoken + " " + self._ask(st, p["offer_booking"], "book_offer")
        if _succeeded(result):
            if not message:
                if task == "book":
                    message = p["booked"].format(service=slots["service"], date=spoken_date(slots["date"], lang),
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
            name = free_text_answer(said) or None
        if not name:
            return None
        service = match_service(name, context.services)
        if service is not None and service.price:
            return p["price"].format(service=service.name, price=service.price)
        return p["price_unknown"].format(service=service.name if service else name)
