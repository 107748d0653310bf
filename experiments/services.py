"""Every write of prompt A/B testing: create, start, stop and promote experiments (each audited),
give a call its variant at its start, and keep Retell's traffic split in step.

Who may write: a user who may change the experiment's agent (its role, and its grants when
its membership is limited to granted agents); a viewer may look, not start. The system
(tasks, webhooks) may do all.

Retell LLM agents run their prompt at Retell, so this server never hears their calls: there
the variants become published Retell agent versions and the agent's phone numbers get
weighted `inbound_agents` (shared/reference/retell.md 5.4), so Retell splits the traffic; the
call webhooks name the version that answered (`agent_version`), which gives the call its
variant (`call_variant_record`). Stopping or promoting restores each number's binding as it
was before the start (a single binding of the agent).
"""

from __future__ import annotations

import dataclasses
import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.actor import Actor
from audit.services import activity_log, instance_save
from retell_config.client import RetellClient, RetellError
from retell_config.models import Agent
from retell_config.protocols.retell_api import compose_prompt
from retell_config.services import agent_update

from . import selectors
from .assignment import Assignment, assign
from .models import Experiment, Variant

logger = logging.getLogger(__name__)

SYSTEM = Actor.system("prompt experiments")


def _require_change(actor: Actor, agent: Agent, what: str) -> None:
    user = None if actor.kind == "system" else actor.user
    if user is None:
        return
    if not _role_may_change_experiments(user, agent) \
            or not Agent.objects.restrict(user, "change").filter(pk=agent.pk).exists():
        raise PermissionDenied(f"{what}: you may not change the experiments of {agent.name}.")


def _role_may_change_experiments(user, agent: Agent) -> bool:
    from tenants.selectors import companies_allowing

    return companies_allowing(user=user, model=Experiment, action="change").filter(pk=agent.company_id).exists()


def _log(experiment: Experiment, kind: str, message: str, level: str = "info") -> None:
    activity_log(company=experiment.company_id, kind=f"experiments.{kind}", level=level, message=message,
                 data={"agent_id": experiment.agent.agent_id, "experiment_id": experiment.pk})


# --- create ---------------------------------------------------------------------------------------
@transaction.atomic
def experiment_create(*, actor: Actor, agent: Agent, name: str, variants: list[dict],
                      primary_metric: str = "booking_conversion", baseline: float = 0.3,
                      minimum_detectable_effect: float = 0.1, starts_at=None, ends_at=None) -> Experiment:
    """A draft experiment of `agent` with `variants`, each a dict of Variant fields (name, weight,
    general_prompt, begin_message, custom_instructions, voice_id, elevenlabs_voice_id, dialog_engine,
    source_version). ValidationError on a bad field; PermissionDenied for a user who may not change
    the agent."""
    _require_change(actor, agent, "Creating an experiment")
    experiment = instance_save(actor=actor, instance=Experiment(
        company_id=agent.company_id, agent=agent, name=name, primary_metric=primary_metric, baseline=baseline,
        minimum_detectable_effect=minimum_detectable_effect, starts_at=starts_at, ends_at=ends_at))
    for values in variants:
        variant_save(actor=actor, variant=Variant(company_id=agent.company_id, experiment=experiment, **values))
    return experiment


def variant_save(*, actor: Actor, variant: Variant) -> Variant:
    """Save a variant of a draft (texts it leaves empty filled, variant_fill), audited.
    ValidationError once its experiment has started: what callers heard stays as it was."""
    experiment = variant.experiment
    _require_change(actor, experiment.agent, f"Changing the variants of {experiment.name}")
    if experiment.status != Experiment.Status.DRAFT:
        raise ValidationError("The variants of a started experiment cannot change.")
    variant_fill(variant)
    return instance_save(actor=actor, instance=variant)


def variant_fill(variant: Variant) -> None:
    """Texts a variant leaves empty come from its source version, else from the agent's live
    prompt: a variant that changes only the greeting keeps the prompt, and one that changes
    nothing is the control."""
    source = variant.source_version or variant.experiment.agent
    for name in ("general_prompt", "begin_message", "custom_instructions"):
        if not getattr(variant, name):
            setattr(variant, name, getattr(source, name))


