"""Retell REST payloads (reference retell.md §2, §4, §5) as plain data in and out.

Local state is described by plain dicts (see `agent_state`), so the same functions
build what is pushed, read what is pulled and measure drift between the two.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

# --- webhook events -----------------------------------------------------------------
# The seed's "call_transferred" is Retell's four transfer events (§2.1).
TRANSFER_EVENTS = ["transfer_started", "transfer_bridged", "transfer_cancelled", "transfer_ended"]
EVENT_MAP: dict[str, list[str]] = {
    "call_started": ["call_started"],
    "call_ended": ["call_ended"],
    "call_analyzed": ["call_analyzed"],
    "transcript_updated": ["transcript_updated"],
    "call_transferred": TRANSFER_EVENTS,
}
# Retell's default when an agent sets no webhook_events.
RETELL_DEFAULT_EVENTS = ["call_started", "call_ended", "call_analyzed"]


def retell_webhook_events(events: Iterable[str]) -> list[str]:
    """Our event names -> Retell's webhook_events, in Retell's order, without repeats."""
    wanted = {name for event in events for name in EVENT_MAP.get(event, [])}
    order = [name for names in EVENT_MAP.values() for name in names]
    return [name for name in order if name in wanted]


def local_webhook_events(retell_events: Iterable[str] | None) -> list[str]:
    """Retell's webhook_events -> our names (any transfer event counts as call_transferred)."""
    got = set(RETELL_DEFAULT_EVENTS if retell_events is None else retell_events)
    return [ours for ours, theirs in EVENT_MAP.items() if got & set(theirs)]


# --- custom functions ------------------------------------------------------------------
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
BODY_METHODS = {"POST", "PUT", "PATCH"}


def parameters_schema_errors(schema: Any) -> list[str]:
    """What is wrong with a custom function's parameters (empty when nothing is).

    Retell wants a JSON Schema object with "type": "object" at the top and its
    "properties" (§4.1); an empty object means "no parameters".
    """
    if schema in ({}, None):
        return []
    if not isinstance(schema, dict):
        return ["parameters: must be a JSON object (a JSON Schema), not " + type(schema).__name__ + "."]
    errors = []
    if schema.get("type") != "object":
        errors.append('parameters: the top level needs "type": "object" (Retell refuses any other schema).')
    if not isinstance(schema.get("properties"), dict):
        errors.append('parameters: "properties" must be an object naming each parameter.')
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(top level)"
        errors.append(f"parameters at {where}: {exc.message}")
    required = schema.get("required", [])
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    if isinstance(required, list):
        missing = [name for name in required if isinstance(name, str) and name not in properties]
        if missing:
            errors.append("parameters: required names " + ", ".join(missing) + " not defined in properties.")
    return errors


def custom_tool(function: dict, *, agent_id: str | None = None) -> dict:
    """A local function (plain dict of CustomFunction fields) as a Retell `type: "custom"` tool.

    With args_at_root Retell posts only the arguments, so the function's name and the
    agent ride along as query parameters.
    """
    tool = {
        "type": "custom",
        "name": function["name"],
        "description": function.get("description", ""),
        "url": function["url"],
        "method": function.get("method", "POST"),
        "speak_during_execution": bool(function.get("speak_during_execution", True)),
        "speak_after_execution": bool(function.get("speak_after_execution", True)),
        "timeout_ms": int(function.get("timeout_ms", 120000)),
        "args_at_root": bool(function.get("args_at_root", False)),
    }
    if function.get("parameters") and tool["method"] in BODY_METHODS:
        tool["parameters"] = function["parameters"]
    if function.get("execution_message"):
        tool["execution_message_description"] = function["execution_message"]
    query = dict(function.get("query_params") or {})
    if tool["args_at_root"]:
        query["function"] = function["name"]
        if agent_id:
            query["agent_id"] = agent_id
    if query:
        tool["query_params"] = query
    return tool


def is_managed_tool(tool: dict, *, managed_names: set[str], managed_url_prefix: str) -> bool:
    """Does this product own the tool? Ours: custom tools named like one of our functions
    or calling our custom-function endpoint. Everything else is left alone."""
    if tool.get("type") != "custom":
        return False
    return tool.get("name") in managed_names or str(tool.get("url", "")).startswith(managed_url_prefix)


