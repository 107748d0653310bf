"""The custom functions the receptionist calls: one entry point for the HTTP endpoint and the dialog engine.

`run_custom_function` validates the arguments against the function's JSON Schema,
runs the handler and returns a short JSON-able result the agent can speak:
`{"ok": bool, "message": "...", ...data}`. Retell retries a function call that timed
out or failed: a request repeating the call's latest invocation within the retry window
gets that invocation's stored result and never books twice, even when the two race. A
new request, after the call's state changed, runs.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import jsonschema
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.actor import Actor
from audit.services import activity_log
from tenants.models import Company

from . import selectors, services, speech
from .function_specs import FUNCTION_SPECS
from .localtime import NonexistentLocalTime, clock_reaches
from .models import Appointment, FunctionInvocation, Service
from .understanding import UnclearDate, UnclearTime, When, parse_when
from .selectors import phone_e164


class UnknownFunction(LookupError):
    """No custom function of that name."""


def function_schema(company: Company, name: str) -> dict:
    """The JSON Schema of a function's arguments (the one place a company's own schema will be consulted)."""
    spec = FUNCTION_SPECS.get(name)
    if spec is None:
        raise UnknownFunction(name)
    return spec["parameters"]


def canonical_args(args: dict) -> str:
    return json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Context:
    company: Company
    call_id: str
    caller_number: str
    now: datetime
    actor: Actor
    spoken: str | None = None       # the call's language when it is not the company's
    is_test: bool = False           # the call is a testing tool's: what it books is marked as a test

    @property
    def language(self) -> str:
        return self.spoken if self.spoken in ("de", "en") else speech.language_of(self.company)

    @property
    def zone(self):
        return self.company.zone

    def say(self, key: str, **values) -> str:
        return speech.say(key, self.language, **values)


class Answer(Exception):
    """A handler's early answer: a speakable result that is not a success."""

    def __init__(self, error: str, message: str, **data) -> None:
        super().__init__(error)
        self.result = {"ok": False, "error": error, "message": message, **data}


# --- shared steps --------------------------------------------------------------------------
def _phone(ctx: Context, said: str | None) -> str:
    """The number the caller gave (normalised to E.164), else the caller's own number, else ''."""
    if said and said.strip():
        try:
            return phone_e164(company=ctx.company, number=said)
        except ValidationError:
            raise Answer("invalid_phone", ctx.say("invalid_phone")) from None
    if ctx.caller_number:
        try:
            return phone_e164(company=ctx.company, number=ctx.caller_number)
        except ValidationError:
            return ""  # "anonymous" or a SIP URI: no number to keep
    return ""


def _service(ctx: Context, said: str | None, *, required: bool) -> Service | None:
    offered = selectors.active_services(company=ctx.company)
    names = speech.joined([s.name for s in offered], ctx.language)
    if said and said.strip() and offered:
        found = selectors.services_named(company=ctx.company, said=said)
        if len(found) > 1:
            choices = speech.joined([s.name for s in found], ctx.language)
            raise Answer("service_needed", ctx.say("service_needed", services=choices),
                         services=[s.name for s in found])
        if not found:
            raise Answer("unknown_service", ctx.say("unknown_service", said=said.strip(), services=names),
                         services=[s.name for s in offered])
        return found[0]
    if len(offered) == 1:
        return offered[0]
    if offered and required:
        raise Answer("service_needed", ctx.say("service_needed", services=names),
                     services=[s.name for s in offered])
    return None


def _when(ctx: Context, date_text: str | None, time_text: str | None = "") -> When:
    try:
        return parse_when(date_text or "", time_text or "", language=ctx.language, zone=ctx.zone, now=ctx.now,
                          opening_hours=ctx.company.opening_hours)
    except UnclearDate:
        raise Answer("unclear_date", ctx.say("unclear_date")) from None
    except UnclearTime:
        raise Answer("unclear_time", ctx.say("unclear_time")) from None


def _iso(moments: list[datetime], ctx: Context) -> list[str]:
    return [m.astimezone(ctx.zone).isoformat() for m in moments]


def _times(ctx: Context, starts: list[datetime]) -> str:
    return speech.joined([speech.time_words(s.astimezone(ctx.zone), ctx.language) for s in starts], ctx.language)


