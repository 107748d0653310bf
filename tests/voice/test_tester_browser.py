"""In a real browser (Playwright, Debian's chromium) against a live server: the webhook tester
sends to this server and shows the 204 and the receipt it stored; the function simulator shows
an invalid-arguments error and a dry run's result; a failed receipt is replayed from its page.

Skipped only where no chromium is installed and CI is not "true" (as the other browser tests).
"""

import pytest

from appointments.models import Appointment
from audit.models import WebhookReceipt
from retell_config.models import Agent, CustomFunction
from tests.factories import make_company, make_member
from tests.fakes import retell
from tests.retell_config.test_browser import HAVE_CHROMIUM, log_in
from voice import tester

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_CHROMIUM and __import__("os").environ.get("CI") != "true",
                       reason="no chromium here (apt-get install chromium); CI installs it and runs this"),
]


def usable_connection() -> None:
    """The previous browser test's teardown ends the database sessions it does not run in; one of
    them may be this test body's (Playwright runs it in another context): open a fresh one."""
    from django.db import connection

    if connection.connection is not None and not connection.is_usable():
        connection.close()


@pytest.fixture
def practice(transactional_db, live_server, settings, celery_eager):
    """A company that books weekdays 8-18, its agent signed with its Retell API key, its owner
    "browser-owner"; this server is the live server."""
    from appointments.models import Service

    settings.PUBLIC_BASE_URL = live_server.url
    company = make_company("Praxis Tester", slug="praxis-tester", retell_api_key="key_browser_tester_0123456789",
                           opening_hours={d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")})
    make_member(company, "owner", username="browser-owner")
    Service.objects.create(company=company, name="Kontrolle", duration_minutes=30)
    agent = Agent.objects.create(company=company, agent_id="agent_browser_t", name="Main Reception Agent",
                                 phone_numbers=["+493083793369"])
    return company, agent


def test_the_tester_sends_to_this_server_and_shows_the_204_and_the_receipt(practice, live_server, browser_page):
    company, _ = practice
    usable_connection()
    page = browser_page
    log_in(page, live_server, f"/admin/retell-webhook-configuration/?company={company.pk}")
    page.click("#rwc-configure")
    page.click("#rwc-modal-test")  # the webhook modal's Test opens the tester too
    page.wait_for_selector("#vdt-body")
    page.wait_for_function("document.getElementById('vdt-body').value.indexOf('\"call_started\"') >= 0")

    page.route("**/tester/send/**", lambda route: route.abort())  # the server is down
    page.click("#vdt-send")
    page.wait_for_function("document.getElementById('vdt-message').textContent.indexOf('did not answer') >= 0")
    down = page.inner_text("#vdt-message")
    page.unroute("**/tester/send/**")

    page.click("#vdt-send")
    page.wait_for_selector("#vdt-receipt-link")
    status = page.inner_text("#vdt-status")
    signature = page.inner_text("#vdt-signature")
    request_headers = page.inner_text("#vdt-request-headers")
    link = page.get_attribute("#vdt-receipt-link", "href")
    ttfb, total = float(page.inner_text("#vdt-ttfb")), float(page.inner_text("#vdt-total"))
    page.click("#vdt-receipt-link")
    page.wait_for_selector("#content-main")
    receipt_page = page.inner_text("#content")

    assert "may be down" in down
    assert status == "204"
    assert signature.startswith("✓")
    assert "X-Retell-Signature" in request_headers
    assert 0 < ttfb <= total
    receipt = WebhookReceipt.objects.get(company=company)
    assert link == f"/admin/audit/webhookreceipt/{receipt.pk}/change/"
    assert receipt.is_test and receipt.call_id.startswith("test_") and receipt.call_id in receipt_page


def test_the_function_simulator_shows_an_invalid_args_error_and_a_dry_run_result(practice, live_server,
                                                                                 browser_page):
    company, agent = practice
    usable_connection()
    function = CustomFunction.objects.create(
        company=company, name="collect_appointment_information", url=live_server.url + tester.CUSTOM_FUNCTION_PATH,
        parameters={"type": "object", "properties": {"name": {"type": "string", "description": "Customer name"},
                                                     "date": {"type": "string"}, "time": {"type": "string"},
                                                     "service": {"type": "string", "enum": ["Kontrolle"]}},
                    "required": ["name", "date", "time"]})
    function.agents.add(agent)
    page = browser_page
    log_in(page, live_server, f"/admin/retell-webhook-configuration/functions/?company={company.pk}")
    page.click(f"a[href^='/admin/retell-webhook-configuration/functions/{function.pk}/simulate/']")
    page.wait_for_selector("#vdt-arg-date")

    page.fill("#vdt-arg-date", "")  # the form writes the JSON; the live check flags the missing date
    page.wait_for_selector("#vdt-args-errors li")
    live_error = page.inner_text("#vdt-args-errors")
    page.click("#vdt-dry-run")
    page.wait_for_selector("#vdt-schema-errors li")
    schema_errors = page.inner_text("#vdt-schema-errors")

    page.fill("#vdt-arg-date", "Montag")
    page.fill("#vdt-arg-time", "10:00")
    page.select_option("#vdt-arg-service", label="Kontrolle")
    page.wait_for_selector(".rwc-json-ok:not([hidden])")
    page.click("#vdt-dry-run")
    page.wait_for_selector("#vdt-writes li")
    spoken = page.inner_text("#vdt-spoken")
    writes = page.inner_text("#vdt-writes")
    result = page.inner_text("#vdt-result-json")

    assert "'date' is a required property" in live_error
    assert "'date' is a required property" in schema_errors
    assert '"ok": true' in result and spoken and spoken != "(nothing)"
    assert "create appointments.Appointment" in writes
    assert Appointment.objects.count() == 0  # a dry run keeps nothing


def test_a_failed_receipt_is_replayed_from_its_page(practice, live_server, browser_page):
    company, agent = practice
    usable_connection()
    body = retell.event_body("call_ended", retell.call_object("call_replay_me", agent.agent_id))
    receipt = WebhookReceipt.objects.create(
        provider="retell", company=company, endpoint="/api/retell/webhook", body=body, status="failed",
        kind="event", event_type="call_ended", call_id="call_replay_me", dedupe_key="call_ended:call_replay_me",
        attempts=8, error_code="OperationalError", error_message="Given up after 8 tries")
    page = browser_page
    log_in(page, live_server, f"/admin/audit/webhookreceipt/{receipt.pk}/change/")

    page.click("#replay-receipt")
    page.wait_for_selector("ul.messagelist")
    message = page.inner_text("ul.messagelist")
    shown = page.inner_text("#content")

    assert "Replayed 1: 1 processed, 0 failed." in message
    assert "Processed" in shown
    receipt.refresh_from_db()
    assert receipt.status == "processed" and receipt.replay_count == 1
