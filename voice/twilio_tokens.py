"""The one-time token that binds a Twilio media stream to the call the webhook verified.

Twilio's `<Stream url>` takes no query string, and whether Twilio signs the socket's handshake
is unconfirmed, so the signature-verified incoming webhook mints a token and passes it as a
`<Parameter>` of the stream; the socket reads it back from `start.customParameters` and calls
`verify_and_consume` before doing any work.

    token = stream_token_mint(company_id=7, agent_id=3, call_sid="CA…")       # in the webhook
    grant = verify_and_consume(token, call_sid)                               # at `start`

A token is signed (HMAC-SHA256 with a key derived from SECRET_KEY: django.core.signing, salted
for this use only), names the company, the agent and the call, expires after
TWILIO_STREAM_TOKEN_TTL_SECONDS, and is accepted once: its use is recorded in the cache (Redis
in production, so every process agrees) before the grant is returned.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.cache import cache

# The <Parameter> name the token travels under.
STREAM_TOKEN_PARAMETER = "token"
_SALT = "voice.twilio.stream-token"
_USED_KEY = "twilio:stream-token-used:{}"
# The used mark outlives the token, so a token is never accepted twice while it could still be valid.
_USED_MARGIN_SECONDS = 60


@dataclass(frozen=True)
class StreamGrant:
    """What a valid token names: the company and agent (primary keys) and Twilio's call SID."""

    company_id: int
    agent_id: int
    call_sid: str


class StreamTokenRefused(Exception):
    """A token that opens nothing. `code`: missing, invalid, wrong_call, expired or reused."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def stream_token_mint(*, company_id: int, agent_id: int, call_sid: str, now: float | None = None) -> str:
    """A token for the media stream of call `call_sid`, valid TWILIO_STREAM_TOKEN_TTL_SECONDS from
    `now` (Unix seconds; default: the current time) and once. About 200 URL-safe characters."""
    issued = time.time() if now is None else now
    payload = {"c": company_id, "a": agent_id, "s": call_sid,
               "e": int(issued) + settings.TWILIO_STREAM_TOKEN_TTL_SECONDS, "n": secrets.token_urlsafe(12)}
    return signing.dumps(payload, salt=_SALT, compress=False)


def verify_and_consume(token: str | None, call_sid: str, *, now: float | None = None) -> StreamGrant:
    """The grant of `token` for the stream of call `call_sid` (from `start.callSid`), used up by
    this call: a second call with the same token is refused.

    Raises StreamTokenRefused: `missing` (no token), `invalid` (not signed by this server, or
    altered), `wrong_call` (minted for another call), `expired` (older than its time to live;
    `now` in Unix seconds, default the current time), `reused` (accepted before). A refused
    token is not used up. Synchronous (it reads the cache): call it from a thread in async code.
    """
    if not token:
        raise StreamTokenRefused("missing", "The stream carries no token.")
    try:
        payload = signing.loads(token, salt=_SALT)
        grant = StreamGrant(company_id=int(payload["c"]), agent_id=int(payload["a"]), call_sid=str(payload["s"]))
        expires, nonce = int(payload["e"]), str(payload["n"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise StreamTokenRefused("invalid", "The stream token is not one this server issued.") from None
    if not secrets.compare_digest(grant.call_sid.encode(), (call_sid or "").encode()):
        raise StreamTokenRefused("wrong_call", "The stream token was issued for another call.")
    current = time.time() if now is None else now
    if current > expires:
        raise StreamTokenRefused("expired", "The stream token has expired.")
    if not cache.add(_USED_KEY.format(nonce), 1, timeout=max(1, int(expires - current)) + _USED_MARGIN_SECONDS):
        raise StreamTokenRefused("reused", "The stream token was used before.")
    return grant
