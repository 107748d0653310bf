"""Twilio's voice webhooks: the incoming call and its status callbacks.

Both are stored as receipts first (provider "twilio"), like every inbound webhook
(`voice.views.receipt_first`). The company and agent come from the called number (`To`, a
`TwilioNumber`); X-Twilio-Signature is checked with the twilio package's RequestValidator and
the company's auth token over the public URL Twilio called (PUBLIC_BASE_URL, else the scheme
and host of the request as seen behind the TLS proxy), with the path and query received.

- `POST /api/voice-agent/incoming` answers TwiML: `<Connect><Stream url="wss://…/voice-agent/
  media-stream">` with the stream's one-time token as a `<Parameter>` (voice.twilio_tokens),
  or, for a number not known here, a company with Twilio off or a number no agent answers, a
  short apology in the company's language and `<Hangup/>`. A bad signature is 403.
- `POST /api/voice-agent/status` answers 204 and applies the callback to the call in Celery
  (voice.services.call_apply_twilio_status); a repeat (same call and SequenceNumber) is a
  duplicate and is not applied again.
"""

import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpResponse

from audit.models import WebhookReceipt
from audit.receipts import receipt_processed, receipt_reject
from audit.services import activity_log
from audit.storable import identifier_problem
from tenants.models import Company

from . import selectors, services
from .models import TwilioNumber
from .protocols import twilio_webhooks as twilio
from .twilio_tokens import STREAM_TOKEN_PARAMETER, stream_token_mint
from .views import Checked, Refusal, _queue_if_verified, receipt_first

Status = WebhookReceipt.Status
logger = logging.getLogger(__name__)

CALL_SID_MAX_LENGTH = 64  # Twilio's are 34 characters: CA and 32 hex digits
# What a caller hears when this server will not take the call, by the company's language.
UNAVAILABLE = {
    "de": "Diese Nummer ist zurzeit leider nicht erreichbar. Bitte versuchen Sie es später noch einmal. "
          "Auf Wiederhören.",
    "en": "We are sorry, this number cannot take your call right now. Please try again later. Goodbye.",
}
SAY_LANGUAGES = {"de": "de-DE", "en": "en-US"}


def _twiml(text: str) -> HttpResponse:
    return HttpResponse(text, content_type="text/xml; charset=utf-8")


def goodbye_twiml(company: Company | None) -> str:
    """The apology (in the company's language, else the platform's) and `<Hangup/>`."""
    language = company.language if company is not None and company.language in UNAVAILABLE \
        else settings.LANGUAGE_CODE
    language = language if language in UNAVAILABLE else "en"
    return twilio.goodbye_twiml(message=UNAVAILABLE[language], language=SAY_LANGUAGES[language])


def _form(body: bytes) -> twilio.Form:
    try:
        return twilio.form_parse(body)
    except twilio.FormError as exc:
        raise Refusal(400, "bad_form", str(exc)) from None


def _verified_url(request, form: twilio.Form, company: Company) -> str:
    """The public URL the signature is valid for; Refusal 403 when there is none."""
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        raise Refusal(403, "signature_missing", "X-Twilio-Signature is missing.", company=company)
    try:
        host = request.get_host()
    except DisallowedHost:
        host = ""
    urls = twilio.public_urls(
        full_path=request.get_full_path(), public_base_url=settings.PUBLIC_BASE_URL, scheme=request.scheme,
        host=host, forwarded_proto=request.headers.get("X-Forwarded-Proto", ""),
        forwarded_host=request.headers.get("X-Forwarded-Host", ""), behind_proxy=settings.BEHIND_TLS_PROXY)
    token = company.twilio_auth_token.reveal() if company.twilio_auth_token else ""
    url = twilio.signature_check(auth_token=token, urls=urls, params=form, signature=signature)
    if url is None:
        raise Refusal(403, "signature_invalid", "X-Twilio-Signature is not valid for the URL called and the "
                                                "parameters sent, with the company's Twilio auth token.",
                      company=company)
    return url


def _call_sid(form: twilio.Form, company: Company) -> str:
    call_sid = form.first("CallSid")
    if not call_sid:
        raise Refusal(400, "call_sid_missing", "The request names no CallSid.", company=company)
    if identifier_problem(call_sid, CALL_SID_MAX_LENGTH):
        raise Refusal(400, "invalid_field", f"CallSid must be text of at most {CALL_SID_MAX_LENGTH} characters "
                                            "without control characters.", company=company)
    return call_sid


