"""The webhook tester: a sample built from the agent, signed as Retell signs, sent over real HTTP
to this server (a live server) or another (a loopback fake); what it sends is a test
everywhere (call, receipt, appointment) and reaches no backend; who may send, and where to."""

import json
import socket

import pytest
from retell.lib.webhook_auth import symmetric

from appointments.models import Appointment
from audit.models import ActivityLogEntry, AuditEntry, Delivery, WebhookReceipt
from retell_config.models import Agent, CustomFunction, WebhookConfig
from tests.conftest import RETELL_KEY
from tests.factories import make_member
from voice import tester
from voice.models import Call

pytestmark = pytest.mark.django_db(transaction=True)  # the server under test commits on its own connections

SEND = "/admin/retell-webhook-configuration/tester/send/"
SAMPLE = "/admin/retell-webhook-configuration/tester/sample/"


@pytest.fixture
def here(live_server, settings):
    """This server is the live server (PUBLIC_BASE_URL names it, as in production)."""
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server.url


@pytest.fixture
def booking_function(bookable_agent, here):
    function = CustomFunction.objects.create(
        company=bookable_agent.company, name="collect_appointment_information", url=here + tester.CUSTOM_FUNCTION_PATH,
        parameters={"type": "object", "properties": {"name": {"type": "string"}, "date": {"type": "string"},
                                                     "time": {"type": "string"}, "service": {"type": "string"}},
                    "required": ["name", "date", "time"]})
    function.agents.add(bookable_agent)
    return function


def sample(client, agent, event, function=None) -> dict:
    query = {"company": agent.company_id, "agent": agent.pk, "event": event}
    if function is not None:
        query["function"] = function.pk
    response = client.get(SAMPLE, query)
    assert response.status_code == 200, response.content
    return response.json()


def send(client, agent, event, body: str, url: str, function=None):
    return client.post(f"{SEND}?company={agent.company_id}", data=json.dumps(
        {"agent": agent.pk, "event": event, "function": function.pk if function else None, "url": url, "body": body}),
        content_type="application/json")


def test_a_call_started_sent_to_this_server_is_answered_204_verified_and_stored_as_a_test(
        owner_client, bookable_agent, here, celery_eager):
    drawn = sample(owner_client, bookable_agent, "call_started")
    assert drawn["call_id"].startswith("test_") and drawn["url"] == here + tester.EVENTS_PATH
    body = json.loads(drawn["body"])
    assert body["call"]["agent_id"] == "agent_abc123" and body["call"]["call_status"] == "ongoing"

    response = send(owner_client, bookable_agent, "call_started", drawn["body"], drawn["url"])

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["response"]["status"] == 204
    assert answer["ttfb_ms"] > 0 and answer["total_ms"] >= answer["ttfb_ms"]
    assert answer["signature"]["verifies_here"] is True
    signature = answer["request"]["headers"]["X-Retell-Signature"]
    assert symmetric["verify"](answer["request"]["body"], RETELL_KEY, signature)  # Retell's own SDK agrees
    receipt = WebhookReceipt.objects.get(pk=answer["receipt"]["id"])
    assert answer["receipt"]["url"] == f"/admin/audit/webhookreceipt/{receipt.pk}/change/"
    assert receipt.status == WebhookReceipt.Status.PROCESSED and receipt.is_test is True
    call = Call.objects.get(call_id=drawn["call_id"])
    assert call.test_origin == Call.TestOrigin.WEBHOOK_TESTER and call.agent == bookable_agent
    assert AuditEntry.objects.filter(action="webhook_test", object_id=str(call.pk)).exists()
    line = ActivityLogEntry.objects.get(kind="tester.sent")
    assert line.data["call_id"] == drawn["call_id"] and "204" in line.message


def test_a_tested_function_books_a_test_appointment_that_the_tested_call_ended_releases_and_nothing_is_forwarded(
        owner_client, bookable_agent, booking_function, fake_backend, here, celery_eager):
    company = bookable_agent.company
    company.backend_url, company.backend_api_key = fake_backend.url, "backend-key-alpha"
    company.save()
    drawn = sample(owner_client, bookable_agent, "function", booking_function)
    body = json.loads(drawn["body"])
    assert body["name"] == "collect_appointment_information"
    assert set(body["args"]) >= {"name", "date", "time"}  # the schema's required arguments
    body["args"].update(date=_weekday(), time="10:00", service="Kontrolle")

    booked = send(owner_client, bookable_agent, "function", json.dumps(body), booking_function.url, booking_function)

    answer = booked.json()
    assert answer["response"]["status"] == 200, answer
    result = json.loads(answer["response"]["body"])
    appointment = Appointment.objects.get(pk=result["appointment_id"])
    assert appointment.is_test is True
    assert WebhookReceipt.objects.get(pk=answer["receipt"]["id"]).is_test is True

    ended = sample(owner_client, bookable_agent, "call_ended")
    ended_body = json.loads(ended["body"])
    ended_body["call"]["call_id"] = drawn["call_id"]  # the same test call ends
    sent = send(owner_client, bookable_agent, "call_ended", json.dumps(ended_body), here + tester.EVENTS_PATH)

    assert sent.json()["response"]["status"] == 204
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED
    assert Delivery.objects.count() == 0 and fake_backend.requests == []


