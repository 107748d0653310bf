"""How an outbound delivery's try is judged and when the next one goes: plain functions, no I/O."""

import email.utils
import random
from datetime import datetime, timezone

SUCCESS, RETRY, PERMANENT = "success", "retry", "permanent"

# 4xx answers worth another try: the server timed out reading, or asks us to slow down.
RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})


def classify(status_code: int | None) -> str:
    """`None` is a network error or a timeout: worth another try, like a 5xx."""
    if status_code is None or status_code >= 500 or status_code in RETRYABLE_CLIENT_ERRORS:
        return RETRY
    if 200 <= status_code < 300:
        return SUCCESS
    return PERMANENT  # other 4xx (and 3xx, which are not followed) will not get better by repeating


def counts_against_target(status_code: int | None) -> bool:
    """Does this answer say the target is unhealthy (for its circuit breaker)?"""
    return status_code is None or status_code >= 500 or status_code == 408


def backoff_seconds(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter after try number `attempt` (1-based).

    The ceiling doubles per try up to `cap`; the delay is drawn from its upper half,
    so tries spread out without ever coming sooner than half the ceiling.
    """
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """Retry-After as seconds or an HTTP date, relative to `now`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())
