"""WebSocket consumers: thin adapters between a socket and a session."""

from __future__ import annotations

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.consumer import get_handler_name

from .retell_session import RetellCallSession
from .selectors import agent_by_socket_token, plain_path_enabled_anywhere
from .twilio_session import TwilioCallSession

logger = logging.getLogger(__name__)


class _CallConsumer(AsyncWebsocketConsumer):
    """A call's socket: frames to its session (`start`, `receive(data)`, `stop`), and a way back."""

    # A call's socket talks only to its provider: no channel-layer channel (and no Redis polling) per call.
    channel_layer_alias = None
    session = None

    async def dispatch(self, message) -> None:
        # Channels' dispatch first closes stale database connections, a hop to the one database
        # thread for every frame, which queues a caller's request behind other calls' database
        # work. This consumer reaches the database only through database_sync_to_async, which
        # closes stale connections itself, so each frame goes straight to its handler.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.session is not None:
            await self.session.receive(text_data if text_data is not None else bytes_data)

    async def disconnect(self, code) -> None:
        if self.session is not None:
            await self.session.stop()

    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def _close_with(self, code: int) -> None:
        await self.close(code=code)


class RetellLLMConsumer(_CallConsumer):
    """Retell's Custom LLM socket: /retell-llm/<agent-token>/<call_id>, or /retell-llm/<call_id>
    for companies that accept the plain path (the agent is then named by call_details)."""

    session: RetellCallSession | None = None

    async def connect(self) -> None:
        route = self.scope["url_route"]["kwargs"]
        token = route.get("token")
        agent = None
        if token is not None:
            agent = await database_sync_to_async(agent_by_socket_token)(token)
            if agent is None:
                logger.warning("Retell LLM socket refused: unknown agent token.")
                await self.close()  # before accept: the handshake is refused (403)
                return
        elif not await database_sync_to_async(plain_path_enabled_anywhere)():
            logger.warning("Retell LLM socket refused: no company accepts the plain path.")
            await self.close()
            return
        self.session = RetellCallSession(call_id=route["call_id"], agent=agent, send=self._send_text,
                                         close=self._close_with)
        await self.accept()
        await self.session.start()


class TwilioMediaConsumer(_CallConsumer):
    """Twilio's bidirectional Media Streams socket, /voice-agent/media-stream. Accepted at once: the
    call is named by the one-time token of its `start` frame, which the session verifies."""

    session: TwilioCallSession | None = None

    async def connect(self) -> None:
        self.session = TwilioCallSession(send=self._send_text, close=self._close_with)
        await self.accept()
        await self.session.start()
