"""Speech-to-text providers behind one interface.

    stt = PocketsphinxSTT()                                 # offline, en-US
    transcript = await stt.transcribe(Audio.ulaw(payload), language="en", hints=hints)
    transcript.text, transcript.confidence, transcript.ms

    async with stt.stream(language="en", hints=hints) as stream:   # while the caller talks
        await stream.send(ulaw_frame)                                # μ-law 8 kHz, any size
        transcript = await stream.commit()                           # the turn ended (VAD)

`transcribe` takes a whole utterance; `stream` takes the audio while the caller speaks, so the
text is ready sooner after the turn ends. A provider without streaming (OpenAI-compatible) gets
a stream that collects the audio and transcribes it at commit. `Transcript.ms` is the time from
the end of the audio (the call of `transcribe`, or `commit`) to the text, in milliseconds.

Providers and the languages they serve:
    PocketsphinxSTT          offline, no account: pocketsphinx's bundled US-English model with a
                             language model built from the company's words (`vocabulary`). en only.
    ElevenLabsRealtimeSTT    Scribe realtime over a WebSocket (scribe_v2_realtime, audio_format
                             ulaw_8000: Twilio's audio as it is), manual commits at our end of turn.
                             Scribe's 90+ languages, English and German among them.
    OpenAICompatibleSTT      POST {base}/audio/transcriptions (multipart: file, model, language,
                             prompt): OpenAI, or a self-hosted Whisper server (faster-whisper-server,
                             whisper.cpp server, LocalAI) for German without a cloud account.
                             Whisper's languages.

Errors: SpeechUnavailable (not configured, key refused, language not served), SpeechProviderError
(failed this time: HTTP error, timeout, dropped socket, malformed answer).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from . import audio
from .errors import SpeechError, SpeechProviderError, SpeechUnavailable


@dataclass(frozen=True)
class Audio:
    """An utterance: `data` in `encoding` ("pcm16": int16 little-endian; "ulaw": G.711 μ-law)
    at `sample_rate` Hz, mono."""

    data: bytes
    sample_rate: int = audio.ULAW_RATE
    encoding: str = "pcm16"

    def __post_init__(self) -> None:
        if self.encoding not in ("pcm16", "ulaw"):
            raise ValueError("encoding is 'pcm16' or 'ulaw'")
        if self.encoding == "ulaw" and self.sample_rate != audio.ULAW_RATE:
            raise ValueError("μ-law audio is 8000 Hz")

    @classmethod
    def ulaw(cls, data: bytes) -> Audio:
        return cls(data, audio.ULAW_RATE, "ulaw")

    @classmethod
    def pcm16(cls, data: bytes, sample_rate: int) -> Audio:
        return cls(data, sample_rate, "pcm16")

    def as_pcm16(self, sample_rate: int) -> bytes:
        pcm = audio.ulaw_to_pcm16(self.data) if self.encoding == "ulaw" else self.data
        return audio.resample_pcm16(pcm, self.sample_rate, sample_rate)

    def as_ulaw8k(self) -> bytes:
        return self.data if self.encoding == "ulaw" else audio.pcm16_to_ulaw8k(self.data, self.sample_rate)

    @property
    def duration_ms(self) -> int:
        width = 1 if self.encoding == "ulaw" else 2
        return audio.duration_ms(self.data, sample_rate=self.sample_rate, sample_width=width)


@dataclass(frozen=True)
class SpeechHints:
    """The company's own words, so a recogniser expects them: its services, the names asked for
    (the caller's, staff's), and other phrases callers use with it (its name, its street)."""

    services: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()

    def terms(self, limit: int = 100) -> list[str]:
        """Distinct terms, services first (key terms / a transcription prompt)."""
        seen: dict[str, None] = {}
        for term in (*self.services, *self.names, *self.phrases):
            term = " ".join(term.split())
            if term and len(term) < 50:
                seen.setdefault(term, None)
        return list(seen)[:limit]


@dataclass(frozen=True)
class Transcript:
    text: str                    # what was said, as the provider wrote it ("" for nothing)
    confidence: float | None     # 0..1 where the provider gives one
    ms: int                      # milliseconds from the end of the audio to this text
    provider: str = ""


class SttStream(ABC):
    """One turn's (or one call's) audio going to a provider while the caller speaks.
    `partial` holds the latest partial text where the provider sends partials."""

    partial: str = ""

    @abstractmethod
    async def send(self, ulaw: bytes) -> None:
        """μ-law 8 kHz audio, any size."""

    @abstractmethod
    async def commit(self) -> Transcript:
        """The caller's turn ended: the text of the audio sent since the last commit."""

    async def close(self) -> None:  # noqa: B027 - most streams hold nothing to release
        """Release the provider's resources; the stream cannot be used after."""

    async def __aenter__(self) -> SttStream:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class SpeechToText(ABC):
    """A speech-to-text provider."""

    name: str = ""
    # ISO 639-1 codes served; None: the provider's many languages.
    languages: frozenset[str] | None = None

    def serves(self, language: str) -> bool:
        return self.languages is None or base_language(language) in self.languages

    def _check_language(self, language: str) -> None:
        if not self.serves(language):
            raise SpeechUnavailable(f"{self.name} speech-to-text serves {', '.join(sorted(self.languages or ()))}, "
                                    f"not {language!r}")

    async def transcribe(self, utterance: Audio, *, language: str, hints: SpeechHints | None = None) -> Transcript:
        """The text of one whole utterance."""
        async with self.stream(language=language, hints=hints) as stream:
            ulaw = utterance.as_ulaw8k()
            for start in range(0, len(ulaw), 1600):  # 200 ms pieces
                await stream.send(ulaw[start:start + 1600])
            return await stream.commit()

    @abstractmethod
    def stream(self, *, language: str, hints: SpeechHints | None = None) -> SttStream:
        """A stream for audio that arrives while the caller speaks (use `async with`)."""


