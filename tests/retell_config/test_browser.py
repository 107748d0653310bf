"""In a real browser (Playwright driving Debian's chromium, headless) against a live
server: open the dashboard, save the webhook modal, see the result; and the function
editor's inline schema check.

Skipped only where no chromium is installed and CI is not "true": in CI it must run.
"""

import os
import shutil

import pytest

from retell_config.models import Agent, WebhookConfig
from tests.factories import make_company, make_member

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_CHROMIUM and os.environ.get("CI") != "true",
                       reason="no chromium here (apt-get install chromium); CI installs it and runs this"),
]

PASSWORD = "pw-for-tests-only"


@pytest.fixture
def browser_page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM reads
    # (fixtures, final asserts) are plain sync code, so Django's async guard is lifted here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page()
        page.set_default_timeout(15000)
        yield page
        browser.close()
    _drop_live_server_connections()


def _drop_live_server_connections() -> None:
    """The live server's keep-alive request threads can leave a database session behind
    after the browser hangs up; end them so the test database can be dropped."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture
def owner(transactional_db, fake_retell):
    company = make_company("Praxis im Browser", slug="browser-praxis")
    user = make_member(company, "owner", username="browser-owner")
    fake_retell.add_llm("llm_b1")
    fake_retell.add_agent("agent_b1", llm_id="llm_b1")
    fake_retell.add_agent("agent_b2", llm_id="llm_b1")
    Agent.objects.create(company=company, agent_id="agent_b1", name="Main Reception Agent",
                         phone_numbers=["+493083793369"], response_engine="retell-llm", llm_id="llm_b1")
    Agent.objects.create(company=company, agent_id="agent_b2", name="Backup Agent",
                         phone_numbers=["+493083793370"], response_engine="retell-llm", llm_id="llm_b1")
    return company, user


def log_in(page, live_server, next_path: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next={next_path}")
    page.fill("#id_username", "browser-owner")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def test_saving_the_webhook_modal_shows_the_configured_webhook(owner, fake_retell, live_server, browser_page):
    company, _ = owner
    page = browser_page

    log_in(page, live_server, "/admin/retell-webhook-configuration/")
    page.wait_for_selector("#rwc-webhook-card")
    assert "✗ Not configured" in page.inner_text("#rwc-webhook-card")
    page.click("#rwc-configure")
    page.wait_for_selector("#rwc-webhook-modal[open]")
    page.fill("#id_url", "https://hooks.example.com/retell")
    page.check("input[name=events][value=call_transferred]")
    page.fill("#id_secret", "whsec-browser-0123456789")
    page.click("#rwc-save-deploy")

    page.wait_for_selector("text=Webhook saved")
    card = page.inner_text("#rwc-webhook-card")
    messages = page.inner_text("ul.messagelist")
    mask = page.inner_text("#rwc-secret-mask")
    last_run = page.inner_text("#rwc-last-run")
    page.close()

    assert "✓ Configured" in card and "https://hooks.example.com/retell" in card
    assert "4 active" in card
    assert "deploying to 2 agent(s)" in messages
    assert mask == "••••6789"
    assert "Webhook update" in last_run and "Succeeded" in last_run
    config = WebhookConfig.objects.get(company=company)
    assert config.events == ["call_started", "call_ended", "call_analyzed", "call_transferred"]
    assert sorted(fake_retell.lines()) == ["PATCH /update-agent/agent_b1", "PATCH /update-agent/agent_b2"]


def test_the_function_editor_highlights_and_flags_a_bad_schema_before_saving(owner, live_server, browser_page):
    page = browser_page
    log_in(page, live_server, "/admin/retell-webhook-configuration/functions/new/")
    page.wait_for_selector("#rwc-function-form")

    page.fill("textarea[name=parameters]", '{"type": "array", "items": {}}')
    page.wait_for_selector(".rwc-json-errors li")
    error = page.inner_text(".rwc-json-errors")
    save_disabled = page.is_disabled("#rwc-function-save")
    highlighted_keys = page.locator(".rwc-json pre .j-key").count()

    page.fill("textarea[name=parameters]", '{"type": "object", "properties": {"date": {"type": "string"}}}')
    page.wait_for_selector(".rwc-json-ok:not([hidden])")
    save_enabled = page.is_enabled("#rwc-function-save")

    page.fill("textarea[name=parameters]", '{"type": "object", "properties": ')
    page.wait_for_selector(".rwc-json-errors li")
    parse_error = page.inner_text(".rwc-json-errors")

    assert '"type": "object"' in error and save_disabled
    assert highlighted_keys >= 2
    assert save_enabled
    assert "Not JSON" in parse_error
