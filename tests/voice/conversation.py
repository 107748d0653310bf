"""Drive a dialog engine turn by turn with plain data, as the call session would."""

import asyncio
from dataclasses import dataclass, field

from voice.dialog.base import CallContext, EndCall, TextChunk, ToolCall, ToolCalls, Transfer, Turn


@dataclass
class Reply:
    text: str
    chunks: list = field(default_factory=list)
    tool_calls: list = field(default_factory=list)
    results: list = field(default_factory=list)   # what each tool call was answered, in order
    batches: list = field(default_factory=list)   # the calls of each ToolCalls event
    end_call: bool = False
    transfer: str | None = None


class Conversation:
    """A transcript, an engine and a context; `say()` runs one turn and returns the reply.

    `tool_results` answers the engine's tool calls by function name (a dict, or a
    callable taking the arguments); the default says the handler succeeded.
    """

    def __init__(self, engine, context: CallContext, *, tool_results=None) -> None:
        self.engine = engine
        self.context = context
        self.tool_results = tool_results or {}
        self.transcript: list = []
        self.response_id = 0
        greeting = context.greeting()
        if greeting:
            self.transcript.append({"role": "agent", "content": greeting})

    def say(self, text: str, **turn) -> Reply:
        """`turn`: more fields of the Turn (e.g. interrupted_transfer)."""
        self.transcript.append({"role": "user", "content": text})
        return self._turn(reminder=False, **turn)

    def silence(self) -> Reply:
        return self._turn(reminder=True)

    def _turn(self, *, reminder: bool, **fields) -> Reply:
        self.response_id += 1
        turn = Turn(response_id=self.response_id, transcript=list(self.transcript), reminder=reminder, **fields)
        reply = asyncio.run(self._drive(turn))
        if reply.text:
            self.transcript.append({"role": "agent", "content": reply.text})
        return reply

    async def _drive(self, turn: Turn) -> Reply:
        reply = Reply(text="")
        chunks = []
        stream = self.engine.respond(turn, self.context)
        value = None
        while True:
            try:
                event = await stream.asend(value)
            except StopAsyncIteration:
                break
            value = None
            if isinstance(event, TextChunk):
                chunks.append(event.text)
            elif isinstance(event, ToolCall):
                reply.tool_calls.append(event)
                value = self._result(event)
                reply.results.append(value)
            elif isinstance(event, ToolCalls):
                reply.tool_calls.extend(event.calls)
                reply.batches.append(event.calls)
                value = [self._result(call) for call in event.calls]
                reply.results.extend(value)
            elif isinstance(event, EndCall):
                reply.end_call = True
            elif isinstance(event, Transfer):
                reply.transfer = event.number
        reply.chunks = chunks
        reply.text = "".join(chunks).strip()
        return reply

    def _result(self, call: ToolCall) -> dict:
        answer = self.tool_results.get(call.name, {"success": True})
        return answer(call.arguments) if callable(answer) else answer
