"""Analytics: each selector's aggregate against the figures computed while the rows were
written (tests.monitoring.analytics_data), on PostgreSQL here and on SQLite in a subprocess;
scoping; and the page's charts."""

import json
import os
import re
import subprocess
import sys
from datetime import date, datetime, time
from pathlib import Path

import numpy
import pytest
from guardian.shortcuts import assign_perm

from monitoring.selectors import analytics
from retell_config.models import Agent
from tests.factories import make_member
from tests.monitoring.analytics_data import figures, seed
from voice.models import Call, LiveTurnLatency
from voice.services import call_record_live_turns

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_every_chart_aggregate_matches_the_figures_of_the_rows_written():
    owner, span, expected = seed()

    actual = figures(owner, span)

    for name, want in expected.items():
        _approx_nested(actual[name], want)


def _approx_nested(actual, want) -> bool:
    if isinstance(want, dict):
        assert set(actual) == set(want), (sorted(actual), sorted(want))
        return all(_approx_nested(actual[key], value) for key, value in want.items())
    assert actual == pytest.approx(want, rel=1e-9, abs=1e-6)
    return True


def test_the_python_percentile_is_postgresqls_percentile_cont():
    rng = numpy.random.default_rng(7)
    for size in (1, 2, 3, 10, 101):
        values = sorted(rng.uniform(0, 1000, size).tolist())
        for fraction in (0.0, 0.5, 0.95, 1.0):
            assert analytics.interpolated(values, fraction) == pytest.approx(numpy.percentile(values, fraction * 100))
    assert analytics.interpolated([], 0.5) is None


@pytest.mark.django_db
def test_a_member_limited_to_one_agent_counts_only_its_calls():
    owner, span, expected = seed()
    main = Agent.objects.get(agent_id="agent_an_main")
    limited = make_member(span.company, "viewer", limited=True)
    assign_perm("retell_config.view_agent", limited, main)

    conversion = analytics.booking_conversion(user=limited, span=span)
    per_agent = analytics.turn_latency(user=limited, span=span)["agents"]

    assert set(conversion) == {"Main Agent"}
    assert conversion["Main Agent"]["calls"] == expected["booking_conversion"]["Main Agent"]["calls"]
    assert set(per_agent) == {"Main Agent"}
    assert sum(analytics.calls_per_day(user=limited, span=span).values()) == conversion["Main Agent"]["calls"]


@pytest.mark.django_db
def test_a_turn_counts_under_the_engine_that_answered_it_not_the_agents_setting_today():
    owner, span, expected = seed()
    main = Agent.objects.get(agent_id="agent_an_main")
    call = Call.objects.filter(agent=main, test_origin="").first()
    at = datetime.combine(span.first, time(11), tzinfo=span.company.zone).timestamp()
    call_record_live_turns(company=span.company, agent=main, call_id=call.call_id, transcript=[],
                           turns=[{"response_id": 99, "started_at": at, "first_chunk_ms": 321.0, "complete_ms": 654.0}],
                           dialog_engine="openai")
    main.dialog_engine = "openai"
    main.save()  # changing the setting later moves no turn answered before

    engines = analytics.turn_latency(user=owner, span=span)["engines"]

    assert engines["embedded"]["first"]["n"] == expected["turn_latency"]["engines"]["embedded"]["first"]["n"]
    assert engines["openai"]["first"]["n"] == expected["turn_latency"]["engines"]["openai"]["first"]["n"] + 1
    assert LiveTurnLatency.objects.filter(dialog_engine="openai", call__agent=main).count() == 1


@pytest.mark.django_db
def test_a_range_is_the_companys_local_days_and_bad_ranges_are_refused():
    _, span, _ = seed()
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        analytics.range_parse(company=span.company, first="2026-13-01")
    with pytest.raises(ValueError, match="before"):
        analytics.range_parse(company=span.company, first="2026-11-05", last="2026-11-01")
    with pytest.raises(ValueError, match="at most"):
        analytics.range_parse(company=span.company, first="2024-01-01", last="2026-01-01")
    default = analytics.range_parse(company=span.company, today=date(2026, 11, 8))
    assert (default.first, default.last) == (date(2026, 10, 10), date(2026, 11, 8))
    # Local midnights: CEST on the first day, CET after the clocks went back.
    assert default.start.isoformat() == "2026-10-10T00:00:00+02:00"
    assert default.end.isoformat() == "2026-11-09T00:00:00+01:00"


@pytest.mark.django_db
def test_the_page_draws_every_chart_as_svg_without_script_and_without_another_companys_rows(client):
    owner, span, _ = seed()
    client.force_login(owner)

    page = client.get("/admin/monitoring/analytics/", {"company": span.company.pk, "first": span.first.isoformat(),
                                                       "last": span.last.isoformat()})

    html = page.content.decode()
    assert page.status_code == 200
    figures_html = re.findall(r'<figure class="mon-chart">(.*?)</figure>', html, re.S)
    assert len(figures_html) == 9
    assert all(f.startswith("<svg") and "<script" not in f for f in figures_html)
    for title in ("Webhooks per event type", "Calls per day", "Call outcomes", "Booking conversion per agent",
                  "Live-turn latency per dialog engine"):
        assert title in html
    assert "Main Agent" in html and "Beta Agent" not in html
    assert client.get("/admin/monitoring/analytics/", {"company": span.company.pk + 1}).status_code == 404
    bad = client.get("/admin/monitoring/analytics/", {"company": span.company.pk, "first": "yesterday"})
    assert "Dates are YYYY-MM-DD" in bad.content.decode()


SQLITE_RUN = """
import json
import django
django.setup()
from django.db import connection
from tests.monitoring.analytics_data import figures, seed
from voice.models import Call, LiveTurnLatency
from voice.services import call_record_live_turns
owner, span, expected = seed()
print(json.dumps({"vendor": connection.vendor, "actual": figures(owner, span), "expected": expected}))
"""


@pytest.mark.e2e
def test_the_embedded_sqlite_run_computes_the_same_figures(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(VOICEDESK_VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               DJANGO_SETTINGS_MODULE="config.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=180)

    run = subprocess.run([sys.executable, "-c", SQLITE_RUN], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)

    assert run.returncode == 0, run.stderr[-3000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["vendor"] == "sqlite"
    for name, want in outcome["expected"].items():
        _approx_nested(outcome["actual"][name], want)
