"""The webhook's signing secret verifies Retell's requests (issue 12, item 1).

Retell signs webhooks and custom-function calls with the workspace's webhook-badged key,
which may differ from the key used for the API: the secret set in Configure Webhook (or
on an agent with its own webhook) is that key. Requests are signed with retell-sdk's own
signer (tests.fakes.retell) and sent through the real endpoints.
"""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.actor import Actor
from retell_config import services
from retell_config.models import Agent, WebhookConfig
from tests.conftest import RETELL_KEY, next_weekday_iso
from tests.fakes import retell
from tests.fakes.retell_api import FakeRetellAPI
from voice.selectors import webhook_agent_forget

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection
EVENTS_URL, FUNCTIONS_URL = "/api/retell/webhook", "/api/mcp/retell/custom-function"
BADGED_KEY = "key_webhook_badged_5f0c9a1e7d"
NEWER_KEY = "key_webhook_badged_rotated_b82d"
AGENT_KEY = "key_webhook_of_backup_agent_77"
SYSTEM = Actor.system("test")


@pytest.fixture
def backup_agent(retell_agent):
    """agent_xyz789 beside agent_abc123 in company_a, whose Retell API key is RETELL_KEY."""
    return Agent.objects.create(company=retell_agent.company, agent_id="agent_xyz789", name="Backup Agent")


def call_started(agent_id: str = "agent_xyz789") -> bytes:
    return retell.event_body("call_started", retell.call_object(f"call_of_{agent_id}", agent_id, status="ongoing"))


def send(client, body: bytes, key: str, url: str = EVENTS_URL):
    return client.post(url, data=body, content_type="application/json", **retell.headers(body, key))


def set_company_secret(company, secret: str) -> WebhookConfig:
    config, _ = services.webhook_update(actor=SYSTEM, company=company, url="https://hooks.example.com/retell",
                                        events=["call_started", "call_ended"], secret=secret, push=False)
    return config


def test_call_started_signed_with_the_secret_set_in_configure_webhook_is_accepted(
        client, owner_a, backup_agent, settings, celery_eager):
    # given: the owner sets the secret in the dashboard's Configure Webhook (deployed to a loopback Retell)
    fake = FakeRetellAPI(api_keys={RETELL_KEY}).start()
    settings.RETELL_BASE_URL = fake.base_url
    for agent_id in ("agent_abc123", "agent_xyz789"):
        fake.add_agent(agent_id)
    client.force_login(owner_a)
    try:
        saved = client.post(reverse("retell-webhook"), {
            "company": backup_agent.company_id, "url": "https://hooks.example.com/retell",
            "events": ["call_started", "call_ended"], "apply_to": "all", "secret": BADGED_KEY})
    finally:
        fake.stop()
    assert saved.status_code == 302
    client.logout()
    body = call_started()

    # when Retell sends call_started for agent_xyz789, signed with that secret
    response = send(client, body, BADGED_KEY)

    # then
    assert response.status_code == 204


def test_the_api_key_alone_is_refused_once_a_secret_is_set(client, backup_agent):
    set_company_secret(backup_agent.company, BADGED_KEY)
    body = call_started()

    response = send(client, body, RETELL_KEY)

    assert response.status_code == 401 and response.json()["error"]["code"] == "signature_invalid"


def test_without_a_secret_the_retell_api_key_verifies_as_the_help_text_says(client, backup_agent):
    set_company_secret(backup_agent.company, "")
    body = call_started()

    assert send(client, body, RETELL_KEY).status_code == 204


def test_a_custom_function_call_is_verified_with_the_secret(client, bookable_agent):
    set_company_secret(bookable_agent.company, BADGED_KEY)
    call = retell.call_object("call_fn", "agent_abc123", status="ongoing", turns=2)
    body = json.dumps({"name": "check_availability", "call": call,
                       "args": {"date": next_weekday_iso()}}).encode()

    accepted = send(client, body, BADGED_KEY, url=FUNCTIONS_URL)
    refused = send(client, body, RETELL_KEY, url=FUNCTIONS_URL)

    assert accepted.status_code == 200 and "ok" in accepted.json()
    assert refused.status_code == 401


def test_an_agent_with_its_own_webhook_is_verified_with_its_own_secret(client, backup_agent):
    # given: the company's secret, and agent_xyz789 overriding the webhook with its own secret
    set_company_secret(backup_agent.company, BADGED_KEY)
    services.agent_update(actor=SYSTEM, agent=backup_agent, push=False,
                          fields={"webhook_url": "https://other.example.com/hook", "webhook_secret": AGENT_KEY})
    body = call_started("agent_xyz789")
    other = call_started("agent_abc123")

    # then: its requests verify with its own secret only; the other agent's with the company's
    assert send(client, body, AGENT_KEY).status_code == 204
    assert send(client, body, BADGED_KEY).status_code == 401
    assert send(client, other, BADGED_KEY).status_code == 204
    assert send(client, other, AGENT_KEY).status_code == 401


def test_a_rotated_secret_keeps_the_old_one_valid_for_the_overlap_and_not_after(client, backup_agent, settings):
    # given: a secret replaced by a newer one, with an hour's overlap
    settings.RETELL_WEBHOOK_SECRET_OVERLAP_SECONDS = 3600
    set_company_secret(backup_agent.company, BADGED_KEY)
    config = set_company_secret(backup_agent.company, NEWER_KEY)
    first, second = call_started("agent_xyz789"), call_started("agent_abc123")

    # then: within the overlap both verify
    assert send(client, first, NEWER_KEY).status_code == 204
    assert send(client, second, BADGED_KEY).status_code == 204
    assert timezone.now() + timedelta(seconds=3500) < config.previous_secret_expires_at

    # when the overlap has passed (and the 5-second agent cache with it)
    WebhookConfig.objects.filter(pk=config.pk).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    webhook_agent_forget()
    third = retell.event_body("call_ended", retell.call_object("call_of_agent_xyz789", "agent_xyz789"))

    # then: only the new secret verifies
    assert send(client, third, BADGED_KEY).status_code == 401
    assert send(client, third, NEWER_KEY).status_code == 204


def test_the_previous_secret_is_kept_encrypted_and_out_of_the_audit_trail(backup_agent, settings):
    from audit.models import AuditEntry

    settings.RETELL_WEBHOOK_SECRET_OVERLAP_SECONDS = 600
    set_company_secret(backup_agent.company, BADGED_KEY)
    config = set_company_secret(backup_agent.company, NEWER_KEY)

    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT previous_secret FROM retell_config_webhookconfig WHERE id = %s", [config.pk])
        [stored] = cursor.fetchone()
    assert stored and BADGED_KEY not in stored
    config.refresh_from_db()
    assert config.previous_secret.reveal() == BADGED_KEY
    audited = json.dumps([e.changes for e in AuditEntry.objects.all()])
    assert BADGED_KEY not in audited and NEWER_KEY not in audited


def test_without_an_overlap_a_rotation_stops_the_old_secret_at_once(client, backup_agent, settings):
    settings.RETELL_WEBHOOK_SECRET_OVERLAP_SECONDS = 0
    set_company_secret(backup_agent.company, BADGED_KEY)
    set_company_secret(backup_agent.company, NEWER_KEY)
    body = call_started()

    assert send(client, body, BADGED_KEY).status_code == 401
    assert send(client, body, NEWER_KEY).status_code == 204
