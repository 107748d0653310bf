"""Text-to-speech providers behind one interface, speaking μ-law 8 kHz for Twilio.

    tts = EspeakTTS()                                   # offline, English and German
    async for chunk in tts.synthesize("Hello. How can I help?", language="en"):
        ...                                             # bytes of μ-law 8 kHz, the first
                                                        # sentence's before the second is made

Every provider speaks sentence by sentence: the first sentence's audio is yielded before the
next sentence is synthesized, so the caller hears the first words while the rest is made.
`speak()` does the same for text that arrives in pieces (a dialog engine's stream): each
sentence goes to the synthesizer as soon as it is complete; `speak_sentences()` tags each
chunk with its sentence, so marks can tell which sentences the caller heard. Cancelling the iteration (barge-in)
stops the synthesis: nothing more is requested from the provider.

Providers:
    EspeakTTS      eSpeak NG from the espeakng-loader wheel, resampled to 8 kHz μ-law; offline.
                   Languages: every eSpeak NG voice; the defaults name English ("en-us") and
                   German ("de").
    ElevenLabsTTS  POST /v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000 with
                   xi-api-key, the agent's voice, stability, similarity and speed, and a
                   low-latency model (eleven_flash_v2_5: 32 languages, English and German among them).
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field

import httpx

from . import audio, espeak
from .errors import SpeechProviderError, SpeechUnavailable


@dataclass(frozen=True)
class VoiceSettings:
    """How the agent sounds. `voice_id`: the provider's voice (an ElevenLabs voice id; an eSpeak NG
    voice name such as "en-us+f2"); empty: the provider's default for the language. `stability`,
    `similarity_boost` 0..1 and `speed` (1.0 normal) are ElevenLabs' voice settings; eSpeak NG
    uses only `speed`."""

    voice_id: str = ""
    stability: float = 0.5
    similarity_boost: float = 0.75
    speed: float = 1.0


# --- sentences ----------------------------------------------------------------------------------

_ABBREVIATIONS = {"dr", "mr", "mrs", "ms", "prof", "st", "nr", "ca", "bzw", "usw", "vs", "etc", "z.b", "d.h", "u.a",
                  "a.m", "p.m", "hr", "fr", "str"}
_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)")
# A clause this long without a sentence end is spoken at its last comma, so a long sentence
# does not hold back the first words.
LONG_CLAUSE = 160


def _ends_sentence(text: str, end: int) -> bool:
    """Is the punctuation before `end` a sentence end, not an abbreviation or a number ("10.")?"""
    word = re.search(r"(\S+)$", text[:end])
    token = word.group(1).rstrip(".!?…\"')]").lower() if word else ""
    if text[end - 1] == "." and (token in _ABBREVIATIONS or token.isdigit()):
        return False
    return True


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, each stripped; "Dr. Smith" and "am 3. Mai" stay whole."""
    buffer = SentenceBuffer()
    return buffer.feed(text) + buffer.flush()


class SentenceBuffer:
    """Collects text that arrives in pieces and hands out each sentence once it is complete.

    `feed(piece)` -> the sentences completed by this piece; `flush()` -> the rest (end of answer).
    A sentence is complete at . ! ? followed by white space; a clause longer than LONG_CLAUSE
    characters is handed out at its last comma."""

    def __init__(self) -> None:
        self._text = ""

    def feed(self, piece: str) -> list[str]:
        self._text += piece
        out: list[str] = []
        while True:
            cut = None
            for match in _SENTENCE_END.finditer(self._text):
                if _ends_sentence(self._text, match.end()):
                    cut = match.end()
                    break
            if cut is None and len(self._text) > LONG_CLAUSE:
                comma = self._text.rfind(", ", 0, LONG_CLAUSE)
                cut = comma + 1 if comma > 0 else None
            if cut is None:
                return out
            sentence, self._text = self._text[:cut].strip(), self._text[cut:].lstrip()
            if sentence:
                out.append(sentence)

    def flush(self) -> list[str]:
        rest, self._text = self._text.strip(), ""
        return [rest] if rest else []


# --- the interface --------------------------------------------------------------------------------

