"""The JSON-RPC 2.0 gateway's methods (docs/gateway.md): thin adapters that check
params and permissions, call the services and selectors, and shape results.

Every method takes `company_id`; it and every agent id must belong to a company where
the token's user may do what the method does (view for reads, change for writes).
"""

from __future__ import annotations

from typing import Any, Callable

from django.core.exceptions import PermissionDenied, ValidationError

from audit.actor import Actor
from tenants.models import Company

from . import selectors, services
from .client import RetellError, circuit_for
from .models import Agent, CustomFunction, SyncRun, WebhookConfig
from .protocols.jsonrpc import METHOD_NOT_FOUND, Call, RpcError, invalid_param

UNAUTHORIZED = -32001
PERMISSION_DENIED = -32003
NOT_FOUND = -32004
CONFLICT = -32009
UPSTREAM_FAILURE = -32010
RATE_LIMITED = -32029

APPLICATION_ERRORS = {UNAUTHORIZED: "Unauthorized", PERMISSION_DENIED: "Permission denied", NOT_FOUND: "Not found",
                      CONFLICT: "Conflict", UPSTREAM_FAILURE: "Retell failure", RATE_LIMITED: "Too many requests"}


def app_error(code: int, reason: str, **data) -> RpcError:
    return RpcError(code, APPLICATION_ERRORS[code], {"reason": reason, **data})


# --- params ------------------------------------------------------------------------------------
def _nul_at(value: Any, path: str) -> str | None:
    """The path of the first string in `value` (a key or a value) holding NUL, else None.

    `path` names `value` as the errors do: "fields.general_prompt", "agent_ids[1]"; a
    key holding NUL is named by the object it is in ("params" at the top).
    """
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _nul_at(item, f"{path}[{index}]")) is not None:
                return found
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return path or "params"
            if (found := _nul_at(item, f"{path}.{key}" if path else key)) is not None:
                return found or "params"
    return None


