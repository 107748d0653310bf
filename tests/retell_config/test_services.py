"""The services against the fake Retell API: exactly the expected requests, unmanaged
tools left alone, prompt versions, drift, and the JSON backups."""

import json

import pytest
from django.core.exceptions import ValidationError

from appointments.function_specs import FUNCTION_SPECS
from audit.actor import Actor
from audit.models import ActivityLogEntry, AuditEntry
from retell_config import selectors, services
from retell_config.models import Agent, CustomFunction, PromptVersion, SyncRun, WebhookConfig

ACTOR = Actor.system("tests")
ENDPOINT = "https://voicedesk.example.com/api/mcp/retell/custom-function"
UNMANAGED = [
    {"type": "end_call", "name": "end_call", "description": "End the call when the caller says goodbye."},
    {"type": "custom", "name": "crm_lookup", "url": "https://crm.example.com/lookup", "method": "POST",
     "description": "Look the caller up", "parameters": {"type": "object", "properties": {}}, "timeout_ms": 5000,
     "x_vendor_field": {"kept": True}},
]


def seed_functions(company, agents):
    return services.custom_functions_seed(actor=ACTOR, company=company, agents=agents)


@pytest.mark.django_db
def test_deploy_writes_our_tools_and_leaves_unmanaged_tools_untouched(company_a, retell_agents, fake_retell,
                                                                      django_capture_on_commit_callbacks):
    main, backup = retell_agents
    fake_retell.state.llms["llm_main"]["general_tools"] = json.loads(json.dumps(UNMANAGED))
    seed_functions(company_a, [main])

    with django_capture_on_commit_callbacks(execute=True):
        run = services.custom_functions_deploy(actor=ACTOR, company=company_a, agents=[main])

    assert fake_retell.lines() == ["GET /get-retell-llm/llm_main", "PATCH /update-retell-llm/llm_main"]
    tools = fake_retell.requests[-1].body["general_tools"]
    assert tools[:2] == UNMANAGED
    ours = {t["name"]: t for t in tools[2:]}
    assert set(ours) == set(FUNCTION_SPECS)
    assert ours["cancel_appointment"]["type"] == "custom"
    assert ours["cancel_appointment"]["url"] == ENDPOINT
    assert ours["collect_appointment_information"]["parameters"] == FUNCTION_SPECS[
        "collect_appointment_information"]["parameters"]
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED and run.done == run.total == 1
    assert run.outcome["agent_abc123"]["status"] == "ok"
    assert CustomFunction.objects.filter(company=company_a, deployed_at__isnull=False).count() == 4


@pytest.mark.django_db
def test_redeploy_replaces_our_tools_and_drops_unassigned_ones(company_a, retell_agents, fake_retell,
                                                               django_capture_on_commit_callbacks):
    main, _ = retell_agents
    fake_retell.state.llms["llm_main"]["general_tools"] = json.loads(json.dumps(UNMANAGED))
    functions = seed_functions(company_a, [main])
    with django_capture_on_commit_callbacks(execute=True):
        services.custom_functions_deploy(actor=ACTOR, company=company_a, agents=[main])
    cancel = next(f for f in functions if f.name == "cancel_appointment")
    services.custom_function_save(actor=ACTOR, function=cancel, agents=[])

    with django_capture_on_commit_callbacks(execute=True):
        services.custom_functions_deploy(actor=ACTOR, company=company_a, agents=[main])

    names = [t["name"] for t in fake_retell.state.llms["llm_main"]["general_tools"]]
    assert names[:2] == ["end_call", "crm_lookup"]
    assert sorted(names[2:]) == sorted(set(FUNCTION_SPECS) - {"cancel_appointment"})


