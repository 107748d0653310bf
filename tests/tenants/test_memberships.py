import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.actor import Actor
from tenants.models import Membership
from tenants.services import membership_delete, membership_save
from tests.factories import make_member, make_user


def add_membership(client, company, user, role):
    return client.post(reverse("admin:tenants_membership_add"),
                       {"company": company.pk, "user": user.pk, "role": role})


@pytest.mark.django_db
def test_an_admin_adds_members_up_to_their_own_role(client, company_a):
    admin_user = make_member(company_a, "admin")
    colleague = make_member(company_a, "viewer")
    newcomer = make_user()
    Membership.objects.create(user=newcomer, company=company_a, role="viewer")
    client.force_login(admin_user)
    promote = reverse("admin:tenants_membership_change",
                      args=[Membership.objects.get(user=colleague).pk])

    assert client.post(promote, {"role": "admin"}).status_code == 302
    response = client.post(reverse("admin:tenants_membership_change",
                                   args=[Membership.objects.get(user=newcomer).pk]), {"role": "owner"})
    assert response.status_code == 200
    assert "role" in response.context["adminform"].form.errors
    assert Membership.objects.get(user=newcomer).role == "viewer"


@pytest.mark.django_db
def test_an_admin_cannot_touch_an_owners_membership(client, company_a, owner_a):
    client.force_login(make_member(company_a, "admin"))
    owner_membership = Membership.objects.get(user=owner_a)

    assert client.post(reverse("admin:tenants_membership_change", args=[owner_membership.pk]),
                       {"role": "viewer"}).status_code == 403
    assert client.post(reverse("admin:tenants_membership_delete", args=[owner_membership.pk]),
                       {"post": "yes"}).status_code == 403
    assert Membership.objects.get(pk=owner_membership.pk).role == "owner"


@pytest.mark.django_db
def test_a_company_keeps_its_last_owner(company_a, owner_a):
    membership = Membership.objects.get(user=owner_a)
    membership.role = "admin"
    with pytest.raises(ValidationError):
        membership_save(actor=Actor.system("test"), membership=membership)
    with pytest.raises(ValidationError):
        membership_delete(actor=Actor.system("test"), membership=Membership.objects.get(user=owner_a))
    assert Membership.objects.get(user=owner_a).role == "owner"


@pytest.mark.django_db
def test_staff_choose_members_only_among_their_companies_people(owner_client, company_a, company_b):
    outsider = make_member(company_b, "viewer")
    response = owner_client.get(reverse("admin:tenants_membership_add"))
    assert outsider not in response.context["adminform"].form.fields["user"].queryset
