"""Retell's side of the Custom LLM WebSocket: a small asyncio client that calls our socket as Retell does.

`manage.py simulate_call`, the benchmark (bench/retell_llm_bench.py), the conversation
tests and the admin's call simulator drive calls with it. It needs only `websockets`
(no Django), so a benchmark client stays light.

What it sends, as Retell does (shared/reference/retell.md §1):
- on our `config`: `call_details` right away when asked (the call object: call_id,
  agent_id, from/to number, direction, dynamic variables), and its own `ping_pong`
  every 2 s when auto_reconnect is on (Retell reconnects after 5 s without one from
  the server; `pongs` counts the server's);
- per caller turn: an `update_only` while the caller speaks (the transcript with the
  first words of the utterance), then `response_required` with a new `response_id`
  and the whole transcript so far (and `transcript_with_tool_calls` when the config
  asked for it: utterances interleaved with the tool events the server reported);
  once the answer is complete, an `update_only` with the agent's words appended and
  `turntaking: "user_turn"`;
- for silence, `reminder_required` with the unchanged transcript;
- a connection can be stalled (`stall`: nothing more is read, as on a congested network),
  dropped without a closing handshake (`drop`) and opened again for the same call
  (`reconnect`, as Retell does after 5 s without a ping): the transcript and the response
  ids go on, and a turn the old connection left unanswered is awaited on the new one.

Every turn is timed from the moment `response_required` is written to the socket:
`first_chunk_ms` to the first `response` frame of that id, `complete_ms` to the one
with `content_complete`.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import socket
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

PING_INTERVAL_SECONDS = 2.0
SECONDS_PER_WORD = 0.3
_CALL_ID_ALPHABET = string.ascii_letters + string.digits


SILENCE = "[silence]"


def script_lines(text: str) -> list[str]:
    """A call script: one caller line per line; blank lines and lines starting with # are skipped,
    and a line `[silence]` is the caller saying nothing (Retell asks for a reminder)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def percentile(values: list[float], share: float) -> float | None:
    """The value below which `share` (0..1) of the values lie (nearest rank); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(share * len(ordered)))) - 1]


def new_call_id() -> str:
    """A call id shaped like Retell's (32 letters and digits)."""
    return "".join(secrets.choice(_CALL_ID_ALPHABET) for _ in range(32))


@dataclass
class ToolEvent:
    tool_call_id: str
    name: str
    arguments: str                  # as sent: a JSON string
    result: str | None = None       # tool_call_result content
    successful: bool | None = None


@dataclass
class AgentTurn:
    """One caller turn and the agent's answer to it."""
    response_id: int
    caller: str
    reminder: bool = False
    text: str = ""
    frames: int = 0
    first_chunk_ms: float | None = None
    complete_ms: float | None = None
    tool_calls: list[ToolEvent] = field(default_factory=list)
    end_call: bool = False
    transfer_number: str | None = None
    _sent_at: float = field(default=0.0, repr=False)
    _done: asyncio.Future | None = field(default=None, repr=False)
    _chunked: asyncio.Event = field(default_factory=asyncio.Event, repr=False)    # its first words arrived
    _tool_done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # a tool result arrived


class CallEnded(Exception):
    """The server closed the socket before the turn was answered."""


