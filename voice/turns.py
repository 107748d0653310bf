"""The latency figures of one live turn record (voice.retell_session.TurnRecord.to_dict), read
for a `LiveTurnLatency` row. Pure: used by the service that records turns and by the data
migration that backfilled the rows from `Call.live_turns`, so both read a turn the same way."""

import math
from datetime import datetime, timezone


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def turn_latency_fields(turn, *, fallback_started_at: datetime) -> dict | None:
    """{"response_id", "started_at", "first_chunk_ms", "complete_ms"} of a turn record, or None
    when it is not a turn (not an object, or no integer response_id).

    `started_at` is the record's epoch seconds as an aware UTC datetime; a record without a
    usable one (only hand-written data) takes `fallback_started_at`. A latency that is not a
    finite number is NULL, as for a superseded turn."""
    if not isinstance(turn, dict):
        return None
    response_id = turn.get("response_id")
    if isinstance(response_id, bool) or not isinstance(response_id, int):
        return None
    seconds = _number(turn.get("started_at"))
    try:
        started_at = (datetime.fromtimestamp(seconds, tz=timezone.utc) if seconds is not None
                      else fallback_started_at)
    except (OverflowError, OSError, ValueError):
        started_at = fallback_started_at
    return {"response_id": response_id, "started_at": started_at,
            "first_chunk_ms": _number(turn.get("first_chunk_ms")), "complete_ms": _number(turn.get("complete_ms"))}