def merge_general_tools(existing: list[dict] | None, ours: list[dict], *, managed_names: set[str],
                        managed_url_prefix: str) -> list[dict]:
    """The LLM's general_tools with our tools replaced by `ours`; other tools keep their
    place and content exactly."""
    kept = [tool for tool in (existing or [])
            if not is_managed_tool(tool, managed_names=managed_names, managed_url_prefix=managed_url_prefix)]
    taken = {tool.get("name") for tool in kept}
    clashes = [tool["name"] for tool in ours if tool["name"] in taken]
    if clashes:
        raise ValueError("A tool this product does not manage already uses the name "
                         + ", ".join(clashes) + "; rename one of them.")
    return kept + list(ours)


def managed_tools(tools: list[dict] | None, *, managed_names: set[str], managed_url_prefix: str) -> dict[str, dict]:
    return {tool["name"]: tool for tool in tools or []
            if is_managed_tool(tool, managed_names=managed_names, managed_url_prefix=managed_url_prefix)}


# --- ElevenLabs webhook tools (twilio_elevenlabs.md B4, current field names) -------------------
def _literal_property(name: str, spec: dict) -> dict:
    prop = {"type": spec.get("type") if spec.get("type") in ("boolean", "string", "integer", "number") else "string",
            "description": spec.get("description") or name.replace("_", " ")}
    if isinstance(spec.get("enum"), list):
        prop["enum"] = spec["enum"]
    return prop


def _body_property(name: str, spec: dict) -> dict:
    if spec.get("type") == "object":
        return {"type": "object", "description": spec.get("description") or name.replace("_", " "),
                "properties": {k: _body_property(k, v) for k, v in (spec.get("properties") or {}).items()},
                "required": list(spec.get("required") or [])}
    if spec.get("type") == "array":
        return {"type": "array", "description": spec.get("description") or name.replace("_", " "),
                "items": _body_property(name, spec.get("items") or {"type": "string"})}
    return _literal_property(name, spec)


# Query parameters this server's endpoint reads (voice.views): the function's name and, for an
# ElevenLabs tool, the agent, the conversation and the caller. They are not the function's own.
ENDPOINT_QUERY = ("function", "agent_id", "call_id", "from_number")
# ElevenLabs' system variables (B4) that fill them at call time.
ELEVENLABS_CALL_VARIABLES = {"call_id": "system__conversation_id", "from_number": "system__caller_id"}
TOOL_KEY_HEADER = "Authorization"


def elevenlabs_webhook_tool(function: dict, *, agent_id: str | None = None, tool_key: str | None = None) -> dict:
    """A local function as an ElevenLabs Agents Platform webhook tool (`POST /v1/convai/tools` body).

    ElevenLabs posts only the arguments, so the function name goes as a constant query
    parameter, like Retell's args_at_root. With `agent_id` and `tool_key` (for a function
    that calls this server's endpoint) the tool also names the agent, passes the
    conversation id and the caller's number from ElevenLabs' system variables, and sends
    `Authorization: Bearer <tool_key>`, which the endpoint checks against the agent's key.
    Deprecated fields (disable_interruptions, force_pre_tool_speech) are not written; their
    successors are.
    """
    method = function.get("method", "POST")
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    required = list(parameters.get("required") or [])
    query_properties = {key: {"type": "string", "constant_value": value}
                        for key, value in {**(function.get("query_params") or {}),
                                           "function": function["name"]}.items()}
    headers = {}
    if agent_id and tool_key:
        query_properties["agent_id"] = {"type": "string", "constant_value": agent_id}
        query_properties.update({name: {"type": "string", "dynamic_variable": variable}
                                 for name, variable in ELEVENLABS_CALL_VARIABLES.items()})
        headers[TOOL_KEY_HEADER] = f"Bearer {tool_key}"
    api_schema: dict = {"url": function["url"], "method": method, "request_headers": headers}
    if method in BODY_METHODS:
        api_schema["request_body_schema"] = {
            "type": "object", "description": function.get("description", ""),
            "properties": {name: _body_property(name, spec) for name, spec in properties.items()},
            "required": required}
        api_schema["content_type"] = "application/json"
    else:
        query_properties.update({name: _literal_property(name, spec) for name, spec in properties.items()})
    api_schema["query_params_schema"] = {"properties": query_properties,
                                         "required": [n for n in required if n in query_properties]}
    seconds = round(int(function.get("timeout_ms", 120000)) / 1000)
    return {"tool_config": {
        "type": "webhook",
        "name": function["name"],
        "description": function.get("description", ""),
        "response_timeout_secs": min(120, max(5, seconds)),
        "interruption_mode": "allow",
        "pre_tool_speech": "force" if function.get("speak_during_execution", True) else "off",
        "execution_mode": "immediate",
        "tool_call_sound": None,
        "tool_call_sound_behavior": "auto",
        "tool_error_handling_mode": "auto",
        "assignments": [],
        "dynamic_variables": {"dynamic_variable_placeholders": {}},
        "api_schema": api_schema,
    }}


