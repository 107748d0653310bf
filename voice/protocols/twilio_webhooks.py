"""Twilio's voice webhooks (the incoming call and its status callbacks), sans-IO.

No Django, no sockets: the form body as Twilio sends it, the public URLs Twilio may have
signed, the X-Twilio-Signature check (the official `twilio` package's RequestValidator), what a
status callback says about its call and in which order callbacks apply, and the TwiML answers
(built with the `twilio` package). Facts implemented (shared/reference/twilio_elevenlabs.md
A1, A2, A4):

- the body is application/x-www-form-urlencoded UTF-8; every parameter is signed, also ones
  this module does not know, so none is dropped before the check;
- the signature is HMAC-SHA1 (base64) with the company's primary auth token over the full URL
  Twilio called (scheme, host, path and query as Twilio saw them) followed by the sorted
  parameters; for HTTPS voice webhooks Twilio drops the port, which the validator allows for
  by trying the URL with and without it;
- status callbacks are separate requests that may arrive out of order: `SequenceNumber` (from 0)
  orders them; completed, busy, failed, no-answer and canceled end the call.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlsplit

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse

# A voice webhook has about 20 parameters (a few more with geographic fields).
MAX_FIELDS = 200
TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
# A status without SequenceNumber is placed by how far the call has come.
STATUS_STAGE = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3}
# Beyond this a SequenceNumber, CallDuration or Timestamp is not one Twilio sends.
MAX_SEQUENCE = 2**31 - 1
MAX_DURATION_SECONDS = 10**7


class FormError(ValueError):
    """The body is not a form Twilio sends (not UTF-8, too many fields)."""


class Form(dict):
    """The form's parameters: name -> every value sent under it, in order."""

    def getlist(self, name: str) -> list[str]:
        # RequestValidator reads repeated names through getlist (as from Django's QueryDict).
        return list(self.get(name, ()))

    def first(self, name: str) -> str:
        """The first value of `name`, "" when it was not sent."""
        values = self.get(name)
        return values[0] if values else ""


def form_parse(body: bytes, *, max_fields: int = MAX_FIELDS) -> Form:
    """Read an application/x-www-form-urlencoded body. Raises FormError when it is not UTF-8 (also
    inside a percent-escape) or has more than `max_fields` fields."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict",
                          max_num_fields=max_fields)
    except UnicodeDecodeError:
        raise FormError("The body is not UTF-8 form data.") from None
    except ValueError:
        raise FormError(f"The body has more than {max_fields} fields.") from None
    form = Form()
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def public_urls(*, full_path: str, public_base_url: str, scheme: str, host: str,
                forwarded_proto: str = "", forwarded_host: str = "", behind_proxy: bool = False) -> list[str]:
    """The URLs Twilio may have called to reach a request for `full_path` (path and query as
    received), most likely first:

    1. the configured public base URL (PUBLIC_BASE_URL: scheme, host and port, the URL given to
       Twilio) followed by the path and query;
    2. the scheme and host the request itself carries: behind a TLS proxy the first value of
       X-Forwarded-Proto and X-Forwarded-Host (else the Host header), otherwise the scheme the
       server saw and the Host header.

    Each URL appears once; a part that cannot make a URL is left out.
    """
    urls = []
    base = public_base_url.strip().rstrip("/")
    if base:
        urls.append(base + full_path)
    if behind_proxy:
        scheme = _first(forwarded_proto).lower() or scheme
        host = _first(forwarded_host) or host
    if scheme in ("http", "https") and host and not any(c in host for c in "/?#@ \\"):
        urls.append(f"{scheme}://{host}{full_path}")
    return list(dict.fromkeys(urls))


def _first(header_value: str) -> str:
    # A chain of proxies appends: the first value is what the client (Twilio) sent.
    return (header_value or "").split(",")[0].strip()


def signature_check(*, auth_token: str, urls: Iterable[str], params: Form, signature: str | None) -> str | None:
    """The first of `urls` over which `signature` (X-Twilio-Signature) is valid for `params` and
    `auth_token`, as the twilio package's RequestValidator judges it (it tries each URL with and
    without its port); None when none is, or no signature or token is given."""
    if not signature or not auth_token:
        return None
    validator = RequestValidator(auth_token)
    for url in urls:
        try:
            if validator.validate(url, params, signature):
                return url
        except (ValueError, TypeError, UnicodeError):  # a URL no client could have called (a bad port)
            continue
    return None


def origin(url: str) -> str:
    """scheme://host[:port] of `url`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def websocket_url(http_url: str, path: str) -> str:
    """The socket URL on the same host as `http_url`: https -> wss, http -> ws (loopback tests)."""
    parts = urlsplit(http_url)
    return f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}{path}"


