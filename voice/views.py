"""Inbound provider webhooks: Retell call events and custom functions, ElevenLabs callbacks.

Every request is stored as a receipt before anything in it is trusted; then it is
checked step by step, and each refusal is a JSON error `{"error": {"code", "message"}}`
recorded on the receipt. Event work runs in Celery after the answer.
"""

import functools
import hashlib
import hmac
import json
import logging
import time

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from appointments.handlers import UnknownFunction
from audit.middleware import client_ip
from audit.models import WebhookReceipt
from audit.services import activity_log, enqueue_batched, receipt_accept, receipt_processed, receipt_reject, receipt_store
from retell_config.models import Agent
from tenants.models import Company

from . import selectors, services
from .protocols import retell_webhooks as retell
from .protocols.signatures import elevenlabs_verify, retell_verify
from .tasks import receipts_process_task

Status = WebhookReceipt.Status
logger = logging.getLogger(__name__)


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, *, company: Company | None = None,
                 receipt_status: str = Status.REJECTED) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.company, self.receipt_status = company, receipt_status


def error_response(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def post_only(view):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method != "POST":
            response = error_response(405, "method_not_allowed", "Only POST is accepted here.")
            response["Allow"] = "POST"
            return response
        return view(request, *args, **kwargs)

    return wrapper


def _store(request, provider: str) -> tuple[WebhookReceipt, bytes]:
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    body = request.read(limit + 1)
    too_big = len(body) > limit
    receipt = receipt_store(provider=provider, endpoint=request.path, body=body[:limit], body_truncated=too_big,
                            headers=request.headers, remote_addr=client_ip(request),
                            query=request.META.get("QUERY_STRING", ""))
    if too_big:
        raise _Stored(receipt, Refusal(413, "body_too_large", f"The body is larger than {limit} bytes."))
    return receipt, body


class _Stored(Exception):
    def __init__(self, receipt: WebhookReceipt, refusal: Refusal) -> None:
        self.receipt, self.refusal = receipt, refusal


def _refused(receipt: WebhookReceipt, refusal: Refusal) -> JsonResponse:
    receipt_reject(receipt=receipt, code=refusal.code, message=refusal.message, company=refusal.company,
                   status=refusal.receipt_status)
    if refusal.company is not None and refusal.status in (401, 403):
        activity_log(company=refusal.company, kind="webhook.rejected", level="warning",
                     message=f"Webhook rejected: {refusal.message}", data={"receipt_id": receipt.pk})
    return error_response(refusal.status, refusal.code, refusal.message)


def _parse_json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "bad_json", "The body is not valid JSON.") from None


def receipt_first(provider: str):
    """The shape of every inbound endpoint: store the request as a receipt before anything
    else, then check and handle it; a Refusal is recorded on the receipt and answered as
    a JSON error."""
    def decorate(handle):
        @csrf_exempt
        @post_only
        @functools.wraps(handle)
        def view(request):
            try:
                receipt, body = _store(request, provider)
            except _Stored as stored:
                return _refused(stored.receipt, stored.refusal)
            try:
                return handle(request, receipt, body)
            except Refusal as refusal:
                return _refused(receipt, refusal)
        return view
    return decorate


def _queue(receipt: WebhookReceipt) -> None:
    transaction.on_commit(lambda: enqueue_batched(receipts_process_task, receipt.pk))


# --- Retell -------------------------------------------------------------------------
@receipt_first(WebhookReceipt.Provider.RETELL)
def retell_webhook(request, receipt: WebhookReceipt, body: bytes):
    """Call events and custom-function calls (both URLs take both; the body tells them apart)."""
    payload = _parse_json(body)
    try:
        call_request = retell.classify(payload, request.GET.dict())
    except retell.ProtocolError as exc:
        raise Refusal(400, exc.code, exc.message) from None
    if not call_request.agent_id:
        raise Refusal(400, "agent_missing", "The request names no agent_id.")
    agent, verdict = None, None
    for fresh in (False, True):  # a refusal is always decided on fresh rows, not the short cache
        agent = selectors.webhook_agent(agent_id=call_request.agent_id, fresh=fresh)
        if agent is None:
            continue
        company = agent.company
        key = company.retell_api_key.reveal() if company.retell_api_key else settings.RETELL_API_KEY
        verdict = retell_verify(body, key, request.headers.get("X-Retell-Signature"),
                                now_ms=int(time.time() * 1000))
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
        return _retell_event(receipt, company, call_request, body)
    return _retell_function(receipt, company, agent, call_request)


