"""HTTP adapters of retell_config outside the admin: the JSON-RPC 2.0 gateway."""

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from audit.actor import Actor
from tenants.services import api_token_authenticate

from .gateway import UNAUTHORIZED, Context, app_error, dispatcher
from .protocols import jsonrpc


@csrf_exempt
@require_POST
def gateway(request: HttpRequest) -> HttpResponse:
    """POST /api/mcp/gateway: JSON-RPC 2.0 with `Authorization: Bearer <API token>`."""
    header = request.headers.get("Authorization", "")
    token = api_token_authenticate(header[7:].strip()) if header.startswith("Bearer ") else None
    if token is None:
        error = app_error(UNAUTHORIZED, "send a valid API token as Authorization: Bearer <token>")
        response = JsonResponse(jsonrpc.error_object(None, error), status=401)
        response["WWW-Authenticate"] = 'Bearer realm="voicedesk-gateway"'
        return response
    request.user = token.user
    request.auth_token = token
    ctx = Context(token.user, Actor.from_request(request))
    answer = jsonrpc.handle(request.body, dispatcher(ctx))
    if answer is None:
        return HttpResponse(status=204)  # notifications only: nothing to answer
    return HttpResponse(json.dumps(answer), content_type="application/json")
