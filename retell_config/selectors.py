"""Reads of retell_config, always scoped to a company (and, where a user is given, to
what that user may see or change)."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Prefetch, QuerySet

from audit.circuit import CircuitState
from tenants.models import Company, user_memberships
from tenants.selectors import companies_allowing

from .client import circuit_for
from .models import Agent, CustomFunction, PromptVersion, RetellConnection, SyncRun, WebhookConfig
from .protocols import retell_api
from .voices import RETELL_VOICES, RetellVoice

CUSTOM_FUNCTION_PATH = "/api/mcp/retell/custom-function"


def custom_function_endpoint() -> str:
    """This product's custom-function endpoint, the URL Retell calls for our functions."""
    return settings.PUBLIC_BASE_URL.rstrip("/") + CUSTOM_FUNCTION_PATH


def agent_socket_url(agent: Agent) -> str:
    """The Custom LLM socket URL given to Retell for this agent (Retell appends /{call_id})."""
    base = settings.RETELL_LLM_WEBSOCKET_URL
    if not base:
        public = settings.PUBLIC_BASE_URL.rstrip("/")
        base = ("wss://" + public.removeprefix("https://") if public.startswith("https://")
                else "ws://" + public.removeprefix("http://")) + "/retell-llm"
    return f"{base.rstrip('/')}/{agent.socket_token}"


def custom_function_schema(*, company: Company, name: str) -> dict | None:
    """The JSON Schema of a company's custom function's parameters, or None without such a function."""
    row = CustomFunction.objects.filter(company=company, name=name).values_list("parameters", flat=True).first()
    return None if row is None else (row or {"type": "object", "properties": {}})


def webhook_config_get(*, company: Company) -> WebhookConfig:
    """The company's webhook configuration; an unsaved default when it has none yet."""
    return WebhookConfig.objects.filter(company=company).first() or WebhookConfig(company=company)


def agents_visible(*, user, company: Company) -> QuerySet[Agent]:
    return Agent.objects.restrict(user, "view").filter(company=company)


def agents_changeable(*, user, company: Company) -> QuerySet[Agent]:
    return Agent.objects.restrict(user, "change").filter(company=company)


def companies_for(user, action: str = "view") -> QuerySet[Company]:
    """The active companies whose agents the user's role allows `action` on."""
    return companies_allowing(user=user, model=Agent, action=action).filter(is_active=True)


NOT_CONFIGURED = "No Retell API key: set one on the company (Admin → Companies → the company → Retell) or RETELL_API_KEY."
# How the dashboard and mcp_status name the company's Retell status.
STATUS_LABELS = {
    "not_configured": "Not configured",
    "disconnected": "Disconnected",
    "unreachable": "Unreachable",
    "key_refused": "Key refused",
    "degraded": "Degraded",
    "connected": "Connected",
    "unknown": "Not checked yet",
}
CIRCUIT_LABELS = {"closed": "closed", "open": "open", "half_open": "half-open (one trial call allowed)"}


def _utc(moment) -> str:
    return f"{moment.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


@dataclass(frozen=True)
class RetellStatus:
    """A company's connection to Retell as far as this server knows it.

    `status` (a key of STATUS_LABELS) is decided, in this order, by: no API key
    (not_configured); the circuit open (disconnected); the last exchange unreachable
    (unreachable) or refused with 401/403 (key_refused); the circuit failing or on trial
    (degraded); the last exchange answered (connected); no exchange yet (unknown).
    """

    status: str
    exchange: RetellConnection | None
    circuit: CircuitState | None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def last_error(self) -> str:
        """What went wrong last: the last exchange's error, else the circuit's; "" when nothing did."""
        if self.status == "not_configured":
            return NOT_CONFIGURED
        if self.exchange is not None and self.exchange.error:
            return self.exchange.error
        return self.circuit.last_error if self.circuit is not None else ""

    def facts(self) -> list[tuple[str, str]]:
        """(label, text) lines, the same on the dashboard and in mcp_status; times in UTC."""
        lines = [("Status", self.status_label)]
        if self.status == "not_configured":
            return [*lines, ("Detail", NOT_CONFIGURED)]
        exchange = self.exchange
        if exchange is None:
            lines.append(("Last try", "none yet"))
        else:
            lines.append(("Last try", f"{_utc(exchange.last_at)}, {exchange.operation}: "
                                           f"{exchange.get_outcome_display().lower()}"
                                           + (f" ({exchange.error})" if exchange.error else "")))
            lines.append(("Last answer", _utc(exchange.last_ok_at) if exchange.last_ok_at else "never"))
        circuit = self.circuit
        lines.append(("Circuit", f"{CIRCUIT_LABELS[circuit.state]}, {circuit.failures} failure(s) in a row"
                                 + (f"; last: {circuit.last_error}" if circuit.last_error else "")))
        return lines