def base_language(language: str) -> str:
    """"en-US" -> "en", "de_DE" -> "de"."""
    return (language or "").lower().replace("_", "-").split("-")[0]


def _elapsed_ms(since: float) -> int:
    return int((time.perf_counter() - since) * 1000)


# --- a stream that collects and transcribes at commit ---------------------------------------------

class CollectingStream(SttStream):
    """For providers without streaming: the audio is kept and transcribed whole at commit."""

    def __init__(self, transcribe_ulaw) -> None:
        self._transcribe_ulaw = transcribe_ulaw
        self._audio = bytearray()

    async def send(self, ulaw: bytes) -> None:
        self._audio += ulaw

    async def commit(self) -> Transcript:
        utterance, self._audio = bytes(self._audio), bytearray()
        return await self._transcribe_ulaw(utterance)


# --- offline: pocketsphinx ---------------------------------------------------------------------------

class _DecoderPool:
    """pocketsphinx decoders per vocabulary, reused across calls: a decoder serves one utterance at
    a time, building one takes ~20 ms plus the vocabulary (~0.5 s, once per company words)."""

    def __init__(self, max_vocabularies: int = 16, max_idle: int = 4) -> None:
        self._lock = threading.Lock()
        self._vocabularies: OrderedDict[tuple, object] = OrderedDict()
        self._idle: dict[str, list] = {}
        self.max_vocabularies, self.max_idle = max_vocabularies, max_idle

    def vocabulary(self, hints: SpeechHints, model_dir: Path):
        from .vocabulary import build_vocabulary

        key = (hints.services, hints.names, hints.phrases, str(model_dir))
        with self._lock:
            if key in self._vocabularies:
                self._vocabularies.move_to_end(key)
                return self._vocabularies[key]
        built = build_vocabulary(hints.services, hints.names, hints.phrases,
                                 dictionary_path=model_dir / "cmudict-en-us.dict")
        with self._lock:
            self._vocabularies[key] = built
            while len(self._vocabularies) > self.max_vocabularies:
                _, dropped = self._vocabularies.popitem(last=False)
                self._idle.pop(dropped.key, None)
        return built

    def acquire(self, vocabulary, model_dir: Path):
        with self._lock:
            idle = self._idle.get(vocabulary.key)
            if idle:
                return idle.pop()
        from pocketsphinx import Decoder

        with tempfile.TemporaryDirectory(prefix="vd-speech-") as folder:
            lm, dictionary = Path(folder, "company.arpa"), Path(folder, "company.dict")
            lm.write_text(vocabulary.arpa, encoding="utf-8")
            dictionary.write_text(vocabulary.dictionary, encoding="utf-8")
            decoder = Decoder(hmm=str(model_dir / "en-us"), lm=str(lm), dict=str(dictionary),
                              samprate=16000, cmninit=TELEPHONE_CMNINIT, loglevel="FATAL")
        return vocabulary.key, decoder

    def release(self, lease) -> None:
        key, _ = lease
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.max_idle and any(v.key == key for v in self._vocabularies.values()):
                idle.append(lease)


