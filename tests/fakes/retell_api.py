"""A fake Retell REST API on loopback: a real threaded HTTP server speaking the
endpoints and payloads of reference retell.md §5 (SDK 5.60 / 6.x paths).

It keeps agents, Retell LLMs, phone numbers and voices in memory, records every request,
checks the bearer key, and fails on command (an HTTP status or a stall longer than
the client's timeout) so tests can assert exactly which requests were made.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.fakes import send_json


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    body: object
    headers: dict

    @property
    def line(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Failure:
    status: int | None          # None: stall (no answer until `stall` seconds passed)
    method: str | None
    path: str | None             # a regex matched against the path; None matches all
    times: int
    stall: float = 0.0


def _default_voices() -> dict:
    """A workspace's voices as GET /list-voices gives them (VoiceResponse, reference retell.md §5.6)."""
    rows = [("11labs-Adrian", "Adrian", "elevenlabs", "male", "American", "Young"),
            ("11labs-Myra", "Myra", "elevenlabs", "female", "American", "Young"),
            ("openai-Alloy", "Alloy", "openai", "male", "American", None),
            ("retell-Cimo", "Cimo", "platform", "male", None, None)]
    return {voice_id: {"voice_id": voice_id, "voice_name": name, "provider": provider, "gender": gender,
                       "accent": accent, "age": age,
                       "preview_audio_url": f"https://retell-utils-public.example/{voice_id}.mp3"}
            for voice_id, name, provider, gender, accent, age in rows}


@dataclass
class FakeRetellState:
    agents: dict = field(default_factory=dict)
    llms: dict = field(default_factory=dict)
    phone_numbers: dict = field(default_factory=dict)
    voices: dict = field(default_factory=_default_voices)
    # agent_id -> {version: the agent as published, with its LLM's prompt and greeting then}
    agent_versions: dict = field(default_factory=dict)


def _now_ms() -> int:
    return int(time.time() * 1000)