@pytest.mark.django_db
def test_args_at_root_functions_carry_function_and_agent_in_the_query(company_a, retell_agents, fake_retell,
                                                                       django_capture_on_commit_callbacks):
    main, _ = retell_agents
    function = CustomFunction(company=company_a, name="check_availability", url=ENDPOINT, args_at_root=True,
                              parameters=FUNCTION_SPECS["check_availability"]["parameters"])
    services.custom_function_save(actor=ACTOR, function=function, agents=[main])

    with django_capture_on_commit_callbacks(execute=True):
        services.custom_functions_deploy(actor=ACTOR, company=company_a, agents=[main])

    tool = fake_retell.requests[-1].body["general_tools"][0]
    assert tool["args_at_root"] is True
    assert tool["query_params"] == {"function": "check_availability", "agent_id": "agent_abc123"}


@pytest.mark.django_db
def test_a_custom_llm_agent_is_skipped_by_deploy_without_a_request(company_a, fake_retell,
                                                                    django_capture_on_commit_callbacks):
    agent = Agent.objects.create(company=company_a, agent_id="agent_socket", name="Socket", response_engine="custom-llm")
    seed_functions(company_a, [agent])

    with django_capture_on_commit_callbacks(execute=True):
        run = services.custom_functions_deploy(actor=ACTOR, company=company_a, agents=[agent])

    run.refresh_from_db()
    assert fake_retell.requests == []
    assert run.outcome["agent_socket"]["status"] == "skipped"


@pytest.mark.django_db
def test_a_tool_name_clash_with_an_unmanaged_tool_fails_that_agent_and_changes_nothing(
        company_a, retell_agents, fake_retell, django_capture_on_commit_callbacks):
    main, _ = retell_agents
    fake_retell.state.llms["llm_main"]["general_tools"] = [
        {"type": "check_availability_cal", "name": "check_availability", "cal_api_key": "x", "event_type_id": 1}]
    seed_functions(company_a, [main])

    with django_capture_on_commit_callbacks(execute=True):
        run = services.custom_functions_deploy(actor=ACTOR, company=company_a, agents=[main])

    run.refresh_from_db()
    assert fake_retell.lines() == ["GET /get-retell-llm/llm_main"]
    assert run.status == SyncRun.Status.FAILED
    assert "check_availability" in run.outcome["agent_abc123"]["detail"]


@pytest.mark.django_db
def test_webhook_update_pushes_url_and_retell_events_to_each_agent(company_a, retell_agents, fake_retell,
                                                                    django_capture_on_commit_callbacks):
    url = "https://hooks.example.com/retell"
    with django_capture_on_commit_callbacks(execute=True):
        config, run = services.webhook_update(actor=ACTOR, company=company_a, url=url,
                                              events=["call_started", "call_ended", "call_transferred"],
                                              secret="whsec-0123456789abcdef")

    assert sorted(fake_retell.lines()) == ["PATCH /update-agent/agent_abc123", "PATCH /update-agent/agent_xyz789"]
    for request in fake_retell.requests:
        assert request.body == {"webhook_url": url, "webhook_events": [
            "call_started", "call_ended", "transfer_started", "transfer_bridged", "transfer_cancelled",
            "transfer_ended"]}
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert WebhookConfig.objects.get(company=company_a).deployed_at is not None
    entry = AuditEntry.objects.filter(object_type="retell_config.webhookconfig").latest("id")
    assert entry.changes["secret"] == {"before": None, "after": "[redacted]"}
    assert "whsec-0123456789abcdef" not in json.dumps(list(AuditEntry.objects.values("changes")))


@pytest.mark.django_db
def test_webhook_for_selected_agents_pushes_only_to_them(company_a, retell_agents, fake_retell,
                                                         django_capture_on_commit_callbacks):
    main, _ = retell_agents
    with django_capture_on_commit_callbacks(execute=True):
        services.webhook_update(actor=ACTOR, company=company_a, url="https://hooks.example.com/r",
                                events=["call_ended"], apply_to="selected", agents=[main])

    assert fake_retell.lines() == ["PATCH /update-agent/agent_abc123"]


@pytest.mark.django_db
def test_unknown_webhook_events_are_refused_with_their_name(company_a, retell_agents):
    with pytest.raises(ValidationError, match="call_exploded"):
        services.webhook_update(actor=ACTOR, company=company_a, url="https://hooks.example.com/r",
                                events=["call_ended", "call_exploded"])


