"""Twilio's side of a whole phone call, for end-to-end tests over real sockets.

    caller = TwilioCaller(http_base="http://127.0.0.1:8000", ws_base="ws://127.0.0.1:8000",
                          public_base="https://voice.example.com", to="+12125550100")
    twiml = await caller.dial()          # the incoming webhook, signed as Twilio signs it
    await caller.open_stream()           # the <Stream> of the TwiML, `connected` + `start` with its <Parameter>s
    await caller.listen()                # until the agent has finished speaking
    await caller.say("Yes, please.")     # eSpeak NG speaks it: μ-law 8 kHz, 20 ms `media` frames, real time
    await caller.press("0")              # a `dtmf` frame
    await caller.hang_up()               # `stop`, then the socket closes

Like Twilio, it sends a `media` frame every 20 ms for the whole call (line silence when the
caller does not speak) and plays what the server sends in real time: a `mark` is echoed when
the audio before it has played, `clear` drops the buffered audio and echoes every pending mark
at once. It keeps what it received (`media`: arrival time and bytes; `marks_echoed`; `clears`
with their times) and when the caller started speaking (`speech_onsets`).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx
from websockets.asyncio.client import connect

from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, CALLER, new_call_sid, incoming_form, sign
from voice.speech import audio
from voice.speech.tts import EspeakTTS, VoiceSettings

SILENCE = bytes([audio.ULAW_SILENCE]) * audio.FRAME_BYTES
FRAME_SECONDS = audio.FRAME_MS / 1000
# The caller's voice: of eSpeak NG's voices, the one pocketsphinx's US-English model hears best on the phone.
ENGLISH_CALLER = VoiceSettings(voice_id="en-us+klatt6", speed=160 / 175)
GERMAN_CALLER = VoiceSettings(voice_id="de+klatt6", speed=160 / 175)
_stream_sids = itertools.count(1)


@dataclass
class Received:
    at: float            # time.monotonic() of arrival
    audio: bytes


async def spoken(text: str, *, language: str, voice: VoiceSettings) -> bytes:
    """`text` as eSpeak NG says it, μ-law 8 kHz."""
    return b"".join([chunk async for chunk in EspeakTTS().synthesize(text, language=language, voice=voice)])


class TwilioCaller:
    def __init__(self, *, http_base: str, ws_base: str, public_base: str, to: str, caller: str = CALLER,
                 auth_token: str = AUTH_TOKEN, language: str = "en", voice: VoiceSettings | None = None) -> None:
        self.http_base, self.ws_base, self.public_base = http_base.rstrip("/"), ws_base.rstrip("/"), public_base
        self.to, self.caller, self.auth_token, self.language = to, caller, auth_token, language
        self.voice = voice or (ENGLISH_CALLER if language == "en" else GERMAN_CALLER)
        self.call_sid = new_call_sid()
        self.stream_sid = f"MZ{next(_stream_sids):032x}"
        self.stream_url = ""
        self.parameters: dict[str, str] = {}
        self.media: list[Received] = []
        self.marks_received: list[str] = []
        self.marks_echoed: list[str] = []
        self.clears: list[float] = []
        self.speech_onsets: list[float] = []
        self.close_code: int | None = None
        self._socket = None
        self._tasks: list[asyncio.Task] = []
        self._speech: list[bytes] = []           # frames the caller is about to say
        self._onset = False                      # the next speech frame starts an utterance
        self._spoken = asyncio.Event()
        self._sequence = itertools.count(1)
        self._chunk = itertools.count(1)
        self._buffer_end = 0.0                   # when what Twilio buffered has played
        self._pending_marks: list[tuple[str, float]] = []

    # --- the webhook ---------------------------------------------------------------------------------
    async def dial(self, **extra: str) -> ET.Element:
        """POST the incoming-call webhook as Twilio does (signed over the public URL); the TwiML answer."""
        path = "/api/voice-agent/incoming"
        form = incoming_form(to=self.to, call_sid=self.call_sid, caller=self.caller, **extra)
        signature = sign(self.public_base + path, form, self.auth_token)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(self.http_base + path, content=urlencode(form).encode(),
                                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                                  "X-Twilio-Signature": signature})
        assert response.status_code == 200, (response.status_code, response.text)
        twiml = ET.fromstring(response.content)
        stream = twiml.find("./Connect/Stream")
        if stream is not None:
            self.stream_url = stream.get("url")
            self.parameters = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
        return twiml

    # --- the stream ----------------------------------------------------------------------------------
    async def open_stream(self, *, parameters: dict | None = None, start: bool = True) -> None:
        """Connect to the TwiML's stream URL (its host reached on loopback) and send `connected` and,
        unless `start` is False, `start` with `parameters` (default: the TwiML's <Parameter>s)."""
        path = urlsplit(self.stream_url).path if self.stream_url else "/voice-agent/media-stream"
        self._socket = await connect(self.ws_base + path, max_size=None, ping_interval=None)
        self._tasks.append(asyncio.create_task(self._read()))
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        if start:
            await self.start(self.parameters if parameters is None else parameters)

    async def start(self, parameters: dict) -> None:
        await self.send({"event": "start", "sequenceNumber": str(next(self._sequence)), "streamSid": self.stream_sid,
                         "start": {"accountSid": ACCOUNT_SID, "streamSid": self.stream_sid, "callSid": self.call_sid,
                                   "tracks": ["inbound"], "customParameters": parameters,
                                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
        self._tasks.append(asyncio.create_task(self._line()))
        self._tasks.append(asyncio.create_task(self._playout()))

    async def send(self, frame: dict) -> None:
        await self._socket.send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self._socket.send(data)

    async def say(self, text: str) -> None:
        """Speak `text` in real time; returns when its last frame was sent."""
        await self.say_audio(await spoken(text, language=self.language, voice=self.voice))

    async def say_audio(self, ulaw: bytes) -> None:
        self._spoken.clear()
        self._onset = True
        self._speech = list(audio.frames(ulaw))
        await self._spoken.wait()

    async def press(self, digit: str) -> None:
        await self.send({"event": "dtmf", "streamSid": self.stream_sid, "sequenceNumber": str(next(self._sequence)),
                         "dtmf": {"track": "inbound_track", "digit": digit}})

    async def hang_up(self) -> None:
        """`stop`, as Twilio sends it when the call ends, then the socket is closed."""
        try:
            await self.send({"event": "stop", "sequenceNumber": str(next(self._sequence)),
                             "streamSid": self.stream_sid,
                             "stop": {"accountSid": ACCOUNT_SID, "callSid": self.call_sid}})
        except Exception:
            pass
        await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._socket is not None:
            await self._socket.close()

    async def closed(self, timeout: float = 10.0) -> int | None:
        """Wait until the server closes the socket; its close code."""
        await asyncio.wait_for(self._socket.wait_closed(), timeout)
        self.close_code = self._socket.close_code
        return self.close_code

    # --- listening -----------------------------------------------------------------------------------
    async def listen(self, *, quiet: float = 0.7, timeout: float = 30.0) -> bytes:
        """Wait for the agent's next words and until it has finished (all its audio played, nothing new
        for `quiet` seconds); the audio it said."""
        began = time.monotonic()
        first = len(self.media)
        deadline = began + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if len(self.media) == first:
                continue
            now = time.monotonic()
            if (now >= self._buffer_end and not self._pending_marks
                    and now - self.media[-1].at >= quiet):
                return b"".join(r.audio for r in self.media[first:])
        raise TimeoutError(f"the agent did not finish speaking within {timeout}s")

    def heard_after(self, moment: float) -> list[Received]:
        return [r for r in self.media if r.at > moment]

    # --- Twilio's two directions -------------------------------------------------------------------
    async def _line(self) -> None:
        """A media frame every 20 ms: the caller's speech, or the line's silence."""
        next_at = time.monotonic()
        while True:
            if self._speech:
                if self._onset:
                    self._onset = False
                    self.speech_onsets.append(time.monotonic())
                frame = self._speech.pop(0)
                if not self._speech:
                    self._spoken.set()
            else:
                frame = SILENCE
            chunk = next(self._chunk)
            await self.send({"event": "media", "sequenceNumber": str(next(self._sequence)),
                             "streamSid": self.stream_sid,
                             "media": {"track": "inbound", "chunk": str(chunk), "timestamp": str(chunk * 20),
                                       "payload": base64.b64encode(frame).decode()}})
            next_at += FRAME_SECONDS
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _read(self) -> None:
        try:
            async for message in self._socket:
                frame = json.loads(message)
                now = time.monotonic()
                if frame.get("event") == "media":
                    chunk = base64.b64decode(frame["media"]["payload"])
                    self.media.append(Received(now, chunk))
                    self._buffer_end = max(self._buffer_end, now) + len(chunk) / audio.ULAW_RATE
                elif frame.get("event") == "mark":
                    name = frame["mark"]["name"]
                    self.marks_received.append(name)
                    self._pending_marks.append((name, max(self._buffer_end, now)))
                elif frame.get("event") == "clear":
                    self.clears.append(now)
                    self._buffer_end = now
                    pending, self._pending_marks = self._pending_marks, []
                    for name, _ in pending:
                        await self._echo(name)
        except Exception:
            pass
        self.close_code = self._socket.close_code

    async def _playout(self) -> None:
        """Echo each mark once the audio before it has played."""
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            while self._pending_marks and self._pending_marks[0][1] <= now:
                name, _ = self._pending_marks.pop(0)
                await self._echo(name)

    async def _echo(self, name: str) -> None:
        self.marks_echoed.append(name)
        await self.send({"event": "mark", "sequenceNumber": str(next(self._sequence)), "streamSid": self.stream_sid,
                         "mark": {"name": name}})
