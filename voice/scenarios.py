"""Saved scenarios: a caller script spoken to an agent over this server's real Retell socket, and
the verdict on what came of that one call.

A run is a simulated call (voice.call_simulator; Call.test_origin "scenario") driven line by
line with voice.simulator's client; its expectations are checked against the effects of that
call id only: the custom functions it ran with their results (FunctionInvocation rows, the
handlers' own ledger), the test appointments it holds, and the words of its transcript. The
call's test appointments are released when the run ends, so a run holds no time afterwards.

A run against a prompt draft stores the draft on its ScenarioRun; voice.selectors.call_context
applies it to that call id only. The agent is never changed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from websockets.exceptions import InvalidStatus, InvalidURI

from appointments.models import Appointment, FunctionInvocation
from audit.actor import Actor
from audit.services import activity_log, audit_record, instance_save
from retell_config.models import Agent

from .call_simulator import (
    AGENT_HANGUP,
    CALL_TRANSFER,
    CONNECTION_ERROR,
    USER_HANGUP,
    simulated_call_end,
    simulated_call_open,
    simulator_socket_url,
    socket_shown,
)
from .models import Call, Scenario, ScenarioRun
from .simulator import SILENCE, AgentTurn, CallEnded, SimulatedCall, new_call_id, script_lines

logger = logging.getLogger(__name__)

ANSWER_TIMEOUT_SECONDS = 20.0
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# The custom functions whose successful results are a booking, a move and a cancellation.
EFFECT_FUNCTIONS = {"collect_appointment_information": Scenario.Outcome.BOOKED,
                    "change_appointment_details": Scenario.Outcome.MOVED,
                    "cancel_appointment": Scenario.Outcome.CANCELLED}


# --- validation (Scenario.clean) ------------------------------------------------------------------

def script_problem(script: str) -> str | None:
    """Why a caller script cannot be run, or None."""
    if not script_lines(script or ""):
        return "Write at least one caller line."
    return None


def day_problem(day: str) -> str | None:
    """Why an expected day is neither an ISO date nor an English weekday, or None (also for empty)."""
    if not day or day.lower() in WEEKDAYS:
        return None
    try:
        date.fromisoformat(day)
    except ValueError:
        return "Write a date as 2026-12-02 or a weekday in English (monday … sunday)."
    return None


# --- the verdict ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Effect:
    """A booking, move or cancellation a call's custom function made: what, which service, when (local)."""
    kind: str
    service: str
    start: datetime | None
    appointment_id: int | None


@dataclass
class CallOutcome:
    """What a scenario's call gave: its answered turns, greeting, effects and how it ended."""
    greeting: str = ""
    turns: list[AgentTurn] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    test_appointment_ids: set[int] = field(default_factory=set)
    ended_by: str = USER_HANGUP

    @property
    def agent_words(self) -> str:
        return " ".join([self.greeting, *(turn.text for turn in self.turns)])

    @property
    def transferred(self) -> bool:
        return any(turn.transfer_number for turn in self.turns)


def call_effects(*, company_id: int, call_id: str) -> tuple[list[Effect], set[int]]:
    """The effects of one call, from the handlers' ledger (its successful function invocations, in
    order), and the ids of the test appointments this call holds."""
    effects = []
    for name, result in (FunctionInvocation.objects.filter(company_id=company_id, call_id=call_id,
                                                           name__in=list(EFFECT_FUNCTIONS))
                         .order_by("seq").values_list("name", "result")):
        if not isinstance(result, dict) or result.get("ok") is not True:
            continue
        try:
            start = datetime.fromisoformat(result["start"]) if result.get("start") else None
        except (TypeError, ValueError):
            start = None
        effects.append(Effect(kind=EFFECT_FUNCTIONS[name], service=str(result.get("service") or ""), start=start,
                              appointment_id=result.get("appointment_id")))
    held = set(Appointment.objects.filter(company_id=company_id, call_id=call_id, is_test=True)
               .values_list("pk", flat=True))
    return effects, held


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _effect_words(effect: Effect) -> str:
    when = effect.start.strftime("%A %Y-%m-%d %H:%M") if effect.start else "an unknown time"
    return f"{effect.service or 'no service'} on {when}"


