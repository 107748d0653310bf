"""A member limited to granted agents changes only what belongs to those agents, whichever
interface it uses: the services refuse a write that touches another agent, and the admin, the
gateway and the configuration page pass the refusal on (issue 11, item 4)."""

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from guardian.shortcuts import assign_perm

from audit.actor import Actor
from audit.models import AuditEntry
from retell_config import services
from retell_config.models import CustomFunction, SyncRun, WebhookConfig
from tests.factories import make_member
from tests.retell_config.test_gateway import Gateway, token_for

SYSTEM = Actor.system("tests")
ENDPOINT = "https://voicedesk.example.com/api/mcp/retell/custom-function"
BACKUP_FORMAT = "voicedesk.custom_functions"


def linked(function) -> set[str]:
    return set(CustomFunction.objects.get(pk=function.pk).agents.values_list("agent_id", flat=True))


def function_document(name: str, agents: list[str]) -> dict:
    return {"format": BACKUP_FORMAT, "version": 1,
            "functions": [{"name": name, "url": ENDPOINT, "agents": agents}]}


@pytest.fixture
def editor(company_a, retell_agents):
    """An editor limited to the main agent (view and change); the backup agent is not granted."""
    main, _ = retell_agents
    user = make_member(company_a, "editor", limited=True)
    assign_perm("retell_config.view_agent", user, main)
    assign_perm("retell_config.change_agent", user, main)
    return user


@pytest.fixture
def editor_gateway(client, editor):
    return Gateway(client, token_for(editor))


@pytest.fixture
def shared_function(company_a, retell_agents):
    """A function the owner linked to both agents."""
    function = CustomFunction(company=company_a, name="check_availability", url=ENDPOINT)
    return services.custom_function_save(actor=SYSTEM, function=function, agents=list(retell_agents))


def actor_of(user) -> Actor:
    return Actor(kind="user", label=user.username, user=user)


# --- the gateway ---------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("agent_id", ["agent_xyz789", "agent_nowhere"], ids=["not_granted", "not_existing"])
def test_import_by_a_limited_editor_naming_an_agent_it_may_not_change_is_refused(editor_gateway, company_a,
                                                                                 agent_id):
    error = editor_gateway.call("retell_config.importFunctions", {
        "company_id": company_a.pk, "document": function_document("book_appointment", [agent_id])})["error"]

    assert error["code"] == -32003
    assert "you may not change" in error["data"]["reason"]
    assert not CustomFunction.objects.filter(name="book_appointment").exists()


@pytest.mark.django_db
def test_deploy_with_a_definition_naming_a_non_granted_agent_is_refused(editor_gateway, company_a):
    error = editor_gateway.call("retell_config.deployCustomFunctions", {
        "company_id": company_a.pk, "agent_ids": ["agent_abc123"],
        "functions": {"book_appointment": {"agents": ["agent_xyz789"]}}})["error"]

    assert error["code"] == -32003
    assert not CustomFunction.objects.filter(name="book_appointment").exists()
    assert not SyncRun.objects.exists()


@pytest.mark.django_db
def test_import_by_a_limited_editor_keeps_the_links_to_agents_it_cannot_see(editor_gateway, company_a,
                                                                           shared_function):
    result = editor_gateway.call("retell_config.importFunctions", {
        "company_id": company_a.pk, "document": function_document("check_availability", ["agent_abc123"])})

    assert result["result"]["unchanged"] == ["check_availability"]
    assert linked(shared_function) == {"agent_abc123", "agent_xyz789"}


@pytest.mark.django_db
def test_unlinking_an_agent_the_editor_may_only_view_is_refused(editor, editor_gateway, company_a, retell_agents,
                                                               shared_function):
    _, backup = retell_agents
    assign_perm("retell_config.view_agent", editor, backup)

    error = editor_gateway.call("retell_config.importFunctions", {
        "company_id": company_a.pk, "document": function_document("check_availability", ["agent_abc123"])})["error"]

    assert error["code"] == -32003
    assert linked(shared_function) == {"agent_abc123", "agent_xyz789"}


@pytest.mark.django_db
def test_a_limited_editor_links_and_unlinks_its_own_agent(editor_gateway, company_a, shared_function):
    unlinked = editor_gateway.call("retell_config.importFunctions", {
        "company_id": company_a.pk, "document": function_document("check_availability", [])})
    assert unlinked["result"]["updated"] == ["check_availability"]
    assert linked(shared_function) == {"agent_xyz789"}

    relinked = editor_gateway.call("retell_config.deployCustomFunctions", {
        "company_id": company_a.pk, "agent_ids": ["agent_abc123"], "functions": ["check_availability"]})
    assert relinked["result"]["sync_run"]["kind"] == "functions_deploy"
    assert linked(shared_function) == {"agent_abc123", "agent_xyz789"}


