"""Every write of retell_config: the one code path for the admin page, the JSON-RPC
gateway, the management commands and the Celery tasks.

A change is validated, saved and audited at once; what has to reach Retell becomes a
SyncRun that a Celery task executes after the commit (`sync_run_execute`), reporting
progress, the outcome per agent, drift and errors on the run and in the activity log.

Who may write is decided here too, so every adapter agrees: a write made by a user (not
the system) touches only agents that user may change. Linking a function to an agent,
unlinking it, a webhook change (it reaches every agent it applied to and applies to) and
Sync All (every agent) are refused with PermissionDenied otherwise; links to agents the
user cannot see are kept as they are, since the user could not have meant to change them.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Iterable

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Max, Prefetch
from django.utils import timezone as dj_timezone

from audit.actor import Actor
from audit.services import activity_log, audit_record, instance_delete, instance_save
from tenants.fields import Secret
from tenants.models import Company
from tenants.validators import normalize_e164

from . import selectors
from .client import RetellClient, RetellError
from .models import (AGENT_ID_UNAVAILABLE, Agent, CustomFunction, PromptVersion, SyncRun, WebhookConfig,
                     new_socket_token, new_tool_key, tool_key_hash)
from .protocols import retell_api

logger = logging.getLogger(__name__)

PROMPT_FIELDS = ("general_prompt", "begin_message", "custom_instructions")
AGENT_FIELDS = ("name", "phone_numbers", "language", "voice_id", "voice_speed", "elevenlabs_voice_id", "voice_stability",
                "voice_similarity_boost", "webhook_url", "webhook_secret", "response_engine", "llm_id", "dialog_engine", *PROMPT_FIELDS)
# Secrets among the agent's fields: set through _secret_replace, so a replaced one stays valid a while.
AGENT_SECRET_FIELDS = ("webhook_secret",)
FUNCTION_FIELDS = ("description", "parameters", "url", "method", "query_params", "speak_during_execution",
                   "speak_after_execution", "execution_message", "timeout_ms", "args_at_root")


class Conflict(Exception):
    """The change was based on a state that is no longer current."""


class DriftConflict(Conflict):
    """A push would overwrite what Retell changed since the last sync (unresolved drift) and the
    caller did not say which side wins. `fields`: the fields still to decide, each
    {"local", "remote", "can_take_remote"} (selectors.drift_conflicts)."""

    def __init__(self, fields: dict[str, dict]) -> None:
        self.fields = fields
        super().__init__("Retell's agent differs from ours in " + ", ".join(sorted(fields))
                         + " since the last sync: say for each field whether ours (local) or Retell's (remote) "
                           "wins before saving, so nothing of Retell's is overwritten unseen.")


DRIFT_SIDES = ("local", "remote")


# --- who may touch which agents ---------------------------------------------------------------
def _acting_user(actor: Actor):
    """The user whose rights bound a write; None for the system (commands, tasks, the platform)."""
    return None if actor.kind == "system" else actor.user


def _require_role(actor: Actor, company: Company, model, action: str) -> None:
    user = _acting_user(actor)
    if user is not None and not selectors.role_allows_in(user, company, model, action):
        raise PermissionDenied(f"Your role may not {action} {model._meta.verbose_name_plural} of {company.name}.")


def _visible_agent_pks(actor: Actor, company: Company) -> set[int] | None:
    """The company's agents the actor can see; None: all of them."""
    user = _acting_user(actor)
    if user is None:
        return None
    return set(selectors.agents_visible(user=user, company=company).values_list("pk", flat=True))


def _require_agents(actor: Actor, company: Company, agents: Iterable[Agent], what: str) -> None:
    """Refuse `what` unless the actor may change each of the company's `agents` it touches.

    An agent the actor cannot see is neither named nor counted (PermissionDenied)."""
    user = _acting_user(actor)
    agents = {a.pk: a for a in agents if a.company_id == company.pk}
    if user is None or not agents:
        return
    allowed = set(selectors.agents_changeable(user=user, company=company).filter(pk__in=list(agents))
                  .values_list("pk", flat=True))
    refused = [a for pk, a in agents.items() if pk not in allowed]
    if not refused:
        return
    visible = _visible_agent_pks(actor, company)
    named = sorted(a.agent_id for a in refused if a.pk in visible)
    hidden = any(a.pk not in visible for a in refused)
    parts = [f"agent {agent_id}" for agent_id in named] + (["agents not shown to you"] if hidden else [])
    raise PermissionDenied(f"{what}: you may not change {', '.join(parts)} "
                           "(your access is limited to the agents granted to you).")


def _require_every_agent(actor: Actor, company: Company, what: str) -> None:
    """Refuse `what`, which touches every agent of the company, unless the actor may change them all."""
    user = _acting_user(actor)
    if user is None:
        return
    if not selectors.changes_every_agent(user, company):
        raise PermissionDenied(f"{what} touches every agent of {company.name}; you may not change every agent "
                               "(your access is limited to the agents granted to you).")


# --- signing secrets ---------------------------------------------------------------------------
def secret_plaintext(value: Secret | str | None) -> str:
    """A secret field's value (a Secret, plaintext, or None) as plaintext; "" for none."""
    if isinstance(value, Secret):
        return value.reveal()
    return value or ""


