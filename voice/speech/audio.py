"""Audio arithmetic of a phone call: G.711 μ-law at 8 kHz (what Twilio Media Streams carry) and
16-bit little-endian mono PCM (what recognisers and synthesizers use).

μ-law is 1 byte a sample, 8000 bytes a second; a 20 ms frame is 160 bytes (216 base64
characters). Conversion goes through two numpy tables (256 codes to decode, all 65536 samples to
encode), computed once with the G.711 algorithm the stdlib's removed `audioop` used, so results
are bit-identical to `audioop.ulaw2lin` / `lin2ulaw`. Resampling uses libsoxr (`soxr`).

PCM here is always `bytes` of int16 little-endian samples; μ-law is `bytes` of codes.
"""

from __future__ import annotations

import base64
import binascii
import io
import wave
from collections.abc import Iterator

import numpy as np
import soxr

ULAW_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = ULAW_RATE * FRAME_MS // 1000  # μ-law bytes in one 20 ms frame
ULAW_SILENCE = 0xFF  # the code of a zero sample

_BIAS = 0x84
_CLIP = 8159  # in 14-bit magnitude, as G.711 clips
_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def _decode_code(code: int) -> int:
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + _BIAS) << ((code & 0x70) >> 4)
    return _BIAS - magnitude if code & 0x80 else magnitude - _BIAS


def _encode_sample(sample: int) -> int:
    value = sample >> 2  # G.711 works on 14 bits
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, _CLIP) + (_BIAS >> 2)
    for segment, end in enumerate(_SEGMENT_ENDS):
        if value <= end:
            return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask
    return 0x7F ^ mask


_DECODE = np.array([_decode_code(code) for code in range(256)], dtype="<i2")
# Indexed by the sample's bits read as unsigned: 0..32767 are themselves, 32768..65535 are -32768..-1.
_ENCODE = np.array([_encode_sample(s if s < 32768 else s - 65536) for s in range(65536)], dtype=np.uint8)


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    """μ-law codes -> int16 little-endian PCM at the same rate (twice as many bytes)."""
    return _DECODE[np.frombuffer(ulaw, dtype=np.uint8)].tobytes()


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """int16 little-endian PCM -> μ-law codes (half as many bytes). An odd trailing byte is dropped."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
    return _ENCODE[samples.view(np.uint16)].tobytes()


def resample_pcm16(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """int16 PCM at `from_rate` Hz -> int16 PCM at `to_rate` Hz, in one piece (libsoxr, high quality)."""
    if from_rate == to_rate or not pcm:
        return bytes(pcm)
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
    return np.ascontiguousarray(soxr.resample(samples, from_rate, to_rate), dtype="<i2").tobytes()


class PcmResampler:
    """Resamples int16 PCM that arrives in pieces (a synthesizer's callback, a socket) without
    clicks at the seams: libsoxr keeps the filter state between pieces. `finish()` returns what
    the filter still holds."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate, self.to_rate = from_rate, to_rate
        self._stream = None if from_rate == to_rate else soxr.ResampleStream(from_rate, to_rate, 1, dtype="int16")
        self._odd = b""

    def feed(self, pcm: bytes) -> bytes:
        pcm = self._odd + pcm
        self._odd = pcm[len(pcm) - len(pcm) % 2:]
        pcm = pcm[: len(pcm) - len(pcm) % 2]
        if self._stream is None:
            return pcm
        return self._stream.resample_chunk(np.frombuffer(pcm, dtype="<i2")).astype("<i2").tobytes()

    def finish(self) -> bytes:
        if self._stream is None:
            return b""
        return self._stream.resample_chunk(np.zeros(0, dtype="<i2"), last=True).astype("<i2").tobytes()


def pcm16_to_ulaw8k(pcm: bytes, sample_rate: int) -> bytes:
    """int16 PCM at any rate -> μ-law at 8 kHz, ready for a Twilio `media` payload."""
    return pcm16_to_ulaw(resample_pcm16(pcm, sample_rate, ULAW_RATE))


def ulaw8k_to_pcm16(ulaw: bytes, sample_rate: int = ULAW_RATE) -> bytes:
    """μ-law at 8 kHz -> int16 PCM at `sample_rate` (16000 for most recognisers)."""
    return resample_pcm16(ulaw_to_pcm16(ulaw), ULAW_RATE, sample_rate)


def frames(audio: bytes, size: int = FRAME_BYTES) -> Iterator[bytes]:
    """Whole frames of `size` bytes; a short remainder is padded with μ-law silence.
    For μ-law 20 ms frames keep the default; for PCM pass the size and pad yourself."""
    for start in range(0, len(audio), size):
        frame = audio[start:start + size]
        yield frame if len(frame) == size else frame + bytes([ULAW_SILENCE]) * (size - len(frame))


class Framer:
    """Cuts a byte stream that arrives in pieces of any size into frames of `size` bytes."""

    def __init__(self, size: int = FRAME_BYTES) -> None:
        self.size = size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        whole = len(self._buffer) - len(self._buffer) % self.size
        out = [bytes(self._buffer[i:i + self.size]) for i in range(0, whole, self.size)]
        del self._buffer[:whole]
        return out

    @property
    def pending(self) -> int:
        """Bytes held back until a frame is whole."""
        return len(self._buffer)


def to_base64(audio: bytes) -> str:
    """Raw bytes -> the base64 text of a Twilio `media.payload` (no WAV header, no line breaks)."""
    return base64.b64encode(audio).decode("ascii")


def from_base64(payload: str) -> bytes:
    """A `media.payload` -> raw bytes. Raises ValueError for text that is not base64."""
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, TypeError) as error:
        raise ValueError("media payload is not base64") from error


def strip_wav_header(audio: bytes) -> bytes:
    """The samples of a RIFF/WAVE file (the `data` chunk); other bytes are returned as they are.

    Providers that promise headerless audio sometimes send a WAV file; Twilio plays a header as
    a click, so it goes before the bytes reach a payload."""
    if len(audio) < 12 or audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
        return audio
    position = 12
    while position + 8 <= len(audio):
        chunk, size = audio[position:position + 4], int.from_bytes(audio[position + 4:position + 8], "little")
        if chunk == b"data":
            return audio[position + 8:position + 8 + size]
        position += 8 + size + size % 2
    return b""


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """int16 mono PCM wrapped in a minimal WAV file (for HTTP transcription APIs)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def duration_ms(audio: bytes, *, sample_rate: int = ULAW_RATE, sample_width: int = 1) -> int:
    """Milliseconds of audio in `audio` (μ-law: width 1; int16 PCM: width 2)."""
    return len(audio) * 1000 // (sample_rate * sample_width)
