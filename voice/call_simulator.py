"""A simulated call's life on this server: its Call row before the first frame, the socket it dials,
and its end (test appointments released, the row marked ended).

The admin's call simulator (voice.consumers.CallSimulatorConsumer) and the scenario runs
(voice.scenarios) both speak Retell's side of the Custom LLM socket with voice.simulator's
client to this server's own /retell-llm/ socket, so a simulated call runs the same session,
dialog engine and custom-function handlers as a caller's call. This module holds what they
share; nothing here re-implements a step of the call itself.

Which socket a simulated call dials (`simulator_socket_base`):
- inside the ASGI server (the call simulator's consumer): the address this very server listens
  on, from the ASGI scope's `server` (a wildcard address is dialled on loopback), as
  `ws://host:port/retell-llm`: the call never leaves the machine and needs no public URL;
- elsewhere (a Celery worker, `manage.py run_scenarios`): the agent's configured socket URL
  (RETELL_LLM_WEBSOCKET_URL, else PUBLIC_BASE_URL + /retell-llm), as Retell would dial it.
"""

from __future__ import annotations

from datetime import timedelta

import phonenumbers
from django.db import transaction
from django.utils import timezone

from appointments.selectors import phone_region
from appointments.services import appointments_release_for_test_call
from audit.actor import Actor
from audit.log_filters import redact_secret_paths
from audit.services import activity_log, audit_record
from retell_config.models import Agent

from .models import Call
from .selectors import agent_socket_url
from .simulator import AgentTurn, new_call_id

# Retell's disconnection reasons for the ways a simulated call ends.
USER_HANGUP, AGENT_HANGUP, CALL_TRANSFER, CONNECTION_ERROR = ("user_hangup", "agent_hangup", "call_transfer",
                                                             "error_llm_websocket_open")
_WILDCARDS = {"0.0.0.0", "::", ""}


def simulator_socket_base(*, server: tuple | list | None = None) -> str | None:
    """The ws(s)://…/retell-llm base a simulated call dials (the agent's token and the call id follow).

    `server`: the ASGI scope's (host, port) of the server the caller runs in; None outside one.
    Returns None when the scope names no TCP address (a Unix socket): then the agent's configured
    URL is used (`simulator_socket_url`).
    """
    if not server or len(server) != 2 or not server[1]:
        return None
    host, port = server
    host = "127.0.0.1" if host in _WILDCARDS else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"ws://{host}:{port}/retell-llm"


def simulator_socket_url(agent: Agent, call_id: str, *, base: str | None = None) -> str:
    """The full socket URL of one simulated call: base (or the agent's configured URL) + token + call id."""
    if base:
        return f"{base.rstrip('/')}/{agent.socket_token}/{call_id}"
    return f"{agent_socket_url(agent)}/{call_id}"


def socket_shown(url: str) -> str:
    """A socket URL as a message may show it: the agent's token path redacted."""
    return redact_secret_paths(url)


def example_caller_number(region: str) -> str:
    """A caller's number for a simulated call: an example mobile number of the region (E.164)."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164) if example else "+15555550100"


def simulated_call_open(*, actor: Actor, agent: Agent, origin: str, from_number: str | None = None,
                        call_id: str | None = None) -> Call:
    """Create the Call row of a simulated call before its socket opens, marked with `origin`
    (a Call.TestOrigin), so every effect of the call is a test's (voice.selectors.call_test_origin)."""
    company = agent.company
    call = Call.objects.create(
        company=company, call_id=call_id or new_call_id(), source=Call.Source.RETELL, test_origin=origin,
        agent=agent, call_type="phone_call", direction="inbound", status="ongoing", started_at=timezone.now(),
        from_number=from_number or example_caller_number(phone_region(company)),
        to_number=(agent.phone_numbers or [company.phone or ""])[0].replace(" ", ""))
    audit_record(actor=actor, action="simulator.call", company_id=company.pk, object_type="voice.call",
                 object_id=str(call.pk), object_repr=call.call_id,
                 changes={"test_origin": {"before": None, "after": origin}, "agent": {"before": None,
                                                                                      "after": agent.agent_id}})
    activity_log(company=company, kind="simulator.call_started",
                 message=f"{call.get_test_origin_display()}: {actor.label} called {agent.name}.",
                 data={"call_id": call.call_id, "agent_id": agent.agent_id})
    return call


@transaction.atomic
def simulated_call_end(*, actor: Actor, call: Call, reason: str) -> int:
    """End a simulated call: its active test appointments are released and its row is marked ended
    with Retell's disconnection `reason`. Returns how many appointments were released; a call
    already ended is left as it is (0)."""
    locked = Call.objects.select_for_update().get(pk=call.pk)
    if locked.ended_at is not None or not locked.is_test:
        return 0
    released = appointments_release_for_test_call(actor=actor, company=locked.company, call_id=locked.call_id)
    locked.ended_at = timezone.now()
    locked.status = "ended"
    locked.disconnection_reason = reason
    locked.duration_ms = int((locked.ended_at - (locked.started_at or locked.ended_at)) / timedelta(milliseconds=1))
    locked.save(update_fields=["ended_at", "status", "disconnection_reason", "duration_ms", "updated_at"])
    activity_log(company=locked.company_id, kind="simulator.call_ended",
                 message=f"{locked.get_test_origin_display()} call ended ({reason}); "
                         f"{len(released)} test appointment(s) released.",
                 data={"call_id": locked.call_id, "released": [a.pk for a in released]})
    return len(released)


def turn_summary(turn: AgentTurn) -> dict:
    """One answered turn as plain data: {response_id, caller, reminder, text, first_chunk_ms, complete_ms,
    end_call, transfer_number, tools: [{name, arguments, result, successful}]} (milliseconds)."""
    return {"response_id": turn.response_id, "caller": turn.caller, "reminder": turn.reminder, "text": turn.text,
            "first_chunk_ms": _round(turn.first_chunk_ms), "complete_ms": _round(turn.complete_ms),
            "end_call": turn.end_call, "transfer_number": turn.transfer_number,
            "tools": [{"name": t.name, "arguments": t.arguments, "result": t.result, "successful": t.successful}
                      for t in turn.tool_calls]}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
