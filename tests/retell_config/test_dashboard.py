"""The Retell Webhook Configuration admin page and its sub-pages, through the test client:
what each role sees and may do, cross-company refusals, and a constant number of queries."""

import json

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from audit.actor import Actor
from retell_config import services
from retell_config.client import circuit_for
from retell_config.models import Agent, CustomFunction, PromptVersion, SyncRun, WebhookConfig
from tests.factories import make_member

DASHBOARD = "/admin/retell-webhook-configuration/"


def page(client, company, path="", **query):
    return client.get(DASHBOARD + path, {"company": company.pk, **query})


@pytest.fixture
def functions(company_a, retell_agents):
    return services.custom_functions_seed(actor=Actor.system("t"), company=company_a, agents=retell_agents)


@pytest.mark.django_db
def test_the_page_shows_company_status_cards_and_agents_as_the_seed_draws_them(owner_client, company_a,
                                                                               retell_agents, functions):
    services.webhook_update(actor=Actor.system("t"), company=company_a, url="https://h.example.com/w",
                            events=["call_started", "call_ended", "call_analyzed"], push=False)

    html = page(owner_client, company_a).content.decode()

    assert "Retell Webhook Configuration" in html and "Alpha Praxis" in html
    # Nothing has been asked of Retell yet: the page claims no connection (see test_connection_status).
    assert 'id="rwc-status" class="rwc-status rwc-unknown"' in html and "Not checked yet" in html
    assert "✓ Configured" in html and "3 active" in html
    assert "Agents (2)" in html and "Main Reception Agent" in html and "agent_abc123" in html
    assert "+49 30 83793369" in html
    for label in ("Edit Prompt", "Test", "Deploy Functions", "Test Webhook", "Sync All", "View Logs",
                  "Configure", "Manage", "Save &amp; Deploy", "Cancel", "call_transferred"):
        assert label in html, label


@pytest.mark.django_db
def test_the_admin_home_links_the_page(owner_client):
    assert reverse("retell-dashboard") in owner_client.get(reverse("admin:index")).content.decode()


@pytest.mark.django_db
def test_an_open_circuit_shows_disconnected(owner_client, company_a, retell_agents):
    breaker = circuit_for(company_a.pk)
    for _ in range(breaker.failure_threshold):
        breaker.record_failure("Retell answered 503")

    html = page(owner_client, company_a).content.decode()

    assert "rwc-disconnected" in html and "Disconnected" in html and "Retell answered 503" in html


@pytest.mark.django_db
def test_a_user_of_two_companies_gets_a_switcher(client, company_a, company_b):
    user = make_member(company_a, "owner")
    from tenants.models import Membership
    Membership.objects.create(user=user, company=company_b, role="viewer")
    client.force_login(user)

    html = page(client, company_b).content.decode()

    assert 'id="rwc-company"' in html
    assert f'<option value="{company_b.pk}" selected>Beta Dental</option>' in html


@pytest.mark.django_db
def test_another_companys_page_and_rows_answer_404(owner_client, company_b):
    other_agent = Agent.objects.create(company=company_b, agent_id="agent_b", name="B")
    other_function = CustomFunction.objects.create(company=company_b, name="f", url="https://x.example")

    assert page(owner_client, company_b).status_code == 404
    assert owner_client.get(reverse("retell-prompt", args=[other_agent.pk])).status_code == 404
    assert owner_client.get(reverse("retell-function", args=[other_function.pk])).status_code == 404
    response = owner_client.post(reverse("retell-agent-deploy", args=[other_agent.pk]))
    assert response.status_code == 404
    assert not SyncRun.objects.exists()


@pytest.mark.django_db
def test_saving_the_webhook_modal_saves_and_deploys(owner_client, company_a, retell_agents, fake_retell,
                                                    django_capture_on_commit_callbacks):
    main, backup = retell_agents
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("retell-webhook"), {
            "company": company_a.pk, "url": "https://hooks.example.com/retell", "events": ["call_ended", "call_transferred"],
            "secret": "whsec-abcdef0123456789", "apply_to": "selected", "agents": [backup.pk]}, follow=True)

    html = response.content.decode()
    config = WebhookConfig.objects.get(company=company_a)
    assert (config.url, config.events, config.apply_to) == ("https://hooks.example.com/retell",
                                                            ["call_ended", "call_transferred"], "selected")
    assert config.secret.reveal() == "whsec-abcdef0123456789"
    assert "whsec-abcdef0123456789" not in html and "••••6789" in html
    assert "Webhook saved" in html and "deploying to 1 agent(s)" in html
    assert fake_retell.lines() == ["PATCH /update-agent/agent_xyz789"]


