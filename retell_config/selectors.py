"""Reads of retell_config, always scoped to a company (and, where a user is given, to
what that user may see or change)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet

from audit.circuit import CircuitState
from tenants.models import Company, user_memberships
from tenants.selectors import companies_allowing

from .client import circuit_for
from .models import Agent, CustomFunction, PromptVersion, SyncRun, WebhookConfig
from .protocols import retell_api

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


@dataclass(frozen=True)
class NotConfigured:
    """The status of a company that has no Retell key: there is nothing to be connected to."""

    state: str = "not_configured"
    failures: int = 0
    last_error: str = "No Retell API key: set one on the company (Admin → Companies → the company → Retell) or RETELL_API_KEY."
    status: str = "not_configured"
    status_label: str = "Not configured"


def connection_status(company: Company) -> CircuitState | NotConfigured:
    if company.retell_api_key is None and not settings.RETELL_API_KEY:
        return NotConfigured()
    return circuit_for(company.pk).state()


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
        "status": connection_status(company),
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
