"""retell_config over the REST API (/api/v1/): agents, custom functions, prompt versions and sync
runs, through the same services as the configuration page and the gateway, against the fake Retell."""

import pytest
from guardian.shortcuts import assign_perm

from audit.models import AuditEntry
from retell_config.client import circuit_for
from retell_config.models import Agent, CustomFunction, PromptVersion, SyncRun
from tests.api.conftest import Api, token_for
from tests.factories import make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(owner_a):
    return Api(token_for(owner_a))


def test_agents_are_listed_and_read_without_credentials(owner, retell_agents):
    listed = owner.get("/api/v1/agents/").json()["results"]
    assert [a["agent_id"] for a in listed] == ["agent_xyz789", "agent_abc123"]

    detail = owner.get("/api/v1/agents/agent_abc123/")
    assert detail.status_code == 200 and detail["ETag"]
    agent = detail.json()
    assert agent["general_prompt"] == "Old prompt" and agent["prompt_version"] == 0
    assert not {"socket_token", "webhook_secret", "elevenlabs_tool_key_hash"} & set(agent)


def test_a_change_is_a_prompt_version_pushed_to_retell_and_audited(owner, retell_agents, fake_retell,
                                                                   django_capture_on_commit_callbacks):
    etag = owner.get("/api/v1/agents/agent_abc123/")["ETag"]

    with django_capture_on_commit_callbacks(execute=True):
        response = owner.patch("/api/v1/agents/agent_abc123/", {"general_prompt": "Be warm.", "note": "warmer"},
                               **{"If-Match": etag})

    assert response.status_code == 200, response.content
    assert response.json()["prompt_version"] == 2  # v1 keeps the old prompt
    assert fake_retell.state.llms["llm_main"]["general_prompt"] == "Be warm."
    version = PromptVersion.objects.get(agent=retell_agents[0], number=2)
    assert (version.note, version.author_label) == ("warmer", version.author_label)
    assert version.author_label.startswith("token:tests#")
    entry = AuditEntry.objects.filter(object_type="retell_config.agent", action="update").latest("id")
    assert entry.actor_kind == "token" and entry.changes["general_prompt"]["after"] == "Be warm."
    run = SyncRun.objects.get(kind="agent_update")
    assert run.status == "succeeded"


def test_a_change_needs_if_match_and_refuses_a_stale_one(owner, retell_agents):
    path = "/api/v1/agents/agent_abc123/"
    etag = owner.get(path)["ETag"]
    assert owner.patch(path, {"name": "Front desk"}).status_code == 428
    assert owner.patch(path, {"name": "Front desk"}, **{"If-Match": etag}).status_code == 200

    stale = owner.patch(path, {"name": "Someone else's name"}, **{"If-Match": etag})

    assert stale.status_code == 412
    assert Agent.objects.get(agent_id="agent_abc123").name == "Front desk"


def test_bad_fields_are_named(owner, retell_agents):
    path = "/api/v1/agents/agent_abc123/"
    etag = owner.get(path)["ETag"]
    response = owner.patch(path, {"voice_speed": 9, "socket_token": "x"}, **{"If-Match": etag})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"voice_speed"}
    # A voice Retell does not offer the company: the service's check, named by the field.
    response = owner.patch(path, {"voice_id": "nope"}, **{"If-Match": etag})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"voice_id"}


def test_unresolved_drift_is_a_409_until_a_side_is_chosen(owner, retell_agents):
    agent = retell_agents[0]
    agent.remote_state = {"name": "Renamed on Retell"}
    agent.remote_drift = {"name": {"local": agent.name, "remote": "Renamed on Retell"}}
    agent.save()
    path = "/api/v1/agents/agent_abc123/"
    etag = owner.get(path)["ETag"]

    refused = owner.patch(path, {"general_prompt": "New"}, **{"If-Match": etag})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "drift_conflict"
    assert "name" in refused.json()["error"]["drift"]

    taken = owner.patch(path, {"general_prompt": "New", "drift": {"name": "remote"}}, **{"If-Match": etag})
    assert taken.status_code == 200, taken.content
    assert taken.json()["name"] == "Renamed on Retell"