def _secret_replace(instance, name: str, value: Secret | str | None) -> bool:
    """Set the signing secret `name` of `instance` to `value` ("" or None removes it), unsaved.

    The secret it replaces is kept (encrypted) as `previous_<name>`, valid until
    `previous_<name>_expires_at`, RETELL_WEBHOOK_SECRET_OVERLAP_SECONDS from now, so Retell's
    requests signed with either verify while the key is being swapped on Retell's side.
    Returns whether the secret changed (an equal value changes nothing, the overlap included).
    """
    current = getattr(instance, name)
    new = secret_plaintext(value)
    if secret_plaintext(current) == new:
        return False
    setattr(instance, name, new or None)
    overlap = settings.RETELL_WEBHOOK_SECRET_OVERLAP_SECONDS
    keep = current is not None and overlap > 0
    # The stored ciphertext moves as it is: it is not a value being set, so it is not checked again.
    setattr(instance, f"previous_{name}", current if keep else None)
    setattr(instance, f"previous_{name}_expires_at",
            dj_timezone.now() + timedelta(seconds=overlap) if keep else None)
    return True


# --- agents ---------------------------------------------------------------------------------
def agent_upsert(*, actor: Actor, company: Company, agent_id: str, name: str,
                 phone_numbers: list[str] = ()) -> tuple[Agent, bool]:
    """Create the agent, or bring an existing one of the same company up to these values.

    A new agent speaks the company's language (models.agent_language_for); an existing one
    keeps its own. Returns (agent, created). ValidationError on agent_id when the id cannot be
    added (models.AGENT_ID_UNAVAILABLE, the admin's answer too, which does not say whose it is).
    """
    agent = Agent.objects.filter(company=company, agent_id=agent_id).first()
    created = agent is None
    if created:
        _require_role(actor, company, Agent, "add")
        agent = Agent(company=company, agent_id=agent_id)
    else:
        _require_agents(actor, company, [agent], f"Changing {agent.name}")
    agent.name = name
    agent.phone_numbers = [normalize_e164(n) for n in phone_numbers]
    return instance_save(actor=actor, instance=agent), created


def _require_retell_voice(company: Company, voice_id) -> None:
    voices = selectors.retell_voices(company)
    if voice_id not in voices.ids():
        example = next(iter(sorted(voices.ids())), "11labs-Adrian")
        raise ValidationError({"voice_id": ValidationError(
            "%(voice)s is not a voice Retell offers this company; choose one of its voice list (e.g. %(example)s).",
            params={"voice": str(voice_id)[:64], "example": example}, code="unknown_voice")})


def _version_add(*, actor: Actor, agent: Agent, note: str, values: dict,
                 rolled_back_from: PromptVersion | None = None) -> PromptVersion:
    latest = agent.prompt_versions.aggregate(n=Max("number"))["n"] or 0
    version = PromptVersion(company_id=agent.company_id, agent=agent, number=latest + 1, note=note[:300],
                            author=actor.user if getattr(actor.user, "pk", None) else None,
                            author_label=actor.label[:200], rolled_back_from=rolled_back_from, **values)
    return instance_save(actor=actor, instance=version)


def first_change_keeps_current(agent: Agent) -> bool:
    """Will the first tracked change of this agent's texts keep them as they are as version 1
    (and the change as version 2)? So when any of them holds text; else the change is version 1."""
    return any(getattr(agent, name) for name in PROMPT_FIELDS)


@transaction.atomic
def agent_update(*, actor: Actor, agent: Agent, fields: dict[str, Any], note: str = "", push: bool = True,
                 base_version: int | None = None, rolled_back_from: PromptVersion | None = None,
                 drift: dict[str, str] | None = None) -> tuple[Agent, PromptVersion | None, SyncRun | None]:
    """Change an agent; a change of prompt, greeting or instructions is a new PromptVersion.

    `base_version`: the prompt version the caller edited; a newer one means someone else
    changed the prompt meanwhile (Conflict). With `push`, the agent goes to Retell after
    the commit: prompt and greeting to its Retell LLM; name, voice, language, webhook and
    engine to the agent; a new `voice_id` must then be one Retell offers the company
    (ValidationError on voice_id), while a value taken from Retell (no push) is kept as it is.
    The ElevenLabs voice, stability and similarity are this server's own speech: never pushed.

    A push over unresolved drift (fields a sync found changed on Retell, selectors.drift_conflicts)
    needs `drift`, {field: "local" | "remote"} for each of them: "local" pushes ours over Retell's,
    "remote" takes Retell's value first (ValidationError on "drift" for a field ours cannot take,
    or another word). Without a choice for each: DriftConflict, and nothing is saved.
    """
    unknown = set(fields) - set(AGENT_FIELDS)
    if unknown:
        raise ValidationError({name: "This field cannot be changed here." for name in sorted(unknown)})
    if push and "voice_id" in fields and fields["voice_id"] != agent.voice_id:
        _require_retell_voice(agent.company, fields["voice_id"])
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    _require_agents(actor, agent.company, [agent], f"Changing {agent.name}")
    latest = agent.prompt_versions.order_by("-number").first()
    if base_version is not None and (latest.number if latest else 0) != base_version:
        raise Conflict(f"The prompt is at version {latest.number if latest else 0}, not {base_version}: "
                       "reload and apply your change again.")
    if push:
        fields = _drift_decide(agent, fields, drift or {})
    before = {name: getattr(agent, name) for name in PROMPT_FIELDS}
    keeps_current = first_change_keeps_current(agent)
    for name, value in fields.items():
        if name in AGENT_SECRET_FIELDS:
            _secret_replace(agent, name, value)
        else:
            setattr(agent, name, value)
    instance_save(actor=actor, instance=agent)
    after = {name: getattr(agent, name) for name in PROMPT_FIELDS}
    version = None
    if after != before:
        if latest is None and keeps_current:
            # The first tracked change keeps what was there as version 1, so it can be rolled back to.
            _version_add(actor=actor, agent=agent, note="As it was before the first tracked change", values=before)
        version = _version_add(actor=actor, agent=agent, note=note, values=after, rolled_back_from=rolled_back_from)
    run = _run_start(actor=actor, company=agent.company, kind=SyncRun.Kind.AGENT_UPDATE,
                     params={"agent_ids": [agent.agent_id]}, total=1) if push else None
    return agent, version, run


