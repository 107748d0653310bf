"""Reads of the Analytics page: one aggregate query per chart, per company and date range.

Every read starts from the rows `restrict(user)` gives (a member limited to some agents
counts only those agents' calls and receipts) and leaves test traffic out
(`Call.test_origin`, `WebhookReceipt.is_test`). Days are the company's local days.

Percentiles follow PostgreSQL's `percentile_cont` (linear interpolation between the two
nearest ranks). On PostgreSQL they are computed in the query; SQLite (the embedded run) has
no such aggregate, so there the same query returns the values ordered and `interpolated()`
computes the same figure in Python.
"""

from __future__ import annotations

import math
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import (Aggregate, Case, CharField, Count, Exists, F, FloatField, IntegerField, OuterRef, Q,
                              QuerySet, Value, When)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Collate, TruncDate

from appointments.models import FunctionInvocation
from audit.models import WebhookReceipt
from tenants.models import Company
from tenants.selectors import companies_allowing
from voice.models import Call, LiveTurnLatency

PERCENTILES = (0.5, 0.95)
MAX_DAYS = 366

# Retell's disconnection reasons that mean the call went to a person (shared/reference/retell.md).
TRANSFER_REASONS = ("call_transfer", "transfer_bridged")
# The caller left (hung up, or said nothing) before anything was booked, moved or cancelled.
ABANDON_REASONS = ("user_hangup", "inactivity")
# The custom functions whose successful answer is the call's outcome (appointments.handlers).
OUTCOME_FUNCTIONS = {"booked": "collect_appointment_information", "moved": "change_appointment_details",
                     "cancelled": "cancel_appointment"}
OUTCOMES = ("booked", "moved", "cancelled", "transferred", "abandoned", "other")
DURATION_BUCKETS = ((30, "< 30 s"), (60, "30–60 s"), (120, "1–2 min"), (300, "2–5 min"), (600, "5–10 min"),
                    (None, "≥ 10 min"))


@dataclass(frozen=True)
class Range:
    """A company's local days, first and last inclusive; `start`/`end` the instants bounding them."""

    company: Company
    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=self.company.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=self.company.zone)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def range_parse(*, company: Company, first: str = "", last: str = "", today: date | None = None) -> Range:
    """The range from ISO dates (YYYY-MM-DD); empty: the last 30 days up to today (company time).
    ValueError says what is wrong (a bad date, last before first, more than MAX_DAYS days)."""
    today = today or datetime.now(company.zone).date()
    try:
        last_day = date.fromisoformat(last) if last else today
        first_day = date.fromisoformat(first) if first else last_day - timedelta(days=29)
    except ValueError:
        raise ValueError("Dates are YYYY-MM-DD, e.g. 2026-11-01.") from None
    if last_day < first_day:
        raise ValueError("The last day is before the first.")
    if (last_day - first_day).days + 1 > MAX_DAYS:
        raise ValueError(f"Choose at most {MAX_DAYS} days.")
    return Range(company, first_day, last_day)


def analytics_companies(user) -> QuerySet[Company]:
    """The active companies whose calls the user may view."""
    return companies_allowing(user=user, model=Call, action="view").filter(is_active=True)


# --- the rows counted ----------------------------------------------------------------------------
def _receipts(user, span: Range) -> QuerySet[WebhookReceipt]:
    return (WebhookReceipt.objects.restrict(user, "view")
            .filter(company=span.company, is_test=False, received_at__gte=span.start, received_at__lt=span.end))


def _calls(user, span: Range) -> QuerySet[Call]:
    return (Call.objects.restrict(user, "view")
            .filter(company=span.company, test_origin="", created_at__gte=span.start, created_at__lt=span.end))


def _succeeded(name: str) -> Exists:
    return Exists(FunctionInvocation.objects.filter(company=OuterRef("company"), call_id=OuterRef("call_id"),
                                                    name=name, result__ok=True))


def _outcome() -> Case:
    """A call's one outcome: the first of booked, moved, cancelled, transferred, abandoned that holds."""
    return Case(
        When(_succeeded(OUTCOME_FUNCTIONS["booked"]), then=Value("booked")),
        When(_succeeded(OUTCOME_FUNCTIONS["moved"]), then=Value("moved")),
        When(_succeeded(OUTCOME_FUNCTIONS["cancelled"]), then=Value("cancelled")),
        When(disconnection_reason__in=TRANSFER_REASONS, then=Value("transferred")),
        When(disconnection_reason__in=ABANDON_REASONS, then=Value("abandoned")),
        default=Value("other"), output_field=CharField())


# --- percentiles ---------------------------------------------------------------------------------
class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