def experiment_scenarios_run(*, actor: Actor, experiment: Experiment) -> list:
    """Run the agent's saved scenarios against each variant's texts (as a prompt draft of the
    scenario runs: the agent is not changed), before the start; the results show each variant's
    pass rate (selectors.scenario_pass_rate). Returns the queued ScenarioRuns. ValidationError when
    the agent has no scenarios; PermissionDenied for a user who may not change the experiment."""
    from voice.models import Scenario
    from voice.scenarios import scenario_runs_start

    agent = experiment.agent
    _require_change(actor, agent, "Run the scenarios")
    scenarios = list(Scenario.objects.filter(agent=agent).order_by("pk"))
    if not scenarios:
        raise ValidationError(f"{agent.name} has no saved scenarios yet: add some under Scenarios first.")
    runs = []
    for variant in experiment.variants.order_by("pk"):
        variant_fill(variant)
        texts = {name: getattr(variant, name) for name in ("general_prompt", "begin_message", "custom_instructions")}
        runs += scenario_runs_start(actor=actor, scenarios=scenarios, prompt_draft=texts, agent=agent,
                                    variant=variant)
    _log(experiment, "scenarios", f"{experiment.name}: {len(runs)} scenario run(s) queued, "
                                  f"{len(scenarios)} per variant.")
    return runs


# --- start, stop, promote ----------------------------------------------------------------------------
def _locked(experiment: Experiment) -> Experiment:
    return Experiment.objects.select_for_update().select_related("agent", "company").get(pk=experiment.pk)


@transaction.atomic
def experiment_start(*, actor: Actor, experiment: Experiment) -> Experiment:
    """Start a draft: from now on its agent's calls are assigned to its variants.

    Needs two or more variants and no other running experiment of the agent; a Retell LLM agent
    needs its Retell LLM id. Its variants are then published at Retell and the numbers split
    after the commit (experiment_retell_execute). ValidationError otherwise."""
    experiment = _locked(experiment)
    agent = experiment.agent
    _require_change(actor, agent, f"Starting {experiment.name}")
    if experiment.status != Experiment.Status.DRAFT:
        raise ValidationError(f"{experiment.name} is {experiment.get_status_display().lower()}: only a draft "
                              "can be started.")
    variants = list(experiment.variants.all())
    if len(variants) < 2:
        raise ValidationError("An experiment needs two or more variants to start.")
    now = timezone.now()
    if experiment.ends_at and experiment.ends_at <= now:
        raise ValidationError({"ends_at": "The planned end has passed: set a later end first."})
    if Experiment.objects.filter(agent=agent, status=Experiment.Status.RUNNING).exists():
        raise ValidationError(f"{agent.name} already runs an experiment: stop it first.")
    retell = agent.response_engine == Agent.ResponseEngine.RETELL_LLM
    if retell and not agent.llm_id:
        raise ValidationError(f"{agent.name} runs on the Retell LLM engine but has no Retell LLM id.")
    for variant in variants:
        variant_fill(variant)
        instance_save(actor=actor, instance=variant)
    experiment.status = Experiment.Status.RUNNING
    experiment.started_at = now
    try:
        with transaction.atomic():
            instance_save(actor=actor, instance=experiment, action="start")
    except IntegrityError:  # another start of the same agent won the race
        raise ValidationError(f"{agent.name} already runs an experiment: stop it first.") from None
    _log(experiment, "started", f"Experiment {experiment.name} of {agent.name} started by {actor.label} "
                                f"({len(variants)} variants).")
    if retell:
        _retell_after_commit(experiment, "split")
    return experiment


