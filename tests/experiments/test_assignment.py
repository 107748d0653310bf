"""Weighted, deterministic, sticky assignment at a call's start (experiments.assignment, and
voice.selectors.call_context, which both call paths use)."""

import random
from collections import Counter

import pytest

from experiments.assignment import ExperimentPlan, VariantPlan, assign, caller_key
from experiments.models import Variant
from experiments.selectors import experiment_plan
from experiments.services import experiment_apply, experiment_start
from tests.experiments.conftest import SYSTEM
from voice.models import Call
from voice.selectors import call_context


def plan(*weights, experiment_id=7) -> ExperimentPlan:
    return ExperimentPlan(experiment_id=experiment_id, variants=tuple(
        VariantPlan(id=i + 1, name=f"V{i + 1}", weight=w, general_prompt="", begin_message="", custom_instructions="")
        for i, w in enumerate(weights)))


def callers(n: int, seed: int = 16) -> list[str]:
    rng = random.Random(seed)
    return [f"+49151{rng.randrange(10**7, 10**8)}" for _ in range(n)]


@pytest.mark.parametrize("weights", [(50, 50), (80, 20), (50, 30, 20)])
def test_ten_thousand_callers_split_within_one_percent_of_the_weights(weights):
    numbers = callers(10_000)
    the_plan = plan(*weights)

    counts = Counter(assign(the_plan, caller_number=n, call_id="x")[0].id for n in numbers)

    total = sum(weights)
    for index, weight in enumerate(weights):
        assert abs(counts[index + 1] / len(numbers) - weight / total) < 0.01, (counts, weights)


def test_the_same_caller_hears_the_same_variant_on_every_call_however_the_number_is_written():
    the_plan = plan(50, 50)
    numbers = callers(10_000)
    first = [assign(the_plan, caller_number=n, call_id=f"call_{i}")[0].id for i, n in enumerate(numbers)]
    again = [assign(the_plan, caller_number=n, call_id=f"other_{i}")[0].id for i, n in enumerate(numbers)]
    assert first == again
    spaced = "+49 151 " + numbers[0][6:]
    assert caller_key(spaced) == numbers[0]
    assert assign(the_plan, caller_number=spaced, call_id="y")[0].id == first[0]


def test_each_experiment_draws_its_own_buckets():
    numbers = callers(2_000)
    one = [assign(plan(50, 50, experiment_id=1), caller_number=n, call_id="c")[0].id for n in numbers]
    two = [assign(plan(50, 50, experiment_id=2), caller_number=n, call_id="c")[0].id for n in numbers]
    same = sum(a == b for a, b in zip(one, two, strict=True)) / len(numbers)
    assert 0.45 < same < 0.55   # independent halves agree about half of the time


def test_a_call_without_a_number_is_bucketed_by_its_call_id():
    variant, key = assign(plan(50, 50), caller_number=None, call_id="abc")
    assert key == "call:abc" and variant.id in (1, 2)


@pytest.mark.django_db
def test_call_context_gives_a_caller_the_variant_of_the_number_the_call_row_holds(draft, agent):
    experiment_start(actor=SYSTEM, experiment=draft)
    variant_b = Variant.objects.get(experiment=draft, name="B")
    the_plan = experiment_plan(agent_id=agent.pk)
    number = next(n for n in callers(100) if assign(the_plan, caller_number=n, call_id="")[0].id == variant_b.pk)
    for call_id in ("first_call", "second_call"):
        Call.objects.create(company=agent.company, agent=agent, call_id=call_id, from_number=number,
                            direction="inbound")

        context = call_context(agent=agent, call_id=call_id)

        assert context.agent.begin_message == "Hallo, hier Praxis Alpha!"
        assert context.agent.general_prompt == "Prompt B."
        assert context.agent.custom_instructions == "Say the price first."
        assert context.experiment.variant_id == variant_b.pk
        assert Call.objects.get(call_id=call_id).experiment_variant_id == variant_b.pk


@pytest.mark.django_db
def test_before_the_number_is_known_nothing_is_assigned_and_later_the_call_keeps_its_first_variant(draft, agent):
    experiment_start(actor=SYSTEM, experiment=draft)

    context = call_context(agent=agent, call_id="socket_first")   # no Call row yet: the number is unknown
    assert context.experiment is None and context.agent.begin_message == "Praxis Alpha, guten Tag."

    assigned = experiment_apply(context, "+4915112345678")   # call_details arrived
    assert assigned is not None
    assert Call.objects.get(call_id="socket_first").experiment_variant_id == assigned.variant_id
    assert experiment_apply(context, "+4915199999999") is assigned   # never switches within a call


@pytest.mark.django_db
def test_without_a_running_experiment_the_call_hears_the_agents_own_prompt(draft, agent):
    Call.objects.create(company=agent.company, agent=agent, call_id="c1", from_number="+4915112345678")
    context = call_context(agent=agent, call_id="c1")
    assert context.experiment is None
    assert context.agent.general_prompt == "Live prompt."
    assert Call.objects.get(call_id="c1").experiment_variant_id is None


@pytest.mark.django_db
def test_a_reconnect_keeps_the_variant_its_row_recorded_whatever_the_number_says(draft, agent):
    experiment_start(actor=SYSTEM, experiment=draft)
    a, b = draft.variants.order_by("pk")
    the_plan = experiment_plan(agent_id=agent.pk)
    number_of_a = next(n for n in callers(100) if assign(the_plan, caller_number=n, call_id="")[0].id == a.pk)
    Call.objects.create(company=agent.company, agent=agent, call_id="reconnected", from_number=number_of_a,
                        experiment_variant=b)   # the first connection was given B (bucketed before the number)

    context = call_context(agent=agent, call_id="reconnected")

    assert context.experiment.variant_id == b.pk and context.experiment.sticky_key == "recorded"
    assert context.agent.general_prompt == "Prompt B."