def test_deploy_and_sync_queue_runs(owner, company_a, retell_agents, fake_retell, django_capture_on_commit_callbacks):
    function = CustomFunction.objects.create(company=company_a, name="check_availability",
                                             url="https://voicedesk.example.com/api/mcp/retell/custom-function",
                                             parameters={"type": "object", "properties": {}})
    with django_capture_on_commit_callbacks(execute=True):
        deployed = owner.post("/api/v1/agents/agent_abc123/deploy/", {"functions": ["check_availability"]})
    assert deployed.status_code == 202
    assert deployed.json()["sync_run"]["kind"] == "functions_deploy"
    assert list(function.agents.values_list("agent_id", flat=True)) == ["agent_abc123"]
    assert [t["name"] for t in fake_retell.state.llms["llm_main"]["general_tools"]] == ["check_availability"]

    missing = owner.post("/api/v1/agents/agent_abc123/deploy/", {"functions": ["nope"]})
    assert missing.status_code == 400 and missing.json()["error"]["fields"] == {
        "functions": ["No function nope in this company."]}

    with django_capture_on_commit_callbacks(execute=True):
        synced = owner.post("/api/v1/agents/sync/", {"company": company_a.pk})
    assert synced.status_code == 202
    run_id = synced.json()["sync_run"]["id"]
    run = owner.get(f"/api/v1/sync-runs/{run_id}/").json()
    assert (run["kind"], run["status"]) == ("sync_all", "succeeded")
    assert AuditEntry.objects.filter(action="retell.sync_all", object_id=str(run_id), actor_kind="token").exists()


def test_an_open_circuit_refuses_pushes_as_the_gateway_does(owner, company_a, retell_agents):
    breaker = circuit_for(company_a.pk)
    for _ in range(breaker.failure_threshold):
        breaker.record_failure("HTTP 503")

    response = owner.post("/api/v1/agents/sync/", {"company": company_a.pk})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "retell_disconnected"
    assert not SyncRun.objects.exists()


def test_custom_functions_crud_with_the_admins_schema_check(owner, company_a, retell_agents):
    body = {"company": company_a.pk, "name": "lookup_patient", "url": "https://crm.example.com/lookup",
            "parameters": {"type": "array"}, "agents": ["agent_abc123"]}
    refused = owner.post("/api/v1/custom-functions/", body)
    assert refused.status_code == 400
    assert '"type": "object"' in " ".join(refused.json()["error"]["fields"]["parameters"])

    body["parameters"] = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    made = owner.post("/api/v1/custom-functions/", body)
    assert made.status_code == 201, made.content
    function = made.json()
    assert function["agents"] == ["agent_abc123"]
    path = f"/api/v1/custom-functions/{function['id']}/"

    changed = owner.patch(path, {"description": "Finds the patient", "agents": []}, **{"If-Match": made["ETag"]})
    assert changed.status_code == 200 and changed.json()["agents"] == []
    assert owner.delete(path, **{"If-Match": changed["ETag"]}).status_code == 204
    actions = list(AuditEntry.objects.filter(object_type="retell_config.customfunction")
                   .order_by("id").values_list("action", flat=True))
    assert actions == ["create", "update", "delete"]


def test_a_function_cannot_link_another_companys_agent(owner, company_a, company_b, retell_agents):
    Agent.objects.create(company=company_b, agent_id="agent_of_b", name="B")
    response = owner.post("/api/v1/custom-functions/", {
        "company": company_a.pk, "name": "x", "url": "https://a.example.com", "agents": ["agent_of_b"]})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"agents"}


