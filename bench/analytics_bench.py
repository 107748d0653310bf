"""Benchmark: the Analytics page and the Live Debug Console's first screen with a big company,
against the same admin's plain change list of calls, in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/vd_h13p_bench REDIS_URL=redis://127.0.0.1:6379/6 \
    .venv/bin/python bench/analytics_bench.py [--rounds 40] [--reseed]

It creates and migrates the database if needed, then (once; --reseed drops and makes it
again) seeds one company in PostgreSQL with bulk SQL (INSERT ... SELECT FROM generate_series):
100,000 calls over the last 365 days with 20 live turns each (2,000,000 turns in
Call.live_turns and as many voice.LiveTurnLatency rows, 1 % of the calls test calls),
1,000,000 webhook receipts, 1,000,000 activity lines and the custom-function invocations that
make bookings, moves and cancellations; then ANALYZE.

Server time is measured in-process (Django's test client through the whole middleware stack
and the admin's login check, DEBUG off, no network), as an owner of the company (not a
superuser, so every read goes through restrict()). Pages are requested in interleaved rounds
after a warm-up; it prints per page p50, p95 and the p95 ratio against the change list.
The goal (issue 13): the Analytics page (its default range, the last 30 days) p95 at most
3x the change list's and under 500 ms. With --long-ranges the 90-day and 365-day ranges are measured too.
This is a benchmark, not a test.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SLUG = "analytics-bench"
CALLS, TURNS_PER_CALL, RECEIPTS, LINES = 100_000, 20, 1_000_000, 1_000_000


def prepare_database() -> None:
    import psycopg

    url = urlsplit(os.environ["DATABASE_URL"])
    name = url.path.lstrip("/")
    with psycopg.connect(url._replace(path="/postgres").geturl(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


SEED_SQL = [
    # 100,000 calls over the last 365 days, each with 20 live turns (latencies in ms).
    """
    INSERT INTO voice_call (company_id, call_id, source, test_origin, agent_id, call_type, from_number, to_number,
        direction, status, started_at, ended_at, duration_ms, disconnection_reason, transcript, transcript_turns,
        recording_url, analysis, cost, latency, dynamic_variables, metadata, last_event, events, attachments,
        field_ranks, live_transcript, live_turns, created_at, updated_at)
    SELECT %(company)s, 'call_bench_' || g, 'retell', CASE WHEN g %% 100 = 0 THEN 'call_simulator' ELSE '' END,
        (%(agents)s::bigint[])[1 + g %% %(agent_count)s], 'phone_call', '+4915112345678', '+493083793369',
        'inbound', 'ended', t, t + make_interval(secs => d / 1000.0), d,
        (ARRAY['user_hangup','agent_hangup','agent_hangup','call_transfer','inactivity','user_hangup',
               'agent_hangup','transfer_bridged','agent_hangup','error_asr'])[1 + g %% 10],
        'Agent: Guten Tag, Praxis Sonnenschein. User: Ich hätte gern einen Termin.', '[]', '', '{}', '{}', '{}',
        '{}', '{}', 'call_analyzed', '["call_started","call_ended","call_analyzed"]', '{}', '{}', '[]',
        (SELECT jsonb_agg(jsonb_build_object(
            'response_id', k, 'reminder', false, 'started_at', extract(epoch FROM t) + k * 6, 'resumed', false,
            'first_chunk_ms', round((120 + random() * 700 + g * 0)::numeric, 1),
            'complete_ms', round((900 + random() * 2500)::numeric, 1),
            'content', 'Gern, am Dienstag um zehn Uhr ist noch ein Termin frei. Soll ich ihn für Sie buchen?',
            'tool_calls', '[]'::jsonb, 'end_call', k = %(turns)s, 'transfer_number', null, 'superseded', false))
         FROM generate_series(1::bigint, %(turns)s) k),
        t, t
    FROM (SELECT g, now() - make_interval(days => (g %% 365)::int, secs => (g * 7919) %% 86400) AS t,
                 (10000 + (g * 104729) %% 590000)::bigint AS d
          FROM generate_series(1::bigint, %(calls)s) g) s
    """,
    # Each live turn's latency as a plain row, as voice.services.call_record_live_turns writes it
    # (read back from the turns just seeded, so the JSON and the rows agree).
    """
    INSERT INTO voice_liveturnlatency (company_id, call_id, agent_id, dialog_engine, response_id, started_at,
        first_chunk_ms, complete_ms)
    SELECT c.company_id, c.id, c.agent_id, a.dialog_engine, t.response_id, to_timestamp(t.started_at),
        t.first_chunk_ms, t.complete_ms
    FROM voice_call c JOIN retell_config_agent a ON a.id = c.agent_id
    CROSS JOIN LATERAL jsonb_to_recordset(c.live_turns)
        AS t(response_id bigint, started_at double precision, first_chunk_ms double precision,
             complete_ms double precision)
    WHERE c.company_id = %(company)s
    """,
    # The custom-function invocations behind bookings (35 %), moves (5 %) and cancellations (3 %).
    """
    INSERT INTO appointments_functioninvocation (company_id, call_id, seq, name, args_hash, args, result,
        retries_answered, created_at)
    SELECT %(company)s, 'call_bench_' || g, 1,
        CASE WHEN g %% 100 < 35 THEN 'collect_appointment_information'
             WHEN g %% 100 < 40 THEN 'change_appointment_details' ELSE 'cancel_appointment' END,
        md5(g::text) || md5(g::text), '{}', jsonb_build_object('ok', g %% 7 <> 0), 0, now()
    FROM generate_series(1::bigint, %(calls)s) g WHERE g %% 100 < 43
    """,
    # 1,000,000 webhook receipts over the same year (event types, outcomes and processing times mixed).
    """
    INSERT INTO audit_webhookreceipt (provider, company_id, is_test, endpoint, body, body_truncated, headers, query,
        remote_addr, received_at, status, error_code, error_message, kind, event_type, call_id, dedupe_key, attempts,
        next_attempt_at, processed_at, notes, replay_count)
    SELECT 'retell', %(company)s, g %% 200 = 0, '/api/retell/webhook',
        convert_to('{"event":"call_ended","call":{"call_id":"call_bench_' || (1 + g %% %(calls)s) || '"}}', 'UTF8'),
        false, '{"Content-Type": "application/json", "X-Retell-Signature": "v=1,d=0"}', '', '100.20.5.228', t,
        st, CASE st WHEN 'rejected' THEN (ARRAY['signature_invalid','unknown_agent'])[1 + g %% 2]
                    WHEN 'failed' THEN 'processing_failed' ELSE '' END,
        '', 'event', (ARRAY['call_started','call_ended','call_analyzed','transcript_updated'])[1 + g %% 4],
        'call_bench_' || (1 + g %% %(calls)s), '', 1, null,
        CASE WHEN st = 'processed' THEN t + make_interval(secs => (5 + (g * 31) %% 495) / 1000.0) END, '[]', 0
    FROM (SELECT g, now() - make_interval(days => (g %% 365)::int, secs => (g * 7907) %% 86400) AS t,
                 CASE WHEN g %% 100 < 90 THEN 'processed' WHEN g %% 100 < 93 THEN 'rejected'
                      WHEN g %% 100 < 98 THEN 'duplicate' ELSE 'failed' END AS st
          FROM generate_series(1::bigint, %(receipts)s) g) s
    """,
    # 1,000,000 activity lines, most naming a call.
    """
    INSERT INTO audit_activitylogentry (created_at, company_id, kind, level, message, data)
    SELECT now() - make_interval(days => (g %% 365)::int, secs => (g * 7901) %% 86400), %(company)s,
        (ARRAY['webhook.received','webhook.processed','appointment','function.received'])[1 + g %% 4],
        CASE WHEN g %% 50 = 0 THEN 'warning' ELSE 'info' END, 'Webhook received: call_ended',
        jsonb_build_object('receipt_id', g, 'call_id', 'call_bench_' || (1 + g %% %(calls)s))
    FROM generate_series(1::bigint, %(lines)s) g
    """,
]


def seed(reseed: bool):
    from django.db import connection

    from audit.models import ActivityLogEntry
    from retell_config.models import Agent
    from tenants.models import Company, Membership

    company = Company.objects.filter(slug=SLUG).first()
    if company is None:
        company = Company.objects.create(name="Analytics Bench Praxis", slug=SLUG)
    owner = _owner(company)
    # The activity lines are seeded last: with all of them there, an earlier seed finished.
    if ActivityLogEntry.objects.filter(company=company).count() >= LINES and not reseed:
        return company, owner
    print("Seeding (any earlier rows of the company dropped first) ...", flush=True)
    with connection.cursor() as cursor:
        for table in ("voice_liveturnlatency", "voice_call", "appointments_functioninvocation", "audit_webhookreceipt",
                      "audit_activitylogentry"):
            cursor.execute(f"DELETE FROM {table} WHERE company_id = %s", [company.pk])
    agents = [Agent.objects.get_or_create(company=company, agent_id=f"agent_bench_{n}",
                                          defaults={"name": f"Bench Agent {n}",
                                                    "dialog_engine": "openai" if n % 2 else "embedded"})[0].pk
              for n in range(5)]
    params = {"company": company.pk, "agents": agents, "agent_count": len(agents), "turns": TURNS_PER_CALL,
              "calls": CALLS, "receipts": RECEIPTS, "lines": LINES}
    with connection.cursor() as cursor:
        for sql in SEED_SQL:
            started = time.perf_counter()
            cursor.execute(sql, params)
            print(f"  {cursor.rowcount:>9,} rows in {time.perf_counter() - started:5.1f} s: "
                  f"{sql.split('INSERT INTO ')[1].split()[0]}", flush=True)
        cursor.execute("VACUUM ANALYZE")  # fresh statistics and visibility map, as autovacuum would leave them
    assert Membership.objects.filter(company=company, user=owner).exists()
    return company, owner


def _owner(company):
    from django.contrib.auth import get_user_model

    from tenants.models import Membership

    user, _ = get_user_model().objects.get_or_create(username="analytics-bench-owner",
                                                     defaults={"is_staff": True})
    Membership.objects.get_or_create(company=company, user=user, defaults={"role": "owner"})
    return user


def measure(client, pages: dict[str, str], rounds: int, warmup: int = 3) -> dict[str, list[float]]:
    times = {name: [] for name in pages}
    for n in range(warmup + rounds):
        # Interleaved: each round requests every page once, in a rotating order.
        names = list(pages)
        names = names[n % len(names):] + names[:n % len(names)]
        for name in names:
            started = time.perf_counter()
            response = client.get(pages[name])
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{name}: HTTP {response.status_code}")
            if n >= warmup:
                times[name].append(elapsed)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--long-ranges", action="store_true", help="also the Analytics page for 90 and 365 days")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database (it is created if missing).")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DJANGO_DEBUG"] = "false"
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    prepare_database()

    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    call_command("migrate", "--noinput", verbosity=0)
    started = time.perf_counter()
    company, owner = seed(args.reseed)
    print(f"Seeded company {company.pk} ready in {time.perf_counter() - started:.1f} s", flush=True)

    client = Client()
    client.force_login(owner)
    analytics = reverse("monitoring-analytics")
    today = datetime.now(company.zone).date()
    pages = {
        "calls change list": reverse("admin:voice_call_changelist"),
        "analytics (30 days)": f"{analytics}?company={company.pk}",
        "console first screen": f"{reverse('monitoring-console')}?company={company.pk}",
    }
    if args.long_ranges:
        for days in (90, 365):
            pages[f"analytics ({days} days)"] = f"{analytics}?company={company.pk}&first={today - timedelta(days=days - 1)}"
    times = measure(client, pages, args.rounds)
    base = p95(times["calls change list"])
    print(f"\n{args.rounds} interleaved rounds, server time in ms (in-process, DEBUG off)")
    print(f"{'page':<24}{'p50':>9}{'p95':>9}{'p95 / change list':>20}")
    for name, values in times.items():
        print(f"{name:<24}{statistics.median(values):>9.1f}{p95(values):>9.1f}{p95(values) / base:>19.2f}x")
    goal = p95(times["analytics (30 days)"])
    print(f"\nGoal: analytics p95 <= 3x change list and < 500 ms: {goal:.1f} ms, {goal / base:.2f}x -> "
          + ("met" if goal <= 3 * base and goal < 500 else "NOT met"))


if __name__ == "__main__":
    main()
