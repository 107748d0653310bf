"""What the Retell configuration pages say when there is nothing to list is so."""

import pytest
from django.urls import reverse

from audit.actor import Actor
from retell_config import services
from retell_config.models import Agent, PromptVersion
from tests.factories import make_member

DASHBOARD = "/admin/retell-webhook-configuration/"


@pytest.mark.django_db
def test_a_member_limited_to_no_agents_is_told_none_are_granted(client, company_a, retell_agents):
    client.force_login(make_member(company_a, "editor", limited=True))

    html = client.get(DASHBOARD, {"company": company_a.pk}).content.decode()

    assert "No agents are granted to you in this company" in html
    assert "Sync All pulls" not in html


@pytest.mark.django_db
def test_a_company_without_agents_is_told_sync_all_pulls_them(owner_client, company_a, fake_retell):
    html = owner_client.get(DASHBOARD, {"company": company_a.pk}).content.decode()

    assert "No agents yet. Sync All pulls the agents of this company's Retell workspace." in html


def history_note(client, company, agent) -> str:
    html = client.get(reverse("retell-prompt", args=[agent.pk]), {"company": company.pk}).content.decode()
    start = html.index("No versions yet")
    return html[start:html.index("<", start)]


@pytest.mark.django_db
@pytest.mark.parametrize("texts", [{"general_prompt": "Old prompt"}, {}])
def test_the_empty_history_says_what_the_first_change_records(owner_client, company_a, texts):
    agent = Agent.objects.create(company=company_a, agent_id="agent_h1", name="H", **texts)
    note = history_note(owner_client, company_a, agent)

    services.agent_update(actor=Actor.system("t"), agent=agent, fields={"general_prompt": "Edited"}, push=False)

    versions = list(PromptVersion.objects.filter(agent=agent).order_by("number").values_list("general_prompt",
                                                                                              flat=True))
    if texts:
        assert versions == ["Old prompt", "Edited"]
        assert note == "No versions yet: your first change keeps the texts as they are now as v1 and " \
                       "saves your change as v2."
    else:
        assert versions == ["Edited"]
        assert note == "No versions yet: your first change becomes v1."
