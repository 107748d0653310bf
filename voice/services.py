"""Writes of the voice app: calls assembled from provider events, and the processing of
the webhook receipts that carry them.

Calls, like receipts and deliveries, are operational rows written from verified
provider events; their trail is the receipt they came from and the activity log,
not an AuditEntry per event (those record configuration changes and people's actions).
"""

import logging
import math
from datetime import datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from appointments.backend import backend_forward_call_end
from appointments.handlers import run_custom_function
from appointments.models import Appointment
from appointments.services import appointments_confirm_for_call, appointments_release_for_test_call
from audit.actor import Actor
from audit.models import WebhookReceipt
from audit.receipts import receipt_claim, receipt_failed, receipt_processed
from audit.services import activity_log, audit_entry_for
from audit.storable import identifier_problem, json_fit, json_loads, model_values_fit
from experiments.services import call_variant_record
from retell_config.models import Agent
from tenants.models import Company

from .models import Call, LiveTurnLatency, TwilioNumber
from .selectors import call_test_origin
from .protocols import retell_webhooks as retell
from .protocols import twilio_webhooks as twilio
from .turns import turn_latency_fields

logger = logging.getLogger(__name__)

RETELL_ACTOR = Actor.system("retell webhook")
ELEVENLABS_ACTOR = Actor.system("elevenlabs callback")
TWILIO_ACTOR = Actor.system("twilio status callback")


class Unprocessable(Exception):
    """A stored receipt that no retry can process (its body does not say what happened to which call)."""


class CallOfAnotherCompany(Unprocessable):
    """An event names a call id that belongs to another company's call."""


def _lock_or_create_call(*, company: Company, call_id: str, source: str) -> Call:
    call = Call.objects.select_for_update().filter(call_id=call_id).first()
    if call is None:
        try:
            with transaction.atomic():
                return Call.objects.create(company=company, call_id=call_id, source=source)
        except IntegrityError:  # another event of this call created it first
            call = Call.objects.select_for_update().get(call_id=call_id)
    if call.company_id != company.pk:
        raise CallOfAnotherCompany(f"Call {call_id} belongs to another company.")
    return call


def _merge(call: Call, fields: dict, rank: list[int]) -> None:
    """Set each field unless an event of a higher (or equal) rank already set it."""
    ranks = dict(call.field_ranks)
    for name, value in fields.items():
        held = ranks.get(name)
        if held is None or rank > held:
            setattr(call, name, value)
            ranks[name] = rank
    call.field_ranks = ranks


def call_apply_event(*, company: Company, event: str, call_payload: dict, agent: Agent | None = None,
                     notes: list[str] | None = None) -> Call:
    """Upsert the call from one Retell event: the same events in any order, or twice, give the same row.

    Each field is fitted to its column on its own (text cleaned and cut, a value the column
    refuses dropped), so a bad field never loses the event; what was changed is appended to
    `notes` when given ("call.<field>: ..."). Raises CallOfAnotherCompany when the call id is
    another company's call.
    """
    call_id = call_payload["call_id"]
    fields, read_notes = retell.call_fields(call_payload)
    fields, fit_notes = model_values_fit(Call, fields, where="call.")
    if notes is not None:
        notes.extend([*read_notes, *fit_notes])
    with transaction.atomic():
        call = _lock_or_create_call(company=company, call_id=call_id, source=Call.Source.RETELL)
        _merge(call, fields, retell.event_rank(event, call_payload))
        if agent is not None and call.agent_id is None:
            call.agent = agent
        call_variant_record(call, call_payload, agent)
        call.events = sorted(set(call.events) | {event}, key=lambda e: (retell.EVENT_STAGE.get(e, 0), e))
        call.last_event = call.events[-1]
        call.full_clean()
        call.save()
    return call