# --- the admin ----------------------------------------------------------------------------------

def function_form(function, agents) -> dict:
    return {"name": function.name, "description": "Changed in the admin", "parameters": "{}", "url": function.url,
            "method": "POST", "query_params": "{}", "timeout_ms": "120000", "speak_during_execution": "on",
            "speak_after_execution": "on", "agents": [a.pk for a in agents]}


@pytest.mark.django_db
def test_saving_a_function_in_the_admin_keeps_the_agents_the_editor_cannot_see(client, editor, retell_agents,
                                                                              shared_function):
    main, _ = retell_agents
    client.force_login(editor)
    url = reverse("admin:retell_config_customfunction_change", args=[shared_function.pk])
    offered = client.get(url).context["adminform"].form.fields["agents"].queryset

    response = client.post(url, function_form(shared_function, [main]))

    assert list(offered) == [main]
    assert response.status_code == 302
    assert CustomFunction.objects.get(pk=shared_function.pk).description == "Changed in the admin"
    assert linked(shared_function) == {"agent_abc123", "agent_xyz789"}


@pytest.mark.django_db
def test_the_company_webhook_for_all_agents_is_refused_to_a_limited_editor_in_the_admin(client, editor,
                                                                                       company_a, retell_agents):
    client.force_login(editor)

    response = client.post(reverse("admin:retell_config_webhookconfig_add"), {
        "company": company_a.pk, "url": "https://attacker.example/hook", "events": '["call_ended"]',
        "secret": "", "apply_to": "all"})

    assert response.status_code == 403
    assert not WebhookConfig.objects.exists()
    assert not SyncRun.objects.exists()


@pytest.mark.django_db
def test_changing_a_webhook_that_applies_to_all_agents_is_refused_to_a_limited_editor(client, editor, company_a,
                                                                                     retell_agents):
    main, _ = retell_agents
    config, _ = services.webhook_update(actor=SYSTEM, company=company_a, url="https://hooks.example.com/retell",
                                        events=["call_ended"], push=False)
    client.force_login(editor)

    response = client.post(reverse("admin:retell_config_webhookconfig_change", args=[config.pk]), {
        "url": "https://attacker.example/hook", "events": '["call_ended"]', "secret": "",
        "apply_to": "selected", "agents": [main.pk]})

    assert response.status_code == 403
    config.refresh_from_db()
    assert (config.url, config.apply_to) == ("https://hooks.example.com/retell", "all")
    assert not SyncRun.objects.exists()


# --- the services, for every adapter to come --------------------------------------------------------

@pytest.mark.django_db
def test_the_services_refuse_a_limited_editor_every_write_that_touches_another_agent(editor, company_a,
                                                                                    retell_agents, shared_function):
    main, backup = retell_agents
    actor = actor_of(editor)
    other = CustomFunction(company=company_a, name="cancel_appointment", url=ENDPOINT)
    audited = AuditEntry.objects.count()

    writes = {
        "link on save": lambda: services.custom_function_save(actor=actor, function=other, agents=[backup]),
        "deploy to another agent": lambda: services.custom_functions_deploy(actor=actor, company=company_a,
                                                                            agents=[backup]),
        "webhook for all agents": lambda: services.webhook_update(actor=actor, company=company_a,
                                                                  url="https://x.example/h", events=["call_ended"]),
        "webhook for another agent": lambda: services.webhook_update(
            actor=actor, company=company_a, url="https://x.example/h", events=["call_ended"],
            apply_to="selected", agents=[backup]),
        "sync all": lambda: services.sync_all(actor=actor, company=company_a),
        "update another agent": lambda: services.agent_update(actor=actor, agent=backup, fields={"name": "X"}),
        "rotate another agent's token": lambda: services.socket_token_rotate(actor=actor, agent=backup),
        "resolve another agent's drift": lambda: services.drift_resolve(actor=actor, agent=backup,
                                                                        direction="push"),
    }
    refused = {}
    for name, write in writes.items():
        try:
            write()
        except PermissionDenied as exc:
            refused[name] = str(exc)

    assert sorted(refused) == sorted(writes)
    assert AuditEntry.objects.count() == audited
    assert not SyncRun.objects.exists()
    assert not CustomFunction.objects.filter(name="cancel_appointment").exists()


@pytest.mark.django_db
def test_a_limited_editors_save_of_a_functions_agents_keeps_the_agents_it_cannot_see(editor, retell_agents,
                                                                                   shared_function):
    main, _ = retell_agents
    shared_function.description = "Checks free times"

    services.custom_function_save(actor=actor_of(editor), function=shared_function, agents=[main])
    services.custom_function_save(actor=actor_of(editor), function=shared_function, agents=[])

    assert CustomFunction.objects.get(pk=shared_function.pk).description == "Checks free times"
    assert linked(shared_function) == {"agent_xyz789"}