def retell_status(company: Company) -> RetellStatus:
    """The company's Retell status from its last real exchange (RetellConnection) and its circuit."""
    if company.retell_api_key is None and not settings.RETELL_API_KEY:
        return RetellStatus("not_configured", None, None)
    exchange = RetellConnection.objects.filter(company=company).first()
    circuit = circuit_for(company.pk).state()
    refused = exchange is not None and exchange.outcome == RetellConnection.Outcome.REJECTED \
        and exchange.status_code in (401, 403)
    if circuit.state == "open":
        status = "disconnected"
    elif exchange is not None and exchange.outcome == RetellConnection.Outcome.UNREACHABLE:
        status = "unreachable"
    elif refused:
        status = "key_refused"
    elif circuit.status == "degraded":
        status = "degraded"
    elif exchange is not None:
        status = "connected"
    else:
        status = "unknown"
    return RetellStatus(status, exchange, circuit)


# --- voices ---------------------------------------------------------------------------------
def voices_cache_key(company: Company) -> str:
    return f"retell:voices:{company.pk}"


@dataclass(frozen=True)
class VoiceList:
    """The Retell voices offered to a company: `source` "retell" (its workspace's list) or
    "catalogue" (voices.RETELL_VOICES, when Retell could not be asked; `error` says why)."""

    voices: list[RetellVoice]
    source: str
    error: str = ""

    def ids(self) -> set[str]:
        return {v.voice_id for v in self.voices}


def retell_voices(company: Company) -> VoiceList:
    """The voices Retell offers the company (the SDK's voice list), cached per company for
    RETELL_VOICES_CACHE_SECONDS; the shipped catalogue when Retell cannot be asked (no key,
    unreachable, refused), itself cached for at most RETELL_VOICES_RETRY_SECONDS so that a page
    does not wait on a Retell that is down."""
    from .client import RetellClient, RetellError

    key = voices_cache_key(company)
    cached = cache.get(key)
    if cached is not None:
        return VoiceList([RetellVoice(**v) for v in cached["voices"]], cached["source"], cached.get("error", ""))
    try:
        with RetellClient(company) as client:
            found = VoiceList([RetellVoice.from_response(v) for v in client.list_voices()], "retell")
        timeout = settings.RETELL_VOICES_CACHE_SECONDS
    except RetellError as exc:
        found = VoiceList(list(RETELL_VOICES), "catalogue", exc.message)
        timeout = min(settings.RETELL_VOICES_RETRY_SECONDS, settings.RETELL_VOICES_CACHE_SECONDS)
    cache.set(key, {"voices": [asdict(v) for v in found.voices], "source": found.source, "error": found.error},
              timeout=timeout)
    return found


def managed_names(company: Company) -> set[str]:
    return set(CustomFunction.objects.filter(company=company).values_list("name", flat=True))


def function_dict(function: CustomFunction) -> dict:
    return {field: getattr(function, field) for field in (
        "name", "description", "parameters", "url", "method", "query_params", "speak_during_execution",
        "speak_after_execution", "execution_message", "timeout_ms", "args_at_root")}


