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
