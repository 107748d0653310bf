"""Inbound provider webhooks: Retell call events and custom functions, ElevenLabs callbacks.

Every request is stored as a receipt before anything in it is trusted; then it is
checked step by step, and each refusal is a JSON error `{"error": {"code", "message"}}`
recorded on the receipt. Event work runs in Celery after the answer.
"""

import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from appointments.handlers import UnknownFunction
from audit.middleware import client_ip
from audit.models import WebhookReceipt
from audit.receipts import (UNSTORABLE, enqueue_batched, read_in_thread, receipt_processed, receipt_reject,
                            receipt_store)
from audit.services import activity_log
from audit.storable import identifier_problem, json_fit, json_loads
from config import ratelimits
from retell_config.models import tool_key_hash
from tenants.models import Company

from . import selectors, services
from .protocols import retell_webhooks as retell
from .protocols.signatures import elevenlabs_verify, retell_verify
from .tasks import receipts_process_task

Status = WebhookReceipt.Status
logger = logging.getLogger(__name__)


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, *, company: Company | None = None,
                 receipt_status: str = Status.REJECTED, provider: str = "", retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.company, self.receipt_status, self.provider = company, receipt_status, provider
        self.retry_after = retry_after

    @classmethod
    def rate_limited(cls, refused: ratelimits.Refused, *, company: Company | None = None) -> "Refusal":
        return cls(429, "rate_limited", refused.message, company=company, retry_after=refused.retry_after)

    def receipt_fields(self) -> dict:
        return {"status": self.receipt_status, "error_code": self.code, "error_message": self.message,
                "company": self.company, **({"provider": self.provider} if self.provider else {})}


@dataclass
class Checked:
    """A request that passed its checks: the state its receipt is stored in, and how it is
    answered once stored (a coroutine function: the view runs on the event loop)."""
    respond: Callable[[WebhookReceipt], Awaitable[HttpResponse]]
    status: str = Status.VERIFIED
    company: Company | None = None
    kind: str = ""
    event_type: str = ""
    call_id: str = ""
    dedupe_key: str = ""
    error_code: str = ""
    error_message: str = ""
    provider: str = ""  # the endpoint's own provider unless set (an ElevenLabs tool call to Retell's URL)
    agent_id: str = ""  # a custom-function call's agent (its rate limit counts per agent)

    def receipt_fields(self) -> dict:
        fields = {name: getattr(self, name) for name in
                  ("status", "company", "kind", "event_type", "call_id", "dedupe_key", "error_code", "error_message")}
        return {**fields, "provider": self.provider} if self.provider else fields


# Strict JSON out as in: a non-finite number raises here rather than leave as NaN or Infinity.
STRICT_JSON = {"allow_nan": False}


def error_response(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status, json_dumps_params=STRICT_JSON)


def post_only(view):
    @functools.wraps(view)
    async def wrapper(request, *args, **kwargs):
        if request.method != "POST":
            response = error_response(405, "method_not_allowed", "Only POST is accepted here.")
            response["Allow"] = "POST"
            return response
        return await view(request, *args, **kwargs)

    return wrapper


async def _refused(receipt: WebhookReceipt, refusal: Refusal) -> JsonResponse:
    if refusal.company is not None and refusal.status in (401, 403):
        await sync_to_async(activity_log)(company=refusal.company, kind="webhook.rejected", level="warning",
                                          message=f"Webhook rejected: {refusal.message}",
                                          data={"receipt_id": receipt.pk, "status": refusal.status})
    response = error_response(refusal.status, refusal.code, refusal.message)
    if refusal.retry_after is not None:
        response["Retry-After"] = str(refusal.retry_after)
    return response


def _over_address_limit(request) -> Refusal | None:
    """The sender's address over its limit (function.address on the custom-function URL, else
    webhook.address); Retell's published addresses are not counted."""
    match = getattr(request, "resolver_match", None)
    name = "function.address" if match is not None and match.url_name == "retell-custom-function" \
        else "webhook.address"
    refused = ratelimits.check_address(name, client_ip(request), retell=True)
    return Refusal.rate_limited(refused) if refused is not None else None


