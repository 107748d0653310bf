"""Voice activity and end of turn, sans-IO: μ-law 8 kHz audio in, turn events out.

    detector = TurnDetector(TurnSettings(aggressiveness=2, end_silence_ms=700))
    for event in detector.feed(ulaw_payload):        # any size; cut into 20 ms frames here
        if isinstance(event, SpeechStarted): ...     # barge-in: the caller talks
        if isinstance(event, SpeechEnded): ...       # event.pcm: the utterance, 16-bit PCM 8 kHz
    detector.finish()                                # the stream stopped: the turn in progress ends

Each 20 ms frame is classified by the WebRTC voice activity detector (webrtcvad-wheels). Speech
starts once `min_speech_ms` of the last `min_speech_ms` are voiced (a cough or a click is
shorter); the utterance then includes `pre_roll_ms` of audio before that, so its first sound
is not cut. It ends after `end_silence_ms` of unvoiced frames, or when it reaches
`max_utterance_ms`. Times in events are milliseconds of audio fed since the start.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import webrtcvad

from . import audio

FRAME_MS = audio.FRAME_MS


@dataclass(frozen=True)
class TurnSettings:
    """aggressiveness: 0 (calls most sound speech) .. 3 (calls only clear speech speech);
    min_speech_ms: voiced audio needed before speech counts as started; end_silence_ms: silence
    that ends a turn; max_utterance_ms: a turn longer than this is ended there; pre_roll_ms:
    audio kept from before the start. All in milliseconds, rounded to 20 ms frames."""

    aggressiveness: int = 2
    min_speech_ms: int = 100
    end_silence_ms: int = 700
    max_utterance_ms: int = 15_000
    pre_roll_ms: int = 200

    def __post_init__(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError("aggressiveness is 0, 1, 2 or 3")
        for name in ("min_speech_ms", "end_silence_ms", "max_utterance_ms"):
            if getattr(self, name) < FRAME_MS:
                raise ValueError(f"{name} is at least {FRAME_MS} ms")
        if self.pre_roll_ms < 0:
            raise ValueError("pre_roll_ms is not negative")


@dataclass(frozen=True)
class SpeechStarted:
    at_ms: int                  # where the utterance (its pre-roll included) begins


@dataclass(frozen=True)
class SpeechEnded:
    pcm: bytes                  # the utterance as 16-bit little-endian PCM
    sample_rate: int            # 8000
    started_ms: int
    ended_ms: int               # where the last voiced frame ended
    reason: str                 # "silence" | "max_length" | "stream_ended"
    ulaw: bytes = b""           # the same utterance as received (μ-law 8 kHz)

    @property
    def duration_ms(self) -> int:
        return self.ended_ms - self.started_ms


TurnEvent = SpeechStarted | SpeechEnded


class TurnDetector:
    """Feeds μ-law 8 kHz audio through the VAD and tells where each of the caller's turns starts
    and ends. One per call; not thread-safe."""

    def __init__(self, settings: TurnSettings | None = None) -> None:
        self.settings = settings or TurnSettings()
        self._vad = webrtcvad.Vad(self.settings.aggressiveness)
        self._framer = audio.Framer(audio.FRAME_BYTES)
        self._start_frames = max(1, self.settings.min_speech_ms // FRAME_MS)
        self._end_frames = max(1, self.settings.end_silence_ms // FRAME_MS)
        self._max_frames = max(1, self.settings.max_utterance_ms // FRAME_MS)
        pre_roll = self.settings.pre_roll_ms // FRAME_MS
        # frames before a start: the voiced run that starts speech plus the pre-roll before it
        self._recent: deque[tuple[bytes, bool]] = deque(maxlen=self._start_frames + pre_roll)
        self._utterance: list[bytes] = []
        self._voiced_end = 0        # frames of the utterance up to its last voiced frame
        self._silence = 0           # unvoiced frames in a row while speaking
        self._frames_fed = 0
        self._started_at = 0
        self.speaking = False

    def feed(self, ulaw: bytes) -> list[TurnEvent]:
        """Audio of any length (a Twilio media payload) -> the events it completes."""
        events: list[TurnEvent] = []
        for frame in self._framer.feed(ulaw):
            event = self._frame(frame)
            if event is not None:
                events.append(event)
        return events

    def finish(self) -> list[TurnEvent]:
        """The stream ended: a turn in progress ends with reason "stream_ended"."""
        if not self.speaking:
            return []
        return [self._end("stream_ended")]

    def reset(self) -> None:
        """Forget the turn in progress and what came before (e.g. after the agent's own audio)."""
        self._recent.clear()
        self._utterance = []
        self.speaking = False
        self._silence = 0

    # --- one frame ---------------------------------------------------------------------------------
    def _frame(self, frame: bytes) -> TurnEvent | None:
        voiced = self._vad.is_speech(audio.ulaw_to_pcm16(frame), audio.ULAW_RATE)
        self._frames_fed += 1
        if not self.speaking:
            self._recent.append((frame, voiced))
            run = list(self._recent)[-self._start_frames:]
            if len(run) == self._start_frames and all(v for _, v in run):
                self.speaking = True
                self._utterance = [f for f, _ in self._recent]
                self._recent.clear()
                self._voiced_end = len(self._utterance)
                self._silence = 0
                self._started_at = (self._frames_fed - len(self._utterance)) * FRAME_MS
                return SpeechStarted(at_ms=self._started_at)
            return None
        self._utterance.append(frame)
        if voiced:
            self._silence = 0
            self._voiced_end = len(self._utterance)
        else:
            self._silence += 1
        if self._silence >= self._end_frames:
            return self._end("silence")
        if len(self._utterance) >= self._max_frames:
            return self._end("max_length")
        return None

    def _end(self, reason: str) -> SpeechEnded:
        # a little of the trailing silence stays: recognisers mark a word's end better with it
        keep = min(len(self._utterance), self._voiced_end + 5)
        ulaw = b"".join(self._utterance[:keep])
        event = SpeechEnded(pcm=audio.ulaw_to_pcm16(ulaw), sample_rate=audio.ULAW_RATE, started_ms=self._started_at,
                            ended_ms=self._started_at + self._voiced_end * FRAME_MS, reason=reason, ulaw=ulaw)
        self.reset()
        return event
