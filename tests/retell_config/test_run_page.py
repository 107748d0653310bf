"""The sync run's page: one row per drifted field with its local and remote value side by
side, values written as JSON, only fields a person can act on, and a field that Push local
or Pull remote resolved shown as resolved."""

import json

import pytest
from django.urls import reverse

from audit.actor import Actor
from retell_config import services
from retell_config.models import Agent, SyncRun
from retell_config.protocols.retell_api import INSTRUCTIONS_MARKER
from tests.html import table_rows

INSTRUCTIONS = "Bitte immer nach der Versicherung fragen."


def run_page(client, company, run):
    response = client.get(reverse("retell-run", args=[run.pk]), {"company": company.pk})
    assert response.status_code == 200
    return response.content.decode()


def drift_rows(html: str, agent_id: str) -> dict[str, dict]:
    """{field: {"local", "remote", "state"}} of one agent's drift rows."""
    return {row["attrs"]["data-field"]: {"local": row["cells"][-3], "remote": row["cells"][-2],
                                         "state": row["cells"][-1]}
            for row in table_rows(html, "rwc-drift") if row["attrs"].get("data-agent") == agent_id}


def buttons(html: str, agent_id: str) -> list[str]:
    """The resolve buttons offered for one agent (Pull remote, Push local act on the whole agent)."""
    return [value for row in table_rows(html, "rwc-drift") if row["attrs"].get("data-agent") == agent_id
            for value in row["buttons"]]


@pytest.fixture
def drifted(owner_client, company_a, retell_agents, fake_retell, django_capture_on_commit_callbacks):
    """The found input: Retell holds custom instructions and webhook events the local agent has not,
    and another name; the local agent's instructions are empty."""
    main, _ = retell_agents
    fake_retell.state.llms["llm_main"]["general_prompt"] = "Old prompt" + INSTRUCTIONS_MARKER + INSTRUCTIONS
    fake_retell.state.agents["agent_abc123"].update(
        agent_name="Empfang", webhook_url="https://hooks.example.com/retell",
        webhook_events=["call_started", "call_ended"])
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("retell-sync"), {"company": company_a.pk})
    return main, SyncRun.objects.get(kind="sync_all")


@pytest.mark.django_db
def test_each_drifted_field_is_one_row_with_its_own_local_and_remote_value(owner_client, company_a, drifted):
    main, run = drifted

    rows = drift_rows(run_page(owner_client, company_a, run), "agent_abc123")

    assert rows["custom_instructions"]["local"] == "(empty)"
    assert rows["custom_instructions"]["remote"] == INSTRUCTIONS
    assert rows["name"]["local"] == "Main Reception Agent" and rows["name"]["remote"] == "Empfang"
    assert rows["webhook_url"]["local"] == "(empty)"
    assert rows["webhook_url"]["remote"] == "https://hooks.example.com/retell"


@pytest.mark.django_db
def test_lists_and_objects_are_written_as_json_and_internal_fields_are_not_listed(owner_client, company_a,
                                                                                  drifted):
    main, run = drifted

    html = run_page(owner_client, company_a, run)
    rows = drift_rows(html, "agent_abc123")

    assert json.loads(rows["webhook_events"]["local"]) == []
    assert json.loads(rows["webhook_events"]["remote"]) == ["call_started", "call_ended"]
    assert "socket_url_ok" not in html and "['call_started'" not in html


@pytest.mark.django_db
def test_push_local_shows_the_fields_resolved_without_buttons(owner_client, company_a, drifted,
                                                              django_capture_on_commit_callbacks):
    main, run = drifted
    page_before = run_page(owner_client, company_a, run)

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("retell-resolve", args=[main.pk]), {"company": company_a.pk, "direction": "push"})
    page_after = run_page(owner_client, company_a, run)
    after = drift_rows(page_after, "agent_abc123")

    assert buttons(page_before, "agent_abc123") == ["pull", "push"]
    assert drift_rows(page_before, "agent_abc123")["name"]["state"] == "Differs."
    assert buttons(page_after, "agent_abc123") == []
    assert all(row["state"].startswith("Resolved") for row in after.values()), after
    assert after["name"]["state"] == "Resolved: Retell now holds the local value."


@pytest.mark.django_db
def test_pull_remote_shows_the_pulled_fields_resolved(owner_client, company_a, drifted):
    main, run = drifted

    owner_client.post(reverse("retell-resolve", args=[main.pk]), {"company": company_a.pk, "direction": "pull"})
    page_after = run_page(owner_client, company_a, run)
    after = drift_rows(page_after, "agent_abc123")

    assert Agent.objects.get(pk=main.pk).custom_instructions == INSTRUCTIONS
    assert after["custom_instructions"]["state"] == "Resolved: Retell's value was taken."
    assert after["name"]["state"] == "Resolved: Retell's value was taken."
    # The webhook events are the company's: a pull does not take them; only a push resolves them.
    assert after["webhook_events"]["state"] == "Differs; only Push local settles it (a pull does not take it)."
    assert buttons(page_after, "agent_abc123") == ["push"]


@pytest.mark.django_db
def test_a_custom_llm_socket_pointing_elsewhere_is_shown_by_retells_field_without_the_token(
        owner_client, company_a, fake_retell, django_capture_on_commit_callbacks):
    fake_retell.add_agent("agent_sock", agent_name="Socket")
    agent = Agent.objects.create(company=company_a, agent_id="agent_sock", name="Socket",
                                 response_engine="custom-llm")
    with django_capture_on_commit_callbacks(execute=True):
        run = services.sync_all(actor=Actor.system("t"), company=company_a)

    html = run_page(owner_client, company_a, run)
    rows = drift_rows(html, "agent_sock")

    assert rows["llm_websocket_url"]["local"] == "this server's socket URL for the agent"
    assert rows["llm_websocket_url"]["remote"] == "another URL"
    assert agent.socket_token not in html and "socket_url_ok" not in html
