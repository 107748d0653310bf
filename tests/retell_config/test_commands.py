"""mcp_status, sync_agents and deploy_functions against the fake Retell API; the demo seed."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from appointments.function_specs import FUNCTION_SPECS
from audit.actor import Actor
from retell_config import services
from retell_config.client import circuit_for
from retell_config.models import Agent, CustomFunction, WebhookConfig
from tenants.demo import demo_seed
from tenants.models import Company


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_mcp_status_reports_reachability_circuit_agents_functions_and_last_sync(company_a, retell_agents,
                                                                                fake_retell):
    services.custom_functions_seed(actor=Actor.system("t"), company=company_a, agents=retell_agents)

    out = run("mcp_status", "retell_config", "--company", company_a.slug)

    assert "Retell API:  reachable" in out
    assert "Status:      Connected" in out
    assert "Last try:    " in out and "reach Retell: answered" in out
    assert "Circuit:     closed, 0 failure(s) in a row" in out
    assert "Agents:      2" in out
    assert "Functions:   0 of 4 deployed" in out
    assert "Last sync:   never" in out
    assert fake_retell.lines() == ["GET /v2/list-retell-llms"]


@pytest.mark.django_db
def test_mcp_status_shows_an_unreachable_api_and_the_open_circuit(settings, company_a, fake_retell):
    fake_retell.fail(503, times=100)
    breaker = circuit_for(company_a.pk)
    for _ in range(breaker.failure_threshold - 1):
        breaker.record_failure("HTTP 503")

    out = run("mcp_status", "retell_config", "--company", company_a.slug)

    assert "unreachable" in out and "503" in out
    assert "Status:      Disconnected" in out and "Circuit:     open" in out


@pytest.mark.django_db
def test_sync_agents_prints_drift_and_keeps_local_changes(company_a, retell_agents, fake_retell):
    run("sync_agents", "--company", company_a.slug)
    main, _ = retell_agents
    services.agent_update(actor=Actor.system("t"), agent=main, fields={"begin_message": "Local hello"}, push=False)
    fake_retell.state.llms["llm_main"]["begin_message"] = "Remote hello"

    out = run("sync_agents", "--company", company_a.slug)

    assert "agent_abc123: drift" in out
    # Values as JSON, as the run page shows them; no internal field.
    assert 'drift begin_message: local "Local hello" / remote "Remote hello"' in out
    assert "socket_url_ok" not in out
    assert Agent.objects.get(pk=main.pk).begin_message == "Local hello"


@pytest.mark.django_db
def test_deploy_functions_for_one_agent_touches_only_its_llm(company_a, retell_agents, fake_retell):
    services.custom_functions_seed(actor=Actor.system("t"), company=company_a, agents=retell_agents)

    out = run("deploy_functions", "--company", company_a.slug, "--agent", "agent_xyz789")

    assert "agent_xyz789: ok" in out
    assert fake_retell.lines() == ["GET /get-retell-llm/llm_backup", "PATCH /update-retell-llm/llm_backup"]


@pytest.mark.django_db
def test_commands_name_an_unknown_company_or_agent(company_a):
    with pytest.raises(CommandError, match="nowhere"):
        run("sync_agents", "--company", "nowhere")
    with pytest.raises(CommandError, match="agent_nope"):
        run("deploy_functions", "--agent", "agent_nope")


@pytest.mark.django_db
def test_a_failed_sync_makes_the_command_fail(company_a, fake_retell):
    fake_retell.fail(500, times=100)
    with pytest.raises(CommandError, match="1 sync"):
        run("sync_agents", "--company", company_a.slug)


@pytest.mark.django_db
def test_the_demo_companies_get_the_four_functions_and_a_webhook_once(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("VOICEDESK_DEMO_PASSWORD", "demo-pass-for-tests")
    demo_seed()
    demo_seed()

    demo = Company.objects.get(slug="askproai-demo")
    functions = CustomFunction.objects.filter(company=demo)
    assert sorted(functions.values_list("name", flat=True)) == sorted(FUNCTION_SPECS)
    assert {f.url for f in functions} == {settings.PUBLIC_BASE_URL.rstrip("/") + "/api/mcp/retell/custom-function"}
    assert set(functions.get(name="cancel_appointment").agents.values_list("agent_id", flat=True)) == {
        "agent_abc123", "agent_xyz789"}
    webhook = WebhookConfig.objects.get(company=demo)
    assert webhook.events == ["call_started", "call_ended", "call_analyzed"]
    assert CustomFunction.objects.count() == 8 and WebhookConfig.objects.count() == 2


def test_celery_beat_schedules_the_periodic_sync_of_every_company(settings):
    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["retell-sync-all-companies"]
    assert entry["task"] == "retell_config.tasks.sync_all_companies"
    assert entry["schedule"] == settings.RETELL_SYNC_INTERVAL_SECONDS
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
