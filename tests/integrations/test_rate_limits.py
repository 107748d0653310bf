"""Rate limits on every public endpoint (config.ratelimits): 429 with Retry-After and a JSON error;
a provider webhook over a limit is still stored as a receipt, marked as refused; a company's own
rates; Retell's addresses never limited by address; django-axes on the admin sign-in; socket
handshakes refused before any consumer runs."""

import asyncio
import json

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from audit.actor import Actor
from audit.models import WebhookReceipt
from config.ratelimits import rate_of
from retell_config.models import Agent
from tenants.services import api_token_create
from tests.conftest import RETELL_KEY
from tests.factories import make_company, make_user
from tests.fakes import retell, twilio

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection

RETELL_IP = "100.20.5.228"
WEBHOOK, FUNCTION = "/api/retell/webhook", "/api/mcp/retell/custom-function"


def limits(settings, **rates):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, **{name.replace("__", "."): rate for name, rate in rates.items()}}


def assert_429(response, limit: str):
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 3600
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and limit in error["message"]


def event(call_id: str) -> bytes:
    return retell.event_body("call_started", retell.call_object(call_id, "agent_abc123", status="ongoing"))


def function_call(call_id: str, agent_id: str = "agent_abc123") -> bytes:
    call = retell.call_object(call_id, agent_id, status="ongoing")
    return json.dumps({"name": "check_availability", "call": call, "args": {"date": "2030-01-07"}}).encode()


def post(client, url, body: bytes, **extra):
    return client.post(url, data=body, content_type="application/json", **extra)


# --- provider webhooks: refused, and stored all the same ----------------------------------------------------
def test_a_retell_webhook_over_the_company_limit_is_answered_429_and_still_stored(client, retell_agent, settings):
    limits(settings, webhook__company="2/m")
    answers = [post(client, WEBHOOK, body, **retell.headers(body, RETELL_KEY))
               for body in (event("call_1"), event("call_2"), event("call_3"))]

    assert [a.status_code for a in answers[:2]] == [204, 204]
    assert_429(answers[2], "webhook.company")
    refused = WebhookReceipt.objects.get(call_id="call_3")
    assert bytes(refused.body) == event("call_3")
    assert (refused.status, refused.error_code, refused.company_id) == ("rejected", "rate_limited",
                                                                        retell_agent.company_id)
    assert (refused.event_type, refused.dedupe_key) == ("call_started", "")
    # The retry after the window is not a duplicate of the refused one.
    settings.RATELIMIT_CACHE_PREFIX += "next-window:"
    again = post(client, WEBHOOK, event("call_3"), **retell.headers(event("call_3"), RETELL_KEY))
    assert again.status_code == 204
    assert WebhookReceipt.objects.filter(call_id="call_3", status="verified").exists() or \
        WebhookReceipt.objects.filter(call_id="call_3", status="processed").exists()


def test_a_sender_over_the_address_limit_is_refused_before_its_check_and_stored(client, retell_agent, settings):
    limits(settings, webhook__address="1/m")
    first = post(client, WEBHOOK, b'{"not": "signed"}')
    second = post(client, WEBHOOK, event("call_9"))

    assert first.status_code == 400
    assert_429(second, "webhook.address")
    receipt = WebhookReceipt.objects.get(error_code="rate_limited")
    assert bytes(receipt.body) == event("call_9") and receipt.status == "rejected"
    assert receipt.call_id == "call_9"  # what a readable body names is kept


def test_retells_published_address_is_never_limited_by_address(client, retell_agent, settings):
    limits(settings, webhook__address="1/m", function__address="1/m")
    answers = [post(client, WEBHOOK, body, REMOTE_ADDR=RETELL_IP, **retell.headers(body, RETELL_KEY))
               for body in (event("call_1"), event("call_2"), event("call_3"))]

    assert [a.status_code for a in answers] == [204, 204, 204]


def test_the_default_limits_leave_a_busy_practices_retell_traffic_alone(settings):
    """50 calls at once, each with its events and a dozen function calls within a minute, stay under the defaults."""
    per_minute_of_a_busy_company = 50 * (4 + 12)
    for name in ("webhook.company", "function.agent"):
        count, period = settings.RATE_LIMITS[name].split("/")
        assert period == "m" and int(count) >= 2 * per_minute_of_a_busy_company / (1 if name == "webhook.company" else 2)