# --- what a webhook says about its call ----------------------------------------------------------
def call_fields(form: Form) -> dict:
    """The Call fields a voice webhook (incoming call or status callback) sets, as sent."""
    fields = {name: form.first(param) for name, param in (("from_number", "From"), ("to_number", "To"),
                                                           ("direction", "Direction"), ("status", "CallStatus"))}
    return {name: value for name, value in fields.items() if value}


def sequence_number(form: Form) -> int | None:
    """SequenceNumber as a number; None when it was not sent or is not one Twilio sends."""
    value = form.first("SequenceNumber")
    if not value.isascii() or not value.isdigit() or int(value) > MAX_SEQUENCE:
        return None
    return int(value)


def status_rank(call_status: str, sequence: int | None) -> list[int]:
    """The order in which status callbacks apply: a terminal status after every other (so nothing
    reopens an ended call), then by SequenceNumber, then by how far the call has come."""
    terminal = call_status in TERMINAL_STATUSES
    return [1 if terminal else 0, -1 if sequence is None else sequence,
            4 if terminal else STATUS_STAGE.get(call_status, -1)]


# The incoming webhook's fields rank below every status callback's: a callback that came first wins.
INCOMING_RANK = [-1]
INCOMING_EVENT = "twilio.incoming"
_EVENT_STAGE = {INCOMING_EVENT: 0, **{f"twilio.{status}": stage + 1 for status, stage in STATUS_STAGE.items()},
                **{f"twilio.{status}": 5 for status in TERMINAL_STATUSES}}


def status_event(call_status: str) -> str:
    """The name a call's `events` record a status callback under ("twilio.completed"); a status
    that is no word of Twilio's (over 32 characters, not lowercase letters and dashes) is
    "twilio.status"."""
    plain = 0 < len(call_status) <= 32 and all(c.isascii() and (c.islower() or c == "-") for c in call_status)
    return f"twilio.{call_status}" if plain else "twilio.status"


def is_terminal_event(event: str) -> bool:
    return _EVENT_STAGE.get(event) == 5


def event_stage(event: str) -> int:
    """Where an event comes in a call's life, for ordering its `events` (an unknown one mid-call)."""
    return _EVENT_STAGE.get(event, 2)


def _moment(value: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(value)
        return (moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def status_fields(form: Form, *, received_at: datetime) -> tuple[dict, list[str]]:
    """The Call fields a status callback sets, and notes on what it sent that could not be used.

    In progress: the call's start (`Timestamp`, else `received_at`). A terminal status: its end
    and its duration (`CallDuration`, seconds)."""
    fields, notes = call_fields(form), []
    call_status = form.first("CallStatus")
    timestamp = form.first("Timestamp")
    moment = _moment(timestamp) if timestamp else None
    if timestamp and moment is None:
        notes.append("twilio.Timestamp: not an RFC 2822 date, the time received is used")
    if call_status == "in-progress":
        fields["started_at"] = moment or received_at
    if call_status in TERMINAL_STATUSES:
        fields["ended_at"] = moment or received_at
        duration = form.first("CallDuration")
        if duration.isascii() and duration.isdigit() and int(duration) <= MAX_DURATION_SECONDS:
            fields["duration_ms"] = int(duration) * 1000
        elif duration:
            notes.append("twilio.CallDuration: not a number of seconds, dropped")
    if form.first("SequenceNumber") and sequence_number(form) is None:
        notes.append("twilio.SequenceNumber: not a sequence number, ordered by the call's status")
    return fields, notes


# --- TwiML answers -------------------------------------------------------------------------------
def stream_twiml(*, stream_url: str, parameters: dict[str, str]) -> str:
    """`<Connect><Stream url>` with a `<Parameter>` per item: the bidirectional media stream
    (its URL takes no query string; the parameters come back in `start.customParameters`)."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def goodbye_twiml(*, message: str, language: str) -> str:
    """`<Say language>message</Say><Hangup/>`."""
    response = VoiceResponse()
    response.say(message, language=language)
    response.hangup()
    return str(response)


def dial_twiml(number: str) -> str:
    """`<Dial>number</Dial>`: the call is put through to `number`."""
    response = VoiceResponse()
    response.dial(number)
    return str(response)
