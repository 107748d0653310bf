"""In a real browser (Playwright driving Debian's chromium) against this server over uvicorn
(HTTP and the console's WebSocket on one port, the Redis channel layer): the console shows a
line caused by a webhook sent during the test and never a line of the other company; pause
holds lines and resume shows them; a line opens its debug information; the analytics page
draws its charts."""

import functools
import json
import re
from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.utils import timezone

from appointments.models import Service
from audit.services import activity_log
from retell_config.models import Agent
from tests.conftest import next_weekday_iso
from tests.factories import make_company, make_member
from tests.fakes import retell
from tests.retell_config.test_browser import HAVE_CHROMIUM
from voice.models import Call
from voice.services import call_record_live_turns

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_CHROMIUM and __import__("os").environ.get("CI") != "true",
                       reason="no chromium here (apt-get install chromium); CI installs it and runs this"),
]
PASSWORD = "pw-for-tests-only"
ALPHA_KEY, BETA_KEY = "key_console_alpha_0123456789", "key_console_beta_0123456789"


@pytest.fixture
def companies(live_db):
    hours = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    alpha = make_company("Alpha Live", slug="alpha-live", retell_api_key=ALPHA_KEY, opening_hours=hours)
    beta = make_company("Beta Live", slug="beta-live", retell_api_key=BETA_KEY, opening_hours=hours)
    for company, agent_id in ((alpha, "agent_alpha_live"), (beta, "agent_beta_live")):
        Agent.objects.create(company=company, agent_id=agent_id, name=f"{company.name} Agent")
        Service.objects.create(company=company, name="Kontrolle", duration_minutes=30)
    make_member(alpha, "viewer", username="console-viewer")
    activity_log(company=beta, kind="test", message="Beta's line from before")
    return alpha, beta