def test_prompt_versions_diff_and_roll_back(owner, retell_agents, fake_retell, django_capture_on_commit_callbacks):
    path = "/api/v1/agents/agent_abc123/"
    owner.patch(path, {"general_prompt": "Line one\nLine two"}, **{"If-Match": owner.get(path)["ETag"]})
    versions = owner.get("/api/v1/prompt-versions/", {"agent": "agent_abc123"}).json()["results"]
    assert [v["number"] for v in versions] == [2, 1]

    diff = owner.get(f"/api/v1/prompt-versions/{versions[0]['id']}/diff/").json()
    assert diff["old"]["number"] == 1
    prompt = next(part for part in diff["parts"] if part["field"] == "general_prompt")
    assert {"text": "-Old prompt", "kind": "del"} in prompt["lines"]
    assert {"text": "+Line two", "kind": "add"} in prompt["lines"]
    assert owner.get(f"/api/v1/prompt-versions/{versions[0]['id']}/diff/", {"against": "x"}).status_code == 400

    with django_capture_on_commit_callbacks(execute=True):
        rolled = owner.post(f"/api/v1/prompt-versions/{versions[1]['id']}/rollback/")
    assert rolled.status_code == 200, rolled.content
    assert rolled.json()["prompt_version"]["number"] == 3
    assert rolled.json()["prompt_version"]["rolled_back_from"] == versions[1]["id"]
    assert fake_retell.state.llms["llm_main"]["general_prompt"] == "Old prompt"


def test_a_viewer_reads_but_changes_nothing(company_a, retell_agents):
    viewer = Api(token_for(make_member(company_a, "viewer")))
    etag = viewer.get("/api/v1/agents/agent_abc123/")["ETag"]
    version = PromptVersion.objects.create(company=company_a, agent=retell_agents[0], number=1, author_label="t")

    for response in (viewer.patch("/api/v1/agents/agent_abc123/", {"name": "X"}, **{"If-Match": etag}),
                     viewer.post("/api/v1/agents/agent_abc123/deploy/"),
                     viewer.post("/api/v1/agents/sync/", {"company": company_a.pk}),
                     viewer.post(f"/api/v1/prompt-versions/{version.pk}/rollback/"),
                     viewer.post("/api/v1/custom-functions/", {"company": company_a.pk, "name": "x",
                                                               "url": "https://a.example.com"})):
        assert response.status_code == 403, response.content
    assert not SyncRun.objects.exists() and not CustomFunction.objects.exists()


def test_a_member_limited_to_one_agent_sees_and_changes_only_it(company_a, retell_agents):
    main, backup = retell_agents
    user = make_member(company_a, "editor", limited=True)
    assign_perm("retell_config.view_agent", user, main)
    assign_perm("retell_config.change_agent", user, main)
    limited = Api(token_for(user))

    assert [a["agent_id"] for a in limited.get("/api/v1/agents/").json()["results"]] == ["agent_abc123"]
    assert limited.get("/api/v1/agents/agent_xyz789/").status_code == 404
    etag = limited.get("/api/v1/agents/agent_abc123/")["ETag"]
    assert limited.patch("/api/v1/agents/agent_abc123/", {"name": "Mine"}, **{"If-Match": etag}).status_code == 200
    # Sync All touches every agent: refused to a member limited to some.
    assert limited.post("/api/v1/agents/sync/", {"company": company_a.pk}).status_code == 403
    hidden = SyncRun.objects.create(company=company_a, kind="agent_update", params={"agent_ids": ["agent_xyz789"]})
    seen = SyncRun.objects.create(company=company_a, kind="agent_update", params={"agent_ids": ["agent_abc123"]})
    runs = [r["id"] for r in limited.get("/api/v1/sync-runs/").json()["results"]]
    assert seen.pk in runs and hidden.pk not in runs
    assert limited.get(f"/api/v1/sync-runs/{hidden.pk}/").status_code == 404


def test_another_company_sees_nothing_of_alpha(company_a, company_b, retell_agents):
    beta = Api(token_for(make_member(company_b, "owner")))
    version = PromptVersion.objects.create(company=company_a, agent=retell_agents[0], number=1, author_label="t")
    run = SyncRun.objects.create(company=company_a, kind="sync_all")

    for path in ("agents", "prompt-versions", "sync-runs", "custom-functions"):
        assert beta.get(f"/api/v1/{path}/").json()["results"] == [], path
    for path in ("agents/agent_abc123/", f"prompt-versions/{version.pk}/", f"sync-runs/{run.pk}/",
                 f"prompt-versions/{version.pk}/diff/"):
        assert beta.get(f"/api/v1/{path}").status_code == 404, path
    assert beta.post("/api/v1/agents/agent_abc123/deploy/").status_code == 404
    assert beta.post("/api/v1/agents/sync/", {"company": company_a.pk}).status_code == 400
    assert not SyncRun.objects.exclude(pk=run.pk).exists()
