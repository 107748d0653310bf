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