def _schema_property(spec: dict) -> dict:
    """A tool's property back as the JSON Schema it was made from (the inverse of _body_property)."""
    prop = {key: value for key, value in spec.items() if key in ("type", "description", "enum")}
    if spec.get("type") == "object":
        prop["properties"] = {k: _schema_property(v) for k, v in (spec.get("properties") or {}).items()
                              if isinstance(v, dict)}
        prop["required"] = list(spec.get("required") or [])
    elif spec.get("type") == "array" and isinstance(spec.get("items"), dict):
        prop["items"] = _schema_property(spec["items"])
    return prop


def function_from_elevenlabs_tool(tool_config: dict) -> dict:
    """An ElevenLabs webhook tool back as a local function's fields (what the tool carries of them:
    name, description, URL, method, parameters, own query params, timeout, speech before it).
    The endpoint's own query parameters and the request headers (the key) are not taken."""
    schema = tool_config.get("api_schema") if isinstance(tool_config.get("api_schema"), dict) else {}
    query = schema.get("query_params_schema") if isinstance(schema.get("query_params_schema"), dict) else {}
    query_properties = query.get("properties") if isinstance(query.get("properties"), dict) else {}
    method = schema.get("method", "GET")
    function: dict[str, Any] = {"name": tool_config.get("name"), "description": tool_config.get("description", ""),
                                "url": schema.get("url", ""), "method": method,
                                "query_params": {name: spec["constant_value"] for name, spec in query_properties.items()
                                                 if isinstance(spec, dict) and "constant_value" in spec
                                                 and name not in ENDPOINT_QUERY}}
    if method in BODY_METHODS:
        body = schema.get("request_body_schema") if isinstance(schema.get("request_body_schema"), dict) else {}
        properties, required = body.get("properties") or {}, body.get("required") or []
    else:
        properties = {name: spec for name, spec in query_properties.items()
                      if isinstance(spec, dict) and "description" in spec and name not in ENDPOINT_QUERY}
        required = [name for name in query.get("required") or [] if name in properties]
    if properties:
        function["parameters"] = {"type": "object", "required": list(required),
                                  "properties": {name: _schema_property(spec) for name, spec in properties.items()
                                                 if isinstance(spec, dict)}}
    if isinstance(tool_config.get("response_timeout_secs"), int):
        function["timeout_ms"] = tool_config["response_timeout_secs"] * 1000
    if tool_config.get("pre_tool_speech") in ("force", "off"):
        function["speak_during_execution"] = tool_config["pre_tool_speech"] == "force"
    return function


def function_from_custom_tool(tool: dict) -> dict:
    """A Retell `type: "custom"` tool back as a local function's fields (the inverse of custom_tool):
    the query parameters custom_tool adds for args_at_root are not the function's own."""
    function = {k: v for k, v in tool.items() if k not in ("type", "execution_message_description")}
    function["execution_message"] = tool.get("execution_message_description", "")
    if isinstance(tool.get("query_params"), dict):
        function["query_params"] = {k: v for k, v in tool["query_params"].items()
                                    if not (tool.get("args_at_root") and k in ENDPOINT_QUERY)}
    return function


# --- prompts -----------------------------------------------------------------------------
INSTRUCTIONS_MARKER = "\n\n## Custom instructions\n"


def compose_prompt(general_prompt: str, custom_instructions: str) -> str:
    """Retell LLMs have one prompt: ours is the system prompt, then the custom instructions."""
    if not custom_instructions.strip():
        return general_prompt
    return general_prompt + INSTRUCTIONS_MARKER + custom_instructions


def split_prompt(prompt: str | None) -> tuple[str, str]:
    prompt = prompt or ""
    head, marker, tail = prompt.partition(INSTRUCTIONS_MARKER)
    return (head, tail) if marker else (prompt, "")


