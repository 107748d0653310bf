"""`manage.py retell_llm_url`: the socket URL an admin gives Retell."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from retell_config.models import Agent
from tests.factories import make_company


@pytest.fixture
def agent(db):
    company = make_company("Bright Smile Dental", slug="bright-smile", language="en")
    return Agent.objects.create(company=company, agent_id="agent_dental001", name="Front Desk")


def test_prints_the_configured_socket_base_with_the_agents_token(agent, settings):
    settings.RETELL_LLM_WEBSOCKET_URL = "wss://voice.example.com/retell-llm/"
    out = StringIO()

    call_command("retell_llm_url", "agent_dental001", stdout=out)

    assert out.getvalue() == f"agent_dental001\twss://voice.example.com/retell-llm/{agent.socket_token}\n"


def test_without_a_socket_base_the_public_url_is_used_as_wss(agent, settings):
    settings.RETELL_LLM_WEBSOCKET_URL = ""
    settings.PUBLIC_BASE_URL = "https://desk.example.com/"
    out = StringIO()

    call_command("retell_llm_url", company="bright-smile", stdout=out)

    assert out.getvalue().split("\t")[1].strip() == f"wss://desk.example.com/retell-llm/{agent.socket_token}"


def test_an_unknown_agent_is_a_clear_error(agent):
    with pytest.raises(CommandError, match="No agent agent_nope"):
        call_command("retell_llm_url", "agent_nope")
