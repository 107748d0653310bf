"""A circuit breaker for outbound calls (the Retell API per company, the practice
backend per target), with its state in the Django cache so that every web and worker
process sees the same circuit (Redis in production; per process when embedded).

    breaker = CircuitBreaker("retell:company:7")
    if not breaker.allow():
        raise CircuitOpen(breaker.name)
    try:
        call()
    except TransientError:
        breaker.record_failure()
        raise
    breaker.record_success()

Closed: calls flow; `failure_threshold` failures in a row open it. Open: calls are
refused for `reset_timeout` seconds, then one trial call is let through (half-open):
its success closes the circuit, its failure opens it again.
"""

import time
from dataclasses import dataclass

from django.core.cache import cache

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

# How the dashboard names a circuit's state.
STATUS_LABELS = {"connected": "Connected", "degraded": "Degraded", "disconnected": "Disconnected"}


class CircuitOpen(Exception):
    def __init__(self, name: str, retry_in: float) -> None:
        super().__init__(f"Circuit {name} is open; next trial in {retry_in:.0f} s.")
        self.name = name
        self.retry_in = retry_in


@dataclass(frozen=True)
class CircuitState:
    state: str
    failures: int
    opened_at: float | None
    last_error: str

    @property
    def status(self) -> str:
        """connected, degraded (failing or on trial) or disconnected (open)."""
        if self.state == OPEN:
            return "disconnected"
        if self.state == HALF_OPEN or self.failures:
            return "degraded"
        return "connected"

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


class CircuitBreaker:
    def __init__(self, name: str, *, failure_threshold: int = 5, reset_timeout: float = 30.0,
                 clock=time.time) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._key = f"circuit:{name}"

    def _load(self) -> dict:
        return cache.get(self._key) or {"failures": 0, "opened_at": None, "trial_at": None, "last_error": ""}

    def _save(self, data: dict) -> None:
        # Kept a day past the last event; an idle circuit forgets and starts closed.
        cache.set(self._key, data, timeout=86400)

    def state(self) -> CircuitState:
        data = self._load()
        now = self._clock()
        if data["opened_at"] is None:
            state = CLOSED
        elif now - data["opened_at"] >= self.reset_timeout:
            state = HALF_OPEN
        else:
            state = OPEN
        return CircuitState(state, data["failures"], data["opened_at"], data["last_error"])

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one trial per reset period."""
        data = self._load()
        now = self._clock()
        if data["opened_at"] is None:
            return True
        if now - data["opened_at"] < self.reset_timeout:
            return False
        if data["trial_at"] is not None and now - data["trial_at"] < self.reset_timeout:
            return False  # a trial is already under way
        data["trial_at"] = now
        self._save(data)
        return True

    def retry_in(self) -> float:
        data = self._load()
        if data["opened_at"] is None:
            return 0.0
        return max(0.0, data["opened_at"] + self.reset_timeout - self._clock())

    def check(self) -> None:
        """Raise CircuitOpen unless a call may go out."""
        if not self.allow():
            raise CircuitOpen(self.name, self.retry_in())

    def record_success(self) -> None:
        data = self._load()
        if data["failures"] or data["opened_at"] is not None:
            self._save({"failures": 0, "opened_at": None, "trial_at": None, "last_error": ""})

    def record_failure(self, error: str = "") -> None:
        data = self._load()
        now = self._clock()
        data["failures"] += 1
        data["last_error"] = error[:200]
        data["trial_at"] = None
        if data["opened_at"] is not None or data["failures"] >= self.failure_threshold:
            data["opened_at"] = now  # a failed trial re-opens for another full period
        self._save(data)

    def reset(self) -> None:
        cache.delete(self._key)
