"""A fake ElevenLabs on loopback (real sockets) speaking its wire formats:

- streaming text-to-speech: POST /v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000
  with `xi-api-key`, answered with chunked raw μ-law 8 kHz (a tone, 50 ms per character);
- Scribe realtime speech-to-text: a WebSocket at /v1/speech-to-text/realtime
  (?model_id=…&audio_format=ulaw_8000&commit_strategy=manual…, `xi-api-key` on the upgrade):
  `session_started`, then per `input_audio_chunk` a `partial_transcript`, and per commit a
  `committed_transcript` whose text is the next line of the script.

    fake = FakeElevenLabs(api_key="xi-test").start()
    fake.transcripts = ["I'd like to book a check-up"]     # what each commit answers
    fake.tts_requests        # [{"path", "query", "json", "headers"}] in order
    fake.tts_answers         # per streamed answer: "complete", or "abandoned" (the client hung up)
    fake.stt_sessions        # [{"query", "headers", "messages", "commits": [audio bytes]}]
    fake.fail_tts(503)       # the next TTS request answers this status
    fake.close()
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Response
from websockets.datastructures import Headers
from websockets.sync.server import serve

from tests.fakes import free_port

MS_PER_CHARACTER = 50


def tone_ulaw(milliseconds: int) -> bytes:
    """μ-law 8 kHz of a 440 Hz tone (not silence, so a listener can tell audio came)."""
    from voice.speech.audio import pcm16_to_ulaw

    n = 8 * milliseconds
    pcm = b"".join(int(6000 * math.sin(2 * math.pi * 440 * i / 8000)).to_bytes(2, "little", signed=True)
                   for i in range(n))
    return pcm16_to_ulaw(pcm)


class FakeElevenLabs:
    def __init__(self, api_key: str = "xi-test-key") -> None:
        self.api_key = api_key
        self.tts_requests: list[dict] = []
        self.tts_answers: list[str] = []   # per streamed answer, once over: "complete" | "abandoned"
        self.stt_sessions: list[dict] = []
        self.transcripts: list[str] = []
        self.chunk_delay = 0.0       # seconds between the chunks of a TTS answer
        self.chunk_bytes = 800
        self.wav_header = False      # answer TTS with a WAV file instead of raw μ-law
        self._tts_failures: list[int] = []
        self._lock = threading.Lock()
        self._http = None
        self._ws = None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeElevenLabs:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                fake._tts(self)

        self._http = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True, name="fake-elevenlabs-http").start()
        self._ws = serve(self._stt, "127.0.0.1", free_port(), process_request=self._check_upgrade)
        threading.Thread(target=self._ws.serve_forever, daemon=True, name="fake-elevenlabs-ws").start()
        return self

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._ws is not None:
            self._ws.shutdown()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._ws.socket.getsockname()[1]}"

    def fail_tts(self, status: int) -> None:
        self._tts_failures.append(status)

    # --- text-to-speech ----------------------------------------------------------------------------
    def _tts(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = None
        with self._lock:
            self.tts_requests.append({"path": parts.path, "query": parse_qs(parts.query), "json": payload,
                                      "headers": dict(handler.headers)})
            failure = self._tts_failures.pop(0) if self._tts_failures else None
        segments = parts.path.strip("/").split("/")
        if handler.headers.get("xi-api-key") != self.api_key:
            return self._json(handler, 401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}})
        if failure is not None:
            return self._json(handler, failure, {"detail": {"status": "error", "message": "Service unavailable"}})
        if len(segments) != 4 or segments[:2] != ["v1", "text-to-speech"] or segments[3] != "stream" \
                or not isinstance(payload, dict) or not payload.get("text"):
            return self._json(handler, 422, {"detail": {"status": "invalid_request", "message": "Bad request"}})
        if parse_qs(parts.query).get("output_format") != ["ulaw_8000"]:
            return self._json(handler, 422, {"detail": {"status": "invalid_format", "message": "Unsupported"}})
        audio = tone_ulaw(MS_PER_CHARACTER * len(payload["text"]))
        if self.wav_header:
            audio = b"RIFF" + (36 + len(audio)).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little") \
                + bytes([7, 0, 1, 0]) + (8000).to_bytes(4, "little") + (8000).to_bytes(4, "little") \
                + bytes([1, 0, 8, 0]) + b"data" + len(audio).to_bytes(4, "little") + audio
        handler.send_response(200)
        handler.send_header("Content-Type", "audio/basic")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            for start in range(0, len(audio), self.chunk_bytes):
                piece = audio[start:start + self.chunk_bytes]
                handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                handler.wfile.flush()
                if self.chunk_delay:
                    time.sleep(self.chunk_delay)
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
            outcome = "complete"
        except (BrokenPipeError, ConnectionResetError):
            outcome = "abandoned"  # the client stopped listening (a barge-in): as the real API, stop sending
        with self._lock:
            self.tts_answers.append(outcome)

    @staticmethod
    def _json(handler, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    # --- Scribe realtime -------------------------------------------------------------------------
    def _check_upgrade(self, connection, request):
        if urlsplit(request.path).path != "/v1/speech-to-text/realtime":
            return Response(404, "Not Found", Headers(), b"")
        return None

    def _stt(self, websocket) -> None:
        request = websocket.request
        query = parse_qs(urlsplit(request.path).query)
        session = {"query": query, "headers": dict(request.headers.raw_items()), "messages": [], "commits": []}
        with self._lock:
            self.stt_sessions.append(session)
        if request.headers.get("xi-api-key") != self.api_key:
            websocket.send(json.dumps({"message_type": "auth_error", "error": "Invalid API key"}))
            websocket.close(1008)
            return
        if query.get("audio_format") != ["ulaw_8000"] or query.get("model_id") != ["scribe_v2_realtime"]:
            websocket.send(json.dumps({"message_type": "input_error", "error": "unsupported audio_format or model"}))
            websocket.close(1008)
            return
        websocket.send(json.dumps({"message_type": "session_started", "session_id": f"sess_{len(self.stt_sessions)}",
                                   "config": {"sample_rate": 8000, "audio_format": "ulaw_8000",
                                              "model_id": "scribe_v2_realtime"}}))
        pending = bytearray()
        for raw in websocket:
            message = json.loads(raw)
            session["messages"].append(message)
            if message.get("message_type") != "input_audio_chunk":
                websocket.send(json.dumps({"message_type": "input_error", "error": "unknown message_type"}))
                continue
            pending += base64.b64decode(message.get("audio_base_64") or "")
            with self._lock:
                script = self.transcripts[0] if self.transcripts else ""
            if message.get("commit"):
                with self._lock:
                    text = self.transcripts.pop(0) if self.transcripts else ""
                session["commits"].append(bytes(pending))
                pending.clear()
                websocket.send(json.dumps({"message_type": "committed_transcript", "text": text}))
            elif pending:
                words = script.split()
                heard = words[: max(1, len(pending) // 4000)]
                websocket.send(json.dumps({"message_type": "partial_transcript", "text": " ".join(heard)}))


# --- ElevenLabs' side of a webhook (server) tool call (twilio_elevenlabs.md B4) -----------------
def webhook_tool_request(tool_config: dict, *, arguments: dict, variables: dict[str, str]) -> dict:
    """The HTTP request ElevenLabs makes for a webhook tool: `api_schema.url` with its query
    params (a `constant_value` as it is, a `dynamic_variable` from `variables`, e.g.
    system__conversation_id, a described one from `arguments`), the `request_headers` as they
    are (a plain string value is sent as it is), and the body arguments as the JSON body.

    Returns {"method", "path_and_query", "headers", "body"} for a test client."""
    from urllib.parse import urlencode, urlsplit as split

    schema = tool_config["api_schema"]
    query = {}
    for name, spec in (schema.get("query_params_schema") or {}).get("properties", {}).items():
        if "constant_value" in spec:
            query[name] = spec["constant_value"]
        elif "dynamic_variable" in spec:
            query[name] = variables[spec["dynamic_variable"]]
        elif name in arguments:
            query[name] = arguments[name]
    body_properties = (schema.get("request_body_schema") or {}).get("properties", {})
    body = {name: value for name, value in arguments.items() if name in body_properties}
    headers = {}
    for name, value in (schema.get("request_headers") or {}).items():
        if not isinstance(value, str):
            raise ValueError(f"header {name} needs an ElevenLabs secret or variable: {value}")
        headers[name] = value
    url = split(schema["url"])
    path_and_query = url.path + "?" + urlencode({**dict(p.split("=", 1) for p in url.query.split("&") if p), **query})
    return {"method": schema.get("method", "GET"), "path_and_query": path_and_query, "headers": headers,
            "body": json.dumps(body).encode() if schema.get("method", "GET") in ("POST", "PUT", "PATCH") else b""}
