"""One live call on a Twilio Media Streams socket: the caller's audio in, the receptionist's voice out.

The consumer (voice/consumers.py, TwilioMediaConsumer) hands this session each frame it reads and
gives it a way to send and to close. The protocol is the sans-IO `MediaStream`
(voice/protocols/twilio_media.py); what a turn means (engine, tools, ledger, superseded turns,
turn records) is the call session's (voice/call_session.py), the same as on Retell's socket.

- `start`: the one-time token of `customParameters` is verified and used up
  (voice.twilio_tokens.verify_and_consume) and the call it names loaded
  (voice.selectors.twilio_stream_call, the number's speech providers first). A missing,
  forged, reused or expired token, or no `start` within TWILIO_START_TIMEOUT_SECONDS, closes
  the socket with 1008. Then the greeting is spoken.
- Speech in: each `media` payload (μ-law 8 kHz) goes through voice activity and end-of-turn
  detection (voice.speech.turns); an utterance streams to the speech-to-text provider while the
  caller speaks, held back by the end-of-turn silence, so the recogniser gets exactly the
  utterance the detector cut (its pre-roll in, the silence after it out). A non-empty final
  transcript is a caller turn.
- Speech out: the engine's words are spoken sentence by sentence as they stream (voice.speech.
  tts.speak_sentences); each sentence is synthesized while the previous one plays, its audio sent as
  20 ms `media` frames paced in real time TWILIO_PLAYBACK_LEAD_SECONDS ahead of what the caller
  hears, then a `mark` named after the sentence. A mark's echo says the sentence was heard; the
  transcript holds only heard sentences. A turn is answered (its engine memory kept, its tools
  `answered`) once the mark of its last sentence comes back; then an end_call hangs up and a
  transfer puts the caller through, over Twilio's REST API (voice.twilio_client).
- Barge-in: the caller starts speaking while agent audio is pending: `clear` goes out at once
  (ahead of anything queued), the engine's answer and its speech are cancelled, and the turn
  ends superseded (its tools finish and stay in the ledger, as on Retell). A new caller turn
  supersedes an answer still being worked out the same way.
- Silence: after TWILIO_REMINDER_SECONDS with neither side speaking, a reminder turn.
- DTMF `0`: the caller is put through to the company's number (twilio_transfer).
- `stop`, or the socket gone: the work stops; heard sentences stay in the transcript, open turns
  end superseded, the turn records are written to the call's row with the per-turn speech
  timings (stt_ms, engine_first_chunk_ms, tts_first_byte_ms).
- Bad input (not JSON, binary, unknown event, media before start, a huge frame) is counted in
  `bad_frames` and logged, never fatal.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import close_old_connections

from .call_session import CallSession, TurnRecord
from .dialog.base import DialogEngine, Turn
from .protocols import twilio_media as media
from .speech import audio
from .speech.errors import SpeechError
from .speech.tts import speak_sentences
from .speech.turns import SpeechEnded, SpeechStarted, TurnDetector
from .twilio_tokens import STREAM_TOKEN_PARAMETER, StreamTokenRefused, verify_and_consume

logger = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = 1008
CLOSE_SERVER_ERROR = 1011
GREETING = 0                      # the greeting's speech: not a turn
TICK_SECONDS = 0.2
TRANSFER_DIGIT = "0"
_LOGGED_PER_REASON = 5            # bad frames logged per reason; the rest only counted


@dataclass
class _Speech:
    """What one answer (or the greeting) says: sentences in, audio and marks out, marks heard back."""

    response_id: int
    pieces: asyncio.Queue = field(default_factory=asyncio.Queue)      # the words as they come, then None
    marks: list = field(default_factory=list)        # mark names, in order
    heard: list = field(default_factory=list)        # sentences whose marks came back
    complete: bool = False                           # every sentence's audio and mark is queued
    end_call: bool = False
    transfer: str | None = None
    voice_task: asyncio.Task | None = None
    entry: dict | None = None                        # its agent line in the transcript, once heard


def _stream_call(company_id: int, agent_id: int, call_sid: str):
    """Everything a verified stream reads from the database, in one hop to the database thread."""
    from .speech.registry import (
        speech_hints_for,
        speech_to_text_for,
        text_to_speech_for,
        turn_settings,
        voice_settings_for,
    )
    from .selectors import call_context, twilio_stream_call

    call = twilio_stream_call(company_id=company_id, agent_id=agent_id, call_sid=call_sid)
    if call is None:
        return None
    company = call.agent.company
    language = call.agent.language if call.agent.language != "multi" else company.language
    return {"call": call, "language": language,
            "stt": speech_to_text_for(company, choice=call.stt_choice, language=language),
            "tts": text_to_speech_for(company, choice=call.tts_choice, language=language),
            "hints": speech_hints_for(company), "voice": voice_settings_for(call.agent),
            "turn_settings": turn_settings(), "context": call_context(agent=call.agent, call_id=call_sid)}


def _twilio(action: str, company, call_sid: str, number: str | None = None) -> bool:
    from .twilio_client import twilio_hang_up, twilio_transfer

    close_old_connections()
    try:
        return twilio_transfer(company, call_sid, number) if action == "transfer" else twilio_hang_up(company, call_sid)
    finally:
        close_old_connections()


class TwilioCallSession(CallSession):
    """One call on one Media Streams socket (module docstring).

    `send(text)` writes a text frame, `close(code)` closes the socket. `engine` replaces the
    agent's dialog engine; `clock` gives epoch seconds. Timings are in seconds from settings.
    """

    def __init__(self, *, send: Callable[[str], Awaitable[None]], close: Callable[[int], Awaitable[None]],
                 engine: DialogEngine | None = None, on_turn: Callable[[TurnRecord], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(call_id="", engine=engine, on_turn=on_turn, clock=clock)
        self._send = send
        self._close = close
        self.stream = media.MediaStream()
        self.transcript: list[dict] = []
        self.bad_frames: collections.Counter = collections.Counter()
        self.closed_with: int | None = None
        self.lead = settings.TWILIO_PLAYBACK_LEAD_SECONDS
        self.reminder_after = settings.TWILIO_REMINDER_SECONDS
        self.ready = False
        self._starting = False
        self._language = "en"
        self.stt = self.tts = self._hints = self._voice_settings = None
        self._detector: TurnDetector | None = None
        self._hold_bytes = 0
        # audio out: ("media", bytes, response_id) / ("mark", name, response_id) / ("clear", None, None)
        self._out: collections.deque = collections.deque()
        self._out_ready = asyncio.Event()
        self._play_end = 0.0             # monotonic time the audio sent so far has played by
        self._speeches: dict[int, _Speech] = {}
        self._marks: dict[str, tuple[int, str]] = {}     # mark -> (response_id, sentence)
        self._next_response = 1
        self._quiet_since = time.monotonic()
        # the caller's utterance being heard
        self._recent = bytearray()       # the last second of caller audio (for the pre-roll)
        self._fed = 0                    # caller audio bytes fed to the detector
        self._utterance: bytearray | None = None
        self._utterance_sent = 0
        self._utterance_audio: asyncio.Queue | None = None
        self._hearing: set[asyncio.Task] = set()          # utterances being transcribed
        self._stop_lock = asyncio.Lock()

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """The socket is open: wait for Twilio's `start` (at most TWILIO_START_TIMEOUT_SECONDS)."""
        self._register()
        self._spawn(self._writer())
        self._spawn(self._start_deadline())

    async def stop(self) -> None:
        """The call ended (`stop`) or the socket is gone: stop speaking and hearing, let running tools
        finish, end open turns as superseded and write the turn records."""
        async with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            for speech in list(self._speeches.values()):
                self._cut_short(speech)
            for task in list(self._responses.values()) + list(self._background) + list(self._hearing):
                task.cancel()
            await self._wait_for_tools()
            for response_id in list(self._open_turns):
                self._end_turn(response_id, superseded=True)
            await self._finish_records()
            logger.info("Twilio call %s: stopped; %d turn(s), %d bad frame(s).", self.call_id, len(self.turns),
                        sum(self.bad_frames.values()))

    async def _start_deadline(self) -> None:
        await asyncio.sleep(settings.TWILIO_START_TIMEOUT_SECONDS)
        if not self._starting:
            logger.warning("Twilio media stream closed: no start within %ss.", settings.TWILIO_START_TIMEOUT_SECONDS)
            await self._refuse("no start")

    async def _refuse(self, reason: str, code: int = CLOSE_POLICY_VIOLATION) -> None:
        """Close the socket with `code` before the call began; nothing of the call runs on."""
        self.closed_with = code
        self._stopped = True
        for task in list(self._background):
            if task is not asyncio.current_task():
                task.cancel()
        try:
            await self._close(code)
        finally:
            await self._finish_records()

    async def _begin(self, started: media.Started) -> None:
        """Verify the token, load the call and its speech providers, and say the greeting; a fault of
        ours on the way closes the socket (1011) rather than leaving the caller in silence."""
        try:
            await self._prepare(started)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Twilio call %s: the call could not be prepared; closing.", started.call_sid)
            await self._refuse("server error", CLOSE_SERVER_ERROR)

    async def _prepare(self, started: media.Started) -> None:
        token = started.custom_parameters.get(STREAM_TOKEN_PARAMETER)
        try:
            grant = await sync_to_async(verify_and_consume, thread_sensitive=False)(token, started.call_sid)
        except StreamTokenRefused as refused:
            logger.warning("Twilio media stream of call %s refused: token %s.", started.call_sid, refused.code)
            await self._refuse(f"token {refused.code}")
            return
        try:
            loaded = await database_sync_to_async(_stream_call)(grant.company_id, grant.agent_id, grant.call_sid)
        except SpeechError as error:
            logger.error("Twilio call %s: no speech provider for it: %s", grant.call_sid, error)
            await self._refuse("speech unavailable", CLOSE_SERVER_ERROR)
            return
        if loaded is None:
            logger.warning("Twilio media stream of call %s refused: its company no longer takes Twilio calls.",
                           grant.call_sid)
            await self._refuse("call not accepted")
            return
        call = loaded["call"]
        self.call_id, self._agent = grant.call_sid, call.agent
        await self._load_context(call.agent, loaded["context"])
        self.context.caller_number = call.caller_number
        self._language = loaded["language"]
        self.stt, self.tts, self._hints, self._voice_settings = loaded["stt"], loaded["tts"], loaded["hints"], loaded["voice"]
        self._detector = TurnDetector(loaded["turn_settings"])
        self._hold_bytes = (loaded["turn_settings"].end_silence_ms // audio.FRAME_MS + 1) * audio.FRAME_BYTES
        if hasattr(self.stt, "prepare"):
            # The offline recogniser builds the company's vocabulary once (~0.5 s), while the greeting plays.
            self._spawn(asyncio.to_thread(self.stt.prepare, self._hints))
        self.ready = True
        self._quiet_since = time.monotonic()
        logger.info("Twilio call %s: media stream %s started.", self.call_id, started.stream_sid)
        self._spawn(self._ticker())
        greeting = self.context.greeting()
        if greeting:
            speech = self._new_speech(GREETING)
            speech.pieces.put_nowait(greeting)
            speech.pieces.put_nowait(None)

    # --- inbound -----------------------------------------------------------------------------------

    async def receive(self, data: str | bytes) -> None:
        """One frame from Twilio; returns at once (turns, speech and tools run in their own tasks)."""
        if self._stopped:
            return
        for event in self.stream.receive(data):
            if isinstance(event, media.Media):
                if self.ready:
                    self._hear(event.audio)
                # else: the caller's first audio while the token is checked; nobody has spoken yet
            elif isinstance(event, media.MarkPlayed):
                self._mark_played(event.name)
            elif isinstance(event, media.Started):
                self._starting = True
                self._spawn(self._begin(event))
            elif isinstance(event, media.Dtmf):
                if self.ready:
                    self._dtmf(event.digit)
            elif isinstance(event, media.Stopped):
                logger.info("Twilio call %s: the stream stopped.", self.call_id)
                self._spawn(self.stop(), track=False)
            elif isinstance(event, media.Malformed):
                self._bad(event.reason, event)
            elif isinstance(event, media.Ignored) and event.event != "mark":
                self._bad(f"{event.event}: {event.reason}", event, level=logging.INFO)
            # a mark echoed by a clear (or not ours) tells nothing was heard: nothing to do

    def _bad(self, reason: str, event, level: int = logging.WARNING) -> None:
        self.bad_frames[reason] += 1
        if self.bad_frames[reason] <= _LOGGED_PER_REASON:
            logger.log(level, "Twilio call %s: frame ignored: %s.", self.call_id or "(not started)", reason)

    # --- speech in ---------------------------------------------------------------------------------

    def _hear(self, ulaw: bytes) -> None:
        self._recent += ulaw
        del self._recent[:max(0, len(self._recent) - audio.ULAW_RATE)]
        self._fed += len(ulaw)
        events = self._detector.feed(ulaw)
        started = next((e for e in events if isinstance(e, SpeechStarted)), None)
        if started is not None:
            self._speech_started(started)
        elif self._utterance is not None:
            self._utterance += ulaw
        if self._utterance is not None:
            ready = len(self._utterance) - self._hold_bytes
            if ready > self._utterance_sent:
                self._utterance_audio.put_nowait(bytes(self._utterance[self._utterance_sent:ready]))
                self._utterance_sent = ready
        for event in events:
            if isinstance(event, SpeechEnded):
                self._speech_ended(event)

    def _speech_started(self, event: SpeechStarted) -> None:
        self._quiet_since = time.monotonic()
        if self._audio_pending():
            logger.info("Twilio call %s: the caller talks over the agent; clearing.", self.call_id)
            self._interrupt(clear=True)
        pre_roll = self._fed - event.at_ms * audio.ULAW_RATE // 1000
        self._utterance = bytearray(self._recent[-pre_roll:] if pre_roll > 0 else b"")
        self._utterance_sent = 0
        self._utterance_audio = asyncio.Queue()
        task = self._spawn(self._transcribe(self._utterance_audio), track=False)
        self._hearing.add(task)
        task.add_done_callback(self._hearing.discard)

    def _speech_ended(self, event: SpeechEnded) -> None:
        # What the detector kept of the utterance (the silence after it cut off) goes to the recogniser.
        self._utterance_audio.put_nowait(event.ulaw[self._utterance_sent:])
        self._utterance_audio.put_nowait(None)
        self._utterance, self._utterance_audio = None, None
        self._quiet_since = time.monotonic()

    async def _transcribe(self, chunks: asyncio.Queue) -> None:
        """One utterance: streamed to the recogniser, committed at its end; its text a caller turn."""
        try:
            async with self.stt.stream(language=self._language, hints=self._hints) as stream:
                while (chunk := await chunks.get()) is not None:
                    if chunk:
                        await stream.send(chunk)
                ended = (self._clock(), time.perf_counter())
                transcript = await stream.commit()
        except asyncio.CancelledError:
            raise
        except SpeechError as error:
            logger.warning("Twilio call %s: speech-to-text failed: %s", self.call_id, error)
            return
        text = " ".join((transcript.text or "").split())
        logger.debug("Twilio call %s: the caller said %r (%s ms).", self.call_id, text, transcript.ms)
        if text and not self._stopped:
            self._caller_turn(text, ended, transcript.ms)

    def _dtmf(self, digit: str) -> None:
        logger.info("Twilio call %s: the caller pressed %s.", self.call_id, digit)
        if digit != TRANSFER_DIGIT:
            return
        self.transcript.append({"role": "user", "content": "", "dtmf": digit})
        self._interrupt(clear=self._audio_pending())
        self._spawn(self._twilio_action("transfer"), track=False)

    # --- turns -------------------------------------------------------------------------------------

    def _caller_turn(self, text: str, ended: tuple[float, float], stt_ms: float) -> None:
        """The caller said `text` (their speech ended at `ended`: epoch and perf_counter seconds)."""
        self._interrupt(clear=self._audio_pending())
        self.transcript.append({"role": "user", "content": text})
        record = self._open(reminder=False, started_at=ended[0], started=ended[1])
        record.stt_ms = float(stt_ms)

    def _reminder_turn(self) -> None:
        self._open(reminder=True, started_at=self._clock(), started=time.perf_counter())

    def _open(self, *, reminder: bool, started_at: float, started: float) -> TurnRecord:
        response_id, self._next_response = self._next_response, self._next_response + 1
        record = self._new_turn(response_id, reminder=reminder, started_at=started_at, started=started)
        turn = Turn(response_id=response_id, transcript=copy.deepcopy(self.transcript), reminder=reminder)
        # The engine works on a copy of the memory of the last answered turn.
        self._start_answer(response_id, self._answer(turn, copy.deepcopy(self.engine_state), record))
        self._quiet_since = time.monotonic()
        return record

    async def _answer(self, turn: Turn, working: dict, record: TurnRecord) -> None:
        response_id = turn.response_id
        speech = self._new_speech(response_id)
        began = time.perf_counter()

        def say(text: str) -> None:
            if record.engine_first_chunk_ms is None:
                record.engine_first_chunk_ms = (time.perf_counter() - began) * 1000
            speech.pieces.put_nowait(text)

        outcome = await self._converse(turn, working, say)
        if outcome is None:
            return
        speech.end_call, speech.transfer = outcome[0], (outcome[1] if not outcome[0] else None)
        record.end_call, record.transfer_number = speech.end_call, speech.transfer
        self._memories[response_id] = working   # kept once the caller heard the answer
        speech.pieces.put_nowait(None)

    def _interrupt(self, *, clear: bool) -> None:
        """The caller went on: what the agent is saying or about to say is dropped (`clear` when some
        of it may be buffered at Twilio), and the turns it belongs to end superseded."""
        if clear:
            self._clear()
        for speech in list(self._speeches.values()):
            self._cut_short(speech)
        for response_id in list(self._responses):
            self._supersede(response_id)

    def _cut_short(self, speech: _Speech) -> None:
        self._speeches.pop(speech.response_id, None)
        if speech.voice_task is not None:
            speech.voice_task.cancel()
        record = self._open_turns.get(speech.response_id)
        if record is not None:
            record.content = " ".join(speech.heard)
            self._supersede(speech.response_id)

    # --- speech out --------------------------------------------------------------------------------

    def _new_speech(self, response_id: int) -> _Speech:
        speech = _Speech(response_id)
        self._speeches[response_id] = speech
        speech.voice_task = self._spawn(self._voice(speech), track=False)
        return speech

    async def _voice(self, speech: _Speech) -> None:
        """Speak the speech's words sentence by sentence (voice.speech.tts.speak_sentences): each
        sentence's audio queued in 20 ms frames, then its mark."""
        record = self._open_turns.get(speech.response_id)
        words_at: list[float] = []

        async def pieces():
            while (piece := await speech.pieces.get()) is not None:
                if not words_at:
                    words_at.append(time.perf_counter())
                yield piece

        pending = b""
        try:
            async with aclosing(speak_sentences(pieces(), self.tts, language=self._language,
                                                voice=self._voice_settings)) as chunks:
                async for chunk in chunks:
                    if chunk.sentence_end:
                        if pending:
                            self._queue(("media", next(audio.frames(pending)), speech.response_id))
                            pending = b""
                        name = f"{speech.response_id}.{chunk.index}"
                        self._marks[name] = (speech.response_id, chunk.sentence)
                        speech.marks.append(name)
                        self._queue(("mark", name, speech.response_id))
                        continue
                    if record is not None and record.tts_first_byte_ms is None and words_at:
                        record.tts_first_byte_ms = (time.perf_counter() - words_at[0]) * 1000
                    pending += chunk.audio
                    whole = len(pending) - len(pending) % audio.FRAME_BYTES
                    for start in range(0, whole, audio.FRAME_BYTES):
                        self._queue(("media", pending[start:start + audio.FRAME_BYTES], speech.response_id))
                    pending = pending[whole:]
        except asyncio.CancelledError:
            raise
        except SpeechError as error:
            logger.warning("Twilio call %s: text-to-speech failed: %s", self.call_id, error)
        speech.complete = True
        self._maybe_heard(speech)

    def _mark_played(self, name: str) -> None:
        response_id, sentence = self._marks.get(name, (None, ""))
        speech = self._speeches.get(response_id)
        if speech is None:
            return
        speech.heard.append(sentence)
        if speech.entry is None:
            speech.entry = {"role": "agent", "content": sentence}
            self.transcript.append(speech.entry)
        else:
            speech.entry["content"] += " " + sentence
        self._maybe_heard(speech)

    def _maybe_heard(self, speech: _Speech) -> None:
        """Once every sentence of a complete speech was heard: its turn is answered, then its ending."""
        if not speech.complete or len(speech.heard) < len(speech.marks) or self._stopped:
            return
        self._speeches.pop(speech.response_id, None)
        self._quiet_since = time.monotonic()
        if speech.response_id == GREETING:
            return
        record = self._open_turns.get(speech.response_id)
        if record is not None:
            record.content = " ".join(speech.heard)
            if record.complete_ms is None:
                record.complete_ms = (time.perf_counter() - record._started) * 1000
        self._answered(speech.response_id)
        self._end_turn(speech.response_id)
        if speech.end_call:
            self._spawn(self._twilio_action("hang_up"), track=False)
        elif speech.transfer:
            self._spawn(self._twilio_action("transfer", speech.transfer), track=False)

    def _audio_pending(self) -> bool:
        """Is agent audio queued here, or sent and (as far as the marks tell) not yet played?"""
        return any(kind != "clear" for kind, _, _ in self._out) or bool(self.stream.pending_marks)

    def _queue(self, item: tuple) -> None:
        self._out.append(item)
        self._out_ready.set()

    def _clear(self) -> None:
        """Drop the queued audio and put `clear` first, so nothing of it follows the clear."""
        self._out.clear()
        self._out.append(("clear", None, None))
        self._out_ready.set()

    async def _writer(self) -> None:
        """The one sender: media paced to real time plus the lead, marks and clears at once."""
        while True:
            if not self._out:
                self._out_ready.clear()
                await self._out_ready.wait()
                continue
            item = self._out[0]
            kind, payload, response_id = item
            if kind == "media":
                now = time.monotonic()
                self._play_end = max(self._play_end, now)
                wait = self._play_end - self.lead - now
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue   # the queue may have been cleared meanwhile
                self._out.popleft()
                text = self.stream.media(payload)
                self._play_end += len(payload) / audio.ULAW_RATE
                record = self._open_turns.get(response_id)
                if record is not None and record.first_chunk_ms is None:
                    record.first_chunk_ms = (time.perf_counter() - record._started) * 1000
            elif kind == "mark":
                self._out.popleft()
                text = self.stream.mark(payload)
                speech = self._speeches.get(response_id)
                record = self._open_turns.get(response_id)
                if (record is not None and speech is not None and speech.complete and speech.marks
                        and payload == speech.marks[-1]):
                    record.complete_ms = (time.perf_counter() - record._started) * 1000
            else:
                self._out.popleft()
                text = self.stream.clear()
                self._play_end = time.monotonic()
            try:
                await self._send(text)
            except Exception:
                logger.info("Twilio call %s: the socket is gone; %d frame(s) unsent.", self.call_id, len(self._out))
                return

    # --- timers and Twilio's REST API ----------------------------------------------------------------

    async def _ticker(self) -> None:
        while not self._stopped:
            await asyncio.sleep(TICK_SECONDS)
            quiet = (not self._responses and not self._speeches and not self._hearing
                     and not self._detector.speaking and not self._audio_pending())
            if not quiet:
                self._quiet_since = time.monotonic()
            elif time.monotonic() - self._quiet_since >= self.reminder_after:
                self._reminder_turn()

    async def _twilio_action(self, action: str, number: str | None = None) -> None:
        """Put the caller through (`transfer`, to `number` or the company's) or hang up, over Twilio's API."""
        from .twilio_client import TwilioError

        try:
            done = await sync_to_async(_twilio, thread_sensitive=False)(action, self._agent.company, self.call_id,
                                                                       number)
        except (TwilioError, ValueError) as error:
            logger.error("Twilio call %s: %s failed: %s", self.call_id, action, getattr(error, "message", error))
            return
        logger.info("Twilio call %s: %s %s.", self.call_id, action, "done" if done else "not needed (call ended)")

    # --- the call session's hooks ------------------------------------------------------------------

    def _live_transcript(self) -> list:
        return copy.deepcopy(self.transcript)

