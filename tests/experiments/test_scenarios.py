"""The saved scenarios run against each variant before an experiment starts: each variant's texts
are the runs' prompt draft (the agent is not changed), and the results show each variant's pass rate."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.actor import Actor
from experiments.selectors import experiment_results, scenario_pass_rate
from experiments.services import experiment_scenarios_run
from voice.models import Scenario, ScenarioRun

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")


@pytest.fixture
def scenarios(agent):
    return [Scenario.objects.create(company=agent.company, agent=agent, name=name, language="de",
                                    script="Hallo\nIch möchte einen Termin.")
            for name in ("booking", "question")]


def test_each_variant_gets_one_run_per_scenario_with_its_own_texts(draft, scenarios, agent):
    runs = experiment_scenarios_run(actor=SYSTEM, experiment=draft)

    a, b = draft.variants.order_by("pk")
    assert sorted((run.variant_id, run.scenario_id) for run in runs) == sorted(
        (variant.pk, scenario.pk) for variant in (a, b) for scenario in scenarios)
    by_variant = {run.variant_id: run.prompt_draft for run in runs}
    assert by_variant[a.pk]["begin_message"] == "Praxis Alpha, guten Tag."   # A keeps the live greeting
    assert by_variant[b.pk] == {"general_prompt": "Prompt B.", "begin_message": "Hallo, hier Praxis Alpha!",
                                "custom_instructions": "Say the price first."}
    agent.refresh_from_db()
    assert agent.begin_message == "Praxis Alpha, guten Tag."   # the agent is never changed


def test_the_pass_rate_counts_the_latest_finished_run_of_each_scenario(draft, scenarios):
    experiment_scenarios_run(actor=SYSTEM, experiment=draft)
    a, b = draft.variants.order_by("pk")
    booking, question = scenarios
    runs = {(run.variant_id, run.scenario_id): run for run in ScenarioRun.objects.all()}
    earlier = timezone.now() - timezone.timedelta(minutes=5)
    ScenarioRun.objects.filter(pk=runs[a.pk, booking.pk].pk).update(status="passed", finished_at=timezone.now())
    ScenarioRun.objects.filter(pk=runs[a.pk, question.pk].pk).update(status="error", finished_at=timezone.now())
    # An older failure of the booking scenario does not count against its newer pass.
    old = ScenarioRun.objects.get(pk=runs[a.pk, booking.pk].pk)
    old.pk, old.status, old.finished_at, old.call_id = None, "failed", earlier, "older_call"
    old.save()

    assert scenario_pass_rate(a) == pytest.approx(0.5)
    assert scenario_pass_rate(b) is None   # queued, none finished
    rows = {row.variant.pk: row for row in experiment_results(experiment=draft).rows}
    assert rows[a.pk].scenario_pass_rate == pytest.approx(0.5) and rows[b.pk].scenario_pass_rate is None


def test_an_agent_without_scenarios_is_told_so(draft):
    with pytest.raises(ValidationError, match="no saved scenarios"):
        experiment_scenarios_run(actor=SYSTEM, experiment=draft)


def test_a_viewer_may_not_run_them(draft, scenarios, company_a):
    from tests.factories import make_member

    viewer = make_member(company_a, "viewer")
    with pytest.raises(Exception, match="may not change"):
        experiment_scenarios_run(actor=Actor(kind="user", label="viewer", user=viewer), experiment=draft)
    assert not ScenarioRun.objects.exists()