class Params:
    """Reads one call's named params, each failure a -32602 naming the param and the reason."""

    def __init__(self, call: Call, allowed: set[str]) -> None:
        if not isinstance(call.params, dict):
            raise invalid_param("params", "must be an object with named params, not an array")
        # The database stores no NUL in text or JSON: refused here, by name, rather than failing there.
        if (found := _nul_at(call.params, "")) is not None:
            raise invalid_param(found, "must not contain the NUL character (\\u0000)")
        unknown = sorted(set(call.params) - allowed)
        if unknown:
            raise invalid_param(unknown[0], f"unknown param; this method takes {', '.join(sorted(allowed))}")
        self.values = call.params

    def get(self, name: str, kind: type | tuple, *, required: bool = False, default: Any = None) -> Any:
        if name not in self.values:
            if required:
                raise invalid_param(name, "is required")
            return default
        value = self.values[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join({int: "an integer", str: "a string", list: "an array", dict: "an object",
                                 bool: "true or false"}[k] for k in kinds)
            raise invalid_param(name, f"must be {names}")
        return value

    def string_list(self, name: str, *, required: bool = False) -> list[str] | None:
        value = self.get(name, list, required=required)
        if value is not None and not all(isinstance(v, str) for v in value):
            raise invalid_param(name, "must be an array of strings")
        return value


# --- who may touch what -------------------------------------------------------------------------
class Context:
    def __init__(self, user, actor: Actor) -> None:
        self.user = user
        self.actor = actor

    def company(self, params: Params, action: str) -> Company:
        company_id = params.get("company_id", int, required=True)
        if not selectors.companies_for(self.user, action).filter(pk=company_id).exists():
            if action != "view" and selectors.companies_for(self.user, "view").filter(pk=company_id).exists():
                raise app_error(PERMISSION_DENIED, f"your role may not change company {company_id}",
                                param="company_id")
            raise app_error(PERMISSION_DENIED, f"you are not a member of company {company_id}", param="company_id")
        return Company.objects.get(pk=company_id)

    def agents(self, company: Company, agent_ids: list[str], action: str, param: str = "agent_ids") -> list[Agent]:
        visible = {a.agent_id: a for a in selectors.agents_visible(user=self.user, company=company)
                   .filter(agent_id__in=agent_ids)}
        missing = [a for a in agent_ids if a not in visible]
        if missing:
            # Another company's agent and a missing one look alike.
            raise app_error(NOT_FOUND, f"no agent {missing[0]} in company {company.pk}", param=param,
                            agent_id=missing[0])
        if action != "view":
            allowed = set(selectors.agents_changeable(user=self.user, company=company)
                          .filter(agent_id__in=agent_ids).values_list("agent_id", flat=True))
            refused = [a for a in agent_ids if a not in allowed]
            if refused:
                raise app_error(PERMISSION_DENIED, f"you may not change agent {refused[0]}", param=param,
                                agent_id=refused[0])
        return [visible[a] for a in dict.fromkeys(agent_ids)]

    def may(self, model, company: Company, action: str) -> None:
        if not selectors.role_allows_in(self.user, company, model, action):
            raise app_error(PERMISSION_DENIED, f"your role may not {action} {model._meta.verbose_name_plural}")

    def whole_company(self, company: Company, what: str) -> None:
        """Refuse a member limited to some agents an operation on every agent."""
        if not selectors.changes_every_agent(self.user, company):
            raise app_error(PERMISSION_DENIED, f"{what} touches every agent of the company; your access is limited "
                                               "to some agents", param="agent_ids")

    def retell_reachable(self, company: Company) -> None:
        state = circuit_for(company.pk).state()
        if state.status == "disconnected":
            raise app_error(UPSTREAM_FAILURE, "Retell is disconnected for this company (circuit open): "
                                              f"{state.last_error or 'repeated failures'}")


def _validation(exc: ValidationError, default_param: str) -> RpcError:
    if hasattr(exc, "error_dict"):
        param, messages = next(iter(exc.message_dict.items()))
        return invalid_param(default_param if param == "__all__" else param, "; ".join(messages))
    return invalid_param(default_param, "; ".join(exc.messages))


# --- result shapes -------------------------------------------------------------------------------
def agent_summary(agent: Agent) -> dict:
    return {"agent_id": agent.agent_id, "name": agent.name, "phone_numbers": agent.phone_numbers,
            "response_engine": agent.response_engine, "llm_id": agent.llm_id, "language": agent.language,
            "voice_id": agent.voice_id, "synced_at": agent.synced_at.isoformat() if agent.synced_at else None}


def agent_detail(agent: Agent) -> dict:
    latest = agent.prompt_versions.order_by("-number").values_list("number", flat=True).first()
    return {**agent_summary(agent),
            "elevenlabs_voice_id": agent.elevenlabs_voice_id, "voice_stability": agent.voice_stability,
            "voice_similarity_boost": agent.voice_similarity_boost, "voice_speed": agent.voice_speed, "begin_message": agent.begin_message,
            "general_prompt": agent.general_prompt, "custom_instructions": agent.custom_instructions,
            "webhook_url": agent.webhook_url, "prompt_version": latest or 0,
            "custom_functions": sorted(agent.custom_functions.values_list("name", flat=True)),
            "unresolved_drift": selectors.drift_conflicts(agent)}


def run_summary(run: SyncRun | None) -> dict | None:
    if run is None:
        return None
    return {"sync_run_id": run.pk, "kind": run.kind, "status": run.status}


def run_detail(run: SyncRun) -> dict:
    return {**run_summary(run), "total": run.total, "done": run.done, "percent": run.percent,
            "outcome": run.outcome, "drift": run.drift, "errors": run.errors,
            "created_at": run.created_at.isoformat(),
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None}


# --- methods -----------------------------------------------------------------------------------------
def update_webhook(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "webhook_url", "events", "agent_ids", "secret"})
    company = ctx.company(p, "change")
    url = p.get("webhook_url", str, required=True)
    events = p.string_list("events", required=True)
    agent_ids = p.string_list("agent_ids")
    secret = p.get("secret", str)
    ctx.may(WebhookConfig, company, "change")
    ctx.retell_reachable(company)
    if agent_ids is not None:
        agents = ctx.agents(company, agent_ids, "change")
        apply_to = WebhookConfig.ApplyTo.SELECTED
    else:
        ctx.whole_company(company, "a webhook for all agents")
        agents = ctx.agents(company, list(Agent.objects.filter(company=company).values_list("agent_id", flat=True)),
                            "change")
        apply_to = WebhookConfig.ApplyTo.ALL
    try:
        config, run = services.webhook_update(actor=ctx.actor, company=company, url=url, events=events,
                                              apply_to=apply_to, agents=agents, secret=secret)
    except ValidationError as exc:
        raise _validation(exc, "webhook_url") from None
    return {"webhook": {"url": config.url, "events": config.events, "apply_to": config.apply_to,
                        "agent_ids": [a.agent_id for a in agents] if apply_to == "selected" else None,
                        "secret": config.secret.masked if config.secret else None},
            "sync_run": run_summary(run)}


