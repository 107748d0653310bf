"""Loopback fakes of the providers and the practice backend, and what tests that start servers share."""

import json
import socket
from http.server import BaseHTTPRequestHandler


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send_json(handler: BaseHTTPRequestHandler, status: int, payload) -> None:
    """Answer an http.server request with `payload` as JSON; a client that gave up (timeout) is let go."""
    data = json.dumps(payload).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
