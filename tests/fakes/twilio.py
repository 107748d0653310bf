"""Twilio's side of the voice webhooks, for tests: the forms Twilio posts for an incoming call and
its status callbacks, signed as Twilio signs them (the twilio package's
RequestValidator.compute_signature over the URL Twilio called and the parameters), and the TwiML
answer read back as XML."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "twilio_auth_token_alpha_0123456789"
CALLER = "+4915112345678"
_sids = itertools.count(1)


def new_call_sid() -> str:
    return f"CA{next(_sids):032x}"


def incoming_form(*, to: str, call_sid: str, caller: str = CALLER, **extra: str) -> dict[str, str]:
    """What Twilio posts to a number's voice URL when a call arrives."""
    return {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": call_sid, "CallStatus": "ringing",
            "Called": to, "CalledCountry": "DE", "Caller": caller, "CallerCountry": "DE", "Direction": "inbound",
            "From": caller, "FromCountry": "DE", "To": to, "ToCountry": "DE", **extra}


def status_form(*, to: str, call_sid: str, status: str, sequence: int | None = None, duration: int | None = None,
                timestamp: str = "Mon, 07 Jan 2030 08:15:00 +0000", caller: str = CALLER,
                **extra: str) -> dict[str, str]:
    """What Twilio posts to a number's status callback."""
    form = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": call_sid, "CallStatus": status,
            "Called": to, "Caller": caller, "Direction": "inbound", "From": caller, "To": to,
            "CallbackSource": "call-progress-events", "Timestamp": timestamp, **extra}
    if sequence is not None:
        form["SequenceNumber"] = str(sequence)
    if duration is not None:
        form["CallDuration"] = str(duration)
    return form


def sign(url: str, params: dict, token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature for a POST of `params` to `url`, as Twilio computes it."""
    return RequestValidator(token).compute_signature(url, params)


class Pairs(dict):
    """Form parameters that may repeat a name, as the validator reads them (through getlist)."""

    def __init__(self, pairs) -> None:
        super().__init__()
        for name, value in pairs:
            self.setdefault(name, []).append(value)

    def getlist(self, name: str) -> list[str]:
        return self.get(name, [])


def sign_pairs(url: str, pairs, token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature for a POST of the (name, value) `pairs` to `url` (a name may repeat)."""
    return RequestValidator(token).compute_signature(url, Pairs(pairs))


def post(client, path: str, params: dict, *, signed_url: str, token: str = AUTH_TOKEN, signature: str | None = None,
         body: bytes | None = None, **extra):
    """POST the form to `path` of the Django test client, signed over `signed_url` with `token`
    (or with `signature` as given; "" sends none)."""
    signature = sign(signed_url, params, token) if signature is None else signature
    headers = {"HTTP_X_TWILIO_SIGNATURE": signature} if signature else {}
    return client.post(path, data=urlencode(params).encode() if body is None else body,
                       content_type="application/x-www-form-urlencoded", **headers, **extra)


def twiml(response) -> ET.Element:
    """The TwiML of an answer, parsed (the answer must be XML)."""
    assert response["Content-Type"].startswith("text/xml"), response["Content-Type"]
    return ET.fromstring(response.content)
