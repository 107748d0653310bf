"""The OpenAI-compatible chat-completions dialog engine.

Per company: Company.llm_base_url (e.g. https://api.openai.com/v1), llm_model and the
encrypted llm_api_key. Each turn streams POST {base}/chat/completions with the
agent's current system prompt, the conversation so far and the company's custom
functions (appointments.function_specs.FUNCTION_SPECS) as tools. Text deltas are
spoken as they arrive; streamed tool calls are assembled from their deltas (by id, then
by index: providers such as Ollama send every parallel call under index 0, others send
no index), run by the call session (the calls of one reply together, as one `ToolCalls`
batch), and the stream is resumed with the results. The call's ledger of effects gives
the LLM the tools that ran but are missing from Retell's transcript (a superseded
turn's). A provider error, a timeout or an open circuit becomes a spoken apology with an
offer to put the caller through to the company's number, never silence; so does an answer
that is not an event stream, one with no words and no tool call (no chunk, only [DONE]),
one with a chunk of the wrong shape, and one cut off before its finish_reason or [DONE],
and each counts as a failure of the circuit breaker. The caller's
"yes" to it transfers the call. A transfer the caller interrupted (Turn.interrupted_transfer)
is sent again on a "yes", offered again unless the caller says no.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings

from appointments.function_specs import FUNCTION_SPECS
from audit.circuit import CircuitBreaker

from .base import CallContext, DialogEngine, Event, TextChunk, ToolCall, ToolCalls, Transfer, Turn, render_variables
from .receptionist import PHRASES, opening_hours_text
from appointments.understanding import understand

logger = logging.getLogger(__name__)

MAX_TOOL_ROUNDS = 4

APOLOGY = {
    "en": {"offer": "I'm sorry, I'm having technical trouble right now. Shall I put you through to the team?",
           "no_phone": "I'm sorry, I'm having technical trouble right now. Please call again a little later."},
    "de": {"offer": "Entschuldigung, ich habe gerade technische Probleme. Soll ich Sie mit dem Team verbinden?",
           "no_phone": "Entschuldigung, ich habe gerade technische Probleme. Bitte rufen Sie etwas später noch "
                       "einmal an."},
}
# After a transfer the caller interrupted: offered again.
TRANSFER_AGAIN = {"en": "Shall I put you through to the team now?",
                  "de": "Soll ich Sie jetzt mit dem Team verbinden?"}
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


def conversation_messages(turn: Turn, effects: list[dict] = ()) -> list[dict]:
    """The transcript as chat messages; tool calls included when Retell sent them.

    `effects` is the call's ledger (CallContext.effects). A tool in it that is missing
    from transcript_with_tool_calls (a superseded turn's, or every one when Retell sends
    no such transcript) is added as an assistant message with its tool call and a tool
    message with its result, in the ledger's order, before the caller's latest words:
    the transcript cannot tell where exactly it fell, and the LLM must know it ran.
    """
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
    missing = []
    for effect in effects:
        if effect.get("tool_call_id") in invoked:
            continue
        missing.append({"role": "assistant", "content": None, "tool_calls": [{
            "id": effect["tool_call_id"], "type": "function",
            "function": {"name": str(effect.get("name") or ""),
                         "arguments": json.dumps(effect.get("arguments") or {}, ensure_ascii=False)}}]})
        missing.append({"role": "tool", "tool_call_id": effect["tool_call_id"],
                        "content": json.dumps(effect.get("result"), ensure_ascii=False, default=str)})
    latest = len(messages)
    while latest and messages[latest - 1]["role"] == "user":
        latest -= 1
    messages[latest:latest] = missing
    if turn.reminder:
        messages.append({"role": "user", "content": REMINDER_NOTE})
    return messages


class OpenAIChatEngine(DialogEngine):
    name = "openai"

    async def respond(self, turn: Turn, context: CallContext) -> AsyncGenerator[Event, dict | None]:
        lang = context.language
        state = context.state
        if turn.interrupted_transfer:
            said = understand(turn.caller_said())
            if said.yes:
                state.pop("offered_transfer", None)
                yield TextChunk(PHRASES[lang]["transfer"])
                yield Transfer(turn.interrupted_transfer)
                return
            if not said.no:
                state["offered_transfer"] = turn.interrupted_transfer
                yield TextChunk(TRANSFER_AGAIN[lang])
                return
        offered = state.pop("offered_transfer", False)
        if offered and not turn.reminder:
            number = offered if isinstance(offered, str) else context.company.phone
            if understand(turn.caller_said()).yes and number:
                yield TextChunk(PHRASES[lang]["transfer"])
                yield Transfer(number)
                return

        breaker = CircuitBreaker(f"llm:company:{context.company.id}", failure_threshold=3, reset_timeout=30)
        if not await sync_to_async(breaker.allow, thread_sensitive=False)():
            yield TextChunk(self._apology(context))
            return

        messages = [{"role": "system", "content": system_prompt(context)},
                    *conversation_messages(turn, context.effects)]
        spoke = False
        for _ in range(MAX_TOOL_ROUNDS):
            text: list[str] = []
            calls: list[dict] = []
            try:
                async for kind, payload in self._stream(messages, context):
                    if kind == "text":
                        text.append(payload)
                        spoke = True
                        yield TextChunk(payload)
                    else:
                        self._merge_tool_delta(calls, payload)
                if not text and not calls:
                    raise LLMError("the answer has no words and no tool call")
            except (httpx.HTTPError, LLMError) as error:
                reason = f"{type(error).__name__}: {error}"[:200]
                logger.warning("Call %s: LLM request failed (%s).", context.call_id, reason)
                await sync_to_async(breaker.record_failure, thread_sensitive=False)(reason)
                yield TextChunk((" " if spoke else "") + self._apology(context))
                return
            await sync_to_async(breaker.record_success, thread_sensitive=False)()
            if not calls:
                return
            for call in calls:
                call["id"] = call["id"] or f"call_{uuid.uuid4().hex}"  # Retell's ids are globally unique
            messages.append({"role": "assistant", "content": "".join(text) or None,
                             "tool_calls": [{"id": c["id"], "type": "function",
                                             "function": {"name": c["name"], "arguments": c["arguments"]}}
                                            for c in calls]})
            results: dict[str, dict] = {}
            valid: list[ToolCall] = []
            for call in calls:
                try:
                    arguments = json.loads(call["arguments"] or "{}")
                except ValueError:
                    arguments = None
                if not isinstance(arguments, dict) or call["name"] not in FUNCTION_SPECS:
                    results[call["id"]] = {"error": "invalid_call",
                                           "message": "That function call was not valid; check the name and arguments."}
                else:
                    valid.append(ToolCall(call["id"], call["name"], arguments))
            if valid:
                ran = yield ToolCalls(tuple(valid))
                results.update(zip((c.tool_call_id for c in valid), ran, strict=True))
            for call in calls:
                messages.append({"role": "tool", "tool_call_id": call["id"],
                                 "content": json.dumps(results[call["id"]], ensure_ascii=False, default=str)})
        logger.warning("Call %s: the LLM kept calling tools; giving up after %d rounds.", context.call_id,
                       MAX_TOOL_ROUNDS)
        yield TextChunk((" " if spoke else "") + self._apology(context))

    def _apology(self, context: CallContext) -> str:
        if context.company.phone:
            context.state["offered_transfer"] = True
            return APOLOGY[context.language]["offer"]
        return APOLOGY[context.language]["no_phone"]

    @staticmethod
    def _merge_tool_delta(calls: list[dict], delta: dict) -> None:
        """Add one streamed tool-call delta to the calls so far (in order of first delta).

        A delta with an id belongs to the call of that id (some providers, Ollama among
        them, send every parallel call under index 0, each with its own id); any other
        delta to the newest call of its index (the newest call when it has no index). A
        delta whose id no call has yet names that newest call if it has no id so far,
        else it starts a new call.
        """
        call_id, index = delta.get("id") or "", delta.get("index")
        call = next((c for c in calls if c["id"] == call_id), None) if call_id else None
        if call is None:
            newest = next((c for c in reversed(calls) if index is None or c["index"] == index), None)
            if newest is not None and not (call_id and newest["id"]):
                call = newest
        if call is None:
            call = {"id": "", "index": index, "name": "", "arguments": ""}
            calls.append(call)
        if call_id:
            call["id"] = call_id
        function = delta.get("function") or {}
        if function.get("name"):
            call["name"] += function["name"]
        if function.get("arguments"):
            call["arguments"] += function["arguments"]

    async def _stream(self, messages: list[dict], context: CallContext):
        """Yield ("text", str) and ("tool", delta) from one streamed chat completion.

        Raises LLMError for a status other than 200, an answer that is not an event stream,
        a chunk that is not JSON or not of a chunk's shape, an error in the stream, and a
        stream that stops before a finish_reason or [DONE] (httpx errors pass through).
        """
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
                content_type = response.headers.get("content-type", "")
                if not content_type.lower().startswith("text/event-stream"):
                    raise LLMError(f"the answer is {content_type or 'of no type'}, not an event stream")
                finished = False
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
                    for choice in _choices(chunk):
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            yield "text", delta["content"]
                        for tool_delta in delta.get("tool_calls") or []:
                            yield "tool", tool_delta
                        finished = finished or bool(choice.get("finish_reason"))
                if not finished:
                    raise LLMError("the stream stopped before a finish_reason or [DONE]")


def _choices(chunk) -> list[dict]:
    """A streamed chunk's choices, each with a delta of the shape the engine reads, or
    LLMError: a chunk of another shape is a malformed answer, not an empty one."""
    if not isinstance(chunk, dict) or not isinstance(chunk.get("choices") or [], list):
        raise LLMError("a streamed chunk is not a chat.completion.chunk")
    choices = chunk.get("choices") or []
    for choice in choices:
        delta = (choice.get("delta") or {}) if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            raise LLMError("a streamed choice has no delta object")
        if not isinstance(delta.get("content") or "", str):
            raise LLMError("a streamed delta's content is not text")
        tool_calls = delta.get("tool_calls") or []
        if not isinstance(tool_calls, list) or not all(_is_tool_delta(call) for call in tool_calls):
            raise LLMError("a streamed delta's tool calls are not tool-call deltas")
    return choices


def _is_tool_delta(call) -> bool:
    function = (call.get("function") or {}) if isinstance(call, dict) else None
    return (isinstance(function, dict) and isinstance(call.get("id") or "", str)
            and isinstance(function.get("name") or "", str) and isinstance(function.get("arguments") or "", str))