def interpolated(ordered: list[float], fraction: float) -> float | None:
    """percentile_cont of ascending values: linear between the ranks around fraction·(n-1)."""
    if not ordered:
        return None
    at = fraction * (len(ordered) - 1)
    low, high = math.floor(at), math.ceil(at)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def _postgres() -> bool:
    return connection.vendor == "postgresql"


@contextmanager
def aggregate_session():
    """Run the page's aggregates in one transaction with PostgreSQL's JIT compiler off.

    These queries scan tens of thousands of rows, which is enough for the planner's cost to
    pass jit_above_cost: compiling then took longer than the query itself (400 ms of 900 ms
    measured with bench/analytics_bench.py). The percentiles sort up to a few hundred thousand
    values (a month of a busy company's turns): with the default work_mem (4 MB) those sorts
    spilled to disk (EXPLAIN ANALYZE: "external merge"), so this transaction gets 64 MB.
    One snapshot also makes the charts agree."""
    with transaction.atomic():
        if _postgres():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
                cursor.execute("SET LOCAL work_mem = '64MB'")
        yield


def _percentiles_of(rows, group_count: int) -> dict[tuple, dict]:
    """SQLite's side: rows (group..., value) ordered by group then value -> {group: {p50, p95, n}}."""
    values: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        if row[group_count] is not None:
            values[tuple(row[:group_count])].append(float(row[group_count]))
    return {group: {"p50": interpolated(vs, 0.5), "p95": interpolated(vs, 0.95), "n": len(vs)}
            for group, vs in values.items()}


# --- webhooks ------------------------------------------------------------------------------------
def webhooks_per_event_type(*, user, span: Range) -> dict[str, dict[date, int]]:
    """{event type: {local day: receipts}}; a request that named no event is "(none)"."""
    rows = (_receipts(user, span).annotate(day=TruncDate("received_at", tzinfo=span.company.zone))
            .values("day", "event_type").annotate(n=Count("*")).order_by())
    series: dict[str, dict[date, int]] = defaultdict(dict)
    for row in rows:
        series[row["event_type"] or "(none)"][row["day"]] = row["n"]
    return dict(series)


def webhook_results(*, user, span: Range) -> dict:
    """{"total": n, "accepted": share, "rejected": share, "by_code": {status or error code: share}}:
    shares of all receipts in the range, 0..1. A receipt without an error code counts under
    its status (processed, duplicate, ...)."""
    rows = list(_receipts(user, span).values("status", "error_code").annotate(n=Count("*")).order_by())
    total = sum(row["n"] for row in rows)
    by_code: dict[str, int] = defaultdict(int)
    rejected = 0
    for row in rows:
        by_code[row["error_code"] or row["status"]] += row["n"]
        if row["status"] == WebhookReceipt.Status.REJECTED:
            rejected += row["n"]
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    return {"total": total, "accepted": share(total - rejected), "rejected": share(rejected),
            "by_code": {code: share(n) for code, n in sorted(by_code.items(), key=lambda kv: -kv[1])}}


def webhook_latency(*, user, span: Range) -> dict[date, dict]:
    """{local day: {"p50", "p95" (ms from receipt to processed), "n"}} of processed receipts."""
    rows = _receipts(user, span).filter(processed_at__isnull=False).annotate(
        day=TruncDate("received_at", tzinfo=span.company.zone))
    if _postgres():
        ms = RawSQL('EXTRACT(EPOCH FROM ("audit_webhookreceipt"."processed_at" - '
                    '"audit_webhookreceipt"."received_at")) * 1000', [], output_field=FloatField())
        return {row["day"]: {"p50": row["p50"], "p95": row["p95"], "n": row["n"]}
                for row in rows.values("day").annotate(p50=PercentileCont(ms, 0.5), p95=PercentileCont(ms, 0.95),
                                                       n=Count("*")).order_by()}
    ordered = [(day, (processed - received).total_seconds() * 1000) for day, received, processed in
               rows.order_by("day", "received_at").values_list("day", "received_at", "processed_at")]
    ordered.sort()
    return {group[0]: figures for group, figures in _percentiles_of(ordered, 1).items()}


# --- calls ---------------------------------------------------------------------------------------
def calls_per_day(*, user, span: Range) -> dict[date, int]:
    rows = (_calls(user, span).annotate(day=TruncDate("created_at", tzinfo=span.company.zone))
            .values("day").annotate(n=Count("*")).order_by())
    return {row["day"]: row["n"] for row in rows}


def call_outcomes(*, user, span: Range) -> dict[str, int]:
    """{outcome: calls} for each of OUTCOMES (see `_outcome` for the order they are decided in)."""
    rows = _calls(user, span).annotate(outcome=_outcome()).values("outcome").annotate(n=Count("*")).order_by()
    counts = {row["outcome"]: row["n"] for row in rows}
    return {outcome: counts.get(outcome, 0) for outcome in OUTCOMES}


