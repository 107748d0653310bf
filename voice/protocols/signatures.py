"""Webhook signature schemes, over the exact raw request bytes.

Retell (`X-Retell-Signature: v=<unix ms>,d=<hex>`): HMAC-SHA256 keyed with the
workspace's webhook-badged API key over `raw_body + str(v)`; accepted within five
minutes either side of now (the boundary included). Several keys may be given (a
secret being rotated and its successor), any one matching.

ElevenLabs (`ElevenLabs-Signature: t=<unix s>,v0=<hex>`): HMAC-SHA256 keyed with the
webhook secret over `f"{t}.{raw_body}"`; accepted up to 30 minutes old, and (our own
bound, the SDK has none) up to 5 minutes in the future. Several `v0=` parts are
accepted, any one matching, so a secret can be rolled over.

Digests are compared in constant time; the header format is matched strictly.
Nothing here knows about requests, settings or clocks: the caller passes `now`.
"""

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

RETELL_TOLERANCE_MS = 5 * 60 * 1000
ELEVENLABS_MAX_AGE_S = 30 * 60
ELEVENLABS_MAX_FUTURE_S = 5 * 60

_RETELL_HEADER = re.compile(r"v=(\d{1,15}),d=([0-9a-f]{64})")
_ELEVENLABS_TIMESTAMP = re.compile(r"\d{1,12}")
_ELEVENLABS_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: `ok`, or why not (`code` is stable, for error bodies and receipts)."""

    ok: bool
    code: str = ""
    message: str = ""

    def __bool__(self) -> bool:
        return self.ok


VALID = Verdict(True)


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _hmac_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _retell_digest(body: bytes | str, api_key: str, timestamp_ms: str) -> str:
    return _hmac_hex(api_key, _as_bytes(body) + timestamp_ms.encode())


def _elevenlabs_digest(body: bytes | str, secret: str, timestamp_s: str) -> str:
    return _hmac_hex(secret, timestamp_s.encode() + b"." + _as_bytes(body))


# --- Retell -------------------------------------------------------------------------
def retell_sign(body: bytes | str, api_key: str, timestamp_ms: int) -> str:
    """The X-Retell-Signature value for `body` sent at `timestamp_ms`."""
    digest = _retell_digest(body, api_key, str(timestamp_ms))
    return f"v={timestamp_ms},d={digest}"


def retell_verify(body: bytes | str, api_key: str | Sequence[str], header: str | None, *, now_ms: int,
                  tolerance_ms: int = RETELL_TOLERANCE_MS) -> Verdict:
    """Check `header` over `body` against one key or several (any one matching: a rotated secret
    and its successor); empty keys are ignored."""
    keys = [api_key] if isinstance(api_key, str) else list(api_key)
    keys = [key for key in keys if key]
    if not header:
        return Verdict(False, "signature_missing", "The X-Retell-Signature header is missing.")
    if not keys:
        return Verdict(False, "signature_key_missing", "No Retell API key is configured to verify the signature.")
    match = _RETELL_HEADER.fullmatch(header.strip())
    if match is None:
        return Verdict(False, "signature_malformed", "X-Retell-Signature is not of the form v=<ms>,d=<64 hex>.")
    timestamp_ms, digest = int(match.group(1)), match.group(2)
    if abs(now_ms - timestamp_ms) > tolerance_ms:
        return Verdict(False, "signature_stale", "The signature's timestamp is outside the 5-minute window.")
    # Every key is compared, so the time taken does not tell which one matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(_retell_digest(body, key, match.group(1)), digest)
    if not matched:
        return Verdict(False, "signature_invalid", "The signature does not match the body.")
    return VALID


# --- ElevenLabs -----------------------------------------------------------------------
def elevenlabs_sign(body: bytes | str, secret: str, timestamp_s: int) -> str:
    """The ElevenLabs-Signature value for `body` sent at `timestamp_s`."""
    digest = _elevenlabs_digest(body, secret, str(timestamp_s))
    return f"t={timestamp_s},v0={digest}"


def elevenlabs_verify(body: bytes | str, secret: str, header: str | None, *, now_s: int,
                      max_age_s: int = ELEVENLABS_MAX_AGE_S,
                      max_future_s: int = ELEVENLABS_MAX_FUTURE_S) -> Verdict:
    if not header:
        return Verdict(False, "signature_missing", "The ElevenLabs-Signature header is missing.")
    if not secret:
        return Verdict(False, "signature_key_missing", "No ElevenLabs webhook secret is configured.")
    timestamp, digests = None, []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return Verdict(False, "signature_malformed", "ElevenLabs-Signature is not of the form t=<s>,v0=<hex>.")
        if name == "t" and timestamp is None and _ELEVENLABS_TIMESTAMP.fullmatch(value):
            timestamp = value
        elif name == "v0" and _ELEVENLABS_DIGEST.fullmatch(value):
            digests.append(value)
        elif name in ("t", "v0"):
            return Verdict(False, "signature_malformed", "ElevenLabs-Signature has a malformed t or v0 part.")
    if timestamp is None or not digests:
        return Verdict(False, "signature_malformed", "ElevenLabs-Signature needs a t= part and a v0= part.")
    age = now_s - int(timestamp)
    if age > max_age_s or -age > max_future_s:
        return Verdict(False, "signature_stale", "The signature's timestamp is outside the accepted window.")
    expected = _elevenlabs_digest(body, secret, timestamp)
    # Every candidate is compared, so the time taken does not tell which one matched.
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(expected, digest)
    if not matched:
        return Verdict(False, "signature_invalid", "The signature does not match the body.")
    return VALID
