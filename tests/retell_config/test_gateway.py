"""The JSON-RPC 2.0 gateway over HTTP: tokens, the specification's semantics, every
method, and ids of another company refused."""

import json

import pytest
from guardian.shortcuts import assign_perm

from audit.actor import Actor
from audit.models import AuditEntry
from retell_config import services
from retell_config.client import circuit_for
from retell_config.models import Agent, PromptVersion, WebhookConfig
from tenants.models import ApiToken
from tenants.services import api_token_create, api_token_revoke
from tests.factories import make_member

URL = "/api/mcp/gateway"


def token_for(user) -> str:
    return api_token_create(actor=Actor.system("tests"), user=user, name="tests")[1]


class Gateway:
    def __init__(self, client, token: str) -> None:
        self.client = client
        self.token = token

    def post(self, body, *, token: str | None = None):
        raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.client.post(URL, raw, content_type="application/json",
                                HTTP_AUTHORIZATION=f"Bearer {token or self.token}")

    def call(self, method: str, params: dict, request_id=1):
        response = self.post({"jsonrpc": "2.0", "method": method, "params": params, "id": request_id})
        assert response.status_code == 200, response.content
        return response.json()


@pytest.fixture
def owner_gateway(client, owner_a):
    return Gateway(client, token_for(owner_a))


# --- authentication ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_without_a_valid_token_the_gateway_answers_401(client, owner_a):
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer vdk_not-a-token"}):
        response = client.post(URL, '{"jsonrpc":"2.0","method":"retell_config.listAgents","id":1}',
                               content_type="application/json", **header)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == -32001


@pytest.mark.django_db
def test_a_revoked_token_stops_working(client, owner_a, company_a):
    token, plaintext = api_token_create(actor=Actor.system("tests"), user=owner_a, name="ci")
    gateway = Gateway(client, plaintext)
    assert "result" in gateway.call("retell_config.listAgents", {"company_id": company_a.pk})

    api_token_revoke(actor=Actor.system("tests"), token=token)

    assert gateway.post({"jsonrpc": "2.0", "method": "retell_config.listAgents", "id": 1}).status_code == 401


@pytest.mark.django_db
def test_tokens_are_stored_hashed(owner_a):
    _, plaintext = api_token_create(actor=Actor.system("tests"), user=owner_a, name="ci")
    stored = ApiToken.objects.get()
    assert plaintext not in (stored.key_hash, stored.key_prefix, str(stored))
    assert len(stored.key_hash) == 64


# --- JSON-RPC 2.0 semantics over HTTP ----------------------------------------------------------

