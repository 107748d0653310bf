"""The MCP tools for saved scenarios (listScenarios, runScenario, getScenarioRun), driven by the
`mcp` SDK's own client over real HTTP: a run started through MCP is made by a real Celery worker
over this server's socket and read back; who may list, read and run; another company's rows."""

import asyncio
import uuid

import pytest
from guardian.shortcuts import assign_perm

from audit.models import AuditEntry
from config.celery import app as celery_app
from retell_config import gateway
from retell_config.models import Agent
from tenants.demo import demo_seed
from tests.factories import make_member
from tests.integrations.test_mcp_server import session_run, token_for, tool
from tests.test_e2e_webhooks import worker  # noqa: F401 (a fixture)
from tests.voice.conftest import live_db  # noqa: F401 (a fixture)
from voice.models import Scenario, ScenarioRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def mcp_url(http_server):
    return f"{http_server}/mcp"


async def until_finished(session, company_id: int, run_ids: list[int], seconds: float = 90) -> list[dict]:
    """Poll getScenarioRun, as an assistant does, until every run has finished."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        runs = [(await tool(session, "getScenarioRun", company_id=company_id, scenario_run_id=run_id))
                .structured_content for run_id in run_ids]
        if all(run["finished"] for run in runs) or asyncio.get_running_loop().time() > deadline:
            return runs
        await asyncio.sleep(0.5)


# --- a run through a real worker ---------------------------------------------------------------------
@pytest.fixture
def demo(live_db, monkeypatch):  # noqa: F811
    monkeypatch.setenv("VOICEDESK_DEMO_PASSWORD", "demo-pass-for-tests")
    demo_seed()
    return Agent.objects.select_related("company").get(agent_id="agent_dental001")


@pytest.fixture
def scenario_worker(http_server, eager_celery, monkeypatch, request):
    """A real Celery worker (tasks leave this process) whose scenario calls dial this server's socket."""
    celery_app.conf.task_always_eager = False  # eager_celery (requested first) puts it back
    monkeypatch.setenv("RETELL_LLM_WEBSOCKET_URL", http_server.replace("http://", "ws://") + "/retell-llm")
    return request.getfixturevalue("worker")


@pytest.mark.e2e
def test_runs_started_through_mcp_are_made_by_the_worker_and_read_back_with_each_verdict(
        mcp_url, demo, scenario_worker):
    agent = demo
    failing = Scenario.objects.get(agent=agent, name="Opening hours, then a person")
    failing.expect_transfer = "no"
    failing.save()
    owner = make_member(agent.company, "owner")
    cid = agent.company_id

    async def steps(session):
        listed = await tool(session, "listScenarios", company_id=cid, agent_id=agent.agent_id)
        started = await tool(session, "runScenario", company_id=cid, agent_id=agent.agent_id, all=True)
        ids = [run["scenario_run_id"] for run in started.structured_content["scenario_runs"]]
        finished = await until_finished(session, cid, ids)
        again = await tool(session, "listScenarios", company_id=cid, agent_id=agent.agent_id)
        return listed, started, finished, again

    _, (listed, started, finished, again) = session_run(mcp_url, token_for(owner), steps)

    assert not listed.is_error and [s["name"] for s in listed.structured_content["scenarios"]] == [
        "Book a teeth cleaning on Wednesday", "Opening hours, then a person"]
    assert listed.structured_content["scenarios"][1]["expectations"]["transfer"] == "no"
    assert not started.is_error and len({r["batch"] for r in started.structured_content["scenario_runs"]}) == 1
    assert [r["status"] for r in started.structured_content["scenario_runs"]] == ["queued", "queued"]
    by_name = {run["scenario"]: run for run in finished}
    booking, hours = by_name["Book a teeth cleaning on Wednesday"], by_name["Opening hours, then a person"]
    assert booking["status"] == "passed", booking
    assert booking["progress"] == booking["total"] == 5 and all(r["passed"] for r in booking["results"])
    assert booking["transcript"][0]["role"] == "agent" and booking["call_id"]
    assert hours["status"] == "failed"
    assert [(r["expectation"], r["reason"]) for r in hours["results"] if not r["passed"]] == [
        ("The agent does not transfer the call", "the agent transferred the call to +12125550134")]
    assert {s["name"]: s["last_run"]["status"] for s in again.structured_content["scenarios"]} == {
        "Book a teeth cleaning on Wednesday": "passed", "Opening hours, then a person": "failed"}
    # The admin's service made the runs: its audit entries name the token, as the gateway's do.
    entries = AuditEntry.objects.filter(action="scenario.run", company_id=cid)
    assert entries.count() == 2 and {e.actor_kind for e in entries} == {"token"}
    assert all(e.actor_label.startswith("token:assistant#") for e in entries)
    assert {r.triggered_by for r in ScenarioRun.objects.all()} == {entries[0].actor_label}


