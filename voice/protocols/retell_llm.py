"""Retell's Custom LLM WebSocket protocol as a sans-IO state machine.

No Django, no asyncio, no sockets: the adapter feeds in what happened (a text frame
arrived, the dialog engine produced a chunk for response N, a tool started or
finished, time passed) and gets back actions: frames to send (`SendFrame`) and
decisions (`StartResponse`, `CancelResponse`, `CloseConnection`, ...). Time is always
passed in as seconds since the epoch; nothing here reads a clock.

Facts implemented (shared/reference/retell.md §1): Retell sends `interaction_type`
frames, we send `response_type` frames; a `config` then the begin message
(`response_id` 0) on open; `ping_pong` both ways every 2 s with auto_reconnect; a
newer `response_required` / `reminder_required` supersedes the stream of an older id
(an `update_only` does not); only the last chunk of an id has `content_complete`;
`tool_call_invocation.arguments` is a JSON string; `agent_interrupt` counts its own
`interrupt_id`; 1000 is the normal close code.

The per-call part of the state (`CallState`) outlives a connection: Retell reconnects
with the same call_id when pings stop, and the new connection is built on the saved
state (`CallState.from_dict`), so the caller is not greeted twice and an unanswered
request is answered. A request counts as answered only when the adapter reports that
the final frame of its answer was written to the socket (`written`), not when the
frame was decided: a connection that dies in between leaves it to the next one.

A newer request means the caller is still on the line: a transfer or end_call that an
earlier answer decided did not happen (Retell discards them when the caller barges in,
and a superseded answer never carried them). The newer request's `StartResponse` says
so (`interrupted_transfer`, `interrupted_end_call`), and a pending hang-up is cancelled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

CLOSE_NORMAL = 1000
CLOSE_POLICY_VIOLATION = 1008
PING_INTERVAL_SECONDS = 2.0
BEGIN_RESPONSE_ID = 0
RESPONSE_KINDS = {"response_required": False, "reminder_required": True}
KNOWN_INTERACTION_TYPES = {"ping_pong", "call_details", "update_only", *RESPONSE_KINDS}


def to_text(frame: dict) -> str:
    """A frame as the one JSON object of a text message."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


# --- Actions: what the adapter must do ---------------------------------------------------

@dataclass(frozen=True)
class SendFrame:
    frame: dict

    @property
    def text(self) -> str:
        return to_text(self.frame)


@dataclass(frozen=True)
class StartResponse:
    """Answer `response_id` for this transcript (a reminder when the caller went quiet).

    `interrupted_transfer` (the number) / `interrupted_end_call`: an earlier answer ended
    with a transfer or an end_call that did not happen, because this newer request came
    (see `CallState.interrupted`).
    """
    response_id: int
    reminder: bool
    transcript: list
    transcript_with_tool_calls: list | None = None
    interrupted_transfer: str | None = None
    interrupted_end_call: bool = False


@dataclass(frozen=True)
class CancelResponse:
    """Stop producing `response_id`: a newer request superseded it, nothing of it is sent any more."""
    response_id: int


@dataclass(frozen=True)
class CallDetailsReceived:
    call: dict


@dataclass(frozen=True)
class TranscriptUpdated:
    transcript: list
    turntaking: str | None = None


@dataclass(frozen=True)
class MalformedFrame:
    """A frame that is not what the protocol allows; reported, and the call goes on."""
    reason: str
    excerpt: str


@dataclass(frozen=True)
class IgnoredFrame:
    """A well-formed frame of a type we do not know (or a stale request)."""
    interaction_type: str
    reason: str = "unknown interaction_type"


@dataclass(frozen=True)
class CloseConnection:
    code: int
    reason: str = ""


Action = SendFrame | StartResponse | CancelResponse | CallDetailsReceived | TranscriptUpdated | \
    MalformedFrame | IgnoredFrame | CloseConnection


class ProtocolUsageError(Exception):
    """The adapter asked for something the protocol does not allow (a bug, not bad input)."""


# --- State ---------------------------------------------------------------------------------