def _over_credential_limit(checked: Checked) -> Refusal | None:
    """A checked request over its agent's (a custom function) or its company's limit."""
    if checked.company is None:
        return None
    if checked.kind == "function" and checked.agent_id:
        refused = ratelimits.check("function.agent", checked.agent_id, company=checked.company)
    else:
        refused = ratelimits.check("webhook.company", str(checked.company.pk), company=checked.company)
    return Refusal.rate_limited(refused, company=checked.company) if refused is not None else None


async def _answered(status: int, payload: dict | None = None) -> HttpResponse:
    return (HttpResponse(status=status) if payload is None
            else JsonResponse(payload, status=status, json_dumps_params=STRICT_JSON))


def _parse_json(body: bytes):
    # The workers read stored bodies with the same reader, so what is accepted here is processed there.
    try:
        return json_loads(body)
    except ValueError:
        raise Refusal(400, "bad_json", "The body is not strict JSON (RFC 8259: no NaN or Infinity, no number "
                                       "beyond a double, no lone surrogate, at most 1024 levels deep).") from None


def _unstorable() -> JsonResponse:
    return error_response(400, UNSTORABLE, "The request holds data that cannot be stored; it was kept without "
                                           "what it names and not handled.")


def _named_in(named: Callable[[object, dict], dict] | None, body: bytes, request) -> dict:
    """What a refused request's body names ({kind, event_type, call_id}), when it can be read."""
    if named is None:
        return {}
    try:
        return named(json_loads(body), request.GET.dict())
    except ValueError:
        return {}


def receipt_first(provider: str, *, named: Callable[[object, dict], dict] | None = None):
    """The shape of every inbound endpoint: check the request (reads only), store it as a
    receipt with what the check found in one insert, then answer. Whatever the check
    finds, or if it fails, the request is stored before it is answered; a Refusal is
    recorded on the receipt and answered as a JSON error, the receipt keeping what a
    readable body names (`named(payload, query)`: kind, event_type, call_id) so that a
    refused request is still told apart in the receipts list.

    The view runs on the event loop: a webhook whose agent is cached never takes a thread or
    a database connection of its own (the receipt writer stores it). A check may be a plain
    function when it must read the database; it then runs in a thread."""
    def decorate(check):
        run_check = check if iscoroutinefunction(check) else read_in_thread(check)

        @csrf_exempt
        @post_only
        @functools.wraps(check)
        async def view(request):
            try:
                return await handle(request)
            except DatabaseError:  # nothing acknowledged that may not be stored: the sender retries
                logger.exception("%s request to %s could not be stored or handled", provider, request.path)
                response = error_response(503, "unavailable", "The request could not be stored now; please retry.")
                response["Retry-After"] = "5"
                return response

        async def handle(request):
            limit = settings.WEBHOOK_MAX_BODY_BYTES
            body = request.read(limit + 1)  # already in memory: the ASGI handler read it before routing
            store = functools.partial(receipt_store, provider=provider, endpoint=request.path,
                                      headers=request.headers, remote_addr=client_ip(request),
                                      query=request.META.get("QUERY_STRING", ""))
            if len(body) > limit:
                refusal = Refusal(413, "body_too_large", f"The body is larger than {limit} bytes.")
                return await _refused(await store(body=body[:limit], body_truncated=True, **refusal.receipt_fields()),
                                      refusal)
            # The limits' cache is local memory or one Redis round trip: asked on the event loop.
            over = _over_address_limit(request)
            if over is not None:  # stored all the same, refused as such: nothing received is lost
                return await _refused(await store(body=body, **_named_in(named, body, request),
                                                  **over.receipt_fields()), over)
            try:
                checked = await run_check(request, body)
            except Refusal as refusal:
                return await _refused(await store(body=body, **_named_in(named, body, request),
                                                  **refusal.receipt_fields()), refusal)
            except Exception as exc:  # a fault of ours: kept for the sweeper's operator, and the sender retries
                receipt = await store(body=body, error_code="check_failed", error_message=type(exc).__name__)
                logger.exception("Checking %s receipt %s failed", provider, receipt.pk)
                return error_response(500, "internal_error", "The request could not be checked; please retry.")
            over = _over_credential_limit(checked)
            if over is not None:  # what the check found is kept, but no dedupe key: the retry is not a duplicate
                fields = {**checked.receipt_fields(), **over.receipt_fields(), "dedupe_key": ""}
                return await _refused(await store(body=body, **fields), over)
            receipt = await store(body=body, **checked.receipt_fields())
            if receipt.error_code == UNSTORABLE:  # stored without what the check found: nothing to act on
                return _unstorable()
            try:
                return await checked.respond(receipt)
            except Refusal as refusal:
                await sync_to_async(receipt_reject)(receipt=receipt, code=refusal.code, message=refusal.message,
                                                    status=refusal.receipt_status)
                return await _refused(receipt, refusal)
        return view
    return decorate


