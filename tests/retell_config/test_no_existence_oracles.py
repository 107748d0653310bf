"""Adding an agent answers the same whether or not another company holds its Retell agent id."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.actor import Actor
from retell_config import services
from retell_config.models import Agent, SyncRun
from tests.factories import make_member

ACTOR = Actor.system("tests")
ADD = reverse("admin:retell_config_agent_add")


def add_form(agent_id: str) -> dict:
    return {"name": "Front desk", "agent_id": agent_id, "phone_numbers": "[]", "language": "de-DE",
            "response_engine": "custom-llm", "dialog_engine": "embedded", "voice_id": "11labs-Adrian",
            "voice_stability": "0.5", "voice_similarity_boost": "0.75", "voice_speed": "1.0"}


@pytest.fixture
def held(company_a, company_b):
    """One agent id held by company B, one by company A itself."""
    Agent.objects.create(company=company_b, agent_id="agent_theirs", name="Theirs")
    Agent.objects.create(company=company_a, agent_id="agent_ours", name="Ours")


@pytest.mark.django_db
def test_the_admin_answers_alike_for_an_agent_id_another_company_holds_and_one_the_company_holds(
        client, company_a, held):
    client.force_login(make_member(company_a, "owner"))

    theirs = client.post(ADD, add_form("agent_theirs"))
    ours = client.post(ADD, add_form("agent_ours"))

    assert theirs.status_code == ours.status_code == 200
    their_errors = theirs.context["adminform"].form.errors["agent_id"]
    assert their_errors == ours.context["adminform"].form.errors["agent_id"]
    assert "compan" not in str(their_errors).lower()
    assert Agent.objects.filter(agent_id="agent_theirs").count() == 1


@pytest.mark.django_db
def test_the_service_answers_another_companys_agent_id_as_the_admin_does_without_naming_its_holder(
        client, company_a, held):
    client.force_login(make_member(company_a, "owner"))
    admin_answer = client.post(ADD, add_form("agent_theirs")).context["adminform"].form.errors["agent_id"]

    with pytest.raises(ValidationError) as refused:
        services.agent_upsert(actor=ACTOR, company=company_a, agent_id="agent_theirs", name="Mine now")

    assert refused.value.message_dict == {"agent_id": list(admin_answer)}
    assert Agent.objects.get(agent_id="agent_theirs").name == "Theirs"


@pytest.mark.django_db
def test_a_sync_reports_an_agent_id_another_company_holds_without_naming_its_holder(
        company_a, company_b, fake_retell, django_capture_on_commit_callbacks):
    Agent.objects.create(company=company_b, agent_id="agent_theirs", name="Theirs")
    fake_retell.add_agent("agent_theirs", agent_name="Listed in A's Retell account")

    with django_capture_on_commit_callbacks(execute=True):
        run = services.sync_all(actor=ACTOR, company=company_a)

    run.refresh_from_db()
    outcome = run.outcome["agent_theirs"]
    assert outcome["status"] == "failed" and run.status == SyncRun.Status.FAILED
    assert "compan" not in outcome["detail"].lower()
    assert Agent.objects.get(agent_id="agent_theirs").company == company_b
