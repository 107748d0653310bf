"""Retell's side of a webhook: realistic call objects and event bodies, signed with retell-sdk's
own signer (so our verification is tested against the provider's implementation)."""

import json
import time

from retell.lib.webhook_auth import symmetric

START_MS = 1_763_800_000_000


def transcript_turns(turns: int = 6) -> list[dict]:
    lines = [("agent", "Guten Tag, Praxis Alpha, wie kann ich helfen?"),
             ("user", "Ich hätte gern einen Termin für eine Zahnreinigung morgen um zehn.")]
    out = []
    for i in range(turns):
        role, content = lines[i % 2]
        words = [{"word": w, "start": i * 4 + j * 0.3, "end": i * 4 + j * 0.3 + 0.25} for j, w in enumerate(content.split())]
        out.append({"role": role, "content": content, "words": words})
    return out


def call_object(call_id: str, agent_id: str, *, status: str = "ended", turns: int = 6, **extra) -> dict:
    objects = transcript_turns(turns)
    call = {
        "call_type": "phone_call", "from_number": "+4915112345678", "to_number": "+493083793369",
        "direction": "inbound", "call_id": call_id, "agent_id": agent_id, "agent_version": 1,
        "call_status": status, "metadata": {}, "retell_llm_dynamic_variables": {"customer_name": "Erika"},
        "start_timestamp": START_MS, "transcript": "\n".join(f"{t['role'].title()}: {t['content']}" for t in objects),
        "transcript_object": objects, "opt_out_sensitive_data_storage": False,
    }
    if status == "ended":
        call.update(end_timestamp=START_MS + 95_000, duration_ms=95_000, disconnection_reason="user_hangup",
                    recording_url=f"https://recordings.example.test/{call_id}.wav")
    call.update(extra)
    return call


def event_body(event: str, call: dict, **top) -> bytes:
    return json.dumps({"event": event, "call": call, **top}, separators=(",", ":"), ensure_ascii=False).encode()


def sign(body: bytes, api_key: str, *, at_ms: int | None = None) -> str:
    return symmetric["sign"](body.decode(), api_key, at_ms if at_ms is not None else int(time.time() * 1000))


def headers(body: bytes, api_key: str, **kwargs) -> dict:
    """Extra headers for Django's test client (HTTP_ prefixed)."""
    return {"HTTP_X_RETELL_SIGNATURE": sign(body, api_key, **kwargs)}
