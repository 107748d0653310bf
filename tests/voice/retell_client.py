"""A client that speaks Retell's side of the Custom LLM socket, for the conformance suite."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


class RetellClient:
    """Sends Retell's frames and reads ours; every frame read is kept in `received`."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.received: list[dict] = []
        self.transcript: list[dict] = []
        self.next_response_id = 1

    @classmethod
    async def open(cls, url: str) -> "RetellClient":
        return cls(await connect(url, open_timeout=5, close_timeout=2))

    async def close(self) -> None:
        await self.ws.close()

    async def send(self, frame: dict | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def read(self, timeout: float = 5.0) -> dict:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.received.append(frame)
        return frame

    async def read_until(self, predicate, timeout: float = 5.0) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no matching frame; got {self.received[-5:]}")
            frame = await self.read(remaining)
            if predicate(frame):
                return frame

    async def read_response(self, response_id: int, timeout: float = 5.0) -> tuple[str, dict]:
        """The whole streamed answer to `response_id`: its text and its last frame."""
        parts = []
        while True:
            frame = await self.read_until(lambda f: f.get("response_type") == "response"
                                          and f.get("response_id") == response_id, timeout)
            parts.append(frame["content"])
            if frame["content_complete"]:
                return "".join(parts), frame

    async def opening(self) -> tuple[dict, dict]:
        """The config and begin message every connection starts with."""
        config = await self.read()
        begin = await self.read_until(lambda f: f.get("response_type") == "response")
        return config, begin

    async def say(self, text: str, *, kind: str = "response_required") -> int:
        """The caller speaks; Retell asks for a response. Returns the response_id."""
        if text:
            self.transcript.append({"role": "user", "content": text, "words": []})
        response_id = self.next_response_id
        self.next_response_id += 1
        await self.send({"interaction_type": kind, "response_id": response_id, "transcript": self.transcript})
        return response_id

    def agent_said(self, text: str) -> None:
        self.transcript.append({"role": "agent", "content": text, "words": []})

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close; its close code."""
        try:
            while True:
                await self.read(timeout)
        except ConnectionClosed:
            pass
        return self.ws.close_code
