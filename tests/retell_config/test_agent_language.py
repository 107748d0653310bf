"""An agent speaks its company's language unless told otherwise: every place that creates an
agent (the service, the admin's add form, the sync with Retell) starts from the company's
language, Retell's own language wins when it has one, and the seeded functions speak the
company's language too."""

import importlib

import pytest
from django.urls import reverse

from audit.actor import Actor
from retell_config import services
from retell_config.models import Agent, CustomFunction, SyncRun
from tests.factories import make_member, make_user

ACTOR = Actor.system("tests")
ADD = reverse("admin:retell_config_agent_add")


def sync(company, django_capture_on_commit_callbacks) -> SyncRun:
    with django_capture_on_commit_callbacks(execute=True):
        run = services.sync_all(actor=ACTOR, company=company)
    run.refresh_from_db()
    return run


def add_form_values(response) -> dict:
    """What the add form would post if the user changed nothing."""
    form = response.context["adminform"].form
    return {name: form[name].value() for name in form.fields if form[name].value() is not None}


# --- the service ----------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(("company_language", "agent_language"), [("en", "en-US"), ("de", "de-DE")])
def test_an_agent_created_by_the_service_speaks_its_companys_language(company_a, company_language, agent_language):
    company_a.language = company_language
    company_a.save()

    agent, created = services.agent_upsert(actor=ACTOR, company=company_a, agent_id="agent_new", name="Sophie")

    assert created and Agent.objects.get(pk=agent.pk).language == agent_language


@pytest.mark.django_db
def test_an_existing_agent_keeps_its_stored_language_when_upserted_again(company_b):
    agent, _ = services.agent_upsert(actor=ACTOR, company=company_b, agent_id="agent_new", name="Sophie")
    services.agent_update(actor=ACTOR, agent=agent, fields={"language": "en-GB"}, push=False)

    services.agent_upsert(actor=ACTOR, company=company_b, agent_id="agent_new", name="Sophie renamed")

    assert Agent.objects.get(pk=agent.pk).language == "en-GB"


# --- the admin's add form -------------------------------------------------------------------
@pytest.mark.django_db
def test_the_admin_add_form_of_an_english_company_starts_in_english_and_creates_an_en_us_agent(client, company_b):
    client.force_login(make_member(company_b, "owner"))
    response = client.get(ADD)
    assert response.context["adminform"].form["language"].value() == "en-US"

    posted = client.post(ADD, {**add_form_values(response), "name": "Front Desk", "agent_id": "agent_front"})

    assert posted.status_code == 302, posted.context["adminform"].form.errors if posted.context else posted
    assert Agent.objects.get(agent_id="agent_front").language == "en-US"


@pytest.mark.django_db
def test_a_superuser_adding_an_agent_gets_the_language_of_the_company_chosen(client, company_a, company_b):
    client.force_login(make_user(is_superuser=True))
    assert client.get(ADD, {"company": company_b.pk}).context["adminform"].form["language"].value() == "en-US"
    response = client.get(ADD)  # the company is picked in the form itself

    posted = client.post(ADD, {**add_form_values(response), "company": company_b.pk, "name": "Front Desk",
                               "agent_id": "agent_front"})

    assert posted.status_code == 302, posted.context["adminform"].form.errors if posted.context else posted
    assert Agent.objects.get(agent_id="agent_front").language == "en-US"


# --- the gateway ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_gateway_puts_an_agent_back_into_its_companys_language_when_given_an_empty_one(
        client, owner_a, company_a, retell_agents, fake_retell, django_capture_on_commit_callbacks):
    from tenants.services import api_token_create

    main, _ = retell_agents
    services.agent_update(actor=ACTOR, agent=main, fields={"language": "en-GB"}, push=False)
    token = api_token_create(actor=ACTOR, user=owner_a, name="tests")[1]

    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post("/api/mcp/gateway", {
            "jsonrpc": "2.0", "method": "retell_config.updateAgent", "id": 1,
            "params": {"company_id": company_a.pk, "agent_id": main.agent_id, "fields": {"language": ""}}},
            content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}").json()

    assert answer["result"]["agent"]["language"] == "de-DE", answer
    assert Agent.objects.get(pk=main.pk).language == "de-DE"
    assert fake_retell.state.agents[main.agent_id]["language"] == "de-DE"


# --- the sync with Retell -------------------------------------------------------------------
@pytest.mark.django_db
def test_an_agent_retell_holds_without_a_language_is_created_in_its_companys_language(
        company_b, fake_retell, django_capture_on_commit_callbacks):
    fake_retell.add_agent("agent_night", agent_name="Night Line")
    del fake_retell.state.agents["agent_night"]["language"]

    run = sync(company_b, django_capture_on_commit_callbacks)

    assert Agent.objects.get(agent_id="agent_night").language == "en-US"
    assert "language" not in run.drift.get("agent_night", {})


@pytest.mark.django_db
def test_an_agent_retell_holds_with_a_language_is_created_in_retells_language(
        company_a, fake_retell, django_capture_on_commit_callbacks):
    fake_retell.add_agent("agent_night", agent_name="Night Line", language="en-GB")

    sync(company_a, django_capture_on_commit_callbacks)

    assert Agent.objects.get(agent_id="agent_night").language == "en-GB"


@pytest.mark.django_db
def test_a_sync_keeps_the_stored_language_when_retell_holds_none(company_a, retell_agents, fake_retell,
                                                                 django_capture_on_commit_callbacks):
    main, _ = retell_agents
    services.agent_update(actor=ACTOR, agent=main, fields={"language": "en-GB"}, push=False)
    del fake_retell.state.agents["agent_abc123"]["language"]

    run = sync(company_a, django_capture_on_commit_callbacks)

    assert Agent.objects.get(pk=main.pk).language == "en-GB"
    assert "language" not in run.drift.get("agent_abc123", {})


# --- the seeded functions -------------------------------------------------------------------
@pytest.mark.django_db
def test_a_german_companys_seeded_functions_speak_german(company_a):
    functions = services.custom_functions_seed(actor=ACTOR, company=company_a, agents=[])

    assert functions and {f.execution_message for f in functions} == {"Einen Moment, bitte."}


@pytest.mark.django_db
def test_an_english_companys_seeded_functions_speak_english(company_b):
    functions = services.custom_functions_seed(actor=ACTOR, company=company_b, agents=[])

    assert functions and {f.execution_message for f in functions} == {"One moment, please."}


@pytest.mark.django_db
def test_the_migration_puts_only_the_exact_seeded_default_of_german_companies_into_german(company_a, company_b):
    from django.apps import apps

    migration = importlib.import_module("retell_config.migrations.0006_german_function_execution_message")
    url = "https://voicedesk.example.com/api/mcp/retell/custom-function"
    seeded = CustomFunction.objects.create(company=company_a, name="seeded", url=url,
                                           execution_message="One moment, please.")
    typed = CustomFunction.objects.create(company=company_a, name="typed", url=url,
                                          execution_message="One moment, please, I'll check.")
    silent = CustomFunction.objects.create(company=company_a, name="silent", url=url, execution_message="")
    english = CustomFunction.objects.create(company=company_b, name="seeded", url=url,
                                            execution_message="One moment, please.")

    migration.execution_message_in_company_language(apps, None)

    assert {f.pk: f.execution_message for f in CustomFunction.objects.all()} == {
        seeded.pk: "Einen Moment, bitte.", typed.pk: "One moment, please, I'll check.", silent.pk: "",
        english.pk: "One moment, please."}
