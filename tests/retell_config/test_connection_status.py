"""The dashboard's status is the last real exchange with Retell (issue 12, item 5).

Each call of the Retell client records its outcome per company (time, operation, outcome,
error); the dashboard and `mcp_status` show the same facts from one selector, with the
circuit's state beside them.
"""

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from retell_config.client import circuit_for
from retell_config.models import RetellConnection
from retell_config.selectors import retell_status
from tests.fakes import free_port
from tests.retell_config.conftest import API_KEY

pytestmark = pytest.mark.django_db


def dashboard(client, company) -> str:
    return client.get(reverse("retell-dashboard"), {"company": company.pk}).content.decode()


def sync_all(client, company, capture) -> None:
    with capture(execute=True):
        client.post(reverse("retell-sync"), {"company": company.pk})


def utc(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def test_a_sync_against_an_unreachable_retell_shows_on_the_page_with_its_time_and_error(
        owner_client, company_a, retell_agents, fake_retell, settings, django_capture_on_commit_callbacks):
    # given: Retell answered once, then became unreachable, and Sync All failed with "could not connect"
    sync_all(owner_client, company_a, django_capture_on_commit_callbacks)
    settings.RETELL_BASE_URL = f"http://127.0.0.1:{free_port()}"
    sync_all(owner_client, company_a, django_capture_on_commit_callbacks)
    # the web process of the embedded run keeps its own circuit (a per-process cache): it saw no failure
    circuit_for(company_a.pk).reset()

    # when the owner opens the dashboard
    html = dashboard(owner_client, company_a)

    # then: it says unreachable, with the time and the error of the last exchange, not "Connected"
    exchange = RetellConnection.objects.get(company=company_a)
    assert 'id="rwc-status" class="rwc-status rwc-unreachable"' in html
    assert '<span class="rwc-dot"></span>Unreachable</span>' in html
    assert "● Connected" not in html and ">Connected<" not in html
    assert utc(exchange.last_at) in html
    assert "list agents: could not connect to Retell." in html
    assert utc(exchange.last_ok_at) in html  # when Retell last answered


def test_mcp_status_prints_the_facts_the_page_shows(
        owner_client, company_a, retell_agents, fake_retell, settings, django_capture_on_commit_callbacks):
    settings.RETELL_BASE_URL = f"http://127.0.0.1:{free_port()}"
    sync_all(owner_client, company_a, django_capture_on_commit_callbacks)
    html = dashboard(owner_client, company_a)
    out = io.StringIO()

    call_command("mcp_status", "retell_config", "--company", company_a.slug, "--no-ping", stdout=out)

    status = retell_status(company_a)
    printed = out.getvalue()
    for label, text in status.facts():
        assert f"{label + ':':<13}{text}" in printed
        assert text in html
    assert "Unreachable" in printed and "could not connect to Retell" in printed


def test_a_successful_exchange_shows_connected_and_when(owner_client, company_a, retell_agents, fake_retell,
                                                       django_capture_on_commit_callbacks):
    sync_all(owner_client, company_a, django_capture_on_commit_callbacks)

    html = dashboard(owner_client, company_a)

    exchange = RetellConnection.objects.get(company=company_a)
    assert exchange.outcome == RetellConnection.Outcome.OK and exchange.error == ""
    assert '<span class="rwc-dot"></span>Connected</span>' in html
    assert utc(exchange.last_at) in html


def test_a_key_retell_refuses_shows_as_refused(owner_client, company_a, retell_agents, fake_retell,
                                               django_capture_on_commit_callbacks):
    fake_retell.api_keys = {"another-" + API_KEY}
    sync_all(owner_client, company_a, django_capture_on_commit_callbacks)

    html = dashboard(owner_client, company_a)

    exchange = RetellConnection.objects.get(company=company_a)
    assert (exchange.outcome, exchange.status_code) == (RetellConnection.Outcome.REJECTED, 401)
    assert '<span class="rwc-dot"></span>Key refused</span>' in html
    assert "Retell answered 401 (Invalid API key)" in html


def test_before_any_exchange_the_page_does_not_claim_a_connection(owner_client, company_a, retell_agents):
    html = dashboard(owner_client, company_a)

    assert '<span class="rwc-dot"></span>Not checked yet</span>' in html and ">Connected<" not in html
