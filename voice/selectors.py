"""Reads of the voice app: the live call socket's (synchronous: callers on the event loop
wrap them in database_sync_to_async), the Retell webhook's and the Twilio webhooks'."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings

from audit.receipts import read_in_thread
from retell_config.models import Agent, WebhookConfig
from tenants.models import Company

from appointments.selectors import phone_region

from .dialog.base import AgentInfo, CallContext, CompanyInfo
from .dialog.catalogue import company_services
from .models import Call, TwilioNumber


def agent_by_socket_token(token: str) -> Agent | None:
    """The agent whose socket URL carries this token (its company active), else None."""
    if not token:
        return None
    return (Agent.objects.select_related("company")
            .filter(socket_token=token, company__is_active=True).first())


def plain_path_enabled_anywhere() -> bool:
    """Does any active company accept the plain /retell-llm/<call_id> path?"""
    return Company.objects.filter(is_active=True, retell_llm_plain_path_enabled=True).exists()


def agent_for_plain_path(agent_id: str) -> Agent | None:
    """The agent call_details named, if its company accepts the plain path."""
    if not isinstance(agent_id, str) or not agent_id:
        return None
    return (Agent.objects.select_related("company")
            .filter(agent_id=agent_id, company__is_active=True, company__retell_llm_plain_path_enabled=True)
            .first())


def call_context(*, agent: Agent, call_id: str) -> CallContext:
    """What the dialog engines may know of the call's company and agent, as plain data."""
    company = agent.company
    context = CallContext(
        call_id=call_id,
        company=CompanyInfo(
            id=company.pk, name=company.name, phone=company.phone, address=company.address,
            opening_hours=company.opening_hours or {}, timezone=company.timezone, language=company.language,
            region=phone_region(company),
            llm_base_url=company.llm_base_url, llm_model=company.llm_model, llm_api_key=company.llm_api_key),
        agent=AgentInfo(
            id=agent.pk, agent_id=agent.agent_id, name=agent.name, language=agent.language,
            begin_message=agent.begin_message, general_prompt=agent.general_prompt,
            custom_instructions=agent.custom_instructions, dialog_engine=agent.dialog_engine),
    )
    context.services = company_services(company_id=company.pk, language=context.language, timezone=company.timezone)
    context.test_origin = call_test_origin(company_id=company.pk, call_id=call_id)
    # A running prompt experiment gives the call its variant (the caller's number known from the Call row).
    from experiments.services import experiment_apply

    experiment_apply(context, call_caller_number(company_id=company.pk, call_id=call_id))
    # A scenario run against an unsaved draft speaks the draft, whatever variant it drew.
    if context.test_origin == Call.TestOrigin.SCENARIO:
        _apply_prompt_draft(context, company_id=company.pk, call_id=call_id)
    return context


def _apply_prompt_draft(context: CallContext, *, company_id: int, call_id: str) -> None:
    """A scenario run against an unsaved prompt draft: that call, and only it, speaks with the draft's
    texts (ScenarioRun.DRAFT_FIELDS); the agent's row is not touched."""
    from .models import ScenarioRun

    draft = (ScenarioRun.objects.filter(company_id=company_id, call_id=call_id)
             .values_list("prompt_draft", flat=True).first()) or {}
    changed = {name: draft[name] for name in ScenarioRun.DRAFT_FIELDS if isinstance(draft.get(name), str)}
    if changed:
        context.agent = dataclasses.replace(context.agent, **changed)


def call_caller_number(*, company_id: int, call_id: str) -> str | None:
    """The caller's number as the call's row holds it (an inbound call's from_number, an outbound
    call's to_number), or None when the row or the number is not known yet."""
    row = (Call.objects.filter(company_id=company_id, call_id=call_id)
           .values_list("direction", "from_number", "to_number").first()) if call_id else None
    if row is None:
        return None
    direction, from_number, to_number = row
    return (to_number if direction == "outbound" else from_number) or None


def call_test_origin(*, company_id: int, call_id: str) -> str:
    """Which testing tool made the call (Call.TestOrigin value), or "" for a real caller's call.

    A testing tool creates its Call row before the call's first event, so the mark comes from
    this server, never from what a payload claims.
    """
    if not call_id:
        return ""
    return (Call.objects.filter(company_id=company_id, call_id=call_id)
            .values_list("test_origin", flat=True).first() or "")


