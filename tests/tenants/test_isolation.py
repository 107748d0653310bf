"""Tenant isolation and role permissions for every tenant-owned model in the admin.

In the spirit of NetBox's generic view tests: the cases are generated from the admin
registry, so a model that a later change registers is covered without editing this file
(a new model must only be classified: company-wide, or belonging to agents).
"""

import pytest
from django.contrib import admin
from django.forms import ModelChoiceField, ModelMultipleChoiceField
from django.forms.models import model_to_dict
from django.urls import reverse
from guardian.shortcuts import assign_perm

from appointments.models import Closure, Resource, Service
from retell_config.models import Agent, CustomFunction, WebhookConfig
from tenants.models import Company, Membership, company_of_model, limited_scope
from tenants.roles import Role, role_allows
from tests.factories import AGENT_ROWS, AGENTLESS_ROWS, make_for, make_member

TENANT_MODELS = sorted((model for model in admin.site._registry if company_of_model(model)),
                       key=lambda model: model._meta.label)
ROLES = [role.value for role in Role]
by_label = {"ids": lambda model: model._meta.label}


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def tenant_choice_fields(form):
    for name, field in form.fields.items():
        if isinstance(field, ModelChoiceField | ModelMultipleChoiceField) and company_of_model(field.queryset.model):
            yield name, field


def test_the_suite_sees_every_tenant_model():
    labels = {m._meta.label for m in TENANT_MODELS}
    assert {"tenants.Company", "tenants.Membership", "audit.AuditEntry", "audit.ActivityLogEntry",
            "retell_config.Agent"} <= labels


@pytest.fixture
def rows(request, client, company_a, company_b):
    """As the owner of company A: (a row of A, a row of B) of the model under test."""
    model = request.getfixturevalue("model")
    client.force_login(make_member(company_a, Role.OWNER))
    return make_for(model, company_a), make_for(model, company_b)


@pytest.mark.django_db
@pytest.mark.parametrize("model", TENANT_MODELS, **by_label)
def test_changelist_lists_only_own_company(client, model, rows):
    own, other = rows
    response = client.get(admin_url(model, "changelist"))
    assert response.status_code == 200
    listed = {obj.pk for obj in response.context["cl"].queryset}
    assert own.pk in listed
    assert other.pk not in listed


