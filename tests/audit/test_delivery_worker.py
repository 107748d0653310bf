"""Deliveries in a real Celery worker: a try it cannot make ends at once and its key never reaches the
worker's log; a worker killed mid-try leaves a try that the sweeper records when it finds it."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from audit.deliveries import deliveries_sweep, delivery_enqueue, delivery_send
from audit.models import Delivery
from tests.factories import make_company
from tests.test_e2e_webhooks import database_url, wait_for

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def start_worker(tmp_path, settings):
    """Starts `celery -A config worker` on the test database; each stops by itself after 3 minutes at most."""
    started = []

    def start(**env_overrides) -> tuple[subprocess.Popen, Path]:
        env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
               "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, "DELIVERY_CIRCUIT_FAILURES": "1000",
               "PYTHONUNBUFFERED": "1", **env_overrides}
        log_path = tmp_path / f"worker-{len(started)}.log"
        log = open(log_path, "w+")
        process = subprocess.Popen(
            ["timeout", "180", sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "DEBUG",
             "--hostname", f"deliveries-{os.getpid()}-{len(started)}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started.append((process, log))
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.3)
        return process, log_path

    yield start
    for process, log in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def enqueue(company, key: str) -> Delivery:
    delivery, _ = delivery_enqueue(company=company, kind=Delivery.Kind.CALL_RECORD,
                                   target_url=company.backend_url + "/api/calls/record",
                                   payload={"call_id": key}, idempotency_key=key)
    return delivery


def test_a_stored_key_with_an_en_dash_dead_letters_its_delivery_and_never_reaches_the_workers_log(
        start_worker, fake_backend):
    # given a key saved before keys were checked: an en dash pasted by accident
    company = make_company("Dash Praxis", slug="dash", backend_url=fake_backend.url,
                           backend_api_key="backend–key-0123456789abcdef")
    _, log = start_worker()

    delivery = enqueue(company, "call_record:call_dash")

    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.DEAD, log)
    [attempt] = Delivery.objects.get(pk=delivery.pk).attempts.all()
    assert "Authorization header" in attempt.error
    assert fake_backend.requests == []
    time.sleep(0.5)  # the worker's last lines are written
    assert "0123456789abcdef" not in log.read_text()


def test_a_worker_killed_mid_try_leaves_a_try_that_the_sweeper_records_and_sends_again(
        start_worker, fake_backend, settings):
    company = make_company("Kill Praxis", slug="kill", backend_url=fake_backend.url, backend_api_key="backend-key-kill")
    fake_backend.hang(60)
    process, log = start_worker(DELIVERY_READ_TIMEOUT_SECONDS="60")
    delivery = enqueue(company, "call_record:call_kill")
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.IN_FLIGHT, log)

    os.killpg(process.pid, signal.SIGKILL)  # kill -9 mid-try
    process.wait()

    assert not Delivery.objects.get(pk=delivery.pk).attempts.exists()
    fake_backend.recover()
    deliveries_sweep(now=timezone.now() + timedelta(seconds=settings.DELIVERY_STUCK_AFTER_SECONDS + 60))
    delivery.refresh_from_db()
    [lost] = delivery.attempts.all()
    assert lost.number == 1 and lost.status_code is None and "lost" in lost.error
    assert delivery.status == Delivery.Status.FAILED

    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())  # its backoff has passed
    delivery_send(delivery_id=delivery.pk)  # what the next worker does with the task the sweeper queued

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert [(a.number, a.status_code) for a in delivery.attempts.all()] == [(1, None), (2, 200)]
