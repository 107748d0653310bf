"""End to end with a real Celery worker: Redis broker, committed PostgreSQL rows, a loopback backend."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from appointments.models import Appointment, Service
from audit.models import Delivery, WebhookReceipt
from retell_config.models import Agent
from tests.conftest import next_weekday_iso
from tests.factories import make_company
from tests.fakes import retell
from voice.models import Call

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
KEY = "key_webhook_e2e_0123456789"


def database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def worker(tmp_path, settings):
    """`celery -A config worker` on the test database; it stops by itself after 3 minutes at most."""
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
           "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, "DELIVERY_BACKOFF_BASE_SECONDS": "0.5",
           "DELIVERY_BACKOFF_MAX_SECONDS": "2", "DELIVERY_CIRCUIT_FAILURES": "1000",
           "DELIVERY_READ_TIMEOUT_SECONDS": "2", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "worker.log", "w+")
    process = subprocess.Popen(
        ["timeout", "180", sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
         "--hostname", f"e2e-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while "ready." not in (tmp_path / "worker.log").read_text() and time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        time.sleep(0.3)
    yield process, tmp_path / "worker.log"
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()


def wait_for(condition, log: Path, seconds: float = 45):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError("timed out; worker log tail:\n" + log.read_text()[-4000:])


def post(client, url: str, body: bytes):
    return client.post(url, data=body, content_type="application/json", **retell.headers(body, KEY))


def test_a_signed_call_ended_delivered_three_times_books_once_and_forwards_once_through_an_outage(
        client, worker, fake_backend):
    company = make_company("E2E Praxis", slug="e2e", retell_api_key=KEY, backend_url=fake_backend.url,
                           backend_api_key="backend-key-e2e",
                           opening_hours={d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")})
    Agent.objects.create(company=company, agent_id="agent_e2e", name="E2E")
    Service.objects.create(company=company, name="Kontrolle", duration_minutes=30)
    _, log = worker

    # During the call the caller books (answered at once by the custom-function endpoint).
    args = {"name": "Erika Muster", "date": next_weekday_iso(), "time": "11:00"}
    booking = json.dumps({"name": "collect_appointment_information", "args": args,
                          "call": retell.call_object("call_e2e", "agent_e2e", status="ongoing", turns=2)}).encode()
    assert post(client, "/api/mcp/retell/custom-function", booking).json()["ok"] is True

    # The backend is down; Retell delivers call_ended three times.
    fake_backend.fail(500)
    ended = retell.event_body("call_ended", retell.call_object("call_e2e", "agent_e2e"))
    assert [post(client, "/api/retell/webhook", ended).status_code for _ in range(3)] == [204, 204, 204]

    wait_for(lambda: Delivery.objects.filter(attempt_count__gte=2).count() == 2, log)
    fake_backend.recover()
    wait_for(lambda: Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count() == 2, log)
    time.sleep(2)  # any stray retry would arrive by now

    assert Call.objects.get().status == "ended"
    assert Appointment.objects.get().status == Appointment.Status.CONFIRMED
    assert sorted(WebhookReceipt.objects.filter(event_type="call_ended").values_list("status", flat=True)) == [
        "duplicate", "duplicate", "processed"]
    assert len(fake_backend.answered(200, "/api/appointments/confirm")) == 1
    assert len(fake_backend.answered(200, "/api/calls/record")) == 1
    assert len(fake_backend.answered(500)) >= 4