def own_connection(test):
    """Under Playwright's sync API a test's body runs in a context of its own, so Django gives it
    a connection of its own, which a browser test's teardown ends (it ends every connection but
    the fixtures') and which a later test's body would inherit: the body starts on a new
    connection and closes it when done."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        connection.close()
        try:
            return test(*args, **kwargs)
        finally:
            connection.close()
    return run


def _http(asgi_server: str) -> str:
    return asgi_server.replace("ws://", "http://", 1)


def _send_function_call(base: str, *, agent_id: str, call_id: str, key: str) -> int:
    call = retell.call_object(call_id, agent_id, status="ongoing", turns=2)
    body = json.dumps({"name": "check_availability", "call": call,
                       "args": {"date": next_weekday_iso(), "service": "Kontrolle"}}).encode()
    response = requests.post(f"{base}/api/mcp/retell/custom-function", data=body, timeout=10,
                             headers={"Content-Type": "application/json", "X-Retell-Signature": retell.sign(body, key)})
    return response.status_code


def _log_in(page, base: str, next_path: str) -> None:
    page.goto(f"{base}/admin/login/?next={next_path}")
    page.fill("#id_username", "console-viewer")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


@own_connection
def test_the_console_shows_a_webhook_sent_now_and_never_the_other_companys(companies, asgi_server, browser_page):
    alpha, beta = companies
    base, page = _http(asgi_server), browser_page
    _log_in(page, base, "/admin/retell-webhook-configuration/")
    page.click("#rwc-view-logs")  # the dashboard's View Logs
    page.wait_for_selector("#mon-state.mon-live")
    assert page.url.endswith(f"/admin/monitoring/console/?company={alpha.pk}")

    assert _send_function_call(base, agent_id="agent_beta_live", call_id="call_beta_secret", key=BETA_KEY) == 200
    assert _send_function_call(base, agent_id="agent_alpha_live", call_id="call_alpha_live", key=ALPHA_KEY) == 200

    page.wait_for_selector("#mon-lines tbody tr:has-text('Call ID: call_alpha_live')")
    page.wait_for_selector("#mon-lines tbody tr:has-text('Custom function call: check_availability')")
    table = page.inner_text("#mon-lines")
    assert "call_beta_secret" not in table and "Beta's line" not in table

    page.click("#mon-lines tbody tr:has-text('Custom function call: check_availability')")
    page.wait_for_selector("#mon-debug-body h3:has-text('Our response')")
    debug = page.inner_text("#mon-debug-body")
    assert "/api/mcp/retell/custom-function" in debug and "call_alpha_live" in debug
    assert "Circuit breakers" in debug and "Retell API" in debug and ALPHA_KEY not in debug
    page.click("#mon-debug [data-close]")

    page.click("#mon-pause")
    assert page.inner_text("#mon-state") == "Paused"
    assert _send_function_call(base, agent_id="agent_alpha_live", call_id="call_alpha_held", key=ALPHA_KEY) == 200
    page.wait_for_selector("#mon-held:has-text('held')")
    assert "call_alpha_held" not in page.inner_text("#mon-lines")
    page.click("#mon-pause")
    page.wait_for_selector("#mon-lines tbody tr:has-text('Call ID: call_alpha_held')")

    page.select_option("#mon-level", "warning")
    page.wait_for_function("document.querySelectorAll('#mon-lines tbody tr').length === 0")
    activity_log(company=alpha, kind="webhook.rejected", level="warning", message="A warning sent now")
    activity_log(company=alpha, kind="test", message="An info line sent now")
    page.wait_for_selector("#mon-lines tbody tr:has-text('A warning sent now')")
    assert "An info line sent now" not in page.inner_text("#mon-lines")


@own_connection
def test_the_console_says_so_when_its_server_is_down(companies, asgi_server, browser_page):
    base, page = _http(asgi_server), browser_page
    # The socket's server and the lines' reads fail as they would with the server down.
    page.route_web_socket(re.compile(r".*/admin/monitoring/console/socket/.*"), lambda socket: socket.close())
    _log_in(page, base, "/admin/monitoring/console/")
    page.wait_for_selector("#mon-state.mon-down")
    assert page.inner_text("#mon-state").startswith("Live connection lost: the server is not answering; retrying")

    page.route(re.compile(r".*/admin/monitoring/console/lines/.*"), lambda route: route.abort())
    page.select_option("#mon-level", "error")
    page.wait_for_selector("#mon-error:has-text('The server is not answering')")


@own_connection
def test_the_analytics_page_draws_its_charts(companies, asgi_server, browser_page):
    alpha, _ = companies
    agent = Agent.objects.get(agent_id="agent_alpha_live")
    for n in range(6):
        created = timezone.now() - timedelta(days=n)
        call = Call.objects.create(company=alpha, agent=agent, call_id=f"call_chart_{n}", duration_ms=60_000 * n,
                                   disconnection_reason="user_hangup")
        Call.objects.filter(pk=call.pk).update(created_at=created)
        call_record_live_turns(company=alpha, agent=agent, call_id=call.call_id, transcript=[], turns=[
            {"response_id": 1, "started_at": created.timestamp(), "first_chunk_ms": 200.0 + n, "complete_ms": 900.0}])
    base, page = _http(asgi_server), browser_page
    _log_in(page, base, "/admin/retell-webhook-configuration/")
    page.click("#rwc-analytics")
    page.wait_for_selector("svg.pygal-chart")

    titles = page.eval_on_selector_all("svg.pygal-chart > title, svg.pygal-chart text.title",
                                       "nodes => nodes.map(n => n.textContent)")
    assert len(page.query_selector_all("figure.mon-chart svg.pygal-chart")) == 9
    assert any(t.startswith("Calls per day") for t in titles)
    # The calls drawn: six bars with a height on the calls-per-day chart, and the page ran no chart script.
    bars = page.eval_on_selector_all("figure.mon-chart svg.pygal-chart", """charts => {
        const chart = charts.find(c => (c.querySelector('text.title') || {}).textContent === 'Calls per day');
        return [...chart.querySelectorAll('rect.rect')].filter(r => parseFloat(r.getAttribute('height')) > 0).length; }""")
    assert bars == 6
    assert page.evaluate("typeof window.pygal") == "undefined"
    assert re.search(r"Alpha Live, \d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d", page.inner_text("#content-main"))
