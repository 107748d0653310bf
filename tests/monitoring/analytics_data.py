"""A small, varied month of one company's traffic for the analytics tests, with the figures
each chart must show computed here from the rows as they are written (not read back).

Used by the PostgreSQL tests in-process and by the SQLite test in a subprocess (as `make run`),
so both databases are held to the same figures."""

import random
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta

import numpy

from appointments.models import FunctionInvocation
from audit.models import WebhookReceipt
from monitoring.selectors import analytics
from retell_config.models import Agent
from tests.factories import make_company, make_member
from voice.models import Call
from voice.services import call_record_live_turns

DAY0 = date(2026, 11, 2)
DAYS = 7
REASONS = ["user_hangup", "agent_hangup", "call_transfer", "inactivity", "transfer_bridged", ""]
DURATIONS = [10_000, 45_000, 90_000, 200_000, 400_000, 900_000, None]
FUNCTIONS = {0: ("collect_appointment_information", True), 1: ("collect_appointment_information", False),
             2: ("change_appointment_details", True), 3: ("cancel_appointment", True)}


def _percentiles(values) -> dict:
    return {"p50": float(numpy.percentile(values, 50)), "p95": float(numpy.percentile(values, 95)),
            "n": len(values)}


def _call(company, agent, call_id, created, *, turns=(), reason="", duration=None, test_origin=""):
    """The call's row, its turns recorded as the live socket records them (a turn every 5 s from
    the call's creation)."""
    call = Call.objects.create(company=company, agent=agent, call_id=call_id,
                               disconnection_reason=reason, duration_ms=duration, test_origin=test_origin)
    Call.objects.filter(pk=call.pk).update(created_at=created)
    if turns:
        timed = [{**turn, "started_at": created.timestamp() + 5 * n} for n, turn in enumerate(turns)]
        call_record_live_turns(company=company, agent=agent, call_id=call_id, turns=timed, transcript=[])
    return call


def _invoke(company, call_id, name, ok, seq=1):
    FunctionInvocation.objects.create(company=company, call_id=call_id, seq=seq, name=name, args_hash="0" * 64,
                                      args={}, result={"ok": ok})


