"""The operations the MCP server offers as tools: the JSON-RPC gateway's methods (the same
functions, `retell_config.gateway.METHODS`), the reads of appointments and calls, the
availability check, and the saved scenarios (runs started by `voice.scenarios.scenario_runs_start`,
the admin's service, and made by its Celery task), written in the gateway's shape
(`(Context, Call) -> dict`, errors as `RpcError`) so that one table serves both protocols.

Each operation has a JSON Schema of its arguments (`OPERATIONS[name].input_schema`) and a
description an assistant can act on. The arguments are the gateway's params; the gateway's
`Params` checks them (a missing, unknown or mistyped one is -32602 naming it), and every
company and agent goes through `Context`, so permissions are decided as for the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

from django.core.exceptions import ValidationError
from django.utils import timezone

from appointments import selectors as appointment_selectors
from appointments.function_specs import FUNCTION_SPECS
from appointments.handlers import run_custom_function
from appointments.models import Appointment
from retell_config import gateway
from retell_config.gateway import NOT_FOUND, Context, Params, app_error
from retell_config.protocols.jsonrpc import Call, invalid_param
from voice.models import Call as PhoneCall
from voice.models import Scenario, ScenarioRun
from voice.scenarios import scenario_runs_start

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 200


# --- result shapes -------------------------------------------------------------------------------
def appointment_data(appointment: Appointment) -> dict:
    zone = appointment.company.zone
    return {"appointment_id": appointment.pk, "customer_name": appointment.customer_name,
            "phone": appointment.phone, "service": appointment.service.name if appointment.service else None,
            "start": appointment.start.astimezone(zone).isoformat(),
            "end": appointment.end.astimezone(zone).isoformat(), "status": appointment.status,
            "call_id": appointment.call_id or None, "notes": appointment.notes, "is_test": appointment.is_test}


def call_summary(call: PhoneCall) -> dict:
    return {"call_id": call.call_id, "agent_id": call.agent.agent_id if call.agent else None,
            "source": call.source, "direction": call.direction, "from_number": call.from_number,
            "to_number": call.to_number, "status": call.status,
            "started_at": call.started_at.isoformat() if call.started_at else None,
            "ended_at": call.ended_at.isoformat() if call.ended_at else None, "duration_ms": call.duration_ms,
            "disconnection_reason": call.disconnection_reason}


def call_detail(call: PhoneCall) -> dict:
    return {**call_summary(call), "transcript": call.transcript, "turns": call.transcript_turns,
            "analysis": call.analysis}


def scenario_summary(scenario: Scenario, last_run: ScenarioRun | None) -> dict:
    return {"scenario_id": scenario.pk, "name": scenario.name, "agent_id": scenario.agent.agent_id,
            "language": scenario.language, "script": scenario.script,
            "expectations": {"appointment": scenario.expect_outcome or None, "service": scenario.expect_service or None,
                             "day": scenario.expect_day or None,
                             "time": scenario.expect_time.strftime("%H:%M") if scenario.expect_time else None,
                             "transfer": scenario.expect_transfer or None,
                             "must_say": [w for w in scenario.must_say.splitlines() if w.strip()],
                             "must_not_say": [w for w in scenario.must_not_say.splitlines() if w.strip()],
                             "max_turns": scenario.max_turns, "max_latency_ms": scenario.max_latency_ms},
            "last_run": scenario_run_summary(last_run) if last_run else None}


def scenario_run_summary(run: ScenarioRun) -> dict:
    return {"scenario_run_id": run.pk, "scenario_id": run.scenario_id, "status": run.status,
            "finished": run.finished, "progress": run.progress, "total": run.total, "batch": str(run.batch)}


def scenario_run_detail(run: ScenarioRun) -> dict:
    return {**scenario_run_summary(run), "scenario": run.scenario.name, "agent_id": run.scenario.agent.agent_id,
            "against": run.against, "call_id": run.call_id or None, "results": run.results,
            "error": run.error or None, "transcript": run.transcript, "triggered_by": run.triggered_by,
            "created_at": run.created_at.isoformat(),
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None}


# --- who may read what ---------------------------------------------------------------------------------
def _limit(p: Params) -> int:
    limit = p.get("limit", int, default=LIST_LIMIT_DEFAULT)
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise invalid_param("limit", f"must be from 1 to {LIST_LIMIT_MAX}")
    return limit


def _appointments(ctx: Context, company):
    ctx.may(Appointment, company, "view")
    return Appointment.objects.restrict(ctx.user, "view").filter(company=company).select_related(
        "service", "company")


def _calls(ctx: Context, company):
    ctx.may(PhoneCall, company, "view")
    return PhoneCall.objects.restrict(ctx.user, "view").filter(company=company).select_related("agent")


# --- operations --------------------------------------------------------------------------------------
def list_appointments(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "day", "status", "agent_id", "phone", "limit"})
    company = ctx.company(p, "view")
    appointments = _appointments(ctx, company)
    if (day := p.get("day", str)) is not None:
        try:
            appointments = appointment_selectors.appointments_on_day(
                company=company, day=date.fromisoformat(day), queryset=appointments)
        except ValueError:
            raise invalid_param("day", "must be a date as YYYY-MM-DD") from None
    if (status := p.get("status", str)) is not None:
        if status not in Appointment.Status.values:
            raise invalid_param("status", f"must be one of {', '.join(Appointment.Status.values)}")
        appointments = appointments.filter(status=status)
    if (agent_id := p.get("agent_id", str)) is not None:
        agent = ctx.agents(company, [agent_id], "view", param="agent_id")[0]
        appointments = appointments.filter(call_id__in=PhoneCall.objects.filter(
            company=company, agent=agent).values("call_id"))
    if (phone := p.get("phone", str)) is not None:
        appointments = appointments.filter(
            phone=appointment_selectors.phone_e164(company=company, number=phone) or phone)
    limit = _limit(p)
    return {"appointments": [appointment_data(a) for a in appointments.order_by("start", "pk")[:limit]]}


def get_appointment(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "appointment_id"})
    company = ctx.company(p, "view")
    appointment_id = p.get("appointment_id", int, required=True)
    appointment = _appointments(ctx, company).filter(pk=appointment_id).first()
    if appointment is None:  # another company's looks the same as a missing one
        raise app_error(NOT_FOUND, f"no appointment {appointment_id} in company {company.pk}",
                        param="appointment_id")
    return appointment_data(appointment)


def list_calls(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "agent_id", "limit"})
    company = ctx.company(p, "view")
    calls = _calls(ctx, company)
    if (agent_id := p.get("agent_id", str)) is not None:
        calls = calls.filter(agent=ctx.agents(company, [agent_id], "view", param="agent_id")[0])
    limit = _limit(p)
    return {"calls": [call_summary(c) for c in calls.order_by("-created_at", "-pk")[:limit]]}


def get_call(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "call_id"})
    company = ctx.company(p, "view")
    call_id = p.get("call_id", str, required=True)
    found = _calls(ctx, company).filter(call_id=call_id).first()
    if found is None:
        raise app_error(NOT_FOUND, f"no call {call_id} in company {company.pk}", param="call_id")
    return call_detail(found)


def check_availability(ctx: Context, call: Call) -> dict:
    """The check_availability custom function's own handler (as a caller's agent runs it), outside a call."""
    p = Params(call, {"company_id", "date", "time", "service"})
    company = ctx.company(p, "view")
    ctx.may(Appointment, company, "view")
    args = {name: p.get(name, str, required=name == "date") for name in ("date", "time", "service")
            if name in p.values}
    return run_custom_function(company=company, name="check_availability", args=args, call_id=None,
                               now=timezone.now())


def _scenarios(ctx: Context, company, agent):
    ctx.may(Scenario, company, "view")
    return (Scenario.objects.restrict(ctx.user, "view").filter(company=company, agent=agent)
            .select_related("agent").order_by("name"))


def list_scenarios(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "agent_id"})
    company = ctx.company(p, "view")
    [agent] = ctx.agents(company, [p.get("agent_id", str, required=True)], "view", param="agent_id")
    scenarios = list(_scenarios(ctx, company, agent))
    last = {}
    for run in (ScenarioRun.objects.restrict(ctx.user, "view").filter(scenario__in=scenarios)
                .order_by("scenario_id", "-created_at", "-pk").distinct("scenario_id")):
        last[run.scenario_id] = run
    return {"scenarios": [scenario_summary(s, last.get(s.pk)) for s in scenarios]}


def run_scenario(ctx: Context, call: Call) -> dict:
    """Queues runs (one batch) through voice.scenarios.scenario_runs_start, as the admin's action and
    the Call Simulator's Run button do; the Celery task makes each run's call."""
    p = Params(call, {"company_id", "agent_id", "scenario_id", "all"})
    company = ctx.company(p, "change")
    [agent] = ctx.agents(company, [p.get("agent_id", str, required=True)], "change", param="agent_id")
    scenario_id, run_all = p.get("scenario_id", int), p.get("all", bool, default=False)
    if (scenario_id is None) == (not run_all):
        raise invalid_param("scenario_id", "give either scenario_id or all: true (not both)")
    scenarios = _scenarios(ctx, company, agent)
    if scenario_id is not None:
        scenarios = scenarios.filter(pk=scenario_id)
        if not scenarios:  # another agent's or company's looks the same as a missing one
            raise app_error(NOT_FOUND, f"no scenario {scenario_id} of agent {agent.agent_id}", param="scenario_id")
    elif not scenarios:
        raise app_error(NOT_FOUND, f"agent {agent.agent_id} has no scenarios (add them in the admin)",
                        param="agent_id")
    try:
        runs = scenario_runs_start(actor=ctx.actor, scenarios=list(scenarios), agent=agent)
    except ValidationError as error:
        raise invalid_param("scenario_id", "; ".join(error.messages)) from None
    return {"batch": str(runs[0].batch), "scenario_runs": [scenario_run_summary(r) for r in runs]}


def get_scenario_run(ctx: Context, call: Call) -> dict:
    p = Params(call, {"company_id", "scenario_run_id"})
    company = ctx.company(p, "view")
    ctx.may(ScenarioRun, company, "view")
    run_id = p.get("scenario_run_id", int, required=True)
    run = (ScenarioRun.objects.restrict(ctx.user, "view").filter(company=company, pk=run_id)
           .select_related("scenario__agent").first())
    if run is None:
        raise app_error(NOT_FOUND, f"no scenario run {run_id} in company {company.pk}", param="scenario_run_id")
    return scenario_run_detail(run)


# --- the table -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    run: Callable[[Context, Call], Any]
    description: str
    input_schema: dict
    writes: bool = False


COMPANY_ID = {"type": "integer", "description": "The company's id (listAgents and the admin show it)."}
AGENT_ID = {"type": "string", "description": "The Retell agent id, e.g. agent_abc123."}
AGENT_IDS = {"type": "array", "items": {"type": "string"}, "description": "Retell agent ids of the company."}


def _schema(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": {"company_id": COMPANY_ID, **properties},
            "required": ["company_id", *required], "additionalProperties": False}


AVAILABILITY_ARGS = FUNCTION_SPECS["check_availability"]["parameters"]

OPERATIONS: dict[str, Operation] = {
    "listAgents": Operation(
        gateway.list_agents, "Lists the company's Retell agents you may see: id, name, phone numbers, engine, "
                             "language, voice, last sync.", _schema({}, [])),
    "getAgent": Operation(
        gateway.get_agent, "Reads one agent whole: prompt, greeting, voice settings, webhook, functions, prompt "
                           "version and unresolved drift; include_remote compares it with Retell now.",
        _schema({"agent_id": AGENT_ID, "include_remote": {"type": "boolean", "description": (
            "Also read the agent from Retell and report each differing field as drift.")}}, ["agent_id"])),
    "updateAgent": Operation(
        gateway.update_agent, "Changes an agent's fields (a new prompt version when the prompt changes) and "
                              "pushes them to Retell in the background; returns the sync run to poll.",
        _schema({"agent_id": AGENT_ID,
                 "fields": {"type": "object", "description": "Fields to change: " + ", ".join(sorted(gateway.UPDATABLE)),
                            "properties": {name: {"type": "number" if isinstance(kind, tuple) else "string"}
                                           for name, kind in gateway.UPDATABLE.items()},
                            "additionalProperties": False},
                 "note": {"type": "string", "description": "Why, kept with the prompt version."},
                 "base_version": {"type": "integer", "description": (
                     "The prompt version the change was made on; refused (Conflict) when a newer one exists.")},
                 "drift": {"type": "object", "additionalProperties": {"enum": ["local", "remote"]},
                           "description": "Per drifted field, which side to keep."}},
                ["agent_id", "fields"]), writes=True),
    "updateWebhook": Operation(
        gateway.update_webhook, "Sets the company's Retell webhook URL, events and signing secret and pushes them "
                                "to the agents (all, or agent_ids).",
        _schema({"webhook_url": {"type": "string", "description": "https URL; \"\" removes the webhook."},
                 "events": {"type": "array", "items": {"enum": ["call_started", "call_ended", "call_analyzed",
                                                                 "transcript_updated", "call_transferred"]}},
                 "agent_ids": AGENT_IDS,
                 "secret": {"type": "string", "description": "Signing secret; omitted keeps it, \"\" removes it."}},
                ["webhook_url", "events"]), writes=True),
    "deployCustomFunctions": Operation(
        gateway.deploy_custom_functions, "Writes custom functions into the agents' Retell LLMs (their assigned "
                                         "ones, or the named ones); returns the sync run.",
        _schema({"agent_ids": AGENT_IDS,
                 "functions": {"type": ["array", "object"], "items": {"type": "string"},
                               "description": "Function names, or an object of name to definition to save first."}},
                ["agent_ids"]), writes=True),
    "syncAll": Operation(
        gateway.sync_all, "Syncs every agent of the company with Retell (drift is recorded, nothing local is "
                          "overwritten); returns the sync run.", _schema({}, []), writes=True),
    "getSyncRun": Operation(
        gateway.get_sync_run, "Reads a sync run: status, progress, outcome, drift and errors.",
        _schema({"sync_run_id": {"type": "integer"}}, ["sync_run_id"])),
    "exportFunctions": Operation(
        gateway.export_functions, "Exports the company's custom functions: backup (re-importable), retell, or "
                                  "elevenlabs (for one agent, with a new tool key).",
        _schema({"format": {"enum": ["backup", "retell", "elevenlabs"]}, "agent_id": AGENT_ID}, [])),
    "importFunctions": Operation(
        gateway.import_functions, "Imports custom functions from a backup document (validated as in the admin).",
        _schema({"document": {"type": "object", "description": "A backup export's document."}}, ["document"]),
        writes=True),
    "listAppointments": Operation(
        list_appointments, "Lists appointments by start time, filtered by day (YYYY-MM-DD, the company's time "
                           "zone), status, the agent whose call booked them, or the caller's phone number.",
        _schema({"day": {"type": "string", "format": "date"},
                 "status": {"enum": list(Appointment.Status.values)},
                 "agent_id": AGENT_ID, "phone": {"type": "string", "description": "E.164 or as the caller said it."},
                 "limit": {"type": "integer", "minimum": 1, "maximum": LIST_LIMIT_MAX}}, [])),
    "getAppointment": Operation(
        get_appointment, "Reads one appointment.", _schema({"appointment_id": {"type": "integer"}},
                                                             ["appointment_id"])),
    "listCalls": Operation(
        list_calls, "Lists the latest calls (newest first), optionally of one agent.",
        _schema({"agent_id": AGENT_ID, "limit": {"type": "integer", "minimum": 1, "maximum": LIST_LIMIT_MAX}}, [])),
    "getCall": Operation(
        get_call, "Reads one call with its transcript, turns and analysis.",
        _schema({"call_id": {"type": "string"}}, ["call_id"])),
    "checkAvailability": Operation(
        check_availability, "Tells whether a date (and a time) is free for a service, with the nearest free "
                            "times otherwise, by the booking rules the phone agents use. Books nothing.",
        _schema(AVAILABILITY_ARGS["properties"], list(AVAILABILITY_ARGS["required"]))),
    "listScenarios": Operation(
        list_scenarios, "Lists an agent's saved scenarios (test calls): the caller's script, the expectations "
                        "the call is judged by, and the latest run.", _schema({"agent_id": AGENT_ID}, ["agent_id"])),
    "runScenario": Operation(
        run_scenario, "Runs one saved scenario of an agent (scenario_id) or all of them (all: true): each makes a "
                      "simulated test call to the agent (its bookings are released afterwards) and judges it. "
                      "Runs in the background: poll getScenarioRun with the returned scenario_run_ids.",
        _schema({"agent_id": AGENT_ID,
                 "scenario_id": {"type": "integer", "description": "A scenario of the agent (listScenarios)."},
                 "all": {"type": "boolean", "description": "Run every scenario of the agent instead."}},
                ["agent_id"]), writes=True),
    "getScenarioRun": Operation(
        get_scenario_run, "Reads a scenario run: status (queued, running, passed, failed, error), progress in "
                          "caller lines, each expectation's verdict with its reason, the error, the transcript.",
        _schema({"scenario_run_id": {"type": "integer"}}, ["scenario_run_id"])),
}