def drift_check(*, agent: Agent, choices: dict[str, str], config: WebhookConfig | None = None) -> dict[str, dict]:
    """May `agent` be pushed with these `choices` ({field: "local" | "remote"}) over its unresolved
    drift? Returns the conflicts (selectors.drift_conflicts), each with a side chosen. Raises
    DriftConflict naming the fields without one, ValidationError on "drift" for another word or
    for "remote" where ours cannot take Retell's value. Changes nothing (the admin form asks it too)."""
    wrong = sorted(name for name, side in choices.items() if side not in DRIFT_SIDES)
    if wrong:
        raise ValidationError({"drift": f"Say local or remote for {', '.join(wrong)}."})
    conflicts = selectors.drift_conflicts(agent, config)
    undecided = {name: values for name, values in conflicts.items() if name not in choices}
    if undecided:
        raise DriftConflict(undecided)
    fixed = sorted(name for name, values in conflicts.items()
                   if choices[name] == "remote" and not values["can_take_remote"])
    if fixed:
        raise ValidationError({"drift": f"Retell's {', '.join(fixed)} cannot be taken into this agent (the company's "
                                        "webhook and this server's socket URL are set here): keep ours (local)."})
    return conflicts


def _drift_decide(agent: Agent, fields: dict[str, Any], choices: dict[str, str]) -> dict[str, Any]:
    """The fields to save once each unresolved drift of `agent` has its side (see agent_update);
    the decided fields leave agent.remote_drift (saved with the agent)."""
    config = selectors.webhook_config_get(company=agent.company)
    conflicts = drift_check(agent=agent, choices=choices, config=config)
    taken = _remote_values(agent, {name: values["remote"] for name, values in conflicts.items()
                                   if choices[name] == "remote"}, config)
    agent.remote_drift = {name: values for name, values in agent.remote_drift.items() if name not in conflicts}
    return {**fields, **taken}


def prompt_rollback(*, actor: Actor, version: PromptVersion, push: bool = True
                    ) -> tuple[Agent, PromptVersion | None, SyncRun | None]:
    """Make an old version current again, as a new version."""
    values = {name: getattr(version, name) for name in PROMPT_FIELDS}
    return agent_update(actor=actor, agent=version.agent, fields=values, note=f"Rollback to v{version.number}",
                        push=push, rolled_back_from=version)


def socket_token_rotate(*, actor: Actor, agent: Agent, push: bool = True) -> tuple[Agent, SyncRun | None]:
    """A new socket token: the old socket URL stops working; a Custom LLM agent gets the new URL pushed."""
    _require_agents(actor, agent.company, [agent], f"Rotating the socket token of {agent.name}")
    agent.socket_token = new_socket_token()
    instance_save(actor=actor, instance=agent, action="rotate_socket_token")
    run = None
    if push and agent.response_engine == Agent.ResponseEngine.CUSTOM_LLM:
        run = _run_start(actor=actor, company=agent.company, kind=SyncRun.Kind.AGENT_UPDATE,
                         params={"agent_ids": [agent.agent_id]}, total=1)
    return agent, run


# --- webhook --------------------------------------------------------------------------------
@transaction.atomic
def webhook_update(*, actor: Actor, company: Company, url: str, events: list[str], apply_to: str = "all",
                   agents: Iterable[Agent] = (), secret: str | None = None, push: bool = True
                   ) -> tuple[WebhookConfig, SyncRun | None]:
    """Set the company's webhook and push webhook_url and webhook_events to the agents it applies to.

    `secret`: None keeps the stored one, "" removes it, any other text replaces it; a replaced
    or removed secret still verifies for RETELL_WEBHOOK_SECRET_OVERLAP_SECONDS (_secret_replace).
    The webhook reaches every agent it applied to and will apply to: a user must be allowed
    to change each of them (PermissionDenied).
    """
    _require_role(actor, company, WebhookConfig, "change")
    agents = list(agents)
    config = WebhookConfig.objects.select_for_update().filter(company=company).first() \
        or WebhookConfig(company=company)
    applied = set(config.agents.all()) if config.pk and config.url else set()
    if apply_to != WebhookConfig.ApplyTo.SELECTED or config.url and config.apply_to != WebhookConfig.ApplyTo.SELECTED:
        _require_every_agent(actor, company, "The company webhook for all agents")
    _require_agents(actor, company, {*applied, *agents}, "The company webhook")
    config.url = url
    config.events = list(dict.fromkeys(events))
    config.apply_to = apply_to
    if secret is not None:
        _secret_replace(config, "secret", secret)
    if apply_to == WebhookConfig.ApplyTo.SELECTED and not agents:
        raise ValidationError({"agents": "Choose at least one agent, or apply to all agents."})
    instance_save(actor=actor, instance=config,
                  m2m={"agents": agents if apply_to == WebhookConfig.ApplyTo.SELECTED else []})
    targets = [a.agent_id for a in (agents if apply_to == WebhookConfig.ApplyTo.SELECTED
                                    else Agent.objects.filter(company=company).order_by("name"))]
    run = None
    if push and targets:
        run = _run_start(actor=actor, company=company, kind=SyncRun.Kind.WEBHOOK_UPDATE,
                         params={"agent_ids": targets}, total=len(targets))
    return config, run


