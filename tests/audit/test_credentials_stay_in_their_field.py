"""Every field that grants access stays in its field: never in an audit diff, an admin page or a log line.

The fields are found generically (`tenants.fields.credential_fields`): every SecretField and
CredentialField of every model and the credentials of Django's own models. A guard test makes
sure that a field *named* like a credential is declared one, or is explained below as not one,
so a token added later cannot slip past these tests unnoticed.
"""

import io
import json
import logging
import re
import secrets

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.urls import NoReverseMatch, reverse

from audit.actor import Actor
from audit.log_filters import configured_filters
from audit.models import AuditEntry
from audit.services import instance_save
from retell_config import services as retell_services
from retell_config.models import Agent
from tenants.fields import CredentialField, SecretField, credential_fields
from tenants.models import Company, company_of_model
from tests.factories import make_for, make_member, make_user

ACTOR = Actor.system("test")
CREDENTIAL_NAME = re.compile(r"token|secret|key|hash|password|signature|credential|session", re.I)
# Fields named like a credential that grant nothing, and why.
NOT_CREDENTIALS = {
    "tenants.ApiToken.key_prefix": "the token's first 12 characters, shown to tell tokens apart (as GitHub does)",
    "audit.WebhookReceipt.dedupe_key": "the provider's event or call id, to drop repeats",
    "audit.Delivery.idempotency_key": "names the message for the backend's deduplication",
    "api.IdempotencyKey.key": "a REST client's Idempotency-Key, naming its own request so a repeat books once",
    "appointments.FunctionInvocation.args_hash": "a hash of a custom function's arguments, to answer a retry alike",
    "sessions.Session.session_data": "the session's contents; the session key is what opens it",
    "retell_config.Agent.previous_webhook_secret_expires_at": "when the replaced signing secret stops verifying",
    "retell_config.WebhookConfig.previous_secret_expires_at": "when the replaced signing secret stops verifying",
    "axes.AccessLog.session_hash": "django-axes' SHA-256 of a session key, to match a sign-out to its sign-in; "
                                   "it opens nothing (a session is found by its key, never by this hash)",
}


def label(model, field) -> str:
    return f"{model._meta.label}.{field.name}"


CREDENTIALS = sorted(credential_fields(), key=lambda pair: label(*pair))


def test_every_field_named_like_a_credential_is_declared_one_or_explained():
    declared = {label(model, field) for model, field in CREDENTIALS}
    undeclared = [label(model, field) for model in apps.get_models() for field in model._meta.concrete_fields
                  if CREDENTIAL_NAME.search(field.name) and not field.is_relation
                  and label(model, field) not in declared and label(model, field) not in NOT_CREDENTIALS]

    assert undeclared == [], "declare these CredentialField (or SecretField), or explain them in NOT_CREDENTIALS"
    assert {"retell_config.Agent.socket_token", "tenants.ApiToken.key_hash", "tenants.Company.backend_api_key",
            "retell_config.WebhookConfig.secret", "auth.User.password", "sessions.Session.session_key"} <= declared


# --- the audit trail, the admin and the logs, for every credential a company's row holds ----------
AUDITED = [(model, field) for model, field in CREDENTIALS if company_of_model(model)]


def credential_value(field) -> str:
    if isinstance(field, SecretField):
        return f"plain-{field.name}-{secrets.token_hex(8)}"
    return secrets.token_urlsafe(24)[:field.max_length or 64]


@pytest.fixture
def log_lines():
    """Everything logged meanwhile, through the filters of the configured console handler."""
    config = settings.LOGGING
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(config["formatters"]["plain"]["format"]))
    for log_filter in configured_filters():
        handler.addFilter(log_filter)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def admin_pages(row) -> list[str]:
    """The admin pages that show `row` or its audit trail: change, list, history, audit entries."""
    pages = []
    if type(row) in admin.site._registry:
        meta = row._meta
        for view, args in (("change", [row.pk]), ("changelist", []), ("history", [row.pk])):
            try:
                pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args))
            except NoReverseMatch:
                pass
    pages.append(reverse("admin:audit_auditentry_changelist"))
    pages += [reverse("admin:audit_auditentry_change", args=[pk]) for pk in AuditEntry.objects.values_list("pk", flat=True)]
    return pages