@transaction.atomic
def experiment_stop(*, actor: Actor, experiment: Experiment) -> Experiment:
    """Stop a running experiment: no call is assigned any more; a Retell LLM agent's numbers get
    their binding from before the start back. ValidationError for one not running."""
    experiment = _locked(experiment)
    _require_change(actor, experiment.agent, f"Stopping {experiment.name}")
    if experiment.status != Experiment.Status.RUNNING:
        raise ValidationError(f"{experiment.name} is not running.")
    experiment.status = Experiment.Status.STOPPED
    experiment.stopped_at = timezone.now()
    instance_save(actor=actor, instance=experiment, action="stop")
    _log(experiment, "stopped", f"Experiment {experiment.name} stopped by {actor.label}.")
    if experiment.agent.response_engine == Agent.ResponseEngine.RETELL_LLM:
        _retell_after_commit(experiment, "restore")
    return experiment


@transaction.atomic
def experiment_promote(*, actor: Actor, experiment: Experiment, variant: Variant) -> Experiment:
    """Make `variant` the agent's live prompt: a new prompt version (pushed to Retell where it
    applies, retell_config.services.agent_update), the experiment closed (promoted) and the other
    variants out of traffic at once. A running or stopped experiment can be promoted."""
    experiment = _locked(experiment)
    agent = experiment.agent
    _require_change(actor, agent, f"Promoting a variant of {experiment.name}")
    if experiment.status not in (Experiment.Status.RUNNING, Experiment.Status.STOPPED):
        raise ValidationError(f"{experiment.name} is {experiment.get_status_display().lower()}: only a running "
                              "or stopped experiment can be promoted.")
    if variant.experiment_id != experiment.pk:
        raise ValidationError({"variant": "Choose one of this experiment's variants."})
    was_running = experiment.status == Experiment.Status.RUNNING
    fields = {"general_prompt": variant.general_prompt, "begin_message": variant.begin_message,
              "custom_instructions": variant.custom_instructions}
    if variant.voice_id:
        fields["voice_id"] = variant.voice_id
    if variant.elevenlabs_voice_id:
        fields["elevenlabs_voice_id"] = variant.elevenlabs_voice_id
    if variant.dialog_engine:
        fields["dialog_engine"] = variant.dialog_engine
    agent, version, _run = agent_update(actor=actor, agent=agent, fields=fields,
                                        note=f"Promoted {variant.name} of experiment {experiment.name}")
    experiment.status = Experiment.Status.PROMOTED
    experiment.stopped_at = experiment.stopped_at or timezone.now()
    experiment.winner = variant
    experiment.promoted_version = version or agent.prompt_versions.order_by("-number").first()
    instance_save(actor=actor, instance=experiment, action="promote")
    _log(experiment, "promoted", f"{variant.name} of experiment {experiment.name} promoted by {actor.label}: "
                                 f"the live prompt of {agent.name} is now "
                                 f"v{experiment.promoted_version.number if experiment.promoted_version else '?'}.")
    if was_running and agent.response_engine == Agent.ResponseEngine.RETELL_LLM:
        _retell_after_commit(experiment, "restore")
    return experiment


def experiments_stop_due(*, now=None) -> list[Experiment]:
    """Stop every running experiment whose planned end has passed (Celery beat), as the system;
    a Retell LLM agent's numbers get their single binding back."""
    now = now or timezone.now()
    stopped = []
    for experiment in Experiment.objects.filter(status=Experiment.Status.RUNNING, ends_at__lte=now):
        actor = Actor.system(f"planned end of experiment #{experiment.pk}")
        try:
            stopped.append(experiment_stop(actor=actor, experiment=experiment))
        except ValidationError:  # stopped meanwhile by someone else
            continue
    return stopped