# --- custom functions -----------------------------------------------------------------------
def custom_function_save(*, actor: Actor, function: CustomFunction,
                         agents: Iterable[Agent] | None = None) -> CustomFunction:
    """Save a function and, with `agents`, the agents it is linked to.

    `agents` is the set as the actor sees it: links to agents the actor cannot see are kept.
    Linking or unlinking an agent the actor may not change is refused (PermissionDenied).
    """
    creating = function.pk is None
    _require_role(actor, function.company, CustomFunction, "add" if creating else "change")
    m2m = None
    if agents is not None:
        agents = list(dict.fromkeys(agents))
        current = [] if creating else list(function.agents.all())
        visible = _visible_agent_pks(actor, function.company)
        wanted = {a.pk for a in agents}
        kept = [a for a in current if visible is not None and a.pk not in visible and a.pk not in wanted]
        added = [a for a in agents if a.pk not in {c.pk for c in current}]
        removed = [a for a in current if a.pk not in wanted and a not in kept]
        _require_agents(actor, function.company, [*added, *removed], function.name or "The function")
        m2m = {"agents": [*agents, *kept]}
    return instance_save(actor=actor, instance=function, m2m=m2m)


def custom_function_delete(*, actor: Actor, function: CustomFunction) -> None:
    """Delete a function; it unlinks every agent, so the actor must be allowed to change each."""
    _require_role(actor, function.company, CustomFunction, "delete")
    _require_agents(actor, function.company, function.agents.all(), f"Deleting {function.name}")
    instance_delete(actor=actor, instance=function)


# What a seeded function has the agent say while it runs, by the company's language.
EXECUTION_MESSAGES = {"de": "Einen Moment, bitte.", "en": "One moment, please."}


def custom_functions_seed(*, actor: Actor, company: Company, agents: Iterable[Agent]) -> list[CustomFunction]:
    """Give a company the receptionist's functions (appointments.function_specs), pointed at
    this product's custom-function endpoint; existing functions of the same name are kept.
    Their execution message is in the company's language (English for one not in EXECUTION_MESSAGES)."""
    from appointments.function_specs import FUNCTION_SPECS

    made = []
    agents = list(agents)
    existing = set(CustomFunction.objects.filter(company=company).values_list("name", flat=True))
    for name, spec in FUNCTION_SPECS.items():
        if name in existing:
            continue
        function = CustomFunction(company=company, name=name, description=spec["description"],
                                  parameters=spec["parameters"], url=selectors.custom_function_endpoint(),
                                  execution_message=EXECUTION_MESSAGES.get(company.language,
                                                                           EXECUTION_MESSAGES["en"]))
        made.append(custom_function_save(actor=actor, function=function, agents=agents))
    return made


@transaction.atomic
def custom_functions_deploy(*, actor: Actor, company: Company, agents: Iterable[Agent],
                            functions: Iterable[CustomFunction] | None = None) -> SyncRun:
    """Write the functions into each agent's Retell LLM as `type: "custom"` tools.

    `functions` given: they are added to the agents' functions first. Each agent gets the
    functions assigned to it; tools this product does not manage stay as they are.
    """
    agents = list(agents)
    if not agents:
        raise ValidationError({"agents": "Choose at least one agent."})
    _require_agents(actor, company, agents, "Deploying functions")
    for function in functions or ():
        if function.company_id != company.pk:
            raise ValidationError({"functions": f"{function.name} is not a function of this company."})
        assigned = set(function.agents.values_list("pk", flat=True))
        if not {a.pk for a in agents} <= assigned:
            custom_function_save(actor=actor, function=function,
                                 agents=[*function.agents.all(), *[a for a in agents if a.pk not in assigned]])
    return _run_start(actor=actor, company=company, kind=SyncRun.Kind.FUNCTIONS_DEPLOY,
                      params={"agent_ids": [a.agent_id for a in agents]}, total=len(agents))


EXPORT_FORMATS = ("backup", "retell", "elevenlabs")
BACKUP_FORMAT = "voicedesk.custom_functions"
ELEVENLABS_FORMAT = "voicedesk.elevenlabs_tools"