_POOL = _DecoderPool()

# The cepstral mean of phone audio (8 kHz, so nothing above 4 kHz) resampled to 16 kHz, measured
# on eSpeak NG speech through this path; the model's own initial mean is of wideband speech. The
# utterance's own mean is still computed ("-cmn batch"), but starting from this one more of the
# 18 benchmark sentences came out right for two of three voices (en-us+f2: 9 -> 11, en-us: 3 -> 5).
TELEPHONE_CMNINIT = ("47.83,22.87,-29.60,42.10,-35.51,-2.10,14.01,-23.44,9.28,-19.77,5.64,3.91,-26.88")


def _default_model_dir() -> Path:
    from pocketsphinx import get_model_path

    return Path(get_model_path("en-us"))


# pocketsphinx holds the GIL for a whole decode (about 0.1 s per second of speech): in a thread of
# the server it stalls the event loop, and so every call's audio, for that long. Decoders in worker
# processes leave the loop free; a pool per size, started on first use, kept for the process.
_PROCESS_POOLS: dict[int, ProcessPoolExecutor] = {}
_PROCESS_POOLS_LOCK = threading.Lock()


def _process_pool(size: int) -> ProcessPoolExecutor:
    with _PROCESS_POOLS_LOCK:
        pool = _PROCESS_POOLS.get(size)
        if pool is None:
            # spawn: a fork of a server process with threads and sockets open is not safe
            pool = ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn"))
            _PROCESS_POOLS[size] = pool
        return pool


def _decode_in_worker(utterance: Audio, hints: SpeechHints | None, model_dir: Path | None) -> str:
    return PocketsphinxSTT(model_dir=model_dir).transcribe_blocking(utterance, hints)


def _prepare_in_worker(hints: SpeechHints | None, model_dir: Path | None) -> None:
    PocketsphinxSTT(model_dir=model_dir).prepare(hints)


@dataclass
class PocketsphinxSTT(SpeechToText):
    """Offline recognition with pocketsphinx's bundled US-English model, constrained to the
    company's words (see `vocabulary`). The utterance is decoded whole at commit (the model
    normalises cepstra over the whole utterance: "-cmn batch"), in a worker thread; its stream
    collects the audio until then. No confidence (pocketsphinx gives none without a lattice)."""

    model_dir: Path | None = None
    name: str = "offline"
    languages: frozenset[str] | None = frozenset({"en"})
    # Worker processes that decode (see _process_pool); 0: a thread of this process.
    processes: int = 0

    def stream(self, *, language: str, hints: SpeechHints | None = None) -> SttStream:
        self._check_language(language)

        async def transcribe_ulaw(ulaw: bytes) -> Transcript:
            return await self.transcribe(Audio.ulaw(ulaw), language=language, hints=hints)
        return CollectingStream(transcribe_ulaw)

    async def transcribe(self, utterance: Audio, *, language: str, hints: SpeechHints | None = None) -> Transcript:
        self._check_language(language)
        began = time.perf_counter()
        if self.processes:
            try:
                text = await asyncio.get_running_loop().run_in_executor(
                    _process_pool(self.processes), _decode_in_worker, utterance, hints, self.model_dir)
            except BrokenProcessPool:
                with _PROCESS_POOLS_LOCK:
                    _PROCESS_POOLS.pop(self.processes, None)
                raise SpeechProviderError("offline speech-to-text failed: its worker process died") from None
        else:
            text = await asyncio.to_thread(self.transcribe_blocking, utterance, hints)
        return Transcript(text=text, confidence=None, ms=_elapsed_ms(began), provider=self.name)

    def transcribe_blocking(self, utterance: Audio, hints: SpeechHints | None = None) -> str:
        """The text of `utterance`, decoded in the calling thread (for benchmarks and workers)."""
        model_dir = self.model_dir or _default_model_dir()
        vocabulary = _POOL.vocabulary(hints or SpeechHints(), model_dir)
        lease = _POOL.acquire(vocabulary, model_dir)
        decoder = lease[1]
        try:
            decoder.start_utt()
            decoder.process_raw(utterance.as_pcm16(16000), no_search=False, full_utt=True)
            decoder.end_utt()
            hypothesis = decoder.hyp()
        except RuntimeError as error:  # how pocketsphinx reports a failed step
            raise SpeechProviderError(f"offline speech-to-text failed: {error}") from None
        _POOL.release(lease)
        return hypothesis.hypstr if hypothesis is not None else ""

    def prepare(self, hints: SpeechHints | None = None) -> None:
        """Build the company's vocabulary now (blocking, ~0.5 s) rather than at its first turn (with
        worker processes: in one of them)."""
        if self.processes:
            _process_pool(self.processes).submit(_prepare_in_worker, hints, self.model_dir).result()
            return
        _POOL.vocabulary(hints or SpeechHints(), self.model_dir or _default_model_dir())