@pytest.mark.django_db
def test_a_bad_webhook_url_is_refused_with_a_message(owner_client, company_a, retell_agents):
    response = owner_client.post(reverse("retell-webhook"), {"company": company_a.pk, "url": "not a url",
                                                             "apply_to": "all"}, follow=True)
    assert "Webhook not saved: Webhook URL" in response.content.decode()
    assert not WebhookConfig.objects.exists()


@pytest.mark.django_db
def test_a_viewer_sees_everything_disabled_and_cannot_post(client, company_a, retell_agents, functions):
    main, _ = retell_agents
    client.force_login(make_member(company_a, "viewer"))

    html = page(client, company_a).content.decode()
    posts = [client.post(reverse("retell-webhook"), {"company": company_a.pk, "url": "https://x.example",
                                                     "apply_to": "all"}),
             client.post(reverse("retell-sync"), {"company": company_a.pk}),
             client.post(reverse("retell-agent-deploy", args=[main.pk]), {"company": company_a.pk}),
             client.post(reverse("retell-prompt", args=[main.pk]), {"company": company_a.pk}),
             client.post(reverse("retell-function", args=[functions[0].pk]), {"company": company_a.pk}),
             client.post(reverse("retell-function-delete", args=[functions[0].pk]), {"company": company_a.pk})]

    assert 'id="rwc-save-deploy" disabled' in html and 'id="rwc-sync" disabled' in html
    assert "Agents (2)" in html
    assert [r.status_code for r in posts] == [403] * 6
    assert not WebhookConfig.objects.exists() and not SyncRun.objects.exists()
    assert CustomFunction.objects.filter(company=company_a).count() == 4


@pytest.mark.django_db
def test_an_editor_limited_to_one_agent_sees_and_acts_on_only_that_agent(client, company_a, retell_agents,
                                                                          fake_retell):
    main, backup = retell_agents
    editor = make_member(company_a, "editor", limited=True)
    assign_perm("retell_config.view_agent", editor, main)
    assign_perm("retell_config.change_agent", editor, main)
    client.force_login(editor)

    html = page(client, company_a).content.decode()

    assert "Agents (1)" in html and "agent_abc123" in html and "agent_xyz789" not in html
    assert 'id="rwc-sync" disabled' in html
    assert client.get(reverse("retell-prompt", args=[backup.pk]), {"company": company_a.pk}).status_code == 404
    assert client.post(reverse("retell-sync"), {"company": company_a.pk}).status_code == 403
    assert client.post(reverse("retell-agent-deploy", args=[main.pk]), {"company": company_a.pk}).status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize("count", [2, 20])
def test_the_page_makes_the_same_number_of_queries_for_2_and_20_agents(client, company_a, count,
                                                                       django_assert_num_queries):
    user = make_member(company_a, "owner")
    client.force_login(user)
    agents = [Agent.objects.create(company=company_a, agent_id=f"agent_{n:03d}", name=f"Agent {n}",
                                   phone_numbers=[f"+4930837933{n:02d}"]) for n in range(count)]
    services.custom_functions_seed(actor=Actor.system("t"), company=company_a, agents=agents)
    services.webhook_update(actor=Actor.system("t"), company=company_a, url="https://h.example.com/w",
                            events=["call_ended"], apply_to="selected", agents=agents[:1], push=False)
    SyncRun.objects.create(company=company_a, kind="sync_all", status="succeeded")
    page(client, company_a)  # warm: session, content types

    with django_assert_num_queries(QUERIES_PER_PAGE):
        response = page(client, company_a)
    assert response.content.decode().count('class="rwc-agent"') == count


