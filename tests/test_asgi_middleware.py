"""Under ASGI the middleware chain runs on the event loop: no thread hop per request, except
for the hooks that have database work to do (saving a session, storing messages, reading a
protected form)."""

import pytest
from asgiref import sync
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.test import AsyncClient
from django.urls import path
from django.utils.module_loading import import_string

from tests.factories import make_user


def test_every_middleware_can_run_in_async_mode():
    sync_only = [path for path in settings.MIDDLEWARE if not getattr(import_string(path), "async_capable", False)]
    assert sync_only == []


@pytest.fixture
def thread_hops(monkeypatch):
    """The qualified names of the functions handed to a thread by sync_to_async."""
    hops: list[str] = []
    original = sync.SyncToAsync.__call__

    def counted(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counted)
    return hops


def middleware_hops(hops: list[str]) -> list[str]:
    return [name for name in hops if "Middleware" in name or name.startswith("HooksOnTheLoop")]


def test_a_request_makes_no_thread_hop_in_the_middleware(db, thread_hops):
    response = async_to_sync(AsyncClient().post)("/api/retell/webhook", data=b"{}", content_type="application/json")

    assert response.status_code == 400  # answered by the view, through the whole chain
    assert middleware_hops(thread_hops) == []


def test_an_admin_login_saves_its_session_and_messages_in_async_mode(db, thread_hops):
    user = make_user("async-admin", is_superuser=True)
    client = AsyncClient(enforce_csrf_checks=True)
    login_page = async_to_sync(client.get)("/admin/login/")
    token = login_page.cookies["csrftoken"].value

    logged_in = async_to_sync(client.post)("/admin/login/?next=/admin/", {
        "username": user.username, "password": "pw-for-tests-only", "csrfmiddlewaretoken": token,
        "next": "/admin/"})

    assert logged_in.status_code == 302 and logged_in["Location"] == "/admin/"
    assert "sessionid" in logged_in.cookies  # saved in a thread: the session was modified
    assert "SessionMiddleware.process_response" in " ".join(middleware_hops(thread_hops))
    assert async_to_sync(client.get)("/admin/").status_code == 200


def _add_a_message(request):
    messages.info(request, "Saved in a thread")
    return HttpResponse("added")


def _show_messages(request):
    return HttpResponse(" | ".join(str(m) for m in messages.get_messages(request)))


urlpatterns = [path("add", _add_a_message), path("show", _show_messages)]


def test_a_message_added_in_async_mode_is_shown_on_the_next_request(db, settings):
    settings.ROOT_URLCONF = __name__
    settings.MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
    client = AsyncClient()

    async_to_sync(client.get)("/add")

    assert async_to_sync(client.get)("/show").content == b"Saved in a thread"
    assert async_to_sync(client.get)("/show").content == b""


def test_a_forged_admin_post_is_still_refused_in_async_mode(db):
    client = AsyncClient(enforce_csrf_checks=True)
    response = async_to_sync(client.post)("/admin/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403


def test_the_request_id_is_set_and_returned_in_async_mode(db):
    response = async_to_sync(AsyncClient().get)("/health", headers={"X-Request-ID": "async-req-1"})
    assert response["X-Request-ID"] == "async-req-1"


def test_static_files_are_served_in_async_mode(settings):
    settings.WHITENOISE_USE_FINDERS = True
    response = async_to_sync(AsyncClient().get)("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert response.content.startswith(b"/*")