def seed() -> tuple:
    """(a user who owns the company, the Range, the expected figures per selector)."""
    rng = random.Random(13)
    alpha = make_company("Analytics Praxis", slug="analytics-alpha")
    beta = make_company("Other Praxis", slug="analytics-beta")
    owner = make_member(alpha, "owner", username="analytics-owner")
    main = Agent.objects.create(company=alpha, agent_id="agent_an_main", name="Main Agent", dialog_engine="embedded")
    backup = Agent.objects.create(company=alpha, agent_id="agent_an_backup", name="Backup Agent",
                                  dialog_engine="openai")
    theirs = Agent.objects.create(company=beta, agent_id="agent_an_beta", name="Beta Agent")
    zone = alpha.zone

    per_day, outcomes, durations = Counter(), Counter(), Counter()
    conversion = defaultdict(lambda: {"calls": 0, "booked": 0})
    first = defaultdict(list)
    last = defaultdict(list)
    for i in range(30):
        agent = backup if i % 3 == 0 else main
        day = DAY0 + timedelta(days=i % DAYS)
        # 23:30 local on some days: the company's day, whatever UTC says.
        created = datetime.combine(day, time(23, 30) if i % 4 == 0 else time(9, i), tzinfo=zone)
        turns = []
        for n in range(1 + i % 4):
            chunk = round(rng.uniform(80, 900), 1)
            complete = round(chunk + rng.uniform(100, 2500), 1)
            superseded = n == 2
            turns.append({"response_id": n + 1, "first_chunk_ms": None if superseded else chunk,
                          "complete_ms": None if superseded else complete, "superseded": superseded,
                          "content": "Gern."})
            if not superseded:
                for label in (agent.name, agent.dialog_engine):
                    first[label].append(chunk)
                    last[label].append(complete)
        reason, duration = REASONS[i % len(REASONS)], DURATIONS[i % len(DURATIONS)]
        call_id = f"call_an_{i}"
        _call(alpha, agent, call_id, created, turns=turns, reason=reason, duration=duration)
        name_ok = FUNCTIONS.get(i % 6)
        if name_ok:
            _invoke(alpha, call_id, *name_ok)
        if i % 10 == 9:  # booked after a declined try
            _invoke(alpha, call_id, "collect_appointment_information", False, seq=10)
            _invoke(alpha, call_id, "collect_appointment_information", True, seq=11)
        booked = (name_ok == ("collect_appointment_information", True)) or i % 10 == 9
        outcome = ("booked" if booked else "moved" if name_ok == ("change_appointment_details", True)
                   else "cancelled" if name_ok == ("cancel_appointment", True)
                   else "transferred" if reason in ("call_transfer", "transfer_bridged")
                   else "abandoned" if reason in ("user_hangup", "inactivity") else "other")
        outcomes[outcome] += 1
        per_day[day] += 1
        conversion[agent.name]["calls"] += 1
        conversion[agent.name]["booked"] += booked
        if duration is not None:
            seconds = duration / 1000
            durations[next(label for limit, label in analytics.DURATION_BUCKETS
                           if limit is None or seconds < limit)] += 1

    noisy = [{"response_id": 1, "first_chunk_ms": 99_999.0, "complete_ms": 99_999.0}]
    # Left out: a test call, a call before the range, another company's call.
    _call(alpha, main, "call_an_test", datetime.combine(DAY0, time(10), tzinfo=zone), turns=noisy,
          reason="user_hangup", duration=10_000, test_origin=Call.TestOrigin.CALL_SIMULATOR)
    _invoke(alpha, "call_an_test", "collect_appointment_information", True)
    _call(alpha, main, "call_an_old", datetime.combine(DAY0 - timedelta(days=3), time(10), tzinfo=zone),
          turns=noisy, duration=10_000)
    _call(beta, theirs, "call_an_beta", datetime.combine(DAY0, time(10), tzinfo=zone), turns=noisy, duration=10_000)

    events = ["call_started", "call_ended", "call_analyzed", ""]
    statuses = [("processed", ""), ("processed", ""), ("rejected", "signature_invalid"), ("duplicate", ""),
                ("rejected", "unknown_agent"), ("failed", "processing_failed")]
    series, by_code, latency = defaultdict(Counter), Counter(), defaultdict(list)
    for i in range(40):
        day = DAY0 + timedelta(days=i % DAYS)
        received = datetime.combine(day, time(12, i), tzinfo=zone)
        event, (status, code) = events[i % len(events)], statuses[i % len(statuses)]
        processing = round(rng.uniform(5, 400), 3) if status == "processed" else None
        WebhookReceipt.objects.create(
            provider="retell", company=alpha, endpoint="/api/retell/webhook", body=b"{}", received_at=received,
            status=status, error_code=code, event_type=event, kind="event",
            processed_at=received + timedelta(milliseconds=processing) if processing is not None else None)
        series[event or "(none)"][day] += 1
        by_code[code or status] += 1
        if processing is not None:
            latency[day].append(processing)
    for company, is_test in ((alpha, True), (beta, False)):
        WebhookReceipt.objects.create(provider="retell", company=company, endpoint="/api/retell/webhook", body=b"{}",
                                      received_at=datetime.combine(DAY0, time(8), tzinfo=zone), status="processed",
                                      event_type="call_started", is_test=is_test,
                                      processed_at=datetime.combine(DAY0, time(9), tzinfo=zone))

    rejected = by_code["signature_invalid"] + by_code["unknown_agent"]
    expected = {
        "calls_per_day": {d.isoformat(): n for d, n in per_day.items()},
        "call_outcomes": {o: outcomes.get(o, 0) for o in analytics.OUTCOMES},
        "call_durations": {label: durations.get(label, 0) for _, label in analytics.DURATION_BUCKETS},
        "booking_conversion": {a: {**v, "rate": v["booked"] / v["calls"]} for a, v in conversion.items()},
        "turn_latency": {
            "agents": {a: {"first": _percentiles(first[a]), "last": _percentiles(last[a])}
                       for a in (main.name, backup.name)},
            "engines": {e: {"first": _percentiles(first[e]), "last": _percentiles(last[e])}
                        for e in ("embedded", "openai")}},
        "webhooks_per_event_type": {e: {d.isoformat(): n for d, n in days.items()} for e, days in series.items()},
        "webhook_results": {"total": 40, "accepted": (40 - rejected) / 40, "rejected": rejected / 40,
                            "by_code": {c: n / 40 for c, n in by_code.items()}},
        "webhook_latency": {d.isoformat(): _percentiles(v) for d, v in latency.items()},
    }
    return owner, analytics.Range(alpha, DAY0, DAY0 + timedelta(days=DAYS - 1)), expected


def figures(user, span) -> dict:
    """Every selector's answer, with days as ISO text (as `expected` has them)."""
    def iso(mapping):
        return {d.isoformat(): v for d, v in mapping.items()}

    return {
        "calls_per_day": iso(analytics.calls_per_day(user=user, span=span)),
        "call_outcomes": analytics.call_outcomes(user=user, span=span),
        "call_durations": analytics.call_durations(user=user, span=span),
        "booking_conversion": analytics.booking_conversion(user=user, span=span),
        "turn_latency": analytics.turn_latency(user=user, span=span),
        "webhooks_per_event_type": {e: iso(days) for e, days in
                                    analytics.webhooks_per_event_type(user=user, span=span).items()},
        "webhook_results": analytics.webhook_results(user=user, span=span),
        "webhook_latency": iso(analytics.webhook_latency(user=user, span=span)),
    }