def call_record_live_turns(*, company: Company, call_id: str, turns: list[dict], transcript: list,
                           agent: Agent | None = None, dialog_engine: str = "") -> Call:
    """Record answered (or superseded) turns of the live socket on the call's row, and each
    turn's latency as a `LiveTurnLatency` row (what the Analytics page aggregates).

    `turns` are TurnRecord.to_dict() records; `dialog_engine` names the engine that answered
    them ("embedded", "openai"; empty: the agent's setting now). The row may not exist yet (the
    call_started webhook can come later): it is made, and the webhook events fill in the rest.
    A turn answered again after a reconnect replaces the record, and the latency row, of the
    same response_id.
    """
    with transaction.atomic():
        call = _lock_or_create_call(company=company, call_id=call_id, source=Call.Source.RETELL)
        if agent is not None and call.agent_id is None:
            call.agent = agent
        newer = {turn.get("response_id") for turn in turns}
        kept = [t for t in call.live_turns if t.get("response_id") not in newer]
        call.live_turns = sorted([*kept, *turns], key=lambda t: t.get("response_id", 0))
        call.live_transcript = transcript
        call.save(update_fields=["agent", "live_turns", "live_transcript", "updated_at"])
        answered_by = agent or call.agent
        engine = dialog_engine or (answered_by.dialog_engine if answered_by is not None else "")
        now = timezone.now()
        rows = {}
        for turn in turns:
            fields = turn_latency_fields(turn, fallback_started_at=now)
            if fields is not None:  # the last record of a response_id wins, as in live_turns
                rows[fields["response_id"]] = LiveTurnLatency(
                    company=company, call=call, agent=answered_by, dialog_engine=engine, **fields)
        if rows:
            LiveTurnLatency.objects.bulk_create(
                rows.values(), update_conflicts=True, unique_fields=["call", "response_id"],
                update_fields=["agent", "dialog_engine", "started_at", "first_chunk_ms", "complete_ms"])
    return call


def _elevenlabs_moment(seconds) -> datetime | None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=dt_timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def call_attach_elevenlabs(*, company: Company, data: dict, notes: list[str] | None = None) -> Call:
    """Attach ElevenLabs' post-call transcription to its call (made if we have none).

    The call is found by the call id our dialog passed as a dynamic variable, the
    Twilio call SID, or the conversation id (each only if it can be an id). ElevenLabs'
    transcript only fills gaps: it ranks below every Retell event, so Retell's own values
    always win. Each field is fitted to its column on its own, what was changed appended to
    `notes` when given. Raises Unprocessable when no id names the call.
    """
    conversation_id = str(data.get("conversation_id") or "")
    client = data.get("conversation_initiation_client_data") or {}
    variables = client.get("dynamic_variables") or {} if isinstance(client, dict) else {}
    variables = variables if isinstance(variables, dict) else {}
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    phone_call = metadata.get("phone_call") if isinstance(metadata.get("phone_call"), dict) else {}
    found_notes = []
    candidates = []
    for name, value in (("call_id", variables.get("call_id")), ("system__call_sid", variables.get("system__call_sid")),
                        ("phone_call.call_sid", phone_call.get("call_sid")), ("conversation_id", conversation_id)):
        if not value or isinstance(value, bool) or not isinstance(value, str | int):
            continue
        if identifier_problem(str(value), retell.ID_MAX_LENGTH):
            found_notes.append(f"elevenlabs.{name}: cannot be a call id, not used")
            continue
        candidates.append(str(value))
    if not candidates:
        raise Unprocessable("The transcription names no conversation_id that can be a call id.")
    turns = data.get("transcript") if isinstance(data.get("transcript"), list) else []
    text = "\n".join(f"{'Agent' if t.get('role') == 'agent' else 'User'}: {t.get('message') or ''}"
                     for t in turns if isinstance(t, dict))
    fields = {"transcript": text, "transcript_turns": turns}
    start = metadata.get("start_time_unix_secs")
    if isinstance(start, int | float) and not isinstance(start, bool):
        fields["started_at"] = _elevenlabs_moment(start)
        if fields["started_at"] is None:
            found_notes.append("call.started_at: out of range, dropped")
    duration = metadata.get("call_duration_secs")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        milliseconds = duration * 1000
        if isinstance(milliseconds, float) and not math.isfinite(milliseconds):
            found_notes.append("call.duration_ms: out of range, dropped")
        else:
            fields["duration_ms"] = int(milliseconds)
    fields, fit_notes = model_values_fit(Call, {k: v for k, v in fields.items() if v}, where="call.")
    attachment, attachment_notes = json_fit({
        "conversation_id": conversation_id, "agent_id": data.get("agent_id"), "status": data.get("status"),
        "analysis": data.get("analysis"), "termination_reason": metadata.get("termination_reason"),
        "cost": metadata.get("cost")})
    if notes is not None:
        notes.extend([*found_notes, *fit_notes, *(f"call.attachments: {what}" for what in attachment_notes)])
    with transaction.atomic():
        found = Call.objects.select_for_update().filter(company=company, call_id__in=candidates).first()
        call = found or _lock_or_create_call(company=company, call_id=candidates[-1], source=Call.Source.ELEVENLABS)
        _merge(call, fields, [0, 0])
        call.attachments = {**call.attachments, "elevenlabs": attachment}
        call.events = sorted(set(call.events) | {"elevenlabs_post_call_transcription"})
        call.last_event = call.last_event or "elevenlabs_post_call_transcription"
        call.full_clean()
        call.save()
    return call


