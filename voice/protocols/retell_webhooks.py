"""Retell's webhook and custom-function requests as plain data (shared/reference/retell.md §2, §4).

`classify` tells an event delivery (`{event, call}`) from a custom-function call
(`{name, call, args}`, or the bare args of an `args_at_root` tool, whose function
and agent then come from the query parameters our deployed tool config sets).
`dedupe_key` follows Retell's idempotency advice; `call_fields` maps a call object
onto our Call's fields, with the rank that decides which event's value wins.

The identifiers a request names (agent, call, function) must be printable text of at most
ID_MAX_LENGTH characters, or the request is refused (`invalid_field`): a NUL or a newline
in an id is no id of Retell's, and cleaning one could name another call.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

from audit.storable import identifier_problem

LIFECYCLE_EVENTS = frozenset({"call_started", "call_ended", "call_analyzed"})
TRANSFER_EVENTS = frozenset({"transfer_started", "transfer_bridged", "transfer_cancelled", "transfer_ended"})
KNOWN_EVENTS = LIFECYCLE_EVENTS | TRANSFER_EVENTS | {"transcript_updated"}
ID_MAX_LENGTH = 128  # Retell's ids are 32 characters; our columns hold 128
NAME_MAX_LENGTH = 64  # a custom function's name

# Later stages of a call win over earlier ones, whatever order they arrive in.
EVENT_STAGE = {"call_started": 1, "transcript_updated": 2, "transfer_started": 2, "transfer_bridged": 2,
               "transfer_cancelled": 2, "transfer_ended": 2, "call_ended": 3, "call_analyzed": 4}


class ProtocolError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RetellRequest:
    kind: str  # "event" or "function"
    agent_id: str
    call_id: str = ""
    event: str = ""
    call: dict = field(default_factory=dict)
    name: str = ""
    args: dict = field(default_factory=dict)
    payload: dict = field(default_factory=dict)

    @property
    def caller_number(self) -> str | None:
        """The caller's number as the call object gives it; None when absent or not text a number can be."""
        number = self.call.get("to_number") if self.call.get("direction") == "outbound" else self.call.get("from_number")
        if not isinstance(number, str) or identifier_problem(number, 64):
            return None
        return number or None


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _agent_of(payload: dict) -> str:
    # `call` today; `data` is the deprecated key; call_inbound and chat events carry their own object.
    for key in ("call", "data", "call_inbound", "chat"):
        inner = payload.get(key)
        if isinstance(inner, dict) and _text(inner.get("agent_id")):
            return inner["agent_id"]
    return ""


def _identifiers_checked(request: RetellRequest, where: dict[str, str]) -> RetellRequest:
    for name, limit in (("agent_id", ID_MAX_LENGTH), ("call_id", ID_MAX_LENGTH), ("name", NAME_MAX_LENGTH)):
        problem = identifier_problem(getattr(request, name), limit)
        if problem:
            raise ProtocolError("invalid_field", f"{where[name]} {problem}.")
    return request


def classify(payload, query: dict[str, str]) -> RetellRequest:
    """The request a parsed body (and the URL's query parameters) make. Raises ProtocolError
    (`bad_payload`, `unrecognised_body`, `invalid_field`: an id that cannot be one)."""
    request = _classify(payload, query)
    if request.kind == "event":
        where = {"agent_id": "call.agent_id", "call_id": "call.call_id", "name": "name"}
    elif "name" in payload and isinstance(payload.get("args"), dict):
        where = {"agent_id": "call.agent_id (or ?agent_id=)", "call_id": "call.call_id", "name": "name"}
    else:
        where = {"agent_id": "?agent_id=", "call_id": "?call_id=", "name": "?function="}
    return _identifiers_checked(request, where)


def _classify(payload, query: dict[str, str]) -> RetellRequest:
    if not isinstance(payload, dict):
        raise ProtocolError("bad_payload", "The body must be a JSON object.")
    if "event" in payload:
        call = payload.get("call") if isinstance(payload.get("call"), dict) else payload.get("data")
        call = call if isinstance(call, dict) else {}
        return RetellRequest(kind="event", agent_id=_agent_of(payload), call_id=_text(call.get("call_id")),
                             event=_text(payload.get("event")), call=call, payload=payload)
    if "name" in payload and isinstance(payload.get("args"), dict):
        call = payload.get("call") if isinstance(payload.get("call"), dict) else {}
        return RetellRequest(kind="function", agent_id=_text(call.get("agent_id")) or query.get("agent_id", ""),
                             call_id=_text(call.get("call_id")), name=_text(payload.get("name")),
                             call=call, args=payload["args"], payload=payload)
    if query.get("function"):
        return RetellRequest(kind="function", agent_id=query.get("agent_id", ""), call_id=query.get("call_id", ""),
                             name=query["function"], args=payload, payload=payload)
    raise ProtocolError("unrecognised_body", "Expected a call event {event, call} or a function call "
                                             "{name, call, args} (or ?function=&agent_id= for bare args).")


