"""One live call on Retell's Custom LLM socket: the protocol, the dialog engine and the tools.

What a turn means (the engine run, the tools and their ledger, the superseded-turn rules, the
turn records) is the call session's (voice.call_session.CallSession), shared with the Twilio
path; this module adds Retell's frames around it.

The consumer (voice/consumers.py) is a thin adapter that hands this session the
frames it reads and gives it a way to send and to close. The session

- runs the sans-IO protocol (voice/protocols/retell_llm.py) and carries out its actions;
- answers each request in its own task, so reading the next frame never waits for an
  engine, and cancels a task as soon as the protocol says a newer request superseded it;
- runs the tools the engine asks for through appointments.handlers.run_custom_function
  (the same handlers as the custom-function endpoint), each on a worker thread of its
  own, parallel calls side by side; reports them to Retell as tool_call_invocation /
  tool_call_result, feeds the results back to the engine and keeps them in the call's
  ledger of effects (`effects`, given to engines as `CallContext.effects`): a tool that
  ran is in it even when its turn is superseded, and a newer turn starts only once the
  tools of older turns have finished;
- keeps the call's state (protocol, engine memory, ledger) in the Django cache, Redis
  in production, so a reconnect of the same call, in this process or another, goes on
  where the conversation was;
- sends every frame through one ordered queue, and saves the state through the same
  queue: a frame enters it in the same step as the protocol decides it (nothing is
  awaited in between), so frames leave in the order the protocol decided them (no frame
  of an older id after a newer one started), and the state is saved before each final
  frame goes out;
- tells the protocol when a final frame was written (`written`): only then is the request
  answered, the turn's engine memory kept and its tools marked `answered`. A socket that
  dies first leaves the request pending, with the memory from before the turn, and the
  next connection answers it;
- times every answer in one place (`TurnRecord`, in `session.turns`): when the request
  arrived, when the first frame of the answer and its last frame left for the socket,
  what was said and which tools ran with which results. The Call row's writer takes
  them from there (`on_turn` is called as each turn ends).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache

# run_tool, tool_succeeded, TurnRecord and sessions_running are the call session's (shared with the
# Twilio path); imported here too, where callers have always found them.
from .call_session import (  # noqa: F401
    ENGINE_FAILED,
    RECORD_EVERY_TURNS,
    RECORDING_GRACE_SECONDS,
    CallSession,
    TurnRecord,
    run_tool,
    sessions_running,
    tool_succeeded,
)
from .dialog.base import DialogEngine, ToolCall, Turn
from .protocols import retell_llm as proto
from .selectors import agent_for_plain_path

logger = logging.getLogger(__name__)

CLOSE_SERVER_ERROR = 1011

# How long the begin message waits for call_details when the greeting uses the call's variables.
GREETING_VARIABLES_WAIT = 1.0


def state_key(agent_pk: int, call_id: str) -> str:
    return f"retell-llm:call:{agent_pk}:{call_id}"


_cache_get = sync_to_async(cache.get, thread_sensitive=False)
_cache_set = sync_to_async(cache.set, thread_sensitive=False)


class _Close:
    def __init__(self, code: int, reason: str = "") -> None:
        self.code, self.reason = code, reason


# An outbox step: save the call's state, in order with the frames around it.
_SAVE = object()


class RetellCallSession(CallSession):
    """One call on one socket: Retell's frames around the call session's turns (CallSession).

    `engine` is the dialog engine to answer with; None (the consumer's case) takes the
    one the agent is set to (`engine_for`).
    """

    def __init__(self, *, call_id: str, send: Callable[[str], Awaitable[None]],
                 close: Callable[[int], Awaitable[None]], agent=None, clock: Callable[[], float] = time.time,
                 on_turn: Callable[[TurnRecord], None] | None = None, engine: DialogEngine | None = None) -> None:
        # The agent is known from the socket token, or from call_details on the plain path.
        super().__init__(call_id=call_id, agent=agent, engine=engine, on_turn=on_turn, clock=clock)
        self._send = send
        self._close = close
        self.protocol = proto.RetellLLMConnection(end_call_grace=settings.RETELL_LLM_END_CALL_GRACE)
        self._outbox: asyncio.Queue = asyncio.Queue()
        self._save_queued = False
        self._saving: asyncio.Future | None = None   # the cache write under way
        self._call_details = asyncio.Event()
        self._rearm = asyncio.Event()   # wakes the ticker when a new deadline (end_call) is set
        self._arrivals: dict[int, tuple[float, float]] = {}   # the newest request: (epoch, perf_counter)

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._register()
        self._spawn(self._writer())
        self._handle(self.protocol.open(self._clock()))
        self._spawn(self._ticker())
        self._spawn(self._prepare(self._prepare_known_agent if self._agent is not None else self._wait_for_agent))

    async def stop(self) -> None:
        """The socket is gone: stop the work, keep the state for a reconnect.

        Tools already running are not abandoned: they finish (within the tool timeout) and
        enter the ledger before the state is saved for the next connection.
        """
        if self._stopped:
            return
        self._stopped = True
        for task in list(self._responses.values()) + list(self._background):
            task.cancel()
        await self._wait_for_tools()
        await self._save()
        await self._finish_records()

    async def _prepare(self, step) -> None:
        """Load the call; if that fails, close (1011) so Retell reconnects rather than waits in silence."""
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Call %s: the call could not be prepared; closing.", self.call_id)
            self._handle([self.protocol.close(CLOSE_SERVER_ERROR, "server error")])

    async def _prepare_known_agent(self) -> None:
        await self._load(self._agent)
        # The greeting waits briefly for call_details when it needs their variables, or the caller's
        # number for a running experiment's variant.
        waits = "{{" in (self._agent.begin_message or "") or (
            self.context.experiment is None and bool(self.context.experiment_plan))
        if waits and self.protocol.state.call is None:
            try:
                await asyncio.wait_for(self._call_details.wait(), GREETING_VARIABLES_WAIT)
            except TimeoutError:
                pass
        await self._experiment_apply()
        self._begin()

    async def _wait_for_agent(self) -> None:
        """Plain path: nothing is said until call_details names an agent of a company that allows it."""
        try:
            await asyncio.wait_for(self._call_details.wait(), settings.RETELL_LLM_CALL_DETAILS_TIMEOUT)
        except TimeoutError:
            logger.warning("Call %s on the plain path: no call_details in time; closing.", self.call_id)
            self._handle([self.protocol.close(proto.CLOSE_POLICY_VIOLATION, "no call_details")])
            return
        call = self.protocol.state.call or {}
        if call.get("call_id", self.call_id) != self.call_id:
            logger.warning("Call %s on the plain path: call_details are for another call; closing.", self.call_id)
            self._handle([self.protocol.close(proto.CLOSE_POLICY_VIOLATION, "call_details of another call")])
            return
        agent_id = call.get("agent_id")
        agent = await database_sync_to_async(agent_for_plain_path)(agent_id)
        if agent is None:
            logger.warning("Call %s on the plain path: agent %r is unknown or its company does not accept the "
                           "plain path; closing.", self.call_id, agent_id)
            self._handle([self.protocol.close(proto.CLOSE_POLICY_VIOLATION, "agent not accepted")])
            return
        self._agent = agent
        await self._load(agent)
        await self._experiment_apply()
        self._begin()

    async def _load(self, agent) -> None:
        await self._load_context(agent)
        saved = await _cache_get(state_key(agent.pk, self.call_id))
        if saved is not None and not (isinstance(saved, dict) and isinstance(saved.get("protocol"), dict)):
            logger.warning("Call %s: the saved call state is unreadable; starting afresh.", self.call_id)
            saved = None
        if saved:
            self.protocol.adopt(proto.CallState.from_dict(saved.get("protocol")))
            self.engine_state = saved.get("engine") or {}
            self.effects[:] = [e for e in saved.get("effects") or [] if isinstance(e, dict)]
            logger.info("Call %s: reconnected (connection %s).", self.call_id, self.protocol.state.connections)
        self._apply_call_details()

    def _begin(self) -> None:
        if self._stopped or self.protocol.closed:
            return
        self._handle(self.protocol.begin(self.context.greeting()))

    def _apply_call_details(self) -> None:
        call = self.protocol.state.call or {}
        if self.context is None:
            return
        number = call.get("from_number") if call.get("direction", "inbound") == "inbound" else call.get("to_number")
        self.context.caller_number = number if isinstance(number, str) and number else None
        variables = call.get("retell_llm_dynamic_variables")
        self.context.variables = variables if isinstance(variables, dict) else {}

    def _queue_save(self) -> None:
        """Save the state once the frames queued so far are out (one save step stands for
        all asked for meanwhile: it writes the state as it is when it runs)."""
        if not self._save_queued:
            self._save_queued = True
            self._outbox.put_nowait(_SAVE)

    async def _save(self) -> None:
        """Write the call's state to the cache, after any write still under way (a later
        state never lands before an earlier one)."""
        if self._agent is None:
            return
        if self._saving is not None and not self._saving.done():
            await asyncio.wait([self._saving])
        # The protocol's and the engine's state are replaced, never changed in place; the
        # ledger's entries are, so they are copied.
        data = {"protocol": self.protocol.state.to_dict(), "engine": self.engine_state,
                "effects": [dict(effect) for effect in self.effects]}
        self._saving = asyncio.ensure_future(
            _cache_set(state_key(self._agent.pk, self.call_id), data, settings.RETELL_LLM_STATE_TTL))
        try:
            await asyncio.shield(self._saving)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Call %s: the call state could not be saved.", self.call_id)

    # --- inbound -----------------------------------------------------------------------------------

    async def receive(self, data: str | bytes) -> None:
        """One frame from Retell; returns at once (answers run in their own tasks)."""
        if self._stopped:
            return
        arrived = (self._clock(), time.perf_counter())
        actions = self.protocol.receive(data, arrived[0])
        pending = self.protocol.state.pending
        if pending is not None and pending["response_id"] not in self._arrivals:
            # A request is timed from here, even when it is started later (after the begin message).
            self._arrivals = {pending["response_id"]: arrived}
        self._handle(actions)

    def _handle(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, proto.SendFrame):
                if action.frame.get("content_complete") and action.frame.get("response_type") == "response":
                    self._queue_save()  # saved before the last frame goes out
                self._outbox.put_nowait(action)
            elif isinstance(action, proto.StartResponse):
                self._open_turn(action)
                # The engine works on a copy of the memory of the last answered turn.
                working = copy.deepcopy(self.engine_state)
                self._start_answer(action.response_id, self._answer(action, working))
                self._queue_save()  # the open request survives a connection that dies now
            elif isinstance(action, proto.CancelResponse):
                self._supersede(action.response_id)
            elif isinstance(action, proto.CallDetailsReceived):
                named = action.call.get("agent_id")
                if self._agent is not None and named and named != self._agent.agent_id:
                    logger.warning("Call %s: call_details names agent %r, the socket token agent %r; the token "
                                   "decides.", self.call_id, named, self._agent.agent_id)
                self._apply_call_details()
                self._call_details.set()
            elif isinstance(action, proto.CloseConnection):
                self._outbox.put_nowait(_Close(action.code, action.reason))
            elif isinstance(action, proto.MalformedFrame):
                logger.warning("Call %s: malformed frame ignored: %s.", self.call_id, action.reason)
                logger.debug("Call %s: malformed frame: %s", self.call_id, action.excerpt)
            elif isinstance(action, proto.IgnoredFrame):
                logger.info("Call %s: frame ignored (%s): %s.", self.call_id, action.reason,
                            action.interaction_type)

    # --- answering -------------------------------------------------------------------------------

    async def _answer(self, request: proto.StartResponse, working: dict) -> None:
        response_id = request.response_id
        turn = Turn(response_id=response_id, transcript=request.transcript, reminder=request.reminder,
                    transcript_with_tool_calls=request.transcript_with_tool_calls,
                    interrupted_transfer=request.interrupted_transfer,
                    interrupted_end_call=request.interrupted_end_call)
        outcome = await self._converse(turn, working,
                                       lambda text: self._handle(self.protocol.chunk(response_id, text)))
        if outcome is None:
            return
        end_call, transfer = outcome
        # Decided and queued in one step: nothing awaited in between lets a newer request's
        # frames into the outbox first.
        actions = self.protocol.complete(response_id, now=self._clock(), end_call=end_call,
                                         transfer_number=transfer if not end_call else None)
        if actions:
            self._memories[response_id] = working   # kept once the final frame is written
            self._handle(actions)
            if end_call:
                self._rearm.set()

    # --- the call session's hooks: what a turn's events mean on Retell's socket ------------------------

    def _is_current(self, response_id: int) -> bool:
        return self.protocol.is_current(response_id)

    def _ending(self, response_id: int, *, end_call: bool = False, transfer: str | None = None) -> None:
        if end_call:
            self.protocol.ending(response_id, end_call=True)
        else:
            self.protocol.ending(response_id, transfer_number=transfer)

    def _tool_started(self, call: ToolCall) -> None:
        """Reported to Retell as tool_call_invocation."""
        self._handle(self.protocol.tool_invocation(call.tool_call_id, call.name, call.arguments))

    def _tool_reported(self, call: ToolCall, result: dict, successful: bool) -> None:
        self._handle(self.protocol.tool_result(call.tool_call_id, json.dumps(result, ensure_ascii=False, default=str),
                                               successful=successful))

    def _state_changed(self) -> None:
        self._queue_save()

    def _live_transcript(self) -> list:
        state = self.protocol.state
        return list(state.transcript_with_tool_calls or state.transcript or [])

    def _written(self, response_id: int) -> None:
        """The final frame of `response_id` was written: the request is answered."""
        self.protocol.written(response_id)
        self._answered(response_id)

    # --- timers and the outbox -----------------------------------------------------------------------

    async def _ticker(self) -> None:
        while not self.protocol.closed:
            try:
                await asyncio.wait_for(self._rearm.wait(), self.protocol.seconds_until_tick(self._clock()))
            except TimeoutError:
                pass
            self._rearm.clear()
            self._handle(self.protocol.tick(self._clock()))

    async def _writer(self) -> None:
        while True:
            item = await self._outbox.get()
            if item is _SAVE:
                self._save_queued = False
                await self._save()
                continue
            if isinstance(item, _Close):
                await self._close(item.code)
                return
            try:
                await self._send(item.text)
            except Exception:
                logger.info("Call %s: the socket is gone; %d frame(s) unsent.", self.call_id,
                            self._outbox.qsize() + 1)
                return
            frame = item.frame
            if frame.get("response_type") == "response":
                self._sent_response(frame)
                if frame.get("content_complete") and frame.get("response_id") != proto.BEGIN_RESPONSE_ID:
                    self._written(frame["response_id"])

    # --- turn records: the one place answers are timed ---------------------------------------------

    def _open_turn(self, request: proto.StartResponse) -> None:
        # A request that did not arrive on this connection (left open by a dead one) starts now.
        arrived = self._arrivals.get(request.response_id)
        started_at, started = arrived or (self._clock(), time.perf_counter())
        self._new_turn(request.response_id, reminder=request.reminder, started_at=started_at, started=started,
                       resumed=arrived is None)

    def _sent_response(self, frame: dict) -> None:
        """A response frame left for the socket: the first one and the last one of a turn are timed."""
        turn = self._open_turns.get(frame.get("response_id"))
        if turn is None:
            return
        elapsed = (time.perf_counter() - turn._started) * 1000
        if turn.first_chunk_ms is None:
            turn.first_chunk_ms = elapsed
        turn.content += frame.get("content") or ""
        if frame.get("content_complete"):
            turn.complete_ms = elapsed
            turn.end_call = bool(frame.get("end_call"))
            turn.transfer_number = frame.get("transfer_number")
            self._end_turn(turn.response_id)