class SimulatedCall:
    """One call to `url` (the agent's socket URL with the call id appended), spoken as Retell speaks."""

    def __init__(self, url: str, *, call_id: str, agent_id: str = "", from_number: str | None = None,
                 to_number: str | None = None, direction: str = "inbound", dynamic_variables: dict | None = None,
                 updates: bool = True, ping_interval: float = PING_INTERVAL_SECONDS,
                 on_frame: Callable[[dict], None] | None = None) -> None:
        self.url = url
        self.call_id = call_id
        self.agent_id = agent_id
        self.from_number = from_number
        self.to_number = to_number
        self.direction = direction
        self.dynamic_variables = dynamic_variables or {}
        self.updates = updates
        self.ping_interval = ping_interval
        self.on_frame = on_frame           # sees every frame from the server once it is taken in (streaming)
        self.config: dict | None = None
        self.greeting: str | None = None
        self.begin_messages: list[str] = []   # the begin message of each connection (a reconnect's is empty)
        self.transcript: list[dict] = []
        self.transcript_with_tool_calls: list[dict] = []
        self.turns: list[AgentTurn] = []
        self.pings_sent = 0
        self.pongs = 0                     # ping_pong frames from the server
        self.stale_frames = 0              # response frames of a superseded id after a newer one started
        self.interrupts: list[dict] = []
        self.other_frames: list[dict] = []  # update_agent, metadata, anything else
        self.close_code: int | None = None
        self._ws = None
        self._next_response_id = 1
        self._current: AgentTurn | None = None
        self._audio_time = 0.0
        self._config_seen: asyncio.Event | None = None
        self._begin_seen: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._tools: dict[str, ToolEvent] = {}

    # --- connecting and hanging up --------------------------------------------------------------

    async def connect(self, *, timeout: float = 10.0) -> str:
        """Open the socket, answer the config, wait for the begin message; returns the greeting."""
        self._config_seen, self._begin_seen = asyncio.Event(), asyncio.Event()
        self._tasks = []
        self._ws = await connect(self.url, open_timeout=timeout, close_timeout=2, max_queue=None,
                                 compression=None)
        self._tasks.append(asyncio.ensure_future(self._reader()))
        await asyncio.wait_for(self._wait(self._begin_seen), timeout)
        return self.greeting or ""

    def stall(self) -> None:
        """Read nothing more from the socket, as on a congested network: once the buffers
        between are full, the server's writes wait."""
        sock = self._ws.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self._ws.transport.pause_reading()

    async def drop(self) -> None:
        """The connection dies without a closing handshake (Retell gives up on it); a turn
        waiting for its answer ends with CallEnded."""
        self._ws.transport.abort()
        reader = self._tasks[0]
        await asyncio.wait({reader}, timeout=5)
        for task in self._tasks[1:]:
            task.cancel()

    async def reconnect(self, *, timeout: float = 10.0) -> AgentTurn | None:
        """Retell connects again for the same call: a new socket, the same call id, the
        transcript and response ids going on. Returns the turn the old connection left
        unanswered, once the new one has answered it in full (timed from the reconnect),
        or None when no turn was open."""
        turn = self._current
        if turn is not None and turn.complete_ms is not None:
            turn = None
        if turn is not None:
            turn.text, turn.frames, turn.first_chunk_ms = "", 0, None
            turn._done = asyncio.get_running_loop().create_future()
            turn._sent_at = time.perf_counter()
        await self.connect(timeout=timeout)
        if turn is None:
            return None
        return await self._await_answer(turn, timeout)

    async def hang_up(self) -> None:
        """The caller hangs up: close with 1000."""
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if self._ws is not None:
            await self._ws.close(1000)
            self.close_code = self.close_code or self._ws.close_code

    @property
    def closed(self) -> bool:
        return self._ws is None or self._ws.close_code is not None

    async def _wait(self, event: asyncio.Event) -> None:
        waiter = asyncio.ensure_future(event.wait())
        reader = self._tasks[0]
        done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            raise CallEnded(f"the server closed the socket ({self.close_code}) before it answered")

    # --- speaking -----------------------------------------------------------------------------------

    async def say(self, text: str, *, timeout: float = 10.0) -> AgentTurn:
        """The caller says `text`; returns the agent's whole answer, timed."""
        words = text.split()
        self._audio_time += 0.5
        utterance = {"role": "user", "content": text, "words": self._words(words)}
        if self.updates and len(words) > 1:
            partial = {"role": "user", "content": " ".join(words[: len(words) // 2]),
                       "words": utterance["words"][: len(words) // 2]}
            await self._send({"interaction_type": "update_only", "transcript": self.transcript + [partial]})
        self._add_utterance(utterance)
        return await self._request(text, reminder=False, timeout=timeout)

    async def silence(self, *, timeout: float = 10.0) -> AgentTurn:
        """The caller says nothing for a while: Retell asks for a reminder."""
        return await self._request("", reminder=True, timeout=timeout)

    async def say_over(self, text: str, *, then: str, when: str = "tool_result",
                       timeout: float = 10.0) -> AgentTurn:
        """A barge-in: the caller says `text`, then speaks again (`then`) as soon as the agent's
        answer reaches `when` ("tool_result": a tool of that turn has reported its result;
        "chunk": its first words arrived), which supersedes the first request, as Retell does.
        The caller heard nothing of the first answer, so it does not join the transcript.
        Returns the answer to `then`; the first turn stays in `turns` with what arrived of it."""
        self._add_utterance({"role": "user", "content": text, "words": self._words(text.split())})
        first = await self._send_request(text, reminder=False)
        reached = first._tool_done if when == "tool_result" else first._chunked
        await asyncio.wait_for(self._wait(reached), timeout)
        self._add_utterance({"role": "user", "content": then, "words": self._words(then.split())})
        second = await self._send_request(then, reminder=False)
        return await self._await_answer(second, timeout)

    async def _request(self, text: str, *, reminder: bool, timeout: float) -> AgentTurn:
        turn = await self._send_request(text, reminder=reminder)
        return await self._await_answer(turn, timeout)

    async def _send_request(self, text: str, *, reminder: bool) -> AgentTurn:
        if self.closed:
            raise CallEnded(f"the socket is closed ({self.close_code})")
        turn = AgentTurn(response_id=self._next_response_id, caller=text, reminder=reminder,
                         _done=asyncio.get_running_loop().create_future())
        self._next_response_id += 1
        frame = {"interaction_type": "reminder_required" if reminder else "response_required",
                 "response_id": turn.response_id, "transcript": self.transcript}
        if self._with_tool_calls:
            frame["transcript_with_tool_calls"] = self.transcript_with_tool_calls
        data = json.dumps(frame)
        self._current = turn
        self.turns.append(turn)
        turn._sent_at = time.perf_counter()
        await self._ws.send(data)
        return turn

    async def _await_answer(self, turn: AgentTurn, timeout: float) -> AgentTurn:
        reader = self._tasks[0]
        done, _ = await asyncio.wait({turn._done, reader}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if turn._done not in done:
            if reader in done:
                raise CallEnded(f"the server closed the socket ({self.close_code}) before it answered "
                                f"response {turn.response_id}")
            raise TimeoutError(f"no complete answer to response {turn.response_id} within {timeout}s")
        turn._done.result()  # raises CallEnded when the socket closed before the answer was complete
        await self._answered(turn)
        return turn

    async def _answered(self, turn: AgentTurn) -> None:
        """The agent's words join the transcript, and Retell says so with an update_only."""
        if turn.text:
            self._audio_time += 0.4
            self._add_utterance({"role": "agent", "content": turn.text, "words": self._words(turn.text.split())})
        if self.updates and not self.closed:
            update = {"interaction_type": "update_only", "transcript": self.transcript, "turntaking": "user_turn"}
            if self._with_tool_calls:
                update["transcript_with_tool_calls"] = self.transcript_with_tool_calls
            await self._send(update)

    @property
    def _with_tool_calls(self) -> bool:
        return bool((self.config or {}).get("transcript_with_tool_calls"))

    def _words(self, words: list[str]) -> list[dict]:
        timed = []
        for word in words:
            timed.append({"word": word, "start": round(self._audio_time, 3),
                          "end": round(self._audio_time + SECONDS_PER_WORD - 0.05, 3)})
            self._audio_time += SECONDS_PER_WORD
        return timed

    def _add_utterance(self, utterance: dict) -> None:
        self.transcript = self.transcript + [utterance]
        self.transcript_with_tool_calls = self.transcript_with_tool_calls + [utterance]

    async def _send(self, frame: dict) -> None:
        try:
            await self._ws.send(json.dumps(frame))
        except ConnectionClosed:
            pass

    # --- what the server sends ----------------------------------------------------------------------

    async def _reader(self) -> None:
        try:
            async for data in self._ws:
                frame = json.loads(data)
                self._on_frame(frame, time.perf_counter())
                if self.on_frame is not None:
                    self.on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self._ws.close_code
            turn = self._current
            if turn is not None and not turn._done.done():
                turn._done.set_exception(CallEnded(f"closed ({self.close_code})"))
                turn._done.exception()  # retrieved: the caller hears about it through the reader's end

    def _on_frame(self, frame: dict, now: float) -> None:
        kind = frame.get("response_type")
        if kind == "response":
            self._on_response(frame, now)
        elif kind == "ping_pong":
            self.pongs += 1
        elif kind == "config":
            self.config = frame.get("config") or {}
            if self.config.get("call_details"):
                asyncio.ensure_future(self._send({"interaction_type": "call_details", "call": self.call_object()}))
            if self.config.get("auto_reconnect"):
                self._tasks.append(asyncio.ensure_future(self._pinger()))
            self._config_seen.set()
        elif kind == "tool_call_invocation":
            event = ToolEvent(frame.get("tool_call_id", ""), frame.get("name", ""), frame.get("arguments", ""))
            self._tools[event.tool_call_id] = event
            if self._current is not None:
                self._current.tool_calls.append(event)
            self.transcript_with_tool_calls = self.transcript_with_tool_calls + [{
                "role": "tool_call_invocation", "tool_call_id": event.tool_call_id, "name": event.name,
                "arguments": event.arguments}]
        elif kind == "tool_call_result":
            event = self._tools.get(frame.get("tool_call_id", ""))
            if event is not None:
                event.result, event.successful = frame.get("content"), frame.get("successful")
            if self._current is not None and event is not None and event in self._current.tool_calls:
                self._current._tool_done.set()
            item = {"role": "tool_call_result", "tool_call_id": frame.get("tool_call_id", ""),
                    "content": frame.get("content", "")}
            if "successful" in frame:
                item["successful"] = frame["successful"]
            self.transcript_with_tool_calls = self.transcript_with_tool_calls + [item]
        elif kind == "agent_interrupt":
            self.interrupts.append(frame)
        else:
            self.other_frames.append(frame)

    def _on_response(self, frame: dict, now: float) -> None:
        response_id = frame.get("response_id")
        if response_id == 0 and not self._begin_seen.is_set():
            content = frame.get("content") or ""
            self.begin_messages.append(content)
            if self.greeting is None:
                self.greeting = content
                if content:
                    self._add_utterance({"role": "agent", "content": content, "words": self._words(content.split())})
            self._begin_seen.set()
            return
        turn = self._current
        if turn is None or response_id != turn.response_id:
            self.stale_frames += 1
            return
        if turn._done.done():
            return
        turn.frames += 1
        turn._chunked.set()
        if turn.first_chunk_ms is None:
            turn.first_chunk_ms = (now - turn._sent_at) * 1000
        turn.text += frame.get("content") or ""
        if frame.get("content_complete"):
            turn.complete_ms = (now - turn._sent_at) * 1000
            turn.text = turn.text.strip()
            turn.end_call = bool(frame.get("end_call"))
            turn.transfer_number = frame.get("transfer_number")
            turn._done.set_result(turn)

    async def _pinger(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.ping_interval)
            self.pings_sent += 1
            await self._send({"interaction_type": "ping_pong", "timestamp": int(time.time() * 1000)})

    def call_object(self) -> dict:
        """The call object of call_details (Retell's register-call response)."""
        call = {"call_type": "phone_call", "call_id": self.call_id, "agent_id": self.agent_id,
                "direction": self.direction, "call_status": "registered", "metadata": {}}
        if self.from_number:
            call["from_number"] = self.from_number
        if self.to_number:
            call["to_number"] = self.to_number
        if self.dynamic_variables:
            call["retell_llm_dynamic_variables"] = self.dynamic_variables
        return call
