"""Fuzzing the three webhook endpoints (issue 11, item 3): whatever arrives, the answer is never a
5xx, a 4xx carries the JSON error `{"error": {"code", "message"}}`, a success is strict JSON (or
empty), and every request leaves exactly one receipt, stored before it is answered. Events the
intake accepted are processed (issue 11, item 2): the worker runs in line here.

Bodies are built around the shapes the providers send, so most examples get past parsing and the
signature into the code behind them: ids, names, arguments and call fields hold NUL characters,
lone surrogates, control characters, over-long text, numbers beyond any range and deep nesting.
"""

import json
import time
from urllib.parse import urlencode

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from appointments.function_specs import FUNCTION_SPECS
from audit.models import WebhookReceipt
from tests.conftest import RETELL_KEY
from tests.fakes import retell
from voice.protocols.signatures import elevenlabs_sign, retell_sign

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection
URL, FUNCTIONS_URL, EL_URL = "/api/retell/webhook", "/api/mcp/retell/custom-function", "/api/elevenlabs/callback"
EL_KEY, EL_SECRET = "el-key-alpha-1234567890", "wsec_alpha_secret"
FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# --- What the fields hold -----------------------------------------------------------------
# Mostly what a provider could send, sometimes a flaw. What makes a whole body bad JSON (a lone
# surrogate, NaN, Infinity, 1e400, nesting beyond 1024) is a poison drawn rarely, so that most
# examples reach the code behind the parser.
def mostly(common, rare, times: int = 6):
    """`common` about `times` times as often as `rare` (one_of would not weigh repeated branches)."""
    return st.sampled_from([False] * times + [True]).flatmap(lambda is_rare: rare if is_rare else common)


FLAWED_TEXT = ["", "p\x00x", "\x00", "a\nb", "\x7f", "a" * 300, "é" * 70, "😀" * 40,
               "  ", "../../etc", "%00", "\\u0000", "1e400", "NaN"]
sane_text = st.text(max_size=20)
text = mostly(sane_text, st.sampled_from(FLAWED_TEXT), 3)
finite = st.one_of(st.integers(min_value=-(10**6), max_value=10**15),
                   st.floats(allow_nan=False, allow_infinity=False))
extreme = st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**20, 10**300, 1e300, -1e308, -1])
numbers = mostly(finite, extreme, 3)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(text, children, max_size=3)), max_leaves=8)
ids = mostly(st.integers(min_value=0, max_value=10**6).map("call_fz_{}".format), st.sampled_from(FLAWED_TEXT), 12)
agent_ids = mostly(st.just("agent_abc123"), st.sampled_from(FLAWED_TEXT), 12)


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


# Marks replaced after serialising by nesting no dict can be built with here.
DEEP = {f"__deep_{depth}__": depth for depth in (40, 990, 1030)}
deep_or_value = st.one_of(json_values, st.sampled_from(["__deep_40__", "__deep_990__"]))
poison = st.sampled_from([float("nan"), float("inf"), 10**400, "\ud800", "x\udfff", "__deep_1030__"])

CALL_FIELDS = ["call_type", "from_number", "to_number", "direction", "call_status", "start_timestamp",
               "end_timestamp", "duration_ms", "disconnection_reason", "transcript", "transcript_object",
               "recording_url", "call_analysis", "call_cost", "latency", "metadata",
               "retell_llm_dynamic_variables", "collected_dynamic_variables", "transfer_destination"]


@st.composite
def call_objects(draw, call_id=None):
    call = retell.call_object(draw(ids) if call_id is None else call_id, draw(agent_ids), turns=1)
    for name in draw(st.lists(st.sampled_from(CALL_FIELDS), max_size=3, unique=True)):
        call[name] = draw(st.one_of(deep_or_value, numbers, text))
    if draw(mostly(st.just(False), st.just(True), 10)):
        call[draw(st.sampled_from(CALL_FIELDS))] = draw(poison)
    return call


def serialised(value, *, ascii_only: bool) -> bytes:
    raw = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")
    for mark, depth in DEEP.items():
        raw = raw.replace(f'"{mark}"'.encode(), _nested(depth).encode())
    return raw


@st.composite
def retell_requests(draw, url: str):
    """(url with query, body) for `url` (either Retell URL takes both kinds): events, function calls,
    bare arguments and arbitrary bodies."""
    shape = draw(mostly(st.sampled_from(["event", "event", "function"]), st.sampled_from(["bare", "any", "bytes"]),
                        3))
    query = {}
    if shape == "event":
        known = st.sampled_from(["call_started", "call_ended", "call_analyzed", "transcript_updated",
                                 "transfer_started"])
        value = {"event": draw(mostly(known, text, 3)),
                 "call": draw(call_objects())}
        if draw(mostly(st.just(False), st.just(True), 2)):
            value[draw(text)] = draw(deep_or_value)
    elif shape == "function":
        name = draw(st.one_of(st.sampled_from(sorted(FUNCTION_SPECS)), text))
        properties = FUNCTION_SPECS.get(name, {"parameters": {"properties": {"date": {}}}})["parameters"]["properties"]
        args = {arg: draw(st.one_of(st.just("2030-01-07"), st.just("10:00"), text, json_values))
                for arg in properties if draw(st.booleans())}
        value = {"name": name, "call": draw(call_objects()), "args": args}
    elif shape == "bare":
        value = draw(st.dictionaries(text, json_values, max_size=3))
        query = {"function": draw(st.one_of(st.sampled_from(sorted(FUNCTION_SPECS)), text)),
                 "agent_id": draw(agent_ids),
                 "call_id": draw(ids)}
    elif shape == "any":
        value = draw(st.one_of(deep_or_value, poison))
    else:
        return url, draw(st.binary(max_size=60))
    if query:
        url += "?" + urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in query.items()})
    return url, serialised(value, ascii_only=draw(st.booleans()))


