"""seed_demo gives each demo agent its company's language, a system prompt and a greeting,
on a fresh database and over a demo seeded before agents had them."""

import io

import pytest
from django.apps import apps
from django.core.management import call_command

from retell_config.models import Agent, PromptVersion
from tenants.demo import DEMO_COMPANIES

DEMO_AGENTS = {agent["agent_id"]: (spec["company"]["language"], agent)
               for spec in DEMO_COMPANIES for agent in spec["agents"]}
# A word each language's texts cannot do without on the phone.
YOU = {"de": "Sie", "en": "you"}


def seed_demo() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def row_counts() -> dict:
    return {m._meta.label: m._base_manager.count() for m in apps.get_models()}


@pytest.fixture(autouse=True)
def _demo_password(monkeypatch):
    monkeypatch.setenv("VOICEDESK_DEMO_PASSWORD", "demo-pass-for-tests")


@pytest.mark.django_db
def test_seed_demo_on_a_fresh_database_gives_each_demo_agent_its_language_prompt_and_greeting():
    seed_demo()

    agents = {a.agent_id: a for a in Agent.objects.select_related("company")}
    assert {agent_id: a.language for agent_id, a in agents.items()} == {
        "agent_abc123": "de-DE", "agent_xyz789": "de-DE", "agent_dental001": "en-US"}
    for agent_id, (language, spec) in DEMO_AGENTS.items():
        agent = agents[agent_id]
        assert (agent.general_prompt, agent.begin_message) == (spec["general_prompt"], spec["begin_message"])
        assert YOU[language] in agent.general_prompt and YOU[language] in agent.begin_message, agent_id
        assert "{{company_name}}" in agent.begin_message
        assert PromptVersion.objects.filter(agent=agent).count() == 1


@pytest.mark.django_db
def test_seed_demo_over_an_old_demo_fixes_the_agents_left_as_seeded_and_then_changes_nothing():
    seed_demo()
    # As the demo was seeded before: every agent de-DE, without prompt, greeting or versions;
    # and one greeting an admin has typed since.
    PromptVersion.objects.all().delete()
    Agent.objects.update(language="de-DE", general_prompt="", begin_message="")
    Agent.objects.filter(agent_id="agent_xyz789").update(begin_message="Praxis, Notdienst. Was kann ich tun?")

    out = seed_demo()

    agents = {a.agent_id: a for a in Agent.objects.all()}
    front_desk, main = agents["agent_dental001"], agents["agent_abc123"]
    assert front_desk.language == "en-US"
    assert front_desk.begin_message == DEMO_AGENTS["agent_dental001"][1]["begin_message"]
    assert front_desk.general_prompt == DEMO_AGENTS["agent_dental001"][1]["general_prompt"]
    assert (main.language, main.begin_message) == ("de-DE", DEMO_AGENTS["agent_abc123"][1]["begin_message"])
    backup = agents["agent_xyz789"]
    assert (backup.language, backup.general_prompt, backup.begin_message) == (
        "de-DE", "", "Praxis, Notdienst. Was kann ich tun?")
    assert "2 agents updated" in out

    before = row_counts()
    again = seed_demo()

    assert row_counts() == before and "nothing changed" in again
    assert {a.agent_id: (a.language, a.general_prompt, a.begin_message) for a in Agent.objects.all()} == {
        agent_id: (a.language, a.general_prompt, a.begin_message) for agent_id, a in agents.items()}
