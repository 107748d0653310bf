"""Django's stock middleware with its hooks run on the event loop under ASGI.

Django's MiddlewareMixin hands every process_request, process_view and
process_response to a thread under ASGI, whether or not the hook does any I/O: with
the stack in settings.MIDDLEWARE that was fifteen thread hops per request, most of a
trivial request's cost. These hooks read headers and cookies and set headers; the
only ones that may reach the database are saving a session, storing messages, and
reading a form body for the CSRF check. Those still go to a thread, and only when
they have that work to do. Under WSGI (and Django's test Client) nothing changes.
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.middleware import clickjacking, common, csrf, security

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class HooksOnTheLoop:
    """Mixed in before a MiddlewareMixin subclass whose hooks are CPU-only unless
    `response_needs_thread` / `view_check_needs_thread` say otherwise."""

    def __init__(self, get_response) -> None:
        super().__init__(get_response)
        if iscoroutinefunction(self) and hasattr(self, "process_view"):
            # The handler wraps a sync process_view in sync_to_async; an instance
            # coroutine is taken as it is.
            sync_view_check = self.process_view

            async def process_view(request, callback, callback_args, callback_kwargs):
                arguments = (request, callback, callback_args, callback_kwargs)
                if self.view_check_needs_thread(request, callback):
                    return await sync_to_async(sync_view_check, thread_sensitive=True)(*arguments)
                return sync_view_check(*arguments)

            self.process_view = markcoroutinefunction(process_view)

    def response_needs_thread(self, request, response) -> bool:
        return False

    def view_check_needs_thread(self, request, callback) -> bool:
        return False

    async def __acall__(self, request):
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                return await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
            response = self.process_response(request, response)
        return response


class SecurityMiddleware(HooksOnTheLoop, security.SecurityMiddleware):
    pass


class SessionMiddleware(HooksOnTheLoop, sessions.SessionMiddleware):
    def response_needs_thread(self, request, response) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(HooksOnTheLoop, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(HooksOnTheLoop, csrf.CsrfViewMiddleware):
    def view_check_needs_thread(self, request, callback) -> bool:
        # An unsafe request to a protected view reads its form body (perhaps a file upload).
        return request.method not in SAFE_METHODS and not getattr(callback, "csrf_exempt", False)


class AuthenticationMiddleware(HooksOnTheLoop, auth.AuthenticationMiddleware):
    pass  # request.user stays lazy: it is loaded where it is used, in the view's thread


class MessageMiddleware(HooksOnTheLoop, messages.MessageMiddleware):
    def response_needs_thread(self, request, response) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)  # storing may load the session


class XFrameOptionsMiddleware(HooksOnTheLoop, clickjacking.XFrameOptionsMiddleware):
    pass