@st.composite
def elevenlabs_requests(draw):
    data = {"agent_id": draw(json_values), "conversation_id": draw(mostly(ids, json_values, 3)),
            "status": "done",
            "transcript": draw(st.one_of(st.just([{"role": "agent", "message": "Hallo"}]),
                                         st.lists(st.dictionaries(st.sampled_from(["role", "message"]), json_values),
                                                  max_size=3), deep_or_value)),
            "metadata": draw(mostly(st.fixed_dictionaries({"start_time_unix_secs": numbers,
                                                           "call_duration_secs": numbers}), deep_or_value, 2)),
            "analysis": draw(deep_or_value),
            "conversation_initiation_client_data": {"dynamic_variables": draw(st.dictionaries(
                st.sampled_from(["call_id", "system__call_sid"]), json_values))}}
    callback = st.fixed_dictionaries({"type": mostly(st.just("post_call_transcription"), json_values, 3),
                                      "data": st.just(data)})
    value = draw(mostly(callback, st.one_of(deep_or_value, poison), 3))
    query = draw(mostly(st.just({"company": "alpha"}), st.one_of(st.just({}),
                                                                 st.fixed_dictionaries({"company": text})), 3))
    url = EL_URL + ("?" + urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in query.items()})
                    if query else "")
    return url, serialised(value, ascii_only=draw(st.booleans()))


forwarded_for = st.one_of(st.none(), st.sampled_from(["not-an-ip", "203.0.113.7", "1.2.3.4:80", "fe80::1%eth0",
                                                      "999.1.1.1", "\x00", "a, b", ""]))


# --- What every answer must be ------------------------------------------------------------
def assert_answered_well(response, receipts_before: int) -> None:
    event(f"answered {response.status_code}"
          + (f" {orjson.loads(response.content)['error']['code']}" if response.status_code >= 400 else ""))
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/json"
        body = orjson.loads(response.content)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
        assert all(isinstance(v, str) for v in body["error"].values())
    elif response.content:
        orjson.loads(response.content)  # strict JSON: no NaN, no Infinity
    assert WebhookReceipt.objects.count() == receipts_before + 1
    receipt = WebhookReceipt.objects.latest("pk")
    if response.status_code == 204 or response.json() == {"status": "received"}:
        # Accepted as an event: processed (or a duplicate of one), never failed.
        assert receipt.status in (WebhookReceipt.Status.PROCESSED, WebhookReceipt.Status.DUPLICATE), (
            receipt.status, receipt.error_code, receipt.error_message)


@pytest.fixture
def proxied(settings):
    settings.NUM_PROXIES = 1


@pytest.mark.parametrize("url", [URL, FUNCTIONS_URL])
def test_a_retell_endpoint_answers_any_request_well_and_stores_it_once(client, bookable_agent, celery_eager,
                                                                        proxied, url):
    @FUZZ
    @given(request=retell_requests(url), signed=mostly(st.just(True), st.just(False), 3), forwarded=forwarded_for)
    def check(request, signed, forwarded):
        url, body = request
        # Our signer, not the SDK's: it takes bytes that are not UTF-8 too.
        headers = {"HTTP_X_RETELL_SIGNATURE": retell_sign(body, RETELL_KEY, int(time.time() * 1000))} if signed else {}
        if forwarded is not None:
            headers["HTTP_X_FORWARDED_FOR"] = forwarded
        before = WebhookReceipt.objects.count()

        response = client.post(url, data=body, content_type="application/json", **headers)

        assert_answered_well(response, before)

    check()


def test_the_elevenlabs_endpoint_answers_any_request_well_and_stores_it_once(client, company_a, celery_eager,
                                                                            proxied):
    company_a.elevenlabs_api_key, company_a.elevenlabs_webhook_secret = EL_KEY, EL_SECRET
    company_a.save()

    @FUZZ
    @given(request=elevenlabs_requests(), key=st.sampled_from([None, EL_KEY, "wrong", None]),
           signed=mostly(st.just(True), st.just(False), 3), forwarded=forwarded_for)
    def check(request, key, signed, forwarded):
        url, body = request
        headers = {} if key is None else {"HTTP_X_API_KEY": key}
        if signed:
            headers["HTTP_ELEVENLABS_SIGNATURE"] = elevenlabs_sign(body, EL_SECRET, int(time.time()))
        if forwarded is not None:
            headers["HTTP_X_FORWARDED_FOR"] = forwarded
        before = WebhookReceipt.objects.count()

        response = client.post(url, data=body, content_type="application/json", **headers)

        assert_answered_well(response, before)

    check()
