"""A loopback practice backend: a real threaded HTTP server that records every request.

It answers 200 with `{"ok": true}` until told otherwise: `fail(500)` (optionally
with Retry-After, or with a body of its own), `hang(seconds)` to time the client out,
`recover()` to go back to 200.
"""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict
    body: dict | None
    status: int  # what the fake answered (0: it hung up without answering)
    raw: bytes = b""  # the body as sent (a signature is over these bytes)


class FakeBackend:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._status, self._retry_after, self._hang, self._body = 200, None, 0.0, None
        self.requests: list[Received] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address
        return f"http://{host}:{port}"

    def fail(self, status: int = 500, retry_after: str | None = None, body: bytes | None = None) -> None:
        with self._lock:
            self._status, self._retry_after, self._hang, self._body = status, retry_after, 0.0, body

    def hang(self, seconds: float) -> None:
        with self._lock:
            self._hang = seconds

    def recover(self) -> None:
        self.fail(200)

    def answered(self, status: int = 200, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.status == status and (path is None or r.path == path)]

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with fake._lock:
                    status, retry_after, hang, own_body = fake._status, fake._retry_after, fake._hang, fake._body
                if hang:
                    fake._stop.wait(hang)
                    with fake._lock:
                        fake.requests.append(Received("POST", self.path, dict(self.headers), body, 0, raw))
                    return  # hang up without an answer: the client has timed out by now
                with fake._lock:
                    fake.requests.append(Received("POST", self.path, dict(self.headers), body, status, raw))
                answer = own_body if own_body is not None else json.dumps({"ok": status < 400}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(answer)

        return Handler