def _weekday() -> str:
    from tests.conftest import next_weekday_iso

    return next_weekday_iso()


def test_a_test_sent_to_another_server_carries_retells_signature_over_the_exact_bytes(
        owner_client, bookable_agent, fake_backend, here, settings):
    settings.WEBHOOK_TESTER_ALLOW_PRIVATE_TARGETS = True  # the other server is a loopback fake
    WebhookConfig.objects.create(company=bookable_agent.company, url=fake_backend.url + "/retell")
    drawn = sample(owner_client, bookable_agent, "call_analyzed")
    assert drawn["url"] == fake_backend.url + "/retell"  # the webhook the agent's events go to

    answer = send(owner_client, bookable_agent, "call_analyzed", drawn["body"], drawn["url"]).json()

    assert answer["response"]["status"] == 200 and "receipt" not in answer
    received = fake_backend.requests[0]
    assert received.path == "/retell" and received.body["event"] == "call_analyzed"
    assert received.body["call"]["call_analysis"]["call_successful"] is True
    assert symmetric["verify"](received.raw.decode(), RETELL_KEY, received.headers["X-Retell-Signature"])


def test_a_server_that_does_not_answer_in_time_is_reported_not_raised(
        owner_client, bookable_agent, fake_backend, here, settings):
    settings.WEBHOOK_TESTER_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_TESTER_TIMEOUT_SECONDS = 0.5
    WebhookConfig.objects.create(company=bookable_agent.company, url=fake_backend.url + "/slow")
    fake_backend.hang(3)
    drawn = sample(owner_client, bookable_agent, "call_started")

    answer = send(owner_client, bookable_agent, "call_started", drawn["body"], fake_backend.url + "/slow").json()

    assert answer["response"] is None and "timeout" in answer["error"]
    assert 400 <= answer["total_ms"] < 2500
    assert ActivityLogEntry.objects.get(kind="tester.sent").level == "warning"


def test_a_transfer_event_sample_names_the_destination(owner_client, bookable_agent, here):
    body = json.loads(sample(owner_client, bookable_agent, "transfer_started")["body"])
    assert body["event"] == "transfer_started" and body["transfer_destination"]["number"]


@pytest.mark.parametrize("url, reason", [
    ("https://elsewhere.example.org/hook", "configured for this company"),
    ("file:///etc/passwd", "http and https"),
])
def test_a_url_that_is_neither_this_server_nor_configured_is_refused(owner_client, bookable_agent, here, url, reason):
    drawn = sample(owner_client, bookable_agent, "call_started")

    response = send(owner_client, bookable_agent, "call_started", drawn["body"], url)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "target_not_allowed" and reason in response.json()["error"]["message"]
    assert not Call.objects.filter(call_id=drawn["call_id"]).exists()


def test_a_configured_url_in_the_servers_own_networks_is_refused(owner_client, bookable_agent, here):
    WebhookConfig.objects.create(company=bookable_agent.company, url="http://169.254.169.254/latest/meta-data")
    drawn = sample(owner_client, bookable_agent, "call_started")

    response = send(owner_client, bookable_agent, "call_started", drawn["body"], "http://169.254.169.254/latest/meta-data")

    assert response.status_code == 400 and response.json()["error"]["code"] == "target_not_allowed"
    assert "169.254.169.254" in response.json()["error"]["message"]


def test_a_body_naming_a_real_call_is_refused_and_the_call_untouched(owner_client, bookable_agent, here):
    Call.objects.create(company=bookable_agent.company, call_id="real_call_9", agent=bookable_agent)
    body = json.loads(sample(owner_client, bookable_agent, "call_ended")["body"])
    body["call"]["call_id"] = "real_call_9"

    response = send(owner_client, bookable_agent, "call_ended", json.dumps(body), here + tester.EVENTS_PATH)

    assert response.status_code == 400 and response.json()["error"]["code"] == "not_a_test_call"
    assert Call.objects.get(call_id="real_call_9").test_origin == ""
    assert WebhookReceipt.objects.count() == 0


def test_a_test_call_id_of_another_company_is_refused(owner_client, bookable_agent, company_b, here):
    Call.objects.create(company=company_b, call_id="test_of_beta", test_origin=Call.TestOrigin.WEBHOOK_TESTER)
    body = json.loads(sample(owner_client, bookable_agent, "call_started")["body"])
    body["call"]["call_id"] = "test_of_beta"

    response = send(owner_client, bookable_agent, "call_started", json.dumps(body), here + tester.EVENTS_PATH)

    assert response.status_code == 400 and response.json()["error"]["code"] == "not_a_test_call"