def deploy_custom_functions(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "agent_ids", "functions"})
    company = ctx.company(p, "change")
    agents = ctx.agents(company, p.string_list("agent_ids", required=True), "change")
    wanted = p.get("functions", (list, dict))
    ctx.may(CustomFunction, company, "change")
    ctx.retell_reachable(company)
    functions = None
    try:
        if isinstance(wanted, dict):
            # {name: definition}, as in the seed: saved first, then deployed.
            document = {"format": services.BACKUP_FORMAT, "version": 1,
                        "functions": [{"name": n, **(d if isinstance(d, dict) else {})} for n, d in wanted.items()]}
            for item in document["functions"]:
                item.setdefault("url", selectors.custom_function_endpoint())
            services.functions_import(actor=ctx.actor, company=company, document=document)
            wanted = list(wanted)
        if isinstance(wanted, list):
            if not all(isinstance(n, str) for n in wanted):
                raise invalid_param("functions", "must be an array of function names or an object of definitions")
            functions = list(CustomFunction.objects.filter(company=company, name__in=wanted))
            missing = sorted(set(wanted) - {f.name for f in functions})
            if missing:
                raise app_error(NOT_FOUND, f"no function {missing[0]} in company {company.pk}", param="functions")
        run = services.custom_functions_deploy(actor=ctx.actor, company=company, agents=agents, functions=functions)
    except ValidationError as exc:
        raise _validation(exc, "functions") from None
    return {"sync_run": run_summary(run)}


def list_agents(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id"})
    company = ctx.company(p, "view")
    agents = selectors.agents_visible(user=ctx.user, company=company).order_by("name")
    return {"agents": [agent_summary(a) for a in agents]}


def get_agent(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "agent_id", "include_remote"})
    company = ctx.company(p, "view")
    agent = ctx.agents(company, [p.get("agent_id", str, required=True)], "view", param="agent_id")[0]
    result = agent_detail(agent)
    if p.get("include_remote", bool, default=False):
        # A live comparison with Retell (no change is made on either side).
        from .client import RetellClient
        from .protocols import retell_api

        try:
            with RetellClient(company) as client:
                remote_agent = client.get_agent(agent.agent_id)
                engine = remote_agent.get("response_engine") or {}
                llm = client.get_llm(engine["llm_id"]) if engine.get("type") == "retell-llm" else None
        except RetellError as exc:
            raise app_error(UPSTREAM_FAILURE, exc.message) from None
        config = selectors.webhook_config_get(company=company)
        remote = retell_api.remote_state(remote_agent, llm, agent.phone_numbers,
                                         socket_url=selectors.agent_socket_url(agent),
                                         managed_names=selectors.managed_names(company),
                                         managed_url_prefix=selectors.custom_function_endpoint())
        result["drift"] = retell_api.compare(selectors.agent_state(agent, config), remote)
    return result


UPDATABLE = {"name": str, "general_prompt": str, "begin_message": str, "custom_instructions": str,
             "voice_id": str, "elevenlabs_voice_id": str, "voice_stability": (int, float),
             "voice_similarity_boost": (int, float),
             "voice_speed": (int, float), "language": str, "webhook_url": str}