def agent_state(agent: Agent, config: WebhookConfig, *, selected_ids: set[int] | None = None,
                functions: list[CustomFunction] | None = None) -> dict:
    """A local agent as plain data, in the shape `protocols.retell_api.remote_state` reads Retell."""
    applies = config.applies_to(agent, selected_ids)
    state = {
        "name": agent.name,
        "language": agent.language,
        "voice_id": agent.voice_id,
        "voice_speed": float(agent.voice_speed),
        "webhook_url": agent.webhook_url or (config.url if applies else ""),
        "webhook_events": sorted(config.events, key=list(retell_api.EVENT_MAP).index)
                          if (agent.webhook_url or applies) else [],
        "response_engine": agent.response_engine,
        "llm_id": agent.llm_id if agent.response_engine == Agent.ResponseEngine.RETELL_LLM else "",
        "socket_url_ok": True,
        "phone_numbers": sorted(agent.phone_numbers),
        "general_prompt": agent.general_prompt,
        "custom_instructions": agent.custom_instructions,
        "begin_message": agent.begin_message,
    }
    if agent.response_engine == Agent.ResponseEngine.RETELL_LLM:
        functions = list(agent.custom_functions.all()) if functions is None else functions
        state["custom_functions"] = {f.name: retell_api.custom_tool(function_dict(f), agent_id=agent.agent_id)
                                     for f in functions}
    return state


def drift_conflicts(agent: Agent, config: WebhookConfig | None = None) -> dict[str, dict]:
    """The unresolved drift a push of `agent` would overwrite on Retell.

    Per field the last sync reported as drift and a push sends (name, voice, language, webhook,
    engine, the socket URL, prompt and greeting): {"local": our value now, "remote": Retell's as
    last read, "can_take_remote": whether ours can take Retell's value}. A field whose value is
    now the same on both sides is no conflict; {} when there is none. `socket_url_ok` (Retell's
    Custom LLM socket URL is not this agent's) shows this agent's socket URL as ours.
    """
    if not agent.remote_drift:
        return {}
    local = agent_state(agent, config or webhook_config_get(company=agent.company))
    pushed = {*retell_api.AGENT_PUSHED, *retell_api.LLM_PUSHED}
    conflicts = {}
    for name, values in agent.remote_drift.items():
        if name not in pushed or name not in local or not isinstance(values, dict):
            continue
        remote = agent.remote_state.get(name, values.get("remote"))
        if local[name] == remote:
            continue
        if name == "socket_url_ok":  # Retell's URL is not kept, only that it is not this agent's socket
            conflicts[name] = {"local": agent_socket_url(agent), "can_take_remote": False,
                               "remote": "another URL than this agent's socket on this server"}
            continue
        conflicts[name] = {"local": local[name], "remote": remote, "can_take_remote": name in retell_api.PULLABLE}
    return conflicts


@dataclass(frozen=True)
class DriftField:
    """One field a sync found different, as the run page shows it.

    `field`: the name Retell and this product give it; `local` / `remote`: the values the
    run found; `pullable`: Pull remote takes it (else only Push local settles it);
    `pushable`: Push local settles it; `resolved`: "" while the two sides still differ, else
    "local" (Retell holds the local value now), "remote" (the agent took Retell's value) or
    "same" (both hold a value that is neither of the run's)."""

    field: str
    local: Any
    remote: Any
    pullable: bool
    pushable: bool
    resolved: str = ""


# Drift entries recorded under internal names, shown by the field a person acts on.
_SOCKET_URL = ("llm_websocket_url", "this server's socket URL for the agent", "another URL")


def drift_fields(*, drift: dict[str, dict], agent: Agent | None, config: WebhookConfig) -> list[DriftField]:
    """A run's drift of one agent (`SyncRun.drift[agent_id]`), field by field, each with
    whether the agent and Retell agree on it now (the agent's current state against what
    was last read from or pushed to Retell, `Agent.remote_state`). `agent` None: the agent
    is gone, nothing is resolved."""
    now_local = agent_state(agent, config) if agent is not None else {}
    now_remote = (agent.remote_state or {}) if agent is not None else {}
    fields = []
    for name, values in drift.items():
        local, remote = values.get("local"), values.get("remote")
        resolved = ""
        if name in now_local and name in now_remote and now_local[name] == now_remote[name]:
            resolved = "local" if now_local[name] == local else "remote" if now_local[name] == remote else "same"
        if name == "socket_url_ok":  # a yes/no of ours: the socket URL Retell holds is ours, or it is not
            field, local, remote = _SOCKET_URL[0], _SOCKET_URL[1] if local else _SOCKET_URL[2], \
                _SOCKET_URL[1] if remote else _SOCKET_URL[2]
            fields.append(DriftField(field, local, remote, pullable=False, pushable=True, resolved=resolved))
        elif name == "exists":  # the agent is here and not on Retell: neither button can settle that
            fields.append(DriftField("agent", "exists here", "not on Retell", pullable=False, pushable=False))
        else:
            fields.append(DriftField(name, local, remote, pullable=name in retell_api.PULLABLE, pushable=True,
                                     resolved=resolved))
    return fields