def assert_nowhere(value: str, *, clients, pages, logs: io.StringIO) -> None:
    for entry in AuditEntry.objects.all():
        assert value not in json.dumps(entry.changes), f"audit entry {entry.action} {entry.object_type}"
    for who, client in clients.items():
        for url in pages:
            response = client.get(url)
            assert value not in response.content.decode(), f"{url} as {who}"
    assert value not in logs.getvalue()


@pytest.fixture
def clients(company_a, client, django_user_model):
    from django.test import Client

    made = {}
    for role in ("owner", "viewer"):
        made[role] = Client()
        made[role].force_login(make_member(company_a, role))
    made["superuser"] = client
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-for-tests-only"))
    return made


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "field"), AUDITED, ids=[label(*pair) for pair in AUDITED])
def test_a_credential_written_through_the_services_is_redacted_in_the_audit_diff_and_shown_nowhere(
        company_a, clients, log_lines, model, field):
    # given a row holding a credential, created and then changed through the audited services
    first, second = credential_value(field), credential_value(field)
    if model is Company:
        created, changed = Company(name="Gamma Praxis", slug="gamma"), company_a
    else:
        created = make_for(model, company_a)
        created.delete()
        created.pk, created._state.adding = None, True
        changed = created
    setattr(created, field.attname, first)
    instance_save(actor=ACTOR, instance=created)
    setattr(changed, field.attname, second)
    instance_save(actor=ACTOR, instance=changed)

    # then each diff names the field only as redacted, and no page or log line shows a value
    entries = [e for e in AuditEntry.objects.all() if field.name in e.changes]
    assert entries, "the change was audited"
    for entry in entries:
        assert set(entry.changes[field.name].values()) <= {"[redacted]", None}
    for value in (first, second):
        assert_nowhere(value, clients=clients, pages=admin_pages(created) + admin_pages(changed), logs=log_lines)


@pytest.mark.django_db
def test_an_agents_socket_token_is_redacted_when_the_agent_is_created_and_when_its_token_is_rotated(
        company_a, clients, log_lines):
    agent = instance_save(actor=ACTOR, instance=Agent(company=company_a, agent_id="agent_tok", name="Token"))
    created_with = agent.socket_token

    retell_services.socket_token_rotate(actor=ACTOR, agent=agent, push=False)

    rotated_to = Agent.objects.get(pk=agent.pk).socket_token
    create, rotate = AuditEntry.objects.filter(object_type="retell_config.agent").order_by("pk")
    assert create.changes["socket_token"] == {"before": None, "after": "[redacted]"}
    assert rotate.action == "rotate_socket_token"
    assert rotate.changes == {"socket_token": {"before": "[redacted]", "after": "[redacted]"}}
    for value in (created_with, rotated_to):
        assert_nowhere(value, clients=clients, pages=admin_pages(agent), logs=log_lines)


@pytest.mark.django_db
def test_an_api_token_and_its_hash_appear_on_no_page_after_it_was_shown_once(client, log_lines):
    from tenants.models import ApiToken
    from tenants.services import api_token_create

    user = make_user(is_superuser=True)
    client.force_login(user)
    token, plaintext = api_token_create(actor=ACTOR, user=user, name="deploy")

    pages = [reverse("admin:tenants_apitoken_changelist"), reverse("admin:tenants_apitoken_change", args=[token.pk]),
             reverse("admin:audit_auditentry_changelist")]
    for value in (plaintext, ApiToken.objects.get(pk=token.pk).key_hash):
        assert_nowhere(value, clients={"its user": client}, pages=pages, logs=log_lines)


@pytest.mark.django_db
def test_a_password_hash_and_a_session_key_appear_on_no_page(client, log_lines):
    from django.contrib.sessions.models import Session

    user = make_user(is_superuser=True)
    client.force_login(user)
    user.refresh_from_db()

    pages = [reverse("admin:auth_user_changelist"), reverse("admin:auth_user_change", args=[user.pk])]
    password_hash = user.password.rsplit("$", 1)[-1]
    for value in (password_hash, Session.objects.get().session_key):
        assert_nowhere(value, clients={"superuser": client}, pages=pages, logs=log_lines)


def test_a_credential_field_keeps_the_plain_column_type_so_declaring_one_needs_no_migration():
    field = Agent._meta.get_field("socket_token")

    assert isinstance(field, CredentialField)
    assert field.deconstruct()[1] == "django.db.models.CharField"
