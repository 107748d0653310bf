"""Client errors are 4xx, never 500 (issue 11, item 3), on the three webhook endpoints: each
found input is answered with the endpoint's JSON error and stored as one receipt."""

import json

import pytest

from appointments.function_specs import FUNCTION_SPECS
from appointments.models import FunctionInvocation
from audit.models import AuditEntry, WebhookReceipt
from tests.conftest import RETELL_KEY
from tests.fakes import retell

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection
URL, FUNCTIONS_URL, EL_URL = "/api/retell/webhook", "/api/mcp/retell/custom-function", "/api/elevenlabs/callback"
EL_KEY = "el-key-alpha-1234567890"


def assert_json_error(response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message"}
    if code is not None:
        assert error["code"] == code


def only_receipt() -> WebhookReceipt:
    [receipt] = WebhookReceipt.objects.all()
    return receipt


@pytest.fixture
def el_company(company_a):
    company_a.elevenlabs_api_key = EL_KEY
    company_a.save()
    return company_a


# --- ElevenLabs ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [["post_call_transcription"], {"name": "post_call_transcription"}, 7, None])
def test_an_elevenlabs_callback_whose_type_is_not_a_string_is_refused_400(client, el_company, kind):
    body = json.dumps({"type": kind, "data": {"conversation_id": "conv_1"}}).encode()

    response = client.post(EL_URL, data=body, content_type="application/json", HTTP_X_API_KEY=EL_KEY)

    assert_json_error(response, 400, "invalid_field")
    assert only_receipt().status == WebhookReceipt.Status.REJECTED


@pytest.mark.parametrize("query", ["?company=al%00pha", "?company=" + "a" * 500, "?company=al%0Apha"])
def test_an_elevenlabs_company_that_cannot_be_a_slug_is_unknown(client, el_company, query):
    body = json.dumps({"type": "post_call_transcription", "data": {"conversation_id": "conv_1"}}).encode()

    response = client.post(EL_URL + query, data=body, content_type="application/json", HTTP_X_API_KEY=EL_KEY)

    assert_json_error(response, 404, "unknown_company")
    assert only_receipt().status == WebhookReceipt.Status.REJECTED


@pytest.mark.parametrize("conversation_id", ["conv\x00_1", "c" * 300, {"id": "conv_1"}, ["conv_1"]])
def test_an_elevenlabs_conversation_id_that_cannot_be_an_id_is_refused_400(client, el_company, conversation_id):
    body = json.dumps({"type": "post_call_transcription", "data": {"conversation_id": conversation_id}}).encode()

    response = client.post(EL_URL, data=body, content_type="application/json", HTTP_X_API_KEY=EL_KEY)

    assert_json_error(response, 400, "invalid_field")
    assert only_receipt().status == WebhookReceipt.Status.REJECTED


@pytest.mark.parametrize("body", [b"[1, 2]", b'"post_call_transcription"', b"null"])
def test_an_elevenlabs_body_that_is_not_an_object_is_refused_400(client, el_company, body):
    response = client.post(EL_URL, data=body, content_type="application/json", HTTP_X_API_KEY=EL_KEY)

    assert_json_error(response, 400, "bad_payload")
    assert bytes(only_receipt().body) == body


# --- Strict JSON in, on every endpoint ---------------------------------------------------
NOT_JSON = [b'{"event": "call_ended", "call": {"call_id": "c", "agent_id": "agent_abc123", "duration_ms": NaN}}',
            b'{"event": "call_ended", "call": {"call_id": "c", "agent_id": "agent_abc123", "duration_ms": Infinity}}',
            b'{"event": "call_ended", "call": {"call_id": "c", "agent_id": "agent_abc123", "duration_ms": 1e400}}',
            b'{"event": "call_ended", "call": {"call_id": "\\ud800", "agent_id": "agent_abc123"}}',
            b"[" * 1100 + b"]" * 1100]


@pytest.mark.parametrize("url", [URL, FUNCTIONS_URL, EL_URL + "?company=alpha"])
@pytest.mark.parametrize("body", NOT_JSON, ids=["NaN", "Infinity", "1e400", "lone surrogate", "nesting 1100"])
def test_bodies_that_are_not_strict_json_are_refused_as_bad_json(client, retell_agent, url, body):
    response = client.post(url, data=body, content_type="application/json", HTTP_X_API_KEY=EL_KEY,
                           **retell.headers(body, RETELL_KEY))

    assert_json_error(response, 400, "bad_json")
    assert bytes(only_receipt().body) == body


# --- Custom functions ----------------------------------------------------------------------
STRING_ARGS = [(name, arg) for name, spec in FUNCTION_SPECS.items()
               for arg, schema in spec["parameters"]["properties"].items() if schema.get("type") == "string"]


def _valid_args(name: str) -> dict:
    return {"name": "Erika Muster", "date": "2030-01-07", "time": "10:00", "service": "Kontrolle",
            "phone": "+4915112345678", "current_date": "2030-01-07", "new_date": "2030-01-08",
            "new_time": "11:00", "appointment_id": 1} | {}


@pytest.mark.parametrize(("name", "arg"), STRING_ARGS, ids=[f"{n}.{a}" for n, a in STRING_ARGS])
@pytest.mark.parametrize("flaw", ["NUL", "NUL in a key"])
def test_a_nul_in_a_custom_function_argument_is_refused_400(client, bookable_agent, name, arg, flaw):
    properties = FUNCTION_SPECS[name]["parameters"]["properties"]
    args = {key: value for key, value in _valid_args(name).items() if key in properties}
    if flaw == "NUL":
        args[arg] = f"{args[arg]}\x00"
    else:
        args[f"{arg}\x00"] = args.pop(arg)
    call = retell.call_object("call_nul", "agent_abc123", status="ongoing", turns=1)
    body = json.dumps({"name": name, "call": call, "args": args}).encode()

    response = client.post(FUNCTIONS_URL, data=body, content_type="application/json",
                           **retell.headers(body, RETELL_KEY))

    assert_json_error(response, 400, "invalid_arguments")
    receipt = only_receipt()
    assert (receipt.status, receipt.error_code) == (WebhookReceipt.Status.REJECTED, "invalid_arguments")
    assert not FunctionInvocation.objects.exists()


def test_a_nul_in_the_callers_number_is_not_a_number(client, bookable_agent):
    call = retell.call_object("call_nul", "agent_abc123", status="ongoing", turns=1, from_number="+49\x00151")
    body = json.dumps({"name": "check_availability", "call": call, "args": {"date": "2030-01-07"}}).encode()

    response = client.post(FUNCTIONS_URL, data=body, content_type="application/json",
                           **retell.headers(body, RETELL_KEY))

    assert response.status_code == 200 and "ok" in response.json()


# --- The client's address behind a proxy -----------------------------------------------------
@pytest.mark.parametrize("forwarded", ["not-an-ip", "1.2.3.4:80", "fe80::1%eth0", "\x00", "999.1.1.1"])
def test_a_forged_forwarded_for_behind_a_proxy_falls_back_to_the_peer(client, retell_agent, settings, forwarded):
    settings.NUM_PROXIES = 1
    body = retell.event_body("call_started", retell.call_object("call_xff", "agent_abc123", status="ongoing"))

    response = client.post(URL, data=body, content_type="application/json", HTTP_X_FORWARDED_FOR=forwarded,
                           **retell.headers(body, RETELL_KEY))

    assert response.status_code == 204
    assert only_receipt().remote_addr == "127.0.0.1"


def test_a_forwarded_for_set_by_the_proxy_is_the_client(client, retell_agent, settings):
    settings.NUM_PROXIES = 1
    body = retell.event_body("call_started", retell.call_object("call_xff", "agent_abc123", status="ongoing"))

    client.post(URL, data=body, content_type="application/json", HTTP_X_FORWARDED_FOR="not-an-ip, 203.0.113.9",
                **retell.headers(body, RETELL_KEY))

    assert only_receipt().remote_addr == "203.0.113.9"


def test_a_forged_forwarded_for_does_not_break_an_admin_change(client, owner_a, company_a, settings):
    settings.NUM_PROXIES = 1
    client.force_login(owner_a)

    response = client.post("/admin/appointments/closure/add/", {
        "company": company_a.pk, "first_day": "2030-12-24", "last_day": "2030-12-26", "reason": "Holidays"},
        HTTP_X_FORWARDED_FOR="not-an-ip")

    assert response.status_code == 302
    assert AuditEntry.objects.get(object_type="appointments.closure").ip == "127.0.0.1"


ODD_VALUES = ["x" * 5000, 2**64, -1e300, {"a": [None]}]


@pytest.mark.parametrize("value", ODD_VALUES, ids=[repr(v)[:20] for v in ODD_VALUES])
@pytest.mark.parametrize("name", sorted(FUNCTION_SPECS))
def test_odd_values_in_every_function_argument_are_answered_without_a_500(client, bookable_agent, name, value):
    properties = FUNCTION_SPECS[name]["parameters"]["properties"]
    call = retell.call_object("call_odd", "agent_abc123", status="ongoing", turns=1)
    for arg in properties:
        args = {key: v for key, v in _valid_args(name).items() if key in properties} | {arg: value}
        body = json.dumps({"name": name, "call": call, "args": args}).encode()

        response = client.post(FUNCTIONS_URL, data=body, content_type="application/json",
                                **retell.headers(body, RETELL_KEY))

        assert response.status_code < 500, (arg, response.content[:300])