async def _queue_if_verified(receipt: WebhookReceipt) -> None:
    """Hand a verified receipt to Celery (it is committed already; a duplicate is not processed again)."""
    if receipt.status == Status.VERIFIED:
        await enqueue_batched(receipts_process_task, receipt.pk)


# --- Retell -------------------------------------------------------------------------
@receipt_first(WebhookReceipt.Provider.RETELL, named=retell.named)
async def retell_webhook(request, body: bytes) -> Checked:
    """Call events and custom-function calls (both URLs take both; the body tells them apart)."""
    if _tool_key_sent(request):
        return await _elevenlabs_tool_call(request, body)
    payload = _parse_json(body)
    try:
        call_request = retell.classify(payload, request.GET.dict())
    except retell.ProtocolError as exc:
        raise Refusal(400, exc.code, exc.message) from None
    if not call_request.agent_id:
        raise Refusal(400, "agent_missing", "The request names no agent_id.")
    agent, verdict = None, None
    for fresh in (False, True):  # a refusal is always decided on fresh rows, not the short cache
        agent = await selectors.webhook_agent(agent_id=call_request.agent_id, fresh=fresh)
        if agent is None:
            continue
        company = agent.company
        now = time.time()
        verdict = retell_verify(body, agent.signing_keys(now), request.headers.get("X-Retell-Signature"),
                                now_ms=int(now * 1000))
        if verdict:
            break
    if agent is None:
        raise Refusal(404, "unknown_agent", "No agent with that agent_id is configured here.")
    if company.retell_require_published_ip and client_ip(request) not in settings.RETELL_WEBHOOK_IPS:
        raise Refusal(403, "ip_not_allowed", "Requests for this company are accepted only from Retell's "
                                             "published address.", company=company)
    if not verdict:
        raise Refusal(401, verdict.code, verdict.message, company=company)
    if call_request.kind == "event":
        return _retell_event(company, call_request, body)
    return _retell_function(company, call_request)


def _retell_event(company: Company, call_request: retell.RetellRequest, body: bytes) -> Checked:
    if call_request.event not in retell.KNOWN_EVENTS:
        message = f"Event type {call_request.event!r} is not handled."
        return Checked(respond=lambda receipt: _answered(202, {"status": "ignored", "message": message}),
                       status=Status.IGNORED, company=company, kind="event", event_type=call_request.event,
                       call_id=call_request.call_id, error_code="unknown_event",
                       error_message=f"{message} Stored and ignored.")
    if not call_request.call_id:
        raise Refusal(400, "call_id_missing", "The event's call has no call_id.", company=company)

    async def respond(receipt: WebhookReceipt) -> HttpResponse:
        await _queue_if_verified(receipt)
        return HttpResponse(status=204)

    return Checked(respond=respond, company=company, kind="event", event_type=call_request.event,
                   call_id=call_request.call_id,
                   dedupe_key=retell.dedupe_key(call_request, body))