# --- a call's start --------------------------------------------------------------------------------
def experiment_apply(context, caller_number: str | None) -> Assignment | None:
    """Give a starting call its variant, once: the agent's running experiment (read into
    `context.experiment_plan` the first time), the variant its caller's number falls into
    (experiments.assignment), that variant's prompt, greeting, instructions and dialog engine
    on `context.agent`, and the variant recorded on the call's row (made if not there yet).

    `context` is a voice.dialog.base.CallContext. While the caller's number is unknown
    (None: the Retell socket before call_details) nothing is assigned and None is returned;
    call again once it is known, with "" for a call that has none (it is then bucketed by its
    call id). A second call after an assignment returns the same one and changes nothing, so
    a call never switches variants (a reconnect keeps the variant its row recorded). Test calls are assigned (a simulated call hears its
    variant) and never counted (experiments.selectors). Reads and writes the database: call
    it from a thread (database_sync_to_async on the socket)."""
    if context.experiment is not None:
        return context.experiment
    if context.experiment_plan is None:
        context.experiment_plan = selectors.experiment_plan(agent_id=context.agent.id) or False
    plan = context.experiment_plan
    if not plan or caller_number is None:
        return None
    recorded = selectors.call_variant_of(company_id=context.company.id, call_id=context.call_id)
    variant = next((v for v in plan.variants if v.id == recorded), None)
    if variant is not None:   # a reconnect of a call that has its variant keeps it
        key = "recorded"
    else:
        variant, key = assign(plan, caller_number=caller_number or None, call_id=context.call_id)
    changes = {"general_prompt": variant.general_prompt, "begin_message": variant.begin_message,
               "custom_instructions": variant.custom_instructions}
    if variant.dialog_engine:
        changes["dialog_engine"] = variant.dialog_engine
    context.agent = dataclasses.replace(context.agent, **changes)
    context.experiment = Assignment(experiment_id=plan.experiment_id, variant_id=variant.id,
                                    variant_name=variant.name, elevenlabs_voice_id=variant.elevenlabs_voice_id,
                                    sticky_key=key)
    call_assignment_record(company_id=context.company.id, agent_id=context.agent.id, call_id=context.call_id,
                           variant_id=variant.id)
    return context.experiment


def call_assignment_record(*, company_id: int, agent_id: int, call_id: str, variant_id: int) -> None:
    """Keep the call's variant on its row; the row is made when no event made it yet (the
    webhooks fill in the rest). A variant already recorded is kept."""
    from voice.models import Call

    if not call_id:
        return
    rows = Call.objects.filter(company_id=company_id, call_id=call_id)
    if rows.filter(experiment_variant__isnull=True).update(experiment_variant_id=variant_id) or rows.exists():
        return
    try:
        with transaction.atomic():
            Call.objects.create(company_id=company_id, call_id=call_id, agent_id=agent_id,
                                experiment_variant_id=variant_id)
    except IntegrityError:  # an event of the call made the row meanwhile
        rows.filter(experiment_variant__isnull=True).update(experiment_variant_id=variant_id)