# --- agents: what we push, what we read back, and drift ------------------------------------
def agent_payload(state: dict, *, socket_url: str | None) -> dict:
    """The update-agent body for a local agent state (see `agent_state`)."""
    body: dict[str, Any] = {
        "agent_name": state["name"],
        "voice_id": state["voice_id"],
        "voice_speed": state["voice_speed"],
        "language": state["language"],
        "webhook_url": state["webhook_url"] or None,
    }
    if state["webhook_url"]:
        body["webhook_events"] = retell_webhook_events(state["webhook_events"])
    if state["response_engine"] == "retell-llm" and state["llm_id"]:
        body["response_engine"] = {"type": "retell-llm", "llm_id": state["llm_id"]}
    elif state["response_engine"] == "custom-llm" and socket_url:
        body["response_engine"] = {"type": "custom-llm", "llm_websocket_url": socket_url}
    return body


def llm_payload(state: dict) -> dict:
    """The update-retell-llm body for the prompt and greeting."""
    return {"general_prompt": compose_prompt(state["general_prompt"], state["custom_instructions"]),
            "begin_message": state["begin_message"]}


def remote_state(agent: dict, llm: dict | None, phone_numbers: list[str], *, socket_url: str | None,
                 managed_names: set[str], managed_url_prefix: str) -> dict:
    """Retell's agent (+ its LLM and numbers) in the shape of `agent_state`.

    A field Retell does not hold is left out, so it is neither compared nor pulled: an
    agent without a language keeps ours (its company's, when the sync creates it)."""
    engine = agent.get("response_engine") or {}
    state = {
        "name": agent.get("agent_name") or "",
        "voice_id": agent.get("voice_id") or "",
        "voice_speed": float(agent["voice_speed"]) if agent.get("voice_speed") is not None else 1.0,
        "webhook_url": agent.get("webhook_url") or "",
        "webhook_events": local_webhook_events(agent.get("webhook_events")) if agent.get("webhook_url") else [],
        "response_engine": engine.get("type", ""),
        "llm_id": engine.get("llm_id", "") if engine.get("type") == "retell-llm" else "",
        "socket_url_ok": (engine.get("llm_websocket_url") == socket_url) if engine.get("type") == "custom-llm" else True,
        "phone_numbers": sorted(phone_numbers),
    }
    if agent.get("language"):
        state["language"] = agent["language"]
    if llm is not None:
        prompt, instructions = split_prompt(llm.get("general_prompt"))
        state.update({
            "general_prompt": prompt, "custom_instructions": instructions,
            "begin_message": llm.get("begin_message") or "",
            "custom_functions": managed_tools(llm.get("general_tools"), managed_names=managed_names,
                                              managed_url_prefix=managed_url_prefix),
        })
    return state


# Fields a push of the agent sends to Retell (update-agent; socket_url_ok stands for the Custom
# LLM socket URL), and those it sends to the agent's Retell LLM (update-retell-llm).
AGENT_PUSHED = ("name", "voice_id", "voice_speed", "language", "webhook_url", "webhook_events", "response_engine",
                "llm_id", "socket_url_ok")
LLM_PUSHED = ("general_prompt", "begin_message", "custom_instructions")
WEBHOOK_PUSHED = ("webhook_url", "webhook_events")

# Fields a pull may copy into the local agent. The webhook events and the functions are
# the company's (WebhookConfig, CustomFunction): they are fixed by pushing, not pulled.
PULLABLE = ("name", "language", "voice_id", "voice_speed", "response_engine", "llm_id", "general_prompt",
            "begin_message", "custom_instructions", "phone_numbers", "webhook_url")


def compare(local: dict, remote: dict) -> dict[str, dict]:
    """Field by field, where the two differ: {field: {"local": .., "remote": ..}}.
    Fields Retell does not hold for this agent (no LLM: no prompt) are not compared."""
    return {name: {"local": local[name], "remote": remote[name]}
            for name in local if name in remote and local[name] != remote[name]}


def reconcile(local: dict, remote: dict, base: dict) -> tuple[dict, dict]:
    """Three-way: what to take from Retell, and what stays as drift.

    Where only Retell changed since the last sync (local still equals the base), the
    remote value is taken. Where the local value changed (or there is no base yet),
    the difference is drift and the local value is kept: a sync never overwrites a
    local change.
    """
    take, drift = {}, {}
    for name, values in compare(local, remote).items():
        if name in PULLABLE and name in base and local[name] == base[name]:
            take[name] = values["remote"]
        else:
            drift[name] = values
    return take, drift