def _retell_function(company: Company, call_request: retell.RetellRequest) -> Checked:
    _, problems = json_fit(call_request.args)
    if problems:  # the handlers would store and query these: refused, not cleaned, since cleaning changes meaning
        raise Refusal(400, "invalid_arguments", "The function's arguments hold what no argument can: "
                      + "; ".join(problems) + ".", company=company)

    @sync_to_async
    def respond(receipt: WebhookReceipt) -> HttpResponse:
        # The handlers read the company's hours, zone and language: load it whole (the agent
        # cache holds a narrow copy).
        whole_company = Company.objects.get(pk=company.pk)
        try:
            result = services.custom_function_run(receipt=receipt, company=whole_company, request=call_request)
            response = JsonResponse(result, status=200, json_dumps_params={"ensure_ascii": False, **STRICT_JSON})
        except UnknownFunction:
            raise Refusal(400, "unknown_function", f"No custom function named {call_request.name!r}.",
                          company=whole_company) from None
        except ValidationError as exc:  # an argument the model refuses (a name longer than its column)
            raise Refusal(400, "invalid_arguments", "The function's arguments were refused: "
                          + " ".join(exc.messages)[:300], company=whole_company) from None
        except Exception as exc:  # Retell retries a failed function call; the receipt says why this one failed
            logger.exception("Custom function %s failed (receipt %s)", call_request.name, receipt.pk)
            receipt_reject(receipt=receipt, code="function_failed", message=type(exc).__name__,
                           status=Status.FAILED)
            return error_response(500, "function_failed", "The function could not be run; please try again.")
        receipt_processed(receipt=receipt)
        return response

    return Checked(respond=respond, company=company, kind="function", event_type=call_request.name,
                   call_id=call_request.call_id, agent_id=call_request.agent_id)


# --- ElevenLabs webhook tools (exported by retell_config, sent to the custom-function URL) ------
def _tool_key_sent(request) -> bool:
    """An ElevenLabs webhook tool authenticates with its agent's tool key as a bearer token; Retell
    signs instead (a request that has a Retell signature is Retell's)."""
    return "X-Retell-Signature" not in request.headers and "Authorization" in request.headers


async def _elevenlabs_tool_call(request, body: bytes) -> Checked:
    """The arguments of an ElevenLabs webhook tool: the agent named by ?agent_id= must hold the
    key sent as `Authorization: Bearer <key>` (compared as SHA-256 digests, in constant time);
    then the same function handlers run as for Retell. Stored, refused or not, as an ElevenLabs
    receipt."""
    provider = WebhookReceipt.Provider.ELEVENLABS
    try:
        checked = await _elevenlabs_tool_checked(request, body)
    except Refusal as refusal:
        refusal.provider = provider
        raise
    checked.provider = provider
    return checked


async def _elevenlabs_tool_checked(request, body: bytes) -> Checked:
    try:
        call_request = retell.tool_call(_parse_json(body), request.GET.dict())
    except retell.ProtocolError as exc:
        raise Refusal(400, exc.code, exc.message) from None
    if not call_request.agent_id:
        raise Refusal(400, "agent_missing", "The request names no agent_id.")
    agent = await read_in_thread(selectors.tool_key_agent)(call_request.agent_id)
    if agent is None:
        raise Refusal(404, "unknown_agent", "No agent with that agent_id is configured here.")
    scheme, _, key = request.headers["Authorization"].partition(" ")
    if not (scheme.lower() == "bearer" and agent.elevenlabs_tool_key_hash
            and hmac.compare_digest(tool_key_hash(key.strip()), agent.elevenlabs_tool_key_hash)):
        raise Refusal(401, "tool_key_invalid", "Authorization does not carry this agent's ElevenLabs tool key "
                                               "(each ElevenLabs export makes a new one).", company=agent.company)
    return _retell_function(agent.company, call_request)


# --- ElevenLabs -------------------------------------------------------------------------
ELEVENLABS_EVENTS = frozenset({"post_call_transcription"})


def _elevenlabs_key(company: Company) -> str:
    return company.elevenlabs_api_key.reveal() if company.elevenlabs_api_key else settings.ELEVENLABS_API_KEY


