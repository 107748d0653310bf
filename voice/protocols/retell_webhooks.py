"""Retell's webhook and custom-function requests as plain data (shared/reference/retell.md §2, §4).

`classify` tells an event delivery (`{event, call}`) from a custom-function call
(`{name, call, args}`, or the bare args of an `args_at_root` tool, whose function
and agent then come from the query parameters our deployed tool config sets).
`dedupe_key` follows Retell's idempotency advice; `call_fields` maps a call object
onto our Call's fields, with the rank that decides which event's value wins.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

LIFECYCLE_EVENTS = frozenset({"call_started", "call_ended", "call_analyzed"})
TRANSFER_EVENTS = frozenset({"transfer_started", "transfer_bridged", "transfer_cancelled", "transfer_ended"})
KNOWN_EVENTS = LIFECYCLE_EVENTS | TRANSFER_EVENTS | {"transcript_updated"}

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
        number = self.call.get("to_number") if self.call.get("direction") == "outbound" else self.call.get("from_number")
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


def classify(payload, query: dict[str, str]) -> RetellRequest:
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


def _moment(ms) -> datetime | None:
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def event_rank(event: str, call: dict) -> list[int]:
    """[stage, progress]: a transcript update with more turns is newer than one with fewer."""
    turns = call.get("transcript_object")
    progress = len(turns) if isinstance(turns, list) else len(_text(call.get("transcript")))
    return [EVENT_STAGE.get(event, 0), progress if event == "transcript_updated" else 0]


def call_fields(call: dict) -> dict:
    """Our Call's fields from a Retell call object; only what the object carries."""
    values = {
        "call_type": _text(call.get("call_type")),
        "from_number": _text(call.get("from_number")),
        "to_number": _text(call.get("to_number")),
        "direction": _text(call.get("direction")),
        "status": _text(call.get("call_status")),
        "started_at": _moment(call.get("start_timestamp")),
        "ended_at": _moment(call.get("end_timestamp")),
        "disconnection_reason": _text(call.get("disconnection_reason")),
        "transcript": _text(call.get("transcript")),
        "transcript_turns": call.get("transcript_object") if isinstance(call.get("transcript_object"), list) else None,
        "recording_url": _text(call.get("recording_url")),
        "analysis": call.get("call_analysis") if isinstance(call.get("call_analysis"), dict) else None,
        "cost": call.get("call_cost") if isinstance(call.get("call_cost"), dict) else None,
        "latency": call.get("latency") if isinstance(call.get("latency"), dict) else None,
        "metadata": call.get("metadata") if isinstance(call.get("metadata"), dict) else None,
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
    return {name: value for name, value in values.items() if value not in (None, "", [], {})}
