"""A fake of Twilio's REST API (2010-04-01) on loopback: a real threaded HTTP server speaking the
endpoints the twilio package calls for IncomingPhoneNumbers (list, page by page; update) and
Calls (update: `Twiml`, `Status=completed`).

It checks HTTP Basic auth (account SID and auth token), records every request, answers a call
it does not know or that has ended with Twilio's 404 / error 20404, and fails on command (an HTTP
status or a stall longer than the client's timeout), so tests can assert exactly what was sent.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes import send_json

API = "/2010-04-01"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    form: dict
    headers: dict

    @property
    def line(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Failure:
    status: int | None          # None: stall for `stall` seconds, then answer normally
    method: str | None
    path: str | None             # a regex searched in the path; None matches all
    times: int
    stall: float = 0.0
    code: int | None = None


@dataclass
class FakeCall:
    sid: str
    status: str = "in-progress"
    twiml: list[str] = field(default_factory=list)


def _error(status: int, code: int, message: str) -> dict:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


class FakeTwilioAPI:
    def __init__(self, account_sid: str, auth_token: str, *, page_size_cap: int = 1000) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.page_size_cap = page_size_cap
        self.numbers: dict[str, dict] = {}
        self.calls: dict[str, FakeCall] = {}
        self.requests: list[Recorded] = []
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> "FakeTwilioAPI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                fake._serve(self)

            do_GET = do_POST = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- test controls ------------------------------------------------------------------
    def add_number(self, phone_number: str, *, sid: str | None = None, **fields) -> dict:
        sid = sid or f"PN{len(self.numbers) + 1:032x}"
        row = {"sid": sid, "account_sid": self.account_sid, "phone_number": phone_number,
               "friendly_name": fields.pop("friendly_name", phone_number), "voice_url": "", "voice_method": "POST",
               "status_callback": "", "status_callback_method": "POST", "voice_application_sid": "",
               "trunk_sid": None, "api_version": "2010-04-01",
               "uri": f"{API}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{sid}.json", **fields}
        self.numbers[sid] = row
        return row

    def add_call(self, sid: str, *, status: str = "in-progress") -> FakeCall:
        self.calls[sid] = FakeCall(sid, status)
        return self.calls[sid]

    def fail(self, status: int = 503, *, method: str | None = None, path: str | None = None, times: int = 1,
             code: int | None = None) -> None:
        """Answer the next `times` matching requests with `status` (and Twilio error `code`)."""
        with self._lock:
            self._failures.append(Failure(status, method, path, times, code=code))

    def stall(self, seconds: float, *, method: str | None = None, path: str | None = None, times: int = 1) -> None:
        """Hold the next matching requests for `seconds` before answering (a client timeout)."""
        with self._lock:
            self._failures.append(Failure(None, method, path, times, stall=seconds))

    def lines(self) -> list[str]:
        return [r.line for r in self.requests]

    # --- serving ------------------------------------------------------------------------
    def _take_failure(self, method: str, path: str) -> Failure | None:
        with self._lock:
            for failure in self._failures:
                if ((failure.method is None or failure.method == method)
                        and (failure.path is None or re.search(failure.path, path))):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    def _authorised(self, header: str) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return header == f"Basic {expected}"

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            self.requests.append(Recorded(handler.command, parts.path, query, form, dict(handler.headers)))
        failure = self._take_failure(handler.command, parts.path)
        if failure is not None and failure.status is None:
            time.sleep(failure.stall)
        elif failure is not None:
            return self._send(handler, failure.status, _error(failure.status, failure.code or 20500, "Injected"))
        if not self._authorised(handler.headers.get("Authorization", "")):
            return self._send(handler, 401, _error(401, 20003, "Authenticate"))
        status, payload = self._route(handler.command, parts.path, query, form)
        self._send(handler, status, payload)

    _send = staticmethod(send_json)

    def _route(self, method: str, path: str, query: dict, form: dict) -> tuple[int, object]:
        account = f"{API}/Accounts/{self.account_sid}"
        with self._lock:
            if method == "GET" and path == f"{account}/IncomingPhoneNumbers.json":
                return self._numbers_page(query)
            match = re.fullmatch(rf"{account}/IncomingPhoneNumbers/(PN\w+)\.json", path)
            if match:
                row = self.numbers.get(match[1])
                if row is None:
                    return 404, _error(404, 20404, f"The requested resource {path} was not found")
                if method == "POST":
                    for param, name in (("VoiceUrl", "voice_url"), ("VoiceMethod", "voice_method"),
                                        ("StatusCallback", "status_callback"),
                                        ("StatusCallbackMethod", "status_callback_method"),
                                        ("VoiceApplicationSid", "voice_application_sid"),
                                        ("FriendlyName", "friendly_name")):
                        if param in form:
                            row[name] = form[param]
                return 200, dict(row)
            match = re.fullmatch(rf"{account}/Calls/(CA\w+)\.json", path)
            if match and method == "POST":
                call = self.calls.get(match[1])
                if call is None or call.status == "completed":
                    return 404, _error(404, 20404, f"The requested resource {path} was not found")
                if "Twiml" in form:
                    call.twiml.append(form["Twiml"])
                if form.get("Status") == "completed":
                    call.status = "completed"
                return 200, {"sid": call.sid, "account_sid": self.account_sid, "status": call.status}
        return 404, _error(404, 20404, f"The requested resource {path} was not found")

    def _numbers_page(self, query: dict) -> tuple[int, dict]:
        size = min(int(query.get("PageSize", 50)), self.page_size_cap)
        page = int(query.get("Page", 0))
        rows = sorted(self.numbers.values(), key=lambda r: r["phone_number"])
        if query.get("PhoneNumber"):
            rows = [r for r in rows if r["phone_number"] == query["PhoneNumber"]]
        chunk = rows[page * size:(page + 1) * size]
        base = f"{API}/Accounts/{self.account_sid}/IncomingPhoneNumbers.json"
        more = (page + 1) * size < len(rows)
        return 200, {
            "incoming_phone_numbers": [dict(r) for r in chunk],
            "page": page, "page_size": size, "start": page * size, "end": page * size + len(chunk) - 1,
            "uri": f"{base}?{urlencode({'PageSize': size, 'Page': page})}",
            "first_page_uri": f"{base}?{urlencode({'PageSize': size, 'Page': 0})}",
            "next_page_uri": f"{base}?{urlencode({'PageSize': size, 'Page': page + 1})}" if more else None,
            "previous_page_uri": f"{base}?{urlencode({'PageSize': size, 'Page': page - 1})}" if page else None,
        }