def _elevenlabs_company(request) -> Company:
    """`?company=<slug>` names the company (the key or signature then proves it); without it the
    X-API-Key must match exactly one company's key."""
    slug = request.GET.get("company")
    if slug:
        # A value no slug can be is no company's (and would not survive the query: a NUL).
        fits = not identifier_problem(slug, Company._meta.get_field("slug").max_length)
        company = Company.objects.filter(slug=slug, is_active=True).first() if fits else None
        if company is None:
            raise Refusal(404, "unknown_company", "No company with that slug is configured here.")
        return company
    presented = request.headers.get("X-API-Key", "")
    if not presented:
        raise Refusal(401, "api_key_missing", "Send X-API-Key, or name the company with ?company=<slug>.")
    matches = [c for c in Company.objects.filter(is_active=True).exclude(elevenlabs_api_key=None)
               if hmac.compare_digest(c.elevenlabs_api_key.reveal().encode(), presented.encode())]
    if len(matches) != 1:
        raise Refusal(401, "api_key_invalid" if not matches else "company_ambiguous",
                      "The X-API-Key matches no company." if not matches
                      else "Several companies share this key: name one with ?company=<slug>.")
    return matches[0]


def _elevenlabs_named(payload, query: dict) -> dict[str, str]:
    """What a callback body names: its type and conversation (see `receipt_first`)."""
    if not isinstance(payload, dict):
        return {}
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    conversation_id = data.get("conversation_id")
    if isinstance(conversation_id, int) and not isinstance(conversation_id, bool):
        conversation_id = str(conversation_id)
    return {"kind": "event", "event_type": payload["type"] if isinstance(payload.get("type"), str) else "",
            "call_id": conversation_id if isinstance(conversation_id, str) else ""}


@receipt_first(WebhookReceipt.Provider.ELEVENLABS, named=_elevenlabs_named)
def elevenlabs_callback(request, body: bytes) -> Checked:
    """ElevenLabs callbacks: X-API-Key and, when the company has a webhook secret, ElevenLabs-Signature."""
    payload = _parse_json(body)
    company = _elevenlabs_company(request)
    secret = company.elevenlabs_webhook_secret.reveal() if company.elevenlabs_webhook_secret else ""
    presented = request.headers.get("X-API-Key")
    if secret:
        verdict = elevenlabs_verify(body, secret, request.headers.get("ElevenLabs-Signature"), now_s=int(time.time()))
        if not verdict:
            raise Refusal(401, verdict.code, verdict.message, company=company)
    if presented is not None or not secret:
        # The key is required unless a valid signature stands in for it; sent, it must match.
        expected = _elevenlabs_key(company)
        if not expected or not hmac.compare_digest(expected.encode(), (presented or "").encode()):
            raise Refusal(401, "api_key_invalid", "X-API-Key does not match the company's ElevenLabs key.",
                          company=company)
    if not isinstance(payload, dict):
        raise Refusal(400, "bad_payload", "The body must be a JSON object.", company=company)
    event_type = payload.get("type")
    if not isinstance(event_type, str):
        raise Refusal(400, "invalid_field", "type must be a string.", company=company)
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    conversation_id = data.get("conversation_id")
    if isinstance(conversation_id, int) and not isinstance(conversation_id, bool):
        conversation_id = str(conversation_id)
    if conversation_id not in (None, "") and (not isinstance(conversation_id, str)
                                              or identifier_problem(conversation_id, retell.ID_MAX_LENGTH)):
        raise Refusal(400, "invalid_field", f"data.conversation_id must be text of at most {retell.ID_MAX_LENGTH} "
                                            "characters without control characters.", company=company)
    if event_type not in ELEVENLABS_EVENTS or not conversation_id:
        return Checked(respond=lambda receipt: _answered(200, {"status": "ignored"}),
                       status=Status.IGNORED, company=company, kind="event", event_type=event_type,
                       error_code="unhandled_type",
                       error_message=f"Callback type {event_type!r} is stored, not processed.")

    async def respond(receipt: WebhookReceipt) -> HttpResponse:
        await _queue_if_verified(receipt)
        return JsonResponse({"status": "received"}, status=200)

    return Checked(respond=respond, company=company, kind="event", event_type=event_type,
                   call_id=conversation_id, dedupe_key=f"{event_type}:{conversation_id}")
