"""An edit of an agent with unresolved drift asks which side wins, field by field (issue 12, item 4).

Found input: a sync reported that Retell's agent runs another response engine than ours;
saving a prompt then pushed the whole agent and silently overwrote Retell's engine. The
prompt page, the gateway's updateAgent and the admin change form all go through the same
service check (services.DriftConflict unless the caller says which side wins per field).
"""

import pytest
from django.urls import reverse

from audit.actor import Actor
from retell_config import selectors, services
from retell_config.models import Agent
from tests.retell_config.test_gateway import Gateway, token_for

pytestmark = pytest.mark.django_db
RETELLS_SOCKET = "wss://elsewhere.example.com/llm-websocket"


@pytest.fixture
def drifted(owner_client, company_a, retell_agents, fake_retell, django_capture_on_commit_callbacks):
    """agent_abc123 runs a Custom LLM elsewhere on Retell; a Sync All reported it as drift."""
    main, _ = retell_agents
    fake_retell.state.agents["agent_abc123"]["response_engine"] = {"type": "custom-llm",
                                                                   "llm_websocket_url": RETELLS_SOCKET}
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("retell-sync"), {"company": company_a.pk})
    fake_retell.clear_requests()
    main.refresh_from_db()
    assert {"response_engine", "llm_id"} <= set(main.remote_drift)
    return main


def prompt_form(agent: Agent, **changes) -> dict:
    return {"company": agent.company_id, "general_prompt": agent.general_prompt, "begin_message": agent.begin_message,
            "custom_instructions": agent.custom_instructions, "voice_id": agent.voice_id,
            "voice_speed": agent.voice_speed, "elevenlabs_voice_id": agent.elevenlabs_voice_id,
            "voice_stability": agent.voice_stability, "voice_similarity_boost": agent.voice_similarity_boost,
            "language": agent.language, "note": "", "base_version": agent.prompt_versions.count(), **changes}


def agent_updates(fake_retell) -> list:
    return [r for r in fake_retell.requests if r.method == "PATCH"]


def test_saving_a_prompt_over_unresolved_drift_shows_the_conflict_and_overwrites_nothing(
        owner_client, drifted, fake_retell, django_capture_on_commit_callbacks):
    # when the owner saves a prompt while the drift is unresolved
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("retell-prompt", args=[drifted.pk]),
                                     prompt_form(drifted, general_prompt="Please ask for the insurance."))

    # then: the page shows each conflicting field with both sides and asks which wins
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="rwc-drift"' in html
    for field in ("response_engine", "llm_id"):
        assert f'name="drift_{field}" value="local"' in html and f'name="drift_{field}" value="remote"' in html
    assert "custom-llm" in html and "retell-llm" in html
    # and nothing of Retell's was overwritten, nothing of ours saved
    assert agent_updates(fake_retell) == []
    assert fake_retell.state.agents["agent_abc123"]["response_engine"]["llm_websocket_url"] == RETELLS_SOCKET
    drifted.refresh_from_db()
    assert drifted.general_prompt == "Old prompt"


def test_the_page_shows_the_conflict_before_the_edit(owner_client, drifted):
    html = owner_client.get(reverse("retell-prompt", args=[drifted.pk]), {"company": drifted.company_id}).content

    assert b'id="rwc-drift"' in html and b'name="drift_response_engine"' in html


def test_taking_retells_engine_keeps_it_and_pushes_the_prompt_edit(
        owner_client, drifted, fake_retell, django_capture_on_commit_callbacks):
    choices = {"drift_response_engine": "remote", "drift_llm_id": "remote", "drift_socket_url_ok": "local"}
    form = prompt_form(drifted, general_prompt="Please ask for the insurance.", **choices)

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("retell-prompt", args=[drifted.pk]), form)

    assert response.status_code == 302
    drifted.refresh_from_db()
    assert (drifted.response_engine, drifted.llm_id) == ("custom-llm", "")
    assert drifted.general_prompt == "Please ask for the insurance."
    assert "response_engine" not in drifted.remote_drift and "llm_id" not in drifted.remote_drift
    assert fake_retell.state.agents["agent_abc123"]["response_engine"]["type"] == "custom-llm"