def _sample(starts: list[datetime], count: int = 4) -> list[datetime]:
    """A few starts spread over the list, so a whole free day is not read out slot by slot."""
    if len(starts) <= count:
        return starts
    step = len(starts) / count
    return [starts[int(i * step)] for i in range(count)]


def _nonexistent_answer(ctx: Context, gap: NonexistentLocalTime, service: Service | None, *,
                        exclude_pk: int | None = None) -> Answer:
    """The asked-for time is skipped by the clocks going forward: say so and offer the real times around it."""
    lang = ctx.language
    nearest = selectors.free_starts_around(company=ctx.company, service=service, instant=gap.after, now=ctx.now,
                                           exclude_pk=exclude_pk)
    first = ctx.say("nonexistent_time", day=speech.day_words(gap.day, lang),
                    time=speech.time_words(gap.clock, lang), skipped_from=speech.time_words(gap.skipped_from, lang),
                    skipped_to=speech.time_words(gap.skipped_to, lang))
    second = (ctx.say("offer", options=speech.options_words(nearest, ctx.zone, lang, same_day_as=gap.after))
              if nearest else ctx.say("nothing_free", days=settings.APPOINTMENT_SEARCH_DAYS))
    return Answer("nonexistent_time", f"{first} {second}", alternatives=_iso(nearest, ctx))


def _wall_start(ctx: Context, when: When, service: Service | None, *, exclude_pk: int | None = None) -> datetime:
    """The instant (UTC) of the asked-for day and time: a repeated time's first occurrence.

    A time the clocks skip that day raises an Answer `nonexistent_time` with the nearest real free times.
    """
    try:
        return when.at(ctx.zone)
    except NonexistentLocalTime as gap:
        raise _nonexistent_answer(ctx, gap, service, exclude_pk=exclude_pk) from None


def _exact_start(ctx: Context, when: When, service: Service | None, *, exclude_pk: int | None = None) -> datetime:
    """The start the caller asked for (UTC); asks for a day or a time when one is missing."""
    if when.day is None:
        raise Answer("date_needed", ctx.say("date_needed"))
    if when.clock is None and when.day < ctx.now.astimezone(ctx.zone).date():
        raise _unavailable_answer(ctx, services.SlotUnavailable(
            code="past", wanted=ctx.now, alternatives=selectors.alternatives(
                company=ctx.company, service=service, wanted=ctx.now, now=ctx.now, exclude_pk=exclude_pk)))
    if when.clock is None:
        starts = selectors.free_starts(company=ctx.company, service=service, day=when.day, now=ctx.now,
                                       period=when.period, exclude_pk=exclude_pk)
        if starts:
            offered = _sample(starts)
            raise Answer("time_needed", ctx.say("time_needed", day=speech.day_words(when.day, ctx.language),
                                                times=_times(ctx, offered)),
                         alternatives=_iso(offered, ctx))
        wanted = clock_reaches(when.day, when.period.start if when.period else time(0, 0), ctx.zone)
        later = selectors.alternatives(company=ctx.company, service=service, wanted=wanted, now=ctx.now,
                                       exclude_pk=exclude_pk)
        if not selectors.opening_windows(company=ctx.company, day=when.day):
            closure = selectors.closure_on(company=ctx.company, day=when.day)
            raise _unavailable_answer(ctx, services.SlotUnavailable(
                code="closed", wanted=wanted, alternatives=later, closure_reason=closure.reason if closure else ""))
        first = ctx.say("day_full", day=speech.day_words(when.day, ctx.language))
        second = (ctx.say("offer", options=speech.options_words(later, ctx.zone, ctx.language)) if later
                  else ctx.say("nothing_free", days=settings.APPOINTMENT_SEARCH_DAYS))
        raise Answer("day_full", f"{first} {second}", alternatives=_iso(later, ctx))
    return _wall_start(ctx, when, service, exclude_pk=exclude_pk)