@pytest.mark.django_db
def test_parse_error_empty_batch_and_invalid_members(owner_gateway, company_a):
    assert owner_gateway.post('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]').json() == {
        "jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}
    empty = owner_gateway.post("[]").json()
    assert empty["error"]["code"] == -32600 and empty["id"] is None
    batch = owner_gateway.post([1, {"jsonrpc": "2.0", "method": "retell_config.listAgents",
                                    "params": {"company_id": company_a.pk}, "id": "ok"},
                                {"foo": "boo"}]).json()
    assert [a.get("error", {}).get("code") for a in batch] == [-32600, None, -32600]
    assert batch[1]["id"] == "ok" and batch[1]["result"] == {"agents": []}


@pytest.mark.django_db
def test_a_notification_only_batch_gets_no_body(owner_gateway, company_a):
    response = owner_gateway.post([
        {"jsonrpc": "2.0", "method": "retell_config.listAgents", "params": {"company_id": company_a.pk}},
        {"jsonrpc": "2.0", "method": "retell_config.nothing"}])
    assert response.status_code == 204 and response.content == b""


@pytest.mark.django_db
def test_unknown_method_and_positional_params(owner_gateway, company_a):
    assert owner_gateway.call("retell_config.explode", {})["error"]["code"] == -32601
    positional = owner_gateway.post({"jsonrpc": "2.0", "method": "retell_config.listAgents",
                                     "params": [company_a.pk], "id": 2}).json()
    assert positional["error"]["code"] == -32602
    assert positional["error"]["data"]["param"] == "params"


@pytest.mark.django_db
@pytest.mark.parametrize("params, param, reason", [
    ({}, "company_id", "is required"),
    ({"company_id": "1"}, "company_id", "must be an integer"),
    ({"company_id": 1, "webhook_url": "https://x.example", "events": "call_ended"}, "events", "must be an array"),
    ({"company_id": 1, "webhook_url": "https://x.example", "events": [], "colour": "red"}, "colour", "unknown param"),
])
def test_invalid_params_name_the_param_and_the_reason(owner_gateway, company_a, params, param, reason):
    if params.get("company_id") == 1:
        params["company_id"] = company_a.pk
    error = owner_gateway.call("retell_config.updateWebhook", params)["error"]
    assert error["code"] == -32602
    assert error["data"]["param"] == param and reason in error["data"]["reason"]


@pytest.mark.django_db
def test_a_service_validation_error_is_invalid_params(owner_gateway, company_a, retell_agents):
    error = owner_gateway.call("retell_config.updateWebhook", {
        "company_id": company_a.pk, "webhook_url": "https://x.example/h", "events": ["call_exploded"]})["error"]
    assert error["code"] == -32602 and error["data"]["param"] == "events"
    assert "call_exploded" in error["data"]["reason"]


# --- methods ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_update_webhook_saves_pushes_and_audits_as_the_token(owner_gateway, company_a, retell_agents, fake_retell,
                                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        answer = owner_gateway.call("retell_config.updateWebhook", {
            "company_id": company_a.pk, "webhook_url": "https://api.example.com/api/retell/webhook",
            "events": ["call_started", "call_ended", "call_analyzed"], "agent_ids": ["agent_abc123", "agent_xyz789"]},
            request_id="req_123")

    assert answer["id"] == "req_123"
    assert answer["result"]["webhook"]["apply_to"] == "selected"
    run_id = answer["result"]["sync_run"]["sync_run_id"]
    assert sorted(fake_retell.lines()) == ["PATCH /update-agent/agent_abc123", "PATCH /update-agent/agent_xyz789"]
    run = owner_gateway.call("retell_config.getSyncRun", {"company_id": company_a.pk, "sync_run_id": run_id})
    assert run["result"]["status"] == "succeeded" and run["result"]["percent"] == 100
    entry = AuditEntry.objects.filter(object_type="retell_config.webhookconfig").latest("id")
    assert entry.actor_kind == "token" and entry.actor_label.startswith("token:tests#")
    random_part = owner_gateway.token.removeprefix("vdk_")
    assert random_part[:6] not in entry.actor_label


@pytest.mark.django_db
def test_deploy_custom_functions_with_definitions_as_in_the_seed(owner_gateway, company_a, retell_agents,
                                                                 fake_retell, django_capture_on_commit_callbacks):
    definition = {"description": "Collects appointment booking details", "parameters": {
        "type": "object", "properties": {"name": {"type": "string", "description": "Customer name"}},
        "required": ["name"]}}
    with django_capture_on_commit_callbacks(execute=True):
        answer = owner_gateway.call("retell_config.deployCustomFunctions", {
            "company_id": company_a.pk, "agent_ids": ["agent_abc123"],
            "functions": {"collect_appointment_information": definition}})

    assert answer["result"]["sync_run"]["kind"] == "functions_deploy"
    tools = fake_retell.state.llms["llm_main"]["general_tools"]
    assert [t["name"] for t in tools] == ["collect_appointment_information"]
    assert tools[0]["url"] == "https://voicedesk.example.com/api/mcp/retell/custom-function"


@pytest.mark.django_db
def test_list_get_and_update_agent(owner_gateway, company_a, retell_agents, fake_retell,
                                   django_capture_on_commit_callbacks):
    listed = owner_gateway.call("retell_config.listAgents", {"company_id": company_a.pk})["result"]["agents"]
    assert [a["agent_id"] for a in listed] == ["agent_xyz789", "agent_abc123"]

    with django_capture_on_commit_callbacks(execute=True):
        updated = owner_gateway.call("retell_config.updateAgent", {
            "company_id": company_a.pk, "agent_id": "agent_abc123", "note": "warmer",
            "fields": {"general_prompt": "Be warm.", "voice_id": "retell-Cimo"}})["result"]

    assert updated["prompt_version"] == 2 and updated["agent"]["general_prompt"] == "Be warm."
    assert fake_retell.state.llms["llm_main"]["general_prompt"] == "Be warm."
    got = owner_gateway.call("retell_config.getAgent", {"company_id": company_a.pk, "agent_id": "agent_abc123",
                                                        "include_remote": True})["result"]
    assert got["voice_id"] == "retell-Cimo" and got["prompt_version"] == 2
    assert got["drift"] == {}


@pytest.mark.django_db
def test_update_agent_on_an_old_version_is_a_conflict(owner_gateway, company_a, retell_agents):
    services.agent_update(actor=Actor.system("tests"), agent=retell_agents[0], fields={"general_prompt": "B"},
                          push=False)
    error = owner_gateway.call("retell_config.updateAgent", {
        "company_id": company_a.pk, "agent_id": "agent_abc123", "fields": {"general_prompt": "C"},
        "base_version": 1})["error"]
    assert error["code"] == -32009 and error["data"]["param"] == "base_version"
    assert PromptVersion.objects.filter(agent=retell_agents[0]).count() == 2


@pytest.mark.django_db
def test_update_agent_refuses_a_bad_voice_naming_the_field(owner_gateway, company_a, retell_agents):
    error = owner_gateway.call("retell_config.updateAgent", {
        "company_id": company_a.pk, "agent_id": "agent_abc123", "fields": {"voice_id": "nope"}})["error"]
    assert error["code"] == -32602 and error["data"]["param"] == "fields.voice_id"


@pytest.mark.django_db
def test_sync_all_export_and_import(owner_gateway, company_a, retell_agents, fake_retell,
                                    django_capture_on_commit_callbacks):
    services.custom_functions_seed(actor=Actor.system("tests"), company=company_a, agents=retell_agents)
    with django_capture_on_commit_callbacks(execute=True):
        run = owner_gateway.call("retell_config.syncAll", {"company_id": company_a.pk})["result"]["sync_run"]
    assert run["kind"] == "sync_all"

    exported = owner_gateway.call("retell_config.exportFunctions", {"company_id": company_a.pk,
                                                                     "format": "elevenlabs",
                                                                     "agent_id": "agent_abc123"})["result"]
    assert len(exported["tools"]) == 4
    assert exported["tools"][0]["tool_config"]["api_schema"]["request_headers"]["Authorization"].startswith(
        "Bearer vdtk_")
    unnamed = owner_gateway.call("retell_config.exportFunctions", {"company_id": company_a.pk,
                                                                    "format": "elevenlabs"})["error"]
    assert unnamed["code"] == -32602 and unnamed["data"]["param"] == "agent_id"
    backup = owner_gateway.call("retell_config.exportFunctions", {"company_id": company_a.pk})["result"]
    imported = owner_gateway.call("retell_config.importFunctions", {"company_id": company_a.pk,
                                                                     "document": backup})["result"]
    assert len(imported["unchanged"]) == 4
    bad = owner_gateway.call("retell_config.importFunctions", {"company_id": company_a.pk, "document": {
        "format": "voicedesk.custom_functions", "functions": [{"name": "x", "url": "https://a.example",
                                                                "parameters": {"type": "array"}}]}})["error"]
    assert bad["code"] == -32602 and '"type": "object"' in bad["data"]["reason"]


@pytest.mark.django_db
def test_an_open_circuit_is_an_upstream_failure(owner_gateway, company_a, retell_agents):
    breaker = circuit_for(company_a.pk)
    for _ in range(breaker.failure_threshold):
        breaker.record_failure("HTTP 503")

    error = owner_gateway.call("retell_config.syncAll", {"company_id": company_a.pk})["error"]

    assert error["code"] == -32010 and "circuit open" in error["data"]["reason"]


# --- permissions and tenancy ------------------------------------------------------------------------

@pytest.mark.django_db
def test_another_companys_id_and_agents_are_refused(owner_gateway, company_a, company_b, retell_agents):
    Agent.objects.create(company=company_b, agent_id="agent_of_b", name="B")

    other_company = owner_gateway.call("retell_config.listAgents", {"company_id": company_b.pk})["error"]
    other_agent = owner_gateway.call("retell_config.deployCustomFunctions", {
        "company_id": company_a.pk, "agent_ids": ["agent_abc123", "agent_of_b"]})["error"]
    get_other = owner_gateway.call("retell_config.getAgent", {"company_id": company_a.pk,
                                                              "agent_id": "agent_of_b"})["error"]

    assert other_company["code"] == -32003 and other_company["data"]["param"] == "company_id"
    assert other_agent["code"] == -32004 and other_agent["data"]["agent_id"] == "agent_of_b"
    assert get_other["code"] == -32004
    assert not WebhookConfig.objects.exists()


@pytest.mark.django_db
def test_a_viewer_reads_but_cannot_change(client, company_a, retell_agents):
    gateway = Gateway(client, token_for(make_member(company_a, "viewer")))

    assert len(gateway.call("retell_config.listAgents", {"company_id": company_a.pk})["result"]["agents"]) == 2
    error = gateway.call("retell_config.updateAgent", {"company_id": company_a.pk, "agent_id": "agent_abc123",
                                                       "fields": {"name": "X"}})["error"]
    assert error["code"] == -32003
    assert Agent.objects.get(agent_id="agent_abc123").name == "Main Reception Agent"


@pytest.mark.django_db
def test_an_editor_limited_to_one_agent_sees_and_changes_only_that_one(client, company_a, retell_agents):
    main, backup = retell_agents
    editor = make_member(company_a, "editor", limited=True)
    assign_perm("retell_config.view_agent", editor, main)
    assign_perm("retell_config.change_agent", editor, main)
    gateway = Gateway(client, token_for(editor))

    listed = gateway.call("retell_config.listAgents", {"company_id": company_a.pk})["result"]["agents"]
    other = gateway.call("retell_config.updateAgent", {"company_id": company_a.pk, "agent_id": "agent_xyz789",
                                                       "fields": {"name": "X"}})["error"]
    whole = gateway.call("retell_config.syncAll", {"company_id": company_a.pk})["error"]
    own = gateway.call("retell_config.updateAgent", {"company_id": company_a.pk, "agent_id": "agent_abc123",
                                                     "fields": {"name": "Mine"}})

    assert [a["agent_id"] for a in listed] == ["agent_abc123"]
    assert other["code"] == -32004
    assert whole["code"] == -32003
    assert own["result"]["agent"]["name"] == "Mine"
