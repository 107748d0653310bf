"""A call to the seeded demo over the real socket: the English practice's agent greets and
answers in English."""

import asyncio

import pytest

from retell_config.models import Agent
from tenants.demo import demo_seed
from voice.dialog.base import render_variables
from voice.simulator import SimulatedCall, new_call_id

pytestmark = pytest.mark.e2e


def call(asgi_server, agent, lines, *, caller):
    """One whole call: the greeting, then each caller line answered in full. Returns (call, turns)."""
    call_id = new_call_id()

    async def scenario():
        simulated = SimulatedCall(f"{asgi_server}/retell-llm/{agent.socket_token}/{call_id}", call_id=call_id,
                                  agent_id=agent.agent_id, from_number=caller, to_number=agent.company.phone)
        await simulated.connect()
        turns = [await simulated.say(line) for line in lines]
        await simulated.hang_up()
        return simulated, turns

    return asyncio.run(asyncio.wait_for(scenario(), 60))


def test_the_demo_english_practice_answers_a_booking_request_in_english(asgi_server, live_db, monkeypatch):
    monkeypatch.setenv("VOICEDESK_DEMO_PASSWORD", "demo-pass-for-tests")
    demo_seed()
    agent = Agent.objects.select_related("company").get(agent_id="agent_dental001")

    simulated, [reply] = call(asgi_server, agent, ["Hi, I'd like to book a teeth cleaning"], caller="+12125550199")

    assert reply.text == "Which day would suit you?"
    assert simulated.greeting == render_variables(agent.begin_message, {"company_name": "Bright Smile Dental"})
    assert "Bright Smile Dental" in simulated.greeting