class TextToSpeech(ABC):
    """A text-to-speech provider. `synthesize` yields μ-law 8 kHz bytes (no header), sentence by
    sentence. Raises SpeechUnavailable (not configured, key refused, unknown voice or language)
    or SpeechProviderError (failed this time)."""

    name: str = ""
    # ISO 639-1 codes served; None: the provider's many languages.
    languages: frozenset[str] | None = None

    def serves(self, language: str) -> bool:
        return self.languages is None or _base_language(language) in self.languages

    async def synthesize(self, text: str, *, language: str, voice: VoiceSettings | None = None
                         ) -> AsyncIterator[bytes]:
        spoken: list[str] = []
        for sentence in split_sentences(text):
            # aclosing: a barge-in that stops this iteration closes the provider's stream at once
            async with aclosing(self.synthesize_sentence(sentence, language=language, voice=voice,
                                                         previous_text=" ".join(spoken))) as chunks:
                async for chunk in chunks:
                    yield chunk
            spoken.append(sentence)

    @abstractmethod
    def synthesize_sentence(self, sentence: str, *, language: str, voice: VoiceSettings | None = None,
                            previous_text: str = "") -> AsyncIterator[bytes]:
        """One sentence's μ-law 8 kHz audio, in chunks as the provider makes them."""


@dataclass(frozen=True)
class SpokenChunk:
    """A piece of an answer's audio and the sentence it speaks. After each sentence's audio comes
    one chunk with `sentence_end` True and no audio: a Twilio `mark` sent then is echoed when the
    caller has heard the sentence (or when a `clear` dropped it), so a barge-in can tell which
    sentences were heard."""

    audio: bytes                 # μ-law 8 kHz; b"" at a sentence's end
    sentence: str
    index: int                   # the sentence's place in the answer, from 0
    sentence_end: bool = False


async def speak_sentences(pieces: AsyncIterable[str], tts: TextToSpeech, *, language: str,
                          voice: VoiceSettings | None = None) -> AsyncIterator[SpokenChunk]:
    """The audio of text arriving in `pieces` (a dialog engine's stream), tagged with its sentences:
    each sentence is synthesized as soon as it is complete, while later pieces are still to come."""
    buffer = SentenceBuffer()
    spoken: list[str] = []

    async def say(sentence: str):
        index = len(spoken)
        async with aclosing(tts.synthesize_sentence(sentence, language=language, voice=voice,
                                                    previous_text=" ".join(spoken))) as chunks:
            async for chunk in chunks:
                yield SpokenChunk(chunk, sentence, index)
        spoken.append(sentence)
        yield SpokenChunk(b"", sentence, index, sentence_end=True)

    async for piece in pieces:
        for sentence in buffer.feed(piece):
            async with aclosing(say(sentence)) as chunks:
                async for chunk in chunks:
                    yield chunk
    for sentence in buffer.flush():
        async with aclosing(say(sentence)) as chunks:
            async for chunk in chunks:
                yield chunk


async def speak(pieces: AsyncIterable[str], tts: TextToSpeech, *, language: str,
                voice: VoiceSettings | None = None) -> AsyncIterator[bytes]:
    """μ-law 8 kHz audio of text arriving in `pieces`, as `speak_sentences` makes it, without the tags."""
    async with aclosing(speak_sentences(pieces, tts, language=language, voice=voice)) as chunks:
        async for chunk in chunks:
            if chunk.audio:
                yield chunk.audio


def _base_language(language: str) -> str:
    return (language or "").lower().replace("_", "-").split("-")[0]


# --- offline: eSpeak NG -----------------------------------------------------------------------------

DEFAULT_ESPEAK_VOICES = {"en": "en-us+f2", "de": "de+f2"}


