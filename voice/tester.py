"""The admin's webhook tester and function simulator: Retell's requests, built from an agent,
signed as Retell signs them and sent over real HTTP; and a custom function's real handler run
in a transaction that is rolled back.

What a test sends is marked as a test by this server's own rows, never by the payload: the
call it names is created first (`Call.test_origin = webhook_tester`, its id `test_<random>`),
so the custom functions it calls book test appointments, its call_ended releases them, and
nothing reaches the practice's backend (voice.services).

Where a test may be sent (the server makes the request, so it must not become a way into
the server's own network): http or https only; one of the URLs the company configured for
Retell to call (its webhook URL, an agent's webhook URL override, a custom function's URL)
or this server's own endpoints (PUBLIC_BASE_URL); no redirects are followed; and a configured
URL whose host resolves to a link-local, private, loopback or reserved address is refused
unless it is this server's (WEBHOOK_TESTER_ALLOW_PRIVATE_TARGETS lets a private network in).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import httpx
import jsonschema
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.urls import reverse
from django.utils import timezone

from appointments.handlers import UnknownFunction, run_custom_function
from audit.actor import Actor
from audit.models import ActivityLogEntry, AuditEntry, WebhookReceipt
from audit.services import activity_log, audit_entry_for
from audit.storable import json_loads
from retell_config.models import Agent, CustomFunction, WebhookConfig
from retell_config.selectors import CUSTOM_FUNCTION_PATH, custom_function_schema
from tenants.models import Company

from .models import Call
from .protocols import retell_webhooks as retell
from .protocols.signatures import retell_sign, retell_verify
from .selectors import retell_signing_keys

EVENTS_PATH = "/api/retell/webhook"
TEST_CALL_PREFIX = "test_"
FUNCTION_EVENT = "function"
# What the tester offers: the lifecycle events, a transfer event and a custom-function call.
EVENT_CHOICES = (("call_started", "call_started"), ("call_ended", "call_ended"), ("call_analyzed", "call_analyzed"),
                 ("transfer_started", "transfer_started (a transfer event)"),
                 (FUNCTION_EVENT, "custom function call"))
RESPONSE_BODY_LIMIT = 64 * 1024
SAMPLE_CALLER = "+4915112345678"


class TesterRefused(Exception):
    """A test that is not sent: `code` and `message` for the JSON error, `status` its HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# --- samples ------------------------------------------------------------------------------
def new_test_call_id() -> str:
    return TEST_CALL_PREFIX + secrets.token_hex(12)


def _lines(agent: Agent) -> list[tuple[str, str]]:
    german = (agent.language or "").startswith("de")
    greeting = agent.begin_message or ("Guten Tag, wie kann ich helfen?" if german else "Hello, how can I help?")
    if german:
        return [("agent", greeting), ("user", "Ich hätte gern einen Termin morgen um zehn Uhr."),
                ("agent", "Gern. Auf welchen Namen darf ich den Termin eintragen?"), ("user", "Erika Muster.")]
    return [("agent", greeting), ("user", "I'd like an appointment tomorrow at ten."),
            ("agent", "Of course. What name should I put it under?"), ("user", "Erika Muster.")]


def _transcript(agent: Agent) -> list[dict]:
    turns, at = [], 0.0
    for role, content in _lines(agent):
        words = []
        for word in content.split():
            words.append({"word": word, "start": round(at, 3), "end": round(at + 0.25, 3)})
            at += 0.3
        turns.append({"role": role, "content": content, "words": words})
        at += 1.0
    return turns


