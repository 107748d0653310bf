"""What a turn of a live call means, on every voice path: the one call session both sockets drive.

A live call (Retell's Custom LLM socket, voice.retell_session; Twilio's Media Streams socket,
voice.twilio_session) is a sequence of turns: the caller said something (or was quiet too long),
the dialog engine answers. `CallSession` holds what a turn means on both paths, so a turn, a
barge-in and a tool's side effects mean the same whichever socket carried the call:

- the call's agent and company, loaded once as the engines' `CallContext` (voice.selectors);
- the engine run for one turn (`_converse`): text chunks go to the path's `say` callback, each
  tool the engine asks for runs through appointments.handlers.run_custom_function (`run_tool`)
  on a worker thread of its own, its result goes back into the engine and into the call's
  ledger of effects (`effects`, voice.dialog.base); a failing engine says ENGINE_FAILED;
- the superseded-turn rules (`_supersede`): a turn the caller talked over is cancelled, but a
  tool it started still finishes and enters the ledger, and its turn record ends once its tools
  have; a newer turn's engine starts only once the tools of older turns have finished;
- the engine memory of a turn is kept only once its answer reached the caller (`_answered`);
- the per-turn records (`TurnRecord`) written in batches onto the call's row
  (voice.services.call_record_live_turns) with the path's transcript.

A path adds how words arrive and leave (frames of its protocol), through a few hooks:
`_is_current`, `_ending`, `_tool_started`, `_tool_reported`, `_state_changed` and
`_live_transcript`.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import time
from collections.abc import Callable

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
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
from .selectors import call_context

logger = logging.getLogger(__name__)

ENGINE_FAILED = {
    "en": "I'm sorry, something went wrong on my side. Could you say that again?",
    "de": "Entschuldigung, da ist bei mir etwas schiefgegangen. Könnten Sie das bitte wiederholen?",
}

RECORDING_GRACE_SECONDS = 5.0
RECORD_EVERY_TURNS = 5


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


# The per-turn timings only the Twilio path measures (it runs the speech itself); None elsewhere,
# and then left out of the record, so Retell's records keep their shape.
SPEECH_TIMINGS = ("stt_ms", "engine_first_chunk_ms", "tts_first_byte_ms")


@dataclasses.dataclass
class TurnRecord:
    """One request of a call and how it was answered, timed where the frames leave.

    `first_chunk_ms` is the latency the caller waits for: from the request (Retell's
    response_required or reminder_required frame; on Twilio the end of the caller's speech or
    the silence that asks for a reminder) to the first frame of the answer handed to the
    socket; `complete_ms` the same to the answer's last frame. A turn superseded by a newer
    request (or by the caller talking over it) ends with `superseded`, once the tools it
    started have finished (so its record holds their results).

    The Twilio path also times its speech, in milliseconds: `stt_ms` from the end of the
    caller's speech to the transcript, `engine_first_chunk_ms` from the engine's start to its
    first words, `tts_first_byte_ms` from the engine's first words reaching text-to-speech to its
    first audio byte.
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
    stt_ms: float | None = None
    engine_first_chunk_ms: float | None = None
    tts_first_byte_ms: float | None = None
    _started: float = dataclasses.field(default=0.0, repr=False)  # perf_counter at arrival

    @property
    def finished(self) -> bool:
        return self.complete_ms is not None or self.superseded

    def to_dict(self) -> dict:
        record = {name: getattr(self, name) for name in (
            "response_id", "reminder", "started_at", "resumed", "first_chunk_ms", "complete_ms", "content",
            "tool_calls", "end_call", "transfer_number", "superseded")}
        record.update({name: getattr(self, name) for name in SPEECH_TIMINGS if getattr(self, name) is not None})
        return record


_running: set["CallSession"] = set()


def sessions_running() -> int:
    """Calls this process is serving, on any path, from start until stopped (turn records written)."""
    return len(_running)


