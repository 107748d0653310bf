"""WebSocket routes. Each app's consumers are added here as the live call paths land."""

websocket_urlpatterns: list = []