def _unavailable_answer(ctx: Context, error: services.SlotUnavailable) -> Answer:
    lang, zone = ctx.language, ctx.zone
    local = error.wanted.astimezone(zone)
    if error.code == "closed":
        reason = f" ({error.closure_reason})" if error.closure_reason else ""
        first = ctx.say("closed", day=speech.day_words(local.date(), lang), reason=reason)
    elif error.code == "outside_hours":
        first = ctx.say("outside_hours", time=speech.time_words(local, lang), day=speech.day_words(local.date(), lang))
    elif error.code == "past":
        first = ctx.say("past")
    else:
        first = ctx.say("taken", when=speech.when_words(error.wanted, zone, lang))
    if error.alternatives:
        second = ctx.say("offer", options=speech.options_words(error.alternatives, zone, lang,
                                                               same_day_as=error.wanted))
    else:
        second = ctx.say("nothing_free", days=settings.APPOINTMENT_SEARCH_DAYS)
    return Answer(error.code, f"{first} {second}", alternatives=_iso(error.alternatives, ctx))


def _appointment_data(appointment: Appointment, ctx: Context) -> dict:
    return {
        "appointment_id": appointment.pk,
        "start": appointment.start.astimezone(ctx.zone).isoformat(),
        "end": appointment.end.astimezone(ctx.zone).isoformat(),
        "service": appointment.service.name if appointment.service else "",
        "status": appointment.status,
    }


def _nameable(ctx: Context, appointments):
    """Those of `appointments` a caller may name by id: booked in this call or under the caller's own number."""
    mine = Q(call_id=ctx.call_id) if ctx.call_id else Q(pk__in=[])
    own_number = _phone(ctx, None)
    if own_number:
        mine |= Q(phone=own_number)
    return appointments.filter(mine)


def _find_one(ctx: Context, args: dict, date_key: str) -> Appointment:
    """The one upcoming active appointment the arguments name: by `appointment_id` (only one the
    caller may name), else by phone, name and date; Answer not_found or ambiguous otherwise."""
    phone = _phone(ctx, args.get("phone"))
    name = (args.get("name") or "").strip()
    if args.get("appointment_id") is not None:
        found = list(_nameable(ctx, Appointment.objects.filter(
            company=ctx.company, pk=args["appointment_id"], status__in=Appointment.ACTIVE_STATUSES, end__gt=ctx.now,
        )).select_related("service", "resource"))
    else:
        day = _when(ctx, args.get(date_key)).day if args.get(date_key) else None
        found = selectors.appointments_for_caller(company=ctx.company, phone=phone, name=name, day=day, now=ctx.now)
    if ctx.is_test:
        # A testing tool's call reaches only test appointments: a practice's real ones are never moved or
        # cancelled by a test, whatever name or number it uses.
        found = [appointment for appointment in found if appointment.is_test]
    if phone and not name:
        who = ctx.say("who_phone")
    elif name:
        who = ctx.say("who_name", name=name)
    else:
        who = ctx.say("who_nobody")
    if not found:
        raise Answer("not_found", ctx.say("not_found", who=who))
    if len(found) > 1:
        options = speech.joined([speech.when_words(a.start, ctx.zone, ctx.language) for a in found[:4]], ctx.language)
        raise Answer("ambiguous", ctx.say("ambiguous", who=who, options=options),
                     appointments=[_appointment_data(a, ctx) for a in found[:4]])
    return found[0]


def _held_by_call(ctx: Context, *, customer_name: str, start: datetime, service: Service | None) -> Appointment | None:
    """The active appointment this call booked at `start` for this service and name (any case), if any."""
    if not ctx.call_id:
        return None
    return (Appointment.objects.filter(company=ctx.company, call_id=ctx.call_id, start=start, service=service,
                                       customer_name__iexact=customer_name, status__in=Appointment.ACTIVE_STATUSES)
            .select_related("service").order_by("pk").first())


def _book(ctx: Context, *, name: str, start: datetime, service: Service | None, phone: str) -> Appointment:
    activity_log(company=ctx.company, kind="appointment", message="Creating appointment...",
                 data={"call_id": ctx.call_id, "start": start.astimezone(ctx.zone).isoformat(),
                       "service": service.name if service else ""})
    try:
        appointment = services.appointment_book(
            actor=ctx.actor, company=ctx.company, customer_name=name, start=start, service=service, phone=phone,
            call_id=ctx.call_id, status=Appointment.Status.PENDING, now=ctx.now, is_test=ctx.is_test)
    except services.SlotUnavailable as error:
        activity_log(company=ctx.company, kind="appointment", level="warning",
                     message=f"Appointment not created: {error.code}; {len(error.alternatives)} alternatives offered",
                     data={"call_id": ctx.call_id, "start": start.astimezone(ctx.zone).isoformat()})
        raise _unavailable_answer(ctx, error) from None
    activity_log(company=ctx.company, kind="appointment", message=f"Appointment created: #{appointment.pk} ✓",
                 data={"call_id": ctx.call_id, "appointment_id": appointment.pk})
    return appointment