def functions_export(*, company: Company, fmt: str = "backup", user=None) -> dict:
    """The company's functions as JSON: our backup, or Retell tools.

    A backup names the agents each function is linked to: with `user`, only those it may see.
    ElevenLabs webhook tools are made for one agent with a new key: functions_export_elevenlabs."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationError({"format": f"Choose one of {', '.join(EXPORT_FORMATS)}."})
    if fmt == "elevenlabs":
        raise ValidationError({"agent": "ElevenLabs tools are exported for one agent, with a new key for it: "
                                        "name the agent."})
    agents = Agent.objects.all() if user is None else selectors.agents_visible(user=user, company=company)
    functions = list(CustomFunction.objects.filter(company=company).order_by("name")
                     .prefetch_related(Prefetch("agents", queryset=agents)))
    if fmt == "retell":
        return {"general_tools": [retell_api.custom_tool(selectors.function_dict(f)) for f in functions]}
    return {
        "format": BACKUP_FORMAT, "version": 1, "company": company.slug,
        "exported_at": dj_timezone.now().isoformat(timespec="seconds"),
        "functions": [{**selectors.function_dict(f), "agents": sorted(a.agent_id for a in f.agents.all())}
                      for f in functions],
    }


def elevenlabs_tool_key_issue(*, actor: Actor, agent: Agent) -> str:
    """A new key for the agent's ElevenLabs webhook tools; the previous one stops working at once.

    Returned once: only its SHA-256 is stored (Agent.elevenlabs_tool_key_hash), the audit entry
    says it was issued, never what it is. The actor must be allowed to change the agent
    (PermissionDenied)."""
    _require_agents(actor, agent.company, [agent], f"Issuing an ElevenLabs tool key for {agent.name}")
    key = new_tool_key()
    agent.elevenlabs_tool_key_hash = tool_key_hash(key)
    agent.elevenlabs_tools_exported_at = dj_timezone.now()
    instance_save(actor=actor, instance=agent, action="issue_elevenlabs_tool_key")
    return key


@transaction.atomic
def functions_export_elevenlabs(*, actor: Actor, company: Company, agent: Agent) -> dict:
    """The company's functions as ElevenLabs webhook tools for `agent`, with a new key for it.

    Each element of "tools" is the body of ElevenLabs' `POST /v1/convai/tools`. A tool that
    calls this server's endpoint names the agent, passes the conversation and the caller from
    ElevenLabs' system variables and sends `Authorization: Bearer <key>`; the document is the
    only place the key is shown (elevenlabs_tool_key_issue), and exporting again replaces it.
    PermissionDenied unless the actor may change the agent; ValidationError for another
    company's agent."""
    if agent.company_id != company.pk:
        raise ValidationError({"agent": "Choose an agent of this company."})
    key = elevenlabs_tool_key_issue(actor=actor, agent=agent)
    ours = selectors.custom_function_endpoint()
    tools = []
    for function in CustomFunction.objects.filter(company=company).order_by("name"):
        mine = function.url.split("?")[0].rstrip("/") == ours
        tools.append(retell_api.elevenlabs_webhook_tool(selectors.function_dict(function),
                                                        agent_id=agent.agent_id if mine else None,
                                                        tool_key=key if mine else None))
    activity_log(company=company, kind="retell.functions.export", level="info",
                 message=f"ElevenLabs tools exported for {agent.name} with a new key; the previous key no longer "
                         "works.", data={"agent_id": agent.agent_id})
    return {"format": ELEVENLABS_FORMAT, "version": 1, "company": company.slug, "agent": agent.agent_id,
            "exported_at": dj_timezone.now().isoformat(timespec="seconds"), "tools": tools}


def _import_items(document: Any) -> list[dict]:
    """The functions an export of any format holds: our backup, Retell tools, ElevenLabs tools."""
    if isinstance(document, dict) and document.get("format") == BACKUP_FORMAT:
        items = document.get("functions")
    elif isinstance(document, dict) and "general_tools" in document:
        if not isinstance(document["general_tools"], list):
            raise ValidationError('"general_tools" must be a list of tools.')
        items = [retell_api.function_from_custom_tool(tool) for tool in document["general_tools"]
                 if isinstance(tool, dict) and tool.get("type") == "custom"]
    elif isinstance(document, dict) and "tools" in document:
        if not isinstance(document["tools"], list):
            raise ValidationError('"tools" must be a list of ElevenLabs tools ({"tool_config": {…}}).')
        items = [retell_api.function_from_elevenlabs_tool(tool["tool_config"]) for tool in document["tools"]
                 if isinstance(tool, dict) and isinstance(tool.get("tool_config"), dict)
                 and tool["tool_config"].get("type") == "webhook"]
    else:
        raise ValidationError(f'Not a functions export: expected a backup ("format": "{BACKUP_FORMAT}"), '
                              'Retell tools under "general_tools" or ElevenLabs tools under "tools".')
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValidationError('"functions" must be a list of objects.')
    for index, item in enumerate(items):
        if isinstance(item.get("agents"), list) and not all(isinstance(a, str) for a in item["agents"]):
            raise ValidationError(f'functions[{index}]: "agents" must be a list of agent ids (strings).')
    return items


@transaction.atomic
def functions_import(*, actor: Actor, company: Company, document: Any) -> dict:
    """Create or update the company's functions from an export; all or nothing.

    Errors name the function and the field. Agents are matched by Retell agent id
    within the company; ids the company does not have are reported and skipped. A user who
    may not change every agent may name only agents it may change (any other id is refused,
    whether it exists or not: PermissionDenied); links to agents it cannot see are kept.
    """
    _require_role(actor, company, CustomFunction, "change")
    items = _import_items(document)
    visible = _visible_agent_pks(actor, company)
    agents = {a.agent_id: a for a in Agent.objects.filter(company=company) if visible is None or a.pk in visible}
    user = _acting_user(actor)
    names_any_agent = user is None or selectors.changes_every_agent(user, company)
    counts = {"created": [], "updated": [], "unchanged": [], "unknown_agents": []}
    errors = []
    names = [item.get("name") for item in items]
    duplicated = sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})
    if duplicated:
        raise ValidationError(f"The document names {', '.join(duplicated)} more than once.")
    for index, item in enumerate(items):
        name = item.get("name")
        label = f"functions[{index}] ({name})" if isinstance(name, str) else f"functions[{index}]"
        function = CustomFunction.objects.filter(company=company, name=name).first() if isinstance(name, str) \
            else None
        creating = function is None
        function = function or CustomFunction(company=company, name=name if isinstance(name, str) else "")
        for field in FUNCTION_FIELDS:
            if field in item:
                setattr(function, field, item[field])
        linked = None
        if "agents" in item:
            linked = []
            for agent_id in item["agents"] if isinstance(item["agents"], list) else []:
                if isinstance(agent_id, str) and agent_id in agents:
                    linked.append(agents[agent_id])
                elif names_any_agent:
                    counts["unknown_agents"].append(agent_id)
                else:
                    raise PermissionDenied(f"{label}: agents: you may not change agent {agent_id} "
                                           "(your access is limited to the agents granted to you).")
        try:
            before = CustomFunction.objects.filter(pk=function.pk).values(*FUNCTION_FIELDS).first()
            before_agents = set(function.agents.values_list("pk", flat=True)) if function.pk else set()
            custom_function_save(actor=actor, function=function, agents=linked)
        except ValidationError as exc:
            details = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
            errors.extend(f"{label}: {field + ': ' if field and field != '__all__' else ''}{message}"
                          for field, messages in details.items() for message in messages)
            continue
        after = {f: getattr(function, f) for f in FUNCTION_FIELDS}
        if creating:
            counts["created"].append(function.name)
        elif before != after or before_agents != set(function.agents.values_list("pk", flat=True)):
            counts["updated"].append(function.name)
        else:
            counts["unchanged"].append(function.name)
    if errors:
        raise ValidationError(errors)
    activity_log(company=company, kind="retell.functions.import",
                 message=f"Imported custom functions: {len(counts['created'])} created, "
                         f"{len(counts['updated'])} updated, {len(counts['unchanged'])} unchanged.",
                 data=counts)
    return counts