@pytest.mark.django_db
@pytest.mark.parametrize("view", ["change", "delete", "history"])
@pytest.mark.parametrize("model", TENANT_MODELS, **by_label)
def test_other_companys_row_answers_404_in_every_view(client, model, rows, view):
    _, other = rows
    assert client.get(admin_url(model, view, other.pk)).status_code == 404
    assert client.post(admin_url(model, view, other.pk), {"post": "yes"}).status_code == 404
    assert model._base_manager.filter(pk=other.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("model", TENANT_MODELS, **by_label)
def test_choice_fields_offer_no_row_of_another_company(client, model, rows, company_b):
    own, _ = rows
    for view, args in (("change", [own.pk]), ("add", [])):
        response = client.get(admin_url(model, view, *args))
        if response.status_code == 403:
            continue
        for name, field in tenant_choice_fields(response.context["adminform"].form):
            lookup = company_of_model(field.queryset.model)
            assert not field.queryset.filter(**{lookup: company_b.pk}).exists(), f"{view}: {name}"


@pytest.mark.django_db
@pytest.mark.parametrize("model", TENANT_MODELS, **by_label)
def test_choosing_another_companys_row_is_rejected(client, model, rows, company_b):
    if not role_allows(Role.OWNER, model, "add") or client.get(admin_url(model, "add")).status_code == 403:
        pytest.skip("no member adds this model in the admin")
    form = client.get(admin_url(model, "add")).context["adminform"].form
    fields = list(tenant_choice_fields(form))
    assert fields, "a tenant-owned model's add form has at least its company field"
    for name, field in fields:
        foreign = make_for(field.queryset.model, company_b)
        value = [foreign.pk] if isinstance(field, ModelMultipleChoiceField) else foreign.pk
        before = model._base_manager.count()
        response = client.post(admin_url(model, "add"), {name: value})
        assert response.status_code == 200, name
        assert name in response.context["adminform"].form.errors, name
        assert model._base_manager.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("model", TENANT_MODELS, **by_label)
def test_each_role_can_do_exactly_what_its_permissions_allow(client, company_a, model, role):
    client.force_login(make_member(company_a, role))
    row = make_for(model, company_a)
    may = {action: role_allows(role, model, action) for action in ("view", "add", "change", "delete")}

    changelist = client.get(admin_url(model, "changelist"))
    assert changelist.status_code == (200 if may["view"] or may["change"] else 403)

    add = client.get(admin_url(model, "add"))
    assert add.status_code == (200 if may["add"] else 403)

    change_page = client.get(admin_url(model, "change", row.pk))
    assert change_page.status_code == (200 if may["view"] or may["change"] else 403)
    if change_page.status_code == 200:
        assert change_page.context["has_change_permission"] is may["change"]

    # Without the permission a change is refused before the form is read.
    change_post = client.post(admin_url(model, "change", row.pk), {})
    assert (change_post.status_code == 403) is (not may["change"])

    delete = client.post(admin_url(model, "delete", row.pk), {"post": "yes"})
    if may["delete"]:
        assert delete.status_code == 302
        assert not model._base_manager.filter(pk=row.pk).exists()
    else:
        assert delete.status_code == 403
        assert model._base_manager.filter(pk=row.pk).exists()


# --- members limited to granted agents (issue 11, item 4) -------------------------------------------
# Models whose rows belong to no agent: a limited member reaches them as its role allows.
COMPANY_WIDE = {Company, Membership, WebhookConfig, CustomFunction, Service, Resource, Closure}
AGENT_CASES = [(model, way) for model in TENANT_MODELS if model in AGENT_ROWS for way in AGENT_ROWS[model]]


# An owner's rights on rows that belong to agents are an admin's (asserted below): one of them is tried.
AGENT_ROW_ROLES = [Role.ADMIN.value, Role.EDITOR.value, Role.VIEWER.value]


def belongs_to_agents(model) -> bool:
    return getattr(model, "grantable", False) or limited_scope(model) is not None


def test_every_tenant_model_is_company_wide_or_belongs_to_agents():
    scoped = {model for model in TENANT_MODELS if belongs_to_agents(model)}
    assert scoped | COMPANY_WIDE == set(TENANT_MODELS) and not scoped & COMPANY_WIDE
    assert scoped == set(AGENT_ROWS) & set(TENANT_MODELS), "tests.factories.AGENT_ROWS makes a row of each"
    assert all(belongs_to_agents(model) for model in AGENT_ROWS)
    assert all(role_allows(Role.OWNER, model, action) == role_allows(Role.ADMIN, model, action)
               for model in AGENT_ROWS for action in ("view", "add", "change", "delete", "retry"))


@pytest.fixture
def limited(request, client, company_a):
    """A member of company A in the role under test, limited to the granted agent of two."""
    role = request.getfixturevalue("role")
    granted = Agent.objects.create(company=company_a, agent_id="agent_granted", name="Granted")
    hidden = Agent.objects.create(company=company_a, agent_id="agent_hidden", name="Hidden")
    member = make_member(company_a, role, limited=True)
    for action in ("view", "change", "delete"):
        assign_perm(f"retell_config.{action}_agent", member, granted)
    client.force_login(member)
    return member, granted, hidden


def snapshot(row) -> dict:
    row = type(row)._base_manager.get(pk=row.pk)
    return {name: value for name, value in model_to_dict(row).items() if not isinstance(value, list)}


@pytest.mark.django_db
@pytest.mark.parametrize("role", AGENT_ROW_ROLES)
@pytest.mark.parametrize("model, way", AGENT_CASES, ids=[f"{m._meta.label}-{w}" for m, w in AGENT_CASES])
def test_a_limited_member_reaches_only_the_rows_of_its_granted_agents(client, rf, model, way, role, limited):
    member, granted, hidden = limited
    request = rf.get("/")
    request.user = member
    own, other = AGENT_ROWS[model][way](granted), AGENT_ROWS[model][way](hidden)
    before = snapshot(other)

    listed = {row.pk for row in client.get(admin_url(model, "changelist")).context["cl"].queryset}
    pages = {view: client.get(admin_url(model, view, other.pk)).status_code for view in ("change", "history")}
    posts = {view: client.post(admin_url(model, view, other.pk), {"post": "yes"}).status_code
             for view in ("change", "delete")}
    actions = {name: client.post(admin_url(model, "changelist"), {"action": name, "_selected_action": [other.pk],
                                                                  "post": "yes"}).status_code
               for name in admin.site._registry[model].get_actions(request)}

    assert own.pk in listed and other.pk not in listed
    assert client.get(admin_url(model, "change", own.pk)).status_code == 200
    assert pages == {"change": 404, "history": 404}
    assert posts == {"change": 404, "delete": 404}
    assert all(status in (200, 302) for status in actions.values())
    assert snapshot(other) == before


ALL_AGENT_CASES = [(model, way) for model in AGENT_ROWS for way in AGENT_ROWS[model]]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["editor"])
@pytest.mark.parametrize("model, way", ALL_AGENT_CASES, ids=[f"{m._meta.label}-{w}" for m, w in ALL_AGENT_CASES])
def test_restrict_gives_a_limited_member_the_rows_of_its_granted_agents_for_every_action(model, way, role,
                                                                                        limited):
    member, granted, hidden = limited
    own, other = AGENT_ROWS[model][way](granted), AGENT_ROWS[model][way](hidden)

    for action in ("view", "change", "delete"):
        rows = set(model.objects.restrict(member, action).values_list("pk", flat=True))
        assert other.pk not in rows, action
        assert (own.pk in rows) is role_allows(role, model, action), action