def last_sync_run(*, company: Company, kind: str | None = None, user=None) -> SyncRun | None:
    """The company's latest run (of `kind`); with `user`, the latest that user may see."""
    runs = (SyncRun.objects if user is None else SyncRun.objects.restrict(user, "view")).filter(company=company)
    if kind:
        runs = runs.filter(kind=kind)
    return runs.order_by("-created_at", "-id").first()


def sync_run_get(*, user, company: Company, run_id: int) -> SyncRun | None:
    return SyncRun.objects.restrict(user, "view").filter(company=company, pk=run_id).first()


def prompt_versions(*, agent: Agent) -> QuerySet[PromptVersion]:
    return PromptVersion.objects.filter(company_id=agent.company_id, agent=agent).order_by("-number")


PROMPT_DIFF_FIELDS = (("general_prompt", "System prompt"), ("begin_message", "Greeting"),
                      ("custom_instructions", "Custom instructions"))


def prompt_diff(old: PromptVersion, new: PromptVersion) -> list[dict]:
    """What changed from `old` to `new`, per text: [{"field", "label", "lines": [{"text", "kind"}]}],
    the lines of a unified diff (headers "--- v<old>" / "+++ v<new>"), each of kind "add", "del",
    "hunk" (an @@ line) or "same"; a text that did not change has no lines."""
    parts = []
    for field, label in PROMPT_DIFF_FIELDS:
        lines = list(difflib.unified_diff(getattr(old, field).splitlines(), getattr(new, field).splitlines(),
                                          f"v{old.number}", f"v{new.number}", lineterm=""))
        parts.append({"field": field, "label": label, "lines": [
            {"text": line, "kind": "add" if line.startswith("+") and not line.startswith("+++")
             else "del" if line.startswith("-") and not line.startswith("---")
             else "hunk" if line.startswith("@@") else "same"} for line in lines]})
    return parts


def dashboard(*, user, company: Company) -> dict:
    """Everything the Retell Webhook Configuration page shows, in a fixed number of queries."""
    functions_qs = CustomFunction.objects.filter(company=company).order_by("name")
    agents = list(agents_visible(user=user, company=company)
                  .prefetch_related(Prefetch("custom_functions", queryset=functions_qs.only("id", "name", "company_id")))
                  .order_by("name"))
    changeable = set(agents_changeable(user=user, company=company).values_list("pk", flat=True))
    config = webhook_config_get(company=company)
    selected = set(config.agents.values_list("pk", flat=True)) if config.pk else set()
    functions = list(functions_qs.prefetch_related(Prefetch("agents", queryset=Agent.objects.only("id"))))
    return {
        "company": company,
        "status": retell_status(company),
        "config": config,
        "selected_agent_ids": selected,
        "agents": agents,
        "changeable_agent_ids": changeable,
        "functions": functions,
        "deployed_count": sum(1 for f in functions if f.deployed_at and f.agents.all()),
        "last_sync": last_sync_run(company=company, kind=SyncRun.Kind.SYNC_ALL, user=user),
        "last_run": last_sync_run(company=company, user=user),
    }


def role_allows_in(user, company: Company, model, action: str) -> bool:
    """Does the user's role in this company allow `action` on `model`?"""
    return companies_allowing(user=user, model=model, action=action).filter(pk=company.pk).exists()


def limited_in(user, company: Company) -> bool:
    """Is the user's membership in the company limited to the agents granted to it?"""
    return not user.is_superuser and any(m.company_id == company.pk and m.limited_to_granted_objects
                                         for m in user_memberships(user))


def changes_every_agent(user, company: Company) -> bool:
    """May the user change every agent of the company (what Sync All and a webhook for all agents need)?"""
    return (role_allows_in(user, company, Agent, "change")
            and agents_changeable(user=user, company=company).count() == Agent.objects.filter(company=company).count())
