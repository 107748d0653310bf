"""POST /api/retell/webhook and /api/mcp/retell/custom-function: receipts first, then every check."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import ActivityLogEntry, WebhookReceipt
from tests.conftest import RETELL_KEY
from tests.fakes import retell
from voice.models import Call

URLS = ["/api/retell/webhook", "/api/mcp/retell/custom-function"]
pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection


def post(client, url, body: bytes, **extra):
    return client.post(url, data=body, content_type="application/json", **extra)


def only_receipt() -> WebhookReceipt:
    [receipt] = WebhookReceipt.objects.all()
    return receipt


@pytest.mark.parametrize("url", URLS)
def test_signed_call_ended_is_stored_verified_and_answered_204(client, retell_agent, url, celery_eager):
    body = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"))

    response = post(client, url, body, **retell.headers(body, RETELL_KEY), HTTP_AUTHORIZATION="Bearer s3cret")

    assert response.status_code == 204
    receipt = only_receipt()
    assert bytes(receipt.body) == body
    # Verified when stored (a verified dedupe key), then handed to the processing task, which ran here.
    assert receipt.status == WebhookReceipt.Status.PROCESSED
    assert (receipt.company, receipt.event_type, receipt.call_id) == (retell_agent.company, "call_ended", "call_1")
    assert receipt.dedupe_key == "call_ended:call_1"
    assert receipt.remote_addr == "127.0.0.1"
    assert receipt.headers["X-Retell-Signature"].startswith("v=")
    assert receipt.headers["Authorization"] == "[redacted]"
    assert Call.objects.filter(call_id="call_1", company=retell_agent.company).exists()


def test_the_same_event_again_is_a_duplicate_and_queues_nothing(client, retell_agent, celery_eager):
    body = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"))
    post(client, URLS[0], body, **retell.headers(body, RETELL_KEY))

    again = post(client, URLS[1], body, **retell.headers(body, RETELL_KEY))

    assert again.status_code == 204
    # The first was processed; the duplicate was never handed to the task (it would be "processed").
    assert sorted(WebhookReceipt.objects.values_list("status", flat=True)) == ["duplicate", "processed"]


def test_transfer_events_dedupe_on_call_start_and_destination(client, retell_agent):
    call = retell.call_object("call_t", "agent_abc123", status="ongoing")
    first = retell.event_body("transfer_started", call, transfer_destination={"number": "+493011111111"})
    other = retell.event_body("transfer_started", call, transfer_destination={"number": "+493022222222"})
    for body in (first, first, other):
        assert post(client, URLS[0], body, **retell.headers(body, RETELL_KEY)).status_code == 204

    keys = dict(WebhookReceipt.objects.values_list("dedupe_key", "status").filter(status="verified"))
    assert set(keys) == {f"transfer_started:call_t:{retell.START_MS}:+493011111111",
                         f"transfer_started:call_t:{retell.START_MS}:+493022222222"}
    assert WebhookReceipt.objects.filter(status="duplicate").count() == 1


@pytest.mark.parametrize("case", ["tampered_body", "wrong_key", "stale_timestamp", "missing_signature"])
def test_bad_signatures_answer_401_and_process_nothing(client, retell_agent, case, celery_eager):
    body = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"))
    signed = {
        "tampered_body": retell.headers(body, RETELL_KEY),
        "wrong_key": retell.headers(body, "key_of_someone_else"),
        "stale_timestamp": retell.headers(body, RETELL_KEY, at_ms=retell.START_MS),
        "missing_signature": {},
    }[case]
    sent = body.replace(b"user_hangup", b"agent_hangup") if case == "tampered_body" else body

    response = post(client, URLS[0], sent, **signed)

    assert response.status_code == 401
    assert response.json()["error"]["code"].startswith("signature_")
    receipt = only_receipt()
    assert receipt.status == WebhookReceipt.Status.REJECTED and receipt.company == retell_agent.company
    assert not Call.objects.exists()
    assert ActivityLogEntry.objects.filter(kind="webhook.rejected").count() == 1


def test_unknown_agent_answers_404_and_is_stored_unprocessed(client, retell_agent):
    body = retell.event_body("call_ended", retell.call_object("call_1", "agent_nobody"))

    response = post(client, URLS[0], body, **retell.headers(body, RETELL_KEY))

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "unknown_agent",
                                         "message": "No agent with that agent_id is configured here."}}
    receipt = only_receipt()
    assert (receipt.status, receipt.error_code, receipt.company) == ("rejected", "unknown_agent", None)


def test_unparseable_json_answers_400(client, retell_agent):
    response = post(client, URLS[0], b'{"event": "call_ended", ')

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_json"
    assert bytes(only_receipt().body) == b'{"event": "call_ended", '


def test_a_body_over_the_limit_answers_413_keeping_its_first_bytes(client, retell_agent, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1000
    body = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123", turns=40))

    response = post(client, URLS[0], body, **retell.headers(body, RETELL_KEY))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    receipt = only_receipt()
    assert receipt.body_truncated and bytes(receipt.body) == body[:1000]


def test_an_unknown_event_type_answers_202_stored_and_ignored(client, retell_agent, celery_eager):
    body = retell.event_body("call_teleported", retell.call_object("call_1", "agent_abc123"))

    response = post(client, URLS[0], body, **retell.headers(body, RETELL_KEY))

    assert response.status_code == 202
    assert not Call.objects.exists()
    receipt = only_receipt()
    assert (receipt.status, receipt.event_type) == ("ignored", "call_teleported")


def test_a_body_neither_event_nor_function_answers_400(client, retell_agent):
    body = json.dumps({"call_id": "x", "agent_id": "agent_abc123"}).encode()

    response = post(client, URLS[1], body, **retell.headers(body, RETELL_KEY))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unrecognised_body"


def test_the_published_ip_is_required_when_the_company_asks_for_it(client, retell_agent, settings):
    company = retell_agent.company
    company.retell_require_published_ip = True
    company.save()
    body = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"))

    refused = post(client, URLS[0], body, **retell.headers(body, RETELL_KEY))
    settings.RETELL_WEBHOOK_IPS = ["127.0.0.1"]
    accepted = post(client, URLS[0], body, **retell.headers(body, RETELL_KEY))

    assert refused.status_code == 403 and refused.json()["error"]["code"] == "ip_not_allowed"
    assert accepted.status_code == 204


@pytest.mark.parametrize("url", [*URLS, "/api/elevenlabs/callback"])
def test_get_is_not_allowed_with_a_json_error(client, url):
    response = client.get(url)

    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_new_key_is_accepted_at_once_despite_the_agent_cache(client, retell_agent):
    first = retell.event_body("call_started", retell.call_object("call_1", "agent_abc123", status="ongoing"))
    assert post(client, URLS[0], first, **retell.headers(first, RETELL_KEY)).status_code == 204
    company = retell_agent.company
    company.retell_api_key = "key_rotated_9876543210"
    company.save()

    second = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"))
    rotated = post(client, URLS[0], second, **retell.headers(second, "key_rotated_9876543210"))

    assert rotated.status_code == 204


def test_a_deactivated_company_is_refused_even_while_cached(client, retell_agent):
    body = retell.event_body("call_started", retell.call_object("call_1", "agent_abc123", status="ongoing"))
    assert post(client, URLS[0], body, **retell.headers(body, RETELL_KEY)).status_code == 204
    company = retell_agent.company
    company.is_active = False
    company.save()
    other = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"), x=1)

    # Signed with the right key, so the cached agent would verify: the cache may answer for
    # a few seconds. Forged signatures never pass, and a refusal always reads fresh rows.
    forged = post(client, URLS[0], other, **retell.headers(other, "not-the-key"))

    assert forged.status_code == 404


def test_an_accepted_event_is_stored_in_one_insert_and_never_updated(client, retell_agent, sql_everywhere):
    warm = retell.event_body("call_started", retell.call_object("call_0", "agent_abc123", status="ongoing"))
    post(client, URLS[0], warm, **retell.headers(warm, RETELL_KEY))  # the agent is now cached, as under load
    body = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"))
    sql_everywhere.clear()

    with CaptureQueriesContext(connection) as queries:
        response = post(client, URLS[0], body, **retell.headers(body, RETELL_KEY))

    assert response.status_code == 204
    statements = [q["sql"] for q in queries] + sql_everywhere
    writes = [sql.split()[0] for sql in statements if "audit_webhookreceipt" in sql]
    assert writes == ["INSERT"]
    receipt = WebhookReceipt.objects.get(call_id="call_1")
    assert (receipt.status, receipt.dedupe_key) == (WebhookReceipt.Status.VERIFIED, "call_ended:call_1")


def test_a_check_that_fails_on_our_side_still_stores_the_request_and_answers_json_500(
        client, retell_agent, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("voice.selectors.webhook_agent", broken)
    body = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"))

    response = post(client, URLS[0], body, **retell.headers(body, RETELL_KEY))

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    receipt = only_receipt()
    assert bytes(receipt.body) == body
    assert (receipt.status, receipt.error_code, receipt.error_message) == ("received", "check_failed", "RuntimeError")


def test_an_event_for_a_cached_agent_is_checked_and_stored_without_a_thread(retell_agent, broker_down, monkeypatch):
    """The view runs on the event loop: with the agent cached, checking the request, waiting
    for the receipt writer and queueing the task take no thread (Django's own request
    signals and response close still do)."""
    from asgiref import sync
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    hops: list[str] = []
    original = sync.SyncToAsync.__call__

    def counted(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return original(self, *args, **kwargs)

    client = AsyncClient()
    warm = retell.event_body("call_started", retell.call_object("call_0", "agent_abc123", status="ongoing"))
    async_to_sync(client.post)(URLS[0], warm, content_type="application/json",
                               headers={"X-Retell-Signature": retell.sign(warm, RETELL_KEY)})
    body = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"))
    monkeypatch.setattr(sync.SyncToAsync, "__call__", counted)

    response = async_to_sync(client.post)(URLS[0], body, content_type="application/json",
                                          headers={"X-Retell-Signature": retell.sign(body, RETELL_KEY)})

    assert response.status_code == 204
    assert WebhookReceipt.objects.get(call_id="call_1").status == WebhookReceipt.Status.VERIFIED
    ours = [name for name in hops if not name.startswith(("Signal.", "HttpResponseBase.close"))]
    assert ours == [], hops


def test_a_request_that_cannot_be_stored_is_not_acknowledged(client, retell_agent, monkeypatch, caplog):
    from django.db import OperationalError

    from audit import receipts

    def database_gone(receipts):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    body = retell.event_body("call_ended", retell.call_object("call_1", "agent_abc123"))
    with monkeypatch.context() as patched:
        patched.setattr(receipts, "_receipts_insert", database_gone)
        response = post(client, URLS[0], body, **retell.headers(body, RETELL_KEY))

    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "unavailable"
    assert not WebhookReceipt.objects.exists()
    assert RETELL_KEY not in caplog.text
    # Retell's retry, once the database is back, is stored and acknowledged.
    assert post(client, URLS[0], body, **retell.headers(body, RETELL_KEY)).status_code == 204
    assert WebhookReceipt.objects.get().status == WebhookReceipt.Status.VERIFIED