def sample_call(*, agent: Agent, call_id: str, ended: bool, now_ms: int | None = None) -> dict:
    """A Retell call object (shared/reference/retell.md §2.5) for `agent`: its id and first number,
    a caller, a short transcript in the agent's language; `ended` adds the end, duration and reason."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    turns = _transcript(agent)
    start = now_ms - 95_000 if ended else now_ms - 20_000
    call = {
        "call_type": "phone_call", "from_number": SAMPLE_CALLER,
        "to_number": (agent.phone_numbers or [agent.company.phone or "+493000000000"])[0],
        "direction": "inbound", "call_id": call_id, "agent_id": agent.agent_id, "agent_version": 1,
        "agent_name": agent.name, "call_status": "ended" if ended else "ongoing", "metadata": {},
        "retell_llm_dynamic_variables": {"customer_name": "Erika Muster"}, "start_timestamp": start,
        "transcript": "\n".join(f"{t['role'].title()}: {t['content']}" for t in turns),
        "transcript_object": turns, "opt_out_sensitive_data_storage": False,
    }
    if ended:
        call.update(end_timestamp=now_ms, duration_ms=now_ms - start, disconnection_reason="user_hangup")
    return call


def sample_args(schema: dict) -> dict:
    """Arguments for a function's JSON Schema: each property's example, first enum value or a
    plausible value of its type (a date and a time where the name says so)."""
    args = {}
    for name, spec in (schema.get("properties") or {}).items():
        spec = spec if isinstance(spec, dict) else {}
        kind = spec.get("type")
        if spec.get("examples"):
            args[name] = spec["examples"][0]
        elif spec.get("enum"):
            args[name] = spec["enum"][0]
        elif kind in ("integer", "number"):
            args[name] = 1
        elif kind == "boolean":
            args[name] = True
        elif kind == "array":
            args[name] = []
        elif kind == "object":
            args[name] = {}
        elif "date" in name:
            args[name] = "tomorrow"
        elif "time" in name:
            args[name] = "10:00"
        elif "phone" in name:
            args[name] = SAMPLE_CALLER
        elif "service" in name:
            args[name] = ""
        else:
            args[name] = "Erika Muster" if "name" in name else ""
    return {k: v for k, v in args.items() if v != "" or k in (schema.get("required") or [])}


def webhook_sample(*, agent: Agent, event: str, function: CustomFunction | None = None,
                   call_id: str | None = None) -> dict:
    """The body Retell would send for `event` ("function": a call of `function`) about a new
    test call of `agent`: `{event, call}` (a transfer adds `transfer_destination` and
    `transfer_option`), or `{name, call, args}` (bare args for an args_at_root function)."""
    call_id = call_id or new_test_call_id()
    if event == FUNCTION_EVENT:
        if function is None:
            raise TesterRefused("function_missing", "Choose the custom function to call.")
        args = sample_args(function.parameters or {})
        if function.args_at_root:
            return args
        return {"name": function.name, "call": sample_call(agent=agent, call_id=call_id, ended=False), "args": args}
    if event not in dict(EVENT_CHOICES):
        raise TesterRefused("unknown_event", f"Choose one of: {', '.join(dict(EVENT_CHOICES))}.")
    call = sample_call(agent=agent, call_id=call_id, ended=event in ("call_ended", "call_analyzed"))
    body = {"event": event, "call": call}
    if event == "call_analyzed":
        call["call_analysis"] = {"call_summary": "The caller booked an appointment for tomorrow at ten.",
                                 "user_sentiment": "Positive", "call_successful": True, "in_voicemail": False,
                                 "custom_analysis_data": {}}
    if event in retell.TRANSFER_EVENTS:
        body["transfer_destination"] = {"number": agent.company.phone or "+493000000001"}
        body["transfer_option"] = {"type": "cold_transfer", "showTransfereeAsCaller": False}
    return body


# --- where a test may go ------------------------------------------------------------------
def this_server_urls() -> dict[str, str]:
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    return {"events": base + EVENTS_PATH, "function": base + CUSTOM_FUNCTION_PATH}


def is_this_server(url: str) -> bool:
    base = urlsplit(settings.PUBLIC_BASE_URL)
    target = urlsplit(url)
    return (target.scheme, target.netloc) == (base.scheme, base.netloc)


def tester_targets(*, company: Company, agents) -> list[dict]:
    """The URLs a test of `company` may be sent to, each {url, label}: this server's endpoints,
    the company's webhook URL, the webhook URL overrides of `agents` (those the user may see, or
    the one tested) and the custom functions' URLs."""
    ours = this_server_urls()
    targets = [{"url": ours["events"], "label": "This server: Retell webhook"},
               {"url": ours["function"], "label": "This server: custom functions"}]
    config = WebhookConfig.objects.filter(company=company).first()
    if config is not None and config.url:
        targets.append({"url": config.url, "label": "Company webhook URL"})
    targets += [{"url": a.webhook_url, "label": f"Webhook URL of {a.name}"}
                for a in sorted(agents, key=lambda a: a.name) if a.company_id == company.pk and a.webhook_url]
    targets += [{"url": f.url, "label": f"Function {f.name}"}
                for f in CustomFunction.objects.filter(company=company).order_by("name")]
    seen, unique = set(), []
    for target in targets:
        if target["url"] not in seen:
            seen.add(target["url"])
            unique.append(target)
    return unique