QUERIES_PER_PAGE = 21  # the same for 2 and 20 agents: nothing is queried per agent


@pytest.mark.django_db
def test_the_function_editor_validates_a_schema_inline_and_on_save(owner_client, company_a, retell_agents):
    validate = owner_client.post(reverse("retell-function-validate") + f"?company={company_a.pk}",
                                 json.dumps({"properties": {"x": {"type": "string"}}}),
                                 content_type="application/json").json()
    response = owner_client.post(reverse("retell-function-new"), {
        "company": company_a.pk, "name": "book", "url": "https://x.example/fn", "method": "POST",
        "parameters": '{"type": "array"}', "query_params": "{}", "timeout_ms": "120000"})

    assert any('"type": "object"' in e for e in validate["errors"])
    assert response.status_code == 200
    assert "the top level needs &quot;type&quot;: &quot;object&quot;" in response.content.decode()
    assert not CustomFunction.objects.exists()
    good = owner_client.post(reverse("retell-function-new"), {
        "company": company_a.pk, "name": "book", "url": "https://x.example/fn", "method": "POST",
        "parameters": '{"type": "object", "properties": {"d": {"type": "string"}}}', "query_params": "{}",
        "timeout_ms": "120000", "agents": [retell_agents[0].pk], "speak_after_execution": "on"})
    assert good.status_code == 302
    assert list(CustomFunction.objects.get(name="book").agents.all()) == [retell_agents[0]]


@pytest.mark.django_db
def test_functions_export_download_and_import_upload(owner_client, company_a, retell_agents, functions):
    from django.core.files.uploadedfile import SimpleUploadedFile

    exported = owner_client.get(reverse("retell-functions-export"), {"company": company_a.pk, "format": "backup"})
    document = json.loads(exported.content)
    document["functions"][0]["description"] = "Changed by import"
    upload = SimpleUploadedFile("backup.json", json.dumps(document).encode(), content_type="application/json")

    response = owner_client.post(reverse("retell-functions-import"), {"company": company_a.pk, "document": upload},
                                 follow=True)

    assert "attachment" in exported["Content-Disposition"]
    assert "1 updated" in response.content.decode()
    assert CustomFunction.objects.get(company=company_a, name=document["functions"][0]["name"]).description == \
        "Changed by import"


@pytest.mark.django_db
def test_edit_prompt_saves_a_version_pushes_and_shows_history_diff_and_rollback(
        owner_client, company_a, retell_agents, fake_retell, django_capture_on_commit_callbacks):
    main, _ = retell_agents
    form = {"company": company_a.pk, "general_prompt": "Be brief.", "begin_message": "Hallo!",
            "custom_instructions": "", "voice_id": main.voice_id, "voice_stability": "0.5",
            "voice_similarity_boost": "0.75", "voice_speed": "1.0", "language": "de-DE", "note": "shorter",
            "base_version": "0"}
    with django_capture_on_commit_callbacks(execute=True):
        saved = owner_client.post(reverse("retell-prompt", args=[main.pk]), form)
    stale = owner_client.post(reverse("retell-prompt", args=[main.pk]), {**form, "general_prompt": "Mine"})

    diff = owner_client.get(reverse("retell-prompt", args=[main.pk]), {"company": company_a.pk, "a": 1, "b": 2})
    v1 = PromptVersion.objects.get(agent=main, number=1)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("retell-rollback", args=[main.pk, v1.pk]), {"company": company_a.pk})

    assert saved.status_code == 302
    assert "not 0" in stale.content.decode()  # a conflict: someone saved version 2 meanwhile
    html = diff.content.decode()
    assert '<div class="del">-Old prompt</div>' in html and '<div class="add">+Be brief.</div>' in html
    assert list(PromptVersion.objects.filter(agent=main).values_list("number", "general_prompt")) == [
        (3, "Old prompt"), (2, "Be brief."), (1, "Old prompt")]
    assert fake_retell.state.llms["llm_main"]["general_prompt"] == "Old prompt"


