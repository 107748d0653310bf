"""The Model Context Protocol server at /mcp: the Streamable HTTP transport of the official `mcp`
SDK, stateless (every POST stands alone, so any server process may answer it) with JSON answers.

Tools are `integrations.operations.OPERATIONS`: the JSON-RPC gateway's methods (the same
functions), the reads of appointments and calls, the availability check, and the saved scenarios
(list, run through voice.scenarios.scenario_runs_start, read a run). Resources are an
agent's prompt and a call's transcript, read through the same operations:

    voicedesk://companies/{company_id}/agents/{agent_id}/prompt        text/plain
    voicedesk://companies/{company_id}/calls/{call_id}/transcript      text/plain

`McpEndpoint` is the ASGI application mounted at /mcp (config.asgi). Before the SDK sees a
request it checks, in this order: the Host (ALLOWED_HOSTS: 400), mcp.address (429), the API token
sent as `Authorization: Bearer <token>` (`tenants.services.api_token_authenticate`, the gateway's
check: 401 with WWW-Authenticate), mcp.token (429); every refusal is
`{"error": {"code", "message"}}`. A tool's refusal (the gateway's -32602, -32003, -32004, ...) is
a tool result with `isError` true and `{"error": {"code", "message", "data"}}` as its structured
content, so the assistant reads why; audit entries name the token, as the gateway's do.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import uuid
import weakref
from typing import Any

import mcp.types as types
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError

from audit.actor import Actor
from audit.middleware import _SANE_REQUEST_ID, client_ip
from config import ratelimits
from retell_config.gateway import Context, run_method
from retell_config.protocols.jsonrpc import INVALID_PARAMS, Call, RpcError
from tenants.services import api_token_authenticate

from .operations import OPERATIONS, get_call

logger = logging.getLogger(__name__)

SCOPE_TOKEN = "voicedesk.api_token"
SCOPE_ACTOR = "voicedesk.actor"

INSTRUCTIONS = (
    "VoiceDesk runs AI phone receptionists for practices. Every tool takes company_id: call listAgents with "
    "a company id you were given, or ask for one. Changes (updateAgent, updateWebhook, deployCustomFunctions, "
    "syncAll, importFunctions) are saved at once and pushed to Retell in the background: poll getSyncRun. "
    "runScenario makes test calls in the background: poll getScenarioRun until finished. "
    "A refusal comes back as an error result naming the argument and the reason.")

PROMPT_URI = re.compile(r"^voicedesk://companies/(?P<company_id>[0-9]{1,18})/agents/(?P<agent_id>[^/]{1,128})/prompt$")
TRANSCRIPT_URI = re.compile(
    r"^voicedesk://companies/(?P<company_id>[0-9]{1,18})/calls/(?P<call_id>[^/]{1,128})/transcript$")


# --- running operations for the token's user ---------------------------------------------------------
def _context(request_context) -> Context:
    scope = getattr(getattr(request_context, "request", None), "scope", None) or {}
    actor = scope.get(SCOPE_ACTOR)
    if actor is None:  # McpEndpoint puts it there; a request that did not pass it has no user
        raise MCPError(-32001, "Unauthorized")
    return Context(actor.user, actor)


@database_sync_to_async
def _run(ctx: Context, name: str, arguments: dict) -> Any:
    return run_method(OPERATIONS[name].run, ctx, Call(method=name, params=arguments, id=None))


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _error_result(error: RpcError) -> types.CallToolResult:
    body = {"error": {"code": error.code, "message": error.message,
                      **({"data": error.data} if error.data is not None else {})}}
    return types.CallToolResult(content=[types.TextContent(text=_text(body))], structured_content=body, is_error=True)


async def list_tools(request_context, params) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[
        types.Tool(name=name, description=op.description, input_schema=op.input_schema,
                   annotations=types.ToolAnnotations(read_only_hint=not op.writes, destructive_hint=False,
                                                     open_world_hint=False))
        for name, op in OPERATIONS.items()])


async def call_tool(request_context, params: types.CallToolRequestParams) -> types.CallToolResult:
    if params.name not in OPERATIONS:
        raise MCPError(INVALID_PARAMS, f"Unknown tool: {params.name}", {"tools": sorted(OPERATIONS)})
    ctx = _context(request_context)
    try:
        result = await _run(ctx, params.name, params.arguments or {})
    except RpcError as error:
        return _error_result(error)
    return types.CallToolResult(content=[types.TextContent(text=_text(result))], structured_content=result)


TEMPLATES = [
    types.ResourceTemplate(name="agent-prompt", uri_template="voicedesk://companies/{company_id}/agents/{agent_id}/prompt",
                           description="An agent's system prompt (general_prompt), as the agent uses it now.",
                           mime_type="text/plain"),
    types.ResourceTemplate(name="call-transcript",
                           uri_template="voicedesk://companies/{company_id}/calls/{call_id}/transcript",
                           description="A call's transcript, one line per turn.", mime_type="text/plain"),
]


async def list_resource_templates(request_context, params) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(resource_templates=TEMPLATES)


@database_sync_to_async
def _prompt_resources(ctx: Context) -> list[types.Resource]:
    from retell_config import selectors

    resources = []
    for company in selectors.companies_for(ctx.user, "view").order_by("pk"):
        for agent in selectors.agents_visible(user=ctx.user, company=company).order_by("name"):
            resources.append(types.Resource(
                name=f"{agent.name} prompt", uri=f"voicedesk://companies/{company.pk}/agents/{agent.agent_id}/prompt",
                description=f"The system prompt of {agent.name} ({company.name}).", mime_type="text/plain"))
    return resources


async def list_resources(request_context, params) -> types.ListResourcesResult:
    """The prompts of the agents the token's user may see (transcripts are read by their template)."""
    return types.ListResourcesResult(resources=await _prompt_resources(_context(request_context)))


