"""The OpenAI-compatible chat-completions dialog engine.

Per company: Company.llm_base_url (e.g. https://api.openai.com/v1), llm_model and the
encrypted llm_api_key. Each turn streams POST {base}/chat/completions with the
agent's current system prompt, the conversation so far and the company's custom
functions (appointments.function_specs.FUNCTION_SPECS) as tools. Text deltas are
spoken as they arrive; streamed tool calls are assembled from their deltas, run by the
call session, and the stream is resumed with the results. A provider error, a timeout
or an open circuit becomes a spoken apology with an offer to put the caller through
to the company's number, never silence; the caller's "yes" to it transfers the call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings

from appointments.function_specs import FUNCTION_SPECS
from audit.circuit import CircuitBreaker

from .base import CallContext, DialogEngine, Event, TextChunk, ToolCall, Transfer, Turn, render_variables
from .receptionist import PHRASES, opening_hours_text
from .understanding import understand

logger = logging.getLogger(__name__)

MAX_TOOL_ROUNDS = 4

APOLOGY = {
    "en": {"offer": "I'm sorry, I'm having technical trouble right now. Shall I put you through to the team?",
           "no_phone": "I'm sorry, I'm having technical trouble right now. Please call again a little later."},
    "de": {"offer": "Entschuldigung, ich habe gerade technische Probleme. Soll ich Sie mit dem Team verbinden?",
           "no_phone": "Entschuldigung, ich habe gerade technische Probleme. Bitte rufen Sie etwas später noch "
                       "einmal an."},
}
REMINDER_NOTE = "(The caller has said nothing for a while. Check briefly whether they are still there.)"
WEEKDAY_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class LLMError(Exception):
    """The provider did not give a usable answer (status, body or configuration)."""


def tool_definitions() -> list[dict]:
    return [{"type": "function", "function": {"name": spec["name"], "description": spec["description"],
                                              "parameters": spec["parameters"]}}
            for spec in FUNCTION_SPECS.values()]


def system_prompt(context: CallContext) -> str:
    """The agent's current prompt and instructions, with what it needs to know of the call."""
    company, agent = context.company, context.agent
    variables = context.prompt_variables()
    now = datetime.now(ZoneInfo(company.timezone))
    facts = [
        f"You are {agent.name}, answering the phone for {company.name}.",
        f"Your greeting to the caller was: \"{context.greeting()}\"" if context.greeting()
        else "The caller spoke first; you did not greet yet.",
        f"Today is {WEEKDAY_EN[now.weekday()]}, {now.date().isoformat()}, {now.strftime('%H:%M')} "
        f"({company.timezone}).",
        f"Opening hours: {opening_hours_text(company.opening_hours, 'en')}",
    ]
    if company.address:
        facts.append(f"Address: {' '.join(company.address.split())}.")
    if context.services:
        facts.append("Services: " + "; ".join(f"{s.name}" + (f" ({s.price})" if s.price else "")
                                            for s in context.services) + ".")
    if context.caller_number:
        facts.append(f"The caller's number is {context.caller_number}.")
    facts.append(f"Speak {'German' if context.language == 'de' else 'English'}. Keep every reply short and natural "
                 "to hear on the phone: one or two sentences, no lists, no markdown.")
    facts.append("Use the functions to check availability and to book, move or cancel appointments. Confirm the "
                 "details with the caller before you book, move or cancel.")
    parts = [render_variables(agent.general_prompt, variables), render_variables(agent.custom_instructions, variables),
             "\n".join(facts)]
    return "\n\n".join(part for part in parts if part)


