"""What a running prompt experiment costs a call's start, and how long the results page's
statistics take (not a test: prints figures, as ratios against a baseline run here).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/voicedesk_bench .venv/bin/python bench/experiments_call_start.py

Migrates the database named by DATABASE_URL and makes a throw-away company and agent. Times
voice.selectors.call_context (what both call paths run when a call starts) for calls whose
row holds the caller's number: first with no experiment (the baseline), then with a running
two-variant experiment (assignment, the variant's texts, the row's variant written). Then
seeds finished calls and times experiments.selectors.experiment_results. Removes its company.
"""

import os
import secrets
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from audit.actor import Actor  # noqa: E402
from experiments.selectors import experiment_results  # noqa: E402
from experiments.services import experiment_create, experiment_start  # noqa: E402
from retell_config.models import Agent  # noqa: E402
from tenants.models import Company  # noqa: E402
from voice.models import Call  # noqa: E402
from voice.selectors import call_context  # noqa: E402

CALLS = 300
ACTOR = Actor.system("bench")


def calls_with_numbers(company, agent, prefix: str) -> list[str]:
    ids = [f"{prefix}_{i}" for i in range(CALLS)]
    Call.objects.bulk_create([Call(company=company, agent=agent, call_id=call_id, from_number=f"+49151{i:07d}")
                              for i, call_id in enumerate(ids)])
    return ids


def timed(agent, ids: list[str]) -> list[float]:
    spent = []
    for call_id in ids:
        began = time.perf_counter()
        call_context(agent=agent, call_id=call_id)
        spent.append((time.perf_counter() - began) * 1000)
    return spent


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("Point DATABASE_URL at PostgreSQL.")
    call_command("migrate", verbosity=0)
    company = Company.objects.create(name="Bench Praxis", slug=f"bench-{secrets.token_hex(4)}")
    try:
        agent = Agent.objects.create(company=company, agent_id=f"agent_bench_{secrets.token_hex(4)}", name="Bench",
                                     general_prompt="Live prompt.", begin_message="Guten Tag.")
        timed(agent, calls_with_numbers(company, agent, "warm"))   # warm caches and connections
        baseline = statistics.median(timed(agent, calls_with_numbers(company, agent, "base")))
        experiment = experiment_create(actor=ACTOR, agent=agent, name="bench", variants=[
            {"name": "A", "weight": 50}, {"name": "B", "weight": 50, "begin_message": "Hallo!"}])
        experiment_start(actor=ACTOR, experiment=experiment)
        running = statistics.median(timed(agent, calls_with_numbers(company, agent, "exp")))
        print(f"call_context p50, no experiment (baseline)   {baseline:6.2f} ms   1.00x")
        print(f"call_context p50, running experiment          {running:6.2f} ms   {running / baseline:.2f}x")

        ended = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
        a, b = experiment.variants.order_by("pk")
        Call.objects.bulk_create([
            Call(company=company, agent=agent, call_id=f"done_{i}", from_number=f"+49152{i:07d}", ended_at=ended,
                 duration_ms=60_000 + i % 50 * 1000, disconnection_reason="user_hangup",
                 experiment_variant=a if i % 2 else b, live_turns=[{"response_id": 1, "first_chunk_ms": 120.0}])
            for i in range(10_000)])
        began = time.perf_counter()
        results = experiment_results(experiment=experiment)
        spent = (time.perf_counter() - began) * 1000
        print(f"experiment_results over {results.calls} calls        {spent:6.1f} ms   "
              f"{spent / baseline:.0f}x one call start")
    finally:
        Call.objects.filter(company=company).delete()
        company.delete()


if __name__ == "__main__":
    main()