def _effect_matches(scenario: Scenario, effect: Effect) -> str | None:
    """Why `effect` is not the one expected, or None when it is."""
    if scenario.expect_service and scenario.expect_service.lower() not in effect.service.lower():
        return f"the service is {effect.service or 'none'}, not {scenario.expect_service}"
    if effect.start is None and (scenario.expect_day or scenario.expect_time):
        return "its time is unknown"
    if scenario.expect_day:
        day = scenario.expect_day.lower()
        if day in WEEKDAYS and WEEKDAYS[effect.start.weekday()] != day:
            return f"it is on a {WEEKDAYS[effect.start.weekday()].title()}, not a {day.title()}"
        if day not in WEEKDAYS and effect.start.date().isoformat() != day:
            return f"it is on {effect.start.date().isoformat()}, not {day}"
    if scenario.expect_time and effect.start.time().replace(second=0, microsecond=0) != scenario.expect_time:
        return f"it is at {effect.start:%H:%M}, not {scenario.expect_time:%H:%M}"
    return None


def expectations_check(scenario: Scenario, outcome: CallOutcome) -> list[dict]:
    """Each expectation of `scenario` judged on `outcome`: [{expectation, passed, reason}], in the
    scenario's order; an expectation left empty is not listed."""
    results = []

    def judge(expectation: str, problem: str | None, fine: str) -> None:
        results.append({"expectation": expectation, "passed": problem is None, "reason": problem or fine})

    expected = scenario.expect_outcome
    if expected == Scenario.Outcome.NONE:
        made = outcome.effects
        judge("No appointment booked, moved or cancelled",
              f"the call {made[0].kind} {_effect_words(made[0])}" if made else None, "nothing was booked or changed")
    elif expected:
        label = Scenario.Outcome(expected).label
        details = ", ".join(part for part in (scenario.expect_service, scenario.expect_day,
                                              scenario.expect_time and f"{scenario.expect_time:%H:%M}") if part)
        of_kind = [e for e in outcome.effects if e.kind == expected]
        if expected == Scenario.Outcome.BOOKED:
            # A booking counts when this call's own test appointment row exists.
            of_kind = [e for e in of_kind if e.appointment_id in outcome.test_appointment_ids]
        problems = [_effect_matches(scenario, e) for e in of_kind]
        if not of_kind:
            others = [e for e in outcome.effects if e.kind != expected]
            problem = f"no appointment was {expected}" + (
                f" (the call {others[0].kind} {_effect_words(others[0])})" if others else "")
        elif None in problems:
            problem = None
        else:
            problem = f"the appointment {expected} does not match: {problems[-1]}"
        match = next((e for e, p in zip(of_kind, problems, strict=True) if p is None), None)
        judge(f"{label}" + (f" ({details})" if details else ""), problem,
              f"{expected} {_effect_words(match)}" if match else "")
    if scenario.expect_transfer:
        wanted = scenario.expect_transfer == Scenario.Transfer.YES
        number = next((t.transfer_number for t in outcome.turns if t.transfer_number), None)
        if wanted:
            judge("The agent transfers the call", None if number else "the agent did not transfer the call",
                  f"transferred to {number}")
        else:
            judge("The agent does not transfer the call", f"the agent transferred the call to {number}"
                  if number else None, "no transfer")
    words = outcome.agent_words.lower()
    for phrase in _lines(scenario.must_say):
        judge(f'Says "{phrase}"', None if phrase.lower() in words else f'the agent never said "{phrase}"',
              f'said "{phrase}"')
    for phrase in _lines(scenario.must_not_say):
        turn = next((t for t in outcome.turns if phrase.lower() in t.text.lower()), None)
        in_greeting = phrase.lower() in outcome.greeting.lower()
        problem = None
        if in_greeting:
            problem = f'the agent said "{phrase}" in its greeting'
        elif turn is not None:
            problem = f'the agent said "{phrase}" in answer {turn.response_id}: "{turn.text}"'
        judge(f'Never says "{phrase}"', problem, f'never said "{phrase}"')
    if scenario.max_turns is not None:
        count = len(outcome.turns)
        judge(f"At most {scenario.max_turns} answers",
              f"the call took {count} answers" if count > scenario.max_turns else None, f"{count} answers")
    if scenario.max_latency_ms is not None:
        slow = max((t for t in outcome.turns if t.first_chunk_ms is not None), key=lambda t: t.first_chunk_ms,
                   default=None)
        worst = slow.first_chunk_ms if slow else None
        judge(f"First chunk within {scenario.max_latency_ms} ms",
              f"answer {slow.response_id} took {worst:.0f} ms to its first chunk"
              if worst is not None and worst > scenario.max_latency_ms else None,
              f"slowest first chunk {worst:.0f} ms" if worst is not None else "no answers")
    return results