@pytest.mark.django_db
def test_sync_all_button_runs_and_the_run_page_offers_pull_and_push(owner_client, company_a, retell_agents,
                                                                     fake_retell, django_capture_on_commit_callbacks):
    main, _ = retell_agents
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("retell-sync"), {"company": company_a.pk})
    services.agent_update(actor=Actor.system("t"), agent=main, fields={"name": "Local name"}, push=False)
    fake_retell.state.agents["agent_abc123"]["agent_name"] = "Remote name"
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("retell-sync"), {"company": company_a.pk})
    html = owner_client.get(response.url).content.decode()

    assert 'id="rwc-run-status">Succeeded<' in html
    assert "Local name" in html and "Remote name" in html and "Pull remote" in html and "Push local" in html
    owner_client.post(reverse("retell-resolve", args=[main.pk]), {"company": company_a.pk, "direction": "pull"})
    assert Agent.objects.get(pk=main.pk).name == "Remote name"
    run = SyncRun.objects.filter(kind="sync_all").first()
    status = owner_client.get(reverse("retell-run", args=[run.pk]), {"company": company_a.pk, "format": "json"}).json()
    assert status["finished"] is True and status["percent"] == 100


@pytest.mark.django_db
def test_failing_syncs_open_the_circuit_and_the_page_says_disconnected(settings, owner_client, company_a,
                                                                       retell_agents, fake_retell,
                                                                       django_capture_on_commit_callbacks):
    fake_retell.fail(503, times=1000)
    for _ in range(settings.RETELL_CIRCUIT_FAILURES):
        with django_capture_on_commit_callbacks(execute=True):
            owner_client.post(reverse("retell-sync"), {"company": company_a.pk})
    sent = len(fake_retell.requests)

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("retell-sync"), {"company": company_a.pk})
    html = page(owner_client, company_a).content.decode()

    assert '<span class="rwc-dot"></span>Disconnected</span>' in html, html[html.find('id="rwc-status"'):][:200]
    assert len(fake_retell.requests) == sent  # the open circuit sends nothing more
    assert SyncRun.objects.filter(status="failed").count() == settings.RETELL_CIRCUIT_FAILURES + 1


@pytest.mark.django_db
def test_rotating_a_socket_token_in_the_admin_changes_it_and_pushes_the_new_url(
        owner_client, company_a, fake_retell, django_capture_on_commit_callbacks):
    fake_retell.add_agent("agent_sock")
    agent = Agent.objects.create(company=company_a, agent_id="agent_sock", name="Socket", response_engine="custom-llm")
    old = agent.socket_token

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("admin:retell_config_agent_changelist"),
                          {"action": "rotate_socket_token", "_selected_action": [agent.pk]})

    agent.refresh_from_db()
    assert agent.socket_token != old
    pushed = fake_retell.requests[-1]
    assert pushed.line == "PATCH /update-agent/agent_sock"
    assert pushed.body["response_engine"] == {
        "type": "custom-llm", "llm_websocket_url": f"wss://voicedesk.example.com/retell-llm/{agent.socket_token}"}


@pytest.mark.django_db
def test_a_company_without_a_retell_key_is_shown_as_not_configured(owner_client, company_a, settings):
    settings.RETELL_API_KEY = ""
    company_a.retell_api_key = None
    company_a.save()

    html = page(owner_client, company_a).content.decode()

    assert 'id="rwc-status" class="rwc-status rwc-not_configured"' in html
    assert '<span class="rwc-dot"></span>Not configured</span>' in html


@pytest.mark.django_db
def test_every_control_of_the_page_leads_somewhere_and_none_says_coming_soon(owner_client, company_a, retell_agents,
                                                                               functions):
    """Each button opens a dialog of the page or is a link to a page that answers (the testing tools)."""
    import re

    html = page(owner_client, company_a).content.decode()

    assert "Coming soon" not in html and "data-soon" not in html
    for target in re.findall(r'data-open="([^"]+)"', html):
        assert f'id="{target}"' in html, target
    links = set(re.findall(r'href="(/admin/[^"#]+)"', html.replace("&amp;", "&")))
    for label in ("Test Webhook", "View Logs"):
        assert re.search(rf'<a [^>]*href="/admin/[^"]+"[^>]*>[^<]*{label}', html), label
    for href in links:
        assert owner_client.get(href).status_code == 200, href
