"""Receipt replay: a stored event receipt processed again through the worker's path, from the
receipts admin (one, a selection, every failed one in a time range); idempotent against the
practice backend; audited and shown on the receipt; owners and admins of its company only."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from appointments.models import Appointment
from audit.models import ActivityLogEntry, AuditEntry, Delivery, WebhookReceipt
from retell_config.models import Agent
from tests.conftest import RETELL_KEY, next_weekday_iso
from tests.factories import make_member
from tests.fakes import retell
from voice.models import Call
from voice.services import receipt_replay

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection
FUNCTIONS_URL = "/api/mcp/retell/custom-function"
CHANGELIST = "/admin/audit/webhookreceipt/"


def failed_receipt(company, call_id: str, event: str = "call_ended", agent_id: str = "agent_abc123",
                   **fields) -> WebhookReceipt:
    """A verified event receipt whose processing was given up (as receipt_failed leaves one)."""
    body = retell.event_body(event, retell.call_object(call_id, agent_id))
    values = {"provider": "retell", "company": company, "endpoint": "/api/retell/webhook", "body": body,
              "headers": {"X-Retell-Signature": "v=1,d=" + "0" * 64}, "status": WebhookReceipt.Status.FAILED,
              "kind": "event", "event_type": event, "call_id": call_id, "dedupe_key": f"{event}:{call_id}",
              "attempts": 8, "error_code": "OperationalError",
              "error_message": "Given up after 8 tries: the database went away"}
    return WebhookReceipt.objects.create(**{**values, **fields})


@pytest.fixture
def backend(bookable_agent, fake_backend):
    company = bookable_agent.company
    company.backend_url, company.backend_api_key = fake_backend.url, "backend-key-alpha"
    company.save()
    return fake_backend


def book(client, call_id: str) -> Appointment:
    call = retell.call_object(call_id, "agent_abc123", status="ongoing", turns=2)
    args = {"name": "Erika Muster", "date": next_weekday_iso(), "time": "10:00", "service": "Kontrolle"}
    body = json.dumps({"name": "collect_appointment_information", "call": call, "args": args}).encode()
    response = client.post(FUNCTIONS_URL, data=body, content_type="application/json", **retell.headers(body, RETELL_KEY))
    return Appointment.objects.get(pk=response.json()["appointment_id"])


def test_a_given_up_call_ended_replayed_is_processed_confirms_and_forwards_once(
        client, bookable_agent, backend, owner_a, celery_eager):
    from audit.actor import Actor

    appointment = book(client, "call_given_up")
    receipt = failed_receipt(bookable_agent.company, "call_given_up")

    replayed = receipt_replay(actor=Actor(kind="user", label="owner", user=owner_a), receipt_id=receipt.pk)

    assert replayed.status == WebhookReceipt.Status.PROCESSED
    receipt.refresh_from_db()
    assert (receipt.status, receipt.error_code, receipt.replay_count) == ("processed", "", 1)
    assert receipt.replayed_at is not None and receipt.attempts == 9
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CONFIRMED
    assert Call.objects.get(call_id="call_given_up").events == ["call_ended"]
    assert Delivery.objects.count() == 2  # the confirmation and the call record
    entry = AuditEntry.objects.get(action="replay", object_id=str(receipt.pk))
    assert entry.changes["status"] == {"before": "failed", "after": "processed"} and entry.actor_label == "owner"
    assert ActivityLogEntry.objects.filter(kind="webhook.replayed", data__receipt_id=receipt.pk).exists()

    again = receipt_replay(actor=Actor.system("test"), receipt_id=receipt.pk)

    assert again.status == WebhookReceipt.Status.PROCESSED and again.replay_count == 2
    assert Delivery.objects.count() == 2  # idempotency keys hold: no second record
    assert Appointment.objects.count() == 1
    assert len(backend.answered(200)) == 2  # the backend got the confirmation and the record once each


def test_a_replay_that_fails_again_says_why_on_the_receipt(bookable_agent):
    from audit.actor import Actor

    receipt = failed_receipt(bookable_agent.company, "call_broken", body=b'{"event": "call_ended", "call": {}}')

    replayed = receipt_replay(actor=Actor.system("test"), receipt_id=receipt.pk)

    assert replayed.status == WebhookReceipt.Status.FAILED and replayed.replay_count == 1
    receipt.refresh_from_db()
    assert receipt.error_code == "Unprocessable" and "Given up" in receipt.error_message
    assert AuditEntry.objects.get(action="replay").changes["status"] == {"before": "failed", "after": "failed"}


@pytest.mark.parametrize("status", ["rejected", "duplicate", "ignored", "received"])
def test_a_receipt_that_did_not_pass_its_checks_is_never_replayed(bookable_agent, status):
    from audit.actor import Actor

    receipt = failed_receipt(bookable_agent.company, f"call_{status}", status=status, dedupe_key="")

    assert receipt_replay(actor=Actor.system("test"), receipt_id=receipt.pk) is None
    receipt.refresh_from_db()
    assert receipt.status == status and receipt.replay_count == 0
    assert not Call.objects.exists() and not AuditEntry.objects.filter(action="replay").exists()


def test_the_replay_of_a_test_calls_receipt_marks_it_a_test_and_forwards_nothing(bookable_agent, backend):
    from audit.actor import Actor

    Call.objects.create(company=bookable_agent.company, call_id="test_replayed", test_origin="webhook_tester")
    receipt = failed_receipt(bookable_agent.company, "test_replayed")

    receipt_replay(actor=Actor.system("test"), receipt_id=receipt.pk)

    receipt.refresh_from_db()
    assert receipt.is_test and receipt.status == "processed"
    assert Delivery.objects.count() == 0


# --- the admin ---------------------------------------------------------------------------
def test_the_receipts_page_replays_one_with_its_button(client, bookable_agent, owner_a, celery_eager):
    receipt = failed_receipt(bookable_agent.company, "call_button")
    client.force_login(owner_a)

    page = client.get(f"{CHANGELIST}{receipt.pk}/change/")
    response = client.post(f"{CHANGELIST}{receipt.pk}/replay/", follow=True)

    assert 'id="replay-receipt"' in page.content.decode()
    assert "Replayed 1: 1 processed, 0 failed." in response.content.decode()
    receipt.refresh_from_db()
    assert receipt.status == "processed" and receipt.replay_count == 1


def test_the_action_replays_a_selection_and_the_range_form_every_failed_one_in_it(
        client, bookable_agent, owner_a, celery_eager):
    company = bookable_agent.company
    old = failed_receipt(company, "call_old")
    WebhookReceipt.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=3))
    for i in range(2):
        failed_receipt(company, f"call_recent_{i}")
    chosen = failed_receipt(company, "call_chosen")
    client.force_login(owner_a)

    action = client.post(CHANGELIST, {"action": "replay_receipts", "_selected_action": [chosen.pk]}, follow=True)
    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    ranged = client.post(f"{CHANGELIST}replay-failed/", {"since": since}, follow=True)

    assert "Replayed 1: 1 processed" in action.content.decode()
    assert "Replayed 2: 2 processed" in ranged.content.decode()
    statuses = dict(WebhookReceipt.objects.values_list("call_id", "status"))
    assert statuses == {"call_old": "failed", "call_recent_0": "processed", "call_recent_1": "processed",
                        "call_chosen": "processed"}


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_viewers_and_editors_may_look_but_not_replay(client, bookable_agent, role):
    receipt = failed_receipt(bookable_agent.company, f"call_{role}")
    client.force_login(make_member(bookable_agent.company, role))

    page = client.get(f"{CHANGELIST}{receipt.pk}/change/")
    one = client.post(f"{CHANGELIST}{receipt.pk}/replay/")
    ranged = client.post(f"{CHANGELIST}replay-failed/", {"since": "2000-01-01 00:00"})
    listing = client.get(CHANGELIST)

    assert page.status_code == 200 and one.status_code == 403 and ranged.status_code == 403
    assert "replay_receipts" not in listing.content.decode()
    receipt.refresh_from_db()
    assert receipt.status == "failed" and receipt.replay_count == 0


def test_another_companys_receipts_are_neither_shown_nor_replayed(client, bookable_agent, company_b):
    theirs = failed_receipt(company_b, "call_of_beta", agent_id="agent_beta")
    ours = failed_receipt(bookable_agent.company, "call_of_alpha")
    client.force_login(make_member(bookable_agent.company, "owner"))

    one = client.post(f"{CHANGELIST}{theirs.pk}/replay/")
    ranged = client.post(f"{CHANGELIST}replay-failed/", {"since": "2000-01-01 00:00"}, follow=True)
    listing = client.get(CHANGELIST).content.decode()

    assert one.status_code in (302, 404)  # the admin's answer for a row the user cannot see
    assert "call_of_beta" not in listing and "call_of_alpha" in listing
    assert "Replayed 1: 1 processed" in ranged.content.decode()
    theirs.refresh_from_db()
    ours.refresh_from_db()
    assert theirs.status == "failed" and theirs.replay_count == 0 and ours.status == "processed"


def test_a_member_limited_to_some_agents_replays_only_their_receipts(client, bookable_agent):
    from guardian.shortcuts import assign_perm

    company = bookable_agent.company
    hidden = Agent.objects.create(company=company, agent_id="agent_hidden", name="Hidden Agent")
    Call.objects.create(company=company, call_id="call_granted", agent=bookable_agent)
    Call.objects.create(company=company, call_id="call_hidden", agent=hidden)
    granted = failed_receipt(company, "call_granted")
    secret = failed_receipt(company, "call_hidden", agent_id="agent_hidden")
    member = make_member(company, "admin", limited=True)
    assign_perm("retell_config.view_agent", member, bookable_agent)
    client.force_login(member)

    client.post(f"{CHANGELIST}replay-failed/", {"since": "2000-01-01 00:00"})

    granted.refresh_from_db()
    secret.refresh_from_db()
    assert granted.status == "processed" and secret.status == "failed"


def test_the_rest_api_replays_a_failed_receipt_for_an_owner_not_a_viewer_nor_another_company(
        client, bookable_agent, backend, company_b, celery_eager):
    from tests.api.conftest import Api, token_for

    company = bookable_agent.company
    appointment = book(client, "call_api_replay")
    receipt = failed_receipt(company, "call_api_replay")
    owner, viewer = Api(token_for(make_member(company, "owner"))), Api(token_for(make_member(company, "viewer")))
    stranger = Api(token_for(make_member(company_b, "owner")))
    path = f"/api/v1/webhook-receipts/{receipt.pk}/replay/"

    assert viewer.post(path).status_code == 403
    assert stranger.post(path).status_code == 404
    replayed = owner.post(path)

    assert replayed.status_code == 200, replayed.content
    assert replayed.json()["status"] == "processed"
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CONFIRMED
    assert AuditEntry.objects.filter(action="replay", object_id=str(receipt.pk)).count() == 1
    rejected = WebhookReceipt.objects.create(provider="retell", company=company, endpoint="/api/retell/webhook",
                                             body=b"{}", status=WebhookReceipt.Status.REJECTED, kind="event")
    refused = owner.post(f"/api/v1/webhook-receipts/{rejected.pk}/replay/")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "not_replayable")