@pytest.mark.django_db
def test_a_limited_admin_may_not_delete_a_function_linked_to_an_agent_it_may_not_change(company_a, retell_agents,
                                                                                      shared_function):
    main, _ = retell_agents
    admin = make_member(company_a, "admin", limited=True)
    assign_perm("retell_config.view_agent", admin, main)
    assign_perm("retell_config.change_agent", admin, main)

    with pytest.raises(PermissionDenied):
        services.custom_function_delete(actor=actor_of(admin), function=shared_function)

    assert CustomFunction.objects.filter(pk=shared_function.pk).exists()


# --- every write path, tried as a limited editor against the agent it was not granted ----------------

def rpc(method: str, **params):
    def attempt(ctx):
        error = ctx.gateway.call(method, {"company_id": ctx.company.pk, **params}).get("error", {})
        return error.get("code") in (-32003, -32004)
    return method, attempt


def post(url_name: str, *, pk: str | None = None, expect: int = 403, **data):
    def attempt(ctx):
        args = [getattr(ctx, pk).pk] if pk else []
        def value_of(value):  # "@main": the pk of ctx.main
            if isinstance(value, list):
                return [value_of(v) for v in value]
            return getattr(ctx, value[1:]).pk if isinstance(value, str) and value.startswith("@") else value

        values = {key: value_of(value) for key, value in data.items()}
        response = ctx.client.post(reverse(url_name, args=args), {"company": ctx.company.pk, **values})
        if expect == 200:  # a form error: the form offers no agent the editor cannot see
            return response.status_code == 200 and "Select a valid choice" in response.content.decode()
        return response.status_code == expect
    return url_name, attempt


WRITE_PATHS = {
    "gateway: webhook for all agents": rpc("retell_config.updateWebhook", webhook_url="https://a.example/h",
                                           events=["call_ended"]),
    "gateway: webhook for the other agent": rpc("retell_config.updateWebhook", webhook_url="https://a.example/h",
                                                events=["call_ended"], agent_ids=["agent_xyz789"]),
    "gateway: webhook for its own agent while it applies to all": rpc(
        "retell_config.updateWebhook", webhook_url="https://a.example/h", events=["call_ended"],
        agent_ids=["agent_abc123"]),
    "gateway: deploy to the other agent": rpc("retell_config.deployCustomFunctions", agent_ids=["agent_xyz789"]),
    "gateway: deploy a definition linking the other agent": rpc(
        "retell_config.deployCustomFunctions", agent_ids=["agent_abc123"],
        functions={"book_appointment": {"agents": ["agent_xyz789"]}}),
    "gateway: update the other agent": rpc("retell_config.updateAgent", agent_id="agent_xyz789",
                                           fields={"name": "Taken over"}),
    "gateway: sync all": rpc("retell_config.syncAll"),
    "gateway: import linking the other agent": rpc(
        "retell_config.importFunctions", document=function_document("check_availability", ["agent_xyz789"])),
    "page: webhook for all agents": post("retell-webhook", url="https://a.example/h", events=["call_ended"],
                                         apply_to="all"),
    "page: webhook for its own agent while it applies to all": post(
        "retell-webhook", url="https://a.example/h", events=["call_ended"], apply_to="selected", agents=["@main"]),
    "page: sync all": post("retell-sync"),
    "page: deploy to the other agent": post("retell-agent-deploy", pk="backup", expect=404),
    "page: resolve the other agent's drift": post("retell-resolve", pk="backup", expect=404, direction="push"),
    "page: edit the other agent's prompt": post("retell-prompt", pk="backup", expect=404, general_prompt="Mine now"),
    "page: roll the other agent's prompt back": ("retell-rollback", lambda ctx: ctx.client.post(
        reverse("retell-rollback", args=[ctx.backup.pk, ctx.version.pk]),
        {"company": ctx.company.pk}).status_code == 404),
    "page: link a function to the other agent": post("retell-function", pk="function", expect=200,
                                                     name="check_availability", url=ENDPOINT, method="POST",
                                                     parameters="{}", query_params="{}", timeout_ms="120000",
                                                     agents=["@main", "@backup"]),
    "page: a new function linked to the other agent": post("retell-function-new", expect=200, name="new_one",
                                                           url=ENDPOINT, method="POST", parameters="{}",
                                                           query_params="{}", timeout_ms="120000",
                                                           agents=["@backup"]),
    "page: delete a function linked to the other agent": post("retell-function-delete", pk="function"),
    "page: import linking the other agent": ("retell-functions-import", lambda ctx: ctx.client.post(
        reverse("retell-functions-import"), {"company": ctx.company.pk, "document": ctx.upload(
            function_document("check_availability", ["agent_xyz789"]))}).status_code == 403),
    "admin: webhook for all agents": ("admin webhookconfig change", lambda ctx: ctx.client.post(
        reverse("admin:retell_config_webhookconfig_change", args=[ctx.config.pk]),
        {"url": "https://a.example/h", "events": '["call_ended"]', "secret": "", "apply_to": "all"}
    ).status_code == 403),
    "admin: link a function to the other agent": ("admin customfunction change", lambda ctx: "agents" in ctx.client.post(
        reverse("admin:retell_config_customfunction_change", args=[ctx.function.pk]),
        function_form(ctx.function, [ctx.main, ctx.backup])).context["adminform"].form.errors),
}

