"""Shared fixtures. The suite runs against real PostgreSQL and Redis (see `make test`)."""

import socket
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from tests.factories import make_company, make_member


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_sessionstart(session):
    problems = []
    database = settings.DATABASES["default"]
    if connection.vendor != "postgresql":
        problems.append("DATABASE_URL does not point at PostgreSQL (the tests need it; `make test` sets it).")
    elif not _reachable(f"postgres://{database.get('HOST') or '127.0.0.1'}:{database.get('PORT') or 5432}", 5432):
        problems.append(f"PostgreSQL is not reachable at {database.get('HOST')}:{database.get('PORT') or 5432}. "
                        "Start it, e.g. `pg_ctlcluster 15 main start` or `docker compose up -d postgres`.")
    if not settings.REDIS_URL:
        problems.append("REDIS_URL is not set (the tests need Redis; `make test` sets it).")
    elif not _reachable(settings.REDIS_URL, 6379):
        problems.append(f"Redis is not reachable at {urlsplit(settings.REDIS_URL).hostname}:"
                        f"{urlsplit(settings.REDIS_URL).port or 6379}. Start it, e.g. "
                        "`redis-server --daemonize yes` or `docker compose up -d redis`.")
    if problems:
        pytest.exit("Cannot run the tests:\n  " + "\n  ".join(problems), returncode=3)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _retell_api_offline(settings):
    """No test reaches the real Retell API: pages that ask it (the voice list) find nothing listening
    and fall back at once; tests that talk to Retell start the loopback fake, which sets the URL."""
    from tests.fakes import free_port

    settings.RETELL_BASE_URL = f"http://127.0.0.1:{free_port()}"
    settings.RETELL_MAX_RETRIES = 0


@pytest.fixture(scope="session", autouse=True)
def _empty_cache(django_db_setup):
    """Company ids start again with each test database: forget what a previous run cached for them
    (circuits, Retell voice lists). The cache (REDIS_URL's database) is the tests' own."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def company_a(db):
    return make_company("Alpha Praxis", slug="alpha")


@pytest.fixture
def company_b(db):
    return make_company("Beta Dental", slug="beta", timezone="America/New_York", language="en")


@pytest.fixture
def owner_a(company_a):
    return make_member(company_a, "owner")


@pytest.fixture
def owner_client(client, owner_a):
    client.force_login(owner_a)
    return client


# --- Webhooks and deliveries (issue 4) ------------------------------------------------
@pytest.fixture
def sql_everywhere():
    """The SQL run on database connections opened from now on, in any thread: the receipt
    writer's too (it is restarted, so that it opens a new one)."""
    from django.db.backends.signals import connection_created

    from audit.receipts import receipt_writer_stop

    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    def watch(sender, connection, **kwargs):
        connection.execute_wrappers.append(record)

    receipt_writer_stop()
    connection_created.connect(watch)
    yield statements
    connection_created.disconnect(watch)
    receipt_writer_stop()  # its connection carries the recorder: the next store opens a clean one


@pytest.fixture
def fake_backend():
    from tests.fakes.backend import FakeBackend

    backend = FakeBackend()
    yield backend
    backend.close()


@pytest.fixture
def celery_eager():
    """Tasks run in the calling thread (the end-to-end tests use a real worker instead)."""
    from config.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


def _fresh_broker_connections() -> None:
    """Forget the app's pools so the next publish uses the pools of the configured URL."""
    from config.celery import app

    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def broker_down():
    """The Celery broker is unreachable (a port nobody listens on)."""
    from config.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    _fresh_broker_connections()
    yield
    app.conf.broker_url = previous
    _fresh_broker_connections()


RETELL_KEY = "key_webhook_alpha_0123456789"


@pytest.fixture
def retell_agent(company_a):
    from retell_config.models import Agent

    company_a.retell_api_key = RETELL_KEY
    company_a.save()
    return Agent.objects.create(company=company_a, agent_id="agent_abc123", name="Main Reception Agent")


@pytest.fixture
def bookable_agent(retell_agent):
    """company_a open on weekdays 8-18 with one service, so callers can book."""
    from appointments.models import Service

    company = retell_agent.company
    company.opening_hours = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    company.save()
    Service.objects.create(company=company, name="Kontrolle", duration_minutes=30)
    return retell_agent


def next_weekday_iso(days_ahead: int = 2) -> str:
    from datetime import date, timedelta

    day = date.today() + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day.isoformat()


@pytest.fixture(autouse=True)
def _fresh_webhook_agent_cache():
    """Each test's agents are new rows: forget what an earlier test's webhooks looked up."""
    from voice.selectors import webhook_agent_forget

    webhook_agent_forget()
    yield
    webhook_agent_forget()


@pytest.fixture(scope="session", autouse=True)
def _receipt_writer_stopped_before_the_test_database_goes(django_db_setup):
    """The receipt writer thread keeps a connection open; close it before the test database is dropped."""
    yield
    from audit.receipts import receipt_writer_stop

    receipt_writer_stop()


@pytest.fixture(autouse=True)
def _own_rate_limit_counters(settings):
    """Each test counts its requests from zero (config.ratelimits): the limits stay on, but what
    earlier tests sent from 127.0.0.1 in the same minute is not held against this one."""
    import uuid

    settings.RATELIMIT_CACHE_PREFIX = f"rl:{uuid.uuid4().hex[:12]}:"