def test_the_custom_function_limit_counts_per_agent_and_a_company_may_have_its_own(client, retell_agent, settings):
    limits(settings, function__agent="1/m")
    other_company = make_company("Gamma", slug="gamma", retell_api_key="key_gamma_0123456789abcdef",
                                 rate_limits={"function.agent": "3/m"})
    Agent.objects.create(company=other_company, agent_id="agent_gamma", name="Gamma Agent")

    alpha = [post(client, FUNCTION, function_call(f"call_a{i}"),
                  **retell.headers(function_call(f"call_a{i}"), RETELL_KEY)) for i in range(2)]
    gamma = [post(client, FUNCTION, function_call(f"call_g{i}", "agent_gamma"),
                  **retell.headers(function_call(f"call_g{i}", "agent_gamma"), "key_gamma_0123456789abcdef"))
             for i in range(4)]

    assert alpha[0].status_code == 200
    assert_429(alpha[1], "function.agent")
    assert [g.status_code for g in gamma[:3]] == [200, 200, 200]
    assert_429(gamma[3], "function.agent")
    refused = WebhookReceipt.objects.get(call_id="call_g3")
    assert (refused.kind, refused.event_type, refused.error_code) == ("function", "check_availability",
                                                                      "rate_limited")


def test_an_elevenlabs_callback_over_the_limit_is_stored(client, company_a, settings):
    limits(settings, webhook__address="1/m")
    body = json.dumps({"type": "post_call_transcription", "data": {"conversation_id": "conv_1"}}).encode()
    post(client, "/api/elevenlabs/callback?company=alpha", body)
    refused = post(client, "/api/elevenlabs/callback?company=alpha", body)

    assert_429(refused, "webhook.address")
    receipt = WebhookReceipt.objects.get(error_code="rate_limited")
    assert (receipt.provider, receipt.call_id) == ("elevenlabs", "conv_1")


def test_a_twilio_status_callback_over_the_limit_is_stored(client, company_a, settings):
    limits(settings, webhook__address="1/m")
    form = twilio.status_form(to="+493083793369", call_sid=twilio.new_call_sid(), status="completed")
    client.post("/api/voice-agent/status", form)
    refused = client.post("/api/voice-agent/status", form)

    assert_429(refused, "webhook.address")
    assert WebhookReceipt.objects.get(error_code="rate_limited").provider == "twilio"


# --- the gateway -------------------------------------------------------------------------------------------------
def test_the_gateway_answers_429_with_a_json_rpc_error_per_token(client, owner_a, company_a, settings):
    limits(settings, gateway__token="1/m")
    token = api_token_create(actor=Actor.system("tests"), user=owner_a, name="script")[1]
    body = json.dumps({"jsonrpc": "2.0", "method": "retell_config.listAgents", "params": {"company_id": company_a.pk},
                       "id": 1})

    def call(plaintext):
        return client.post("/api/mcp/gateway", body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {plaintext}")

    first, second = call(token), call(token)
    other_token = api_token_create(actor=Actor.system("tests"), user=owner_a, name="other")[1]

    assert first.status_code == 200
    assert second.status_code == 429 and int(second["Retry-After"]) >= 1
    error = second.json()["error"]
    assert error["code"] == -32029 and error["data"]["limit"] == "gateway.token"
    assert call(other_token).status_code == 200  # counted per token


def test_the_gateway_limits_an_address_before_reading_the_token(client, settings):
    limits(settings, gateway__address="1/m")
    client.post("/api/mcp/gateway", "{}", content_type="application/json")
    refused = client.post("/api/mcp/gateway", "{}", content_type="application/json")

    assert refused.status_code == 429 and refused.json()["error"]["data"]["limit"] == "gateway.address"


# --- the REST API (DRF throttling) ----------------------------------------------------------------------------------
class Ping(APIView):
    def get(self, request):
        return Response({"pong": True})


urlpatterns = [path("ping", Ping.as_view())]


@override_settings(ROOT_URLCONF=__name__)
def test_the_rest_api_throttles_per_credential_with_retry_after(client, owner_a, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        "api.address": "100/m", "api.credential": "2/m"}}
    client.force_login(owner_a)
    answers = [client.get("/ping") for _ in range(3)]
    other = make_user()
    client.force_login(other)

    assert [a.status_code for a in answers[:2]] == [200, 200]
    refused = answers[2]
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
    assert client.get("/ping").status_code == 200  # another user counts apart


@override_settings(ROOT_URLCONF=__name__)
def test_the_rest_api_throttles_per_address(client, owner_a, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        "api.address": "1/m", "api.credential": "100/m"}}
    client.force_login(owner_a)
    client.get("/ping")
    refused = client.get("/ping")
    client.force_login(make_user())

    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert client.get("/ping").status_code == 429  # another user from the same address too
    assert client.get("/ping", REMOTE_ADDR="10.9.8.7").status_code == 200