# --- who may do what -------------------------------------------------------------------------------------
@pytest.fixture
def scenarios(company_a, company_b, settings):
    """Two agents of company A with a scenario each (and a finished run of the first), one of company B."""
    settings.RETELL_LLM_WEBSOCKET_URL = "ws://127.0.0.1:1/retell-llm"  # nobody answers: an eager run errs, quickly
    main = Agent.objects.create(company=company_a, agent_id="agent_main", name="Main")
    other = Agent.objects.create(company=company_a, agent_id="agent_other", name="Other")
    theirs = Agent.objects.create(company=company_b, agent_id="agent_theirs", name="Theirs")
    mine = Scenario.objects.create(company=company_a, agent=main, name="Hours", script="Wann haben Sie geöffnet?")
    hidden = Scenario.objects.create(company=company_a, agent=other, name="Other hours", script="Hallo")
    secret = Scenario.objects.create(company=company_b, agent=theirs, name="Theirs: secret booking", script="Hi")
    return {
        "main": main, "other": other, "theirs": theirs, "mine": mine, "hidden": hidden, "secret": secret,
        "mine_run": ScenarioRun.objects.create(company=company_a, scenario=mine, batch=uuid.uuid4(),
                                               status="passed", progress=1, total=1,
                                               results=[{"expectation": "x", "passed": True, "reason": "y"}]),
        "hidden_run": ScenarioRun.objects.create(company=company_a, scenario=hidden, batch=uuid.uuid4()),
        "secret_run": ScenarioRun.objects.create(company=company_b, scenario=secret, batch=uuid.uuid4()),
    }


def error_of(result) -> tuple[int, str]:
    assert result.is_error, result.content
    error = result.structured_content["error"]
    return error["code"], error["data"]["reason"]


def test_a_viewer_may_list_and_read_runs_but_not_start_one(mcp_url, company_a, scenarios):
    viewer = make_member(company_a, "viewer")
    cid = company_a.pk

    async def steps(session):
        return (await tool(session, "listScenarios", company_id=cid, agent_id="agent_main"),
                await tool(session, "getScenarioRun", company_id=cid, scenario_run_id=scenarios["mine_run"].pk),
                await tool(session, "runScenario", company_id=cid, agent_id="agent_main",
                           scenario_id=scenarios["mine"].pk))

    _, (listed, read, run) = session_run(mcp_url, token_for(viewer), steps)

    assert [s["name"] for s in listed.structured_content["scenarios"]] == ["Hours"]
    assert listed.structured_content["scenarios"][0]["last_run"]["status"] == "passed"
    assert read.structured_content["results"] == [{"expectation": "x", "passed": True, "reason": "y"}]
    assert error_of(run)[0] == gateway.PERMISSION_DENIED
    assert ScenarioRun.objects.count() == 3 and not AuditEntry.objects.filter(action="scenario.run").exists()


def test_a_member_limited_to_one_agent_reaches_only_its_scenarios_and_runs(mcp_url, company_a, scenarios):
    member = make_member(company_a, "editor", limited=True)
    for action in ("view", "change"):
        assign_perm(f"retell_config.{action}_agent", member, scenarios["main"])
    cid = company_a.pk

    async def steps(session):
        return (await tool(session, "listScenarios", company_id=cid, agent_id="agent_other"),
                await tool(session, "runScenario", company_id=cid, agent_id="agent_other", all=True),
                await tool(session, "getScenarioRun", company_id=cid, scenario_run_id=scenarios["hidden_run"].pk),
                await tool(session, "runScenario", company_id=cid, agent_id="agent_main",
                           scenario_id=scenarios["hidden"].pk),
                await tool(session, "runScenario", company_id=cid, agent_id="agent_main", all=True))

    _, (listed, run_other, read_other, run_hidden, run_mine) = session_run(mcp_url, token_for(member), steps)

    assert error_of(listed)[0] == gateway.NOT_FOUND
    assert error_of(run_other)[0] == gateway.NOT_FOUND
    assert error_of(read_other)[0] == gateway.NOT_FOUND
    assert error_of(run_hidden) == (gateway.NOT_FOUND, f"no scenario {scenarios['hidden'].pk} of agent agent_main")
    assert not run_mine.is_error, run_mine.content
    [started] = run_mine.structured_content["scenario_runs"]
    run = ScenarioRun.objects.get(pk=started["scenario_run_id"])
    assert run.scenario == scenarios["mine"] and run.status == "error"  # eager Celery; the socket refused
    assert not ScenarioRun.objects.filter(scenario=scenarios["hidden"]).exclude(pk=scenarios["hidden_run"].pk)


