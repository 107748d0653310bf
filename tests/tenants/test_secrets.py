import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from audit.models import AuditEntry
from tenants.crypto import SecretDecryptionError
from tenants.fields import Secret
from tenants.models import Company
from tenants.services import secret_fields
from tests.factories import make_for

PLAINTEXT = "key_live_9f8e7d6c5b4a3210ffee"


def raw_column(company: Company, column: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM tenants_company WHERE id = %s", [company.pk])
        return cursor.fetchone()[0]


@pytest.fixture
def keys(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    return old, new


@pytest.mark.django_db
def test_the_column_holds_ciphertext_and_the_model_a_secret(company_a):
    company_a.retell_api_key = PLAINTEXT
    company_a.save()

    stored = raw_column(company_a, "retell_api_key")
    assert stored and PLAINTEXT not in stored
    reloaded = Company.objects.get(pk=company_a.pk)
    assert isinstance(reloaded.retell_api_key, Secret)
    assert reloaded.retell_api_key.reveal() == PLAINTEXT
    assert PLAINTEXT not in repr(reloaded.retell_api_key) and PLAINTEXT not in str(reloaded.retell_api_key)
    assert reloaded.retell_api_key.masked == "••••ffee"


@pytest.mark.django_db
def test_every_secret_column_holds_only_ciphertext(company_a):
    for model, names in secret_fields():
        row = make_for(model, company_a)
        for name in names:
            setattr(row, name, f"{name}-plaintext-value-1234")
        row.save()
        for name in names:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {name} FROM {model._meta.db_table} WHERE id = %s", [row.pk])
                stored = cursor.fetchone()[0]
            assert stored and f"{name}-plaintext-value-1234" not in stored, f"{model._meta.label}.{name}"


@pytest.mark.django_db
def test_rotation_moves_every_secret_to_the_new_key_and_old_ciphertexts_still_read(settings, keys, company_a, company_b):
    old, new = keys
    company_a.retell_api_key = PLAINTEXT
    company_a.backend_api_key = "backend-secret-abcdef"
    company_a.save()
    company_b.twilio_auth_token = "twilio-token-0123456789"
    company_b.save()
    before = raw_column(company_a, "retell_api_key")

    # given both keys, the new one first: old ciphertexts still decrypt
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    assert Company.objects.get(pk=company_a.pk).retell_api_key.reveal() == PLAINTEXT

    call_command("rotate_encryption_keys")

    assert raw_column(company_a, "retell_api_key") != before
    # with only the new key left, every secret still decrypts
    settings.FIELD_ENCRYPTION_KEYS = [new]
    a, b = Company.objects.get(pk=company_a.pk), Company.objects.get(pk=company_b.pk)
    assert a.retell_api_key.reveal() == PLAINTEXT
    assert a.backend_api_key.reveal() == "backend-secret-abcdef"
    assert b.twilio_auth_token.reveal() == "twilio-token-0123456789"
    entry = AuditEntry.objects.get(action="rotate_encryption_keys")
    assert entry.changes["secrets_reencrypted"]["after"] == 3
    assert entry.company is None


@pytest.mark.django_db
def test_without_the_old_key_an_unrotated_secret_fails_without_leaking(settings, keys, company_a):
    old, new = keys
    company_a.retell_api_key = PLAINTEXT
    company_a.save()
    settings.FIELD_ENCRYPTION_KEYS = [new]

    with pytest.raises(SecretDecryptionError) as excinfo:
        Company.objects.get(pk=company_a.pk).retell_api_key.reveal()
    assert PLAINTEXT not in str(excinfo.value) and old not in str(excinfo.value)


@pytest.mark.django_db
def test_no_admin_page_renders_a_plaintext_secret(owner_client, company_a, django_user_model):
    company_a.retell_api_key = PLAINTEXT
    company_a.twilio_auth_token = "twilio-token-0123456789"
    company_a.save()
    saved = owner_client.post(reverse("admin:tenants_company_change", args=[company_a.pk]),
                              _company_form(company_a, elevenlabs_api_key="eleven-secret-value-9999"))
    assert saved.status_code == 302
    assert Company.objects.get(pk=company_a.pk).elevenlabs_api_key.reveal() == "eleven-secret-value-9999"
    pages = [
        reverse("admin:tenants_company_change", args=[company_a.pk]),
        reverse("admin:tenants_company_changelist"),
        reverse("admin:tenants_company_history", args=[company_a.pk]),
        reverse("admin:audit_auditentry_changelist"),
    ] + [reverse("admin:audit_auditentry_change", args=[e.pk]) for e in AuditEntry.objects.all()]
    for url in pages:
        html = owner_client.get(url).content.decode()
        for secret in (PLAINTEXT, "twilio-token-0123456789", "eleven-secret-value-9999"):
            assert secret not in html, url
    change_page = owner_client.get(pages[0]).content.decode()
    assert "••••ffee" in change_page


@pytest.mark.django_db
def test_leaving_a_secret_blank_keeps_it_and_remove_clears_it(owner_client, company_a):
    company_a.retell_api_key = PLAINTEXT
    company_a.save()
    url = reverse("admin:tenants_company_change", args=[company_a.pk])

    assert owner_client.post(url, _company_form(company_a)).status_code == 302
    assert Company.objects.get(pk=company_a.pk).retell_api_key.reveal() == PLAINTEXT

    assert owner_client.post(url, _company_form(company_a, retell_api_key="key_new_value_000011112222")).status_code == 302
    assert Company.objects.get(pk=company_a.pk).retell_api_key.reveal() == "key_new_value_000011112222"

    assert owner_client.post(url, _company_form(company_a, retell_api_key__clear="on")).status_code == 302
    assert Company.objects.get(pk=company_a.pk).retell_api_key is None


def _company_form(company: Company, **overrides) -> dict:
    data = {
        "name": company.name, "slug": company.slug, "is_active": "on", "timezone": company.timezone,
        "language": company.language, "phone": company.phone, "address": company.address,
        "opening_hours": "{}", "twilio_account_sid": "", "backend_url": "",
    }
    data.update(overrides)
    return data


# --- a secret that could not be sent is refused when it is saved -------------------------------
UNSENDABLE = {"en dash": "backend–key-0123456789abcdef", "line break": "backend-key\n0123456789abcdef",
              "inner space": "backend key 0123456789abcdef", "NUL": "backend-key\x000123456789abcdef",
              "umlaut": "backend-kéy-0123456789abcdef"}


@pytest.mark.django_db
@pytest.mark.parametrize("key", UNSENDABLE.values(), ids=UNSENDABLE)
def test_the_admin_refuses_a_key_that_an_http_header_cannot_carry_and_says_why(owner_client, company_a, key):
    response = owner_client.post(reverse("admin:tenants_company_change", args=[company_a.pk]),
                                 _company_form(company_a, backend_api_key=key))

    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["backend_api_key"]
    assert "cannot" in error and "header" in error
    assert "0123456789abcdef" not in response.content.decode()
    assert Company.objects.get(pk=company_a.pk).backend_api_key is None


@pytest.mark.django_db
@pytest.mark.parametrize("field", [name for model, names in secret_fields() if model is Company for name in names])
def test_every_service_refuses_a_secret_with_an_en_dash_in_any_secret_field(company_a, field):
    from django.core.exceptions import ValidationError

    from audit.actor import Actor
    from tenants.services import company_update

    with pytest.raises(ValidationError) as refused:
        company_update(actor=Actor.system("test"), company=company_a, **{field: "key–0123456789abcdef"})

    assert field in refused.value.message_dict
    assert "0123456789abcdef" not in str(refused.value)
    assert Company.objects.get(pk=company_a.pk).__dict__[field] is None


@pytest.mark.django_db
def test_the_webhook_service_refuses_a_signing_secret_with_a_line_break(company_a):
    from django.core.exceptions import ValidationError

    from audit.actor import Actor
    from retell_config.services import webhook_update

    with pytest.raises(ValidationError) as refused:
        webhook_update(actor=Actor.system("test"), company=company_a, url="https://hooks.example.com/retell",
                       events=["call_ended"], secret="whsec_0123456789abcdef\n", push=False)

    assert "secret" in refused.value.message_dict


@pytest.mark.django_db
def test_a_key_stored_before_the_check_does_not_block_other_changes_of_its_company(company_a):
    from audit.actor import Actor
    from tenants.services import company_update

    company_a.backend_api_key = "backend–key-0123456789abcdef"
    company_a.save()  # stored before keys were checked when saved

    company_update(actor=Actor.system("test"), company=Company.objects.get(pk=company_a.pk), name="Alpha Praxis Süd")

    assert Company.objects.get(pk=company_a.pk).name == "Alpha Praxis Süd"
