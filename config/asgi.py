import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before the routing imports the consumers and their models.
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.ratelimits import SocketHandshakeLimit  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from integrations.mcp_server import application as mcp_http  # noqa: E402


async def http(scope, receive, send):
    """/mcp (and below it) is the MCP server (integrations.mcp_server); every other path is Django's."""
    path = scope.get("path", "")
    if path == "/mcp" or path.startswith("/mcp/"):
        return await mcp_http(scope, receive, send)
    return await django_http(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http,
        # Handshakes over their rate limit are refused before any route or consumer runs.
        "websocket": SocketHandshakeLimit(URLRouter(websocket_urlpatterns)),
    }
)

# What is loaded by now lives as long as the process: frozen out of the cyclic garbage
# collector, whose full collections would otherwise walk all of Django on the event loop's
# thread and stall every live call for a hundred milliseconds or more (measured with
# bench/retell_llm_bench.py; see the README, "Live calls over Retell").
gc.freeze()
