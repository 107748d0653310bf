"""A request id for every request: taken from X-Request-ID when it is sane, made
otherwise, returned in the response and stamped on log lines (audit.log_filters) and
audit entries."""

import contextvars
import re
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from django.conf import settings

from .storable import ip_or_none

_current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def current_request_id() -> str:
    return _current_request_id.get()


def client_ip(request) -> str | None:
    """The client's IP address (a string an inet column takes), or None: the address NUM_PROXIES
    trusted proxies saw in X-Forwarded-For, else REMOTE_ADDR.

    An X-Forwarded-For entry that is not an IP address was not written by our proxy (a client
    that reached us around it, or a forged header): the peer's address is used instead.
    """
    proxies = getattr(settings, "NUM_PROXIES", 0)
    if proxies:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if len(forwarded) >= proxies:
            address = ip_or_none(forwarded[-proxies])
            if address is not None:
                return address
    return ip_or_none(request.META.get("REMOTE_ADDR"))


class RequestIdMiddleware:
    # Runs in the ASGI handler's own mode: a sync-only middleware would cost every
    # request two thread hops through the one thread-sensitive executor.
    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    @staticmethod
    def _start(request):
        supplied = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = supplied if _SANE_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        return _current_request_id.set(request.request_id)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        token = self._start(request)
        try:
            response = self.get_response(request)
        finally:
            _current_request_id.reset(token)
        response["X-Request-ID"] = request.request_id
        return response

    async def _acall(self, request):
        token = self._start(request)
        try:
            response = await self.get_response(request)
        finally:
            _current_request_id.reset(token)
        response["X-Request-ID"] = request.request_id
        return response
