"""The running ASGI application on a loopback port, for the socket conformance suite."""

import time

import pytest

from tests.asgi_server import running_application
from tests.retell_config.test_browser import browser_page  # noqa: F401 (a fixture: the admin's browser tests)


@pytest.fixture(scope="session")
def asgi_server():
    """config.asgi:application served by uvicorn in a thread (the test database and Redis)."""
    with running_application("asgi-test-server") as port:
        yield f"ws://127.0.0.1:{port}"


@pytest.fixture
def live_db(transactional_db):
    """The database of tests that drive the running server. Before it is flushed, the
    server's calls have stopped and written their turn records: otherwise that work
    would still be writing while the tables are truncated."""
    from voice.retell_session import sessions_running

    yield
    deadline = time.monotonic() + 15
    while sessions_running() and time.monotonic() < deadline:
        time.sleep(0.05)


# --- Twilio (issue 14) -------------------------------------------------------------------------
TWILIO_PUBLIC = "https://voice.example.com"
TWILIO_NUMBER = "+493083793369"


@pytest.fixture
def twilio_number(company_a, settings):
    """company_a (German) takes calls over Twilio on TWILIO_NUMBER, answered by its main agent;
    this server is at TWILIO_PUBLIC."""
    from retell_config.models import Agent
    from tests.fakes import twilio
    from voice.models import TwilioNumber

    settings.PUBLIC_BASE_URL = TWILIO_PUBLIC
    company_a.twilio_account_sid = twilio.ACCOUNT_SID
    company_a.twilio_auth_token = twilio.AUTH_TOKEN
    company_a.twilio_enabled = True
    company_a.save()
    agent = Agent.objects.create(company=company_a, agent_id="agent_abc123", name="Main Reception Agent")
    return TwilioNumber.objects.create(company=company_a, phone_number=TWILIO_NUMBER, agent=agent)


@pytest.fixture
def fake_twilio_api(settings):
    """Twilio's REST API on loopback (tests.fakes.twilio_api), the twilio package pointed at it."""
    from tests.fakes import twilio
    from tests.fakes.twilio_api import FakeTwilioAPI

    fake = FakeTwilioAPI(twilio.ACCOUNT_SID, twilio.AUTH_TOKEN).start()
    settings.TWILIO_API_BASE_URL = fake.base_url
    settings.TWILIO_RETRY_BACKOFF_SECONDS = 0
    yield fake
    fake.stop()
