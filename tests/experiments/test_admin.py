"""The experiments' admin: reached from the agent's page, created with its variants, started,
stopped and promoted with buttons; a viewer may look, not act; another company never sees it."""

import re

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from experiments.models import Experiment, Variant
from retell_config.models import Agent
from tests.factories import make_member
from voice.models import Call

pytestmark = pytest.mark.django_db


def change_url(experiment) -> str:
    return reverse("admin:experiments_experiment_change", args=[experiment.pk])


def action_url(experiment, action: str) -> str:
    return reverse(f"admin:experiments_experiment_{action}", args=[experiment.pk])


def inline_form(prefix: str, variants: list[dict]) -> dict:
    data = {f"{prefix}-TOTAL_FORMS": str(len(variants)), f"{prefix}-INITIAL_FORMS": "0",
            f"{prefix}-MIN_NUM_FORMS": "2", f"{prefix}-MAX_NUM_FORMS": "1000"}
    for i, variant in enumerate(variants):
        data.update({f"{prefix}-{i}-{name}": value for name, value in variant.items()})
    return data


def test_the_agent_page_links_its_experiments_and_the_add_form_starts_with_the_agent(owner_client, agent, draft):
    page = owner_client.get(reverse("admin:retell_config_agent_change", args=[agent.pk])).content.decode()

    add = reverse("admin:experiments_experiment_add") + f"?agent={agent.pk}"
    assert f'href="{add}"' in page
    assert "Experiments of this agent (1)" in page
    form = owner_client.get(add).context["adminform"].form
    assert str(form.initial["agent"]) == str(agent.pk)


def test_an_owner_creates_a_draft_with_its_variants_in_the_admin(owner_client, agent, company_a):
    data = {"company": company_a.pk, "agent": agent.pk, "name": "Shorter greeting", "primary_metric": "transfer_rate",
            "baseline": "0.2", "minimum_detectable_effect": "0.05", "starts_at": "", "ends_at": "",
            **inline_form("variants", [{"name": "A", "weight": "60"},
                                       {"name": "B", "weight": "40", "begin_message": "Hallo!"}])}

    response = owner_client.post(reverse("admin:experiments_experiment_add"), data)

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    experiment = Experiment.objects.get(name="Shorter greeting")
    a, b = experiment.variants.order_by("pk")
    assert (a.weight, a.begin_message, a.general_prompt) == (60, agent.begin_message, agent.general_prompt)
    assert (b.weight, b.begin_message, b.general_prompt) == (40, "Hallo!", agent.general_prompt)
    assert AuditEntry.objects.filter(object_type="experiments.variant", action="create").count() == 2


def test_start_stop_and_promote_buttons_call_the_services(owner_client, agent, draft):
    page = owner_client.get(change_url(draft)).content.decode()
    assert "Start experiment" in page and "Minimum sample" in page and "No winner yet" in page

    owner_client.post(action_url(draft, "start"))
    draft.refresh_from_db()
    assert draft.status == Experiment.Status.RUNNING
    page = owner_client.get(change_url(draft)).content.decode()
    assert "Stop experiment" in page and "Promote to live prompt" in page and "Start experiment" not in page

    b = draft.variants.get(name="B")
    owner_client.post(action_url(draft, "promote"), {"variant": b.pk})
    draft.refresh_from_db()
    agent.refresh_from_db()
    assert draft.status == Experiment.Status.PROMOTED
    assert agent.begin_message == "Hallo, hier Praxis Alpha!"
    assert AuditEntry.objects.filter(action="promote", object_id=str(draft.pk)).exists()


def test_the_results_page_draws_its_charts_without_script(owner_client, draft):
    page = owner_client.get(change_url(draft)).content.decode()
    section = page[page.index('id="experiment-results"'):page.index("</section>")]
    assert section.count("<svg") == 2
    assert "<script" not in section


def test_a_variant_of_another_experiment_cannot_be_promoted(owner_client, agent, draft):
    owner_client.post(action_url(draft, "start"))
    other = Experiment.objects.create(company=agent.company, agent=agent, name="Other")
    stranger = Variant.objects.create(company=agent.company, experiment=other, name="X")

    response = owner_client.post(action_url(draft, "promote"), {"variant": stranger.pk}, follow=True)

    draft.refresh_from_db()
    assert draft.status == Experiment.Status.RUNNING
    assert "Choose one of this experiment" in response.content.decode()


def test_a_viewer_sees_the_results_but_no_buttons_and_may_not_start(client, company_a, draft):
    client.force_login(make_member(company_a, "viewer"))

    page = client.get(change_url(draft)).content.decode()
    response = client.post(action_url(draft, "start"))

    assert "Minimum sample" in page and "Start experiment" not in page
    assert response.status_code == 403
    draft.refresh_from_db()
    assert draft.status == Experiment.Status.DRAFT


def test_a_member_limited_to_another_agent_does_not_reach_the_experiment(client, company_a, agent, draft):
    from guardian.shortcuts import assign_perm

    other = Agent.objects.create(company=company_a, agent_id="agent_other", name="Other")
    member = make_member(company_a, "editor", limited=True)
    assign_perm("retell_config.view_agent", member, other)
    assign_perm("retell_config.change_agent", member, other)
    client.force_login(member)

    assert client.get(change_url(draft)).status_code == 404
    assert client.post(action_url(draft, "start")).status_code == 404
    assert draft.name not in client.get(reverse("admin:experiments_experiment_changelist")).content.decode()


def test_another_company_never_sees_the_experiment_its_agent_or_its_calls(client, company_b, agent, draft):
    Call.objects.create(company=agent.company, agent=agent, call_id="alpha_call", from_number="+4915112345678",
                        experiment_variant=draft.variants.first())
    client.force_login(make_member(company_b, "owner"))

    listing = client.get(reverse("admin:experiments_experiment_changelist")).content.decode()
    assert draft.name not in listing and agent.name not in listing
    assert client.get(change_url(draft)).status_code == 404
    assert client.post(action_url(draft, "start")).status_code == 404
    add = client.get(reverse("admin:experiments_experiment_add") + f"?agent={agent.pk}")
    assert add.status_code == 200
    assert not re.search(rf'<option value="{agent.pk}"', add.content.decode())
    draft.refresh_from_db()
    assert draft.status == Experiment.Status.DRAFT


def test_a_running_experiment_cannot_be_deleted_until_it_is_stopped(owner_client, draft):
    owner_client.post(action_url(draft, "start"))

    refused = owner_client.post(reverse("admin:experiments_experiment_delete", args=[draft.pk]), {"post": "yes"})

    assert refused.status_code == 403
    assert Experiment.objects.filter(pk=draft.pk, status=Experiment.Status.RUNNING).exists()
    owner_client.post(action_url(draft, "stop"))
    deleted = owner_client.post(reverse("admin:experiments_experiment_delete", args=[draft.pk]), {"post": "yes"})
    assert deleted.status_code == 302 and not Experiment.objects.filter(pk=draft.pk).exists()