@dataclass
class CallState:
    """What a call keeps across connections (plain data, so a cache can hold it)."""
    greeted: bool = False
    latest_response_id: int | None = None
    # The newest request whose final frame was written to the socket.
    completed_response_id: int | None = None
    # The newest request not answered in full (its final frame not written):
    # {"response_id": int, "reminder": bool} or None.
    pending: dict | None = None
    # What the newest answer decided to do once its words are spoken:
    # {"response_id": int, "end_call": bool, "transfer_number": str | None} or None.
    ending: dict | None = None
    # An ending that did not happen because a newer request came: {"end_call": bool,
    # "transfer_number": str | None, "since": the first request told}. Given to every newer
    # request until the final frame of one of them is written.
    interrupted: dict | None = None
    next_interrupt_id: int = 1
    transcript: list = field(default_factory=list)
    transcript_with_tool_calls: list | None = None
    call: dict | None = None
    ended: bool = False
    connections: int = 0

    def to_dict(self) -> dict:
        return {
            "greeted": self.greeted, "latest_response_id": self.latest_response_id,
            "completed_response_id": self.completed_response_id, "pending": self.pending,
            "next_interrupt_id": self.next_interrupt_id, "transcript": self.transcript,
            "transcript_with_tool_calls": self.transcript_with_tool_calls, "call": self.call,
            "ended": self.ended, "connections": self.connections, "ending": self.ending,
            "interrupted": self.interrupted,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> "CallState":
        if not data:
            return cls()
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def _excerpt(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class RetellLLMConnection:
    """One socket connection of one call."""

    def __init__(self, *, state: CallState | None = None, auto_reconnect: bool = True,
                 call_details: bool = True, transcript_with_tool_calls: bool = True,
                 ping_interval: float = PING_INTERVAL_SECONDS, end_call_grace: float = 20.0) -> None:
        self.state = state if state is not None else CallState()
        self.auto_reconnect = auto_reconnect
        self.call_details = call_details
        self.transcript_with_tool_calls = transcript_with_tool_calls
        self.ping_interval = ping_interval
        self.end_call_grace = end_call_grace
        self.resumed = self.state.connections > 0
        self._opened = False
        self._begun = False
        self._closed = False
        self._streaming: int | None = None   # the response id whose chunks go out now
        self._requests_seen = 0              # on this connection
        self._last_ping_sent: float | None = None
        self._end_call_sent_at: float | None = None

    # --- connection lifecycle ---------------------------------------------------------

    def open(self, now: float) -> list[Action]:
        """The socket is accepted: send our config."""
        if self._opened:
            raise ProtocolUsageError("open() twice")
        self._opened = True
        self.state.connections += 1
        self._last_ping_sent = now
        return [SendFrame({"response_type": "config", "config": {
            "auto_reconnect": self.auto_reconnect, "call_details": self.call_details,
            "transcript_with_tool_calls": self.transcript_with_tool_calls}})]

    def begin(self, greeting: str) -> list[Action]:
        """The begin message: the greeting, or empty to wait for the caller.

        A call is greeted once: a reconnect sends an empty begin message, then answers
        the request that was left unanswered when the old connection died.
        """
        if not self._opened or self._begun:
            raise ProtocolUsageError("begin() must follow open(), once")
        self._begun = True
        content = "" if self.state.greeted else greeting
        self.state.greeted = True
        actions: list[Action] = [SendFrame({"response_type": "response", "response_id": BEGIN_RESPONSE_ID,
                                            "content": content, "content_complete": True})]
        pending = self.state.pending
        if pending is not None and self._streaming is None:
            self._streaming = pending["response_id"]
            actions.append(self._start(pending["response_id"], pending["reminder"], self.state.transcript,
                                       self.state.transcript_with_tool_calls))
        return actions

    def adopt(self, saved: CallState) -> None:
        """Continue a call an earlier connection saved, found only now (after call_details).

        What this connection already heard (call details, a newer request, the
        transcript) is fresher than the saved state and wins over it.
        """
        if self._begun:
            raise ProtocolUsageError("adopt() must come before begin()")
        heard = self.state
        saved.connections += heard.connections
        saved.call = heard.call or saved.call
        if heard.transcript:
            saved.transcript = heard.transcript
            saved.transcript_with_tool_calls = heard.transcript_with_tool_calls
        self.state = saved
        self.resumed = saved.connections > 1
        if heard.latest_response_id is not None:
            saved.latest_response_id = heard.latest_response_id
            saved.pending = heard.pending
            self._caller_still_there(heard.latest_response_id)

    @property
    def has_begun(self) -> bool:
        return self._begun

    def tick(self, now: float) -> list[Action]:
        """Time passed: our own ping every interval; the close after a spoken goodbye."""
        if not self._opened or self._closed:
            return []
        actions: list[Action] = []
        if self.auto_reconnect and now - (self._last_ping_sent or now) >= self.ping_interval:
            actions.append(self._ping(now))
        if self._end_call_sent_at is not None and now - self._end_call_sent_at >= self.end_call_grace:
            actions.append(self.close(CLOSE_NORMAL, "call ended"))
        return actions

    def seconds_until_tick(self, now: float) -> float:
        """When tick() next has something to do (the adapter sleeps this long)."""
        waits = []
        if self.auto_reconnect and self._last_ping_sent is not None:
            waits.append(self._last_ping_sent + self.ping_interval - now)
        if self._end_call_sent_at is not None:
            waits.append(self._end_call_sent_at + self.end_call_grace - now)
        return max(0.0, min(waits)) if waits else self.ping_interval

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> CloseConnection:
        self._closed = True
        return CloseConnection(code, reason)

    @property
    def closed(self) -> bool:
        return self._closed

    def _ping(self, now: float) -> SendFrame:
        self._last_ping_sent = now
        return SendFrame({"response_type": "ping_pong", "timestamp": int(now * 1000)})

    # --- inbound ------------------------------------------------------------------------

    def receive(self, data: str | bytes, now: float) -> list[Action]:
        """One inbound frame."""
        if isinstance(data, bytes | bytearray):
            try:
                data = bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                return [MalformedFrame("frame is not UTF-8", _excerpt(repr(bytes(data))))]
        try:
            frame = json.loads(data)
        except (ValueError, TypeError):
            return [MalformedFrame("frame is not JSON", _excerpt(str(data)))]
        if not isinstance(frame, dict):
            return [MalformedFrame("frame is not a JSON object", _excerpt(data))]
        kind = frame.get("interaction_type")
        if not isinstance(kind, str):
            return [MalformedFrame("frame has no interaction_type", _excerpt(data))]
        if kind not in KNOWN_INTERACTION_TYPES:
            return [IgnoredFrame(kind)]
        if kind == "ping_pong":
            return [self._ping(now)]
        if kind == "call_details":
            call = frame.get("call")
            if not isinstance(call, dict):
                return [MalformedFrame("call_details without a call object", _excerpt(data))]
            self.state.call = call
            return [CallDetailsReceived(call)]
        transcript = frame.get("transcript")
        if not isinstance(transcript, list):
            return [MalformedFrame(f"{kind} without a transcript list", _excerpt(data))]
        with_tools = frame.get("transcript_with_tool_calls")
        with_tools = with_tools if isinstance(with_tools, list) else None
        if kind == "update_only":
            self.state.transcript = transcript
            if with_tools is not None:
                self.state.transcript_with_tool_calls = with_tools
            turntaking = frame.get("turntaking")
            return [TranscriptUpdated(transcript, turntaking if isinstance(turntaking, str) else None)]
        return self._request(frame, kind, transcript, with_tools, data)

    def _request(self, frame: dict, kind: str, transcript: list, with_tools: list | None, raw: str) -> list[Action]:
        response_id = frame.get("response_id")
        if not _is_int(response_id) or response_id < 0:
            return [MalformedFrame(f"{kind} without an integer response_id", _excerpt(raw))]
        latest = self.state.latest_response_id
        # Ids only grow within a call; a first request on a new connection is taken as it comes.
        if latest is not None and response_id <= latest and self._requests_seen:
            return [IgnoredFrame(kind, f"response_id {response_id} is not newer than {latest}")]
        self._requests_seen += 1
        self.state.latest_response_id = response_id
        self.state.transcript = transcript
        if with_tools is not None:
            self.state.transcript_with_tool_calls = with_tools
        reminder = RESPONSE_KINDS[kind]
        self.state.pending = {"response_id": response_id, "reminder": reminder}
        self._caller_still_there(response_id)
        if not self._begun:
            return []  # answered once the begin message is out (begin() starts it)
        actions: list[Action] = []
        if self._streaming is not None and self._streaming != response_id:
            actions.append(CancelResponse(self._streaming))
        self._streaming = response_id
        actions.append(self._start(response_id, reminder, transcript, with_tools))
        return actions

    def _caller_still_there(self, response_id: int) -> None:
        """A request newer than an answer that ended the call or transferred it: that did not happen."""
        state = self.state
        ending = state.ending
        if ending is not None and ending["response_id"] < response_id:
            state.interrupted = {"end_call": bool(ending.get("end_call")),
                                 "transfer_number": ending.get("transfer_number"), "since": response_id}
            state.ending = None
        state.ended = False
        self._end_call_sent_at = None

    def _start(self, response_id: int, reminder: bool, transcript: list, with_tools: list | None) -> StartResponse:
        interrupted = self.state.interrupted or {}
        return StartResponse(response_id, reminder, transcript, with_tools,
                             interrupted_transfer=interrupted.get("transfer_number"),
                             interrupted_end_call=bool(interrupted.get("end_call")))

    # --- outbound: what the engine produced --------------------------------------------

    def is_current(self, response_id: int) -> bool:
        """Are chunks of this id still wanted (no newer request arrived, not completed)?"""
        return self._streaming == response_id and not self._closed

    def chunk(self, response_id: int, content: str) -> list[Action]:
        """A piece of the answer; dropped if a newer request superseded this id."""
        if not self.is_current(response_id) or not content:
            return []
        return [SendFrame({"response_type": "response", "response_id": response_id, "content": content,
                           "content_complete": False})]

    def ending(self, response_id: int, *, end_call: bool = False, transfer_number: str | None = None) -> None:
        """The engine decided that `response_id` ends the call or transfers it once its words are spoken.

        Recorded at once, before the final frame is decided, so that a newer request that
        supersedes this answer learns the ending did not happen. Ignored for an id that
        is no longer current.
        """
        if end_call and transfer_number:
            raise ProtocolUsageError("a response either ends the call or transfers it")
        if self.is_current(response_id):
            self._record_ending(response_id, end_call=end_call, transfer_number=transfer_number)

    def _record_ending(self, response_id: int, *, end_call: bool, transfer_number: str | None) -> None:
        self.state.ending = ({"response_id": response_id, "end_call": end_call, "transfer_number": transfer_number}
                             if end_call or transfer_number else None)

    def complete(self, response_id: int, content: str = "", *, now: float, end_call: bool = False,
                 transfer_number: str | None = None) -> list[Action]:
        """The last piece of the answer (content_complete), with end_call or transfer_number.

        The request stays pending until the adapter reports this frame `written`.
        """
        if not self.is_current(response_id):
            return []
        frame = {"response_type": "response", "response_id": response_id, "content": content,
                 "content_complete": True}
        self._finish_frame(frame, end_call=end_call, transfer_number=transfer_number, now=now)
        self._record_ending(response_id, end_call=end_call, transfer_number=transfer_number)
        self._streaming = None
        return [SendFrame(frame)]

    def written(self, response_id: int) -> None:
        """The adapter wrote the final frame (content_complete) of `response_id` to the socket.

        Only now is the request answered: it leaves `pending` (if it is still the newest),
        and an interrupted ending it was told about is cleared.
        """
        state = self.state
        if state.pending is not None and state.pending["response_id"] == response_id:
            state.pending = None
        if state.completed_response_id is None or response_id > state.completed_response_id:
            state.completed_response_id = response_id
        if state.interrupted is not None and response_id >= state.interrupted.get("since", 0):
            state.interrupted = None

    def interrupt(self, content: str, *, now: float, content_complete: bool = True,
                  no_interruption_allowed: bool = True, end_call: bool = False,
                  transfer_number: str | None = None) -> list[Action]:
        """Speak unprompted (agent_interrupt), under a new interrupt_id."""
        if self._closed:
            return []
        interrupt_id = self.state.next_interrupt_id
        self.state.next_interrupt_id += 1
        frame = {"response_type": "agent_interrupt", "interrupt_id": interrupt_id, "content": content,
                 "content_complete": content_complete, "no_interruption_allowed": no_interruption_allowed}
        self._finish_frame(frame, end_call=end_call, transfer_number=transfer_number, now=now)
        return [SendFrame(frame)]

    def _finish_frame(self, frame: dict, *, end_call: bool, transfer_number: str | None, now: float) -> None:
        if end_call and transfer_number:
            raise ProtocolUsageError("a response either ends the call or transfers it")
        if end_call:
            frame["end_call"] = True
            self.state.ended = True
            self._end_call_sent_at = now
        if transfer_number:
            frame["transfer_number"] = transfer_number
            self.state.ended = True

    def tool_invocation(self, tool_call_id: str, name: str, arguments: dict | str) -> list[Action]:
        """Report a tool we run; `arguments` goes out as a JSON string, as Retell requires."""
        if isinstance(arguments, str):
            try:
                parsed = json.loads(arguments)
            except ValueError:
                raise ProtocolUsageError("tool arguments are not JSON") from None
            if not isinstance(parsed, dict):
                raise ProtocolUsageError("tool arguments are not a JSON object")
            text = arguments
        else:
            text = to_text(arguments)
        if self._closed:
            return []
        return [SendFrame({"response_type": "tool_call_invocation", "tool_call_id": tool_call_id, "name": name,
                           "arguments": text})]

    def tool_result(self, tool_call_id: str, content: str | dict, *, successful: bool | None = None) -> list[Action]:
        if self._closed:
            return []
        frame = {"response_type": "tool_call_result", "tool_call_id": tool_call_id,
                 "content": content if isinstance(content, str) else to_text(content)}
        if successful is not None:
            frame["successful"] = successful
        return [SendFrame(frame)]