# --- saving --------------------------------------------------------------------------------------

def scenario_ensure(*, actor: Actor, agent: Agent, name: str, **fields) -> tuple[Scenario, bool]:
    """The agent's scenario called `name`, made with `fields` (Scenario's) when it has none; an
    existing one is left as it is. Returns (scenario, created); validated and audited."""
    existing = Scenario.objects.filter(agent=agent, name=name).first()
    if existing is not None:
        return existing, False
    scenario = Scenario(company_id=agent.company_id, agent=agent, name=name, **fields)
    return instance_save(actor=actor, instance=scenario), True


# --- starting runs -------------------------------------------------------------------------------

def scenario_runs_start(*, actor: Actor, scenarios: list[Scenario], prompt_draft: dict | None = None,
                        agent: Agent | None = None, enqueue: bool = True, variant=None) -> list[ScenarioRun]:
    """Queue one run per scenario (one batch) and, once committed, the Celery task that runs them
    (`enqueue=False`: the caller runs them itself with scenario_run_execute).

    `prompt_draft`: prompt texts (ScenarioRun.DRAFT_FIELDS) to use instead of the agent's; then every scenario
    must be of `agent`; `variant`: the experiment variant whose texts the draft holds (its pass rate).
    Raises ValidationError for no scenarios, scenarios of several companies, or a
    draft for scenarios of another agent. Each run gets its call id now, so the draft is bound to it.
    """
    if not scenarios:
        raise ValidationError("Choose at least one scenario.")
    companies = {s.company_id for s in scenarios}
    if len(companies) != 1:
        raise ValidationError("Run the scenarios of one company at a time.")
    draft = {k: str(v) for k, v in (prompt_draft or {}).items() if k in ScenarioRun.DRAFT_FIELDS}
    if prompt_draft is not None and (agent is None or any(s.agent_id != agent.pk for s in scenarios)):
        raise ValidationError("A prompt draft runs only its own agent's scenarios.")
    batch = uuid.uuid4()
    with transaction.atomic():
        runs = [ScenarioRun.objects.create(
            company_id=s.company_id, scenario=s, batch=batch, total=len(script_lines(s.script)),
            call_id=new_call_id(), prompt_draft=draft, triggered_by=actor.label[:200], variant=variant)
            for s in scenarios]
        company_id = companies.pop()
        for run in runs:
            audit_record(actor=actor, action="scenario.run", company_id=company_id, object_type="voice.scenariorun",
                         object_id=str(run.pk), object_repr=str(run)[:200],
                         changes={"scenario": {"before": None, "after": run.scenario_id},
                                  "against": {"before": None, "after": run.against},
                                  "batch": {"before": None, "after": str(batch)}})
        activity_log(company=company_id, kind="scenario.queued",
                     message=f"{len(runs)} scenario run(s) queued by {actor.label}"
                             + (" against a prompt draft." if draft else "."),
                     data={"batch": str(batch)} | ({"agent_id": agent.agent_id} if agent is not None else {}))
        if enqueue:
            from audit.receipts import enqueue_task

            from .tasks import scenario_runs_execute_task

            ids = [run.pk for run in runs]
            transaction.on_commit(lambda: enqueue_task(scenario_runs_execute_task, ids))
    return runs


def batch_runs(*, user, batch) -> list[ScenarioRun]:
    """The runs of one batch the user may see, with their scenarios and agents."""
    return list(ScenarioRun.objects.restrict(user, "view").filter(batch=batch)
                .select_related("scenario__agent", "company").order_by("pk"))


# --- running -------------------------------------------------------------------------------------