# --- sync -----------------------------------------------------------------------------------
def sync_all(*, actor: Actor, company: Company) -> SyncRun:
    """Pull agents, their Retell LLMs and phone numbers; take what only Retell changed,
    record the rest as drift (a local change is never overwritten). It touches every agent."""
    _require_role(actor, company, Agent, "change")
    _require_every_agent(actor, company, "Sync All")
    with transaction.atomic():
        return _run_start(actor=actor, company=company, kind=SyncRun.Kind.SYNC_ALL, params={}, total=0)


@transaction.atomic
def drift_resolve(*, actor: Actor, agent: Agent, direction: str) -> SyncRun | None:
    """After a sync: "pull" copies Retell's values (as last read) into the agent;
    "push" sends the local agent, functions included, to Retell."""
    _require_agents(actor, agent.company, [agent], f"Resolving the drift of {agent.name}")
    if direction == "push":
        run = _run_start(actor=actor, company=agent.company, kind=SyncRun.Kind.AGENT_UPDATE,
                         params={"agent_ids": [agent.agent_id], "with_functions": True}, total=1)
        return run
    if direction != "pull":
        raise ValidationError({"direction": 'Use "pull" or "push".'})
    remote = agent.remote_state
    if not remote:
        raise ValidationError("Nothing to pull: sync first.")
    config = selectors.webhook_config_get(company=agent.company)
    local = selectors.agent_state(agent, config)
    take = {name: values["remote"] for name, values in retell_api.compare(local, remote).items()
            if name in retell_api.PULLABLE}
    left = _apply_remote(actor=actor, agent=agent, values=take, config=config, note="Pulled from Retell")
    if left:
        raise ValidationError([f"{name}: cannot take Retell's value ({reason})" for name, reason in left.items()])
    _drift_resolved(agent, set(take))
    return None


def _remote_values(agent: Agent, values: dict, config: WebhookConfig) -> dict:
    """Retell's values (as remote_state holds them) as the agent's fields: a webhook URL that is the
    company's own stays empty on the agent; phone numbers sorted."""
    fields = {}
    for name, value in values.items():
        if name == "webhook_url":
            value = "" if config.url and value == config.url and config.applies_to(agent) else value
        if name == "phone_numbers":
            value = sorted(value)
        fields[name] = value
    return fields


def _apply_remote(*, actor: Actor, agent: Agent, values: dict, config: WebhookConfig, note: str) -> dict:
    """Copy remote values into the agent; returns {field: reason} for values it refused."""
    fields = _remote_values(agent, values, config)
    refused = {}
    while fields:
        try:
            with transaction.atomic():
                agent_update(actor=actor, agent=agent, fields=fields, note=note, push=False)
            agent.refresh_from_db()
            break
        except ValidationError as exc:
            bad = set(getattr(exc, "error_dict", {})) & set(fields)
            if not bad:
                raise
            for name in bad:
                refused[name] = "; ".join(exc.message_dict[name])
                fields.pop(name)
    return refused


def _run_start(*, actor: Actor, company: Company, kind: str, params: dict, total: int) -> SyncRun:
    run = SyncRun.objects.create(company=company, kind=kind, params=params, total=total,
                                 requested_by=actor.label[:200])
    audit_record(actor=actor, action=f"retell.{kind}", company_id=company.pk, object_type="retell_config.syncrun",
                 object_id=str(run.pk), object_repr=str(run), changes={"params": {"before": None, "after": params}})
    activity_log(company=company, kind=f"retell.{kind}.queued",
                 message=f"{run.get_kind_display()} #{run.pk} queued by {actor.label}.", data={"run": run.pk})
    from .tasks import sync_run_execute_task

    transaction.on_commit(lambda: sync_run_execute_task.delay(run.pk))
    return run


# --- executing runs (Celery tasks call this) ---------------------------------------------------
def _step(run: SyncRun, agent_id: str, status: str, detail: str = "", drift: dict | None = None) -> None:
    run.outcome[agent_id] = {"status": status, "detail": detail}
    if drift:
        run.drift[agent_id] = drift
    run.done += 1
    SyncRun.objects.filter(pk=run.pk).update(done=F("done") + 1, outcome=run.outcome, drift=run.drift)
    level = {"ok": "info", "skipped": "info", "drift": "warning"}.get(status, "error")
    activity_log(company=run.company_id, kind=f"retell.{run.kind}.agent", level=level,
                 message=f"{run.get_kind_display()} #{run.pk}: {agent_id} {status}{': ' + detail if detail else ''}",
                 data={"run": run.pk, "agent_id": agent_id, "status": status})


def _record_remote(agent: Agent, state: dict, *, drift: dict | None = None) -> None:
    """Keep what Retell holds now; with `drift` (a sync's), that drift as the agent's unresolved drift."""
    values = {"remote_state": state, "synced_at": dj_timezone.now()}
    if drift is not None:
        values["remote_drift"] = drift
    Agent.objects.filter(pk=agent.pk).update(**values)


