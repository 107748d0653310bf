"""Results per variant on seeded outcomes, checked against values computed here by hand
(plain math: Wilson's interval, the pooled two-proportion z-test, the sample-size formula),
never with the library call the product makes."""

import itertools
import math
from datetime import datetime, timedelta, timezone
from statistics import NormalDist

import pytest

from appointments.models import Appointment
from experiments.models import Experiment, Variant
from experiments.selectors import experiment_results
from experiments.services import experiment_start
from tests.experiments.conftest import SYSTEM
from voice.models import Call

pytestmark = pytest.mark.django_db
Z = NormalDist().inv_cdf(0.975)
ENDED = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
_slots = itertools.count()


def wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


def z_test_p(k1: int, n1: int, k2: int, n2: int) -> float:
    pooled = (k1 + k2) / (n1 + n2)
    z = (k1 / n1 - k2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(abs(z) / math.sqrt(2))


def sample_size(p1: float, effect: float, power: float = 0.8) -> int:
    p2 = p1 + effect
    z_b = NormalDist().inv_cdf(power)
    p_bar = (p1 + p2) / 2
    return math.ceil((Z * math.sqrt(2 * p_bar * (1 - p_bar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2
                     / effect ** 2)


def seed(variant: Variant, *, calls: int, booked: int, transferred: int = 0, abandoned: int = 0,
         test_origin: str = "", prefix: str = "") -> None:
    """`calls` finished calls of `variant`: the first `booked` booked, then `transferred` transferred,
    then `abandoned` hung up after 10 s; the others last 100 s."""
    for i in range(calls):
        call_id = f"{prefix}{variant.name}_{i}"
        reason, ms = "user_hangup", 100_000
        if booked <= i < booked + transferred:
            reason = "call_transfer"
        elif booked + transferred <= i < booked + transferred + abandoned:
            ms = 10_000
        Call.objects.create(company=variant.company, agent=variant.experiment.agent, call_id=call_id,
                            from_number=f"+49151{i:07d}", ended_at=ENDED, duration_ms=ms, disconnection_reason=reason,
                            experiment_variant=variant, test_origin=test_origin,
                            live_turns=[{"response_id": 1, "first_chunk_ms": 100.0 + i % 3 * 10}])
        if i < booked:
            start = ENDED + timedelta(hours=next(_slots))   # one at a time: appointments may not overlap
            Appointment.objects.create(company=variant.company, customer_name="Erika", start=start,
                                       end=start + timedelta(minutes=30), blocked_until=start + timedelta(minutes=30),
                                       call_id=call_id, is_test=bool(test_origin))


@pytest.fixture
def running(draft):
    draft.baseline, draft.minimum_detectable_effect = 0.3, 0.2
    draft.save()
    return experiment_start(actor=SYSTEM, experiment=draft)


def variants(experiment: Experiment) -> tuple[Variant, Variant]:
    a, b = experiment.variants.order_by("pk")
    return a, b


def test_rates_intervals_and_p_value_match_the_hand_computed_values(running):
    a, b = variants(running)
    seed(a, calls=100, booked=30, transferred=10, abandoned=5)
    seed(b, calls=120, booked=54, transferred=6, abandoned=12)

    results = experiment_results(experiment=running)

    row_a, row_b = results.rows
    assert (row_a.calls, row_b.calls) == (100, 120)
    assert row_a.primary.value == pytest.approx(0.30) and row_b.primary.value == pytest.approx(0.45)
    for row, (k, n) in ((row_a, (30, 100)), (row_b, (54, 120))):
        low, high = wilson(k, n)
        assert row.primary.low == pytest.approx(low, abs=1e-9) and row.primary.high == pytest.approx(high, abs=1e-9)
    assert row_b.p_value == pytest.approx(z_test_p(54, 120, 30, 100), rel=1e-9)
    assert row_a.metrics["transfer_rate"].value == pytest.approx(0.10)
    assert row_b.metrics["abandonment"].value == pytest.approx(12 / 120)
    handle_a = (95 * 100 + 5 * 10) / 100
    assert row_a.metrics["handle_time"].value == pytest.approx(handle_a)
    assert row_a.latency_p50_ms == pytest.approx(110.0) and row_a.turns == 100
    assert row_a.scenario_pass_rate is None   # no scenario was run against it


def test_the_minimum_sample_is_shown_up_front_and_no_winner_is_named_before_it(running):
    a, b = variants(running)
    needed = sample_size(0.3, 0.2)
    seed(a, calls=needed - 1, booked=5)
    seed(b, calls=needed + 5, booked=needed)

    results = experiment_results(experiment=running)

    assert results.minimum_sample == needed
    assert not results.reached and results.winner is None


def test_a_significant_lead_after_the_minimum_sample_names_the_winner(running):
    a, b = variants(running)
    seed(a, calls=120, booked=30)
    seed(b, calls=120, booked=60)

    results = experiment_results(experiment=running)

    assert results.reached
    assert results.winner is not None and results.winner.variant == b
    assert results.winner_p == pytest.approx(z_test_p(60, 120, 30, 120), rel=1e-9)


def test_a_lead_that_is_not_significant_names_no_winner(running):
    a, b = variants(running)
    seed(a, calls=120, booked=30)
    seed(b, calls=120, booked=33)

    results = experiment_results(experiment=running)

    assert results.reached and results.winner is None
    assert results.winner_p == pytest.approx(z_test_p(33, 120, 30, 120), rel=1e-9) and results.winner_p > 0.05


def test_simulated_and_test_calls_never_count(running):
    a, b = variants(running)
    seed(a, calls=10, booked=2)
    seed(b, calls=10, booked=2)
    for origin in (Call.TestOrigin.CALL_SIMULATOR, Call.TestOrigin.SCENARIO, Call.TestOrigin.WEBHOOK_TESTER):
        seed(b, calls=30, booked=30, test_origin=origin, prefix=f"{origin}_")

    row_a, row_b = experiment_results(experiment=running).rows

    assert (row_a.calls, row_b.calls) == (10, 10)
    assert row_b.primary.value == pytest.approx(0.2)


def test_handle_time_as_primary_metric_is_a_mean_with_a_t_interval(running):
    running.primary_metric, running.baseline, running.minimum_detectable_effect = "handle_time", 30.0, 10.0
    running.save()
    a, b = variants(running)
    seed(a, calls=4, booked=0, abandoned=2)     # 10, 10, 100, 100 s

    row_a = experiment_results(experiment=running).rows[0]

    values = [10, 10, 100, 100]
    m = sum(values) / 4
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / 3)
    t_975_df3 = 3.182446305284263   # Student's t, 97.5 % quantile, 3 degrees of freedom (tables)
    assert row_a.primary.value == pytest.approx(55.0)
    assert row_a.primary.high - m == pytest.approx(t_975_df3 * sd / 2, rel=1e-6)