def call_durations(*, user, span: Range) -> dict[str, int]:
    """{duration bucket label: calls} of calls with a known duration (DURATION_BUCKETS, in seconds)."""
    whens = [When(duration_ms__lt=limit * 1000, then=Value(n)) for n, (limit, _) in enumerate(DURATION_BUCKETS)
             if limit is not None]
    bucket = Case(*whens, default=Value(len(DURATION_BUCKETS) - 1), output_field=IntegerField())
    rows = (_calls(user, span).filter(duration_ms__isnull=False).annotate(bucket=bucket)
            .values("bucket").annotate(n=Count("*")).order_by())
    counts = {row["bucket"]: row["n"] for row in rows}
    return {label: counts.get(n, 0) for n, (_, label) in enumerate(DURATION_BUCKETS)}


def booking_conversion(*, user, span: Range) -> dict[str, dict]:
    """{agent name: {"calls", "booked", "rate" (0..1)}}; calls without an agent under "(no agent)"."""
    rows = (_calls(user, span).annotate(label=Coalesce(F("agent__name"), Value("(no agent)")))
            .values("label").annotate(calls=Count("*"),
                                      booked=Count("id", filter=Q(_succeeded(OUTCOME_FUNCTIONS["booked"]))))
            .order_by("label"))
    return {row["label"]: {"calls": row["calls"], "booked": row["booked"],
                           "rate": row["booked"] / row["calls"] if row["calls"] else 0.0} for row in rows}


def _turns(user, span: Range) -> QuerySet[LiveTurnLatency]:
    """The live turns answered in the range by an agent, of calls that are not test calls.

    The range applies to the turn's own start (index company, started_at); test calls are left
    out by an anti-join on the few calls that carry a test mark (test_origin > '' reads the
    test_origin index), not by joining every call of the company."""
    tests = Call.objects.filter(pk=OuterRef("call_id"), test_origin__gt="")
    return (LiveTurnLatency.objects.restrict(user, "view")
            .filter(company=span.company, started_at__gte=span.start, started_at__lt=span.end,
                    agent__isnull=False)
            .filter(~Exists(tests)))


def turn_latency(*, user, span: Range) -> dict[str, dict[str, dict]]:
    """{"agents": {agent name: figures}, "engines": {dialog engine: figures}}, where figures is
    {"first": {"p50", "p95", "n"}, "last": {"p50", "p95", "n"}}: ms from response_required to
    the first and to the last chunk of each live turn started in the range (voice.LiveTurnLatency,
    written when the turns are recorded). A turn counts under the agent whose session answered it
    and the dialog engine that answered it (not the agent's setting today); a turn without a
    figure (superseded) is not counted for it. One query for both charts (grouping sets on
    PostgreSQL)."""
    # The groups are sorted only to be told apart: bytewise ("C") is several times cheaper than
    # the database's language collation, and the labels are sorted for display below anyway.
    def label(field: str):
        return Collate(F(field), "C") if _postgres() else F(field)

    turns = (_turns(user, span).annotate(agent_label=label("agent__name"), engine_label=label("dialog_engine"))
             .values("agent_label", "engine_label", "first_chunk_ms", "complete_ms").order_by())
    sql, params = turns.query.sql_with_params()
    result: dict[str, dict[str, dict]] = {"agents": {}, "engines": {}}
    if _postgres():
        # One sort per figure and group gives both percentiles (an array of fractions).
        query = f"""
            SELECT GROUPING(t.agent_label), t.agent_label, t.engine_label,
                   percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY t.first_chunk_ms), count(t.first_chunk_ms),
                   percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY t.complete_ms), count(t.complete_ms)
            FROM ({sql}) t
            GROUP BY GROUPING SETS ((t.agent_label), (t.engine_label))"""
        with connection.cursor() as cursor:
            cursor.execute(query, params)
            for by_engine, agent, engine, first, first_n, last, last_n in cursor.fetchall():
                first, last = first or [None, None], last or [None, None]
                result["engines" if by_engine else "agents"][engine if by_engine else agent] = {
                    "first": {"p50": first[0], "p95": first[1], "n": first_n},
                    "last": {"p50": last[0], "p95": last[1], "n": last_n}}
        return {key: dict(sorted(value.items())) for key, value in result.items()}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    empty = {"p50": None, "p95": None, "n": 0}
    for key, column in (("agents", 0), ("engines", 1)):
        first = _percentiles_of(sorted((r[column], r[2]) for r in rows if isinstance(r[2], int | float)), 1)
        last = _percentiles_of(sorted((r[column], r[3]) for r in rows if isinstance(r[3], int | float)), 1)
        result[key] = {label[0]: {"first": first.get(label, empty), "last": last.get(label, empty)}
                       for label in sorted(set(first) | set(last))}
    return result