# --- the admin sign-in ----------------------------------------------------------------------------------------------------
def test_axes_locks_out_a_user_name_after_failed_passwords(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = make_user(is_superuser=True)
    name = user.username
    attempts = [client.post("/admin/login/", {"username": name, "password": "wrong"}) for _ in range(3)]
    locked = client.post("/admin/login/", {"username": name, "password": "pw-for-tests-only"})

    assert [a.status_code for a in attempts[:2]] == [200, 200]  # the form again, with its error
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert locked.json()["error"]["code"] == "login_locked"
    assert "_auth_user_id" not in client.session
    # The same user from another address may still sign in.
    assert client.post("/admin/login/", {"username": name, "password": "pw-for-tests-only"},
                       REMOTE_ADDR="10.1.2.3").status_code == 302


def test_admin_sign_in_posts_are_limited_per_address(client, settings):
    limits(settings, admin_login__address="2/m")
    for _ in range(2):
        client.post("/admin/login/", {"username": "nobody", "password": "x"})
    refused = client.post("/admin/login/", {"username": "nobody", "password": "x"})

    assert_429(refused, "admin_login.address")
    assert client.get("/admin/login/").status_code == 200  # the page itself is not counted


# --- socket handshakes -----------------------------------------------------------------------------------------------------
def test_a_socket_handshake_over_the_limit_is_refused_429_before_the_consumer(http_server, settings, company_a):
    limits(settings, socket__credential="1/m")
    url = http_server.replace("http://", "ws://") + "/retell-llm/" + "t" * 24 + "/call_1"

    async def handshake():
        try:
            async with connect(url, open_timeout=5):
                return 101, {}, b""
        except InvalidStatus as refused:
            return refused.response.status_code, refused.response.headers, refused.response.body

    first = asyncio.run(handshake())
    status, headers, body = asyncio.run(handshake())

    assert first[0] == 403  # an unknown token: the consumer refuses it
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert json.loads(body)["error"]["code"] == "rate_limited"


def test_socket_handshakes_from_retells_address_are_not_limited_by_address(settings):
    from config.ratelimits import SocketHandshakeLimit

    limits(settings, socket__address="1/m", socket__credential="100/m")
    scope = {"type": "websocket", "path": "/retell-llm/call_x", "client": (RETELL_IP, 5000), "headers": []}
    other = {**scope, "client": ("203.0.113.9", 5000)}

    assert [SocketHandshakeLimit._refused(scope) for _ in range(3)] == [None, None, None]
    assert SocketHandshakeLimit._refused(other) is None
    assert SocketHandshakeLimit._refused(other).name == "socket.address"


def test_twilio_media_streams_share_no_credential_limit(settings):
    """The stream's path is the same for every call (its token comes in the first frame): counted by address only."""
    from config.ratelimits import SocketHandshakeLimit

    limits(settings, socket__address="100/m", socket__credential="1/m")
    streams = [{"type": "websocket", "path": "/voice-agent/media-stream", "client": (f"198.51.100.{i}", 5000),
                "headers": []} for i in range(3)]
    sockets = [{"type": "websocket", "path": "/retell-llm/" + "k" * 20 + f"/call_{i}", "client": ("198.51.100.9", 1),
                "headers": []} for i in range(2)]

    assert [SocketHandshakeLimit._refused(scope) for scope in streams] == [None, None, None]
    assert SocketHandshakeLimit._refused(sockets[0]) is None
    assert SocketHandshakeLimit._refused(sockets[1]).name == "socket.credential"  # the same agent token


# --- per-company rates ---------------------------------------------------------------------------------------------------
def test_a_company_rate_replaces_only_the_limits_it_may(company_a, settings):
    company_a.rate_limits = {"webhook.company": "9000/m"}

    assert rate_of("webhook.company", company_a) == "9000/m"
    assert rate_of("function.agent", company_a) == settings.RATE_LIMITS["function.agent"]
    for bad in ({"mcp.token": "1/m"}, {"webhook.company": "lots"}, ["9000/m"]):
        company_a.rate_limits = bad
        with pytest.raises(ValidationError):
            company_a.full_clean()


def test_only_a_superuser_sees_and_sets_a_companys_rates(client, company_a, owner_a):
    admin = make_user("root", is_superuser=True)
    url = f"/admin/tenants/company/{company_a.pk}/change/"
    client.force_login(owner_a)
    assert "rate_limits" not in client.get(url).content.decode()

    client.force_login(admin)
    page = client.get(url).content.decode()
    assert 'name="rate_limits"' in page