def call_variant_record(call, call_payload: dict, agent: Agent | None) -> None:
    """From a Retell call object: the agent version that answered (`agent_version`) on the call,
    and for a Retell LLM `agent` in an experiment the variant published as that version. Changes
    `call` unsaved (voice.services.call_apply_event saves it)."""
    version = call_payload.get("agent_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        return
    call.agent_version = version
    if call.experiment_variant_id is None and agent is not None and call.agent_id == agent.pk \
            and agent.response_engine == Agent.ResponseEngine.RETELL_LLM:
        variant_id = (Variant.objects.filter(experiment__agent_id=agent.pk, retell_agent_version=version)
                      .order_by("-pk").values_list("pk", flat=True).first())
        if variant_id is not None:
            call.experiment_variant_id = variant_id


# --- Retell's traffic split ---------------------------------------------------------------------------
def _retell_after_commit(experiment: Experiment, step: str) -> None:
    from .tasks import experiment_retell_task

    transaction.on_commit(lambda: experiment_retell_task.delay(experiment.pk, step))


def _shares(variants: list[Variant]) -> list[float]:
    """Weights as shares that sum to exactly 1 (Retell's rule), to four decimals."""
    total = sum(v.weight for v in variants)
    shares = [round(v.weight / total, 4) for v in variants]
    shares[-1] = round(1 - sum(shares[:-1]), 4)
    return shares


def experiment_retell_execute(*, experiment_id: int, step: str) -> Experiment:
    """Bring Retell in step with a Retell LLM agent's experiment. `step` "split": publish each
    variant as a Retell agent version (its prompt and greeting on the agent's LLM, its voice on
    the agent) and set every number bound to the agent to weighted inbound_agents; the LLM and
    the agent are then left as the live prompt has them. "restore": give each number its
    inbound_agents from before the start back (one binding of the agent when none was kept).
    A failure is kept on the experiment (retell_error) and in the activity log."""
    experiment = Experiment.objects.select_related("agent", "company").get(pk=experiment_id)
    agent = experiment.agent
    try:
        with RetellClient(experiment.company) as client:
            if step == "split":
                _split(client, experiment, agent)
            else:
                _restore(client, experiment, agent)
    except RetellError as exc:
        Experiment.objects.filter(pk=experiment.pk).update(retell_error=exc.message[:500])
        _log(experiment, f"retell_{step}", f"Experiment {experiment.name}: Retell {step} failed: {exc.message}",
             level="error")
        experiment.retell_error = exc.message[:500]
        return experiment
    Experiment.objects.filter(pk=experiment.pk).update(retell_error="")
    experiment.refresh_from_db()
    return experiment


def _bound_numbers(client: RetellClient, agent: Agent) -> dict[str, list]:
    numbers = {n["phone_number"]: n.get("inbound_agents") or [] for n in client.list_phone_numbers()
               if any(b.get("agent_id") == agent.agent_id for b in n.get("inbound_agents") or [])}
    for number in agent.phone_numbers:
        numbers.setdefault(number, [{"agent_id": agent.agent_id, "weight": 1}])
    return numbers


def _split(client: RetellClient, experiment: Experiment, agent: Agent) -> None:
    variants = list(experiment.variants.order_by("pk"))
    for variant in variants:
        client.update_llm(agent.llm_id, {
            "general_prompt": compose_prompt(variant.general_prompt, variant.custom_instructions),
            "begin_message": variant.begin_message})
        client.update_agent(agent.agent_id, {"voice_id": variant.voice_id or agent.voice_id})
        draft = client.get_agent(agent.agent_id).get("version")
        if not isinstance(draft, int):
            raise RetellError(f"get agent {agent.agent_id}: Retell's answer has no version.")
        client.publish_agent(agent.agent_id, version=draft, title=f"{experiment.name}: {variant.name}"[:100])
        Variant.objects.filter(pk=variant.pk).update(retell_agent_version=draft)
        variant.retell_agent_version = draft
    # The draft goes back to the live prompt, so the next ordinary push starts from it.
    client.update_llm(agent.llm_id, {"general_prompt": compose_prompt(agent.general_prompt,
                                                                      agent.custom_instructions),
                                     "begin_message": agent.begin_message})
    client.update_agent(agent.agent_id, {"voice_id": agent.voice_id})
    before = _bound_numbers(client, agent)
    Experiment.objects.filter(pk=experiment.pk).update(retell_bindings_before=before)
    binding = [{"agent_id": agent.agent_id, "agent_version": v.retell_agent_version, "weight": share}
               for v, share in zip(variants, _shares(variants), strict=True)]
    for number in before:
        client.update_phone_number(number, {"inbound_agents": binding})
    _log(experiment, "retell_split", f"Experiment {experiment.name}: Retell splits the calls to "
                                     f"{', '.join(before) or 'no number'} between agent versions "
                                     f"{', '.join(str(v.retell_agent_version) for v in variants)}.")


def _restore(client: RetellClient, experiment: Experiment, agent: Agent) -> None:
    kept = experiment.retell_bindings_before or {}
    numbers = {**{n: b for n, b in _bound_numbers(client, agent).items()}, **kept}
    single = [{"agent_id": agent.agent_id, "weight": 1}]
    for number, binding in numbers.items():
        restored = [b for b in binding if isinstance(b, dict)] or single
        if sum(1 for b in restored if b.get("agent_id") == agent.agent_id) > 1:
            restored = single
        client.update_phone_number(number, {"inbound_agents": restored})
    _log(experiment, "retell_restore", f"Experiment {experiment.name}: the numbers "
                                       f"{', '.join(numbers) or 'none'} are bound to {agent.agent_id} alone again.")
