import pytest

from config.celery import app as celery_app


@pytest.mark.django_db
def test_health_is_200_when_database_cache_and_broker_are_up(client):
    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["down"] == []
    assert {name: check["backend"] for name, check in body["checks"].items()} == {
        "database": "postgresql", "cache": "redis", "broker": "redis"}


@pytest.fixture
def redis_unreachable(settings):
    dead = "redis://127.0.0.1:1/0"
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": dead}}
    previous = celery_app.conf.broker_url
    celery_app.conf.broker_url = dead
    yield
    celery_app.conf.broker_url = previous


@pytest.mark.django_db
def test_health_is_503_naming_redis_when_redis_is_unreachable(client, redis_unreachable):
    response = client.get("/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["down"] == ["cache", "broker"]
    assert body["checks"]["cache"]["backend"] == "redis" and body["checks"]["cache"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert "cache (redis)" in body["message"]


@pytest.mark.django_db
def test_health_does_not_reveal_credentials_in_urls(client, settings, redis_unreachable):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://:hunter2secret@127.0.0.1:1/0"}}

    assert "hunter2secret" not in client.get("/health").content.decode()


@pytest.mark.django_db
def test_health_reports_the_delivery_backlog_and_dead_letters_without_turning_503(client, company_a):
    from datetime import timedelta

    from django.utils import timezone

    from audit.models import Delivery

    def delivery(key, status, age_minutes=0):
        row = Delivery.objects.create(company=company_a, kind="call_record", target_url="https://backend.test/x",
                                      payload={}, idempotency_key=key, status=status)
        Delivery.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(minutes=age_minutes))

    delivery("a", Delivery.Status.PENDING, age_minutes=10)
    delivery("b", Delivery.Status.FAILED, age_minutes=2)
    delivery("c", Delivery.Status.DEAD, age_minutes=60)
    delivery("d", Delivery.Status.SUCCEEDED, age_minutes=90)

    response = client.get("/health")

    assert response.status_code == 200
    backlog = response.json()["deliveries"]
    assert (backlog["pending"], backlog["dead"]) == (2, 1)
    assert 595 <= backlog["oldest_pending_age_s"] <= 660