# --- Twilio calls --------------------------------------------------------------------------
def _twilio_events(call: Call, event: str) -> None:
    call.events = sorted(set(call.events) | {event}, key=lambda e: (twilio.event_stage(e), e))
    call.last_event = call.events[-1]


def call_start_twilio(*, company: Company, agent: Agent, call_sid: str, form: twilio.Form, received_at: datetime,
                      notes: list[str] | None = None) -> Call:
    """Record a call Twilio announced with its (verified) incoming webhook, received at `received_at`
    (its start: Twilio tells an inbound call's status callback only its end): the row is made, or,
    if a status callback came first, completed; a field a later callback set is kept (the incoming
    webhook ranks below every callback). Each field is fitted to its column on its own, what was
    changed appended to `notes` when given. Raises CallOfAnotherCompany when the SID is another
    company's call."""
    fields = {**twilio.call_fields(form), "call_type": "phone_call", "started_at": received_at}
    fields, fit_notes = model_values_fit(Call, fields, where="call.")
    if notes is not None:
        notes.extend(fit_notes)
    with transaction.atomic():
        call = _lock_or_create_call(company=company, call_id=call_sid, source=Call.Source.TWILIO)
        _merge(call, fields, twilio.INCOMING_RANK)
        if call.agent_id is None:
            call.agent = agent
        _twilio_events(call, twilio.INCOMING_EVENT)
        call.full_clean()
        call.save()
    return call


def call_apply_twilio_status(*, company: Company, form: twilio.Form, received_at: datetime,
                             agent: Agent | None = None, notes: list[str] | None = None) -> tuple[Call, bool]:
    """Apply one status callback to its call (made if unknown): callbacks in any order, or twice,
    give the same row (twilio_webhooks.status_rank: by SequenceNumber, and a terminal status after
    every other, so nothing reopens an ended call). Returns the call and whether this callback
    ended it (its first terminal status). Raises CallOfAnotherCompany as call_start_twilio."""
    call_status = form.first("CallStatus")
    fields, read_notes = twilio.status_fields(form, received_at=received_at)
    fields, fit_notes = model_values_fit(Call, fields, where="call.")
    if notes is not None:
        notes.extend([*read_notes, *fit_notes])
    event = twilio.status_event(call_status)
    with transaction.atomic():
        call = _lock_or_create_call(company=company, call_id=form.first("CallSid"), source=Call.Source.TWILIO)
        ended_before = any(twilio.is_terminal_event(e) for e in call.events)
        _merge(call, fields, twilio.status_rank(call_status, twilio.sequence_number(form)))
        if agent is not None and call.agent_id is None:
            call.agent = agent
        _twilio_events(call, event)
        call.full_clean()
        call.save()
    return call, twilio.is_terminal_event(event) and not ended_before


# --- Custom functions ------------------------------------------------------------------
def custom_function_run(*, receipt: WebhookReceipt, company: Company, request: retell.RetellRequest) -> dict:
    """Run a verified custom-function call through the appointments handlers (idempotent per call,
    function and args, so Retell's retries never book twice) and log it like the seed's console."""
    _log(company, "function.received", f"Custom function call: {request.name}", receipt)
    _log(company, "webhook.verified", "Tool key verified ✓" if receipt.provider == WebhookReceipt.Provider.ELEVENLABS
         else "Signature verified ✓", receipt)
    if request.call_id:
        _log(company, "webhook.call", f"Call ID: {request.call_id}", receipt)
    if request.args:
        _log(company, "webhook.function_data", "Custom function data found ✓", receipt)
    # The booking handler itself logs "Creating appointment..." and "Appointment created: #id ✓".
    is_test = bool(call_test_origin(company_id=company.pk, call_id=request.call_id))
    if is_test:
        receipt.is_test = True
        WebhookReceipt.objects.filter(pk=receipt.pk).update(is_test=True)
    result = run_custom_function(company=company, name=request.name, args=request.args,
                                 call_id=request.call_id, caller_number=request.caller_number, is_test=is_test)
    if not result.get("ok"):
        _log(company, "function.declined", f"{request.name}: {result.get('message', '')}", receipt, level="warning")
    return result