# --- ElevenLabs Scribe realtime ----------------------------------------------------------------------

SCRIBE_ERRORS = {"error", "auth_error", "quota_exceeded", "commit_throttled", "transcriber_error",
                 "unaccepted_terms_error", "rate_limited", "input_error", "queue_overflow", "resource_exhausted",
                 "session_time_limit_exceeded", "chunk_size_exceeded", "insufficient_audio_activity"}
SCRIBE_REFUSALS = {"auth_error", "unaccepted_terms_error", "quota_exceeded"}


class ScribeStream(SttStream):
    """One Scribe realtime session: μ-law goes out as `input_audio_chunk`s as it arrives; a
    commit sends `commit: true` and waits for the `committed_transcript`."""

    def __init__(self, provider: ElevenLabsRealtimeSTT, language: str, hints: SpeechHints | None) -> None:
        self._provider = provider
        self._language = language
        self._hints = hints
        self._socket = None
        self._reader: asyncio.Task | None = None
        self._committed: asyncio.Queue = asyncio.Queue()
        self._failure: SpeechError | None = None
        self._previous_text = ""

    async def _open(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus, WebSocketException

        provider = self._provider
        if not provider.api_key:
            raise SpeechUnavailable("ElevenLabs speech-to-text has no API key")
        query = [("model_id", provider.model_id), ("audio_format", "ulaw_8000"), ("commit_strategy", "manual")]
        if self._language:
            query.append(("language_code", base_language(self._language)))
        for term in (self._hints.terms(provider.max_keyterms) if self._hints else []):
            query.append(("keyterms", term))
        parts = urlsplit(provider.ws_url.rstrip("/") + "/v1/speech-to-text/realtime")
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        try:
            self._socket = await asyncio.wait_for(
                connect(url, additional_headers={"xi-api-key": provider.api_key}, proxy=None,
                        open_timeout=provider.connect_timeout, max_size=2 ** 20),
                provider.connect_timeout + 1)
            first = json.loads(await asyncio.wait_for(self._socket.recv(), provider.read_timeout))
        except InvalidStatus as error:
            status = error.response.status_code
            cls = SpeechUnavailable if status in (401, 403) else SpeechProviderError
            raise cls(f"ElevenLabs speech-to-text refused the connection: {status}") from None
        except (OSError, TimeoutError, WebSocketException, ValueError) as error:
            await self._abandon()
            raise SpeechProviderError(f"ElevenLabs speech-to-text failed: {type(error).__name__}") from None
        if first.get("message_type") != "session_started":
            await self._abandon()
            raise _scribe_error(first)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in self._socket:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue  # liberal: a frame we cannot read is skipped
                if not isinstance(message, dict):
                    continue
                kind = message.get("message_type")
                if kind == "partial_transcript":
                    self.partial = str(message.get("text") or "")
                elif kind in ("committed_transcript", "committed_transcript_with_timestamps"):
                    await self._committed.put(str(message.get("text") or ""))
                elif kind in SCRIBE_ERRORS:
                    self._failure = _scribe_error(message)
                    await self._committed.put(None)
        except ConnectionClosed:
            pass
        if self._failure is None:
            self._failure = SpeechProviderError("ElevenLabs speech-to-text closed the session")
        await self._committed.put(None)

    async def send(self, ulaw: bytes) -> None:
        if self._socket is None:
            await self._open()
        if self._failure is not None:
            raise self._failure
        await self._send({"message_type": "input_audio_chunk", "audio_base_64": audio.to_base64(ulaw),
                          "commit": False, "sample_rate": audio.ULAW_RATE})

    async def commit(self) -> Transcript:
        if self._socket is None:
            await self._open()
        began = time.perf_counter()
        message = {"message_type": "input_audio_chunk", "audio_base_64": "", "commit": True,
                   "sample_rate": audio.ULAW_RATE}
        if self._previous_text:
            message["previous_text"] = self._previous_text[-500:]
        await self._send(message)
        try:
            text = await asyncio.wait_for(self._committed.get(), self._provider.read_timeout)
        except TimeoutError:
            raise SpeechProviderError("ElevenLabs speech-to-text sent no transcript in time") from None
        if text is None:
            raise self._failure or SpeechProviderError("ElevenLabs speech-to-text failed")
        self.partial = ""
        self._previous_text = f"{self._previous_text} {text}".strip()
        return Transcript(text=text, confidence=None, ms=_elapsed_ms(began), provider=self._provider.name)

    async def _send(self, message: dict) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self._socket.send(json.dumps(message))
        except ConnectionClosed:
            raise self._failure or SpeechProviderError("ElevenLabs speech-to-text closed the session") from None

    async def close(self) -> None:
        await self._abandon()

    async def _abandon(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        if self._socket is not None:
            try:
                await asyncio.wait_for(self._socket.close(), 2)
            except Exception:  # noqa: BLE001 - closing a socket that already failed
                pass
            self._socket = None


def _scribe_error(message: dict) -> SpeechError:
    kind = str(message.get("message_type") or "unknown")
    detail = str(message.get("error") or message.get("message") or "")[:200]
    text = f"ElevenLabs speech-to-text: {kind}" + (f": {detail}" if detail else "")
    return SpeechUnavailable(text) if kind in SCRIBE_REFUSALS else SpeechProviderError(text)


@dataclass
class ElevenLabsRealtimeSTT(SpeechToText):
    """ElevenLabs Scribe realtime: `wss://…/v1/speech-to-text/realtime?model_id=scribe_v2_realtime
    &audio_format=ulaw_8000&commit_strategy=manual` with xi-api-key; the company's words go as
    `keyterms`. Timeouts in seconds."""

    api_key: str
    ws_url: str = "wss://api.elevenlabs.io"
    model_id: str = "scribe_v2_realtime"
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    max_keyterms: int = 50
    name: str = "elevenlabs"
    languages: frozenset[str] | None = None

    def stream(self, *, language: str, hints: SpeechHints | None = None) -> SttStream:
        return ScribeStream(self, language, hints)


# --- any OpenAI-compatible /v1/audio/transcriptions ------------------------------------------------

@dataclass
class OpenAICompatibleSTT(SpeechToText):
    """POST {base_url}/audio/transcriptions, multipart (file: 16 kHz WAV, model, language,
    prompt: the company's words, response_format: json) -> {"text": …}. `base_url` ends in /v1
    as OpenAI's does. Timeouts in seconds."""

    base_url: str
    api_key: str = ""
    model: str = "whisper-1"
    connect_timeout: float = 3.0
    read_timeout: float = 15.0
    name: str = "openai"
    languages: frozenset[str] | None = None

    def stream(self, *, language: str, hints: SpeechHints | None = None) -> SttStream:
        async def transcribe_ulaw(ulaw: bytes) -> Transcript:
            return await self.transcribe(Audio.ulaw(ulaw), language=language, hints=hints)
        return CollectingStream(transcribe_ulaw)

    async def transcribe(self, utterance: Audio, *, language: str, hints: SpeechHints | None = None) -> Transcript:
        if not self.base_url:
            raise SpeechUnavailable("OpenAI-compatible speech-to-text has no base URL")
        began = time.perf_counter()
        if not utterance.data:
            return Transcript(text="", confidence=None, ms=0, provider=self.name)
        wav = audio.wav_bytes(utterance.as_pcm16(16000), 16000)
        form = {"model": self.model, "response_format": "json"}
        if language:
            form["language"] = base_language(language)
        terms = hints.terms(40) if hints else []
        if terms:
            form["prompt"] = ", ".join(terms)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        timeout = httpx.Timeout(self.read_timeout, connect=self.connect_timeout)
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.post(f"{self.base_url.rstrip('/')}/audio/transcriptions", data=form,
                                             files={"file": ("speech.wav", wav, "audio/wav")}, headers=headers)
        except httpx.HTTPError as error:
            raise SpeechProviderError(f"OpenAI-compatible speech-to-text failed: {type(error).__name__}") from None
        if response.status_code != 200:
            detail = _detail(response)
            message = f"OpenAI-compatible speech-to-text answered {response.status_code}" + (
                f": {detail}" if detail else "")
            raise (SpeechUnavailable if response.status_code in (401, 403, 404) else SpeechProviderError)(message)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            raise SpeechProviderError("OpenAI-compatible speech-to-text answered without a text")
        return Transcript(text=payload["text"].strip(), confidence=None, ms=_elapsed_ms(began), provider=self.name)


def _detail(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or "")[:200]
    return str(error or (payload.get("detail") if isinstance(payload, dict) else "") or "")[:200]
