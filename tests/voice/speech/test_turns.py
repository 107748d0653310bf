"""Voice activity and end of turn, fed with generated audio and with eSpeak NG speech."""

import math

import numpy as np
import pytest

from voice.speech import audio, espeak
from voice.speech.turns import SpeechEnded, SpeechStarted, TurnDetector, TurnSettings


def silence(ms: int) -> bytes:
    return b"\xff" * (8 * ms)


def speech_like(ms: int, f0: float = 140) -> bytes:
    """A voiced sound: a harmonic series on a 140 Hz pitch, its loudness moving at 4 syllables a second."""
    t = np.arange(8 * ms) / 8000
    voiced = sum(np.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 27))
    envelope = 0.6 + 0.4 * np.sin(2 * math.pi * 4 * t)
    pcm = (6000 * voiced * envelope / np.max(np.abs(voiced))).astype("<i2").tobytes()
    return audio.pcm16_to_ulaw(pcm)


def spoken(text: str, voice: str = "en-us+m3") -> bytes:
    pcm, rate = espeak.synthesize(text, voice=voice)
    return audio.pcm16_to_ulaw8k(pcm, rate)


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


def test_silence_and_line_noise_start_no_turn():
    noise = audio.pcm16_to_ulaw(np.random.default_rng(7).normal(0, 300, 16000).astype("<i2").tobytes())
    detector = TurnDetector()
    assert detector.feed(silence(2000) + noise) == [] and detector.finish() == []


def test_speech_between_silences_is_one_turn_with_its_start_and_end():
    # given 1 s of silence, 1.5 s of a voiced sound, 1 s of silence
    detector = TurnDetector(TurnSettings(min_speech_ms=100, end_silence_ms=700, pre_roll_ms=200))
    events = detector.feed(silence(1000) + speech_like(1500) + silence(1000))
    # then speech starts where the sound does (less the 200 ms pre-roll) and ends where it stops
    assert kinds(events) == ["SpeechStarted", "SpeechEnded"]
    started, ended = events
    assert started.at_ms == 800
    assert ended.reason == "silence" and ended.started_ms == 800
    assert 2500 <= ended.ended_ms <= 2700          # the VAD hangs on a few frames
    # the utterance holds the sound (as 8 kHz PCM and as the μ-law received)
    assert ended.sample_rate == 8000 and len(ended.pcm) == 2 * len(ended.ulaw)
    assert 1700 <= audio.duration_ms(ended.ulaw) <= 2100


def test_a_click_shorter_than_the_minimum_speech_starts_no_turn():
    detector = TurnDetector(TurnSettings(min_speech_ms=200))
    assert detector.feed(silence(500) + speech_like(100) + silence(1500)) == []


def test_a_pause_shorter_than_the_end_silence_keeps_the_turn_and_a_longer_one_ends_it():
    sound = silence(500) + speech_like(800) + silence(450) + speech_like(800) + silence(1200)
    patient = TurnDetector(TurnSettings(end_silence_ms=700)).feed(sound)
    hasty = TurnDetector(TurnSettings(end_silence_ms=300)).feed(sound)
    assert kinds(patient) == ["SpeechStarted", "SpeechEnded"]
    assert kinds(hasty) == ["SpeechStarted", "SpeechEnded"] * 2


def test_an_utterance_reaching_the_maximum_length_is_ended_there():
    events = TurnDetector(TurnSettings(max_utterance_ms=2000, pre_roll_ms=0)).feed(silence(200) + speech_like(3000))
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    assert ended[0].reason == "max_length" and audio.duration_ms(ended[0].ulaw) <= 2000
    # the talking goes on, so a new turn starts right after
    assert kinds(events)[:3] == ["SpeechStarted", "SpeechEnded", "SpeechStarted"]


def test_the_turn_in_progress_ends_when_the_stream_stops():
    detector = TurnDetector()
    assert kinds(detector.feed(silence(300) + speech_like(1000))) == ["SpeechStarted"]
    (ended,) = detector.finish()
    assert ended.reason == "stream_ended" and detector.finish() == []


def test_pieces_of_any_size_give_the_events_one_piece_gives():
    sound = silence(700) + speech_like(900) + silence(900)
    whole = TurnDetector().feed(sound)
    pieces = TurnDetector()
    split = [event for start in range(0, len(sound), 333) for event in pieces.feed(sound[start:start + 333])]
    assert split == whole


def test_a_spoken_sentence_is_one_turn_and_two_sentences_a_second_apart_are_two():
    one = spoken("I'd like to book a check-up tomorrow at ten.")
    events = TurnDetector().feed(silence(1000) + one + silence(1000))
    assert kinds(events) == ["SpeechStarted", "SpeechEnded"]
    # the utterance holds all of the sentence
    assert audio.duration_ms(events[1].ulaw) >= audio.duration_ms(one) - 300
    two = TurnDetector().feed(silence(500) + spoken("Yes, please.") + silence(1200) + spoken("Thank you.")
                              + silence(1000))
    assert kinds(two) == ["SpeechStarted", "SpeechEnded"] * 2


def test_speech_started_comes_within_the_minimum_speech_of_the_caller_starting_to_talk():
    # a barge-in is told as soon as min_speech_ms of voice arrived, not when the turn ends
    detector = TurnDetector(TurnSettings(min_speech_ms=100))
    assert detector.feed(silence(400)) == []
    events = detector.feed(speech_like(160))
    assert isinstance(events[0], SpeechStarted)


@pytest.mark.parametrize("values", [dict(aggressiveness=4), dict(end_silence_ms=0), dict(min_speech_ms=10),
                                      dict(pre_roll_ms=-20)])
def test_settings_out_of_range_are_refused(values):
    with pytest.raises(ValueError):
        TurnSettings(**values)
