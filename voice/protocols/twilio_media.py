"""Twilio Media Streams (bidirectional `<Connect><Stream>`) as a sans-IO state machine.

No Django, no asyncio, no sockets: the adapter feeds in what arrived (a text frame) and
what it wants to say (μ-law audio, a mark, a clear), with the time as seconds passed in;
it gets back events and the frames to send. Facts implemented (shared/reference/
twilio_elevenlabs.md A3):

- every message is one JSON object in a text frame; a binary frame is an error;
- Twilio sends `connected`, then `start` (streamSid, callSid, customParameters,
  mediaFormat audio/x-mulaw 8000 Hz mono), `media` (base64 μ-law; `track`, `chunk`,
  `timestamp` in ms, all strings), `dtmf`, `mark` (the echo of one of ours), `stop`;
- we send `media` (base64 μ-law, no file header, any size, played in order), `mark`
  (echoed when the audio before it has played, or at once when nothing is buffered)
  and `clear` (drops the buffered audio; every pending mark is then echoed at once, so
  an echo after a clear proves nothing was played); each carries the streamSid.

What the caller heard is tracked here: audio we send is counted in samples (8000 per
second); a mark we place after a piece of audio is "played" only if its echo arrives
before we clear. `heard()` tells, for each mark, whether its audio was played, so the
session keeps in the transcript only what the caller really heard.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

SAMPLE_RATE = 8000                   # μ-law, 1 byte per sample
MAX_FRAME_BYTES = 64 * 1024          # a media frame of 20 ms is about 300 bytes; anything huge is refused
_KNOWN = {"connected", "start", "media", "dtmf", "mark", "stop"}


# --- events: what arrived --------------------------------------------------------------------------

@dataclass(frozen=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True)
class Started:
    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: dict
    tracks: tuple


@dataclass(frozen=True)
class Media:
    """Caller audio: raw μ-law bytes; `timestamp_ms` since the stream began (Twilio's clock)."""
    audio: bytes
    timestamp_ms: int
    chunk: int


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class MarkPlayed:
    """The audio before mark `name` has played (its echo came before any clear)."""
    name: str


@dataclass(frozen=True)
class Stopped:
    call_sid: str


@dataclass(frozen=True)
class Malformed:
    """A frame the protocol does not allow (not JSON, binary, too large, media before start…);
    reported, and the call goes on."""
    reason: str


@dataclass(frozen=True)
class Ignored:
    """A well-formed frame of an event we do not know, or one that changes nothing (a mark echo after a clear)."""
    event: str
    reason: str = "unknown event"


Event = Connected | Started | Media | Dtmf | MarkPlayed | Stopped | Malformed | Ignored


class ProtocolUsageError(Exception):
    """The adapter asked for something the protocol does not allow (a bug, not bad input)."""


@dataclass
class _Mark:
    name: str
    sent_samples: int          # audio sent before this mark, since the stream began
    played: bool = False
    cleared: bool = False


@dataclass
class MediaStream:
    """One Media Streams connection."""

    stream_sid: str | None = None
    call_sid: str | None = None
    custom_parameters: dict = field(default_factory=dict)
    stopped: bool = False
    samples_sent: int = 0
    _marks: dict = field(default_factory=dict)           # name -> _Mark, in the order sent
    _connected: bool = False

    # --- inbound --------------------------------------------------------------------------------

    def receive(self, data: str | bytes) -> list[Event]:
        """One frame from Twilio; returns what it means (never raises on bad input)."""
        if isinstance(data, bytes | bytearray):
            return [Malformed("binary frame (Media Streams messages are JSON text)")]
        if len(data) > MAX_FRAME_BYTES:
            return [Malformed(f"frame of {len(data)} bytes is too large")]
        try:
            frame = json.loads(data)
        except ValueError:
            return [Malformed("frame is not JSON")]
        if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
            return [Malformed("frame is not an object with an event")]
        kind = frame["event"]
        if kind not in _KNOWN:
            return [Ignored(kind)]
        if self.stopped:
            return [Ignored(kind, "after stop")]
        return getattr(self, f"_on_{kind}")(frame)

    def _on_connected(self, frame: dict) -> list[Event]:
        self._connected = True
        return [Connected(str(frame.get("protocol", "")), str(frame.get("version", "")))]

    def _on_start(self, frame: dict) -> list[Event]:
        if self.stream_sid is not None:
            return [Malformed("a second start")]
        start = frame.get("start")
        if not isinstance(start, dict):
            return [Malformed("start without a start object")]
        stream_sid = start.get("streamSid") or frame.get("streamSid")
        call_sid = start.get("callSid")
        if not isinstance(stream_sid, str) or not stream_sid or not isinstance(call_sid, str) or not call_sid:
            return [Malformed("start without streamSid or callSid")]
        media_format = start.get("mediaFormat") or {}
        if isinstance(media_format, dict) and media_format.get("encoding") not in (None, "audio/x-mulaw"):
            return [Malformed(f"unsupported encoding {media_format.get('encoding')!r}")]
        parameters = start.get("customParameters")
        self.stream_sid, self.call_sid = stream_sid, call_sid
        self.custom_parameters = ({str(k): str(v) for k, v in parameters.items()} if isinstance(parameters, dict)
                                  else {})
        tracks = start.get("tracks")
        return [Started(stream_sid, call_sid, str(start.get("accountSid") or ""), dict(self.custom_parameters),
                        tuple(tracks) if isinstance(tracks, list) else ())]

    def _on_media(self, frame: dict) -> list[Event]:
        if self.stream_sid is None:
            return [Malformed("media before start")]
        media = frame.get("media")
        if not isinstance(media, dict) or not isinstance(media.get("payload"), str):
            return [Malformed("media without a payload")]
        if media.get("track", "inbound") not in ("inbound", "inbound_track"):
            return [Ignored("media", f"track {media.get('track')!r}")]
        try:
            audio = base64.b64decode(media["payload"], validate=True)
        except (binascii.Error, ValueError):
            return [Malformed("media payload is not base64")]
        return [Media(audio, _int(media.get("timestamp")), _int(media.get("chunk")))]

    def _on_dtmf(self, frame: dict) -> list[Event]:
        dtmf = frame.get("dtmf")
        digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
        if not isinstance(digit, str) or len(digit) != 1 or digit not in "0123456789*#ABCD":
            return [Malformed("dtmf without a digit")]
        return [Dtmf(digit)]

    def _on_mark(self, frame: dict) -> list[Event]:
        mark = frame.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        placed = self._marks.get(name) if isinstance(name, str) else None
        if placed is None:
            return [Ignored("mark", "not one of ours")]
        if placed.cleared:
            return [Ignored("mark", "echoed by a clear: not played")]
        placed.played = True
        return [MarkPlayed(name)]

    def _on_stop(self, frame: dict) -> list[Event]:
        self.stopped = True
        stop = frame.get("stop")
        return [Stopped(str((stop or {}).get("callSid") or self.call_sid or "") if isinstance(stop, dict)
                        else self.call_sid or "")]

    # --- outbound ---------------------------------------------------------------------------------

    def _require_started(self) -> str:
        if self.stream_sid is None:
            raise ProtocolUsageError("nothing can be sent before start (the streamSid is not known)")
        return self.stream_sid

    def media(self, audio: bytes) -> str:
        """The frame that plays `audio` (raw μ-law 8 kHz) to the caller."""
        stream_sid = self._require_started()
        if not audio:
            raise ProtocolUsageError("empty audio")
        self.samples_sent += len(audio)
        return _text({"event": "media", "streamSid": stream_sid,
                      "media": {"payload": base64.b64encode(audio).decode("ascii")}})

    def mark(self, name: str) -> str:
        """A mark after the audio sent so far; its echo tells that audio was played."""
        stream_sid = self._require_started()
        if name in self._marks:
            raise ProtocolUsageError(f"mark {name!r} was sent before")
        self._marks[name] = _Mark(name, self.samples_sent)
        return _text({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})

    def clear(self) -> str:
        """Drop the audio Twilio still buffers (barge-in); pending marks are then not played."""
        stream_sid = self._require_started()
        for placed in self._marks.values():
            if not placed.played:
                placed.cleared = True
        return _text({"event": "clear", "streamSid": stream_sid})

    # --- what was heard ---------------------------------------------------------------------------

    def played(self, name: str) -> bool | None:
        """Whether the audio before mark `name` was played (None while it is neither played nor cleared)."""
        placed = self._marks.get(name)
        if placed is None:
            raise ProtocolUsageError(f"no mark {name!r}")
        if placed.played:
            return True
        return False if placed.cleared else None

    @property
    def pending_marks(self) -> list[str]:
        """Marks sent whose audio has neither played nor been cleared: the caller may be hearing it now."""
        return [m.name for m in self._marks.values() if not m.played and not m.cleared]


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _text(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"))