@pytest.mark.django_db
def test_agent_update_versions_the_prompt_and_pushes_llm_then_agent(company_a, retell_agents, fake_retell,
                                                                    django_capture_on_commit_callbacks):
    main, _ = retell_agents
    with django_capture_on_commit_callbacks(execute=True):
        agent, version, run = services.agent_update(
            actor=ACTOR, agent=main, note="friendlier",
            fields={"general_prompt": "You are the friendly reception.", "begin_message": "Guten Tag!",
                    "voice_id": "11labs-Myra", "language": "en-US"})

    # the new voice is checked against the voices Retell offers the company, then pushed
    assert fake_retell.lines() == ["GET /list-voices", "PATCH /update-retell-llm/llm_main",
                                   "PATCH /update-agent/agent_abc123"]
    assert fake_retell.requests[1].body == {"general_prompt": "You are the friendly reception.",
                                            "begin_message": "Guten Tag!"}
    pushed = fake_retell.requests[2].body
    assert pushed["voice_id"] == "11labs-Myra" and pushed["language"] == "en-US"
    assert pushed["response_engine"] == {"type": "retell-llm", "llm_id": "llm_main"}
    # the first tracked change keeps the old prompt as v1
    assert list(PromptVersion.objects.filter(agent=main).values_list("number", "general_prompt")) == [
        (2, "You are the friendly reception."), (1, "Old prompt")]
    assert version.number == 2 and version.note == "friendlier"


@pytest.mark.django_db
def test_a_rollback_is_a_new_version_with_the_old_text(company_a, retell_agents, fake_retell,
                                                       django_capture_on_commit_callbacks):
    main, _ = retell_agents
    services.agent_update(actor=ACTOR, agent=main, fields={"general_prompt": "Second"}, push=False)
    services.agent_update(actor=ACTOR, agent=main, fields={"general_prompt": "Third"}, push=False)
    first = PromptVersion.objects.get(agent=main, number=1)

    with django_capture_on_commit_callbacks(execute=True):
        agent, version, _ = services.prompt_rollback(actor=ACTOR, version=first)

    assert version.number == 4 and version.rolled_back_from == first
    assert agent.general_prompt == "Old prompt"
    assert fake_retell.state.llms["llm_main"]["general_prompt"] == "Old prompt"


@pytest.mark.django_db
def test_an_update_based_on_an_old_version_is_a_conflict(company_a, retell_agents):
    main, _ = retell_agents
    services.agent_update(actor=ACTOR, agent=main, fields={"general_prompt": "Second"}, push=False)

    with pytest.raises(services.Conflict):
        services.agent_update(actor=ACTOR, agent=main, fields={"general_prompt": "Mine"}, base_version=1,
                              push=False)


@pytest.mark.django_db
def test_sync_creates_new_agents_and_takes_changes_made_only_on_retell(company_a, retell_agents, fake_retell,
                                                                       django_capture_on_commit_callbacks):
    main, _ = retell_agents
    fake_retell.add_llm("llm_new", general_prompt="New agent prompt")
    fake_retell.add_agent("agent_new", llm_id="llm_new", agent_name="Night Line", voice_id="ErXwobaYiN019PkySvjV",
                          language="en-US")
    fake_retell.add_phone_number("+493083793371", agent_id="agent_new")
    fake_retell.add_phone_number("+493083793369", agent_id="agent_abc123")
    fake_retell.add_phone_number("+493083793370", agent_id="agent_xyz789")
    with django_capture_on_commit_callbacks(execute=True):
        services.sync_all(actor=ACTOR, company=company_a)         # first sync: the base
    fake_retell.state.agents["agent_abc123"]["agent_name"] = "Renamed on Retell"

    with django_capture_on_commit_callbacks(execute=True):
        run = services.sync_all(actor=ACTOR, company=company_a)

    run.refresh_from_db()
    new = Agent.objects.get(agent_id="agent_new")
    assert (new.company, new.name, new.general_prompt, new.phone_numbers, new.llm_id) == (
        company_a, "Night Line", "New agent prompt", ["+493083793371"], "llm_new")
    assert Agent.objects.get(pk=main.pk).name == "Renamed on Retell"
    assert run.status == SyncRun.Status.SUCCEEDED and run.done == run.total == 3
    assert "name" not in run.drift.get("agent_abc123", {})


