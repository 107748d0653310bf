"""The dialog engine interface: transcript and call context in, an async stream of events out.

An engine is an async generator: `engine.respond(turn, context)` yields

- `TextChunk(text)`: words to speak, streamed as they come;
- `ToolCall(tool_call_id, name, arguments)`: a function to run. The engine does not run
  it: the call session runs it (through appointments.handlers.run_custom_function) and
  sends the result dict back into the generator, so `result = yield ToolCall(...)`;
- `ToolCalls(calls)`: several functions to run at once (an LLM's parallel tool calls);
  the session runs them concurrently and sends back a list of result dicts in the
  order of `calls`, so `results = yield ToolCalls((call_a, call_b))`;
- `EndCall()` / `Transfer(number)`: what to do once the turn's words are spoken.

Everything the engine may remember between turns lives in `context.state`, a plain
dict the session keeps with the call (it survives a reconnect, possibly to another
process), so engines hold no per-call attributes themselves. The session keeps the
memory of a turn only once the turn's answer was written to the socket: a turn that a
newer request superseded, or whose socket died first, leaves the memory as it was
before it (a request answered again after a reconnect starts from that memory too).

What did happen regardless is in `context.effects`, the call's ledger of effects: every
tool the session really ran in this call, in the order they finished, one dict each:

    {"tool_call_id": str, "name": str, "arguments": dict, "result": dict,
     "response_id": int,      # the request whose turn ran it
     "answered": bool}        # True once that turn's final frame (content_complete) was
                              # written to the socket, so the caller heard the result;
                              # False while it was not, and for good when the turn was
                              # superseded or the socket died first

An entry is added when its tool finishes, whether or not its turn is later superseded,
and is kept with the call's state (it survives a reconnect). A request answered again
may run the same tool_call_id again: its entry is then replaced (moved to the end). The
session writes the ledger; engines only read it. The session waits for tools still
running from an earlier turn before it starts the engine on a newer one, so the ledger
an engine reads is complete.

A turn also says when an earlier answer's ending did not happen (`Turn.interrupted_transfer`,
`Turn.interrupted_end_call`): the caller spoke again after an answer that ended with a
transfer or end_call, either before that answer went out or while it was spoken (which
makes Retell discard the transfer or end_call). These are set on each newer request
until one of them is answered.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any


# --- events out -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TextChunk:
    text: str


@dataclass(frozen=True)
class ToolCall:
    tool_call_id: str
    name: str
    arguments: dict


@dataclass(frozen=True)
class ToolCalls:
    """Tool calls to run concurrently; answered with a list of result dicts in the order of `calls`."""
    calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class EndCall:
    pass


@dataclass(frozen=True)
class Transfer:
    number: str


Event = TextChunk | ToolCall | ToolCalls | EndCall | Transfer


# --- what goes in ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CompanyInfo:
    id: int
    name: str
    phone: str = ""
    address: str = ""
    opening_hours: dict = field(default_factory=dict)
    timezone: str = "Europe/Berlin"
    language: str = "de"
    region: str = ""          # ISO country the company's phone numbers are read in, e.g. "DE"
    llm_base_url: str = ""
    llm_model: str = ""
    # A tenants.fields.Secret (masked repr) or None; revealed only by the LLM provider's request.
    llm_api_key: Any = None


@dataclass(frozen=True)
class AgentInfo:
    id: int
    agent_id: str
    name: str
    language: str = "de-DE"
    begin_message: str = ""
    general_prompt: str = ""
    custom_instructions: str = ""
    dialog_engine: str = "embedded"


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    price: str = ""          # as spoken, e.g. "80 euros"; empty when unknown
    duration_minutes: int | None = None


@dataclass
class CallContext:
    call_id: str
    company: CompanyInfo
    agent: AgentInfo
    services: list[ServiceInfo] = field(default_factory=list)
    caller_number: str | None = None
    variables: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    # The call's ledger of effects: every tool the session really ran (shape in the module docstring).
    effects: list[dict] = field(default_factory=list)
    # Which testing tool made the call (voice.models.Call.TestOrigin); "" for a real caller.
    test_origin: str = ""
    # Prompt A/B testing: the agent's running experiment (experiments.assignment.ExperimentPlan) and
    # the variant this call was given (an Assignment), None while it has none (experiments.services).
    experiment_plan: Any = None
    experiment: Any = None

    @property
    def language(self) -> str:
        """"en" or "de": the agent's language; a multilingual agent speaks the caller's (as the
        engine noted it in `state["language"]`), else the company's."""
        if self.agent.language == "multi" and self.state.get("language") in ("de", "en"):
            return self.state["language"]
        code = self.agent.language if self.agent.language != "multi" else self.company.language
        return "de" if code.lower().startswith("de") else "en"

    def prompt_variables(self) -> dict:
        """Built-in variables, overridden by the call's dynamic variables."""
        built_in = {"company_name": self.company.name, "agent_name": self.agent.name,
                    "company_phone": self.company.phone, "company_address": self.company.address}
        return {**built_in, **{str(k): str(v) for k, v in (self.variables or {}).items()}}

    def greeting(self) -> str:
        return render_variables(self.agent.begin_message, self.prompt_variables())


@dataclass(frozen=True)
class Turn:
    response_id: int
    transcript: list
    reminder: bool = False
    transcript_with_tool_calls: list | None = None
    # An earlier answer ended with a transfer to this number, or with end_call, and the
    # caller spoke again: it did not happen (module docstring).
    interrupted_transfer: str | None = None
    interrupted_end_call: bool = False

    def caller_said(self) -> str:
        """What the caller said since the agent last spoke."""
        said = []
        for utterance in reversed(self.transcript):
            if not isinstance(utterance, dict):
                continue
            if utterance.get("role") == "agent":
                break
            if utterance.get("role") == "user" and isinstance(utterance.get("content"), str):
                said.append(utterance["content"].strip())
        return " ".join(reversed([s for s in said if s]))

    def agent_last_said(self) -> str:
        for utterance in reversed(self.transcript):
            if isinstance(utterance, dict) and utterance.get("role") == "agent":
                return str(utterance.get("content") or "")
        return ""


_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def render_variables(text: str, variables: dict) -> str:
    """Fill {{name}} placeholders; an unknown one is dropped rather than spoken."""
    rendered = _VARIABLE.sub(lambda m: str(variables.get(m.group(1), "")), text or "")
    rendered = re.sub(r"[ \t]{2,}", " ", rendered)
    return re.sub(r"\s+([,.!?])", r"\1", rendered).strip()


class DialogEngine(ABC):
    """One conversation policy. Stateless itself: the call's memory is `context.state`."""

    name: str = ""

    @abstractmethod
    def respond(self, turn: Turn, context: CallContext) -> AsyncGenerator[Event, dict | list[dict] | None]:
        """Answer one turn. After a ToolCall the session sends the tool's result dict back,
        after ToolCalls the list of their result dicts, in order."""


def engine_for(agent: AgentInfo) -> DialogEngine:
    """The engine the agent is set to (the embedded receptionist unless it says otherwise)."""
    if agent.dialog_engine == "openai":
        from .openai_provider import OpenAIChatEngine

        return OpenAIChatEngine()
    from .receptionist import ReceptionistEngine

    return ReceptionistEngine()
