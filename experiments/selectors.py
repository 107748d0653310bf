"""Reads of prompt A/B testing, always of one company's experiments: the plan a call's start
assigns from, and the results per variant with their statistics.

The metrics, per variant, over its finished real calls (a testing tool's call is never counted):
- booking conversion: the share of calls in which an appointment was booked;
- transfer rate: the share transferred to a person (disconnection call_transfer or transfer_bridged,
  or a transfer event);
- abandonment: the share of callers who hung up within ABANDON_SECONDS;
- average handle time: the mean length of a call, in seconds;
- per-turn latency: the time from Retell's response_required to our first words (Call.live_turns).

A rate's 95 % interval is Wilson's score interval; a mean's is Student's t. Significance of a
rate difference is the two-proportion z-test (computed as the equivalent 2x2 chi-square test
without continuity correction: the same p-value), of a handle-time difference Welch's t-test,
both from scipy. The minimum sample per variant is the classic two-sided normal-approximation
size for alpha ALPHA and power POWER at the experiment's baseline and minimum detectable effect.
A winner is named only once every variant has reached it, and only when the best variant beats
the next best with p below ALPHA / (variants - 1) (Bonferroni over the comparisons).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import mean

from django.db.models import Q
from django.utils import timezone
from appointments.models import Appointment
from voice.models import Call

from .assignment import ExperimentPlan, VariantPlan
from .models import LOWER_IS_BETTER, RATE_METRICS, Experiment, Metric, Variant

class _Stats:
    """scipy.stats, imported at the first computation (call handling never needs it)."""

    def __getattr__(self, name):
        from scipy import stats as scipy_stats

        return getattr(scipy_stats, name)


stats = _Stats()

ALPHA = 0.05
POWER = 0.8
ABANDON_SECONDS = 20
TRANSFER_REASONS = frozenset({"call_transfer", "transfer_bridged"})
TRANSFER_EVENTS = frozenset({"transfer_started", "transfer_bridged"})


def experiment_plan(*, agent_id: int, now=None) -> ExperimentPlan | None:
    """The agent's running experiment inside its planned window, as plain data; None without one."""
    now = now or timezone.now()
    experiment = (Experiment.objects.filter(agent_id=agent_id, status=Experiment.Status.RUNNING)
                  .filter(Q(starts_at__isnull=True) | Q(starts_at__lte=now))
                  .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now)).first())
    if experiment is None:
        return None
    variants = tuple(VariantPlan(id=v.pk, name=v.name, weight=v.weight, general_prompt=v.general_prompt,
                                 begin_message=v.begin_message, custom_instructions=v.custom_instructions,
                                 dialog_engine=v.dialog_engine, elevenlabs_voice_id=v.elevenlabs_voice_id)
                     for v in experiment.variants.order_by("pk"))
    return ExperimentPlan(experiment_id=experiment.pk, variants=variants) if len(variants) >= 2 else None


def call_variant_of(*, company_id: int, call_id: str) -> int | None:
    """The variant the call's row recorded, or None."""
    if not call_id:
        return None
    return (Call.objects.filter(company_id=company_id, call_id=call_id)
            .values_list("experiment_variant_id", flat=True).first())


def experiment_list(*, user, agent=None):
    """The experiments the user may see (restrict()), newest first; of one agent when given."""
    rows = Experiment.objects.restrict(user, "view").select_related("agent", "company")
    return rows.filter(agent=agent) if agent is not None else rows


def scenario_pass_rate(variant: Variant) -> float | None:
    """The share (0..1) of the agent's saved scenarios that passed in the latest finished run of each
    against this variant (experiments.services.experiment_scenarios_run); None while none has finished.
    A run that could not make its call counts as not passed."""
    from voice.models import ScenarioRun

    latest: dict[int, str] = {}
    finished = (ScenarioRun.objects.filter(variant=variant, status__in=ScenarioRun.FINISHED)
                .order_by("scenario_id", "-finished_at", "-pk").values_list("scenario_id", "status"))
    for scenario_id, status in finished:
        latest.setdefault(scenario_id, status)
    if not latest:
        return None
    return sum(status == ScenarioRun.Status.PASSED for status in latest.values()) / len(latest)


