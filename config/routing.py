"""WebSocket routes. Each app's consumers are added here as the live call paths land."""

from django.urls import re_path

from voice.consumers import RetellLLMConsumer

websocket_urlpatterns: list = [
    # Retell appends /{call_id} to the agent's llm_websocket_url (/retell-llm/<agent socket token>).
    re_path(r"^retell-llm/(?P<token>[A-Za-z0-9_-]{16,128})/(?P<call_id>[A-Za-z0-9_-]{1,128})/?$",
            RetellLLMConsumer.as_asgi()),
    # The seed's plain form, for companies that enable it (the agent comes from call_details).
    re_path(r"^retell-llm/(?P<call_id>[A-Za-z0-9_-]{1,128})/?$", RetellLLMConsumer.as_asgi()),
]
