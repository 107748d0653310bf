"""Rate limits on the public endpoints: one table of limits, counted by django-ratelimit in the
default cache (Redis in production, local memory in the embedded run).

A limit is named `<endpoint>.<what it counts by>` (RATE_LIMITS in settings; "120/m" means 120
requests per minute, in windows of the period): `address` counts the client's IP address
(`audit.middleware.client_ip`), `token` an API token, `agent` an agent, `company` a company. A
company's `rate_limits` (set by a superuser in the admin) replaces the platform's rate of the limits
that count by company or agent for that company (COMPANY_LIMITS).

Retell sends every company's traffic from its published addresses (RETELL_WEBHOOK_IPS): those are
never limited by address, only by agent and company, whose defaults are far above a practice's
call volume.

An over-limit request is answered 429 with `Retry-After` (seconds until its window ends) and
`{"error": {"code": "rate_limited", "message": …}}`; the caller of `check` decides what else
happens (a provider webhook is still stored as a receipt first).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from django.conf import settings
from django.http import JsonResponse
from django_ratelimit.core import get_usage
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from audit.middleware import client_ip
from tenants.validators import COMPANY_LIMITS, RATE

# What each limit protects, in the words of the README's table.
LIMITS = {
    "webhook.address": "provider webhooks (Retell, ElevenLabs, Twilio) per client address",
    "webhook.company": "provider webhooks per company",
    "function.address": "custom-function calls per client address",
    "function.agent": "custom-function calls per agent",
    "gateway.address": "JSON-RPC gateway requests per client address",
    "gateway.token": "JSON-RPC gateway requests per API token",
    "api.address": "REST API requests per client address",
    "api.credential": "REST API requests per API token (or signed-in user)",
    "mcp.address": "MCP requests per client address",
    "mcp.token": "MCP requests per API token",
    "socket.address": "socket handshakes (Retell LLM socket, Twilio media stream) per client address",
    "socket.credential": "socket handshakes per agent socket token or stream",
    "admin_login.address": "admin sign-in posts per client address (failed passwords: django-axes)",
}
def rate_of(name: str, company=None) -> str:
    """The rate of limit `name` ("600/m"), the company's own when it set one."""
    own = getattr(company, "rate_limits", None) or {}
    if name in COMPANY_LIMITS and isinstance(own.get(name), str) and RATE.match(own[name]):
        return own[name]
    return settings.RATE_LIMITS[name]


@dataclass(frozen=True)
class Refused:
    """A request over limit `name`: try again after `retry_after` seconds."""
    name: str
    rate: str
    retry_after: int

    @property
    def message(self) -> str:
        return (f"Too many requests: the limit {self.name} allows {self.rate}. "
                f"Try again in {self.retry_after} s.")


def check(name: str, value: str | None, *, company=None) -> Refused | None:
    """Count one request against limit `name` for `value` (an address, a token id, ...): None
    while within the limit, else a Refused. An empty value, a disabled limit ("" or
    RATE_LIMITS_ENABLED off) and a cache that cannot be reached count nothing: the limits must
    never take down the endpoints they protect (RATELIMIT_FAIL_OPEN)."""
    if not value or not settings.RATE_LIMITS_ENABLED:
        return None
    rate = rate_of(name, company)
    if not rate:
        return None
    usage = get_usage(None, group=name, key=lambda group, request: str(value), rate=rate, increment=True)
    if usage is None or not usage["should_limit"]:
        return None
    return Refused(name=name, rate=rate, retry_after=max(1, int(usage["time_left"])))


def check_address(name: str, address: str | None, *, retell: bool = False) -> Refused | None:
    """`check` by client address; Retell's published addresses are not counted where `retell`."""
    if retell and address in settings.RETELL_WEBHOOK_IPS:
        return None
    return check(name, address)


def too_many(refused: Refused) -> JsonResponse:
    """429 with Retry-After and the project's JSON error."""
    response = JsonResponse({"error": {"code": "rate_limited", "message": refused.message}}, status=429)
    response["Retry-After"] = str(refused.retry_after)
    return response