def _goodbye(company: Company | None, code: str, message: str, call_sid: str = "") -> Checked:
    """Stored as refused, answered 200 with the apology (Twilio plays it; a 4xx or 5xx would make it
    play its own error message)."""
    async def respond(receipt: WebhookReceipt) -> HttpResponse:
        if company is not None:
            await sync_to_async(activity_log)(company=company, kind="twilio.call_refused", level="warning",
                                              message=f"Twilio call not taken: {message}",
                                              data={"receipt_id": receipt.pk, "call_id": call_sid})
        return _twiml(goodbye_twiml(company))

    return Checked(respond=respond, status=Status.REJECTED, company=company, kind="call", event_type="incoming",
                   call_id=call_sid, error_code=code, error_message=message)


@receipt_first(WebhookReceipt.Provider.TWILIO)
def twilio_incoming(request, body: bytes) -> Checked:
    """A call to one of the companies' Twilio numbers: TwiML that connects its media stream."""
    form = _form(body)
    number = selectors.twilio_number_called(form.first("To"))
    if number is None:
        return _goodbye(None, "unknown_number", "No Twilio number here is the number called (To).")
    company = number.company
    if not company.twilio_enabled:
        return _goodbye(company, "twilio_disabled", f"calls over Twilio are off for {company.name} "
                                                    f"(called {number.phone_number}).")
    if not company.twilio_auth_token:
        return _goodbye(company, "twilio_not_configured", f"{company.name} has no Twilio auth token, so the "
                                                          f"call to {number.phone_number} cannot be verified.")
    url = _verified_url(request, form, company)
    call_sid = _call_sid(form, company)
    if number.agent is None:
        return _goodbye(company, "no_agent", f"no agent answers {number.phone_number}.", call_sid)
    return Checked(respond=sync_to_async(lambda receipt: _connect(receipt, number, form, call_sid, url)),
                   company=company, kind="call", event_type="incoming", call_id=call_sid)


def _connect(receipt: WebhookReceipt, number: TwilioNumber, form: twilio.Form, call_sid: str,
             url: str) -> HttpResponse:
    company, agent = number.company, number.agent
    notes: list[str] = []
    try:
        services.call_start_twilio(company=company, agent=agent, call_sid=call_sid, form=form,
                                   received_at=receipt.received_at, notes=notes)
    except services.CallOfAnotherCompany:
        receipt_reject(receipt=receipt, code="call_of_another_company",
                       message="The CallSid is another company's call.")
        return _twiml(goodbye_twiml(company))
    except Exception as exc:  # a fault of ours: the caller hears the apology, the receipt says why
        logger.exception("Answering Twilio call %s failed (receipt %s)", call_sid, receipt.pk)
        receipt_reject(receipt=receipt, code="answer_failed", message=type(exc).__name__, status=Status.FAILED)
        return _twiml(goodbye_twiml(company))
    token = stream_token_mint(company_id=company.pk, agent_id=agent.pk, call_sid=call_sid)
    stream_url = twilio.websocket_url(url, selectors.TWILIO_MEDIA_STREAM_PATH)
    receipt_processed(receipt=receipt, notes=notes)
    activity_log(company=company, kind="twilio.call_incoming",
                 message=f"Twilio call to {number.phone_number}: {agent.name} answers",
                 data={"receipt_id": receipt.pk, "call_id": call_sid, "agent_id": agent.agent_id,
                       "twilio_number_id": number.pk})
    return _twiml(twilio.stream_twiml(stream_url=stream_url, parameters={STREAM_TOKEN_PARAMETER: token}))


@receipt_first(WebhookReceipt.Provider.TWILIO)
def twilio_status(request, body: bytes) -> Checked:
    """A call's status callback: stored, deduplicated by call and SequenceNumber, applied in Celery."""
    form = _form(body)
    number = selectors.twilio_number_called(form.first("To"))
    if number is None:
        raise Refusal(404, "unknown_number", "No Twilio number here is the number called (To).")
    company = number.company
    _verified_url(request, form, company)
    call_sid = _call_sid(form, company)
    call_status = form.first("CallStatus")
    if not call_status:
        raise Refusal(400, "call_status_missing", "The status callback has no CallStatus.", company=company)
    sequence = twilio.sequence_number(form)

    async def respond(receipt: WebhookReceipt) -> HttpResponse:
        await _queue_if_verified(receipt)
        return HttpResponse(status=204)

    return Checked(respond=respond, company=company, kind="event", event_type=twilio.status_event(call_status),
                   call_id=call_sid,
                   dedupe_key=f"status:{call_sid}:{call_status if sequence is None else sequence}")
