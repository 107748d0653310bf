import pytest
from django.urls import reverse

from audit.actor import Actor
from audit.models import AuditEntry
from tenants.models import Company
from tenants.services import company_update


@pytest.mark.django_db
def test_a_change_through_the_admin_leaves_one_entry_with_the_diff_and_redacted_secrets(owner_client, owner_a, company_a):
    company_a.retell_api_key = "key_old_value_aaaabbbbcccc"
    company_a.save()
    AuditEntry.objects.all().delete()

    response = owner_client.post(
        reverse("admin:tenants_company_change", args=[company_a.pk]),
        {"name": "Alpha Praxis Mitte", "slug": company_a.slug, "is_active": "on", "timezone": "Europe/Berlin",
         "language": "de", "phone": "+493012345678", "address": "", "opening_hours": "{}",
         "twilio_account_sid": "", "backend_url": "", "retell_api_key": "key_new_value_ddddeeeeffff"},
        HTTP_X_REQUEST_ID="req-abc-123", REMOTE_ADDR="203.0.113.7",
    )

    assert response.status_code == 302
    entry = AuditEntry.objects.get()
    assert entry.action == "update"
    assert entry.company == company_a
    assert (entry.actor_kind, entry.actor_user, entry.actor_label) == ("user", owner_a, owner_a.username)
    assert entry.object_type == "tenants.company" and entry.object_id == str(company_a.pk)
    assert entry.changes == {
        "name": {"before": "Alpha Praxis", "after": "Alpha Praxis Mitte"},
        "phone": {"before": "", "after": "+493012345678"},
        "retell_api_key": {"before": "[redacted]", "after": "[redacted]"},
    }
    assert (entry.request_id, entry.ip) == ("req-abc-123", "203.0.113.7")
    assert "key_old_value" not in str(entry.changes) and "key_new_value" not in str(entry.changes)


@pytest.mark.django_db
def test_a_change_through_a_service_leaves_one_entry(company_a):
    AuditEntry.objects.all().delete()

    company_update(actor=Actor.system("test"), company=company_a, address="Unter den Linden 1",
                   backend_api_key="backend-key-12345678")

    entry = AuditEntry.objects.get()
    assert (entry.actor_kind, entry.actor_label, entry.actor_user) == ("system", "test", None)
    assert entry.changes == {
        "address": {"before": "", "after": "Unter den Linden 1"},
        "backend_api_key": {"before": None, "after": "[redacted]"},
    }


@pytest.mark.django_db
def test_an_update_that_changes_nothing_writes_nothing(company_a):
    company_update(actor=Actor.system("test"), company=company_a, address="Same street 1")
    stamp = Company.objects.get(pk=company_a.pk).updated_at
    count = AuditEntry.objects.count()

    company_update(actor=Actor.system("test"), company=company_a, address="Same street 1")

    assert AuditEntry.objects.count() == count
    assert Company.objects.get(pk=company_a.pk).updated_at == stamp


@pytest.mark.django_db
def test_an_invalid_change_is_refused_and_not_audited(company_a):
    from django.core.exceptions import ValidationError

    count = AuditEntry.objects.count()
    with pytest.raises(ValidationError) as excinfo:
        company_update(actor=Actor.system("test"), company=company_a, timezone="Mars/Olympus_Mons")
    assert "timezone" in excinfo.value.message_dict
    assert AuditEntry.objects.count() == count
    assert Company.objects.get(pk=company_a.pk).timezone == "Europe/Berlin"


@pytest.mark.django_db
def test_deleting_through_the_admin_is_audited_with_the_last_values(owner_client, company_a):
    from retell_config.models import Agent

    agent = Agent.objects.create(company=company_a, agent_id="agent_del1", name="Old Agent")
    response = owner_client.post(reverse("admin:retell_config_agent_delete", args=[agent.pk]), {"post": "yes"})

    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="delete")
    assert entry.object_type == "retell_config.agent" and entry.object_id == str(agent.pk)
    assert entry.changes["agent_id"] == {"before": "agent_del1", "after": None}


@pytest.mark.django_db
def test_audit_entries_cannot_be_changed_even_by_a_superuser(client, django_user_model, company_a):
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    company_update(actor=Actor.system("test"), company=company_a, address="Somewhere 2")
    entry = AuditEntry.objects.first()

    assert client.post(reverse("admin:audit_auditentry_change", args=[entry.pk]), {}).status_code == 403
    assert client.post(reverse("admin:audit_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:audit_auditentry_add")).status_code == 403