def _cancelled_in_call(ctx: Context, args: dict, date_key: str) -> Appointment | None:
    """The latest cancelled appointment this call booked or cancelled, narrowed by the name and
    date asked for; None without a call id."""
    if not ctx.call_id:
        return None
    if args.get("appointment_id") is not None:
        return _nameable(ctx, Appointment.objects.filter(
            company=ctx.company, pk=args["appointment_id"], status=Appointment.Status.CANCELLED,
        )).select_related("service").first()
    cancelled_here = FunctionInvocation.objects.filter(
        company=ctx.company, call_id=ctx.call_id, name="cancel_appointment", result__ok=True,
    ).values_list("result__appointment_id", flat=True)
    found = Appointment.objects.filter(
        Q(call_id=ctx.call_id) | Q(pk__in=[pk for pk in cancelled_here if isinstance(pk, int)]),
        company=ctx.company, status=Appointment.Status.CANCELLED).select_related("service")
    if ctx.is_test:
        found = found.filter(is_test=True)
    name = (args.get("name") or "").strip()
    if name:
        found = found.filter(customer_name__icontains=name)
    day = _when(ctx, args.get(date_key)).day if args.get(date_key) else None
    candidates = [a for a in found.order_by("-updated_at", "-pk")
                  if day is None or a.start.astimezone(ctx.zone).date() == day]
    return candidates[0] if candidates else None


# --- the four functions --------------------------------------------------------------------
def collect_appointment_information(ctx: Context, args: dict) -> dict:
    name = args["name"].strip()
    if not name:
        raise Answer("invalid_arguments", ctx.say("invalid_arguments", fields=speech.field_words(["name"], ctx.language)),
                     fields=["name"])
    service = _service(ctx, args.get("service"), required=True)
    when = _when(ctx, args.get("date"), args.get("time"))
    start = _exact_start(ctx, when, service)
    phone = _phone(ctx, args.get("phone"))
    appointment = _held_by_call(ctx, customer_name=name, start=start, service=service)
    if appointment is not None:
        # The agent asks again for what this call already holds (after a check in between, so
        # not a retry): that booking is the answer, where booking anew would say "taken".
        activity_log(company=ctx.company, kind="appointment",
                     message=f"Appointment #{appointment.pk} already booked in this call ✓",
                     data={"call_id": ctx.call_id, "appointment_id": appointment.pk})
    else:
        appointment = _book(ctx, name=name, start=start, service=service, phone=phone)
    service_words = ""
    if service is not None:
        name_said = speech.service_in_sentence(service.name, ctx.language)
        service_words = f" für {name_said}" if ctx.language == "de" else f" for {_article(name_said)} {name_said}"
    message = ctx.say("booked", when=speech.when_words(appointment.start, ctx.zone, ctx.language),
                      service=service_words, name=appointment.customer_name)
    return {"ok": True, "message": message, **_appointment_data(appointment, ctx)}


