"""Reads of the Live Debug Console: its lines and the debug information behind a line.

The console shows what `ActivityLogEntry.objects.restrict(user)` gives the user, nothing
else: the first screen is that queryset, and a live line is shown only when the same
queryset (with the viewer's filters) holds it (`console_line_passes`), so a member limited
to some agents sees the same lines live as in the admin's list.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform

from appointments.backend import backend_base_url
from appointments.models import FunctionInvocation
from audit.circuit import CircuitBreaker
from audit.deliveries import _target_breaker
from audit.models import ActivityLogEntry, Delivery, WebhookReceipt
from audit.services import activity_line_payload
from retell_config.client import circuit_for as retell_circuit
from retell_config.models import Agent
from tenants.models import Company
from tenants.selectors import companies_allowing
from voice.models import Call
from voice.retell_session import state_key
from voice.twilio_client import circuit_for as twilio_circuit

LEVELS = ("info", "warning", "error")
FIRST_SCREEN = 100
MAX_LINES = 500


@dataclass(frozen=True)
class LineFilter:
    """The console's filters; empty fields filter nothing.

    `kind` matches a kind and its dotted children ("webhook" takes webhook.received);
    `level` one of LEVELS exactly; `agent` an Agent pk the user may view (its lines are those
    naming the agent or one of its calls); `call_id` the lines naming that call."""

    kind: str = ""
    level: str = ""
    agent: Agent | None = None
    call_id: str = ""

    @property
    def empty(self) -> bool:
        return not (self.kind or self.level or self.agent or self.call_id)


def console_companies(user) -> QuerySet[Company]:
    """The active companies whose activity log the user may view."""
    return companies_allowing(user=user, model=ActivityLogEntry, action="view").filter(is_active=True)


def console_agents(*, user, company: Company) -> QuerySet[Agent]:
    return Agent.objects.restrict(user, "view").filter(company=company).order_by("name")


def line_filter_parse(*, user, company: Company, params) -> LineFilter:
    """A LineFilter from query parameters (kind, level, agent, call_id). ValueError names a bad one."""
    level = (params.get("level") or "").strip()
    if level and level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}.")
    agent = None
    wanted = (params.get("agent") or "").strip()
    if wanted:
        agent = console_agents(user=user, company=company).filter(pk=wanted).first() if wanted.isdigit() else None
        if agent is None:
            raise ValueError("agent is not an agent of this company you may view.")
    kind = (params.get("kind") or "").strip()[:64]
    call_id = (params.get("call_id") or "").strip()[:128]
    return LineFilter(kind=kind, level=level, agent=agent, call_id=call_id)


def console_lines_queryset(*, user, company: Company, line_filter: LineFilter = LineFilter()) -> QuerySet:
    """The company's activity lines the user may view, filtered; newest first."""
    rows = ActivityLogEntry.objects.restrict(user, "view").filter(company=company)
    if line_filter.kind:
        rows = rows.filter(Q(kind=line_filter.kind) | Q(kind__startswith=line_filter.kind + "."))
    if line_filter.level:
        rows = rows.filter(level=line_filter.level)
    if line_filter.call_id:
        rows = rows.filter(data__call_id=line_filter.call_id)
    if line_filter.agent is not None:
        agent = line_filter.agent
        calls = Call.objects.filter(company=company, agent=agent,
                                    call_id=KeyTextTransform("call_id", OuterRef("data")))
        rows = rows.filter(Q(data__agent_id=agent.agent_id) | Q(Exists(calls)))
    return rows.order_by("-created_at", "-id")


def console_lines(*, user, company: Company, line_filter: LineFilter = LineFilter(), after_id: int = 0,
                  limit: int = FIRST_SCREEN) -> list[dict]:
    """The newest `limit` lines (at most MAX_LINES) as the socket sends them
    (audit.services.activity_line_payload), oldest first; only lines with id > after_id when given."""
    rows = console_lines_queryset(user=user, company=company, line_filter=line_filter)
    if after_id:
        rows = rows.filter(pk__gt=after_id)
    return [activity_line_payload(entry) for entry in reversed(rows[:max(1, min(limit, MAX_LINES))])]


def console_line_passes(*, user, company: Company, line_filter: LineFilter, line_id: int,
                        limited: bool) -> bool:
    """Would the console's queryset hold this line? For a live line of the company's group.

    A viewer whose membership is not limited and who filters nothing sees every line of the
    company (restrict() gives it all of them): no query is needed for that case."""
    if not limited and line_filter.empty:
        return True
    return console_lines_queryset(user=user, company=company, line_filter=line_filter).filter(pk=line_id).exists()


