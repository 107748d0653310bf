"""django-guardian grants: they narrow a limited membership, and the grant pages
never let anyone hand out rights they do not hold themselves."""

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm, get_user_perms

from audit.models import AuditEntry
from retell_config.models import Agent
from tenants.models import Membership
from tests.factories import make_member, make_user


@pytest.fixture
def agents(company_a):
    return (Agent.objects.create(company=company_a, agent_id="agent_one", name="One"),
            Agent.objects.create(company=company_a, agent_id="agent_two", name="Two"))


def grants_url(agent, user=None):
    if user is None:
        return reverse("admin:retell_config_agent_permissions", args=[agent.pk])
    return reverse("admin:retell_config_agent_permissions_manage_user", args=[agent.pk, user.pk])


@pytest.mark.django_db
def test_an_editor_limited_to_one_agent_sees_and_changes_only_that_agent(client, company_a, agents):
    one, two = agents
    editor = make_member(company_a, "editor", limited=True)
    assign_perm("retell_config.view_agent", editor, one)
    assign_perm("retell_config.change_agent", editor, one)
    client.force_login(editor)

    listed = {a.pk for a in client.get(reverse("admin:retell_config_agent_changelist")).context["cl"].queryset}
    assert listed == {one.pk}
    assert client.get(reverse("admin:retell_config_agent_change", args=[two.pk])).status_code == 404
    response = client.post(reverse("admin:retell_config_agent_change", args=[one.pk]),
                           {"name": "One renamed", "agent_id": "agent_one", "phone_numbers": "[]", "language": "de-DE",
                            "response_engine": "custom-llm", "dialog_engine": "embedded",
                            "voice_id": "11labs-Adrian", "voice_stability": "0.5",
                            "voice_similarity_boost": "0.75", "voice_speed": "1.0"})
    assert response.status_code == 302
    assert Agent.objects.get(pk=one.pk).name == "One renamed"
    # a limited member creates no agents: a new row has no grant to show it by
    assert client.get(reverse("admin:retell_config_agent_add")).status_code == 403


@pytest.mark.django_db
def test_a_grant_never_exceeds_the_role(client, company_a, agents):
    one, _ = agents
    viewer = make_member(company_a, "viewer", limited=True)
    assign_perm("retell_config.view_agent", viewer, one)
    assign_perm("retell_config.change_agent", viewer, one)
    client.force_login(viewer)

    assert client.get(reverse("admin:retell_config_agent_change", args=[one.pk])).context["has_change_permission"] is False
    assert client.post(reverse("admin:retell_config_agent_change", args=[one.pk]), {}).status_code == 403


@pytest.mark.django_db
def test_an_owner_grants_a_member_rights_and_the_grant_is_audited(owner_client, company_a, agents):
    one, _ = agents
    editor = make_member(company_a, "editor", limited=True)

    response = owner_client.post(grants_url(one, editor), {"permissions": ["view_agent", "change_agent"]})

    assert response.status_code == 302
    assert set(get_user_perms(editor, one)) == {"view_agent", "change_agent"}
    entry = AuditEntry.objects.get(action="grant")
    assert entry.changes[f"grants:{editor.username}"]["after"] == ["change_agent", "view_agent"]


@pytest.mark.django_db
def test_the_grant_page_offers_and_accepts_only_rights_the_granter_holds(client, company_a, agents):
    one, _ = agents
    # An admin whose membership is limited to viewing agent one: may manage members, not agent one.
    granter = make_member(company_a, "admin", limited=True)
    assign_perm("retell_config.view_agent", granter, one)
    colleague = make_member(company_a, "editor", limited=True)
    client.force_login(granter)

    page = client.get(grants_url(one, colleague))
    assert page.status_code == 200
    assert [c for c, _ in page.context["form"].fields["permissions"].choices] == ["view_agent"]

    for target in (colleague, granter):
        response = client.post(grants_url(one, target), {"permissions": ["view_agent", "change_agent", "delete_agent"]})
        assert response.status_code == 200  # the form refuses the choices it does not offer
        assert "permissions" in response.context["form"].errors
        assert "change_agent" not in get_user_perms(target, one)


@pytest.mark.django_db
def test_only_members_who_manage_memberships_reach_the_grant_pages(client, company_a, agents):
    one, _ = agents
    client.force_login(make_member(company_a, "editor"))
    assert client.get(grants_url(one)).status_code == 403


@pytest.mark.django_db
def test_grants_go_only_to_members_of_the_same_company(owner_client, company_a, company_b, agents):
    one, _ = agents
    outsider = make_member(company_b, "editor")
    stranger = make_user()

    assert owner_client.get(grants_url(one, outsider)).status_code == 404
    response = owner_client.post(grants_url(one), {"user": stranger.username, "submit_manage_user": "1"})
    assert response.status_code == 200
    assert "user" in response.context["user_form"].errors
    assert not get_user_perms(outsider, one).exists()


@pytest.mark.django_db
def test_group_grants_are_for_superusers_only(owner_client, agents):
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="everyone")
    url = reverse("admin:retell_config_agent_permissions_manage_group", args=[agents[0].pk, group.pk])
    assert owner_client.post(url, {"permissions": ["change_agent"]}).status_code == 403


@pytest.mark.django_db
def test_another_companys_member_cannot_open_the_grant_pages(client, company_b, agents):
    one, _ = agents
    client.force_login(make_member(company_b, "owner"))
    assert client.get(grants_url(one)).status_code == 404
    assert not Membership.objects.filter(company=one.company, user__username__startswith="owner-beta").exists()


@pytest.mark.django_db
def test_the_grant_page_answers_alike_for_another_companys_member_and_a_name_nobody_has(
        owner_client, company_b, agents):
    one, _ = agents
    outsider = make_member(company_b, "editor")
    answers = {}

    for username in (outsider.username, "nobody-has-this-name", ""):
        response = owner_client.post(grants_url(one), {"user": username, "submit_manage_user": "1"})
        answers[username] = (response.status_code, response.context["user_form"].errors["user"])

    assert answers[outsider.username] == answers["nobody-has-this-name"] == (
        200, ["No member of this company has this username."])
    assert not get_user_perms(outsider, one).exists()


@pytest.mark.django_db
def test_the_grant_page_of_a_user_id_answers_alike_for_another_companys_member_and_an_id_nobody_has(
        owner_client, company_b, agents):
    one, _ = agents
    outsider = make_member(company_b, "editor")
    url_of = lambda user_id: reverse("admin:retell_config_agent_permissions_manage_user",  # noqa: E731
                                     args=[one.pk, user_id])

    stranger, nobody = owner_client.get(url_of(outsider.pk)), owner_client.get(url_of(outsider.pk + 1000))

    assert stranger.status_code == nobody.status_code == 404
    assert stranger.content == nobody.content


@pytest.mark.django_db
def test_the_grant_pages_group_form_answers_alike_for_a_group_that_exists_and_one_that_does_not(owner_client, agents):
    from django.contrib.auth.models import Group

    Group.objects.create(name="everyone")
    answers = {}

    for name in ("everyone", "no-such-group"):
        response = owner_client.post(grants_url(agents[0]), {"group": name, "submit_manage_group": "1"})
        answers[name] = (response.status_code, response.context["group_form"].errors["group"])

    assert answers["everyone"] == answers["no-such-group"]
    assert answers["everyone"][0] == 200
