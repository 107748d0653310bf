"""The media stream's one-time token: minted by the verified incoming webhook, verified and used
up by the socket at `start` (voice.twilio_tokens)."""

import time

import pytest

from voice.twilio_tokens import StreamGrant, StreamTokenRefused, stream_token_mint, verify_and_consume

CALL_SID = "CA" + "1" * 32
NOW = 1_900_000_000.0


def refusal(token, call_sid=CALL_SID, **kwargs) -> str:
    with pytest.raises(StreamTokenRefused) as caught:
        verify_and_consume(token, call_sid, **kwargs)
    return caught.value.code


def test_a_minted_token_names_the_company_agent_and_call():
    token = stream_token_mint(company_id=7, agent_id=3, call_sid=CALL_SID, now=NOW)

    grant = verify_and_consume(token, CALL_SID, now=NOW + 1)

    assert grant == StreamGrant(company_id=7, agent_id=3, call_sid=CALL_SID)
    assert len(token) < 450  # a <Parameter>'s name and value stay under Twilio's 500 characters


def test_a_token_is_accepted_once():
    token = stream_token_mint(company_id=7, agent_id=3, call_sid=CALL_SID, now=NOW)
    verify_and_consume(token, CALL_SID, now=NOW + 1)

    assert refusal(token, now=NOW + 2) == "reused"


def test_a_token_past_its_time_to_live_is_expired(settings):
    settings.TWILIO_STREAM_TOKEN_TTL_SECONDS = 30
    token = stream_token_mint(company_id=7, agent_id=3, call_sid=CALL_SID, now=NOW)

    assert refusal(token, now=NOW + 31) == "expired"
    # Within its time it was (and still is, being refused without being used up) valid.
    assert verify_and_consume(token, CALL_SID, now=NOW + 30).call_sid == CALL_SID


def test_a_token_of_another_call_is_refused_and_not_used_up():
    token = stream_token_mint(company_id=7, agent_id=3, call_sid=CALL_SID, now=NOW)

    assert refusal(token, "CA" + "2" * 32, now=NOW) == "wrong_call"
    assert verify_and_consume(token, CALL_SID, now=NOW).company_id == 7


@pytest.mark.parametrize("token", ["", None, "not-a-token", "e30:abc:def"], ids=["empty", "none", "text", "forged"])
def test_what_this_server_did_not_sign_is_refused(token):
    assert refusal(token) in {"missing", "invalid"}


def test_an_altered_token_is_invalid():
    token = stream_token_mint(company_id=7, agent_id=3, call_sid=CALL_SID)
    payload, rest = token.split(":", 1)
    altered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + ":" + rest

    assert refusal(altered) == "invalid"


def test_a_token_signed_with_another_secret_key_is_invalid(settings):
    token = stream_token_mint(company_id=7, agent_id=3, call_sid=CALL_SID)
    settings.SECRET_KEY = "another-deployment-entirely-0123456789"

    assert refusal(token) == "invalid"


def test_the_current_time_is_the_default_clock():
    token = stream_token_mint(company_id=7, agent_id=3, call_sid=CALL_SID)

    assert verify_and_consume(token, CALL_SID).agent_id == 3
    assert refusal(stream_token_mint(company_id=7, agent_id=3, call_sid=CALL_SID, now=time.time() - 3600)) \
        == "expired"
