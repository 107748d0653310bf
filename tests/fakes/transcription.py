"""A fake OpenAI-compatible transcription server on loopback (a real socket), as OpenAI's API and
self-hosted Whisper servers answer POST /v1/audio/transcriptions:

    multipart/form-data: file (audio), model, language (ISO 639-1), prompt, response_format
    -> 200 {"text": "..."}; errors as {"error": {"message", "type"}}

    server = FakeTranscriptionServer(api_key="sk-test").start()
    server.transcripts = ["Ich hätte gern einen Termin"]   # answered in order (then "")
    server.transcribe = lambda wav, fields: "..."           # or computed from the request
    server.requests     # [{"fields": {...}, "file": bytes, "filename", "content_type", "headers"}]
    server.fail_next(500)
    server.close()
"""

from __future__ import annotations

import json
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fakes import free_port


def parse_multipart(content_type: str, body: bytes) -> tuple[dict, dict]:
    """(fields, files) of a multipart/form-data body; files: name -> (filename, content type, bytes)."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields, files = {}, {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename is not None:
            files[name] = (filename, part.get_content_type(), payload)
        else:
            fields[name] = payload.decode("utf-8")
    return fields, files


class FakeTranscriptionServer:
    def __init__(self, api_key: str = "") -> None:
        self.api_key = api_key
        self.requests: list[dict] = []
        self.transcripts: list[str] = []
        self.transcribe = None
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server = None

    def start(self) -> FakeTranscriptionServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-transcription").start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def fail_next(self, status: int) -> None:
        self._failures.append(status)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if handler.path != "/v1/audio/transcriptions":
            return self._json(handler, 404, {"error": {"message": "Not found", "type": "invalid_request_error"}})
        if self.api_key and handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._json(handler, 401, {"error": {"message": "Incorrect API key provided",
                                                       "type": "invalid_request_error"}})
        content_type = handler.headers.get("Content-Type", "")
        fields, files = parse_multipart(content_type, body) if content_type.startswith("multipart/") else ({}, {})
        filename, file_type, data = files.get("file", ("", "", b""))
        with self._lock:
            self.requests.append({"fields": fields, "file": data, "filename": filename, "content_type": file_type,
                                  "headers": dict(handler.headers)})
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return self._json(handler, failure, {"error": {"message": "The server had an error", "type": "server"}})
        if not data or not fields.get("model"):
            return self._json(handler, 400, {"error": {"message": "file and model are required",
                                                       "type": "invalid_request_error"}})
        with self._lock:
            if self.transcribe is not None:
                text = self.transcribe(data, fields)
            else:
                text = self.transcripts.pop(0) if self.transcripts else ""
        self._json(handler, 200, {"text": text})

    @staticmethod
    def _json(handler, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


class ScriptListener:
    """A `transcribe` for FakeTranscriptionServer that hears which line of a script the audio is.

    It knows each line's own recording (`lines`: text -> μ-law 8 kHz, e.g. eSpeak NG's) and compares
    the loudness contour of the audio it receives (the WAV the client uploaded) with each line's:
    speech duration first, then the correlation of the two contours resampled to one length. It
    answers the closest line's text, "" when nothing is close. It learns nothing else from the
    request: what was said is decided from the audio alone.
    """

    def __init__(self, lines: dict[str, bytes], *, max_duration_ratio: float = 1.35) -> None:
        from voice.speech import audio

        self.max_duration_ratio = max_duration_ratio
        self._references = {text: _contour(audio.ulaw_to_pcm16(ulaw), audio.ULAW_RATE) for text, ulaw in lines.items()}
        self.heard: list[str] = []

    def __call__(self, wav: bytes, fields: dict) -> str:
        import io
        import wave

        with wave.open(io.BytesIO(wav)) as reader:
            contour = _contour(reader.readframes(reader.getnframes()), reader.getframerate())
        best, best_score = "", 0.0
        for text, reference in self._references.items():
            ratio = max(len(contour), len(reference)) / max(1, min(len(contour), len(reference)))
            if ratio > self.max_duration_ratio:
                continue
            score = _similarity(contour, reference) / ratio
            if score > best_score:
                best, best_score = text, score
        self.heard.append(best)
        return best


def _contour(pcm: bytes, rate: int):
    """Loudness (dB) per 20 ms of the voiced span of int16 PCM."""
    import numpy as np

    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    step = rate // 50
    frames = samples[: len(samples) - len(samples) % step].reshape(-1, step) if len(samples) >= step else \
        np.zeros((1, step))
    loudness = 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1.0)
    voiced = np.flatnonzero(loudness > loudness.max() - 35)
    return loudness[voiced[0]:voiced[-1] + 1] if voiced.size else loudness


def _similarity(a, b) -> float:
    import numpy as np

    length = max(len(a), len(b))
    x = np.interp(np.linspace(0, len(a) - 1, length), np.arange(len(a)), a)
    y = np.interp(np.linspace(0, len(b) - 1, length), np.arange(len(b)), b)
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(max(0.0, np.corrcoef(x, y)[0, 1]))
