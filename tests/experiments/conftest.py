"""Fixtures of the prompt experiments: an agent of company A with a two-variant draft."""

import pytest

from audit.actor import Actor
from experiments.services import experiment_create
from retell_config.models import Agent

SYSTEM = Actor.system("tests")


@pytest.fixture
def agent(company_a):
    return Agent.objects.create(company=company_a, agent_id="agent_exp001", name="Reception",
                                general_prompt="Live prompt.", begin_message="Praxis Alpha, guten Tag.")


@pytest.fixture
def draft(agent):
    """A draft of `agent`: variant A keeps the live prompt, B greets and instructs differently."""
    return experiment_create(actor=SYSTEM, agent=agent, name="Greeting test", variants=[
        {"name": "A", "weight": 50},
        {"name": "B", "weight": 50, "general_prompt": "Prompt B.", "begin_message": "Hallo, hier Praxis Alpha!",
         "custom_instructions": "Say the price first."}])


from tests.retell_config.conftest import API_KEY, fake_retell  # noqa: E402,F401  (the loopback Retell API)

NUMBER = "+493083793369"


@pytest.fixture
def retell_llm_agent(company_a, fake_retell):  # noqa: F811
    """An agent whose prompt lives at Retell (Retell LLM engine), bound alone to NUMBER there."""
    from retell_config.client import circuit_for

    circuit_for(company_a.pk).reset()
    fake_retell.add_llm("llm_main", general_prompt="Old prompt", begin_message="Hallo!")
    fake_retell.add_agent("agent_abc123", llm_id="llm_main", agent_name="Main Reception Agent")
    fake_retell.add_phone_number(NUMBER, agent_id="agent_abc123")
    return Agent.objects.create(company=company_a, agent_id="agent_abc123", name="Main Reception Agent",
                                response_engine="retell-llm", llm_id="llm_main", phone_numbers=[NUMBER],
                                general_prompt="Old prompt", begin_message="Hallo!")
