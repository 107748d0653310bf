"""A fake OpenAI-compatible chat-completions server on loopback (a real socket).

It answers POST /v1/chat/completions with a server-sent-event stream as the OpenAI API
does (`data: {chunk}` lines, then `data: [DONE]`), following a script of replies:

    llm = FakeLLM().start()
    llm.script(Text(["Hello", " there."], delay=0.05),
               ToolCalls([("call_1", "check_availability", '{"date": "tomorrow"}')]),
               Fail(500), Hang(5), Raw(b"data: [DONE]\n\n"))
    ... company.llm_base_url = llm.base_url ...
    llm.requests   # the JSON bodies received, in order; llm.headers likewise
    llm.replies_sent  # streamed replies written in full ([DONE] included)

When the script runs out it repeats the last reply.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Text:
    chunks: list
    delay: float = 0.0           # seconds before each chunk


@dataclass
class ToolCalls:
    calls: list                  # (id, name, arguments JSON string)
    pieces: int = 3              # the arguments string is streamed in this many deltas
    text_before: str = ""
    # "openai": each call under its own index, its arguments in pieces after its first delta;
    # "ollama": every delta under index 0, each call whole in one delta with its own id;
    # "no_index": as "openai", with no index in any delta.
    shape: str = "openai"


@dataclass
class Fail:
    status: int = 500
    body: dict = field(default_factory=lambda: {"error": {"message": "The server had an error.",
                                                          "type": "server_error"}})


@dataclass
class Raw:
    """A 200 answer with exactly this body (not an event stream unless the body makes one)."""
    body: bytes
    content_type: str = "text/event-stream"


@dataclass
class Hang:
    seconds: float = 5.0         # wait this long before answering at all


class FakeLLM:
    def __init__(self) -> None:
        self._script: list = [Text(["Hello."])]
        self._position = 0
        self._lock = threading.Lock()
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.replies_sent = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *replies) -> "FakeLLM":
        with self._lock:
            self._script = list(replies)
            self._position = 0
        return self

    def _next_reply(self):
        with self._lock:
            reply = self._script[min(self._position, len(self._script) - 1)]
            self._position += 1
            return reply

    def start(self) -> "FakeLLM":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(body)
                fake.headers.append(dict(self.headers))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": "Unknown path", "type": "invalid_request_error"}})
                reply = fake._next_reply()
                if isinstance(reply, Hang):
                    time.sleep(reply.seconds)
                    return self._json(504, {"error": {"message": "late", "type": "timeout"}})
                if isinstance(reply, Fail):
                    return self._json(reply.status, reply.body)
                if isinstance(reply, Raw):
                    return self._raw(reply)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                model = body.get("model", "fake-model")
                try:
                    if isinstance(reply, Text):
                        self._text(reply, model)
                    else:
                        self._tool_calls(reply, model)
                    self._event("[DONE]")
                    with fake._lock:
                        fake.replies_sent += 1
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def _json(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            def _raw(self, reply: Raw) -> None:
                self.send_response(200)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(reply.body)
                self.close_connection = True

            def _event(self, data: str) -> None:
                self.wfile.write(f"data: {data}\n\n".encode())
                self.wfile.flush()

            def _chunk(self, model: str, delta: dict, finish_reason=None) -> None:
                self._event(json.dumps({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                                        "created": int(time.time()), "model": model,
                                        "choices": [{"index": 0, "delta": delta,
                                                     "finish_reason": finish_reason}]}))

            def _text(self, reply: Text, model: str) -> None:
                self._chunk(model, {"role": "assistant", "content": ""})
                for piece in reply.chunks:
                    if reply.delay:
                        time.sleep(reply.delay)
                    self._chunk(model, {"content": piece})
                self._chunk(model, {}, "stop")

            def _tool_calls(self, reply: ToolCalls, model: str) -> None:
                self._chunk(model, {"role": "assistant", "content": reply.text_before or None})
                for index, (call_id, name, arguments) in enumerate(reply.calls):
                    if reply.shape == "ollama":
                        self._chunk(model, {"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                                            "function": {"name": name, "arguments": arguments}}]})
                        continue
                    where = {} if reply.shape == "no_index" else {"index": index}
                    self._chunk(model, {"tool_calls": [{**where, "id": call_id, "type": "function",
                                                        "function": {"name": name, "arguments": ""}}]})
                    size = max(1, -(-len(arguments) // reply.pieces))
                    for start in range(0, len(arguments), size):
                        self._chunk(model, {"tool_calls": [{**where, "function": {
                            "arguments": arguments[start:start + size]}}]})
                self._chunk(model, {}, "tool_calls")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
