"""The MCP server at /mcp, driven by the `mcp` SDK's own client over real HTTP against the
running ASGI application: the handshake, the tool list, a call of every tool, the resources,
permissions and another company's rows, and refusals before the SDK (token, limits)."""

import asyncio
import json
from datetime import timedelta

import httpx
import httpx2
import pytest
from django.utils import timezone
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from appointments.models import Appointment
from audit.actor import Actor
from audit.models import AuditEntry
from integrations.operations import OPERATIONS
from retell_config import gateway
from retell_config.models import Agent, CustomFunction, PromptVersion, SyncRun
from tenants.services import api_token_create
from tests.conftest import next_weekday_iso
from tests.factories import make_member
from voice.models import Call, Scenario

pytestmark = pytest.mark.django_db(transaction=True)


def token_for(user) -> str:
    return api_token_create(actor=Actor.system("tests"), user=user, name="assistant")[1]


def session_run(url: str, token: str | None, steps):
    """Open an MCP client session on `url` with the token, initialize it, run `steps(session)`."""
    async def go():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    init = await session.initialize()
                    return init, await steps(session)

    return asyncio.run(go())


def tool(session, name: str, **arguments):
    return session.call_tool(name, arguments)


@pytest.fixture
def mcp_url(http_server):
    return f"{http_server}/mcp"


@pytest.fixture
def owner_token(owner_a):
    return token_for(owner_a)


# --- the handshake and the catalogue ----------------------------------------------------------------------
def test_initialize_and_tools_list_name_every_operation_with_a_schema(mcp_url, owner_token):
    async def steps(session):
        return (await session.list_tools()).tools

    init, tools = session_run(mcp_url, owner_token, steps)

    assert init.server_info.name == "voicedesk"
    assert init.capabilities.tools is not None and init.capabilities.resources is not None
    assert {t.name for t in tools} == set(OPERATIONS)
    for listed in tools:
        assert listed.description and len(listed.description) > 20
        assert listed.input_schema["type"] == "object"
        assert "company_id" in listed.input_schema["required"]
    by_name = {t.name: t for t in tools}
    assert by_name["getAgent"].input_schema["required"] == ["company_id", "agent_id"]
    assert by_name["updateAgent"].annotations.read_only_hint is False
    assert by_name["listCalls"].annotations.read_only_hint is True


def test_every_gateway_method_is_a_tool_of_the_same_function():
    tools = {op.run for op in OPERATIONS.values()}
    assert set(gateway.METHODS.values()) <= tools


# --- refusals before the SDK ------------------------------------------------------------------------------
def test_without_a_valid_token_mcp_answers_401_with_a_json_error(mcp_url, owner_a):
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    for headers in ({}, {"Authorization": "Bearer vdk_not-a-token"}, {"Authorization": "Basic eDp5"}):
        response = httpx.post(mcp_url, json=body, headers={"Accept": "application/json, text/event-stream",
                                                           **headers})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    with pytest.raises(Exception):  # noqa: B017 - the SDK's client fails however it reports a 401
        session_run(mcp_url, None, lambda session: session.list_tools())


