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
