"""The signature schemes, pinned by known-answer vectors and by the official Retell SDK."""

import pytest
from retell.lib import verify as retell_sdk_verify
from retell.lib.webhook_auth import symmetric as retell_sdk_symmetric

from voice.protocols.signatures import elevenlabs_sign, elevenlabs_verify, retell_sign, retell_verify

# From the Retell SDKs' test suites (shared/reference/retell.md §3.1).
RETELL_BODY = b'{"event":"call_ended"}'
RETELL_KEY = "test-api-key"
RETELL_TS = 1700000000000
RETELL_HEADER = "v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e"

# Computed independently with `printf '%s' '1700000000.{"type":"post_call_transcription"}'
#   | openssl dgst -sha256 -hmac wsec_test`.
ELEVEN_BODY = b'{"type":"post_call_transcription"}'
ELEVEN_SECRET = "wsec_test"
ELEVEN_TS = 1700000000
ELEVEN_HEADER = "t=1700000000,v0=8580fe46ca40876a1f93f7a34277501134e83d7dd8472e950b34c3b9c4d1e248"


def test_retell_sign_matches_the_sdk_known_answer():
    assert retell_sign(RETELL_BODY, RETELL_KEY, RETELL_TS) == RETELL_HEADER


def test_retell_verify_accepts_the_known_answer_at_its_time():
    assert retell_verify(RETELL_BODY, RETELL_KEY, RETELL_HEADER, now_ms=RETELL_TS)


@pytest.mark.parametrize("offset", [-300_000, 300_000])
def test_retell_verify_accepts_exactly_five_minutes_either_way(offset):
    assert retell_verify(RETELL_BODY, RETELL_KEY, RETELL_HEADER, now_ms=RETELL_TS + offset)


@pytest.mark.parametrize("offset", [-300_001, 300_001])
def test_retell_verify_rejects_one_millisecond_past_five_minutes(offset):
    verdict = retell_verify(RETELL_BODY, RETELL_KEY, RETELL_HEADER, now_ms=RETELL_TS + offset)
    assert not verdict and verdict.code == "signature_stale"


@pytest.mark.parametrize("body, key, code", [
    (b'{"event":"call_ended" }', RETELL_KEY, "signature_invalid"),
    (RETELL_BODY, "another-key", "signature_invalid"),
])
def test_retell_verify_rejects_a_tampered_body_or_wrong_key(body, key, code):
    verdict = retell_verify(body, key, RETELL_HEADER, now_ms=RETELL_TS)
    assert not verdict and verdict.code == code


@pytest.mark.parametrize("header", [
    None, "", "v=1700000000000", "d=07024cab", RETELL_HEADER.upper(), RETELL_HEADER + ",x=1",
    "v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823",
    "v=-1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e",
])
def test_retell_verify_rejects_malformed_headers(header):
    assert not retell_verify(RETELL_BODY, RETELL_KEY, header, now_ms=RETELL_TS)


def test_retell_verify_without_a_key_rejects():
    verdict = retell_verify(RETELL_BODY, "", RETELL_HEADER, now_ms=RETELL_TS)
    assert not verdict and verdict.code == "signature_key_missing"


def test_retell_verify_accepts_any_one_of_several_keys_and_ignores_empty_ones():
    assert retell_verify(RETELL_BODY, ["", "old-secret", RETELL_KEY], RETELL_HEADER, now_ms=RETELL_TS)
    assert retell_verify(RETELL_BODY, ["old-secret"], RETELL_HEADER, now_ms=RETELL_TS).code == "signature_invalid"
    assert retell_verify(RETELL_BODY, ["", ""], RETELL_HEADER, now_ms=RETELL_TS).code == "signature_key_missing"


def test_retell_sdk_verifies_what_we_sign_and_we_verify_what_it_signs():
    body = '{"event":"call_analyzed","call":{"transcript":"Grüß Gott, Frau Müller"}}'
    ours = retell_sign(body.encode(), "key_webhook_123", RETELL_TS)
    theirs = retell_sdk_symmetric["sign"](body, "key_webhook_123", RETELL_TS)

    assert ours == theirs
    assert retell_sdk_symmetric["verify"](body, "key_webhook_123", ours, {"timestamp": RETELL_TS})
    assert retell_verify(body.encode(), "key_webhook_123", theirs, now_ms=RETELL_TS)


def test_retell_sdk_public_verify_accepts_a_fresh_signature_of_ours():
    import time

    now = int(time.time() * 1000)
    assert retell_sdk_verify(RETELL_BODY.decode(), RETELL_KEY, retell_sign(RETELL_BODY, RETELL_KEY, now))


def test_elevenlabs_sign_matches_the_known_answer():
    assert elevenlabs_sign(ELEVEN_BODY, ELEVEN_SECRET, ELEVEN_TS) == ELEVEN_HEADER


def test_elevenlabs_verify_accepts_up_to_thirty_minutes_old():
    assert elevenlabs_verify(ELEVEN_BODY, ELEVEN_SECRET, ELEVEN_HEADER, now_s=ELEVEN_TS + 1800)
    verdict = elevenlabs_verify(ELEVEN_BODY, ELEVEN_SECRET, ELEVEN_HEADER, now_s=ELEVEN_TS + 1801)
    assert not verdict and verdict.code == "signature_stale"


def test_elevenlabs_verify_rejects_far_future_timestamps():
    verdict = elevenlabs_verify(ELEVEN_BODY, ELEVEN_SECRET, ELEVEN_HEADER, now_s=ELEVEN_TS - 301)
    assert not verdict and verdict.code == "signature_stale"


def test_elevenlabs_verify_accepts_any_matching_v0_during_a_secret_rollover():
    header = "t=1700000000,v0=" + "0" * 64 + "," + ELEVEN_HEADER.split(",")[1]
    assert elevenlabs_verify(ELEVEN_BODY, ELEVEN_SECRET, header, now_s=ELEVEN_TS)


@pytest.mark.parametrize("body, secret", [(b'{"type":"post_call_audio"}', ELEVEN_SECRET), (ELEVEN_BODY, "other")])
def test_elevenlabs_verify_rejects_a_tampered_body_or_wrong_secret(body, secret):
    verdict = elevenlabs_verify(body, secret, ELEVEN_HEADER, now_s=ELEVEN_TS)
    assert not verdict and verdict.code == "signature_invalid"


@pytest.mark.parametrize("header", [None, "", "t=1700000000", "v0=" + "a" * 64, "t=abc,v0=" + "a" * 64,
                                    "t=1700000000,v0=xyz", "garbage"])
def test_elevenlabs_verify_rejects_malformed_headers(header):
    assert not elevenlabs_verify(ELEVEN_BODY, ELEVEN_SECRET, header, now_s=ELEVEN_TS)