def check_availability(ctx: Context, args: dict) -> dict:
    service = _service(ctx, args.get("service"), required=False)
    when = _when(ctx, args.get("date"), args.get("time"))
    if when.day is None and when.span is not None:
        return _span_availability(ctx, when, service)
    if when.day is None:
        raise Answer("date_needed", ctx.say("date_needed"))
    if when.clock is not None:
        try:
            start = _wall_start(ctx, when, service)
        except Answer as answer:
            return {**answer.result, "ok": True, "available": False, "reason": answer.result["error"]}
        problem = selectors.slot_problem(company=ctx.company, service=service, start=start, now=ctx.now)
        if problem is None:
            return {"ok": True, "available": True, "start": start.astimezone(ctx.zone).isoformat(),
                    "message": ctx.say("available", when=speech.when_words(start, ctx.zone, ctx.language))}
        answer = _unavailable_answer(ctx, services.SlotUnavailable(
            code=problem.code, wanted=start, closure_reason=problem.closure.reason if problem.closure else "",
            alternatives=selectors.alternatives(company=ctx.company, service=service, wanted=start, now=ctx.now)))
        return {**answer.result, "ok": True, "available": False, "reason": problem.code}
    starts = selectors.free_starts(company=ctx.company, service=service, day=when.day, now=ctx.now,
                                   period=when.period)
    if starts:
        offered = _sample(starts)
        return {"ok": True, "available": True, "alternatives": _iso(offered, ctx),
                "message": ctx.say("day_free", day=speech.day_words(when.day, ctx.language),
                                   times=_times(ctx, offered))}
    try:
        _exact_start(ctx, when, service)
    except Answer as answer:
        return {**answer.result, "ok": True, "available": False, "reason": answer.result["error"]}
    raise AssertionError("a day without free starts always answers")  # pragma: no cover


SPAN_DAYS_OFFERED = 3


def _span_availability(ctx: Context, when: When, service: Service | None) -> dict:
    """A week or a weekend asked about: the first free time on each of its first days that have one."""
    first, last = when.span
    day, offered = max(first, ctx.now.astimezone(ctx.zone).date()), []
    while day <= last and len(offered) < SPAN_DAYS_OFFERED:
        starts = selectors.free_starts(company=ctx.company, service=service, day=day, now=ctx.now,
                                       period=when.period)
        if starts:
            offered.append(starts[0])
        day += timedelta(days=1)
    if not offered:
        return {"ok": True, "available": False, "reason": "span_full",
                "message": ctx.say("span_full", span=speech.span_words(first, last, ctx.language))}
    return {"ok": True, "available": True, "alternatives": _iso(offered, ctx),
            "message": ctx.say("span_free", span=speech.span_words(first, last, ctx.language),
                               options=speech.options_words(offered, ctx.zone, ctx.language))}


def change_appointment_details(ctx: Context, args: dict) -> dict:
    appointment = _find_one(ctx, args, "current_date")
    when = _when(ctx, args.get("new_date"), args.get("new_time"))
    start = _exact_start(ctx, when, appointment.service, exclude_pk=appointment.pk)
    try:
        moved = services.appointment_reschedule(actor=ctx.actor, appointment=appointment, start=start, now=ctx.now)
    except services.SlotUnavailable as error:
        raise _unavailable_answer(ctx, error) from None
    activity_log(company=ctx.company, kind="appointment",
                 message=f"Appointment #{appointment.pk} moved to #{moved.pk}",
                 data={"call_id": ctx.call_id, "appointment_id": moved.pk, "previous_appointment_id": appointment.pk})
    return {"ok": True, "message": ctx.say("rescheduled", when=speech.when_words(moved.start, ctx.zone, ctx.language)),
            **_appointment_data(moved, ctx), "previous_appointment_id": appointment.pk}


def cancel_appointment(ctx: Context, args: dict) -> dict:
    try:
        appointment = _find_one(ctx, args, "date")
    except Answer as answer:
        cancelled = _cancelled_in_call(ctx, args, "date") if answer.result["error"] == "not_found" else None
        if cancelled is None:
            raise
        # Asked again after this call cancelled it (a re-answer, not a retry): say what is so.
        return {"ok": True, "message": ctx.say("cancelled", when=speech.when_words(cancelled.start, ctx.zone,
                                                                                   ctx.language)),
                **_appointment_data(cancelled, ctx)}
    reason = f"by the caller (call {ctx.call_id})" if ctx.call_id else "by the caller"
    cancelled = services.appointment_cancel(actor=ctx.actor, appointment=appointment, reason=reason)
    activity_log(company=ctx.company, kind="appointment", message=f"Appointment #{cancelled.pk} cancelled",
                 data={"call_id": ctx.call_id, "appointment_id": cancelled.pk})
    return {"ok": True, "message": ctx.say("cancelled", when=speech.when_words(cancelled.start, ctx.zone, ctx.language)),
            **_appointment_data(cancelled, ctx)}


HANDLERS: dict[str, Callable[[Context, dict], dict]] = {
    "collect_appointment_information": collect_appointment_information,
    "check_availability": check_availability,
    "change_appointment_details": change_appointment_details,
    "cancel_appointment": cancel_appointment,
}


