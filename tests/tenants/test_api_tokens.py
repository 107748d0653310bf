"""API tokens in the admin: made by their user, shown once, stored hashed, revoked."""

import re

import pytest
from django.urls import reverse

from tenants.models import ApiToken
from tenants.services import api_token_authenticate
from tests.factories import make_member


@pytest.mark.django_db
def test_a_member_makes_a_token_and_sees_it_once(client, company_a):
    user = make_member(company_a, "editor")
    client.force_login(user)

    response = client.post(reverse("admin:tenants_apitoken_add"), {"name": "deploy script"}, follow=True)

    shown = re.search(r"<code>(vdk_[A-Za-z0-9_-]+)</code>", response.content.decode())
    assert shown, "the new token is shown"
    token = ApiToken.objects.get()
    assert token.user == user and shown[1] not in token.key_hash
    assert api_token_authenticate(shown[1]) == token
    page = client.get(reverse("admin:tenants_apitoken_change", args=[token.pk])).content.decode()
    assert shown[1] not in page


@pytest.mark.django_db
def test_members_see_only_their_own_tokens_and_revoke_them(client, company_a):
    mine, theirs = make_member(company_a, "owner"), make_member(company_a, "viewer")
    for user in (mine, theirs):
        client.force_login(user)
        client.post(reverse("admin:tenants_apitoken_add"), {"name": f"token of {user.username}"})
    client.force_login(mine)
    own = ApiToken.objects.get(user=mine)

    listed = client.get(reverse("admin:tenants_apitoken_changelist")).context["cl"].queryset
    client.post(reverse("admin:tenants_apitoken_changelist"),
                {"action": "revoke", "_selected_action": [t.pk for t in ApiToken.objects.all()]})

    assert list(listed) == [own]
    assert ApiToken.objects.get(pk=own.pk).revoked_at is not None
    assert ApiToken.objects.get(user=theirs).revoked_at is None
