import io

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command

from appointments.models import Service
from audit.models import AuditEntry
from retell_config.models import Agent
from tenants.models import Company, Membership


def row_counts() -> dict:
    return {m._meta.label: m._base_manager.count() for m in apps.get_models()}


@pytest.mark.django_db
def test_seed_demo_creates_the_seeds_companies_and_agents(monkeypatch):
    monkeypatch.setenv("VOICEDESK_DEMO_PASSWORD", "demo-pass-for-tests")
    out = io.StringIO()
    call_command("seed_demo", "--print-login", stdout=out)

    demo = Company.objects.get(name="AskProAI Demo Company")
    assert (demo.timezone, demo.language) == ("Europe/Berlin", "de")
    agents = {a.agent_id: a for a in Agent.objects.filter(company=demo)}
    assert agents["agent_abc123"].name == "Main Reception Agent"
    assert agents["agent_abc123"].phone_numbers == ["+493083793369"]
    assert agents["agent_xyz789"].name == "Backup Agent"
    assert agents["agent_xyz789"].phone_numbers == ["+493083793370"]
    dental = Company.objects.get(timezone="America/New_York")
    assert dental.language == "en"
    assert Membership.objects.filter(company=dental, role="owner").count() == 1
    assert "demo-pass-for-tests" in out.getvalue()
    assert set(Service.objects.filter(company=demo).values_list("name", flat=True)) == {
        "Kontrolluntersuchung", "Professionelle Zahnreinigung", "Beratungsgespräch"}
    assert set(Service.objects.filter(company=dental).values_list("name", flat=True)) == {
        "Check-up", "Teeth cleaning", "Whitening consultation"}


@pytest.mark.django_db
def test_seed_demo_twice_changes_nothing(monkeypatch):
    monkeypatch.setenv("VOICEDESK_DEMO_PASSWORD", "demo-pass-for-tests")
    call_command("seed_demo", stdout=io.StringIO())
    before = row_counts()
    stamps = list(Company.objects.values_list("updated_at", flat=True))

    out = io.StringIO()
    call_command("seed_demo", stdout=out)

    assert row_counts() == before
    assert list(Company.objects.values_list("updated_at", flat=True)) == stamps
    assert "nothing changed" in out.getvalue()


@pytest.mark.django_db
def test_create_company_and_add_member_leave_audit_entries():
    call_command("create_company", "Praxis Nord", "--timezone", "Europe/Berlin", "--phone", "+49 40 1234 5678",
                 stdout=io.StringIO())
    company = Company.objects.get(slug="praxis-nord")
    assert company.phone == "+494012345678"

    out = io.StringIO()
    call_command("add_member", "anna", "praxis-nord", "editor", "--email", "anna@example.com", stdout=out)

    membership = Membership.objects.get(user__username="anna", company=company)
    assert membership.role == "editor" and membership.user.is_staff
    assert not membership.user.has_usable_password()
    assert "changepassword anna" in out.getvalue()
    assert list(AuditEntry.objects.filter(company=company).values_list("action", "object_type", "actor_label")) == [
        ("create", "tenants.membership", "manage.py add_member"),
        ("create", "tenants.company", "manage.py create_company"),
    ]


@pytest.mark.django_db
def test_commands_explain_bad_input():
    with pytest.raises(CommandError, match="No company with slug 'nowhere'"):
        call_command("add_member", "anna", "nowhere", "editor")
    with pytest.raises(CommandError, match="timezone"):
        call_command("create_company", "Mars Dental", "--timezone", "Mars/Base")
    assert not Company.objects.filter(name="Mars Dental").exists()