class CallSession:
    """The path-independent half of one live call (module docstring).

    `agent` is the call's Agent row (with its company) when known at the start; `engine` the
    dialog engine to answer with (None: the one the agent is set to); `on_turn` is called
    with each TurnRecord as it ends; `clock` gives epoch seconds.
    """

    def __init__(self, *, call_id: str, agent=None, engine: DialogEngine | None = None,
                 on_turn: Callable[[TurnRecord], None] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.call_id = call_id
        self._agent = agent
        self._clock = clock
        self.context: CallContext | None = None
        self.engine: DialogEngine | None = engine
        self._engine_given = engine is not None
        self.engine_state: dict = {}   # the memory after the newest turn whose answer reached the caller
        self.effects: list[dict] = []  # the call's ledger of effects (voice.dialog.base)
        self._memories: dict[int, dict] = {}   # a turn's memory, decided, until its answer is delivered
        self._tool_runs: set[asyncio.Task] = set()
        self._responses: dict[int, asyncio.Task] = {}
        self._background: set[asyncio.Task] = set()
        self._stopped = False
        self.turns: list[TurnRecord] = []
        self._open_turns: dict[int, TurnRecord] = {}
        self._on_turn = on_turn
        self._recordings: set[asyncio.Task] = set()   # turn records being written to the call's row
        self._unrecorded: list[dict] = []             # finished turns not yet handed to a writer

    # --- hooks of the path ---------------------------------------------------------------------

    def _is_current(self, response_id: int) -> bool:
        """Is `response_id` still the turn being answered (not superseded)?"""
        return response_id in self._responses

    def _ending(self, response_id: int, *, end_call: bool = False, transfer: str | None = None) -> None:
        """The engine said how the turn ends (before its words are all out)."""

    def _tool_started(self, call: ToolCall) -> None:
        """The engine asked for `call`; it starts now."""

    def _tool_reported(self, call: ToolCall, result: dict, successful: bool) -> None:
        """`call` finished with `result`."""

    def _state_changed(self) -> None:
        """The call's state (ledger, memory) changed: a path that keeps it somewhere saves it."""

    def _live_transcript(self) -> list:
        """The transcript written with the turn records."""
        return []

    # --- lifecycle ---------------------------------------------------------------------------------

    def _register(self) -> None:
        _running.add(self)

    async def _load_context(self, agent, context: CallContext | None = None) -> None:
        """The engines' view of the call's company and agent (read now, unless the path read it
        already as `context`), and the engine the agent is set to."""
        self.context = context or await database_sync_to_async(call_context)(agent=agent, call_id=self.call_id)
        self.engine = self.engine or engine_for(self.context.agent)

    async def _experiment_apply(self) -> None:
        """A running prompt experiment gives the call its variant once the caller's number is known
        (call_context assigns it already when the Call row holds the number); the engine follows
        the variant's, unless the session was given one."""
        from experiments.services import experiment_apply

        if self.context.experiment is None and self.context.experiment_plan:
            if await database_sync_to_async(experiment_apply)(self.context, self.context.caller_number or ""):
                self.engine = self.engine if self._engine_given else engine_for(self.context.agent)

    async def _wait_for_tools(self) -> None:
        """Tools still running (started by turns now cancelled) finish and enter the ledger."""
        if self._tool_runs:
            await asyncio.wait(list(self._tool_runs), timeout=settings.RETELL_LLM_TOOL_TIMEOUT + 1.0)

    async def _finish_records(self) -> None:
        """The call stopped: the buffered turn records are written, then the call counts as stopped."""
        try:
            self._flush_turns()
            if self._recordings:
                # Turn records already handed to a thread are written, not abandoned.
                await asyncio.wait(list(self._recordings), timeout=RECORDING_GRACE_SECONDS)
        finally:
            _running.discard(self)

    # --- one turn ------------------------------------------------------------------------------------

    def _start_answer(self, response_id: int, coroutine) -> asyncio.Task:
        """Run the answer of `response_id` as the current turn's task."""
        task = self._spawn(coroutine, track=False)
        self._responses[response_id] = task
        return task

    async def _converse(self, turn: Turn, working: dict, say: Callable[[str], None]
                        ) -> tuple[bool, str | None] | None:
        """Run the engine on `turn` with the memory `working` (a copy; kept by `_answered`).

        Each text chunk goes to `say`; tools run (`_start_tool`) and their results go back into
        the engine. Returns (end_call, transfer number) once the engine is done, or None when the
        turn stopped being current meanwhile. A failing engine is logged and ENGINE_FAILED said.
        """
        response_id = turn.response_id
        if self._tool_runs:
            # Tools an earlier turn started are still running: their effects are in the
            # ledger before this turn's engine reads it.
            await asyncio.wait(list(self._tool_runs))
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
                if not self._is_current(response_id):
                    return None
                if isinstance(event, TextChunk):
                    say(event.text)
                elif isinstance(event, ToolCall):
                    # Shielded: a tool superseded mid-run still finishes and enters the ledger.
                    reply = await asyncio.shield(self._start_tool(event, context, response_id))
                elif isinstance(event, ToolCalls):
                    running = [self._start_tool(call, context, response_id) for call in event.calls]
                    reply = list(await asyncio.shield(asyncio.gather(*running)))
                elif isinstance(event, EndCall):
                    end_call = True
                    self._ending(response_id, end_call=True)
                elif isinstance(event, Transfer):
                    transfer = event.number
                    if not end_call:
                        self._ending(response_id, transfer=transfer)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Call %s: the %s engine failed on response %s.", self.call_id, self.engine.name,
                             response_id)
            say(ENGINE_FAILED[context.language])
            end_call, transfer = False, None
        finally:
            await stream.aclose()
            if self._responses.get(response_id) is asyncio.current_task():
                del self._responses[response_id]
        return end_call, transfer

    def _start_tool(self, call: ToolCall, context: CallContext, response_id: int) -> asyncio.Task:
        """Report the tool and start it; the task returns its result once reported."""
        self._tool_started(call)
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
        self._tool_reported(call, result, successful)
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
        self._state_changed()

    def _supersede(self, response_id: int) -> None:
        """The caller went on before turn `response_id` was answered: its engine stops; its record
        ends as superseded once the tools it started have finished (they are not abandoned)."""
        turn = self._open_turns.get(response_id)
        if turn is not None and any("result" not in record for record in turn.tool_calls):
            turn.superseded = True   # ended once its tools have finished (_run_tool)
        else:
            self._end_turn(response_id, superseded=True)
        task = self._responses.pop(response_id, None)
        if task is not None:
            task.cancel()

    def _answered(self, response_id: int) -> None:
        """Turn `response_id`'s answer reached the caller: its memory is kept, its tools answered."""
        memory = self._memories.pop(response_id, None)
        if memory is not None:
            self.engine_state = memory
        for older in [rid for rid in self._memories if rid < response_id]:
            del self._memories[older]
        for effect in self.effects:
            if effect.get("response_id") == response_id:
                effect["answered"] = True
        self._state_changed()

    # --- turn records: the one place answers are timed ---------------------------------------------

    def _new_turn(self, response_id: int, *, reminder: bool, started_at: float, started: float,
                  resumed: bool = False) -> TurnRecord:
        turn = TurnRecord(response_id=response_id, reminder=reminder, started_at=started_at, resumed=resumed,
                          _started=started)
        self.turns.append(turn)
        self._open_turns[response_id] = turn
        return turn

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
        recording = self._spawn(sync_to_async(_record_live_turns, thread_sensitive=False)(
            agent=self._agent, call_id=self.call_id, turns=turns, transcript=self._live_transcript(),
            dialog_engine=getattr(self.engine, "name", "")), track=False)
        self._recordings.add(recording)
        recording.add_done_callback(self._recordings.discard)

    def _task_done(self, task: asyncio.Task) -> None:
        # A task's failure is logged when it happens, with the call, not when the task is collected.
        if not task.cancelled() and task.exception() is not None:
            logger.error("Call %s: a task of the call failed.", self.call_id, exc_info=task.exception())

    def _spawn(self, coroutine, *, track: bool = True) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        task.add_done_callback(self._task_done)
        if track:
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return task
