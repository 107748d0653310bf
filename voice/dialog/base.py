"""The dialog engine interface: transcript and call context in, an async stream of events out.

An engine is an async generator: `engine.respond(turn, context)` yields

- `TextChunk(text)`: words to speak, streamed as they come;
- `ToolCall(tool_call_id, name, arguments)`: a function to run. The engine does not run
  it: the call session runs it (through appointments.handlers.run_custom_function) and
  sends the result dict back into the generator, so `result = yield ToolCall(...)`;
- `EndCall()` / `Transfer(number)`: what to do once the turn's words are spoken.

Everything the engine may remember between turns lives in `context.state`, a plain
dict the session keeps with the call (it survives a reconnect, possibly to another
process), so engines hold no per-call attributes themselves.
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
class EndCall:
    pass


@dataclass(frozen=True)
class Transfer:
    number: str


Event = TextChunk | ToolCall | EndCall | Transfer


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

    @property
    def language(self) -> str:
        """"en" or "de": the agent's language, the company's for a multilingual agent."""
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
    def respond(self, turn: Turn, context: CallContext) -> AsyncGenerator[Event, dict | None]:
        """Answer one turn. After a ToolCall the session sends the tool's result dict back."""


def engine_for(agent: AgentInfo) -> DialogEngine:
    """The engine the agent is set to (the embedded receptionist unless it says otherwise)."""
    if agent.dialog_engine == "openai":
        from .openai_provider import OpenAIChatEngine

        return OpenAIChatEngine()
    from .receptionist import ReceptionistEngine

    return ReceptionistEngine()