def test_a_host_outside_allowed_hosts_is_refused(mcp_url, owner_token):
    response = httpx.post(mcp_url, json={}, headers={"Host": "evil.example", "Authorization": f"Bearer {owner_token}"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_host"


def test_over_the_token_limit_mcp_answers_429_with_retry_after(mcp_url, owner_token, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "mcp.token": "2/m"}
    headers = {"Authorization": f"Bearer {owner_token}", "Accept": "application/json, text/event-stream"}
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    statuses = [httpx.post(mcp_url, json=ping, headers=headers) for _ in range(3)]

    assert [r.status_code for r in statuses[:2]] != [429, 429]
    refused = statuses[2]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "mcp.token" in refused.json()["error"]["message"]


def test_over_the_address_limit_even_a_bad_token_gets_429(mcp_url, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "mcp.address": "1/m"}
    first = httpx.post(mcp_url, json={}, headers={"Authorization": "Bearer vdk_nope"})
    second = httpx.post(mcp_url, json={}, headers={"Authorization": "Bearer vdk_nope"})
    assert first.status_code == 401
    assert second.status_code == 429 and second.headers["Retry-After"]


# --- every tool ----------------------------------------------------------------------------------------------
@pytest.fixture
def company_a_data(company_a, retell_agents, bookable_company):
    main, _ = retell_agents
    call = Call.objects.create(company=company_a, call_id="call_mcp_1", agent=main, from_number="+4915112345678",
                               transcript="Agent: Guten Tag!\nUser: Ich möchte einen Termin.",
                               started_at=timezone.now() - timedelta(minutes=5))
    start = timezone.now() + timedelta(days=3)
    appointment = Appointment.objects.create(company=company_a, customer_name="Erika Muster", phone="+4915112345678",
                                             start=start, end=start + timedelta(minutes=30),
                                             blocked_until=start + timedelta(minutes=30), call_id=call.call_id)
    CustomFunction.objects.create(company=company_a, name="check_availability", description="Checks a slot",
                                  url="https://voicedesk.example.com/api/mcp/retell/custom-function",
                                  parameters={"type": "object", "properties": {}})
    return {"call": call, "appointment": appointment, "agent": main}


@pytest.fixture
def bookable_company(company_a):
    from appointments.models import Service

    company_a.opening_hours = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    company_a.save()
    Service.objects.create(company=company_a, name="Kontrolle", duration_minutes=30)
    return company_a


def test_a_call_of_each_tool(mcp_url, owner_token, owner_a, company_a, company_a_data, fake_retell, settings):
    cid = company_a.pk
    day = next_weekday_iso(3)
    settings.RETELL_LLM_WEBSOCKET_URL = "ws://127.0.0.1:1/retell-llm"  # nobody answers: the eager run errs, quickly
    scenario = Scenario.objects.create(company=company_a, agent=company_a_data["agent"], name="Hours",
                                       script="Wann haben Sie geöffnet?")

    async def steps(session):
        results = {}
        results["listAgents"] = await tool(session, "listAgents", company_id=cid)
        results["getAgent"] = await tool(session, "getAgent", company_id=cid, agent_id="agent_abc123")
        results["updateAgent"] = await tool(session, "updateAgent", company_id=cid, agent_id="agent_abc123",
                                            fields={"general_prompt": "Sei freundlich."}, note="from an assistant")
        results["updateWebhook"] = await tool(session, "updateWebhook", company_id=cid,
                                              webhook_url="https://voicedesk.example.com/api/retell/webhook",
                                              events=["call_started", "call_ended"])
        results["deployCustomFunctions"] = await tool(session, "deployCustomFunctions", company_id=cid,
                                                      agent_ids=["agent_abc123"], functions=["check_availability"])
        results["syncAll"] = await tool(session, "syncAll", company_id=cid)
        run_id = results["syncAll"].structured_content["sync_run"]["sync_run_id"]
        results["getSyncRun"] = await tool(session, "getSyncRun", company_id=cid, sync_run_id=run_id)
        results["exportFunctions"] = await tool(session, "exportFunctions", company_id=cid)
        results["importFunctions"] = await tool(session, "importFunctions", company_id=cid,
                                                document=results["exportFunctions"].structured_content)
        results["listAppointments"] = await tool(session, "listAppointments", company_id=cid,
                                                 phone="+4915112345678", agent_id="agent_abc123")
        results["getAppointment"] = await tool(session, "getAppointment", company_id=cid,
                                               appointment_id=company_a_data["appointment"].pk)
        results["listCalls"] = await tool(session, "listCalls", company_id=cid)
        results["getCall"] = await tool(session, "getCall", company_id=cid, call_id="call_mcp_1")
        results["checkAvailability"] = await tool(session, "checkAvailability", company_id=cid, date=day,
                                                  time="10:00", service="Kontrolle")
        results["listScenarios"] = await tool(session, "listScenarios", company_id=cid, agent_id="agent_abc123")
        results["runScenario"] = await tool(session, "runScenario", company_id=cid, agent_id="agent_abc123",
                                            scenario_id=scenario.pk)
        scenario_run_id = results["runScenario"].structured_content["scenario_runs"][0]["scenario_run_id"]
        results["getScenarioRun"] = await tool(session, "getScenarioRun", company_id=cid,
                                               scenario_run_id=scenario_run_id)
        return results

    _, results = session_run(mcp_url, owner_token, steps)

    assert set(results) == set(OPERATIONS)
    for name, result in results.items():
        assert result.is_error is False, (name, result.content)
        assert json.loads(result.content[0].text) == result.structured_content
    data = {name: r.structured_content for name, r in results.items()}
    assert {a["agent_id"] for a in data["listAgents"]["agents"]} == {"agent_abc123", "agent_xyz789"}
    assert data["getAgent"]["general_prompt"] == "Old prompt"
    assert data["updateAgent"]["agent"]["general_prompt"] == "Sei freundlich."
    assert data["updateWebhook"]["webhook"]["events"] == ["call_started", "call_ended"]
    assert data["deployCustomFunctions"]["sync_run"]["kind"] == "functions_deploy"
    assert data["getSyncRun"]["sync_run_id"] == data["syncAll"]["sync_run"]["sync_run_id"]
    assert [f["name"] for f in data["exportFunctions"]["functions"]] == ["check_availability"]
    assert [a["customer_name"] for a in data["listAppointments"]["appointments"]] == ["Erika Muster"]
    assert data["getAppointment"]["phone"] == "+4915112345678"
    assert [c["call_id"] for c in data["listCalls"]["calls"]] == ["call_mcp_1"]
    assert "Termin" in data["getCall"]["transcript"]
    assert data["checkAvailability"]["ok"] is True and "available" in data["checkAvailability"]
    assert [s["name"] for s in data["listScenarios"]["scenarios"]] == ["Hours"]
    assert data["getScenarioRun"]["scenario"] == "Hours" and data["getScenarioRun"]["status"] == "error"

    # The same services as the gateway: the prompt version, the audit entry naming the token, the pushes.
    agent = Agent.objects.get(agent_id="agent_abc123")
    assert agent.general_prompt == "Sei freundlich."
    assert PromptVersion.objects.filter(agent=agent, note="from an assistant").exists()
    entry = AuditEntry.objects.filter(company=company_a, actor_kind="token").latest("pk")
    assert entry.actor_label.startswith("token:assistant#")
    assert fake_retell.state.llms["llm_main"]["general_prompt"] == "Sei freundlich."
    assert SyncRun.objects.filter(company=company_a).count() >= 3
    # Nothing booked by asking.
    assert Appointment.objects.filter(company=company_a).count() == 1


def test_another_companys_agent_and_company_are_refused(mcp_url, owner_token, company_a, company_b,
                                                         retell_agents):
    Agent.objects.create(company=company_b, agent_id="agent_beta", name="Beta Agent", general_prompt="Beta secret")
    Call.objects.create(company=company_b, call_id="call_beta", transcript="Beta private transcript")

    async def steps(session):
        return (await tool(session, "getAgent", company_id=company_a.pk, agent_id="agent_beta"),
                await tool(session, "getAgent", company_id=company_b.pk, agent_id="agent_beta"),
                await tool(session, "getCall", company_id=company_a.pk, call_id="call_beta"),
                await tool(session, "listCalls", company_id=company_b.pk),
                await tool(session, "getAgent", company_id=company_a.pk, agent_id="agent_abc123", bogus=1))

    _, (other_agent, other_company, other_call, other_calls, bad_param) = session_run(mcp_url, owner_token, steps)

    assert other_agent.is_error and other_agent.structured_content["error"]["code"] == gateway.NOT_FOUND
    assert other_company.is_error and other_company.structured_content["error"]["code"] == gateway.PERMISSION_DENIED
    assert other_call.is_error and other_call.structured_content["error"]["code"] == gateway.NOT_FOUND
    assert other_calls.is_error and other_calls.structured_content["error"]["code"] == gateway.PERMISSION_DENIED
    assert bad_param.structured_content["error"]["data"]["param"] == "bogus"
    for result in (other_agent, other_company, other_call, other_calls):
        assert "Beta secret" not in result.content[0].text and "private" not in result.content[0].text


def test_a_viewer_may_look_but_not_change(mcp_url, company_a, retell_agents):
    viewer = make_member(company_a, "viewer")

    async def steps(session):
        return (await tool(session, "listAgents", company_id=company_a.pk),
                await tool(session, "updateAgent", company_id=company_a.pk, agent_id="agent_abc123",
                           fields={"general_prompt": "Hijacked"}))

    _, (listed, update) = session_run(mcp_url, token_for(viewer), steps)

    assert not listed.is_error and len(listed.structured_content["agents"]) == 2
    assert update.is_error and update.structured_content["error"]["code"] == gateway.PERMISSION_DENIED
    assert Agent.objects.get(agent_id="agent_abc123").general_prompt == "Old prompt"


def test_an_unknown_tool_is_a_protocol_error(mcp_url, owner_token):
    async def steps(session):
        with pytest.raises(MCPError) as refused:
            await tool(session, "dropDatabase")
        return refused.value.code

    assert session_run(mcp_url, owner_token, steps)[1] == -32602


# --- resources ---------------------------------------------------------------------------------------------
def test_an_agents_prompt_and_a_calls_transcript_are_resources(mcp_url, owner_token, company_a, company_b,
                                                              company_a_data):
    Call.objects.create(company=company_b, call_id="call_beta", transcript="Beta private transcript")
    prompt_uri = f"voicedesk://companies/{company_a.pk}/agents/agent_abc123/prompt"

    async def steps(session):
        listed = (await session.list_resources()).resources
        templates = (await session.list_resource_templates()).resource_templates
        prompt = await session.read_resource(prompt_uri)
        transcript = await session.read_resource(f"voicedesk://companies/{company_a.pk}/calls/call_mcp_1/transcript")
        with pytest.raises(MCPError) as other:
            await session.read_resource(f"voicedesk://companies/{company_a.pk}/calls/call_beta/transcript")
        with pytest.raises(MCPError) as other_company:
            await session.read_resource(f"voicedesk://companies/{company_b.pk}/calls/call_beta/transcript")
        return listed, templates, prompt, transcript, other.value, other_company.value

    _, (listed, templates, prompt, transcript, other, other_company) = session_run(mcp_url, owner_token, steps)

    assert prompt_uri in {str(r.uri) for r in listed}
    assert {t.name for t in templates} == {"agent-prompt", "call-transcript"}
    assert prompt.contents[0].text == "Old prompt"
    assert "Ich möchte einen Termin." in transcript.contents[0].text
    assert other.code == gateway.NOT_FOUND and "private" not in other.message
    assert other_company.code == gateway.PERMISSION_DENIED