def tool_call(payload, query: dict[str, str]) -> RetellRequest:
    """A call of a webhook tool that sends only the arguments (ElevenLabs' webhook tools as this
    server exports them): the body is the arguments, whatever keys they have; the function,
    agent, call and caller come from the query (`?function=&agent_id=&call_id=&from_number=`).
    Raises ProtocolError (`bad_payload`, `unrecognised_body`, `invalid_field`)."""
    if not isinstance(payload, dict):
        raise ProtocolError("bad_payload", "The body must be a JSON object of the function's arguments.")
    if not query.get("function"):
        raise ProtocolError("unrecognised_body", "A tool call names its function with ?function=.")
    caller = query.get("from_number", "")
    request = RetellRequest(kind="function", agent_id=query.get("agent_id", ""), call_id=query.get("call_id", ""),
                            name=query["function"], args=payload, payload=payload,
                            call={"from_number": caller} if caller else {})
    return _identifiers_checked(request, {"agent_id": "?agent_id=", "call_id": "?call_id=", "name": "?function="})


def named(payload, query: dict[str, str]) -> dict[str, str]:
    """What a parsed body (and the query) names, read as far as it can be, for the receipt of a
    request that is refused: {"kind", "event_type" (the event or the function), "call_id"};
    empty when it is no Retell request. Never raises; the ids are not checked (the receipt
    fits them to its columns)."""
    try:
        request = _classify(payload, query)
    except ProtocolError:
        return {}
    return {"kind": request.kind, "event_type": request.event or request.name, "call_id": request.call_id}


def dedupe_key(request: RetellRequest, body: bytes) -> str:
    """Lifecycle: event + call id. Transfers: + start timestamp + destination. Transcript updates:
    each distinct body once (the newest transcript wins when applied)."""
    if request.event in LIFECYCLE_EVENTS:
        return f"{request.event}:{request.call_id}"
    if request.event in TRANSFER_EVENTS:
        destination = request.payload.get("transfer_destination") or request.call.get("transfer_destination") or {}
        number = destination.get("number", "") if isinstance(destination, dict) else str(destination)
        return f"{request.event}:{request.call_id}:{request.call.get('start_timestamp', '')}:{number}"
    return f"{request.event}:{request.call_id}:{hashlib.sha256(body).hexdigest()[:32]}"


class OutOfRange(ValueError):
    """A timestamp no datetime can hold."""


def _moment(ms) -> datetime | None:
    """A Retell timestamp (ms since the epoch) as a UTC datetime; None when it is not a number.
    Raises OutOfRange when no datetime can hold it."""
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise OutOfRange(ms) from None


def event_rank(event: str, call: dict) -> list[int]:
    """[stage, progress]: a transcript update with more turns is newer than one with fewer."""
    turns = call.get("transcript_object")
    progress = len(turns) if isinstance(turns, list) else len(_text(call.get("transcript")))
    return [EVENT_STAGE.get(event, 0), progress if event == "transcript_updated" else 0]


def call_fields(call: dict) -> tuple[dict, list[str]]:
    """Our Call's fields from a Retell call object, only what the object carries; and notes
    ("call.<our field>: ...") on what could not be read (a timestamp out of range, a value of
    the wrong type). The values are as sent: fitting them to our columns is the service's."""
    notes = []

    def moment(name: str, ours: str) -> datetime | None:
        try:
            return _moment(call.get(name))
        except OutOfRange:
            notes.append(f"call.{ours}: out of range, dropped")
            return None

    def text(name: str, ours: str) -> str:
        value = call.get(name)
        if value is not None and not isinstance(value, str):
            notes.append(f"call.{ours}: not text, dropped")
        return _text(value)

    def of_type(name: str, ours: str, kind: type):
        value = call.get(name)
        if value is not None and not isinstance(value, kind):
            notes.append(f"call.{ours}: not {'a list' if kind is list else 'an object'}, dropped")
        return value if isinstance(value, kind) else None

    values = {
        "call_type": text("call_type", "call_type"),
        "from_number": text("from_number", "from_number"),
        "to_number": text("to_number", "to_number"),
        "direction": text("direction", "direction"),
        "status": text("call_status", "status"),
        "started_at": moment("start_timestamp", "started_at"),
        "ended_at": moment("end_timestamp", "ended_at"),
        "disconnection_reason": text("disconnection_reason", "disconnection_reason"),
        "transcript": text("transcript", "transcript"),
        "transcript_turns": of_type("transcript_object", "transcript_turns", list),
        "recording_url": text("recording_url", "recording_url"),
        "analysis": of_type("call_analysis", "analysis", dict),
        "cost": of_type("call_cost", "cost", dict),
        "latency": of_type("latency", "latency", dict),
        "metadata": of_type("metadata", "metadata", dict),
    }
    duration = call.get("duration_ms")
    if not isinstance(duration, int) or isinstance(duration, bool):
        start, end = call.get("start_timestamp"), call.get("end_timestamp")
        duration = end - start if isinstance(start, int) and isinstance(end, int) and end >= start else None
    values["duration_ms"] = duration
    variables = {}
    for key in ("retell_llm_dynamic_variables", "collected_dynamic_variables"):
        if isinstance(call.get(key), dict):
            variables.update(call[key])
    values["dynamic_variables"] = variables or None
    return {name: value for name, value in values.items() if value not in (None, "", [], {})}, notes