# --- Processing stored receipts -------------------------------------------------------
def _log(company: Company, kind: str, message: str, receipt: WebhookReceipt, level: str = "info", **data) -> None:
    activity_log(company=company, kind=kind, message=message, level=level,
                 data={"receipt_id": receipt.pk, "call_id": receipt.call_id, **data})


def _newer_transcript_exists(receipt: WebhookReceipt) -> bool:
    return WebhookReceipt.objects.filter(
        provider=receipt.provider, company_id=receipt.company_id, call_id=receipt.call_id,
        event_type="transcript_updated", received_at__gt=receipt.received_at,
        status__in=WebhookReceipt.KEY_HOLDING).exists()


def _call_ended(*, company: Company, call: Call, receipt: WebhookReceipt, actor: Actor = RETELL_ACTOR) -> None:
    """Confirm what the caller booked during the call and queue the backend deliveries.

    A testing tool's call instead releases what it booked, and nothing reaches the backend.
    """
    if call.is_test:
        released = appointments_release_for_test_call(actor=actor, company=company, call_id=call.call_id)
        _log(company, "delivery.skipped", f"Test call ended: {len(released)} test appointment(s) released, "
                                          "nothing forwarded to the practice's backend", receipt)
        return
    confirmed = appointments_confirm_for_call(actor=actor, company=company, call_id=call.call_id)
    if confirmed:
        _log(company, "webhook.function_data", "Custom function data found ✓", receipt)
    for appointment in confirmed:
        _log(company, "appointment.confirmed", f"Appointment confirmed: #{appointment.pk} ✓", receipt,
             appointment_id=appointment.pk)
    of_call = list(Appointment.objects.filter(company=company, call_id=call.call_id))
    deliveries = backend_forward_call_end(company=company, call=call, appointments=of_call)
    if deliveries:
        _log(company, "delivery.queued", f"Backend deliveries queued: {len(deliveries)}", receipt,
             deliveries=[d.pk for d in deliveries])
    else:
        _log(company, "delivery.skipped", "No practice backend configured: nothing forwarded", receipt)


def _payload(receipt: WebhookReceipt):
    try:
        return json_loads(bytes(receipt.body))
    except ValueError as exc:
        raise Unprocessable(f"The body is not strict JSON: {exc}") from None


def _process_retell_event(*, receipt: WebhookReceipt, company: Company) -> tuple[str, list[str]]:
    try:
        request = retell.classify(_payload(receipt), {})
    except retell.ProtocolError as exc:
        raise Unprocessable(exc.message) from None
    if request.event not in retell.KNOWN_EVENTS or not request.call_id:
        raise Unprocessable("The body is not an event about a call this server handles.")
    _log(company, "webhook.received", f"Webhook received: {request.event}", receipt)
    _log(company, "webhook.verified", "Tool key verified ✓" if receipt.provider == WebhookReceipt.Provider.ELEVENLABS
         else "Signature verified ✓", receipt)
    _log(company, "webhook.call", f"Call ID: {request.call_id}", receipt)
    if request.event == "transcript_updated" and _newer_transcript_exists(receipt):
        return "superseded by a newer transcript update", []
    agent = Agent.objects.filter(company=company, agent_id=request.agent_id).first()
    notes: list[str] = []
    call = call_apply_event(company=company, event=request.event, call_payload=request.call, agent=agent,
                            notes=notes)
    if request.event == "call_ended":
        _call_ended(company=company, call=call, receipt=receipt)
    if notes:
        _log(company, "webhook.cleaned", f"Fields cleaned or dropped to store the call: {len(notes)}", receipt,
             level="warning", notes=notes)
    _log(company, "webhook.processed", "Webhook processed successfully", receipt)
    return "", notes


