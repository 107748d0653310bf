"""Real-time factor of speech providers: seconds of compute per second of audio (below 1: faster
than the caller speaks; 0.05 means one core keeps up with about 20 such streams).

    factor = await stt_real_time_factor(PocketsphinxSTT(), utterances, language="en", hints=hints)
    factor = await tts_real_time_factor(EspeakTTS(), sentences, language="de")
    factor.cpu_factor, factor.wall_factor

`cpu` is the process's CPU time (every thread: the offline providers work in worker threads),
`wall` the elapsed time; each run is timed alone, so for the offline providers the two are close.
For the benchmark (bench/speech_rtf.py) and the lead's stream-capacity benchmark; not for tests
of speed (no timed assertions).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from .stt import Audio, SpeechHints, SpeechToText
from .tts import TextToSpeech, VoiceSettings


@dataclass(frozen=True)
class RealTimeFactor:
    audio_seconds: float
    cpu_seconds: float
    wall_seconds: float
    items: int

    @property
    def cpu_factor(self) -> float:
        return self.cpu_seconds / self.audio_seconds if self.audio_seconds else float("nan")

    @property
    def wall_factor(self) -> float:
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else float("nan")


async def stt_real_time_factor(stt: SpeechToText, utterances: Iterable[Audio], *, language: str,
                               hints: SpeechHints | None = None, warm_up: bool = True) -> RealTimeFactor:
    """Time `stt.transcribe` over `utterances`. `warm_up` transcribes the first once untimed (the
    offline recogniser builds the company's vocabulary on first use)."""
    utterances = list(utterances)
    if warm_up and utterances:
        await stt.transcribe(utterances[0], language=language, hints=hints)
    audio_seconds = cpu = wall = 0.0
    for utterance in utterances:
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        await stt.transcribe(utterance, language=language, hints=hints)
        cpu += time.process_time() - cpu_start
        wall += time.perf_counter() - wall_start
        audio_seconds += utterance.duration_ms / 1000
    return RealTimeFactor(audio_seconds, cpu, wall, len(utterances))


async def tts_real_time_factor(tts: TextToSpeech, sentences: Iterable[str], *, language: str,
                               voice: VoiceSettings | None = None) -> RealTimeFactor:
    """Time `tts.synthesize` over `sentences`; the audio is what it yields (μ-law 8 kHz)."""
    sentences = list(sentences)
    audio_bytes = 0
    cpu = wall = 0.0
    for sentence in sentences:
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        async for chunk in tts.synthesize(sentence, language=language, voice=voice):
            audio_bytes += len(chunk)
        cpu += time.process_time() - cpu_start
        wall += time.perf_counter() - wall_start
    return RealTimeFactor(audio_bytes / 8000, cpu, wall, len(sentences))
