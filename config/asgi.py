import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before the routing imports the consumers and their models.
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_http,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

# What is loaded by now lives as long as the process: frozen out of the cyclic garbage
# collector, whose full collections would otherwise walk all of Django on the event loop's
# thread and stall every live call for a hundred milliseconds or more (measured with
# bench/retell_llm_bench.py; see the README, "Live calls over Retell").
gc.freeze()