def _address_refused(host: str) -> str:
    """Why the server must not call `host` (an address in its own networks), or ""."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return ""  # unresolvable: the send reports the connection error
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address.is_link_local or address.is_multicast or address.is_unspecified:
            return f"{host} resolves to {address}, an address the server never calls."
        if (address.is_private or address.is_loopback or address.is_reserved) \
                and not settings.WEBHOOK_TESTER_ALLOW_PRIVATE_TARGETS:
            return (f"{host} resolves to {address}, in the server's own networks; "
                    "WEBHOOK_TESTER_ALLOW_PRIVATE_TARGETS lets tests reach it.")
    return ""


def target_check(*, agent: Agent, url: str) -> None:
    """Raises TesterRefused (`target_not_allowed`) unless `url` is one of `tester_targets` for a
    test of `agent`, http(s), and (but for this server's own) outside the server's networks."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TesterRefused("target_not_allowed", "Only http and https URLs can be tested.")
    if url not in {t["url"] for t in tester_targets(company=agent.company, agents=[agent])}:
        raise TesterRefused("target_not_allowed", "Tests go only to this server or to a URL configured for this "
                                                "company (its webhook URL, an agent's, a function's).")
    if not is_this_server(url):
        reason = _address_refused(parts.hostname)
        if reason:
            raise TesterRefused("target_not_allowed", reason)


# --- signed sending -----------------------------------------------------------------------
@dataclass
class Exchange:
    """One signed request and what came back (or why nothing did); times in milliseconds."""

    method: str
    url: str
    request_headers: dict
    request_body: str
    status: int | None = None
    response_headers: dict = field(default_factory=dict)
    response_body: str = ""
    response_truncated: bool = False
    error: str = ""
    ttfb_ms: float | None = None
    total_ms: float | None = None
    signature_verifies: bool = False
    signature_message: str = ""

    def as_dict(self) -> dict:
        return {"request": {"method": self.method, "url": self.url, "headers": self.request_headers,
                            "body": self.request_body},
                "response": None if self.status is None else {
                    "status": self.status, "headers": self.response_headers, "body": self.response_body,
                    "truncated": self.response_truncated},
                "error": self.error, "ttfb_ms": self.ttfb_ms, "total_ms": self.total_ms,
                "signature": {"verifies_here": self.signature_verifies, "message": self.signature_message}}


def signing_key(agent: Agent) -> str:
    """The key this server verifies `agent`'s Retell requests with now, which Retell signs them
    with (voice.selectors.retell_signing_keys: the agent's secret, else the company's, else its
    Retell API key). Raises TesterRefused when there is none."""
    keys = retell_signing_keys(agent_id=agent.agent_id, now=time.time())
    if not keys:
        raise TesterRefused("signature_key_missing", "No signing secret or Retell API key is configured for this "
                                                   "agent, so nothing can be signed as Retell signs.")
    return keys[0]


def signed_send(*, agent: Agent, url: str, body: bytes, method: str = "POST", query: dict | None = None,
                timeout_seconds: float | None = None) -> Exchange:
    """Send `body` to `url` as Retell sends it: `X-Retell-Signature: v=<ms>,d=<hmac>` over the
    exact bytes (voice.protocols.signatures), JSON content type, no redirects followed, the
    tester's timeouts (connect WEBHOOK_TESTER_CONNECT_TIMEOUT_SECONDS, the whole exchange
    `timeout_seconds` or WEBHOOK_TESTER_TIMEOUT_SECONDS). Never raises for the network: a
    failure is the exchange's `error`. The response body is kept up to 64 KiB."""
    key = signing_key(agent)
    now_ms = int(time.time() * 1000)
    signature = retell_sign(body, key, now_ms)
    full_url = url + (("&" if "?" in url else "?") + urlencode(query) if query else "")
    headers = {"Content-Type": "application/json", "User-Agent": "VoiceDesk-webhook-tester",
               "X-Retell-Signature": signature}
    verdict = retell_verify(body, retell_signing_keys(agent_id=agent.agent_id, now=time.time()), signature,
                            now_ms=int(time.time() * 1000))
    exchange = Exchange(method=method, url=full_url, request_headers=headers,
                        request_body=body.decode("utf-8", errors="replace"),
                        signature_verifies=bool(verdict),
                        signature_message="Verifies with this server's key for the agent." if verdict
                        else verdict.message)
    total = timeout_seconds or settings.WEBHOOK_TESTER_TIMEOUT_SECONDS
    timeout = httpx.Timeout(total, connect=min(total, settings.WEBHOOK_TESTER_CONNECT_TIMEOUT_SECONDS))
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            request = client.build_request(method, full_url, content=body if method not in ("GET", "DELETE") else b"",
                                           headers=headers)
            response = client.send(request, stream=True)
            try:
                exchange.ttfb_ms = round((time.perf_counter() - started) * 1000, 1)
                received = bytearray()
                for chunk in response.iter_bytes():
                    received += chunk
                    if len(received) > RESPONSE_BODY_LIMIT:
                        exchange.response_truncated = True
                        break
                    if time.perf_counter() - started > total:  # httpx's timeouts are per read, not overall
                        exchange.response_truncated = True
                        exchange.error = f"The body was still arriving after {total:g} s; cut there."
                        break
                exchange.status = response.status_code
                exchange.response_headers = dict(response.headers)
                exchange.response_body = bytes(received[:RESPONSE_BODY_LIMIT]).decode("utf-8", errors="replace")
            finally:
                response.close()
    except httpx.TimeoutException:
        exchange.error = f"No answer within the timeout ({total:g} s)."
    except httpx.HTTPError as exc:
        exchange.error = f"Could not reach {urlsplit(full_url).netloc}: {type(exc).__name__}."
    exchange.total_ms = round((time.perf_counter() - started) * 1000, 1)
    return exchange


def tester_call_prepare(*, company: Company, agent: Agent, call_id: str) -> Call:
    """The test call a test names, made (committed) before anything is sent, so that this
    server's handling of it knows it is a test. Raises TesterRefused when the id is no test id or
    names a call that is not this company's tester call."""
    if not call_id.startswith(TEST_CALL_PREFIX) or len(call_id) > retell.ID_MAX_LENGTH:
        raise TesterRefused("not_a_test_call", f"The call_id must start with {TEST_CALL_PREFIX!r}: a test never "
                                             "names a real call.")
    with transaction.atomic():
        call, _ = Call.objects.get_or_create(call_id=call_id, defaults={
            "company": company, "agent": agent, "source": Call.Source.RETELL,
            "test_origin": Call.TestOrigin.WEBHOOK_TESTER})
    if call.company_id != company.pk or not call.is_test:
        raise TesterRefused("not_a_test_call", "That call_id is taken; the sample's fresh test id is free.")
    return call


def _receipt_sent(*, company: Company, call_id: str, since) -> WebhookReceipt | None:
    return (WebhookReceipt.objects.filter(company=company, call_id=call_id, received_at__gte=since)
            .order_by("-received_at", "-id").first())


def _parsed(body_text: str):
    try:
        return json_loads(body_text.encode())
    except ValueError as exc:
        raise TesterRefused("bad_json", f"The body is not JSON: {exc}") from None


def webhook_test_send(*, actor: Actor, agent: Agent, event: str, body_text: str, url: str,
                      function: CustomFunction | None = None) -> dict:
    """Send an (edited) sample to `url`, signed as Retell signs, after making its test call.

    Returns `Exchange.as_dict()` plus `call_id`, and `receipt` ({id, status, is_test, url}) when
    this server stored one. Raises TesterRefused: `bad_json`, `agent_mismatch` (the body names
    another agent), `not_a_test_call`, `target_not_allowed`, `signature_key_missing`,
    `function_missing`. Writes an audit entry on the call and an activity line.
    """
    company = agent.company
    target_check(agent=agent, url=url)
    payload = _parsed(body_text)
    query = {}
    if event == FUNCTION_EVENT and function is not None and function.args_at_root:
        # Retell sends an args_at_root function only its arguments; the tool's query names the rest.
        query = {**function.query_params, "function": function.name, "agent_id": agent.agent_id,
                 "call_id": new_test_call_id()}
    try:
        request = retell.classify(payload, query)
    except retell.ProtocolError as exc:
        raise TesterRefused(exc.code, exc.message) from None
    if event == FUNCTION_EVENT and (request.kind != "function" or function is None
                                    or request.name != function.name):
        raise TesterRefused("function_mismatch", "The body must be a call of the function chosen.")
    if event != FUNCTION_EVENT and request.kind != "event":
        raise TesterRefused("event_mismatch", "The body must be an event {event, call}; choose the custom "
                                            "function call to send a function's.")
    if request.agent_id != agent.agent_id:
        raise TesterRefused("agent_mismatch", f"The body must name the agent tested ({agent.agent_id}).")
    tester_call_prepare(company=company, agent=agent, call_id=request.call_id)
    since = timezone.now()
    method = function.method if event == FUNCTION_EVENT and function is not None else "POST"
    if event == FUNCTION_EVENT and function is not None and not query and function.query_params:
        query = dict(function.query_params)
    exchange = signed_send(agent=agent, url=url, body=body_text.encode(), method=method, query=query or None)
    answer = {**exchange.as_dict(), "call_id": request.call_id}
    receipt = _receipt_sent(company=company, call_id=request.call_id, since=since) if is_this_server(url) else None
    if receipt is not None:
        answer["receipt"] = {"id": receipt.pk, "status": receipt.status, "is_test": receipt.is_test,
                             "error_code": receipt.error_code,
                             "url": reverse("admin:audit_webhookreceipt_change", args=[receipt.pk])}
    what = request.name if request.kind == "function" else request.event
    outcome = exchange.status if exchange.status is not None else exchange.error
    call = Call.objects.get(call_id=request.call_id)
    audit_entry_for(actor, "webhook_test", call, {"sent": {"before": None, "after": {
        "what": what, "url": exchange.url, "status": exchange.status}}})
    activity_log(company=company, kind="tester.sent", level="info" if exchange.status and exchange.status < 400
                 else "warning", message=f"Webhook tester: {what} sent to {url} by {actor.label}: {outcome}",
                 data={"agent_id": agent.agent_id, "call_id": request.call_id,
                       **({"receipt_id": receipt.pk} if receipt else {})})
    return answer


# --- function simulator ---------------------------------------------------------------------
def args_schema_errors(*, company: Company, function: CustomFunction, args) -> list[str]:
    """What is wrong with `args` under the function's JSON Schema (the company's own, as the
    editor saves it), one message per error with where it is; empty when nothing is."""
    schema = custom_function_schema(company=company, name=function.name) or {}
    if not isinstance(args, dict):
        return ["The arguments must be a JSON object."]
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for error in sorted(validator.iter_errors(args), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(arguments)"
        errors.append(f"{where}: {error.message}")
    return errors


class _Rollback(Exception):
    """Ends a dry run's transaction: everything in it is undone."""


_capturing = threading.local()


def _captured(sender, instance, created=None, **kwargs):
    writes = getattr(_capturing, "writes", None)
    if writes is None:
        return
    label = sender._meta.label
    if isinstance(instance, AuditEntry):
        writes["audit"].append({"action": instance.action, "object_type": instance.object_type,
                                "object_repr": instance.object_repr, "changes": instance.changes})
    elif isinstance(instance, ActivityLogEntry):
        writes["activity"].append({"kind": instance.kind, "level": instance.level, "message": instance.message})
    else:
        action = "delete" if created is None else ("create" if created else "update")
        writes["rows"].append({"model": label, "action": action, "pk": instance.pk, "repr": str(instance)[:200]})


post_save.connect(_captured, dispatch_uid="voice.tester.capture_save")
post_delete.connect(_captured, dispatch_uid="voice.tester.capture_delete")


@contextmanager
def _capture_writes():
    """The rows this thread saves or deletes meanwhile: {"rows", "audit", "activity"}."""
    writes = {"rows": [], "audit": [], "activity": []}
    _capturing.writes = writes
    try:
        yield writes
    finally:
        _capturing.writes = None


def function_dry_run(*, actor: Actor, company: Company, function: CustomFunction, args,
                     caller_number: str = "") -> dict:
    """Run the real handler of `function` (appointments.handlers.run_custom_function) for a test
    call, inside a transaction that is then rolled back, and tell what it would have written.

    Returns {"mode": "dry_run", "schema_errors": [...], "result": {...} | None, "spoken": str,
    "writes": {"rows", "audit", "activity"}, "elapsed_ms": float, "error": {code, message} | None}.
    Nothing it runs stays: rows, audit entries and activity lines are undone, and what would
    have happened on commit (broadcasts, tasks) never does. Writes one activity line (kept).
    """
    schema_errors = args_schema_errors(company=company, function=function, args=args)
    answer = {"mode": "dry_run", "schema_errors": schema_errors, "result": None, "spoken": "",
              "writes": {"rows": [], "audit": [], "activity": []}, "elapsed_ms": None, "error": None}
    started = time.perf_counter()
    if isinstance(args, dict):
        try:
            with _capture_writes() as writes, transaction.atomic():
                answer["result"] = run_custom_function(
                    company=company, name=function.name, args=args, call_id=new_test_call_id(),
                    caller_number=caller_number or None, is_test=True)
                raise _Rollback
        except _Rollback:
            answer["writes"] = writes
        except UnknownFunction:
            answer["error"] = {"code": "no_handler", "message": f"This server has no handler for {function.name!r}: "
                                                                "only sending it to its URL can test it."}
        except ValidationError as exc:
            answer["error"] = {"code": "invalid_arguments", "message": " ".join(exc.messages)[:500]}
    answer["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    result = answer["result"] or {}
    answer["spoken"] = result.get("message", "") if isinstance(result, dict) else ""
    activity_log(company=company, kind="simulator.dry_run", message=f"Function simulator: dry run of "
                 f"{function.name} by {actor.label}" + (f": {result.get('error')}" if result.get("error") else ""),
                 data={"function": function.name, "rolled_back_rows": len(answer["writes"]["rows"])})
    return answer


def function_test_send(*, actor: Actor, function: CustomFunction, agent: Agent, args) -> dict:
    """Send a call of `function` with `args` to the function's URL, as Retell would for a test
    call of `agent` (webhook_test_send with the sample's call). Returns its answer plus
    "schema_errors", "result" (the response body as JSON, when it is) and "spoken"."""
    company = agent.company
    if not isinstance(args, dict):
        raise TesterRefused("bad_arguments", "The arguments must be a JSON object.")
    call_id = new_test_call_id()
    if function.args_at_root:
        body = args
    else:
        body = {"name": function.name, "call": sample_call(agent=agent, call_id=call_id, ended=False), "args": args}
    answer = webhook_test_send(actor=actor, agent=agent, event=FUNCTION_EVENT, function=function,
                               body_text=json.dumps(body, ensure_ascii=False), url=function.url)
    answer["mode"] = "send"
    answer["schema_errors"] = args_schema_errors(company=company, function=function, args=args)
    response = answer.get("response") or {}
    try:
        result = json.loads(response.get("body") or "null")
    except ValueError:
        result = None
    answer["result"] = result
    answer["spoken"] = result.get("message", "") if isinstance(result, dict) else (
        result if isinstance(result, str) else "")
    return answer