def _process_elevenlabs_event(*, receipt: WebhookReceipt, company: Company) -> tuple[str, list[str]]:
    payload = _payload(receipt)
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise Unprocessable("The callback carries no data object.")
    _log(company, "webhook.received", f"ElevenLabs callback received: {receipt.event_type}", receipt)
    notes: list[str] = []
    call = call_attach_elevenlabs(company=company, data=data, notes=notes)
    _log(company, "webhook.call", f"Call ID: {call.call_id}", receipt)
    _log(company, "webhook.processed", "Webhook processed successfully", receipt)
    return "", notes


def _process_twilio_event(*, receipt: WebhookReceipt, company: Company) -> tuple[str, list[str]]:
    """A status callback: the call's status (in SequenceNumber order); its end confirms the
    appointments booked in it and forwards its record, as Retell's call_ended does."""
    try:
        form = twilio.form_parse(bytes(receipt.body))
    except twilio.FormError as exc:
        raise Unprocessable(str(exc)) from None
    if not form.first("CallSid") or not form.first("CallStatus"):
        raise Unprocessable("The status callback names no call or no status.")
    # The event's name, not the status as sent: a status may hold what no log line can (NUL).
    _log(company, "webhook.received", f"Twilio status callback: {twilio.status_event(form.first('CallStatus'))}",
         receipt)
    _log(company, "webhook.call", f"Call ID: {receipt.call_id}", receipt)
    number = TwilioNumber.objects.filter(company=company, phone_number=form.first("To")).first()
    notes: list[str] = []
    call, ended = call_apply_twilio_status(company=company, form=form, received_at=receipt.received_at,
                                           agent=number.agent if number else None, notes=notes)
    if ended:
        _call_ended(company=company, call=call, receipt=receipt, actor=TWILIO_ACTOR)
    if notes:
        _log(company, "webhook.cleaned", f"Fields cleaned or dropped to store the call: {len(notes)}", receipt,
             level="warning", notes=notes)
    _log(company, "webhook.processed", "Webhook processed successfully", receipt)
    return "", notes


PROCESSORS = {
    WebhookReceipt.Provider.RETELL: _process_retell_event,
    WebhookReceipt.Provider.ELEVENLABS: _process_elevenlabs_event,
    WebhookReceipt.Provider.TWILIO: _process_twilio_event,
}


def receipt_process(*, receipt_id: int, now: datetime | None = None) -> WebhookReceipt | None:
    """Apply one verified (or failed and due) receipt; None when it is not due, another worker
    holds it, or its tries are spent.

    The try is counted before it runs (audit.receipts.receipt_claim), so retries stay within
    RECEIPT_MAX_ATTEMPTS even when a worker dies mid-try. A failure rolls the work back and
    keeps the receipt `failed`, due again after its backoff; one that no retry can mend
    (Unprocessable) or the last try gives it up with the reason, in the receipt and as an
    error line in the activity log. What had to be cleaned or dropped is kept in its `notes`.
    """
    claimed = receipt_claim(receipt_id=receipt_id, providers=PROCESSORS, now=now)
    if claimed is None:
        return None
    with transaction.atomic():
        receipt = (WebhookReceipt.objects.select_for_update(skip_locked=True)
                   .filter(pk=receipt_id, attempts=claimed.attempts,
                           status__in=[WebhookReceipt.Status.VERIFIED, WebhookReceipt.Status.FAILED]).first())
        if receipt is None:  # another worker took it over meanwhile
            return None
        _receipt_apply(receipt)
    return receipt


def _receipt_apply(receipt: WebhookReceipt) -> None:
    """Run the receipt's processor (its work rolled back if it fails) and record the outcome:
    processed, or failed with the reason (retried unless no retry can mend it). A receipt of a
    testing tool's call is marked as a test. Inside the caller's transaction, the receipt locked."""
    company = Company.objects.get(pk=receipt.company_id)
    try:
        with transaction.atomic():
            note, notes = PROCESSORS[receipt.provider](receipt=receipt, company=company)
    except Exception as exc:
        logger.warning("Receipt %s failed to process", receipt.pk, exc_info=True)
        receipt_failed(receipt=receipt, code=type(exc).__name__, message=str(exc) or type(exc).__name__,
                       permanent=isinstance(exc, Unprocessable))
        _log(company, "webhook.failed", f"Webhook processing failed: {type(exc).__name__}", receipt,
             level="error")
    else:
        receipt_processed(receipt=receipt, note=note, notes=notes)
    _receipt_test_mark(receipt)