@pytest.mark.django_db
def test_sync_reports_drift_field_by_field_and_keeps_local_changes(company_a, retell_agents, fake_retell,
                                                                   django_capture_on_commit_callbacks):
    main, _ = retell_agents
    fake_retell.add_phone_number("+493083793369", agent_id="agent_abc123")
    fake_retell.add_phone_number("+493083793370", agent_id="agent_xyz789")
    with django_capture_on_commit_callbacks(execute=True):
        services.sync_all(actor=ACTOR, company=company_a)
    services.agent_update(actor=ACTOR, agent=main, fields={"general_prompt": "Local edit"}, push=False)
    fake_retell.state.llms["llm_main"]["general_prompt"] = "Remote edit"

    with django_capture_on_commit_callbacks(execute=True):
        run = services.sync_all(actor=ACTOR, company=company_a)

    run.refresh_from_db()
    assert run.drift["agent_abc123"] == {"general_prompt": {"local": "Local edit", "remote": "Remote edit"}}
    assert run.outcome["agent_abc123"]["status"] == "drift"
    assert Agent.objects.get(pk=main.pk).general_prompt == "Local edit"
    assert ActivityLogEntry.objects.filter(company=company_a, kind="retell.sync_all.finished").exists()


@pytest.mark.django_db
def test_after_drift_the_admin_pulls_remote_or_pushes_local(company_a, retell_agents, fake_retell,
                                                            django_capture_on_commit_callbacks):
    main, backup = retell_agents
    with django_capture_on_commit_callbacks(execute=True):
        services.sync_all(actor=ACTOR, company=company_a)
    services.agent_update(actor=ACTOR, agent=main, fields={"general_prompt": "Local edit"}, push=False)
    services.agent_update(actor=ACTOR, agent=backup, fields={"general_prompt": "Local backup"}, push=False)
    fake_retell.state.llms["llm_main"]["general_prompt"] = "Remote edit"
    fake_retell.state.llms["llm_backup"]["general_prompt"] = "Remote backup"
    with django_capture_on_commit_callbacks(execute=True):
        services.sync_all(actor=ACTOR, company=company_a)

    services.drift_resolve(actor=ACTOR, agent=Agent.objects.get(pk=main.pk), direction="pull")
    with django_capture_on_commit_callbacks(execute=True):
        services.drift_resolve(actor=ACTOR, agent=Agent.objects.get(pk=backup.pk), direction="push")

    assert Agent.objects.get(pk=main.pk).general_prompt == "Remote edit"
    assert fake_retell.state.llms["llm_backup"]["general_prompt"] == "Local backup"
    with django_capture_on_commit_callbacks(execute=True):
        run = services.sync_all(actor=ACTOR, company=company_a)
    run.refresh_from_db()
    assert run.drift == {}


@pytest.mark.django_db
def test_a_sync_with_retell_down_fails_the_run_and_says_why(settings, company_a, retell_agents, fake_retell,
                                                             django_capture_on_commit_callbacks):
    fake_retell.fail(503, times=100)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.sync_all(actor=ACTOR, company=company_a)

    run.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert "503" in run.errors[0]
    assert fake_retell.lines() == ["POST /v2/list-agents"] * (1 + settings.RETELL_MAX_RETRIES)


@pytest.mark.django_db
def test_the_periodic_sync_runs_every_company_with_a_key(company_a, company_b, fake_retell,
                                                         django_capture_on_commit_callbacks):
    from retell_config.tasks import sync_all_companies

    with django_capture_on_commit_callbacks(execute=True):
        count = sync_all_companies()

    assert count == 2
    assert set(SyncRun.objects.values_list("company_id", "kind")) == {
        (company_a.pk, "sync_all"), (company_b.pk, "sync_all")}
    assert SyncRun.objects.filter(status="succeeded").count() == 2