def agent_socket_url(agent: Agent) -> str:
    """The llm_websocket_url to give Retell for this agent (Retell appends /{call_id})."""
    from django.conf import settings

    base = settings.RETELL_LLM_WEBSOCKET_URL
    if not base:
        public = settings.PUBLIC_BASE_URL.rstrip("/")
        base = ("wss://" + public[len("https://"):] if public.startswith("https://")
                else "ws://" + public.removeprefix("http://")) + "/retell-llm"
    return f"{base.rstrip('/')}/{agent.socket_token}"


# --- Twilio ---------------------------------------------------------------------------------
# The paths Twilio calls (config/urls.py, config/routing.py); Configure number gives it the first two.
TWILIO_INCOMING_PATH = "/api/voice-agent/incoming"
TWILIO_STATUS_PATH = "/api/voice-agent/status"
TWILIO_MEDIA_STREAM_PATH = "/voice-agent/media-stream"


def twilio_webhook_urls() -> tuple[str, str]:
    """(voice URL, status callback URL) for a company's Twilio numbers: PUBLIC_BASE_URL + the paths."""
    public = settings.PUBLIC_BASE_URL.rstrip("/")
    return public + TWILIO_INCOMING_PATH, public + TWILIO_STATUS_PATH


def twilio_number_called(phone_number: str) -> TwilioNumber | None:
    """The Twilio number a webhook's `To` names, with its company and agent, if its company is
    active; None for anything else (also for text that is no E.164 number)."""
    digits = phone_number[1:] if phone_number.startswith("+") else ""
    if not (digits.isascii() and digits.isdigit() and len(phone_number) <= 20):
        return None
    return (TwilioNumber.objects.select_related("company", "agent")
            .filter(phone_number=phone_number, company__is_active=True).first())


def twilio_number_of_call(*, company_id: int, call_sid: str) -> TwilioNumber | None:
    """The company's Twilio number that call `call_sid` called (its speech providers override the
    company's for the call), or None."""
    to_number = (Call.objects.filter(company_id=company_id, call_id=call_sid)
                 .values_list("to_number", flat=True).first())
    if not to_number:
        return None
    return TwilioNumber.objects.filter(company_id=company_id, phone_number=to_number).first()


@dataclass(frozen=True)
class StreamCall:
    """What a verified media stream needs of its call: the agent that answers (with its company),
    the caller's number (None when Twilio gave none) and the speech providers the called number
    chose ("" : the company's)."""
    agent: Agent
    caller_number: str | None
    stt_choice: str
    tts_choice: str


def twilio_stream_call(*, company_id: int, agent_id: int, call_sid: str) -> StreamCall | None:
    """The call a stream token names (voice.twilio_tokens.StreamGrant), if its company is still
    active with Twilio on and the agent still its own; else None. The number's own speech
    providers override the company's."""
    agent = (Agent.objects.select_related("company")
             .filter(pk=agent_id, company_id=company_id, company__is_active=True, company__twilio_enabled=True)
             .first())
    if agent is None:
        return None
    call = (Call.objects.filter(company_id=company_id, call_id=call_sid)
            .values("from_number", "to_number").first()) or {}
    number = (TwilioNumber.objects.filter(company_id=company_id, phone_number=call["to_number"]).first()
              if call.get("to_number") else None)
    return StreamCall(agent=agent, caller_number=call.get("from_number") or None,
                      stt_choice=number.stt_provider if number is not None else "",
                      tts_choice=number.tts_provider if number is not None else "")


# What the Retell webhook checks read about an agent and its company.
_AGENT_COLUMNS = ["id", "agent_id", "company_id", "webhook_secret", "previous_webhook_secret",
                  "previous_webhook_secret_expires_at", "company__id", "company__name", "company__slug",
                  "company__is_active", "company__retell_api_key", "company__retell_require_published_ip",
                  "company__rate_limits"]
AGENT_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class SigningKey:
    """A key Retell's requests may be signed with, and until when (unix seconds; None: no end)."""
    key: str = field(repr=False)
    expires_at: float | None = None