@pytest.mark.django_db
@pytest.mark.parametrize("role", AGENT_ROW_ROLES)
@pytest.mark.parametrize("model", sorted(AGENTLESS_ROWS, key=lambda m: m._meta.label), **by_label)
def test_a_limited_member_reads_the_rows_of_no_agent_as_its_role_allows(client, company_a, model, role, limited):
    row = AGENTLESS_ROWS[model](company_a)

    listed = {row.pk for row in client.get(admin_url(model, "changelist")).context["cl"].queryset}

    assert role_allows(role, model, "view")
    assert row.pk in listed
    assert client.get(admin_url(model, "change", row.pk)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("model", sorted(COMPANY_WIDE, key=lambda m: m._meta.label), **by_label)
def test_a_limited_member_reaches_company_wide_models_as_its_role_allows(client, company_a, model, role, limited):
    row = make_for(model, company_a)
    may_view = role_allows(role, model, "view") or role_allows(role, model, "change")

    changelist = client.get(admin_url(model, "changelist"))
    change_page = client.get(admin_url(model, "change", row.pk))

    assert changelist.status_code == (200 if may_view else 403)
    if may_view:
        assert row.pk in {r.pk for r in changelist.context["cl"].queryset}
    assert change_page.status_code == (200 if may_view else 403)
    if change_page.status_code == 200:
        assert change_page.context["has_change_permission"] is role_allows(role, model, "change")


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "admin"])
def test_a_limited_member_retries_only_the_deliveries_of_its_granted_agents(client, role, limited):
    from audit.models import Delivery

    _, granted, hidden = limited
    own, other = (AGENT_ROWS[Delivery]["its call's record"](agent) for agent in (granted, hidden))
    Delivery.objects.update(status=Delivery.Status.DEAD)

    client.post(reverse("admin:audit_delivery_retry_since"), {"since": "2000-01-01 00:00:00"})
    one = client.post(reverse("admin:audit_delivery_retry", args=[other.pk]))

    assert one.status_code == 404
    assert Delivery.objects.get(pk=own.pk).status == Delivery.Status.PENDING
    assert Delivery.objects.get(pk=other.pk).status == Delivery.Status.DEAD