def scenario_run_execute(*, run_id: int, socket_base: str | None = None) -> ScenarioRun:
    """Make the run's call, say its script, judge it, release its test appointments. A run already
    started or finished is left alone. `socket_base`: a ws(s)://…/retell-llm base to dial instead of
    the agent's configured socket URL."""
    with transaction.atomic():
        run = (ScenarioRun.objects.select_for_update().select_related("scenario__agent__company")
               .filter(pk=run_id, status=ScenarioRun.Status.QUEUED).first())
        if run is None:
            return ScenarioRun.objects.get(pk=run_id)
        run.status, run.started_at = ScenarioRun.Status.RUNNING, timezone.now()
        run.save(update_fields=["status", "started_at"])
    scenario, agent = run.scenario, run.scenario.agent
    actor = Actor.system(f"scenario run #{run.pk}")
    call = simulated_call_open(actor=actor, agent=agent, origin=Call.TestOrigin.SCENARIO, call_id=run.call_id)
    url = simulator_socket_url(agent, call.call_id, base=socket_base)
    outcome = CallOutcome()
    try:
        _converse(run, agent, call, url, outcome)
    except InvalidStatus as error:
        run.error = (f"The server refused the socket {socket_shown(url)} (HTTP {error.response.status_code}): "
                     "is the agent's socket token current?")
    except (OSError, InvalidURI, TimeoutError, CallEnded) as error:
        run.error = f"The call over {socket_shown(url)} failed: {socket_shown(str(error)) or type(error).__name__}."
    except Exception:  # the run must end and release its call's bookings whatever went wrong
        logger.exception("Scenario run %s: the call failed.", run.pk)
        run.error = "The call failed on this server (its log has the details)."
    outcome.effects, outcome.test_appointment_ids = call_effects(company_id=run.company_id, call_id=call.call_id)
    run.transcript = _transcript(outcome)
    if run.error:
        outcome.ended_by = CONNECTION_ERROR
        run.status = ScenarioRun.Status.ERROR
    else:
        run.results = expectations_check(scenario, outcome)
        run.status = (ScenarioRun.Status.PASSED if all(r["passed"] for r in run.results)
                      else ScenarioRun.Status.FAILED)
    simulated_call_end(actor=actor, call=call, reason=outcome.ended_by)
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "transcript", "results", "error", "finished_at", "progress"])
    failed = [r for r in run.results if not r["passed"]]
    activity_log(company=run.company_id, kind=f"scenario.{run.status}",
                 level="info" if run.status == ScenarioRun.Status.PASSED else "warning",
                 message=f"Scenario {scenario.name}: {run.get_status_display()}"
                         + (f": {failed[0]['expectation']}: {failed[0]['reason']}" if failed else "")
                         + (f": {run.error}" if run.error else ""),
                 data={"call_id": call.call_id, "agent_id": agent.agent_id, "scenario_run_id": run.pk})
    return run


def _converse(run: ScenarioRun, agent: Agent, call: Call, url: str, outcome: CallOutcome) -> None:
    """Say the script turn by turn; the run's progress is saved between turns (outside the event loop)."""
    simulated = SimulatedCall(url, call_id=call.call_id, agent_id=agent.agent_id, from_number=call.from_number,
                              to_number=call.to_number or None)
    with asyncio.Runner() as runner:
        try:
            outcome.greeting = runner.run(simulated.connect(timeout=ANSWER_TIMEOUT_SECONDS))
            for line in script_lines(run.scenario.script):
                turn = runner.run(simulated.silence(timeout=ANSWER_TIMEOUT_SECONDS) if line == SILENCE
                                  else simulated.say(line, timeout=ANSWER_TIMEOUT_SECONDS))
                outcome.turns.append(turn)
                run.progress += 1
                ScenarioRun.objects.filter(pk=run.pk).update(progress=run.progress)
                if turn.end_call or turn.transfer_number:
                    outcome.ended_by = CALL_TRANSFER if turn.transfer_number else AGENT_HANGUP
                    break
        finally:
            runner.run(simulated.hang_up())


def _transcript(outcome: CallOutcome) -> list[dict]:
    lines = [{"role": "agent", "text": outcome.greeting}] if outcome.greeting else []
    for turn in outcome.turns:
        lines.append({"role": "caller", "text": turn.caller or SILENCE})
        for tool in turn.tool_calls:
            lines.append({"role": "tool", "text": f"{tool.name} {tool.arguments}", "result": tool.result,
                          "successful": tool.successful})
        lines.append({"role": "agent", "text": turn.text, "first_chunk_ms": _ms(turn.first_chunk_ms),
                      "complete_ms": _ms(turn.complete_ms), "end_call": turn.end_call,
                      "transfer_number": turn.transfer_number})
    return lines


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