def _receipt_test_mark(receipt: WebhookReceipt) -> None:
    """Mark the receipt as a test when its call is a testing tool's (the mark is this server's
    Call row, never the payload)."""
    if receipt.is_test or not receipt.call_id or receipt.company_id is None:
        return
    if call_test_origin(company_id=receipt.company_id, call_id=receipt.call_id):
        receipt.is_test = True
        WebhookReceipt.objects.filter(pk=receipt.pk).update(is_test=True)


# Receipts that passed their checks and may be processed again from the admin: never a
# rejected one (its signature or agent was refused), nor a duplicate (its key holder is the one).
REPLAYABLE = (WebhookReceipt.Status.VERIFIED, WebhookReceipt.Status.PROCESSED, WebhookReceipt.Status.FAILED)


def receipt_replay(*, actor: Actor, receipt_id: int) -> WebhookReceipt | None:
    """Process a stored event receipt again, through the worker's own path (`receipt_process`'s
    processor and outcome), now and whatever its backoff.

    Idempotent as the processing is: the call is merged, pending appointments are confirmed
    once, and backend deliveries keep their idempotency keys (a replayed call_ended queues no
    second delivery). The try counts in `attempts`; `replay_count` and `replayed_at` say it
    was replayed, the status and error its outcome. Audited (action "replay", the status
    before and after) and logged. Returns the receipt, or None when it is not a replayable
    event receipt (`REPLAYABLE`, with a company) or a worker holds it right now.
    """
    now = timezone.now()
    with transaction.atomic():
        receipt = (WebhookReceipt.objects.select_for_update(skip_locked=True)
                   .filter(pk=receipt_id, kind="event", provider__in=list(PROCESSORS), status__in=REPLAYABLE)
                   .exclude(company=None).first())
        if receipt is None:
            return None
        before = receipt.status
        receipt.attempts += 1
        receipt.replay_count += 1
        receipt.replayed_at = now
        receipt.next_attempt_at = None
        WebhookReceipt.objects.filter(pk=receipt.pk).update(attempts=receipt.attempts, replay_count=receipt.replay_count,
                                                           replayed_at=now, next_attempt_at=None)
        _receipt_apply(receipt)
        audit_entry_for(actor, "replay", receipt, {
            "status": {"before": before, "after": receipt.status},
            "replay_count": {"before": receipt.replay_count - 1, "after": receipt.replay_count}})
        _log(receipt.company_id, "webhook.replayed", f"Webhook replayed by {actor.label}: {receipt.status}"
             + (f" ({receipt.error_code})" if receipt.error_code else ""), receipt,
             level="info" if receipt.status == WebhookReceipt.Status.PROCESSED else "warning")
    return receipt


def receipts_replay(*, actor: Actor, receipts) -> dict[str, int]:
    """Replay each receipt of the queryset `receipts` (receipt_replay); returns how many were
    {"processed", "failed", "skipped"} (not replayable, or held by a worker)."""
    counts = {"processed": 0, "failed": 0, "skipped": 0}
    for pk in receipts.order_by("received_at", "pk").values_list("pk", flat=True):
        receipt = receipt_replay(actor=actor, receipt_id=pk)
        if receipt is None:
            counts["skipped"] += 1
        else:
            counts["processed" if receipt.status == WebhookReceipt.Status.PROCESSED else "failed"] += 1
    return counts


def receipts_sweep(*, now: datetime | None = None, limit: int = 200) -> int:
    """Process receipts that the broker or a worker left behind, and failed ones whose retry is due."""
    now = now or timezone.now()
    not_held = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    left = WebhookReceipt.objects.filter(
        not_held, status=WebhookReceipt.Status.VERIFIED, kind="event",
        received_at__lt=now - timedelta(seconds=settings.RECEIPT_SWEEP_AFTER_SECONDS))
    due = WebhookReceipt.objects.filter(status=WebhookReceipt.Status.FAILED, kind="event",
                                        next_attempt_at__lte=now)
    ids = list(left.order_by("received_at").values_list("pk", flat=True)[:limit])
    ids += list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    return sum(1 for pk in ids if receipt_process(receipt_id=pk, now=now) is not None)