# --- statistics (plain numbers in, plain numbers out) ---------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """A metric's value with its 95 % interval (None where the calls do not tell one)."""
    value: float | None
    low: float | None = None
    high: float | None = None


def rate_estimate(successes: int, n: int) -> Estimate:
    """A share with Wilson's 95 % score interval; no value for no calls."""
    if n <= 0:
        return Estimate(None)
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=1 - ALPHA, method="wilson")
    return Estimate(successes / n, float(ci.low), float(ci.high))


def mean_estimate(values: list[float]) -> Estimate:
    """A mean with Student's t 95 % interval (from two values on)."""
    if not values:
        return Estimate(None)
    m = mean(values)
    if len(values) < 2:
        return Estimate(m)
    sem = stats.sem(values)
    if sem == 0:
        return Estimate(m, m, m)
    half = float(stats.t.ppf(1 - ALPHA / 2, len(values) - 1)) * float(sem)
    return Estimate(m, m - half, m + half)


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test; None without calls on either side."""
    if n1 <= 0 or n2 <= 0:
        return None
    if k1 + k2 in (0, n1 + n2):
        return 1.0   # no successes or no failures at all: nothing differs
    table = [[k1, n1 - k1], [k2, n2 - k2]]
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test; None with fewer than two values on a side."""
    if len(a) < 2 or len(b) < 2:
        return None
    if stats.tvar(a) == 0 and stats.tvar(b) == 0:
        return 1.0 if mean(a) == mean(b) else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def minimum_sample(*, metric: str, baseline: float, effect: float) -> int:
    """Calls per variant to find a difference of `effect` with ALPHA (two-sided) and POWER:
    for a rate at `baseline` (0..1) the normal-approximation size for two proportions, for
    handle time (baseline = the standard deviation in seconds) the size for two means."""
    z_a = float(stats.norm.ppf(1 - ALPHA / 2))
    z_b = float(stats.norm.ppf(POWER))
    if metric in RATE_METRICS:
        p1 = baseline
        p2 = p1 + effect if p1 + effect < 1 else p1 - effect
        p_bar = (p1 + p2) / 2
        n = (z_a * math.sqrt(2 * p_bar * (1 - p_bar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 \
            / (p2 - p1) ** 2
    else:
        n = 2 * ((z_a + z_b) * baseline / effect) ** 2
    return max(2, math.ceil(n))


# --- results ----------------------------------------------------------------------------------------
@dataclass
class CallOutcome:
    booked: bool
    transferred: bool
    abandoned: bool
    seconds: float | None
    first_chunk_ms: list[float]

    def value(self, metric: str) -> float | None:
        if metric == Metric.HANDLE_TIME:
            return self.seconds
        return float({Metric.BOOKING_CONVERSION: self.booked, Metric.TRANSFER_RATE: self.transferred,
                      Metric.ABANDONMENT: self.abandoned}[metric])


@dataclass
class VariantResult:
    variant: Variant
    share: float                       # the configured share of traffic, 0..1
    calls: int
    metrics: dict[str, Estimate]       # every metric, by Metric value
    successes: dict[str, int]          # for the rates
    latency_p50_ms: float | None
    latency_mean_ms: float | None
    turns: int
    scenario_pass_rate: float | None
    primary: Estimate = Estimate(None)  # the primary metric (one of `metrics`)
    p_value: float | None = None       # of the primary metric against the control (the first variant)
    values: list[float] = field(default_factory=list, repr=False)   # the primary metric per call


@dataclass
class Results:
    experiment: Experiment
    rows: list[VariantResult]
    minimum_sample: int
    reached: bool                      # every variant has at least minimum_sample calls
    winner: VariantResult | None       # None before the minimum sample or without a significant lead
    winner_p: float | None
    threshold: float                   # the p-value the winner's lead must stay under

    @property
    def metric_label(self) -> str:
        return Metric(self.experiment.primary_metric).label

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.rows)


def _outcomes(experiment: Experiment) -> dict[int, list[CallOutcome]]:
    calls = list(Call.objects.filter(company_id=experiment.company_id, experiment_variant__experiment=experiment,
                                     test_origin="")
                 .filter(Q(ended_at__isnull=False) | Q(duration_ms__isnull=False))
                 .values("call_id", "experiment_variant_id", "disconnection_reason", "events", "duration_ms",
                         "live_turns"))
    booked = set(Appointment.objects.filter(company_id=experiment.company_id, is_test=False,
                                            call_id__in=[c["call_id"] for c in calls])
                 .values_list("call_id", flat=True))
    out: dict[int, list[CallOutcome]] = {}
    for call in calls:
        seconds = call["duration_ms"] / 1000 if call["duration_ms"] is not None else None
        latencies = [float(t["first_chunk_ms"]) for t in call["live_turns"] or []
                     if isinstance(t, dict) and isinstance(t.get("first_chunk_ms"), (int, float))
                     and not t.get("superseded")]
        out.setdefault(call["experiment_variant_id"], []).append(CallOutcome(
            booked=call["call_id"] in booked,
            transferred=call["disconnection_reason"] in TRANSFER_REASONS
            or bool(TRANSFER_EVENTS & set(call["events"] or [])),
            abandoned=call["disconnection_reason"] == "user_hangup" and seconds is not None
            and seconds < ABANDON_SECONDS,
            seconds=seconds, first_chunk_ms=latencies))
    return out


def _better(metric: str, a: float, b: float) -> bool:
    return a < b if metric in LOWER_IS_BETTER else a > b


def _p(metric: str, a: VariantResult, b: VariantResult) -> float | None:
    if metric in RATE_METRICS:
        return two_proportion_p(a.successes[metric], a.calls, b.successes[metric], b.calls)
    return welch_p(a.values, b.values)


def experiment_results(*, experiment: Experiment) -> Results:
    """Per variant: calls, every metric with its interval, per-turn latency and the scenario pass
    rate; the primary metric's p-value against the control; the minimum sample and, once reached,
    the winner (see the module docstring)."""
    metric = experiment.primary_metric
    variants = list(experiment.variants.order_by("pk"))
    total_weight = sum(v.weight for v in variants) or 1
    outcomes = _outcomes(experiment)
    rows = []
    for variant in variants:
        calls = outcomes.get(variant.pk, [])
        successes = {m: sum(1 for c in calls if c.value(m)) for m in RATE_METRICS}
        metrics = {m: rate_estimate(successes[m], len(calls)) for m in RATE_METRICS}
        metrics[Metric.HANDLE_TIME] = mean_estimate([c.seconds for c in calls if c.seconds is not None])
        latencies = sorted(ms for c in calls for ms in c.first_chunk_ms)
        row = VariantResult(
            variant=variant, share=variant.weight / total_weight, calls=len(calls), metrics=metrics,
            successes=successes, latency_p50_ms=float(stats.scoreatpercentile(latencies, 50)) if latencies else None,
            latency_mean_ms=mean(latencies) if latencies else None, turns=len(latencies),
            scenario_pass_rate=scenario_pass_rate(variant),
            primary=metrics[metric], values=[v for v in (c.value(metric) for c in calls) if v is not None])
        rows.append(row)
    for row in rows[1:]:
        row.p_value = _p(metric, row, rows[0])
    needed = minimum_sample(metric=metric, baseline=experiment.baseline,
                            effect=experiment.minimum_detectable_effect)
    reached = bool(rows) and all(r.calls >= needed for r in rows)
    threshold = ALPHA / max(1, len(rows) - 1)
    winner = winner_p = None
    ranked = sorted((r for r in rows if r.primary.value is not None), key=lambda r: r.primary.value,
                    reverse=metric not in LOWER_IS_BETTER)
    if reached and len(ranked) >= 2 and _better(metric, ranked[0].primary.value, ranked[1].primary.value):
        winner_p = _p(metric, ranked[0], ranked[1])
        if winner_p is not None and winner_p < threshold:
            winner = ranked[0]
    return Results(experiment=experiment, rows=rows, minimum_sample=needed, reached=reached, winner=winner,
                   winner_p=winner_p, threshold=threshold)
