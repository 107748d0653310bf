"""A Retell LLM agent's experiment through the fake Retell API: variants published as agent
versions, the number split by weighted inbound_agents, the webhook's agent_version naming the
call's variant, and promotion writing the prompt version and audit entry and restoring one binding."""

import pytest

from audit.models import AuditEntry
from experiments.models import Experiment, Variant
from experiments.services import experiment_create, experiment_promote, experiment_start, experiment_stop
from retell_config.models import PromptVersion
from tests.experiments.conftest import API_KEY, NUMBER, SYSTEM
from tests.fakes import retell
from voice.models import Call

pytestmark = pytest.mark.django_db(transaction=True)  # the webhook's receipt writer commits on its own connection


@pytest.fixture
def experiment(retell_llm_agent, celery_eager):
    return experiment_create(actor=SYSTEM, agent=retell_llm_agent, name="Friendlier", variants=[
        {"name": "A", "weight": 70},
        {"name": "B", "weight": 30, "general_prompt": "Prompt B.", "begin_message": "Guten Tag, schön dass Sie anrufen!",
         "voice_id": "11labs-Myra"}])


def binding(fake) -> list[dict]:
    return fake.state.phone_numbers[NUMBER]["inbound_agents"]


def test_starting_publishes_each_variant_as_an_agent_version_and_splits_the_number_by_weight(
        experiment, fake_retell):
    experiment_start(actor=SYSTEM, experiment=experiment)

    a, b = Variant.objects.filter(experiment=experiment).order_by("pk")
    versions = fake_retell.state.agent_versions["agent_abc123"]
    assert versions[a.retell_agent_version]["llm"] == {"general_prompt": "Old prompt", "begin_message": "Hallo!"}
    assert versions[b.retell_agent_version]["llm"] == {"general_prompt": "Prompt B.",
                                                       "begin_message": "Guten Tag, schön dass Sie anrufen!"}
    assert versions[b.retell_agent_version]["voice_id"] == "11labs-Myra"
    assert binding(fake_retell) == [
        {"agent_id": "agent_abc123", "agent_version": a.retell_agent_version, "weight": 0.7},
        {"agent_id": "agent_abc123", "agent_version": b.retell_agent_version, "weight": 0.3}]
    # the draft is left as the live prompt has it
    assert fake_retell.state.llms["llm_main"]["general_prompt"] == "Old prompt"
    assert Experiment.objects.get(pk=experiment.pk).retell_error == ""


def test_the_call_webhook_names_the_version_that_answered_and_so_the_calls_variant(
        client, experiment, fake_retell):
    experiment_start(actor=SYSTEM, experiment=experiment)
    b = Variant.objects.get(experiment=experiment, name="B")
    body = retell.event_body("call_ended", retell.call_object("call_b1", "agent_abc123",
                                                              agent_version=b.retell_agent_version))

    response = client.post("/api/retell/webhook", data=body, content_type="application/json",
                           **retell.headers(body, API_KEY))

    assert response.status_code == 204
    call = Call.objects.get(call_id="call_b1")
    assert call.agent_version == b.retell_agent_version and call.experiment_variant == b


def test_promotion_writes_the_version_and_audit_entry_and_restores_a_single_binding(experiment, fake_retell):
    experiment_start(actor=SYSTEM, experiment=experiment)
    b = Variant.objects.get(experiment=experiment, name="B")

    experiment_promote(actor=SYSTEM, experiment=experiment, variant=b)

    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.PROMOTED and experiment.winner == b
    latest = PromptVersion.objects.filter(agent=experiment.agent).order_by("-number").first()
    assert experiment.promoted_version == latest
    assert (latest.general_prompt, latest.begin_message) == ("Prompt B.", "Guten Tag, schön dass Sie anrufen!")
    assert "Promoted B" in latest.note
    assert AuditEntry.objects.filter(action="promote", object_type="experiments.experiment",
                                     object_id=str(experiment.pk)).exists()
    assert binding(fake_retell) == [{"agent_id": "agent_abc123", "weight": 1}]
    # the winner is the live prompt at Retell too (the agent push after the new version)
    assert fake_retell.state.llms["llm_main"]["general_prompt"] == "Prompt B."
    assert fake_retell.state.agents["agent_abc123"]["voice_id"] == "11labs-Myra"


def test_stopping_restores_the_single_binding_and_keeps_the_live_prompt(experiment, fake_retell):
    experiment_start(actor=SYSTEM, experiment=experiment)

    experiment_stop(actor=SYSTEM, experiment=experiment)

    assert binding(fake_retell) == [{"agent_id": "agent_abc123", "weight": 1}]
    assert fake_retell.state.llms["llm_main"]["general_prompt"] == "Old prompt"
    assert AuditEntry.objects.filter(action="stop", object_id=str(experiment.pk)).exists()


def test_retell_refusing_the_split_is_kept_on_the_experiment(experiment, fake_retell):
    fake_retell.fail(400, path=r"/update-phone-number/", times=1)

    experiment_start(actor=SYSTEM, experiment=experiment)

    assert "Retell answered 400" in Experiment.objects.get(pk=experiment.pk).retell_error


def test_an_experiment_past_its_planned_end_is_stopped_and_retell_gets_one_binding_back(experiment, fake_retell):
    from datetime import timedelta

    from django.utils import timezone

    from experiments.tasks import experiments_stop_due_task

    experiment_start(actor=SYSTEM, experiment=experiment)
    Experiment.objects.filter(pk=experiment.pk).update(ends_at=timezone.now() - timedelta(seconds=1))

    assert experiments_stop_due_task() == 1

    assert Experiment.objects.get(pk=experiment.pk).status == Experiment.Status.STOPPED
    assert binding(fake_retell) == [{"agent_id": "agent_abc123", "weight": 1}]
    assert experiments_stop_due_task() == 0