def _retell_event(receipt: WebhookReceipt, company: Company, call_request: retell.RetellRequest, body: bytes):
    if call_request.event not in retell.KNOWN_EVENTS:
        receipt_reject(receipt=receipt, code="unknown_event", company=company, status=Status.IGNORED,
                       message=f"Event type {call_request.event!r} is not handled; stored and ignored.",
                       kind="event", event_type=call_request.event[:64], call_id=call_request.call_id[:128])
        return JsonResponse({"status": "ignored", "message": f"Event type {call_request.event!r} is not handled."},
                            status=202)
    if not call_request.call_id:
        raise Refusal(400, "call_id_missing", "The event's call has no call_id.", company=company)
    key = retell.dedupe_key(call_request, hashlib.sha256(body).hexdigest()[:32])
    if receipt_accept(receipt=receipt, company=company, kind="event", event_type=call_request.event,
                      call_id=call_request.call_id, dedupe_key=key):
        _queue(receipt)
    return HttpResponse(status=204)


def _retell_function(receipt: WebhookReceipt, company: Company, agent: Agent, call_request: retell.RetellRequest):
    # The handlers read the company's hours, zone and language: load it whole (the agent cache holds a
    # narrow copy).
    company = Company.objects.get(pk=company.pk)
    receipt_accept(receipt=receipt, company=company, kind="function", event_type=call_request.name,
                   call_id=call_request.call_id)
    try:
        result = services.custom_function_run(receipt=receipt, company=company, request=call_request)
    except UnknownFunction:
        raise Refusal(400, "unknown_function", f"No custom function named {call_request.name!r}.",
                      company=company, receipt_status=Status.REJECTED) from None
    except Exception as exc:  # Retell retries a failed function call; the receipt says why this one failed
        logger.exception("Custom function %s failed (receipt %s)", call_request.name, receipt.pk)
        receipt_reject(receipt=receipt, code="function_failed", message=type(exc).__name__, status=Status.FAILED)
        return error_response(500, "function_failed", "The function could not be run; please try again.")
    receipt_processed(receipt=receipt)
    return JsonResponse(result, status=200, json_dumps_params={"ensure_ascii": False})


# --- ElevenLabs -------------------------------------------------------------------------
ELEVENLABS_EVENTS = frozenset({"post_call_transcription"})




def _elevenlabs_key(company: Company) -> str:
    return company.elevenlabs_api_key.reveal() if company.elevenlabs_api_key else settings.ELEVENLABS_API_KEY


def _elevenlabs_company(request) -> Company:
    """`?company=<slug>` names the company (the key or signature then proves it); without it the
    X-API-Key must match exactly one company's key."""
    slug = request.GET.get("company")
    if slug:
        company = Company.objects.filter(slug=slug, is_active=True).first()
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


@receipt_first(WebhookReceipt.Provider.ELEVENLABS)
def elevenlabs_callback(request, receipt: WebhookReceipt, body: bytes):
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
    event_type = payload.get("type") if isinstance(payload, dict) else None
    data = payload.get("data") if isinstance(payload, dict) and isinstance(payload.get("data"), dict) else {}
    conversation_id = str(data.get("conversation_id") or "")
    if event_type not in ELEVENLABS_EVENTS or not conversation_id:
        receipt_reject(receipt=receipt, code="unhandled_type", company=company, status=Status.IGNORED,
                       message=f"Callback type {event_type!r} is stored, not processed.", kind="event",
                       event_type=str(event_type or "")[:64])
        return JsonResponse({"status": "ignored"}, status=200)
    if receipt_accept(receipt=receipt, company=company, kind="event", event_type=event_type,
                      call_id=conversation_id, dedupe_key=f"{event_type}:{conversation_id}"):
        _queue(receipt)
    return JsonResponse({"status": "received"}, status=200)