# What the gateway and the page offer that writes nothing.
GATEWAY_READS = {"retell_config.listAgents", "retell_config.getAgent", "retell_config.getSyncRun",
                 "retell_config.exportFunctions"}
PAGE_READS = {"retell-dashboard", "retell-run", "retell-functions", "retell-function-validate",
              "retell-functions-export"}


def test_every_write_of_the_gateway_and_the_page_is_tried():
    from retell_config.dashboard import urlpatterns
    from retell_config.gateway import METHODS

    tried = {target for target, _ in WRITE_PATHS.values()}
    assert set(METHODS) - GATEWAY_READS <= tried
    assert {p.name for p in urlpatterns} - PAGE_READS <= tried


class Attempts:
    """What the write paths need: the editor's client and gateway, the company and its rows."""

    def __init__(self, **values) -> None:
        self.__dict__.update(values)

    @staticmethod
    def upload(document: dict):
        import json

        from django.core.files.uploadedfile import SimpleUploadedFile

        return SimpleUploadedFile("functions.json", json.dumps(document).encode(), "application/json")


@pytest.mark.django_db
@pytest.mark.parametrize("path", sorted(WRITE_PATHS))
def test_a_limited_editor_cannot_write_to_the_agent_it_was_not_granted(client, editor, company_a, retell_agents,
                                                                       shared_function, path):
    main, backup = retell_agents
    config, _ = services.webhook_update(actor=SYSTEM, company=company_a, url="https://hooks.example.com/retell",
                                        events=["call_ended"], push=False)
    version, _ = services.agent_update(actor=SYSTEM, agent=backup, fields={"general_prompt": "v2"}, push=False)[1:]
    client.force_login(editor)
    ctx = Attempts(client=client, gateway=Gateway(client, token_for(editor)), company=company_a, main=main,
                   backup=backup, function=shared_function, config=config, version=version)
    audited = AuditEntry.objects.count()

    refused = WRITE_PATHS[path][1](ctx)

    assert refused
    assert AuditEntry.objects.count() == audited
    assert not SyncRun.objects.exists()
    assert linked(shared_function) == {"agent_abc123", "agent_xyz789"}
    assert set(CustomFunction.objects.values_list("name", flat=True)) == {"check_availability"}
    backup.refresh_from_db()
    config.refresh_from_db()
    assert (backup.name, backup.general_prompt) == ("Backup Agent", "v2")
    assert (config.url, config.apply_to) == ("https://hooks.example.com/retell", "all")


# --- reads through the gateway and the page -----------------------------------------------------------

@pytest.mark.django_db
def test_a_limited_editor_reads_nothing_of_the_other_agent_through_the_gateway_or_the_page(
        client, editor, editor_gateway, company_a, retell_agents, shared_function):
    _, backup = retell_agents
    run = SyncRun.objects.create(company=company_a, kind="agent_update", status="succeeded",
                                 params={"agent_ids": [backup.agent_id]}, outcome={backup.agent_id: {"status": "ok"}})
    client.force_login(editor)

    got_run = editor_gateway.call("retell_config.getSyncRun", {"company_id": company_a.pk, "sync_run_id": run.pk})
    exported = editor_gateway.call("retell_config.exportFunctions", {"company_id": company_a.pk})["result"]
    downloaded = client.get(reverse("retell-functions-export"), {"company": company_a.pk}).json()
    pages = [client.get(reverse(name), {"company": company_a.pk}).content.decode()
             for name in ("retell-dashboard", "retell-functions")]

    assert got_run["error"]["code"] == -32004
    assert client.get(reverse("retell-run", args=[run.pk]), {"company": company_a.pk}).status_code == 404
    assert exported["functions"][0]["agents"] == downloaded["functions"][0]["agents"] == ["agent_abc123"]
    assert all("Backup Agent" not in html and "agent_xyz789" not in html for html in pages)
    assert f"#{run.pk}</a>" not in pages[0]
