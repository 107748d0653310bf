"""The call simulator and the saved scenarios in a real browser (Playwright driving Debian's chromium)
against the ASGI server (pages and sockets from one server, as `make run` serves them): a caller
books in German and in English by typing; a scenario passes and one fails with its reason, run by
a real Celery worker.

Skipped only where no chromium is installed and CI is not "true": in CI it must run.
"""

import pytest
from django.db import close_old_connections

from appointments.models import Appointment
from retell_config.models import Agent
from tenants.demo import demo_seed
from tests.retell_config.test_browser import HAVE_CHROMIUM, browser_page  # noqa: F401 (a fixture)
from tests.test_e2e_webhooks import worker  # noqa: F401 (a fixture)
from voice.models import Call, Scenario, ScenarioRun

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_CHROMIUM and __import__("os").environ.get("CI") != "true",
                       reason="no chromium here (apt-get install chromium); CI installs it and runs this"),
]

PASSWORD = "demo-pass-for-browser-tests"


@pytest.fixture
def demo(live_db, monkeypatch):
    monkeypatch.setenv("VOICEDESK_DEMO_PASSWORD", PASSWORD)
    demo_seed()


@pytest.fixture
def page(browser_page):  # noqa: F811
    """The browser's page. Inside Playwright's sync API this thread reaches the database through a
    connection of its own, which the previous browser test's clean-up ended: it is checked first."""
    close_old_connections()
    return browser_page


def http_base(asgi_server: str) -> str:
    return asgi_server.replace("ws://", "http://")


def log_in(page, base: str, username: str, next_path: str) -> None:
    page.goto(f"{base}/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


CALLS = {
    "de": ("demo-owner", "agent_abc123", [
        "Guten Tag, ich hätte gern einen Termin für eine Kontrolluntersuchung", "Donnerstag um 9 Uhr",
        "Mein Name ist Erika Muster", "Ja, genau"], "Erika Muster", "Kontrolluntersuchung"),
    "en": ("dental-owner", "agent_dental001", [
        "Hi, I'd like to book a check-up", "Thursday at 9 am", "My name is John Miller", "Yes, please"],
        "John Miller", "Check-up"),
}


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_call_simulator_books_an_appointment_by_chat(language, asgi_server, demo, page):
    username, agent_id, lines, name, service = CALLS[language]
    agent = Agent.objects.get(agent_id=agent_id)
    base = http_base(asgi_server)

    log_in(page, base, username, f"/admin/retell-webhook-configuration/?company={agent.company_id}")
    page.click(f"[data-agent={agent_id}] >> text=Test")
    page.wait_for_selector("#rwc-sim-status:text('Ready')")
    page.click("#rwc-sim-start")
    page.wait_for_selector("#rwc-sim-status:text('In call')")
    greeting = page.inner_text("#rwc-sim-log")
    for number, line in enumerate(lines, start=1):
        page.fill("#rwc-sim-line", line)
        page.click("#rwc-sim-say")
        page.wait_for_function(f"document.querySelectorAll('#rwc-sim-log .rwc-sim-meta').length >= {number}")
    during = page.inner_text("#rwc-sim-log")
    call_id = page.inner_text("#rwc-sim-call").split()[1]
    held = list(Appointment.objects.filter(call_id=call_id).values_list("status", "is_test", "customer_name"))
    page.click("#rwc-sim-hangup")
    page.wait_for_selector("text=test appointment(s) released")
    ended = page.inner_text("#rwc-sim-log")

    assert agent.company.name in greeting
    assert "collect_appointment_information" in during and "→ ok" in during
    assert name in during and "first chunk" in during and "last chunk" in during
    assert held == [("pending", True, name)]
    assert "Call ended: user_hangup; 1 test appointment(s) released." in ended
    [appointment] = Appointment.objects.filter(call_id=call_id)
    assert appointment.service.name == service and appointment.status == Appointment.Status.CANCELLED
    assert Call.objects.get(call_id=call_id).test_origin == Call.TestOrigin.CALL_SIMULATOR


@pytest.fixture
def scenario_worker(asgi_server, monkeypatch, request):
    """A real Celery worker whose scenario calls dial the test server's socket."""
    monkeypatch.setenv("RETELL_LLM_WEBSOCKET_URL", f"{asgi_server}/retell-llm")
    return request.getfixturevalue("worker")


def test_a_scenario_passes_and_one_fails_with_the_reason(asgi_server, demo, scenario_worker, page):
    agent = Agent.objects.get(agent_id="agent_dental001")
    failing = Scenario.objects.get(agent=agent, name="Opening hours, then a person")
    failing.expect_transfer = "no"
    failing.save()
    base = http_base(asgi_server)

    log_in(page, base, "dental-owner",
           f"/admin/retell-webhook-configuration/agents/{agent.pk}/simulator/?company={agent.company_id}")
    page.wait_for_selector("#rwc-scenarios")
    page.click("#rwc-run-all")
    page.wait_for_selector("#rwc-batch-status:text('All runs finished.')", timeout=90000)
    passed = page.inner_text(f"#rwc-run-{ScenarioRun.objects.get(scenario__name__startswith='Book').pk}")
    failed = page.inner_text(f"#rwc-run-{ScenarioRun.objects.get(scenario=failing).pk}")

    assert "Book a teeth cleaning on Wednesday: Passed" in passed and "✓ An appointment booked" in passed
    assert "Opening hours, then a person: Failed" in failed
    assert ("✗ The agent does not transfer the call: the agent transferred the call to +12125550134" in failed)
    assert "✓ Says \"9 am to 1 pm\"" in failed


def test_without_the_socket_server_the_simulator_says_it_cannot_be_reached(live_server, demo, page):
    """Django's live server answers HTTP only: the page's WebSocket finds nobody."""
    agent = Agent.objects.get(agent_id="agent_abc123")

    log_in(page, live_server.url, "demo-owner",
           f"/admin/retell-webhook-configuration/agents/{agent.pk}/simulator/?company={agent.company_id}")
    page.wait_for_selector("#rwc-sim-error:not([hidden])")

    assert "The call simulator's server cannot be reached" in page.inner_text("#rwc-sim-error")
    assert page.inner_text("#rwc-sim-status") == "Disconnected"
    assert page.is_disabled("#rwc-sim-start")
