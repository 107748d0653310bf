"""The real-time factor helpers count the audio they were given (no speed is asserted)."""

import asyncio
import math

from voice.speech.rtf import RealTimeFactor, stt_real_time_factor, tts_real_time_factor
from voice.speech.stt import Audio, PocketsphinxSTT
from voice.speech.tts import EspeakTTS


def test_the_stt_factor_is_compute_per_second_of_the_utterances_given():
    utterances = [Audio.ulaw(b"\xff" * 8000), Audio.pcm16(bytes(2 * 16000 * 2), 16000)]  # 1 s and 2 s
    factor = asyncio.run(stt_real_time_factor(PocketsphinxSTT(), utterances, language="en"))
    assert (factor.items, factor.audio_seconds) == (2, 3.0)
    assert factor.cpu_seconds > 0 and factor.wall_seconds > 0
    assert math.isclose(factor.cpu_factor, factor.cpu_seconds / 3.0)


def test_the_tts_factor_counts_the_audio_the_voice_made():
    factor = asyncio.run(tts_real_time_factor(EspeakTTS(), ["Hello there.", "Guten Tag."], language="en"))
    assert factor.items == 2 and 1.0 < factor.audio_seconds < 4.0
    assert math.isclose(factor.wall_factor, factor.wall_seconds / factor.audio_seconds)


def test_no_audio_has_no_factor():
    assert math.isnan(RealTimeFactor(0.0, 1.0, 1.0, 0).cpu_factor)