def conversation_messages(turn: Turn) -> list[dict]:
    """The transcript as chat messages; tool calls included when Retell sent them."""
    messages: list[dict] = []
    items = turn.transcript_with_tool_calls or turn.transcript
    answered = {item.get("tool_call_id") for item in items
                if isinstance(item, dict) and item.get("role") == "tool_call_result"}
    invoked: set = set()
    for item in items:
        if not isinstance(item, dict):
            continue
        role = item.get("role")
        if role in ("agent", "user"):
            content = str(item.get("content") or "")
            if content:
                messages.append({"role": "assistant" if role == "agent" else "user", "content": content})
        elif role == "tool_call_invocation" and item.get("tool_call_id") in answered:
            call = {"id": item["tool_call_id"], "type": "function",
                    "function": {"name": str(item.get("name") or ""), "arguments": str(item.get("arguments") or "{}")}}
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and last.get("tool_calls") and not last.get("content"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            invoked.add(item["tool_call_id"])
        elif role == "tool_call_result" and item.get("tool_call_id") in invoked:
            messages.append({"role": "tool", "tool_call_id": item["tool_call_id"],
                             "content": str(item.get("content") or "")})
    if turn.reminder:
        messages.append({"role": "user", "content": REMINDER_NOTE})
    return messages


class OpenAIChatEngine(DialogEngine):
    name = "openai"

    async def respond(self, turn: Turn, context: CallContext) -> AsyncGenerator[Event, dict | None]:
        lang = context.language
        state = context.state
        if state.pop("offered_transfer", False) and not turn.reminder:
            if understand(turn.caller_said()).yes and context.company.phone:
                yield TextChunk(PHRASES[lang]["transfer"])
                yield Transfer(context.company.phone)
                return

        breaker = CircuitBreaker(f"llm:company:{context.company.id}", failure_threshold=3, reset_timeout=30)
        if not await sync_to_async(breaker.allow, thread_sensitive=False)():
            yield TextChunk(self._apology(context))
            return

        messages = [{"role": "system", "content": system_prompt(context)}, *conversation_messages(turn)]
        spoke = False
        for _ in range(MAX_TOOL_ROUNDS):
            text: list[str] = []
            calls: dict[int, dict] = {}
            try:
                async for kind, payload in self._stream(messages, context):
                    if kind == "text":
                        text.append(payload)
                        spoke = True
                        yield TextChunk(payload)
                    else:
                        self._merge_tool_delta(calls, payload)
            except (httpx.HTTPError, LLMError) as error:
                reason = f"{type(error).__name__}: {error}"[:200]
                logger.warning("Call %s: LLM request failed (%s).", context.call_id, reason)
                await sync_to_async(breaker.record_failure, thread_sensitive=False)(reason)
                yield TextChunk((" " if spoke else "") + self._apology(context))
                return
            await sync_to_async(breaker.record_success, thread_sensitive=False)()
            if not calls:
                return
            ordered = [calls[i] for i in sorted(calls)]
            messages.append({"role": "assistant", "content": "".join(text) or None,
                             "tool_calls": [{"id": c["id"], "type": "function",
                                             "function": {"name": c["name"], "arguments": c["arguments"]}}
                                            for c in ordered]})
            for call in ordered:
                try:
                    arguments = json.loads(call["arguments"] or "{}")
                except ValueError:
                    arguments = None
                if not isinstance(arguments, dict) or call["name"] not in FUNCTION_SPECS:
                    result = {"error": "invalid_call",
                              "message": "That function call was not valid; check the name and arguments."}
                else:
                    result = yield ToolCall(call["id"], call["name"], arguments)
                messages.append({"role": "tool", "tool_call_id": call["id"],
                                 "content": json.dumps(result, ensure_ascii=False, default=str)})
        logger.warning("Call %s: the LLM kept calling tools; giving up after %d rounds.", context.call_id,
                       MAX_TOOL_ROUNDS)
        yield TextChunk((" " if spoke else "") + self._apology(context))

    def _apology(self, context: CallContext) -> str:
        if context.company.phone:
            context.state["offered_transfer"] = True
            return APOLOGY[context.language]["offer"]
        return APOLOGY[context.language]["no_phone"]

    @staticmethod
    def _merge_tool_delta(calls: dict[int, dict], delta: dict) -> None:
        index = delta.get("index", 0)
        call = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        if delta.get("id"):
            call["id"] = delta["id"]
        function = delta.get("function") or {}
        if function.get("name"):
            call["name"] += function["name"]
        if function.get("arguments"):
            call["arguments"] += function["arguments"]

    async def _stream(self, messages: list[dict], context: CallContext):
        """Yield ("text", str) and ("tool", delta) from one streamed chat completion."""
        company = context.company
        if not company.llm_base_url or not company.llm_model:
            raise LLMError("the company has no LLM base URL or model")
        headers = {"Accept": "text/event-stream"}
        if company.llm_api_key is not None:
            headers["Authorization"] = f"Bearer {company.llm_api_key.reveal()}"
        body = {"model": company.llm_model, "messages": messages, "tools": tool_definitions(), "stream": True}
        timeout = httpx.Timeout(settings.LLM_READ_TIMEOUT, connect=settings.LLM_CONNECT_TIMEOUT)
        url = company.llm_base_url.rstrip("/") + "/chat/completions"
        async with httpx.AsyncClient(timeout=timeout) as client:
            async with client.stream("POST", url, json=body, headers=headers) as response:
                if response.status_code != 200:
                    raise LLMError(f"status {response.status_code}")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        raise LLMError("a streamed chunk is not JSON") from None
                    if isinstance(chunk, dict) and chunk.get("error"):
                        raise LLMError("the stream reported an error")
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            yield "text", delta["content"]
                        for tool_delta in delta.get("tool_calls") or []:
                            yield "tool", tool_delta