def _drift_resolved(agent: Agent, names) -> None:
    """Retell now holds ours (pushed) or ours holds Retell's (pulled) for `names`: no longer drift."""
    with transaction.atomic():
        current = Agent.objects.select_for_update().filter(pk=agent.pk).values_list("remote_drift", flat=True).first()
        if current and set(current) & set(names):
            Agent.objects.filter(pk=agent.pk).update(
                remote_drift={name: values for name, values in current.items() if name not in names})


def sync_run_execute(*, run_id: int) -> SyncRun:
    """Run a queued SyncRun against Retell. Safe to call again: a finished run is left alone."""
    # Claimed atomically: a command running it inline and a worker never both run it.
    claimed = SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.PENDING).update(
        status=SyncRun.Status.RUNNING, started_at=dj_timezone.now())
    run = SyncRun.objects.select_related("company").get(pk=run_id)
    if not claimed:
        return run
    company = run.company
    actor = Actor.system(f"retell sync run #{run.pk}")
    try:
        with RetellClient(company) as client:
            {
                SyncRun.Kind.WEBHOOK_UPDATE: _execute_agent_pushes,
                SyncRun.Kind.AGENT_UPDATE: _execute_agent_pushes,
                SyncRun.Kind.FUNCTIONS_DEPLOY: _execute_agent_pushes,
                SyncRun.Kind.SYNC_ALL: _execute_sync_all,
            }[run.kind](run, client, actor)
    except RetellError as exc:
        run.errors.append(exc.message)
    except Exception:
        logger.exception("Sync run %s failed", run.pk)
        run.errors.append("Internal error; see the server log.")
    failed = [a for a, o in run.outcome.items() if o["status"] == "failed"]
    if len(failed) == len(run.outcome) and (failed or run.errors):
        status = SyncRun.Status.FAILED  # nothing went through
    elif failed or run.errors:
        status = SyncRun.Status.PARTIAL
    else:
        status = SyncRun.Status.SUCCEEDED
    SyncRun.objects.filter(pk=run.pk).update(status=status, finished_at=dj_timezone.now(), errors=run.errors,
                                             outcome=run.outcome, drift=run.drift, total=run.total, done=run.done)
    run.refresh_from_db()
    drifted = len(run.drift)
    activity_log(company=company, kind=f"retell.{run.kind}.finished",
                 level="info" if status == SyncRun.Status.SUCCEEDED else "warning",
                 message=f"{run.get_kind_display()} #{run.pk} {run.get_status_display().lower()}"
                         + (f"; drift on {drifted} agent(s)" if drifted else "")
                         + (f"; {'; '.join(run.errors)}" if run.errors else ""),
                 data={"run": run.pk, "status": status})
    if status != SyncRun.Status.FAILED:
        now = dj_timezone.now()
        if run.kind == SyncRun.Kind.WEBHOOK_UPDATE:
            WebhookConfig.objects.filter(company=company).update(deployed_at=now)
        elif run.kind == SyncRun.Kind.FUNCTIONS_DEPLOY or run.params.get("with_functions"):
            CustomFunction.objects.filter(company=company, agents__agent_id__in=[
                a for a, o in run.outcome.items() if o["status"] == "ok"]).update(deployed_at=now)
    return run


def _execute_agent_pushes(run: SyncRun, client: RetellClient, actor: Actor) -> None:
    company = run.company
    config = selectors.webhook_config_get(company=company)
    selected = set(config.agents.values_list("pk", flat=True)) if config.pk else set()
    names = selectors.managed_names(company)
    prefix = selectors.custom_function_endpoint()
    agents = {a.agent_id: a for a in Agent.objects.filter(company=company, agent_id__in=run.params["agent_ids"])
              .prefetch_related("custom_functions")}
    for agent_id in run.params["agent_ids"]:
        agent = agents.get(agent_id)
        if agent is None:
            _step(run, agent_id, "failed", "no such agent in this company")
            continue
        state = selectors.agent_state(agent, config, selected_ids=selected)
        try:
            if run.kind == SyncRun.Kind.WEBHOOK_UPDATE:
                body = {k: v for k, v in retell_api.agent_payload(state, socket_url=None).items()
                        if k in ("webhook_url", "webhook_events")}
                client.update_agent(agent_id, body)
                _drift_resolved(agent, retell_api.WEBHOOK_PUSHED)
                _step(run, agent_id, "ok", f"webhook {'set' if state['webhook_url'] else 'removed'}")
            elif run.kind == SyncRun.Kind.FUNCTIONS_DEPLOY:
                _deploy_functions(run, client, agent, state, names, prefix)
            else:
                _push_agent(run, client, agent, state, names, prefix)
        except (RetellError, ValueError) as exc:
            _step(run, agent_id, "failed", getattr(exc, "message", str(exc)))
            if getattr(exc, "transient", False) and not client.breaker.allow():
                for rest in run.params["agent_ids"][run.params["agent_ids"].index(agent_id) + 1:]:
                    _step(run, rest, "failed", "not tried: Retell is disconnected (circuit open)")
                return


def _deploy_functions(run, client, agent: Agent, state: dict, names: set[str], prefix: str) -> None:
    if agent.response_engine != Agent.ResponseEngine.RETELL_LLM:
        _step(run, agent.agent_id, "skipped", "Custom LLM agent: this server runs its functions itself")
        return
    if not agent.llm_id:
        _step(run, agent.agent_id, "failed", "no Retell LLM id on this agent")
        return
    llm = client.get_llm(agent.llm_id)
    tools = retell_api.merge_general_tools(llm.get("general_tools"), list(state["custom_functions"].values()),
                                           managed_names=names, managed_url_prefix=prefix)
    client.update_llm(agent.llm_id, {"general_tools": tools})
    _drift_resolved(agent, ("custom_functions",))
    _step(run, agent.agent_id, "ok", f"{len(state['custom_functions'])} function(s) deployed")


