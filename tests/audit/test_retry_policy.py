"""The delivery retry policy as plain functions."""

import random
from datetime import datetime, timezone

import pytest

from audit import retry_policy

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("status, outcome", [(200, "success"), (204, "success"), (None, "retry"), (500, "retry"),
                                             (503, "retry"), (408, "retry"), (429, "retry"), (400, "permanent"),
                                             (404, "permanent"), (422, "permanent"), (301, "permanent")])
def test_classify(status, outcome):
    assert retry_policy.classify(status) == outcome


@pytest.mark.parametrize("attempt, ceiling", [(1, 10), (2, 20), (3, 40), (8, 600), (30, 600)])
def test_backoff_stays_between_half_and_all_of_the_doubling_ceiling(attempt, ceiling):
    rng = random.Random(7)
    delays = [retry_policy.backoff_seconds(attempt, base=10, cap=600, rng=rng) for _ in range(200)]

    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling / 4  # jittered, not fixed


@pytest.mark.parametrize("value, seconds", [("120", 120.0), ("Sun, 22 Nov 2026 12:01:30 GMT", 90.0),
                                            ("Sun, 22 Nov 2026 11:00:00 GMT", 0.0), ("soon", None), (None, None)])
def test_retry_after_as_seconds_or_http_date(value, seconds):
    assert retry_policy.retry_after_seconds(value, now=NOW) == seconds
