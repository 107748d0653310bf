"""Fixtures for Retell configuration: the loopback fake Retell API, eager Celery, circuits
reset, and a company with two agents on Retell LLMs."""

import pytest

from config.celery import app as celery_app
from retell_config.client import circuit_for
from retell_config.models import Agent
from tests.fakes.retell_api import FakeRetellAPI

API_KEY = "retell-test-key"


@pytest.fixture
def fake_retell(settings):
    fake = FakeRetellAPI(api_keys={API_KEY}).start()
    settings.RETELL_BASE_URL = fake.base_url
    settings.RETELL_API_KEY = API_KEY
    settings.RETELL_RETRY_BACKOFF_SECONDS = 0.01
    settings.RETELL_TIMEOUT_SECONDS = 1.0
    settings.RETELL_CONNECT_TIMEOUT_SECONDS = 1.0
    settings.RETELL_MAX_RETRIES = 2
    settings.RETELL_CIRCUIT_FAILURES = 3
    settings.RETELL_CIRCUIT_RESET_SECONDS = 60
    settings.PUBLIC_BASE_URL = "https://voicedesk.example.com"
    settings.RETELL_LLM_WEBSOCKET_URL = "wss://voicedesk.example.com/retell-llm"
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def eager_celery():
    """Tasks run in the caller, as soon as the commit's callbacks fire."""
    before = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = before


@pytest.fixture(autouse=True)
def _fresh_circuits(company_a, company_b):
    for company in (company_a, company_b):
        circuit_for(company.pk).reset()
    yield
    for company in (company_a, company_b):
        circuit_for(company.pk).reset()


@pytest.fixture
def retell_agents(company_a, fake_retell):
    """Two agents of company A, on Retell LLMs that exist on the fake."""
    fake_retell.add_llm("llm_main", general_prompt="Old prompt", begin_message="Hallo!")
    fake_retell.add_llm("llm_backup", general_prompt="Backup prompt", begin_message="Hallo?")
    fake_retell.add_agent("agent_abc123", llm_id="llm_main", agent_name="Main Reception Agent",
                          voice_id="11labs-Adrian", language="de-DE")
    fake_retell.add_agent("agent_xyz789", llm_id="llm_backup", agent_name="Backup Agent",
                          voice_id="11labs-Adrian", language="de-DE")
    main = Agent.objects.create(company=company_a, agent_id="agent_abc123", name="Main Reception Agent",
                                response_engine="retell-llm", llm_id="llm_main", phone_numbers=["+493083793369"],
                                general_prompt="Old prompt", begin_message="Hallo!")
    backup = Agent.objects.create(company=company_a, agent_id="agent_xyz789", name="Backup Agent",
                                  response_engine="retell-llm", llm_id="llm_backup",
                                  phone_numbers=["+493083793370"], general_prompt="Backup prompt",
                                  begin_message="Hallo?")
    return main, backup