def _push_agent(run, client, agent: Agent, state: dict, names: set[str], prefix: str) -> None:
    socket_url = selectors.agent_socket_url(agent)
    if agent.response_engine == Agent.ResponseEngine.RETELL_LLM:
        if not agent.llm_id:
            _step(run, agent.agent_id, "failed", "no Retell LLM id on this agent")
            return
        body = retell_api.llm_payload(state)
        if run.params.get("with_functions"):
            llm = client.get_llm(agent.llm_id)
            body["general_tools"] = retell_api.merge_general_tools(
                llm.get("general_tools"), list(state["custom_functions"].values()),
                managed_names=names, managed_url_prefix=prefix)
        client.update_llm(agent.llm_id, body)
    client.update_agent(agent.agent_id, retell_api.agent_payload(state, socket_url=socket_url))
    pushed = {**state, "socket_url_ok": True}
    if not run.params.get("with_functions"):
        pushed.pop("custom_functions", None)
        if "custom_functions" in agent.remote_state:
            pushed["custom_functions"] = agent.remote_state["custom_functions"]
    _record_remote(agent, pushed)
    resolved = set(retell_api.AGENT_PUSHED)
    if agent.response_engine == Agent.ResponseEngine.RETELL_LLM:
        resolved |= {*retell_api.LLM_PUSHED, *(["custom_functions"] if run.params.get("with_functions") else [])}
    _drift_resolved(agent, resolved)
    _step(run, agent.agent_id, "ok", "pushed")


def _execute_sync_all(run: SyncRun, client: RetellClient, actor: Actor) -> None:
    company = run.company
    remote_agents = client.list_agents()
    llms = {llm["llm_id"]: llm for llm in client.list_llms()}
    numbers: dict[str, list[str]] = {}
    for number in client.list_phone_numbers():
        for binding in number.get("inbound_agents") or []:
            numbers.setdefault(binding.get("agent_id"), []).append(number["phone_number"])
    remote_ids = [a["agent_id"] for a in remote_agents]
    local_ids = list(Agent.objects.filter(company=company).exclude(agent_id__in=remote_ids)
                     .values_list("agent_id", flat=True))
    run.total = len(remote_ids) + len(local_ids)
    SyncRun.objects.filter(pk=run.pk).update(total=run.total)
    config = selectors.webhook_config_get(company=company)
    names = selectors.managed_names(company)
    prefix = selectors.custom_function_endpoint()
    for item in remote_agents:
        agent_id = item["agent_id"]
        try:
            _sync_agent(run, client, actor, company, config, agent_id, llms, numbers.get(agent_id, []), names, prefix)
        except RetellError as exc:
            _step(run, agent_id, "failed", exc.message)
    for agent_id in local_ids:
        _step(run, agent_id, "drift", "not on Retell", drift={"exists": {"local": True, "remote": False}})


def _sync_agent(run, client, actor, company, config, agent_id, llms, numbers, names, prefix) -> None:
    remote_agent = client.get_agent(agent_id)
    engine = remote_agent.get("response_engine") or {}
    llm = None
    if engine.get("type") == "retell-llm":
        llm = llms.get(engine.get("llm_id")) or client.get_llm(engine["llm_id"])
    agent = Agent.objects.filter(agent_id=agent_id).first()
    if agent is not None and agent.company_id != company.pk:
        _step(run, agent_id, "failed", AGENT_ID_UNAVAILABLE)
        return
    socket_url = selectors.agent_socket_url(agent) if agent else None
    remote = retell_api.remote_state(remote_agent, llm, numbers, socket_url=socket_url, managed_names=names,
                                     managed_url_prefix=prefix)
    if agent is None:
        agent = Agent(company=company, agent_id=agent_id, name=remote["name"] or agent_id)
        instance_save(actor=actor, instance=agent)
        local = selectors.agent_state(agent, config)
        take = {n: v["remote"] for n, v in retell_api.compare(local, remote).items() if n in retell_api.PULLABLE}
        refused = _apply_remote(actor=actor, agent=agent, values=take, config=config, note="Imported from Retell")
        agent.refresh_from_db()
        drift = {n: v for n, v in retell_api.compare(selectors.agent_state(agent, config), remote).items()}
        _record_remote(agent, remote, drift=drift)
        _step(run, agent_id, "drift" if drift else "ok", "created from Retell"
              + (f"; kept defaults for {', '.join(sorted(refused))}" if refused else ""), drift=drift)
        return
    local = selectors.agent_state(agent, config)
    take, drift = retell_api.reconcile(local, remote, agent.remote_state or {})
    refused = _apply_remote(actor=actor, agent=agent, values=take, config=config, note="Taken from Retell (sync)") \
        if take else {}
    for name in refused:
        drift[name] = {"local": local[name], "remote": remote[name]}
    _record_remote(agent, remote, drift=drift)
    detail = (f"took {', '.join(sorted(set(take) - set(refused)))} from Retell" if set(take) - set(refused) else "")
    _step(run, agent_id, "drift" if drift else "ok", detail, drift=drift)


def sync_due_companies(*, actor: Actor) -> list[SyncRun]:
    """The periodic sync: one run per active company that has a Retell key (its own or the platform's)."""
    from django.conf import settings

    runs = []
    for company in Company.objects.filter(is_active=True).order_by("pk"):
        if company.retell_api_key is None and not settings.RETELL_API_KEY:
            continue
        runs.append(sync_all(actor=actor, company=company))
    return runs