# --- the entry point -----------------------------------------------------------------------
def _invalid(ctx: Context, schema: dict, args) -> dict | None:
    language = ctx.language
    if not isinstance(args, dict):
        fields = list(schema.get("required", [])) or ["arguments"]
    else:
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(args))
        if not errors:
            return None
        fields = []
        for error in errors:
            if error.validator == "required":
                fields += [name for name in error.validator_value if name not in args]
            elif error.absolute_path:
                fields.append(str(error.absolute_path[0]))
        fields = list(dict.fromkeys(fields)) or ["arguments"]
    return {"ok": False, "error": "invalid_arguments", "fields": fields,
            "message": speech.say("invalid_arguments", language, fields=speech.field_words(fields, language))}


def _run(handler, ctx: Context, args: dict) -> dict:
    try:
        return handler(ctx, args)
    except Answer as answer:
        return answer.result


def _is_retry(latest: FunctionInvocation | None, name: str, args_hash: str) -> bool:
    """Whether a request repeats the call's latest invocation within the retry window."""
    if latest is None or (latest.name, latest.args_hash) != (name, args_hash):
        return False
    window = timedelta(seconds=settings.CUSTOM_FUNCTION_RETRY_WINDOW_SECONDS)
    return timezone.now() - latest.created_at < window


def _article(words: str) -> str:
    return "an" if words[:1].lower() in "aeiou" else "a"


def run_custom_function(*, company: Company, name: str, args: dict, call_id: str | None,
                        caller_number: str | None = None, now: datetime | None = None,
                        language: str | None = None, is_test: bool = False) -> dict:
    """Validate, run and answer a custom function; a retry gets the answer of the request it repeats.

    With a `call_id`, a request that repeats the call's latest invocation (same function,
    same canonical arguments, younger than CUSTOM_FUNCTION_RETRY_WINDOW_SECONDS) is
    answered with its stored result; any other request runs, as the call's next `seq`.
    A retry racing its original waits for it and gets its result; a different request
    racing one runs after it. Without a call id every request runs.

    `language` ("de" / "en"): the language the answer's message is said in, when the call speaks
    another than the company (a multilingual agent with a caller of the other language).
    `is_test`: the call is a testing tool's (voice.selectors.call_test_origin); appointments it books
    are marked as tests, and it can move or cancel only test appointments.
    Raises UnknownFunction for a name no handler has. Invalid arguments answer
    `{"ok": False, "error": "invalid_arguments", "message": ...}` and are not recorded.
    """
    handler = HANDLERS.get(name)
    if handler is None:
        raise UnknownFunction(name)
    ctx = Context(company=company, call_id=call_id or "", caller_number=caller_number or "",
                  now=now or timezone.now(), actor=Actor.system(f"custom function {name}"), spoken=language,
                  is_test=is_test)
    invalid = _invalid(ctx, function_schema(company, name), args)
    if invalid is not None:
        return invalid
    if not call_id:
        with transaction.atomic():
            return _run(handler, ctx, args)
    args_hash = hashlib.sha256(canonical_args(args).encode()).hexdigest()
    invocations = FunctionInvocation.objects.filter(company=company, call_id=call_id)
    while True:
        # On SQLite the transaction takes the write lock when it begins (transaction_mode
        # IMMEDIATE), so a racing twin waits here and then finds this one's row as the latest.
        with transaction.atomic():
            latest = invocations.order_by("-seq").first()
            if _is_retry(latest, name, args_hash):
                invocations.filter(pk=latest.pk).update(retries_answered=F("retries_answered") + 1)
                return latest.result
            seq = latest.seq + 1 if latest is not None else 1
            try:
                with transaction.atomic():
                    # On PostgreSQL a racing request that took the same number holds this insert
                    # until its transaction ends; then the insert fails and the loop looks again.
                    invocation = FunctionInvocation.objects.create(
                        company=company, call_id=call_id, seq=seq, name=name, args_hash=args_hash, args=args,
                        result={})
            except IntegrityError:
                if not invocations.filter(seq=seq).exists():
                    raise
                continue
            result = _run(handler, ctx, args)
            invocation.result = result
            invocation.save(update_fields=["result"])
            return result