def update_agent(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "agent_id", "fields", "note", "base_version", "drift"})
    company = ctx.company(p, "change")
    agent = ctx.agents(company, [p.get("agent_id", str, required=True)], "change", param="agent_id")[0]
    fields = p.get("fields", dict, required=True)
    note = p.get("note", str, default="")
    base_version = p.get("base_version", int)
    drift = p.get("drift", dict, default={})
    for name, side in drift.items():
        if side not in services.DRIFT_SIDES:
            raise invalid_param(f"drift.{name}", 'must be "local" or "remote"')
    for name, value in fields.items():
        if name not in UPDATABLE:
            raise invalid_param(f"fields.{name}", f"cannot be changed; use {', '.join(sorted(UPDATABLE))}")
        kinds = UPDATABLE[name] if isinstance(UPDATABLE[name], tuple) else (UPDATABLE[name],)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise invalid_param(f"fields.{name}", "must be a " + ("number" if float in kinds else "string"))
    ctx.retell_reachable(company)
    try:
        agent, version, run = services.agent_update(actor=ctx.actor, agent=agent, fields=fields, note=note,
                                                    base_version=base_version, drift=drift)
    except services.DriftConflict as exc:
        raise app_error(CONFLICT, str(exc), param="drift", drift=exc.fields) from None
    except services.Conflict as exc:
        raise app_error(CONFLICT, str(exc), param="base_version") from None
    except ValidationError as exc:
        if "drift" in getattr(exc, "error_dict", {}):
            raise invalid_param("drift", "; ".join(exc.message_dict["drift"])) from None
        if hasattr(exc, "error_dict"):
            param, messages = next(iter(exc.message_dict.items()))
            raise invalid_param(f"fields.{param}", "; ".join(messages)) from None
        raise _validation(exc, "fields") from None
    return {"agent": agent_detail(agent), "prompt_version": version.number if version else None,
            "sync_run": run_summary(run)}


def sync_all(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id"})
    company = ctx.company(p, "change")
    ctx.whole_company(company, "a sync")
    ctx.retell_reachable(company)
    return {"sync_run": run_summary(services.sync_all(actor=ctx.actor, company=company))}


def get_sync_run(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "sync_run_id"})
    company = ctx.company(p, "view")
    run = selectors.sync_run_get(user=ctx.user, company=company, run_id=p.get("sync_run_id", int, required=True))
    if run is None:
        raise app_error(NOT_FOUND, "no such sync run in this company", param="sync_run_id")
    return run_detail(run)


def export_functions(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "format", "agent_id"})
    company = ctx.company(p, "view")
    fmt = p.get("format", str, default="backup")
    if fmt not in services.EXPORT_FORMATS:
        raise invalid_param("format", f"must be one of {', '.join(services.EXPORT_FORMATS)}")
    if fmt == "elevenlabs":  # made for one agent, with a new key for it: a change of that agent
        [agent] = ctx.agents(company, [p.get("agent_id", str, required=True)], "change", param="agent_id")
        return services.functions_export_elevenlabs(actor=ctx.actor, company=company, agent=agent)
    if "agent_id" in p.values:
        raise invalid_param("agent_id", "only the elevenlabs format is made for an agent")
    return services.functions_export(company=company, fmt=fmt, user=ctx.user)


def import_functions(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "document"})
    company = ctx.company(p, "change")
    document = p.get("document", dict, required=True)
    ctx.may(CustomFunction, company, "change")
    try:
        return services.functions_import(actor=ctx.actor, company=company, document=document)
    except ValidationError as exc:
        raise invalid_param("document", "; ".join(exc.messages)) from None


METHODS: dict[str, Callable[[Context, Call], Any]] = {
    "retell_config.updateWebhook": update_webhook,
    "retell_config.deployCustomFunctions": deploy_custom_functions,
    "retell_config.listAgents": list_agents,
    "retell_config.getAgent": get_agent,
    "retell_config.updateAgent": update_agent,
    "retell_config.syncAll": sync_all,
    "retell_config.getSyncRun": get_sync_run,
    "retell_config.exportFunctions": export_functions,
    "retell_config.importFunctions": import_functions,
}


def run_method(method: Callable[[Context, Call], Any], ctx: Context, call: Call) -> Any:
    """Run one method (of METHODS, or an operation of the same shape: integrations.operations) for
    `ctx`: its result, or an RpcError."""
    try:
        return method(ctx, call)
    except PermissionDenied as exc:
        # The services' own refusal (a write that touches an agent the user may not change).
        raise app_error(PERMISSION_DENIED, str(exc) or "permission denied") from None


def dispatcher(ctx: Context) -> Callable[[Call], Any]:
    def dispatch(call: Call) -> Any:
        method = METHODS.get(call.method)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, data={"reason": f"no method {call.method}",
                                                   "methods": sorted(METHODS)})
        return run_method(method, ctx, call)

    return dispatch