@pytest.mark.django_db
def test_functions_export_and_import_round_trip(company_a, company_b, retell_agents):
    main, _ = retell_agents
    seed_functions(company_a, [main])
    backup = services.functions_export(company=company_a)
    Agent.objects.create(company=company_b, agent_id="agent_b1", name="B")

    counts = services.functions_import(actor=ACTOR, company=company_b, document=backup)

    assert sorted(counts["created"]) == sorted(FUNCTION_SPECS)
    assert counts["unknown_agents"] == ["agent_abc123"] * 4
    again = services.functions_import(actor=ACTOR, company=company_a, document=backup)
    assert sorted(again["unchanged"]) == sorted(FUNCTION_SPECS)
    assert selectors.custom_function_schema(company=company_b, name="cancel_appointment") == \
        FUNCTION_SPECS["cancel_appointment"]["parameters"]


@pytest.mark.django_db
def test_export_as_retell_tools_and_as_elevenlabs_webhook_tools(company_a, retell_agents):
    main, _ = retell_agents
    seed_functions(company_a, [main])

    retell = services.functions_export(company=company_a, fmt="retell")
    eleven = services.functions_export_elevenlabs(actor=ACTOR, company=company_a, agent=main)

    assert {t["type"] for t in retell["general_tools"]} == {"custom"}
    config = next(t["tool_config"] for t in eleven["tools"] if t["tool_config"]["name"] == "cancel_appointment")
    assert config["type"] == "webhook"
    assert config["api_schema"]["url"] == ENDPOINT and config["api_schema"]["method"] == "POST"
    assert config["api_schema"]["request_body_schema"]["type"] == "object"
    assert config["api_schema"]["query_params_schema"]["properties"]["function"]["constant_value"] == \
        "cancel_appointment"
    assert config["pre_tool_speech"] in ("auto", "force", "off") and config["interruption_mode"] == "allow"
    assert not {"disable_interruptions", "force_pre_tool_speech"} & set(config)


@pytest.mark.django_db
def test_import_refuses_a_bad_schema_naming_the_function_and_the_problem(company_a):
    document = {"format": "voicedesk.custom_functions", "version": 1, "functions": [
        {"name": "book", "url": ENDPOINT, "parameters": {"properties": {"date": {"type": "string"}}}},
        {"name": "bad name!", "url": ENDPOINT},
    ]}

    with pytest.raises(ValidationError) as caught:
        services.functions_import(actor=ACTOR, company=company_a, document=document)

    text = " ".join(caught.value.messages)
    assert 'functions[0] (book): parameters: parameters: the top level needs "type": "object"' in text
    assert "functions[1] (bad name!): name:" in text
    assert not CustomFunction.objects.filter(company=company_a).exists()


@pytest.mark.django_db
def test_custom_function_schema_is_none_for_another_companys_function(company_a, company_b, retell_agents):
    seed_functions(company_a, retell_agents)
    assert selectors.custom_function_schema(company=company_b, name="cancel_appointment") is None
    assert selectors.custom_function_schema(company=company_a, name="cancel_appointment")["type"] == "object"


@pytest.mark.django_db
def test_a_failed_update_during_deploy_is_sent_once_and_reported(company_a, retell_agents, fake_retell,
                                                                 django_capture_on_commit_callbacks):
    main, _ = retell_agents
    seed_functions(company_a, [main])
    fake_retell.fail(503, method="PATCH")

    with django_capture_on_commit_callbacks(execute=True):
        run = services.custom_functions_deploy(actor=ACTOR, company=company_a, agents=[main])

    run.refresh_from_db()
    assert fake_retell.lines() == ["GET /get-retell-llm/llm_main", "PATCH /update-retell-llm/llm_main"]
    assert run.status == SyncRun.Status.FAILED and "503" in run.outcome["agent_abc123"]["detail"]
