"""The Retell IP allowlist of a company: shown on the Retell Webhook Configuration page, and the
sender's address read from the trusted proxy's X-Forwarded-For only when DJANGO_BEHIND_TLS_PROXY
says a proxy is in front (else a client's own header could name Retell's address)."""

import importlib.util
import os
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings as django_settings

from tests.conftest import RETELL_KEY
from tests.fakes import retell

pytestmark = pytest.mark.django_db(transaction=True)

RETELL_IP = "100.20.5.228"
PROXY = "10.0.0.2"


def settings_with(env: dict[str, str]):
    """config/settings.py evaluated with `env` as the whole environment."""
    spec = importlib.util.spec_from_file_location("env_settings", Path(django_settings.BASE_DIR) / "config" / "settings.py")
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, {"VOICEDESK_VAR_DIR": "/tmp/vd-settings-test", **env}, clear=True):
        spec.loader.exec_module(module)
    return module


def test_only_behind_the_tls_proxy_is_one_proxy_trusted():
    assert settings_with({}).NUM_PROXIES == 0
    assert settings_with({"DJANGO_BEHIND_TLS_PROXY": "true"}).NUM_PROXIES == 1
    assert settings_with({"DJANGO_BEHIND_TLS_PROXY": "true", "NUM_PROXIES": "2"}).NUM_PROXIES == 2


@pytest.fixture
def allowlisted(retell_agent):
    company = retell_agent.company
    company.retell_require_published_ip = True
    company.save()
    return company


def send(client, call_id: str, **extra):
    body = retell.event_body("call_started", retell.call_object(call_id, "agent_abc123", status="ongoing"))
    return client.post("/api/retell/webhook", data=body, content_type="application/json",
                       **retell.headers(body, RETELL_KEY), **extra)


def test_behind_the_proxy_retells_address_in_x_forwarded_for_is_accepted(client, allowlisted, settings):
    settings.NUM_PROXIES = settings_with({"DJANGO_BEHIND_TLS_PROXY": "true"}).NUM_PROXIES

    accepted = send(client, "call_1", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=RETELL_IP)
    # A client's own entry before the proxy's is not what the proxy saw.
    refused = send(client, "call_2", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"{RETELL_IP}, 198.51.100.7")

    assert accepted.status_code == 204
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "ip_not_allowed"


def test_without_the_proxy_a_forged_x_forwarded_for_changes_nothing(client, allowlisted, settings):
    settings.NUM_PROXIES = settings_with({}).NUM_PROXIES

    forged = send(client, "call_1", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=RETELL_IP)
    direct = send(client, "call_2", REMOTE_ADDR=RETELL_IP)

    assert forged.status_code == 403 and forged.json()["error"]["code"] == "ip_not_allowed"
    assert direct.status_code == 204


def test_the_dashboard_shows_the_allowlist(client, owner_a, allowlisted, company_b):
    from retell_config.models import Agent
    from tests.factories import make_member

    client.force_login(owner_a)
    page = client.get(f"/admin/retell-webhook-configuration/?company={allowlisted.pk}").content.decode()
    assert "only Retell's published address" in page and f"<code>{RETELL_IP}</code>" in page

    other_owner = make_member(company_b, "owner")
    Agent.objects.create(company=company_b, agent_id="agent_beta", name="Beta")
    client.force_login(other_owner)
    other = client.get(f"/admin/retell-webhook-configuration/?company={company_b.pk}").content.decode()
    assert "any address" in other and RETELL_IP not in other