def test_a_body_naming_another_agent_or_not_json_is_refused(owner_client, bookable_agent, here):
    body = json.loads(sample(owner_client, bookable_agent, "call_started")["body"])
    body["call"]["agent_id"] = "agent_someone_else"
    other = send(owner_client, bookable_agent, "call_started", json.dumps(body), here + tester.EVENTS_PATH)
    broken = send(owner_client, bookable_agent, "call_started", '{"event": ', here + tester.EVENTS_PATH)

    assert other.status_code == 400 and other.json()["error"]["code"] == "agent_mismatch"
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "bad_json"


def test_a_viewer_may_look_but_not_send(client, bookable_agent, here):
    client.force_login(make_member(bookable_agent.company, "viewer"))
    drawn = sample(client, bookable_agent, "call_started")
    page = client.get("/admin/retell-webhook-configuration/tester/", {"company": bookable_agent.company_id})

    response = send(client, bookable_agent, "call_started", drawn["body"], drawn["url"])

    assert page.status_code == 200 and b'data-sendable="0"' in page.content
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert not Call.objects.exists() and not WebhookReceipt.objects.exists()


def test_another_companys_agent_is_not_found_and_its_data_never_shown(client, bookable_agent, company_b, here):
    beta_agent = Agent.objects.create(company=company_b, agent_id="agent_beta_1", name="Beta Agent",
                                      webhook_url="https://beta.example.com/hook")
    client.force_login(make_member(company_b, "owner"))
    drawn = sample(client, beta_agent, "call_started")
    client.force_login(make_member(bookable_agent.company, "owner"))

    as_alpha = send(client, beta_agent, "call_started", drawn["body"], drawn["url"])
    alpha_sample = client.get(SAMPLE, {"company": company_b.pk, "agent": beta_agent.pk, "event": "call_started"})
    page = client.get("/admin/retell-webhook-configuration/tester/", {"company": bookable_agent.company_id})

    assert as_alpha.status_code == 404 and as_alpha.json()["error"]["code"] == "not_found"
    assert alpha_sample.status_code == 404
    assert b"agent_beta_1" not in page.content and b"beta.example.com" not in page.content


def test_a_member_limited_to_some_agents_tests_only_those(client, bookable_agent, here):
    from guardian.shortcuts import assign_perm

    company = bookable_agent.company
    other = Agent.objects.create(company=company, agent_id="agent_hidden", name="Hidden Agent",
                                 webhook_url="https://hidden.example.com/hook")
    member = make_member(company, "editor", limited=True)
    for perm in ("view_agent", "change_agent"):
        assign_perm(f"retell_config.{perm}", member, bookable_agent)
    client.force_login(member)

    page = client.get("/admin/retell-webhook-configuration/tester/", {"company": company.pk})
    drawn = sample(client, bookable_agent, "call_started")
    granted = send(client, bookable_agent, "call_started", drawn["body"], drawn["url"])
    hidden = send(client, other, "call_started", drawn["body"], drawn["url"])

    assert b"agent_hidden" not in page.content and b"hidden.example.com" not in page.content
    assert granted.json()["response"]["status"] == 204
    assert hidden.status_code == 404


def test_without_any_signing_key_nothing_is_sent(owner_client, company_a, here, settings):
    settings.RETELL_API_KEY = ""
    agent = Agent.objects.create(company=company_a, agent_id="agent_nokey", name="No Key")
    drawn = sample(owner_client, agent, "call_started")

    response = send(owner_client, agent, "call_started", drawn["body"], drawn["url"])

    assert response.status_code == 400 and response.json()["error"]["code"] == "signature_key_missing"


def test_the_dashboards_test_webhook_buttons_open_the_tester(owner_client, company_a):
    page = owner_client.get("/admin/retell-webhook-configuration/", {"company": company_a.pk}).content.decode()

    assert page.count(f'href="/admin/retell-webhook-configuration/tester/?company={company_a.pk}"') == 2
    assert 'data-soon="Test Webhook"' not in page


def test_the_private_address_check_refuses_what_resolves_inside(settings):
    settings.WEBHOOK_TESTER_ALLOW_PRIVATE_TARGETS = False
    assert tester._address_refused("127.0.0.1") and tester._address_refused("10.1.2.3")
    assert "never calls" in tester._address_refused("169.254.169.254")
    settings.WEBHOOK_TESTER_ALLOW_PRIVATE_TARGETS = True
    assert tester._address_refused("127.0.0.1") == ""
    assert tester._address_refused("169.254.169.254")  # link-local stays out whatever the setting
    with socket.socket():  # an unresolvable host is left to the send to report
        assert tester._address_refused("no-such-host.invalid") == ""


def test_a_get_of_the_send_endpoint_is_a_json_405(owner_client, company_a):
    response = owner_client.get(SEND, {"company": company_a.pk})

    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