@dataclass
class EspeakTTS(TextToSpeech):
    """eSpeak NG, offline. `voices` maps a language to its voice; `chunk_ms` is the size of the
    pieces a sentence's audio is yielded in (Twilio takes any size; smaller pieces let a barge-in
    stop sooner)."""

    voices: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ESPEAK_VOICES))
    words_per_minute: int = espeak.DEFAULT_WPM
    chunk_ms: int = 200
    name: str = "offline"

    def __post_init__(self) -> None:
        self.languages = frozenset(self.voices)

    def voice_for(self, language: str, voice: VoiceSettings | None) -> str:
        if voice is not None and voice.voice_id and _looks_like_espeak_voice(voice.voice_id):
            return voice.voice_id
        try:
            return self.voices[_base_language(language)]
        except KeyError:
            raise SpeechUnavailable(f"the offline voice speaks {', '.join(sorted(self.voices))}, "
                                    f"not {language!r}") from None

    async def synthesize_sentence(self, sentence: str, *, language: str, voice: VoiceSettings | None = None,
                                  previous_text: str = "") -> AsyncIterator[bytes]:
        name = self.voice_for(language, voice)
        speed = voice.speed if voice is not None else 1.0
        ulaw = await asyncio.to_thread(self.sentence_ulaw, sentence, name, speed)
        size = max(audio.FRAME_BYTES, audio.ULAW_RATE * self.chunk_ms // 1000)
        for start in range(0, len(ulaw), size):
            yield ulaw[start:start + size]

    def sentence_ulaw(self, sentence: str, voice_name: str, speed: float = 1.0) -> bytes:
        """One sentence as μ-law 8 kHz (blocking)."""
        pcm, rate = espeak.synthesize(sentence, voice=voice_name, words_per_minute=int(self.words_per_minute * speed))
        return audio.pcm16_to_ulaw8k(pcm, rate)


def _looks_like_espeak_voice(voice_id: str) -> bool:
    # ElevenLabs ids are 20 letters and digits; eSpeak NG names are short, lower case, with - or +.
    return bool(re.fullmatch(r"[a-z]{2,3}(-[a-z0-9-]+)?(\+[A-Za-z0-9]+)?", voice_id))


# --- ElevenLabs streaming -------------------------------------------------------------------------

class _HeaderStripper:
    """Passes μ-law through, dropping a WAV header should the provider send one after all."""

    def __init__(self) -> None:
        self._head = b""
        self._decided = False

    def feed(self, chunk: bytes) -> bytes:
        if self._decided:
            return chunk
        self._head += chunk
        if len(self._head) < 12:
            return b""
        if self._head[:4] != b"RIFF":
            self._decided = True
            out, self._head = self._head, b""
            return out
        data = self._head.find(b"data")
        if data < 0 or len(self._head) < data + 8:
            return b""
        self._decided = True
        out, self._head = self._head[data + 8:], b""
        return out

    def flush(self) -> bytes:
        out, self._head = (b"" if self._head[:4] == b"RIFF" else self._head), b""
        return out


@dataclass
class ElevenLabsTTS(TextToSpeech):
    """ElevenLabs streaming TTS as μ-law 8 kHz (`output_format=ulaw_8000`, a query parameter).

    One request a sentence, the sentences already spoken as `previous_text` so the voice keeps
    its intonation across them; bytes are yielded as they arrive. Timeouts in seconds."""

    api_key: str
    base_url: str = "https://api.elevenlabs.io"
    model_id: str = "eleven_flash_v2_5"
    default_voice_id: str = "21m00Tcm4TlvDq8ikWAM"
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    name: str = "elevenlabs"
    languages: frozenset[str] | None = None

    async def synthesize_sentence(self, sentence: str, *, language: str, voice: VoiceSettings | None = None,
                                  previous_text: str = "") -> AsyncIterator[bytes]:
        if not self.api_key:
            raise SpeechUnavailable("ElevenLabs text-to-speech has no API key")
        voice = voice or VoiceSettings()
        voice_id = voice.voice_id if voice.voice_id and not _looks_like_espeak_voice(voice.voice_id) \
            else self.default_voice_id
        body = {"text": sentence, "model_id": self.model_id,
                "voice_settings": {"stability": voice.stability, "similarity_boost": voice.similarity_boost,
                                   "speed": voice.speed}}
        if language:
            body["language_code"] = _base_language(language)
        if previous_text:
            body["previous_text"] = previous_text
        url = f"{self.base_url.rstrip('/')}/v1/text-to-speech/{voice_id}/stream"
        timeout = httpx.Timeout(self.read_timeout, connect=self.connect_timeout)
        stripper = _HeaderStripper()
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                async with client.stream("POST", url, params={"output_format": "ulaw_8000"}, json=body,
                                         headers={"xi-api-key": self.api_key, "Accept": "audio/basic"}) as response:
                    if response.status_code != 200:
                        await response.aread()
                        raise _http_error("ElevenLabs text-to-speech", response)
                    async for chunk in response.aiter_bytes():
                        out = stripper.feed(chunk)
                        if out:
                            yield out
        except httpx.HTTPError as error:
            raise SpeechProviderError(f"ElevenLabs text-to-speech failed: {type(error).__name__}") from None
        rest = stripper.flush()
        if rest:
            yield rest


def _http_error(what: str, response: httpx.Response) -> Exception:
    """SpeechUnavailable for a refused key or request (401, 403, 404, 422), else SpeechProviderError;
    the message has the status and the provider's own words, never the key."""
    detail = _detail(response)
    message = f"{what} answered {response.status_code}" + (f": {detail}" if detail else "")
    if response.status_code in (401, 403, 404, 422):
        return SpeechUnavailable(message)
    return SpeechProviderError(message)


def _detail(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200]
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, dict):
        detail = detail.get("message") or detail.get("status")
    if detail is None and isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        detail = payload["error"].get("message")
    return str(detail)[:200] if detail else ""