def test_another_companys_agent_scenario_and_run_are_refused_and_never_shown(
        mcp_url, owner_a, company_a, company_b, scenarios):
    cid = company_a.pk

    async def steps(session):
        return (await tool(session, "listScenarios", company_id=cid, agent_id="agent_theirs"),
                await tool(session, "listScenarios", company_id=company_b.pk, agent_id="agent_theirs"),
                await tool(session, "runScenario", company_id=cid, agent_id="agent_main",
                           scenario_id=scenarios["secret"].pk),
                await tool(session, "runScenario", company_id=company_b.pk, agent_id="agent_theirs", all=True),
                await tool(session, "getScenarioRun", company_id=cid, scenario_run_id=scenarios["secret_run"].pk),
                await tool(session, "getScenarioRun", company_id=company_b.pk,
                           scenario_run_id=scenarios["secret_run"].pk))

    _, results = session_run(mcp_url, token_for(owner_a), steps)

    assert [error_of(r)[0] for r in results] == [
        gateway.NOT_FOUND, gateway.PERMISSION_DENIED, gateway.NOT_FOUND, gateway.PERMISSION_DENIED,
        gateway.NOT_FOUND, gateway.PERMISSION_DENIED]
    for result in results:
        assert "secret" not in result.content[0].text and "Theirs" not in result.content[0].text
    assert not ScenarioRun.objects.filter(company=company_b).exclude(pk=scenarios["secret_run"].pk).exists()


def test_run_scenario_wants_one_scenario_or_all_and_an_agent_with_scenarios(mcp_url, owner_a, company_a, scenarios):
    empty = Agent.objects.create(company=company_a, agent_id="agent_empty", name="Empty")
    cid = company_a.pk

    async def steps(session):
        return (await tool(session, "runScenario", company_id=cid, agent_id="agent_main"),
                await tool(session, "runScenario", company_id=cid, agent_id="agent_main",
                           scenario_id=scenarios["mine"].pk, all=True),
                await tool(session, "runScenario", company_id=cid, agent_id="agent_main", scenario_id="1"),
                await tool(session, "runScenario", company_id=cid, agent_id=empty.agent_id, all=True),
                await tool(session, "getScenarioRun", company_id=cid))

    _, (neither, both, mistyped, no_scenarios, no_id) = session_run(mcp_url, token_for(owner_a), steps)

    for result, param, reason in (
            (neither, "scenario_id", "give either scenario_id or all: true (not both)"),
            (both, "scenario_id", "give either scenario_id or all: true (not both)"),
            (mistyped, "scenario_id", "must be an integer"),
            (no_id, "scenario_run_id", "is required")):
        assert result.is_error and result.structured_content["error"]["code"] == -32602
        assert result.structured_content["error"]["data"] == {"param": param, "reason": reason}
    assert error_of(no_scenarios) == (gateway.NOT_FOUND, "agent agent_empty has no scenarios (add them in the admin)")
    assert ScenarioRun.objects.count() == 3


def test_the_scenario_tools_are_listed_with_their_schemas(mcp_url, owner_a):
    async def steps(session):
        return {t.name: t for t in (await session.list_tools()).tools}

    _, tools = session_run(mcp_url, token_for(owner_a), steps)

    assert tools["listScenarios"].input_schema["required"] == ["company_id", "agent_id"]
    assert set(tools["runScenario"].input_schema["properties"]) == {"company_id", "agent_id", "scenario_id", "all"}
    assert tools["runScenario"].annotations.read_only_hint is False
    assert tools["getScenarioRun"].annotations.read_only_hint is True
    assert tools["getScenarioRun"].input_schema["required"] == ["company_id", "scenario_run_id"]