def _transcript_text(call: dict) -> str:
    if call["transcript"]:
        return call["transcript"]
    lines = [f"{turn.get('role', '?')}: {turn.get('content', '')}" for turn in call["turns"] or []
             if isinstance(turn, dict)]
    return "\n".join(lines)


async def read_resource(request_context, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    ctx, uri = _context(request_context), str(params.uri)
    try:
        if found := PROMPT_URI.match(uri):
            agent = await _run(ctx, "getAgent", {"company_id": int(found["company_id"]), "agent_id": found["agent_id"]})
            text = agent["general_prompt"]
        elif found := TRANSCRIPT_URI.match(uri):
            call = await database_sync_to_async(run_method)(get_call, ctx, Call(method="getCall", params={
                "company_id": int(found["company_id"]), "call_id": found["call_id"]}))
            text = _transcript_text(call)
        else:
            raise MCPError(INVALID_PARAMS, "Unknown resource: the URIs are voicedesk://companies/{company_id}/"
                                           "agents/{agent_id}/prompt and …/calls/{call_id}/transcript")
    except RpcError as error:
        raise MCPError(error.code, error.message, error.data) from None
    return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, text=text, mime_type="text/plain")])


def build_server() -> Server:
    return Server("voicedesk", version="1", instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool, on_list_resources=list_resources,
                  on_list_resource_templates=list_resource_templates, on_read_resource=read_resource)


# --- the ASGI endpoint -----------------------------------------------------------------------------------
def _refusal(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    async def send_to(send) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *extra]})
        await send({"type": "http.response.body", "body": body})

    return send_to


class McpEndpoint:
    """ASGI app of /mcp: checks the request (host, limits, token), then hands it to the SDK's
    session manager, one per event loop (the manager's task group lives on the loop that started it;
    servers without the ASGI lifespan, daphne and the tests' uvicorn, start it at the first request)."""

    def __init__(self) -> None:
        self._managers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._starting = weakref.WeakKeyDictionary()
        self._running = weakref.WeakKeyDictionary()  # the loop keeps only a weak reference to a task

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        refusal = await self._check(scope)
        if refusal is not None:
            await refusal(send)
            return
        manager = await self._manager()
        await manager.handle_request(scope, receive, send)

    async def _check(self, scope):
        request = ASGIRequest(scope, io.BytesIO())
        try:
            request.get_host()
        except DisallowedHost:
            return _refusal(400, "bad_host", "The Host header names no host this server answers for.")
        address = client_ip(request)
        if (refused := ratelimits.check("mcp.address", address)) is not None:
            return _refusal(429, "rate_limited", refused.message, {"Retry-After": str(refused.retry_after)})
        header = request.headers.get("Authorization", "")
        token = (await database_sync_to_async(api_token_authenticate)(header[7:].strip())
                 if header.startswith("Bearer ") else None)
        if token is None:
            return _refusal(401, "unauthorized", "Send a valid API token as Authorization: Bearer <token> "
                                                 "(Admin → API tokens).",
                            {"WWW-Authenticate": 'Bearer realm="voicedesk-mcp"'})
        if (refused := ratelimits.check("mcp.token", str(token.pk))) is not None:
            return _refusal(429, "rate_limited", refused.message, {"Retry-After": str(refused.retry_after)})
        supplied = request.META.get("HTTP_X_REQUEST_ID", "")
        scope[SCOPE_TOKEN] = token
        scope[SCOPE_ACTOR] = Actor(kind="token", label=token.audit_label, user=token.user, ip=address,
                                   request_id=supplied if _SANE_REQUEST_ID.match(supplied) else uuid.uuid4().hex)
        return None

    async def _manager(self) -> StreamableHTTPSessionManager:
        loop = asyncio.get_running_loop()
        manager = self._managers.get(loop)
        if manager is not None:
            return manager
        starting = self._starting.get(loop)
        if starting is None:
            starting = self._starting[loop] = loop.create_task(self._start(loop))
        return await asyncio.shield(starting)

    async def _start(self, loop) -> StreamableHTTPSessionManager:
        manager = StreamableHTTPSessionManager(
            app=build_server(), stateless=True, json_response=True,
            max_request_body_size=settings.GATEWAY_MAX_BODY_BYTES,
            # The Host is checked against ALLOWED_HOSTS above; a browser page cannot send the bearer token.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        started = asyncio.Event()

        async def run() -> None:
            async with manager.run():
                started.set()
                await asyncio.Event().wait()  # until the loop ends

        self._running[loop] = loop.create_task(run(), name="mcp-session-manager")
        await started.wait()
        self._managers[loop] = manager
        return manager


application = McpEndpoint()