# --- a line's debug information ----------------------------------------------------------------
def _receipt_info(receipt: WebhookReceipt, line: ActivityLogEntry) -> dict:
    """The raw request as stored (headers already redacted at storage) and what we answered."""
    Status = WebhookReceipt.Status
    if receipt.status == Status.REJECTED:
        # The refusal's HTTP status is on its webhook.rejected line (401/403); other refusals
        # answered 4xx with the same error body.
        response = {"status": line.data.get("status"),
                    "body": {"error": {"code": receipt.error_code, "message": receipt.error_message}}}
    elif receipt.kind == "function":
        invocation = (FunctionInvocation.objects.filter(company_id=receipt.company_id, call_id=receipt.call_id,
                                                        name=receipt.event_type, created_at__gte=receipt.received_at)
                      .order_by("created_at", "seq").first())
        response = ({"status": 200, "body": invocation.result} if invocation is not None
                     else {"status": 500, "body": {"error": {"code": receipt.error_code, "message": "The function "
                                                            "could not be run; please try again."}}}
                     if receipt.status == Status.FAILED else {"status": None, "body": None})
    elif receipt.status == Status.RECEIVED and receipt.error_code:
        response = {"status": 500, "body": {"error": {"code": "internal_error",
                                                      "message": "The request could not be checked; please retry."}}}
    else:  # a stored event is acknowledged at once; processing follows in a task
        response = {"status": 204, "body": None}
    processing_ms = (None if receipt.processed_at is None
                     else round((receipt.processed_at - receipt.received_at).total_seconds() * 1000, 1))
    return {
        "id": receipt.pk,
        "provider": receipt.provider,
        "endpoint": receipt.endpoint,
        "query": receipt.query,
        "headers": receipt.headers,
        "body": receipt.body_text,
        "body_truncated": receipt.body_truncated,
        "status": receipt.status,
        "is_test": receipt.is_test,
        "error_code": receipt.error_code,
        "error_message": receipt.error_message,
        "event_type": receipt.event_type,
        "call_id": receipt.call_id,
        "notes": receipt.notes,
        "response": response,
        "timings": {"received_at": receipt.received_at.isoformat(),
                    "processed_at": receipt.processed_at.isoformat() if receipt.processed_at else None,
                    "processing_ms": processing_ms, "attempts": receipt.attempts,
                    "next_attempt_at": receipt.next_attempt_at.isoformat() if receipt.next_attempt_at else None},
    }


def _call_info(call: Call) -> dict:
    state = cache.get(state_key(call.agent_id, call.call_id)) if call.agent_id else None
    return {
        "call_id": call.call_id,
        "agent": call.agent.name if call.agent_id else None,
        "status": call.status,
        "test_origin": call.test_origin,
        "started_at": call.started_at.isoformat() if call.started_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "last_event": call.last_event,
        "turns": [{key: turn.get(key) for key in ("response_id", "first_chunk_ms", "complete_ms", "superseded")}
                  for turn in call.live_turns],
        # The live socket's state (protocol, engine memory, tools' ledger) while the call is on;
        # it holds what was said and done in the call, never a key.
        "cache_state": state,
    }


def _delivery_info(delivery: Delivery) -> dict:
    """A delivery and its tries: the errors as recorded, credentials already left out
    (audit.deliveries records no header or error text holding one)."""
    return {
        "id": delivery.pk, "kind": delivery.kind, "status": delivery.status, "target_url": delivery.target_url,
        "attempt_count": delivery.attempt_count, "max_attempts": delivery.max_attempts,
        "last_error": delivery.last_error,
        "attempts": [{"number": a.number, "started_at": a.started_at.isoformat(), "url": a.url,
                      "duration_ms": a.duration_ms, "status_code": a.status_code, "error": a.error}
                     for a in delivery.attempts.order_by("number")],
    }


def _circuit_info(breaker: CircuitBreaker, label: str) -> dict:
    state = breaker.state()
    return {"name": label, "state": state.state, "status": state.status_label, "failures": state.failures,
            "last_error": state.last_error}


def circuits_of(company: Company) -> list[dict]:
    """The states of the circuit breakers this company's calls go through (audit.circuit)."""
    breakers = [(retell_circuit(company.pk), "Retell API"), (twilio_circuit(company.pk), "Twilio API"),
                (CircuitBreaker(f"llm:company:{company.pk}"), "LLM")]
    backend = backend_base_url(company)
    if backend:
        breakers.append((_target_breaker(backend), "Practice backend"))
    return [_circuit_info(breaker, label) for breaker, label in breakers]


def line_debug(*, user, company: Company, line_id: int) -> dict | None:
    """Everything the console shows behind one line, or None when the user may not see it.

    Shape: {"line": line payload, "receipt": {... request, response, timings} | None,
    "call": {... cache_state} | None, "delivery": {... attempts} | None, "circuits": [{name, state, status, failures, last_error}],
    "error": {"code", "message"} | None}. Rows named by the line are read through restrict()
    too, so a line never opens a row its viewer may not see."""
    line = console_lines_queryset(user=user, company=company).filter(pk=line_id).first()
    if line is None:
        return None
    data = line.data or {}
    receipt = None
    receipt_id = data.get("receipt_id")
    if str(receipt_id or "").isdigit():
        receipt = WebhookReceipt.objects.restrict(user, "view").filter(company=company, pk=receipt_id).first()
    call = None
    call_id = data.get("call_id") or (receipt.call_id if receipt else "")
    if call_id:
        call = (Call.objects.restrict(user, "view").select_related("agent")
                .filter(company=company, call_id=call_id).first())
    delivery = None
    delivery_id = data.get("delivery_id")
    if str(delivery_id or "").isdigit():
        delivery = Delivery.objects.restrict(user, "view").filter(company=company, pk=delivery_id).first()
    error = None
    if line.level == "error" or (receipt is not None and receipt.error_code):
        # The stored codes and messages are written for people (no trace, no secret): the
        # exception's own text stays in the server log.
        error = {"code": receipt.error_code if receipt else line.kind,
                 "message": (receipt.error_message if receipt else "") or data.get("error") or line.message}
    return {
        "line": activity_line_payload(line),
        "receipt": _receipt_info(receipt, line) if receipt is not None else None,
        "call": _call_info(call) if call is not None else None,
        "delivery": _delivery_info(delivery) if delivery is not None else None,
        "circuits": circuits_of(company),
        "error": error,
    }
