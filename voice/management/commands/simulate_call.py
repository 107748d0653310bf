"""Call an agent on the running server's Custom LLM socket as Retell would, and print the conversation.

The client side of Retell's protocol is voice.simulator.SimulatedCall; this command only
finds the agent, reads the caller's lines (a script file, or stdin when there is none)
and prints each turn with its latency.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from websockets.exceptions import InvalidStatus, InvalidURI

from appointments.selectors import phone_region
from audit.log_filters import redact_secret_paths
from retell_config.models import Agent
from voice.call_simulator import example_caller_number
from voice.selectors import agent_socket_url
from voice.simulator import SILENCE, AgentTurn, CallEnded, SimulatedCall, new_call_id, percentile, script_lines


class Command(BaseCommand):
    help = ("Call an agent on the running server's Retell LLM socket as Retell would (config, call_details, "
            "ping_pong, update_only, response_required) and print the conversation turn by turn with the latency "
            "of each answer. Reads the caller's lines from --script (a plain text file: one caller line per line; "
            "blank lines and lines starting with # are skipped; [silence] asks for a reminder), else from stdin "
            "(Ctrl-D hangs up).")

    def add_arguments(self, parser):
        parser.add_argument("--agent", required=True, metavar="AGENT_ID", help="the agent's Retell agent id")
        parser.add_argument("--script", metavar="FILE", help="the caller's lines, one per line")
        parser.add_argument("--url", metavar="WS_BASE",
                            help="the server's WebSocket base, e.g. ws://127.0.0.1:8000 (default: "
                                 "RETELL_LLM_WEBSOCKET_URL, else PUBLIC_BASE_URL)")
        parser.add_argument("--from-number", help="the caller's number (default: an example mobile number of the "
                                                  "company's country)")
        parser.add_argument("--call-id", help="default: a new random one")
        parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for each answer")

    def handle(self, *args, agent, script=None, url=None, from_number=None, call_id=None, timeout=15.0, **options):
        found = Agent.objects.select_related("company").filter(agent_id=agent).first()
        if found is None:
            raise CommandError(f"No agent {agent}.")
        lines = None
        if script:
            try:
                lines = script_lines(Path(script).read_text(encoding="utf-8"))
            except OSError as error:
                raise CommandError(f"Cannot read the script {script}: {error.strerror}.") from None
        company = found.company
        call_id = call_id or new_call_id()
        socket_url = f"{_agent_url(found, url)}/{call_id}"
        call = SimulatedCall(
            socket_url, call_id=call_id, agent_id=found.agent_id,
            from_number=from_number or example_caller_number(phone_region(company)),
            to_number=(found.phone_numbers or [company.phone or ""])[0] or None)
        self.stdout.write(f"Calling {found.name} ({found.agent_id}, {company.name}) from {call.from_number}")
        self.stdout.write(f"Socket {redact_secret_paths(socket_url)}")
        try:
            asyncio.run(self._converse(call, lines, timeout))
        except InvalidStatus as error:
            raise CommandError(f"The server refused the socket (HTTP {error.response.status_code}): is the "
                               "agent's token current and the URL this server's?") from None
        except (OSError, InvalidURI, TimeoutError) as error:
            raise CommandError(f"Cannot reach the socket: {error}") from None

    async def _converse(self, call: SimulatedCall, lines: list[str] | None, timeout: float) -> None:
        greeting = await call.connect(timeout=timeout)
        self.stdout.write(f"agent:  {greeting}" if greeting else "agent:  (waits for the caller)")
        source = iter(lines) if lines is not None else None
        ending = "The caller hangs up."
        try:
            while True:
                line = next(source, None) if source is not None else await _read_line()
                if line is None:
                    break
                if not line:
                    continue
                if source is not None or not sys.stdin.isatty():  # typed lines are on the screen already
                    self.stdout.write(f"caller: {line}")
                turn = await (call.silence(timeout=timeout) if line == SILENCE else call.say(line, timeout=timeout))
                self._print_turn(turn)
                if turn.end_call:
                    ending = "The agent ended the call."
                    break
                if turn.transfer_number:
                    ending = f"The agent transfers the call to {turn.transfer_number}."
                    break
        except CallEnded as error:
            ending = f"The server ended the call: {error}."
        finally:
            await call.hang_up()
        self.stdout.write(ending)
        self._print_summary(call)

    def _print_turn(self, turn: AgentTurn) -> None:
        for tool in turn.tool_calls:
            outcome = {True: "ok", False: "refused", None: "no result"}[tool.successful]
            self.stdout.write(f"  tool  {tool.name} {tool.arguments} -> {outcome}{_said(tool.result)}")
        self.stdout.write(f"agent:  {turn.text}   [first chunk {_ms(turn.first_chunk_ms)}, "
                          f"complete {_ms(turn.complete_ms)}]")

    def _print_summary(self, call: SimulatedCall) -> None:
        first = [t.first_chunk_ms for t in call.turns if t.first_chunk_ms is not None]
        complete = [t.complete_ms for t in call.turns if t.complete_ms is not None]
        self.stdout.write(
            f"{len(call.turns)} turn(s); first chunk p50 {_ms(percentile(first, 0.5))}, max "
            f"{_ms(max(first, default=None))}; complete p50 {_ms(percentile(complete, 0.5))}, max "
            f"{_ms(max(complete, default=None))}; ping_pong: {call.pings_sent} sent, {call.pongs} from the server; "
            f"stale frames: {call.stale_frames}")


def _agent_url(agent: Agent, base: str | None) -> str:
    """The agent's socket URL (Retell appends /{call_id} to it), on `base` when given."""
    if not base:
        return agent_socket_url(agent)
    base = base.rstrip("/")
    if not base.endswith("/retell-llm"):
        base += "/retell-llm"
    return f"{base}/{agent.socket_token}"


async def _read_line() -> str | None:
    """One line typed by the caller; None at the end of input."""
    sys.stdout.write("caller> ")
    sys.stdout.flush()
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip() if line else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _said(result: str | None) -> str:
    try:
        message = json.loads(result or "").get("message")
    except (ValueError, AttributeError):
        return ""
    return f": {message}" if message else ""
