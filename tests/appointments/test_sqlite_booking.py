"""The embedded run (SQLite, no exclusion constraint) also books one slot exactly once under concurrency.

SQLite runs in a subprocess, as `make run` would; the bookings there are serialised
by taking SQLite's write lock before the check (appointments.services).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

RACE = """
import json, threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from zoneinfo import ZoneInfo
import django
django.setup()
from django.db import connection
from appointments.handlers import run_custom_function
from appointments.models import Appointment, Service
from tenants.models import Company

company = Company.objects.create(name="Embedded", slug="embedded", opening_hours={"mon": [["08:00", "18:00"]]})
Service.objects.create(company=company, name="Kontrolle", duration_minutes=30)
now = datetime(2026, 3, 20, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
barrier = threading.Barrier(12)

def one(i):
    try:
        barrier.wait(timeout=30)
        return run_custom_function(company=company, name="collect_appointment_information",
                                   args={"name": f"Caller {i}", "date": "2026-03-23", "time": "10:00"},
                                   call_id=f"call_{i}", now=now)
    finally:
        connection.close()

with ThreadPoolExecutor(12) as pool:
    results = list(pool.map(one, range(12)))
print(json.dumps({"vendor": connection.vendor, "results": results,
                  "active": Appointment.objects.filter(status="pending").count()}))
"""


def test_twelve_concurrent_bookings_of_one_slot_on_sqlite_book_exactly_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(VOICEDESK_VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               DJANGO_SETTINGS_MODULE="config.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=120)

    run = subprocess.run([sys.executable, "-c", RACE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert run.returncode == 0, run.stderr[-3000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["vendor"] == "sqlite"
    assert outcome["active"] == 1
    assert sorted(r.get("error", "booked") for r in outcome["results"]) == ["booked"] + ["taken"] * 11


RETRIES = """
import json, threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from zoneinfo import ZoneInfo
import django
django.setup()
from django.db import connection
from appointments.handlers import run_custom_function
from appointments.models import Appointment, FunctionInvocation
from tenants.models import Company

company = Company.objects.create(name="Embedded", slug="embedded", opening_hours={"mon": [["08:00", "18:00"]]})
now = datetime(2026, 3, 20, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
barrier = threading.Barrier(8)

def one(i):
    try:
        barrier.wait(timeout=30)
        return run_custom_function(company=company, name="collect_appointment_information",
                                   args={"name": "Caller", "date": "2026-03-23", "time": "10:00"},
                                   call_id="call_retried", now=now)
    finally:
        connection.close()

with ThreadPoolExecutor(8) as pool:
    results = list(pool.map(one, range(8)))
print(json.dumps({"vendor": connection.vendor, "results": results, "appointments": Appointment.objects.count(),
                  "invocations": list(FunctionInvocation.objects.values_list("seq", "retries_answered"))}))
"""


def test_a_retry_racing_its_original_on_sqlite_runs_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(VOICEDESK_VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               DJANGO_SETTINGS_MODULE="config.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=120)

    run = subprocess.run([sys.executable, "-c", RETRIES], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)

    assert run.returncode == 0, run.stderr[-3000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["vendor"] == "sqlite"
    assert outcome["appointments"] == 1
    assert outcome["results"][0]["ok"] is True
    assert all(result == outcome["results"][0] for result in outcome["results"])
    assert outcome["invocations"] == [[1, 7]]
