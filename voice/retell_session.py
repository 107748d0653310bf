"""One live call on Retell's Custom LLM socket: the protocol, the dialog engine and the tools.

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
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections

from .dialog.base import (
    CallContext,
    DialogEngine,
    EndCall,
    TextChunk,
    ToolCall,
    ToolCalls,
    Transfer,
    Turn,
    engine_for,
)
from .protocols import retell_llm as proto
from .selectors import agent_for_plain_path, call_context

logger = logging.getLogger(__name__)

CLOSE_SERVER_ERROR = 1011

# How long the begin message waits for call_details when the greeting uses the call's variables.
GREETING_VARIABLES_WAIT = 1.0

ENGINE_FAILED = {
    "en": "I'm sorry, something went wrong on my side. Could you say that again?",
    "de": "Entschuldigung, da ist bei mir etwas schiefgegangen. Könnten Sie das bitte wiederholen?",
}


def state_key(agent_pk: int, call_id: str) -> str:
    return f"retell-llm:call:{agent_pk}:{call_id}"


_cache_get = sync_to_async(cache.get, thread_sensitive=False)
_cache_set = sync_to_async(cache.set, thread_sensitive=False)


# --- the one tool runner ------------------------------------------------------------------------

def _run_custom_function(*, company, name: str, args: dict, call_id: str, caller_number: str | None,
                         language: str | None, is_test: bool) -> dict:
    from appointments.handlers import run_custom_function

    # A worker thread of the pool: its own database connection, closed when stale.
    close_old_connections()
    try:
        return run_custom_function(company=company, name=name, args=args, call_id=call_id,
                                   caller_number=caller_number, language=language, is_test=is_test)
    finally:
        close_old_connections()


RECORDING_GRACE_SECONDS = 5.0
RECORD_EVERY_TURNS = 5


def _record_live_turns(*, agent, call_id: str, turns: list[dict], transcript: list, dialog_engine: str) -> None:
    from .services import call_record_live_turns

    close_old_connections()
    try:
        call_record_live_turns(company=agent.company, agent=agent, call_id=call_id, turns=turns,
                               transcript=transcript, dialog_engine=dialog_engine)
    except Exception:  # the call goes on; the admin misses these turns' records
        logger.exception("Call %s: turns %s could not be recorded.", call_id, [t.get("response_id") for t in turns])
    finally:
        close_old_connections()


def tool_succeeded(result: dict) -> bool:
    return not (result.get("error") or result.get("success") is False or result.get("ok") is False)


async def run_tool(*, company, name: str, args: dict, call_id: str, caller_number: str | None,
                   language: str | None = None, is_test: bool = False) -> dict:
    """Run one custom function for a live call; a failure is a result the engine can speak about.

    `company` is the call's Company row, loaded once when the call started (with its agent);
    `language` ("de" / "en") is the call's, in which the result's message is said; `is_test`: a
    testing tool's call, whose bookings are marked as tests.
    The function runs on a worker thread of its own with its own database connection (not
    the one shared database thread), so parallel tool calls run side by side. Returns the
    handler's result dict; `{"error": "timeout" | "failed", "message": ""}` after
    RETELL_LLM_TOOL_TIMEOUT seconds or an exception.
    """
    try:
        result = await asyncio.wait_for(
            sync_to_async(_run_custom_function, thread_sensitive=False)(
                company=company, name=name, args=args, call_id=call_id, caller_number=caller_number,
                language=language, is_test=is_test),
            timeout=settings.RETELL_LLM_TOOL_TIMEOUT)
    except TimeoutError:
        logger.warning("Call %s: %s took longer than %ss.", call_id, name, settings.RETELL_LLM_TOOL_TIMEOUT)
        return {"error": "timeout", "message": ""}
    except Exception:
        logger.exception("Call %s: %s failed.", call_id, name)
        return {"error": "failed", "message": ""}
    return result if isinstance(result, dict) else {"result": result}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class _Close:
    def __init__(self, code: int, reason: str = "") -> None:
        self.code, self.reason = code, reason


# An outbox step: save the call's state, in order with the frames around it.
_SAVE = object()


@dataclasses.dataclass
class TurnRecord:
    """One request of a call and how it was answered, timed where the frames leave.

    `first_chunk_ms` is the latency the caller waits for: from the response_required
    (or reminder_required) frame handed to the session to the first response frame of
    that id handed to the socket; `complete_ms` the same to the frame with
    content_complete. A turn superseded by a newer request ends with `superseded`, once
    the tools it started have finished (so its record holds their results).
    """
    response_id: int
    reminder: bool
    started_at: float                      # epoch seconds, when the request arrived
    resumed: bool = False                  # left open by a dead connection, answered on this one
    first_chunk_ms: float | None = None
    complete_ms: float | None = None
    content: str = ""
    tool_calls: list = dataclasses.field(default_factory=list)
    end_call: bool = False
    transfer_number: str | None = None
    superseded: bool = False
    _started: float = dataclasses.field(default=0.0, repr=False)  # perf_counter at arrival

    @property
    def finished(self) -> bool:
        return self.complete_ms is not None or self.superseded

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in (
            "response_id", "reminder", "started_at", "resumed", "first_chunk_ms", "complete_ms", "content",
            "tool_calls", "end_call", "transfer_number", "superseded")}


_running: set["RetellCallSession"] = set()


def sessions_running() -> int:
    """Calls this process is serving, from start until stopped (turn records written)."""
    return len(_running)


class RetellCallSession:
    """One call on one socket.

    `engine` is the dialog engine to answer with; None (the consumer's case) takes the
    one the agent is set to (`engine_for`).
    """

    def __init__(self, *, call_id: str, send: Callable[[str], Awaitable[None]],
                 close: Callable[[int], Awaitable[None]], agent=None, clock: Callable[[], float] = time.time,
                 on_turn: Callable[[TurnRecord], None] | None = None, engine: DialogEngine | None = None) -> None:
        self.call_id = call_id
        self._send = send
        self._close = close
        self._agent = agent            # known from the socket token, or from call_details on the plain path
        self._clock = clock
        self.protocol = proto.RetellLLMConnection(end_call_grace=settings.RETELL_LLM_END_CALL_GRACE)
        self.context: CallContext | None = None
        self.engine: DialogEngine | None = engine
        self.engine_state: dict = {}   # the memory after the newest turn whose answer was written
        self.effects: list[dict] = []  # the call's ledger of effects (voice.dialog.base)
        self._memories: dict[int, dict] = {}   # a turn's memory, decided, until its final frame is written
        self._tool_runs: set[asyncio.Task] = set()
        self._outbox: asyncio.Queue = asyncio.Queue()
        self._save_queued = False
        self._saving: asyncio.Future | None = None   # the cache write under way
        self._responses: dict[int, asyncio.Task] = {}
        self._background: set[asyncio.Task] = set()
        self._call_details = asyncio.Event()
        self._rearm = asyncio.Event()   # wakes the ticker when a new deadline (end_call) is set
        self._stopped = False
        self.turns: list[TurnRecord] = []
        self._open_turns: dict[int, TurnRecord] = {}
        self._arrivals: dict[int, tuple[float, float]] = {}   # the newest request: (epoch, perf_counter)
        self._on_turn = on_turn
        self._recordings: set[asyncio.Task] = set()   # turn records being written to the call's row
        self._unrecorded: list[dict] = []             # finished turns not yet handed to a writer

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        _running.add(self)
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
        if self._tool_runs:
            await asyncio.wait(list(self._tool_runs), timeout=settings.RETELL_LLM_TOOL_TIMEOUT + 1.0)
        await self._save()
        try:
            self._flush_turns()
            if self._recordings:
                # Turn records already handed to a thread are written, not abandoned.
                await asyncio.wait(list(self._recordings), timeout=RECORDING_GRACE_SECONDS)
        finally:
            _running.discard(self)

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
        if "{{" in (self._agent.begin_message or "") and self.protocol.state.call is None:
            try:
                await asyncio.wait_for(self._call_details.wait(), GREETING_VARIABLES_WAIT)
            except TimeoutError:
                pass
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
        self._begin()

    async def _load(self, agent) -> None:
        self.context = await database_sync_to_async(call_context)(agent=agent, call_id=self.call_id)
        self.engine = self.engine or engine_for(self.context.agent)
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
                self._responses[action.response_id] = self._spawn(self._answer(action, working), track=False)
                self._queue_save()  # the open request survives a connection that dies now
            elif isinstance(action, proto.CancelResponse):
                turn = self._open_turns.get(action.response_id)
                if turn is not None and any("result" not in record for record in turn.tool_calls):
                    turn.superseded = True   # ended once its tools have finished (_run_tool)
                else:
                    self._end_turn(action.response_id, superseded=True)
                task = self._responses.pop(action.response_id, None)
                if task is not None:
                    task.cancel()
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
        if self._tool_runs:
            # Tools an earlier turn started are still running: their effects are in the
            # ledger before this turn's engine reads it.
            await asyncio.wait(list(self._tool_runs))
        turn = Turn(response_id=response_id, transcript=request.transcript, reminder=request.reminder,
                    transcript_with_tool_calls=request.transcript_with_tool_calls,
                    interrupted_transfer=request.interrupted_transfer,
                    interrupted_end_call=request.interrupted_end_call)
        context = dataclasses.replace(self.context, state=working, effects=self.effects)
        stream = self.engine.respond(turn, context)
        end_call, transfer, reply = False, None, None
        try:
            while True:
                try:
                    event = await stream.asend(reply)
                except StopAsyncIteration:
                    break
                reply = None
                if not self.protocol.is_current(response_id):
                    return
                if isinstance(event, TextChunk):
                    self._handle(self.protocol.chunk(response_id, event.text))
                elif isinstance(event, ToolCall):
                    # Shielded: a tool superseded mid-run still finishes and enters the ledger.
                    reply = await asyncio.shield(self._start_tool(event, context, response_id))
                elif isinstance(event, ToolCalls):
                    running = [self._start_tool(call, context, response_id) for call in event.calls]
                    reply = list(await asyncio.shield(asyncio.gather(*running)))
                elif isinstance(event, EndCall):
                    end_call = True
                    self.protocol.ending(response_id, end_call=True)
                elif isinstance(event, Transfer):
                    transfer = event.number
                    if not end_call:
                        self.protocol.ending(response_id, transfer_number=transfer)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Call %s: the %s engine failed on response %s.", self.call_id, self.engine.name,
                             response_id)
            self._handle(self.protocol.chunk(response_id, ENGINE_FAILED[context.language]))
            end_call, transfer = False, None
        finally:
            await stream.aclose()
            if self._responses.get(response_id) is asyncio.current_task():
                del self._responses[response_id]
        # Decided and queued in one step: nothing awaited in between lets a newer request's
        # frames into the outbox first.
        actions = self.protocol.complete(response_id, now=self._clock(), end_call=end_call,
                                         transfer_number=transfer if not end_call else None)
        if actions:
            self._memories[response_id] = working   # kept once the final frame is written
            self._handle(actions)
            if end_call:
                self._rearm.set()

    def _start_tool(self, call: ToolCall, context: CallContext, response_id: int) -> asyncio.Task:
        """Report the tool to Retell and start it; the task returns its result once reported."""
        self._handle(self.protocol.tool_invocation(call.tool_call_id, call.name, call.arguments))
        record = {"tool_call_id": call.tool_call_id, "name": call.name, "arguments": call.arguments}
        turn = self._open_turns.get(response_id)
        if turn is not None:
            turn.tool_calls.append(record)
        # Not one of the session's background tasks: stopping the call lets it finish.
        running = self._spawn(self._run_tool(call, context, response_id, record), track=False)
        self._tool_runs.add(running)
        running.add_done_callback(self._tool_runs.discard)
        return running

    async def _run_tool(self, call: ToolCall, context: CallContext, response_id: int, record: dict) -> dict:
        result = await run_tool(company=self._agent.company, name=call.name, args=call.arguments,
                                call_id=self.call_id, caller_number=context.caller_number, language=context.language,
                                is_test=bool(context.test_origin))
        successful = tool_succeeded(result)
        record.update(result=result, successful=successful)
        self._handle(self.protocol.tool_result(call.tool_call_id, json.dumps(result, ensure_ascii=False, default=str),
                                               successful=successful))
        self._record_effect(call, result, response_id)
        turn = self._open_turns.get(response_id)
        if turn is not None and turn.superseded and all("result" in r for r in turn.tool_calls):
            self._end_turn(response_id, superseded=True)
        return result

    def _record_effect(self, call: ToolCall, result: dict, response_id: int) -> None:
        """The tool ran: into the ledger (in place, engines hold the list), replacing an
        entry of the same tool_call_id, and saved with the call."""
        for index, effect in enumerate(self.effects):
            if effect.get("tool_call_id") == call.tool_call_id:
                del self.effects[index]
                break
        # Copies: the engine gets the same dicts back and may change them.
        self.effects.append({"tool_call_id": call.tool_call_id, "name": call.name,
                             "arguments": copy.deepcopy(call.arguments), "result": copy.deepcopy(result),
                             "response_id": response_id, "answered": False})
        self._queue_save()

    def _written(self, response_id: int) -> None:
        """The final frame of `response_id` was written: the request is answered."""
        self.protocol.written(response_id)
        memory = self._memories.pop(response_id, None)
        if memory is not None:
            self.engine_state = memory
        for older in [rid for rid in self._memories if rid < response_id]:
            del self._memories[older]
        for effect in self.effects:
            if effect.get("response_id") == response_id:
                effect["answered"] = True
        self._queue_save()

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
        turn = TurnRecord(response_id=request.response_id, reminder=request.reminder, started_at=started_at,
                          resumed=arrived is None, _started=started)
        self.turns.append(turn)
        self._open_turns[request.response_id] = turn

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

    def _end_turn(self, response_id: int, *, superseded: bool = False) -> None:
        turn = self._open_turns.pop(response_id, None)
        if turn is None:
            return
        turn.superseded = superseded
        logger.debug("Call %s: response %s %s; first chunk %s ms, complete %s ms, %d tool call(s).", self.call_id,
                     response_id, "superseded" if superseded else "answered",
                     _ms(turn.first_chunk_ms), _ms(turn.complete_ms), len(turn.tool_calls))
        self._record_turn(turn)
        if self._on_turn is not None:
            try:
                self._on_turn(turn)
            except Exception:
                logger.exception("Call %s: the turn hook failed.", self.call_id)

    def _record_turn(self, turn: TurnRecord) -> None:
        """Finished turns go onto the call's row in batches (every RECORD_EVERY_TURNS, and
        when the call stops): one write per few turns keeps the database free for the
        callers' appointment functions."""
        if self._agent is None:
            return
        self._unrecorded.append(turn.to_dict())
        if len(self._unrecorded) >= RECORD_EVERY_TURNS:
            self._flush_turns()

    def _flush_turns(self) -> None:
        """Write the buffered turns on a worker thread: never on the event loop, and not
        queued behind the tools on the shared database thread."""
        if not self._unrecorded or self._agent is None:
            return
        turns, self._unrecorded = self._unrecorded, []
        state = self.protocol.state
        transcript = list(state.transcript_with_tool_calls or state.transcript or [])
        recording = self._spawn(sync_to_async(_record_live_turns, thread_sensitive=False)(
            agent=self._agent, call_id=self.call_id, turns=turns, transcript=transcript,
            dialog_engine=getattr(self.engine, "name", "")), track=False)
        self._recordings.add(recording)
        recording.add_done_callback(self._recordings.discard)

    def _spawn(self, coroutine, *, track: bool = True) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        if track:
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return task
