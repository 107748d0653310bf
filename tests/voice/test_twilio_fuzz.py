"""Fuzzing Twilio's two voice webhooks: whatever arrives, the answer is never a 5xx, a 4xx carries
the JSON error, an incoming call's 200 is TwiML (the stream or the goodbye), every request leaves
exactly one receipt, and every status callback accepted is applied (the worker runs in line).

Forms are built around what Twilio posts, mostly signed as Twilio signs them (the twilio
package's compute_signature), so most examples reach the code behind the signature: the called
number, the CallSid, the status, SequenceNumber, CallDuration and Timestamp hold NUL characters,
control characters, over-long text, non-numbers and huge numbers; names repeat; unknown
parameters come along; some bodies are not UTF-8 at all.
"""

import xml.etree.ElementTree as ET
from urllib.parse import quote, urlencode

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from audit.models import WebhookReceipt
from tests.fakes import twilio
from tests.voice.conftest import TWILIO_NUMBER, TWILIO_PUBLIC

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection
INCOMING, STATUS = "/api/voice-agent/incoming", "/api/voice-agent/status"
FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def mostly(common, rare, times: int = 4):
    """`common` about `times` times as often as `rare`."""
    return st.sampled_from([False] * times + [True]).flatmap(lambda is_rare: rare if is_rare else common)


FLAWED = ["", "\x00", "CA\x00" + "1" * 32, "a\nb", "\x7f", "a" * 300, "é" * 70, "😀" * 40, " ", "%00", "+",
          "+49 30 837", "999999999999999999999999", "-1", "NaN", "1e400", "<Say>x</Say>", "&amp;"]
text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)  # a form value is UTF-8: no surrogates
flawed = st.one_of(st.sampled_from(FLAWED), text)
sids = st.integers(min_value=0, max_value=10**6).map(lambda n: f"CA{n:032x}")
numbers = mostly(st.just(TWILIO_NUMBER), st.just("+12125550100"), 8)
statuses = st.sampled_from(["queued", "initiated", "ringing", "in-progress", "completed", "busy", "failed",
                            "no-answer", "canceled"])
sequences = st.integers(min_value=0, max_value=20).map(str)
durations = st.integers(min_value=0, max_value=7200).map(str)
timestamps = st.sampled_from(["Mon, 07 Jan 2030 08:15:00 +0000", "Tue, 31 Dec 2999 23:59:59 -1200",
                              "Thu, 01 Jan 1970 00:00:00 +0000"])
FIELDS = {"To": numbers, "CallSid": sids, "CallStatus": statuses, "SequenceNumber": sequences,
          "CallDuration": durations, "Timestamp": timestamps, "From": st.just(twilio.CALLER),
          "Direction": st.just("inbound")}


@st.composite
def forms(draw, path: str):
    """(path with query, body, pairs or None for raw bytes)."""
    if draw(mostly(st.just(False), st.just(True), 12)):
        raw = draw(st.one_of(st.binary(max_size=60), st.just(b"To=%ED%A0%80&CallSid=%FF"),
                             st.just("&".join(f"f{i}=1" for i in range(300)).encode())))
        return path, raw, None
    pairs = []
    for name, good in FIELDS.items():
        # Now and then a field is left out or flawed; less often the two that decide whether a
        # request gets past the checks, so that most examples reach the code behind them.
        deciding = name in ("To", "CallSid")
        if draw(mostly(st.just(True), st.just(False), 16 if deciding else 8)):
            pairs.append((name, draw(mostly(good, flawed, 12 if deciding else 4))))
    base = twilio.incoming_form(to=TWILIO_NUMBER, call_sid="x")
    pairs += [(name, value) for name, value in base.items() if name not in FIELDS]
    pairs += draw(st.lists(st.tuples(mostly(st.sampled_from(list(FIELDS)), text, 2), flawed), max_size=3))
    if draw(st.booleans()):
        path += draw(st.sampled_from(["/", "?tenant=alpha", "/?a=1&b=%C3%A9"]))
    return path, urlencode(pairs).encode(), pairs


def assert_answered_well(response, receipts_before: int, path: str) -> None:
    code = orjson.loads(response.content)["error"]["code"] if response.status_code >= 400 else ""
    event(f"answered {response.status_code} {code}".strip())
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/json"
        body = orjson.loads(response.content)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert WebhookReceipt.objects.count() == receipts_before + 1
    receipt = WebhookReceipt.objects.latest("pk")
    assert receipt.provider == "twilio"
    assert receipt.error_code not in ("check_failed", "answer_failed"), receipt.error_message
    if response.status_code == 200:
        root = ET.fromstring(response.content)
        tags = [child.tag for child in root]
        assert tags in (["Connect"], ["Say", "Hangup"])
        event(f"TwiML {' '.join(tags)}")
        if tags == ["Connect"]:
            assert receipt.status == WebhookReceipt.Status.PROCESSED
    if response.status_code == 204:
        assert path.startswith(STATUS)
        assert receipt.status in (WebhookReceipt.Status.PROCESSED, WebhookReceipt.Status.DUPLICATE), (
            receipt.status, receipt.error_code, receipt.error_message)


@pytest.mark.parametrize("endpoint", [INCOMING, STATUS])
def test_a_twilio_endpoint_answers_any_request_well_and_stores_it_once(client, twilio_number, celery_eager,
                                                                       endpoint):
    @FUZZ
    @given(request=forms(endpoint), signed=mostly(st.just(True), st.sampled_from([False, None]), 4))
    def check(request, signed):
        path, body, pairs = request
        headers = {}
        if signed is not None:
            signature = (twilio.sign_pairs(TWILIO_PUBLIC + path, pairs or []) if signed
                         else twilio.sign_pairs(TWILIO_PUBLIC + path, pairs or [], "not_the_token"))
            headers["HTTP_X_TWILIO_SIGNATURE"] = signature
        before = WebhookReceipt.objects.count()

        response = client.post(quote(path, safe="/?&=%"), data=body,
                               content_type="application/x-www-form-urlencoded", **headers)

        assert_answered_well(response, before, path)

    check()
