"""Under ASGI the whole middleware chain runs on the event loop (no thread hop per request)."""

from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import AsyncClient
from django.utils.module_loading import import_string


def test_every_middleware_can_run_in_async_mode():
    sync_only = [path for path in settings.MIDDLEWARE if not getattr(import_string(path), "async_capable", False)]
    assert sync_only == []


def test_the_request_id_is_set_and_returned_in_async_mode(db):
    response = async_to_sync(AsyncClient().get)("/health", headers={"X-Request-ID": "async-req-1"})
    assert response["X-Request-ID"] == "async-req-1"


def test_static_files_are_served_in_async_mode(settings):
    settings.WHITENOISE_USE_FINDERS = True
    response = async_to_sync(AsyncClient().get)("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert response.content.startswith(b"/*")
