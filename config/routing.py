"""WebSocket routes. Each app's consumers are added here as the live call paths land.

A path no route takes is refused at the handshake (HTTP 403), never an error: Channels'
router raises on an unrouted path, which the ASGI server answers 500 and logs with the
path, and a path under /retell-llm/ may carry an agent's socket token.
"""

import logging

from django.urls import re_path

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator

from monitoring.consumers import ConsoleConsumer
from voice.consumers import CallSimulatorConsumer, RetellLLMConsumer, TwilioMediaConsumer

logger = logging.getLogger(__name__)

# Retell appends "/{call_id}" to the agent's llm_websocket_url, so a URL configured with a
# trailing slash arrives with two: the slashes between the parts are one separator.
TOKEN = r"(?P<token>[A-Za-z0-9_-]{16,128})"
CALL_ID = r"(?P<call_id>[A-Za-z0-9_-]{1,128})"


async def refuse(scope, receive, send) -> None:
    """Any path no route takes: the handshake is refused (HTTP 403), with one line in the
    log that names no path (it may hold a token)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if scope.get("path", "").lstrip("/").startswith("retell-llm"):
        logger.warning("Retell LLM socket refused: the path is not /retell-llm/<agent socket token>/<call id>. "
                       "Check the agent's llm_websocket_url: it ends with the token, without a dot, slash or "
                       "segment after it.")
    else:
        logger.info("WebSocket refused: no route for the path.")
    await send({"type": "websocket.close", "code": 1008})


websocket_urlpatterns: list = [
    # /retell-llm/<agent socket token>/<call_id>
    re_path(rf"^retell-llm/+{TOKEN}/+{CALL_ID}/?$", RetellLLMConsumer.as_asgi()),
    # The seed's plain form, for companies that enable it (the agent comes from call_details).
    re_path(rf"^retell-llm/+{CALL_ID}/?$", RetellLLMConsumer.as_asgi()),
    # The admin's call simulator: the admin session's user, from a page of an allowed host only.
    re_path(r"^admin/call-simulator/(?P<agent_pk>[0-9]{1,18})/?$",
            AllowedHostsOriginValidator(AuthMiddlewareStack(CallSimulatorConsumer.as_asgi()))),
    # The Live Debug Console: the admin's session cookie, from a page of this site only.
    re_path(r"^admin/monitoring/console/socket/?$",
            AllowedHostsOriginValidator(AuthMiddlewareStack(ConsoleConsumer.as_asgi()))),
    # Twilio's Media Streams (the <Stream url> of voice.twilio_views; the call is named by its start frame).
    re_path(r"^voice-agent/media-stream/?$", TwilioMediaConsumer.as_asgi()),
    re_path(r"", refuse),
]
