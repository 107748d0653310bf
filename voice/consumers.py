"""WebSocket consumers: thin adapters between a socket and a session."""

from __future__ import annotations

import asyncio
import logging

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from websockets.exceptions import InvalidStatus, InvalidURI

from audit.actor import Actor

from .call_simulator import (
    AGENT_HANGUP,
    CALL_TRANSFER,
    CONNECTION_ERROR,
    USER_HANGUP,
    simulated_call_end,
    simulated_call_open,
    simulator_socket_base,
    simulator_socket_url,
    socket_shown,
    turn_summary,
)
from .models import Call
from .retell_session import RetellCallSession
from .selectors import agent_by_socket_token, plain_path_enabled_anywhere
from .simulator import CallEnded, SimulatedCall
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


class CallSimulatorConsumer(AsyncJsonWebsocketConsumer):
    """The admin's call simulator: /admin/call-simulator/<agent pk>/, a chat with one agent.

    Authenticated by the admin session (AuthMiddlewareStack in config/routing.py; the Origin must
    be one of ALLOWED_HOSTS). Whoever may view the agent may open the page's socket; starting a call
    needs the right to change the agent (a viewer may look, not call). The consumer speaks Retell's
    side of the call to this server's own /retell-llm/ socket with voice.simulator's client
    (voice.call_simulator says which URL), so the call runs the product's real path.

    Browser → server (JSON): {"type": "start"}, {"type": "say", "text": str}, {"type": "silence"},
    {"type": "hang_up"}.
    Server → browser: {"type": "ready", "agent", "may_call"}; {"type": "started", "call_id",
    "from_number", "socket", "greeting"}; per answer {"type": "chunk", "response_id", "text"} as each
    response frame arrives, {"type": "tool_call", "tool_call_id", "name", "arguments"} and
    {"type": "tool_result", "tool_call_id", "content", "successful"}, then {"type": "turn", …}
    (voice.call_simulator.turn_summary: latency to the first and last chunk in ms, end_call,
    transfer_number); {"type": "ended", "reason", "released"}; {"type": "error", "code", "message"}.
    Close codes: 4401 not logged in, 4404 no such agent for this user.
    """

    channel_layer_alias = None   # talks to one browser only: no channel-layer group
    agent = None
    call = None
    simulated = None
    may_call = False
    _turn: asyncio.Task | None = None
    _outbox: asyncio.Queue | None = None
    _writer: asyncio.Task | None = None

    async def connect(self) -> None:
        await self.accept()
        self._outbox = asyncio.Queue()
        self._writer = asyncio.ensure_future(self._write())
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_staff:
            await self._fail("not_authenticated", "Log in to the admin again, then reload this page.", close=4401)
            return
        pk = self.scope["url_route"]["kwargs"]["agent_pk"]
        self.agent, self.may_call = await database_sync_to_async(_simulator_agent)(user, int(pk))
        if self.agent is None:
            await self._fail("no_agent", "No such agent among those you may see.", close=4404)
            return
        self._emit({"type": "ready", "agent": self.agent.name, "may_call": self.may_call})

    async def receive_json(self, content, **kwargs) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if self.agent is None:
            return
        if kind in ("start", "say", "silence") and not self.may_call:
            self._error("forbidden", "Your role lets you look at this agent, not call it.")
        elif kind == "start":
            await self._start()
        elif kind in ("say", "silence"):
            text = content.get("text") if kind == "say" else ""
            if kind == "say" and (not isinstance(text, str) or not text.strip()):
                self._error("invalid", "Say something: the caller's line is empty.")
            elif self.simulated is None:
                self._error("no_call", "Start a call first.")
            elif self._turn is not None and not self._turn.done():
                self._error("busy", "Wait for the agent's answer before speaking again.")
            else:
                self._turn = asyncio.ensure_future(self._speak(text.strip() if kind == "say" else None))
        elif kind == "hang_up":
            await self._end(USER_HANGUP)
        else:
            self._error("invalid", "Unknown message: send start, say, silence or hang_up.")

    async def decode_json(self, text_data):
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None

    async def disconnect(self, code) -> None:
        # The page closed: the call ends as a caller hanging up, its test appointments released.
        if self._turn is not None:
            self._turn.cancel()
        await asyncio.shield(self._end(USER_HANGUP, tell=False))
        if self._writer is not None:
            self._writer.cancel()

    # --- the call ------------------------------------------------------------------------------

    async def _start(self) -> None:
        if self.simulated is not None:
            self._error("busy", "A call is under way: hang up first.")
            return
        self.call = await database_sync_to_async(simulated_call_open)(
            actor=self._actor(), agent=self.agent, origin=Call.TestOrigin.CALL_SIMULATOR)
        url = simulator_socket_url(self.agent, self.call.call_id,
                                   base=simulator_socket_base(server=self.scope.get("server")))
        self.simulated = SimulatedCall(url, call_id=self.call.call_id, agent_id=self.agent.agent_id,
                                       from_number=self.call.from_number, to_number=self.call.to_number or None,
                                       on_frame=self._relay)
        try:
            greeting = await self.simulated.connect(timeout=SIMULATOR_TIMEOUT_SECONDS)
        except InvalidStatus as error:
            message = (f"This server refused the call socket {socket_shown(url)} (HTTP "
                       f"{error.response.status_code}).")
        except (OSError, InvalidURI, TimeoutError, CallEnded) as error:
            message = (f"Cannot reach this server's call socket {socket_shown(url)}: "
                       f"{socket_shown(str(error)) or type(error).__name__}.")
        else:
            self._emit({"type": "started", "call_id": self.call.call_id, "from_number": self.call.from_number,
                        "socket": socket_shown(url), "greeting": greeting})
            return
        self._error("socket_unreachable", message)
        await self._end(CONNECTION_ERROR)

    async def _speak(self, text: str | None) -> None:
        try:
            turn = await (self.simulated.silence(timeout=SIMULATOR_TIMEOUT_SECONDS) if text is None
                          else self.simulated.say(text, timeout=SIMULATOR_TIMEOUT_SECONDS))
        except TimeoutError:
            self._error("timeout", f"No complete answer within {SIMULATOR_TIMEOUT_SECONDS:.0f} s.")
            return
        except CallEnded as error:
            self._error("call_ended", f"The agent's socket closed: {error}.")
            await self._end(AGENT_HANGUP)
            return
        self._emit({"type": "turn", **turn_summary(turn)})
        if turn.end_call or turn.transfer_number:
            await self._end(CALL_TRANSFER if turn.transfer_number else AGENT_HANGUP)

    async def _end(self, reason: str, *, tell: bool = True) -> None:
        simulated, call = self.simulated, self.call
        self.simulated, self.call = None, None
        if call is None:
            return
        if simulated is not None:
            await simulated.hang_up()
        released = await database_sync_to_async(simulated_call_end)(actor=self._actor(), call=call, reason=reason)
        if tell:
            self._emit({"type": "ended", "reason": reason, "released": released, "call_id": call.call_id})

    def _actor(self) -> Actor:
        user = self.scope["user"]
        client = self.scope.get("client") or (None, None)
        return Actor(kind="user", label=user.get_username(), user=user, ip=client[0])

    def _relay(self, frame: dict) -> None:
        """A frame from the agent's socket, as the page shows it (the greeting arrives with "started")."""
        kind = frame.get("response_type")
        if kind == "response" and frame.get("response_id") and frame.get("content"):
            self._emit({"type": "chunk", "response_id": frame["response_id"], "text": frame["content"]})
        elif kind == "tool_call_invocation":
            self._emit({"type": "tool_call", "tool_call_id": frame.get("tool_call_id", ""),
                        "name": frame.get("name", ""), "arguments": frame.get("arguments", "")})
        elif kind == "tool_call_result":
            self._emit({"type": "tool_result", "tool_call_id": frame.get("tool_call_id", ""),
                        "content": frame.get("content", ""), "successful": frame.get("successful")})

    # --- to the browser, in order ---------------------------------------------------------------

    def _emit(self, message: dict) -> None:
        self._outbox.put_nowait(message)

    def _error(self, code: str, message: str) -> None:
        self._emit({"type": "error", "code": code, "message": message})

    async def _fail(self, code: str, message: str, *, close: int) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})
        await self.close(code=close)

    async def _write(self) -> None:
        while True:
            message = await self._outbox.get()
            try:
                await self.send_json(message)
            except Exception:  # the browser is gone; disconnect() ends the call
                logger.debug("Call simulator: the page's socket is gone.")
                return


SIMULATOR_TIMEOUT_SECONDS = 20.0


def _simulator_agent(user, pk: int):
    """(the agent the user may view, whether the user may call it) or (None, False)."""
    from retell_config.models import Agent

    agent = (Agent.objects.restrict(user, "view").select_related("company")
             .filter(pk=pk, company__is_active=True).first())
    if agent is None:
        return None, False
    return agent, Agent.objects.restrict(user, "change").filter(pk=pk).exists()
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
