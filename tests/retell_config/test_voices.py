"""Retell voices and this server's own ElevenLabs voice are two settings (issue 12, item 3).

A Retell agent's voice_id is Retell's id ("11labs-Adrian", "retell-Cimo"), as Retell's voice
list (GET /list-voices, the SDK's voice.list) gives it; the ElevenLabs voice id with its
stability and similarity is what this server's own speech (the Twilio path) uses.
"""

import pytest
from django.core.cache import cache
from django.urls import reverse

from audit.actor import Actor
from retell_config import selectors, services
from retell_config.models import Agent
from retell_config.voices import RETELL_VOICES
from tests.fakes import free_port

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


@pytest.fixture(autouse=True)
def _no_cached_voices(company_a):
    cache.delete(selectors.voices_cache_key(company_a))
    yield
    cache.delete(selectors.voices_cache_key(company_a))


def prompt_page(client, agent) -> str:
    return client.get(reverse("retell-prompt", args=[agent.pk]), {"company": agent.company_id}).content.decode()


def prompt_post(client, agent, **changes):
    data = {"company": agent.company_id, "general_prompt": agent.general_prompt, "begin_message": agent.begin_message,
            "custom_instructions": agent.custom_instructions, "voice_id": agent.voice_id,
            "voice_speed": agent.voice_speed, "elevenlabs_voice_id": agent.elevenlabs_voice_id,
            "voice_stability": agent.voice_stability, "voice_similarity_boost": agent.voice_similarity_boost,
            "language": agent.language, "note": "", "base_version": agent.prompt_versions.count(), **changes}
    return client.post(reverse("retell-prompt", args=[agent.pk]), data)


def test_pull_remote_takes_a_retell_voice_id(owner_client, company_a, retell_agents, fake_retell,
                                             django_capture_on_commit_callbacks):
    # given: Retell's agent speaks with "11labs-Myra"; a first sync records the drift
    main, _ = retell_agents
    fake_retell.state.agents["agent_abc123"]["voice_id"] = "11labs-Myra"
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("retell-sync"), {"company": company_a.pk})

    # when the owner presses "Pull remote"
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("retell-resolve", args=[main.pk]),
                                     {"company": company_a.pk, "direction": "pull"}, follow=True)

    # then: the agent takes Retell's voice, with no "is not a valid choice"
    main.refresh_from_db()
    assert main.voice_id == "11labs-Myra"
    assert "is not a valid choice" not in response.content.decode()


def test_the_voice_picker_lists_the_voices_retell_offers_the_company(owner_client, retell_agents, fake_retell):
    fake_retell.add_voice("custom_voice_7c1d", voice_name="Dr. Weber (cloned)", provider="elevenlabs",
                          gender="male")
    main, _ = retell_agents

    html = prompt_page(owner_client, main)

    assert 'value="custom_voice_7c1d"' in html and "Dr. Weber (cloned)" in html
    assert 'value="retell-Cimo"' in html
    assert fake_retell.lines().count("GET /list-voices") == 1
    prompt_page(owner_client, main)
    assert fake_retell.lines().count("GET /list-voices") == 1  # cached per company


def test_without_retell_the_picker_offers_the_shipped_catalogue(owner_client, retell_agents, fake_retell, settings):
    settings.RETELL_BASE_URL = f"http://127.0.0.1:{free_port()}"
    main, _ = retell_agents

    html = prompt_page(owner_client, main)

    for voice in RETELL_VOICES:
        assert f'value="{voice.voice_id}"' in html


def test_a_voice_retell_does_not_offer_is_refused_when_pushing_from_the_ui(owner_client, retell_agents,
                                                                         fake_retell):
    main, _ = retell_agents
    prompt_page(owner_client, main)

    response = prompt_post(owner_client, main, voice_id="21m00Tcm4TlvDq8ikWAM")

    assert response.status_code == 200 and "not one of the available choices" in response.content.decode()
    main.refresh_from_db()
    assert main.voice_id != "21m00Tcm4TlvDq8ikWAM"


def test_the_service_refuses_a_voice_outside_retells_list_when_it_pushes(retell_agents, fake_retell):
    main, _ = retell_agents
    with pytest.raises(services.ValidationError) as refused:
        services.agent_update(actor=SYSTEM, agent=main, fields={"voice_id": "21m00Tcm4TlvDq8ikWAM"})

    assert "voice_id" in refused.value.message_dict


def test_a_chosen_retell_voice_is_pushed_and_the_elevenlabs_voice_is_not(
        owner_client, retell_agents, fake_retell, django_capture_on_commit_callbacks):
    main, _ = retell_agents
    prompt_page(owner_client, main)

    with django_capture_on_commit_callbacks(execute=True):
        response = prompt_post(owner_client, main, voice_id="retell-Cimo", elevenlabs_voice_id="pNInz6obpgDQGcFmaJgB",
                               voice_stability="0.35")

    assert response.status_code == 302
    main.refresh_from_db()
    assert (main.voice_id, main.elevenlabs_voice_id, main.voice_stability) == (
        "retell-Cimo", "pNInz6obpgDQGcFmaJgB", 0.35)
    [pushed] = [r.body for r in fake_retell.requests if r.line == "PATCH /update-agent/agent_abc123"]
    assert pushed["voice_id"] == "retell-Cimo"
    assert "pNInz6obpgDQGcFmaJgB" not in str(pushed) and "stability" not in str(pushed)


def test_this_servers_speech_uses_the_elevenlabs_voice(company_a):
    from voice.speech import registry

    agent = Agent.objects.create(company=company_a, agent_id="agent_tw", name="Twilio desk",
                                 voice_id="11labs-Adrian", elevenlabs_voice_id="EXAVITQu4vr4xnSDxMaL",
                                 voice_stability=0.3, voice_similarity_boost=0.9)

    voice = registry.voice_settings_for(agent)

    assert (voice.voice_id, voice.stability, voice.similarity_boost) == ("EXAVITQu4vr4xnSDxMaL", 0.3, 0.9)


def test_the_migration_moves_elevenlabs_ids_to_this_servers_voice_and_keeps_retells(company_a):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("retell_config.migrations.0009_retell_and_elevenlabs_voices")
    synced = Agent.objects.create(company=company_a, agent_id="agent_m1", name="Synced", voice_id="21m00Tcm4TlvDq8ikWAM",
                                  remote_state={"voice_id": "11labs-Myra"})
    unsynced = Agent.objects.create(company=company_a, agent_id="agent_m2", name="New", voice_id="pNInz6obpgDQGcFmaJgB")
    retells = Agent.objects.create(company=company_a, agent_id="agent_m3", name="Cimo", voice_id="retell-Cimo")

    migration.split_voices(apps, None)

    assert {a.agent_id: (a.voice_id, a.elevenlabs_voice_id) for a in Agent.objects.all()} == {
        synced.agent_id: ("11labs-Myra", "21m00Tcm4TlvDq8ikWAM"),
        unsynced.agent_id: ("11labs-Adrian", "pNInz6obpgDQGcFmaJgB"),
        retells.agent_id: ("retell-Cimo", "")}