class FakeRetellAPI:
    def __init__(self, api_keys: set[str] | None = None, page_limit_cap: int = 1000) -> None:
        self.api_keys = set(api_keys or {"retell-test-key"})
        self.page_limit_cap = page_limit_cap
        self.state = FakeRetellState()
        self.requests: list[Recorded] = []
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> "FakeRetellAPI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                fake._serve(self)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
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
    def fail(self, status: int = 503, *, method: str | None = None, path: str | None = None,
             times: int = 1) -> None:
        """Answer the next `times` matching requests with `status`."""
        with self._lock:
            self._failures.append(Failure(status, method, path, times))

    def stall(self, seconds: float, *, method: str | None = None, path: str | None = None, times: int = 1) -> None:
        """Hold the next matching requests for `seconds` before answering normally (a client timeout)."""
        with self._lock:
            self._failures.append(Failure(None, method, path, times, stall=seconds))

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def lines(self) -> list[str]:
        return [r.line for r in self.requests]

    def add_llm(self, llm_id: str | None = None, **fields) -> dict:
        llm_id = llm_id or f"llm_{next(self._ids):06d}"
        llm = {"llm_id": llm_id, "version": 0, "is_published": False, "last_modification_timestamp": _now_ms(),
               "model": "gpt-4.1", "general_prompt": "", "begin_message": None, "general_tools": [],
               "start_speaker": "agent", **fields}
        self.state.llms[llm_id] = llm
        return llm

    def add_agent(self, agent_id: str, *, llm_id: str | None = None, **fields) -> dict:
        engine = ({"type": "retell-llm", "llm_id": llm_id, "version": 0} if llm_id
                  else {"type": "custom-llm", "llm_websocket_url": "wss://example.invalid/llm-websocket"})
        agent = {"agent_id": agent_id, "agent_name": agent_id, "channel": "voice", "version": 0,
                 "is_published": False, "last_modification_timestamp": _now_ms(), "response_engine": engine,
                 "voice_id": "11labs-Adrian", "language": "en-US", "webhook_url": None, **fields}
        self.state.agents[agent_id] = agent
        return agent

    def add_phone_number(self, number: str, *, agent_id: str | None = None, **fields) -> dict:
        row = {"phone_number": number, "phone_number_pretty": number, "phone_number_type": "retell-twilio",
               "last_modification_timestamp": _now_ms(),
               "inbound_agents": [{"agent_id": agent_id, "weight": 1}] if agent_id else [],
               "outbound_agents": [{"agent_id": agent_id, "weight": 1}] if agent_id else [], **fields}
        self.state.phone_numbers[number] = row
        return row

    def add_voice(self, voice_id: str, *, voice_name: str, provider: str = "elevenlabs", gender: str = "female",
                  **fields) -> dict:
        voice = {"voice_id": voice_id, "voice_name": voice_name, "provider": provider, "gender": gender, **fields}
        self.state.voices[voice_id] = voice
        return voice

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

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(Recorded(handler.command, parts.path, query, body, dict(handler.headers)))

        failure = self._take_failure(handler.command, parts.path)
        if failure is not None and failure.status is None:
            time.sleep(failure.stall)
        elif failure is not None:
            return self._send(handler, failure.status, {"error_message": "Injected failure"})

        if handler.headers.get("Authorization", "") not in {f"Bearer {k}" for k in self.api_keys}:
            return self._send(handler, 401, {"error_message": "Invalid API key"})
        status, payload = self._route(handler.command, parts.path, query, body)
        self._send(handler, status, payload)

    _send = staticmethod(send_json)

    def _page(self, rows: list[dict], query: dict, key: str) -> tuple[int, dict]:
        limit = min(int(query.get("limit", 50)), self.page_limit_cap)
        rows = sorted(rows, key=lambda r: r[key], reverse=query.get("sort_order", "descending") == "descending")
        start = 0
        if query.get("pagination_key"):
            keys = [r[key] for r in rows]
            if query["pagination_key"] not in keys:
                return 400, {"error_message": "Invalid pagination_key"}
            start = keys.index(query["pagination_key"]) + 1
        page = rows[start:start + limit]
        has_more = start + limit < len(rows)
        return 200, {"items": page, "has_more": has_more, "pagination_key": page[-1][key] if has_more else None}

    @staticmethod
    def _get_or_update(method: str, verb: str, row: dict | None, body, noun: str) -> tuple[int, object]:
        if row is None:
            return 404, {"error_message": f"{noun} not found"}
        if method == "GET" and verb == "get":
            return 200, copy.deepcopy(row)
        if method == "PATCH" and verb == "update" and isinstance(body, dict):
            row.update(copy.deepcopy(body))
            row["last_modification_timestamp"] = _now_ms()
            return 200, copy.deepcopy(row)
        return 400, {"error_message": "Bad request"}

    def _route(self, method: str, path: str, query: dict, body) -> tuple[int, object]:
        with self._lock:
            state = self.state
            if method == "POST" and path == "/v2/list-agents":
                items = [{"agent_id": a["agent_id"], "agent_name": a.get("agent_name") or "",
                          "channel": a.get("channel", "voice"), "is_suspended": False, "tags": {},
                          "user_modified_timestamp": a["last_modification_timestamp"]}
                         for a in state.agents.values()]
                return self._page(items, query, "agent_id")
            if method == "GET" and path == "/v2/list-retell-llms":
                return self._page([copy.deepcopy(x) for x in state.llms.values()], query, "llm_id")
            if method == "GET" and path == "/v2/list-phone-numbers":
                return self._page([copy.deepcopy(x) for x in state.phone_numbers.values()], query, "phone_number")
            if method == "POST" and path == "/create-agent":
                if not isinstance(body, dict) or "response_engine" not in body or "voice_id" not in body:
                    return 400, {"error_message": "response_engine and voice_id are required"}
                agent_id = f"agent_{next(self._ids):06d}"
                state.agents[agent_id] = {"agent_id": agent_id, "channel": "voice", "version": 0,
                                          "is_published": False, "last_modification_timestamp": _now_ms(), **body}
                return 201, state.agents[agent_id]
            if method == "GET" and path == "/list-voices":  # a plain array, not paginated
                return 200, [copy.deepcopy(v) for v in state.voices.values()]
            match = re.fullmatch(r"/publish-agent-version/([^/]+)", path)
            if method == "POST" and match:
                return self._publish(match[1], body)
            match = re.fullmatch(r"/get-agent-versions/([^/]+)", path)
            if method == "GET" and match:
                if match[1] not in state.agents:
                    return 404, {"error_message": "Agent not found"}
                return 200, [copy.deepcopy(v) for _, v in sorted(state.agent_versions.get(match[1], {}).items())]
            match = re.fullmatch(r"/update-phone-number/([^/]+)", path)
            if method == "PATCH" and match and isinstance(body, dict) and "inbound_agents" in body:
                problem = self._binding_problem(body["inbound_agents"])
                if problem:
                    return 400, {"error_message": problem}
            for pattern, rows, noun in ((r"/(get|update)-agent/([^/]+)", state.agents, "Agent"),
                                        (r"/(get|update)-phone-number/([^/]+)", state.phone_numbers,
                                         "Phone number"),
                                        (r"/(get)-voice/([^/]+)", state.voices, "Voice"),
                                        (r"/(get|update)-retell-llm/([^/]+)", state.llms, "LLM")):
                match = re.fullmatch(pattern, path)
                if match:
                    return self._get_or_update(method, match[1], rows.get(match[2]), body, noun)
        return 404, {"error_message": f"No route {method} {path}"}

    # --- versions and weighted bindings (reference retell.md 5.2, 5.4); called under the lock ---------
    def _publish(self, agent_id: str, body) -> tuple[int, object]:
        agent = self.state.agents.get(agent_id)
        if agent is None:
            return 404, {"error_message": "Agent not found"}
        if not isinstance(body, dict) or body.get("version") != agent["version"]:
            return 400, {"error_message": "Only the draft version can be published"}
        snapshot = {**copy.deepcopy(agent), "is_published": True}
        engine = agent.get("response_engine") or {}
        llm = self.state.llms.get(engine.get("llm_id")) if engine.get("type") == "retell-llm" else None
        if llm is not None:
            snapshot["llm"] = {"general_prompt": llm.get("general_prompt"), "begin_message": llm.get("begin_message")}
        self.state.agent_versions.setdefault(agent_id, {})[agent["version"]] = snapshot
        agent["version"] += 1
        agent["is_published"] = False
        return 200, None

    def _binding_problem(self, bindings) -> str:
        if bindings is None:
            return ""
        if not isinstance(bindings, list) or not all(isinstance(b, dict) for b in bindings):
            return "inbound_agents must be a list of objects"
        for binding in bindings:
            if binding.get("agent_id") not in self.state.agents:
                return f"Unknown agent {binding.get('agent_id')}"
            version = binding.get("agent_version")
            if version is not None and version not in self.state.agent_versions.get(binding["agent_id"], {}):
                return f"Agent version {version} is not published"
        if bindings and abs(sum(float(b.get("weight", 0)) for b in bindings) - 1) > 1e-6:
            return "The weights of inbound_agents must sum to 1"
        return ""
