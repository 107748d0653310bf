"""HTTP adapters of retell_config outside the admin: the JSON-RPC 2.0 gateway."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from audit.actor import Actor
from audit.middleware import client_ip
from config import ratelimits
from tenants.services import api_token_authenticate

from .gateway import RATE_LIMITED, UNAUTHORIZED, Context, app_error, dispatcher
from .protocols import jsonrpc

# What was wrong with the HTTP message itself, rather than with one call in it.
MESSAGE_ERRORS = (jsonrpc.PARSE_ERROR, jsonrpc.INVALID_REQUEST)


def _json(answer: dict | list, status: int = 200) -> HttpResponse:
    return HttpResponse(jsonrpc.encode(answer), status=status, content_type="application/json")


def _too_many(refused: ratelimits.Refused) -> HttpResponse:
    error = app_error(RATE_LIMITED, refused.message, limit=refused.name, retry_after=refused.retry_after)
    response = _json(jsonrpc.error_object(None, error), status=429)
    response["Retry-After"] = str(refused.retry_after)
    return response


@csrf_exempt
def gateway(request: HttpRequest) -> HttpResponse:
    """POST /api/mcp/gateway: JSON-RPC 2.0 with `Authorization: Bearer <API token>`.

    Answers, always JSON (but 204): 405 (not a POST; Allow: POST), 429 (over gateway.address
    or gateway.token, with Retry-After; config.ratelimits), 401 (no valid token),
    413 (a body over GATEWAY_MAX_BODY_BYTES), 400 (a parse error or an invalid request,
    batch size and nesting depth included), 200 (results and the errors of single calls),
    204 (notifications only).
    """
    if request.method != "POST":
        response = _json(jsonrpc.error_object(None, jsonrpc.RpcError(
            jsonrpc.INVALID_REQUEST, data={"reason": "the gateway answers POST requests only"})), status=405)
        response["Allow"] = "POST"
        return response
    refused = ratelimits.check("gateway.address", client_ip(request))
    if refused is not None:
        return _too_many(refused)
    header = request.headers.get("Authorization", "")
    token = api_token_authenticate(header[7:].strip()) if header.startswith("Bearer ") else None
    if token is not None and (refused := ratelimits.check("gateway.token", str(token.pk))) is not None:
        return _too_many(refused)
    if token is None:
        error = app_error(UNAUTHORIZED, "send a valid API token as Authorization: Bearer <token>")
        response = _json(jsonrpc.error_object(None, error), status=401)
        response["WWW-Authenticate"] = 'Bearer realm="voicedesk-gateway"'
        return response
    limit = settings.GATEWAY_MAX_BODY_BYTES
    body = request.read(limit + 1)  # never more than the limit in memory, whatever Content-Length says
    if len(body) > limit:
        return _json(jsonrpc.error_object(None, jsonrpc.RpcError(
            jsonrpc.INVALID_REQUEST, data={"reason": f"the body is larger than {limit} bytes"})), status=413)
    request.user = token.user
    request.auth_token = token
    ctx = Context(token.user, Actor.from_request(request))
    answer = jsonrpc.handle(body, dispatcher(ctx), max_batch=settings.GATEWAY_MAX_BATCH,
                            max_depth=settings.GATEWAY_MAX_DEPTH)
    if answer is None:
        return HttpResponse(status=204)  # notifications only: nothing to answer
    message_error = isinstance(answer, dict) and answer.get("error", {}).get("code") in MESSAGE_ERRORS
    return _json(answer, status=400 if message_error else 200)