def _signing_keys(levels, api_key: str) -> tuple[SigningKey, ...]:
    """The secret of the first level that has one (the API key when none has), and the replaced
    secrets of that level and of the levels before it, each with its expiry.

    `levels`: (secret, previous secret, its expiry) per level, the agent's own first, then the company's.
    """
    keys = []
    for secret, previous, expires_at in levels:
        if previous is not None and expires_at is not None:
            keys.append(SigningKey(previous.reveal(), expires_at.timestamp()))
        if secret is not None:
            return (SigningKey(secret.reveal()), *keys)
    return (SigningKey(api_key), *keys)


@dataclass(frozen=True)
class WebhookAgent:
    """An agent named by a Retell request, with the keys its requests are signed with."""
    agent: Agent
    keys: tuple[SigningKey, ...] = field(repr=False)

    @property
    def company(self) -> Company:
        return self.agent.company

    def signing_keys(self, now: float) -> list[str]:
        """The keys that verify this agent's requests at `now` (unix seconds): the agent's own
        webhook secret, else the company's webhook secret, else its Retell API key (else
        RETELL_API_KEY), and a replaced secret until its overlap ends."""
        return [k.key for k in self.keys if k.key and (k.expires_at is None or now < k.expires_at)]


_cache: dict[str, tuple[float, WebhookAgent | None]] = {}
_cache_lock = threading.Lock()


async def webhook_agent(*, agent_id: str, fresh: bool = False) -> WebhookAgent | None:
    """The agent (with its active company) a Retell request names, and its signing keys; or None.

    Kept a few seconds per process, since every webhook of a call asks for the same one
    (and decrypting the keys each time cost more than checking the signature); a cached
    answer costs the event loop no thread and no database connection. `fresh=True` reads
    the database (the webhook view does so before refusing a signature, so a rotated key
    is honoured at once; a deactivated company or deleted agent is noticed within
    AGENT_CACHE_SECONDS). The instances are shared: callers never change them.
    """
    if not fresh:
        cached = _cache.get(agent_id)
        if cached is not None and time.monotonic() - cached[0] < AGENT_CACHE_SECONDS:
            return cached[1]
    return await read_in_thread(_webhook_agent_read)(agent_id)


def _webhook_agent_read(agent_id: str) -> WebhookAgent | None:
    now = time.monotonic()
    agent = (Agent.objects.select_related("company").only(*_AGENT_COLUMNS)
             .filter(agent_id=agent_id, company__is_active=True).first())
    found = None
    if agent is not None:
        config = (WebhookConfig.objects.filter(company_id=agent.company_id)
                  .only("secret", "previous_secret", "previous_secret_expires_at").first())
        levels = [(agent.webhook_secret, agent.previous_webhook_secret, agent.previous_webhook_secret_expires_at)]
        if config is not None:
            levels.append((config.secret, config.previous_secret, config.previous_secret_expires_at))
        api_key = agent.company.retell_api_key
        found = WebhookAgent(agent=agent, keys=_signing_keys(
            levels, api_key.reveal() if api_key else settings.RETELL_API_KEY))
    with _cache_lock:
        if len(_cache) > 10000:
            _cache.clear()
        _cache[agent_id] = (now, found)
    return found


def retell_signing_keys(*, agent_id: str, now: float) -> list[str]:
    """The keys that verify the Retell requests of agent `agent_id` at `now` (unix seconds), the
    one Retell signs with now first (WebhookAgent.signing_keys); [] for no active agent. Read
    fresh: the webhook tester signs with the key the webhook view will check."""
    found = _webhook_agent_read(agent_id)
    return found.signing_keys(now) if found is not None else []


def tool_key_agent(agent_id: str) -> Agent | None:
    """The agent (with its active company) an ElevenLabs webhook tool names, with its tool key's
    hash; None when no active company has it. Read fresh each time: a new key works at once and
    the old one stops."""
    return (Agent.objects.select_related("company").filter(agent_id=agent_id, company__is_active=True)
            .only("id", "agent_id", "name", "elevenlabs_tool_key_hash", "company_id", "company__id",
                  "company__name", "company__slug", "company__is_active", "company__rate_limits").first())


def webhook_agent_forget() -> None:
    with _cache_lock:
        _cache.clear()
