"""μ-law <-> PCM, resampling, framing and base64 with plain data and known answers."""

import math

import numpy as np
import pytest

from voice.speech import audio


def sine(freq: float, seconds: float, rate: int, amplitude: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.int64)


def test_zero_samples_encode_to_the_silence_code_0xff():
    assert audio.pcm16_to_ulaw(bytes(2 * 160)) == b"\xff" * 160


def test_known_codes_decode_to_the_g711_values():
    # given the codes of silence, the loudest positive and the loudest negative sample
    # when decoded / then they are the G.711 table's values
    assert audio.ulaw_to_pcm16(bytes([0xFF, 0x7F, 0x80, 0x00])) == np.array(
        [0, 0, 32124, -32124], dtype="<i2").tobytes()


def test_known_samples_encode_to_the_g711_codes():
    pcm = np.array([0, -1, 32767, -32768, 1000, -1000], dtype="<i2").tobytes()
    # -1 is 14-bit -1 after the arithmetic shift, one step below zero: 0x7E (as audioop gives)
    assert list(audio.pcm16_to_ulaw(pcm)) == [0xFF, 0x7E, 0x80, 0x00, 0xCE, 0x4E]


def test_tables_match_the_stdlib_audioop_where_it_still_exists():
    audioop = pytest.importorskip("audioop")  # removed in Python 3.13; the project runs 3.11
    every_code = bytes(range(256))
    every_sample = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert audio.ulaw_to_pcm16(every_code) == audioop.ulaw2lin(every_code, 2)
    assert audio.pcm16_to_ulaw(every_sample) == audioop.lin2ulaw(every_sample, 2)


def test_a_sine_survives_the_mu_law_round_trip_within_its_quantisation():
    pcm = sine(440, 0.5, 8000)
    back = samples(audio.ulaw_to_pcm16(audio.pcm16_to_ulaw(pcm)))
    error = np.abs(back - samples(pcm))
    # μ-law steps are at most 1/16 of the value's segment: about 3 % of the sample, plus 1 step near 0
    assert np.all(error <= np.abs(samples(pcm)) * 0.035 + 8)
    signal_to_noise = 10 * np.log10(np.sum(samples(pcm) ** 2) / np.sum(error ** 2))
    assert signal_to_noise > 30


def test_a_sine_keeps_its_frequency_and_length_when_resampled_to_8k_and_back():
    # given 1 s of a 440 Hz tone at 22050 Hz (eSpeak NG's rate)
    pcm = sine(440, 1.0, 22050)
    # when resampled to 8 kHz
    narrow = audio.resample_pcm16(pcm, 22050, 8000)
    # then it is 8000 samples long and still peaks at 440 Hz
    assert len(narrow) == 2 * 8000
    spectrum = np.abs(np.fft.rfft(samples(narrow)))
    assert abs(np.argmax(spectrum) * 8000 / 8000 - 440) <= 1
    wide = audio.resample_pcm16(narrow, 8000, 16000)
    assert len(wide) == 2 * 16000


def test_a_streaming_resampler_gives_what_the_one_piece_resampler_gives():
    pcm = sine(300, 0.6, 22050)
    whole = samples(audio.resample_pcm16(pcm, 22050, 8000))
    resampler = audio.PcmResampler(22050, 8000)
    # odd-sized pieces, so a sample is split across two pieces too
    pieces = [pcm[i:i + 1001] for i in range(0, len(pcm), 1001)]
    streamed = samples(b"".join(resampler.feed(p) for p in pieces) + resampler.finish())
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    assert np.max(np.abs(streamed[200:n - 200] - whole[200:n - 200])) < 200


def test_audio_is_cut_into_20_ms_frames_and_the_last_padded_with_silence():
    frames = list(audio.frames(b"\x01" * 400))
    assert [len(f) for f in frames] == [160, 160, 160]
    assert frames[-1] == b"\x01" * 80 + b"\xff" * 80


def test_a_framer_holds_back_a_partial_frame_until_it_is_whole():
    framer = audio.Framer()
    assert framer.feed(b"a" * 100) == []
    assert framer.feed(b"b" * 100) == [b"a" * 100 + b"b" * 60]
    assert framer.pending == 40
    assert framer.feed(b"c" * 280) == [b"b" * 40 + b"c" * 120, b"c" * 160]
    assert framer.pending == 0


def test_a_20_ms_frame_is_216_base64_characters_and_comes_back_whole():
    frame = bytes(range(160))
    payload = audio.to_base64(frame)
    assert len(payload) == 216 and "\n" not in payload
    assert audio.from_base64(payload) == frame


def test_text_that_is_not_base64_is_a_value_error():
    with pytest.raises(ValueError):
        audio.from_base64("not base64!")


def test_a_wav_header_is_stripped_and_headerless_audio_left_alone():
    pcm = sine(440, 0.1, 8000)
    assert audio.strip_wav_header(audio.wav_bytes(pcm, 8000)) == pcm
    assert audio.strip_wav_header(b"\xff" * 50) == b"\xff" * 50


def test_duration_counts_bytes_per_sample():
    assert audio.duration_ms(b"\xff" * 8000) == 1000
    assert audio.duration_ms(bytes(32000), sample_rate=16000, sample_width=2) == 1000