def test_keeping_ours_field_by_field_pushes_ours(owner_client, drifted, fake_retell, django_capture_on_commit_callbacks):
    conflicts = selectors.drift_conflicts(drifted)
    choices = {f"drift_{name}": "local" for name in conflicts}

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("retell-prompt", args=[drifted.pk]),
                                     prompt_form(drifted, general_prompt="Ours.", **choices))

    assert response.status_code == 302
    assert fake_retell.state.agents["agent_abc123"]["response_engine"] == {"type": "retell-llm", "llm_id": "llm_main"}
    drifted.refresh_from_db()
    assert selectors.drift_conflicts(drifted) == {}


def test_choosing_for_some_fields_only_is_still_a_conflict(drifted):
    with pytest.raises(services.DriftConflict) as conflict:
        services.agent_update(actor=Actor.system("t"), agent=drifted, fields={"general_prompt": "X"},
                              drift={"response_engine": "remote"})

    assert "llm_id" in conflict.value.fields and "response_engine" not in conflict.value.fields


def test_the_gateway_answers_a_conflict_naming_the_fields_and_takes_the_choice(
        client, owner_a, drifted, fake_retell, django_capture_on_commit_callbacks):
    gateway = Gateway(client, token_for(owner_a))
    params = {"company_id": drifted.company_id, "agent_id": "agent_abc123", "fields": {"general_prompt": "Ours."}}

    error = gateway.call("retell_config.updateAgent", params)["error"]

    assert error["code"] == -32009 and error["data"]["param"] == "drift"
    assert error["data"]["drift"]["response_engine"] == {"local": "retell-llm", "remote": "custom-llm",
                                                         "can_take_remote": True}
    assert agent_updates(fake_retell) == []
    choices = {name: "local" for name in error["data"]["drift"]}
    with django_capture_on_commit_callbacks(execute=True):
        result = gateway.call("retell_config.updateAgent", {**params, "drift": choices})["result"]
    assert result["agent"]["unresolved_drift"] == {}
    assert fake_retell.state.agents["agent_abc123"]["response_engine"]["type"] == "retell-llm"


def test_the_admin_change_form_asks_too(owner_client, drifted, fake_retell, django_capture_on_commit_callbacks):
    url = reverse("admin:retell_config_agent_change", args=[drifted.pk])
    form = {"name": "Main desk", "phone_numbers": '["+493083793369"]', "language": "de-DE",
            "response_engine": "retell-llm", "llm_id": "llm_main", "dialog_engine": "embedded",
            "voice_id": drifted.voice_id, "voice_speed": "1.0", "elevenlabs_voice_id": "", "voice_stability": "0.5",
            "voice_similarity_boost": "0.75", "begin_message": "Hallo!", "general_prompt": "Old prompt",
            "custom_instructions": "", "webhook_url": ""}

    refused = owner_client.post(url, form)

    assert refused.status_code == 200 and "Retell" in refused.content.decode()
    assert 'name="drift_response_engine"' in refused.content.decode()
    assert agent_updates(fake_retell) == []
    choices = {f"drift_{name}": "local" for name in selectors.drift_conflicts(drifted)}
    with django_capture_on_commit_callbacks(execute=True):
        saved = owner_client.post(url, {**form, **choices})
    assert saved.status_code == 302
    drifted.refresh_from_db()
    assert drifted.name == "Main desk" and selectors.drift_conflicts(drifted) == {}


def test_pull_remote_resolves_what_it_takes_and_leaves_the_socket_url_to_decide(
        owner_client, drifted, fake_retell, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("retell-resolve", args=[drifted.pk]),
                          {"company": drifted.company_id, "direction": "pull"})
    drifted.refresh_from_db()

    # Retell's engine is ours now; its socket URL (another server's) cannot be taken, so it is asked
    conflicts = selectors.drift_conflicts(drifted)
    assert drifted.response_engine == "custom-llm" and list(conflicts) == ["socket_url_ok"]
    assert conflicts["socket_url_ok"]["local"].startswith("wss://voicedesk.example.com/retell-llm/")
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("retell-prompt", args=[drifted.pk]),
                                     prompt_form(drifted, general_prompt="After the pull.",
                                                 drift_socket_url_ok="local"))
    assert response.status_code == 302
    assert fake_retell.state.agents["agent_abc123"]["response_engine"]["llm_websocket_url"] == \
        conflicts["socket_url_ok"]["local"]


def test_push_local_resolves_the_drift(owner_client, drifted, fake_retell, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("retell-resolve", args=[drifted.pk]),
                          {"company": drifted.company_id, "direction": "push"})
    drifted.refresh_from_db()

    assert selectors.drift_conflicts(drifted) == {}