# --- the admin sign-in --------------------------------------------------------------------------
def admin_login_limited(view):
    """The admin's login view, its POSTs limited per client address (admin_login.address); failed
    passwords per user name and address are django-axes' (AXES_*), see `axes_lockout`."""
    @functools.wraps(view)
    def limited(request, *args, **kwargs):
        if request.method == "POST":
            refused = check("admin_login.address", client_ip(request))
            if refused is not None:
                return too_many(refused)
        return view(request, *args, **kwargs)

    return limited


def axes_lockout(request, original_response=None, credentials=None) -> JsonResponse:
    """django-axes' answer to a sign-in while its user name and address are locked out (AXES_LOCKOUT_CALLABLE)."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds()) if settings.AXES_COOLOFF_TIME else 0
    response = JsonResponse({"error": {"code": "login_locked", "message": (
        f"Too many failed sign-ins for this user name from this address: try again in {seconds} s."
        if seconds else "Too many failed sign-ins for this user name from this address; ask an administrator.")}},
        status=429)
    if seconds:
        response["Retry-After"] = str(seconds)
    return response


# --- the REST API (DRF throttling) -------------------------------------------------------------------
class _Throttle(SimpleRateThrottle):
    """DRF's throttle with its rate read from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] when a request
    comes (DRF reads it once, when the class is made), its cache keys under the limits' own prefix."""

    @property
    def cache_format(self) -> str:
        return getattr(settings, "RATELIMIT_CACHE_PREFIX", "rl:") + "throttle_%(scope)s_%(ident)s"

    def get_rate(self):
        if not settings.RATE_LIMITS_ENABLED:
            return None
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope) or None

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


class AddressThrottle(_Throttle):
    """Every REST API request, per client address (api.address)."""
    scope = "api.address"

    def get_cache_key(self, request, view):
        address = client_ip(request)
        return self.cache_format % {"scope": self.scope, "ident": address} if address else None


class CredentialThrottle(_Throttle):
    """Authenticated REST API requests, per API token, or per user when signed in to the admin (api.credential)."""
    scope = "api.credential"

    def get_cache_key(self, request, view):
        if not getattr(request.user, "is_authenticated", False):
            return None
        token = getattr(request, "auth", None)
        ident = f"token{token.pk}" if getattr(token, "key_hash", None) else f"user{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


# --- socket handshakes (ASGI) --------------------------------------------------------------------------
class _Peer:
    """What `client_ip` reads of a request, taken from an ASGI scope."""

    def __init__(self, scope) -> None:
        headers = dict(scope.get("headers") or [])
        client = scope.get("client") or (None, None)
        self.META = {"REMOTE_ADDR": client[0] or "",
                     "HTTP_X_FORWARDED_FOR": headers.get(b"x-forwarded-for", b"").decode("latin-1")}


def scope_address(scope) -> str | None:
    """The client address of an ASGI scope, as `client_ip` tells it of a request."""
    return client_ip(_Peer(scope))


class SocketHandshakeLimit:
    """ASGI middleware before the WebSocket routes: a handshake over socket.address (Retell's
    addresses not counted) or socket.credential (a Retell LLM socket path's credential segment: an
    agent's socket token, or the call id of the plain path) is refused before any consumer runs: 429 with
    Retry-After and the JSON error where the server can answer a handshake with HTTP
    (the ASGI "websocket.http.response" extension), else a close before accept (HTTP 403)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        refused = self._refused(scope)
        if refused is None:
            return await self.app(scope, receive, send)
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if "websocket.http.response" in (scope.get("extensions") or {}):
            body = json.dumps({"error": {"code": "rate_limited", "message": refused.message}}).encode()
            await send({"type": "websocket.http.response.start", "status": 429,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"retry-after", str(refused.retry_after).encode())]})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})

    @staticmethod
    def _refused(scope) -> Refused | None:
        refused = check_address("socket.address", scope_address(scope), retell=True)
        if refused is not None:
            return refused
        # /retell-llm/<token>/<call id> and /retell-llm/<call id>: the segment after the kind (hashed in
        # the cache key by django-ratelimit, never stored as sent). The Twilio media stream's path names no
        # credential (its one-time token comes in its first frame): counted by address only.
        parts = [p for p in scope.get("path", "").split("/") if p]
        if len(parts) >= 2 and parts[0] == "retell-llm":
            return check("socket.credential", "/".join(parts[:2]))
        return None
