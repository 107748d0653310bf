import pytest

from audit.circuit import CircuitBreaker, CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def breaker(clock):
    breaker = CircuitBreaker("test:circuit", failure_threshold=3, reset_timeout=30, clock=clock)
    breaker.reset()
    yield breaker
    breaker.reset()


def test_a_closed_circuit_lets_calls_through_and_forgives_sparse_failures(breaker):
    breaker.record_failure("timeout")
    breaker.record_failure("timeout")
    breaker.record_success()
    breaker.record_failure("timeout")

    assert breaker.allow()
    assert breaker.state().state == "closed"
    assert breaker.state().status_label == "Degraded"


def test_failures_in_a_row_open_the_circuit_then_one_trial_is_allowed(breaker, clock):
    for _ in range(3):
        breaker.record_failure("HTTP 503")

    assert breaker.state().status_label == "Disconnected"
    with pytest.raises(CircuitOpen):
        breaker.check()

    clock.now += 30
    assert breaker.state().state == "half_open"
    assert breaker.allow()          # the one trial
    assert not breaker.allow()      # nobody else while it runs

    breaker.record_success()
    assert breaker.state().status_label == "Connected"
    assert breaker.allow()


def test_a_failed_trial_opens_the_circuit_for_another_period(breaker, clock):
    for _ in range(3):
        breaker.record_failure()
    clock.now += 30
    assert breaker.allow()

    breaker.record_failure("still down")

    assert breaker.state().state == "open"
    assert not breaker.allow()
    assert breaker.retry_in() == 30
    clock.now += 30
    assert breaker.allow()


def test_circuits_are_independent(clock):
    first = CircuitBreaker("test:first", failure_threshold=1, clock=clock)
    second = CircuitBreaker("test:second", failure_threshold=1, clock=clock)
    first.reset(), second.reset()

    first.record_failure()

    assert not first.allow()
    assert second.allow()
    first.reset()
