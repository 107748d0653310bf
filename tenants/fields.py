"""Fields that grant access: SecretField (encrypted) and CredentialField (looked up in clear).

SecretField: the column holds only ciphertext. On the model instance the value is a
`Secret` (or None), never a str: a secret therefore cannot slip into a template, a log
line, an exception or an audit diff by accident. Code that needs the plaintext calls
`.reveal()`.

CredentialField: a value that opens something by itself but must be found by equality
(an agent's socket token, an API token's hash), so it stays plain text. The audit trail
redacts it like a secret; no admin page shows it.

`credential_fields()` lists both kinds, and Django's own, for every model.
"""

import hashlib

from django import forms
from django.conf import settings
from django.db import models
from django.utils.text import capfirst

from . import crypto
from .validators import validate_sendable_secret

MASK = "••••"


class Secret:
    __slots__ = ("_ciphertext", "_new")

    def __init__(self, ciphertext: str) -> None:
        self._ciphertext = ciphertext
        self._new = False

    @classmethod
    def from_plaintext(cls, plaintext: str) -> "Secret":
        secret = cls(crypto.encrypt(plaintext))
        # Only a value being set is checked, so a key stored before the check does not block
        # other changes of its row (its deliveries fail with a recorded reason instead).
        secret._new = True
        return secret

    @property
    def is_new(self) -> bool:
        """Made from plaintext in this process (being set), not read from the database."""
        return self._new

    @property
    def ciphertext(self) -> str:
        return self._ciphertext

    def reveal(self) -> str:
        return crypto.decrypt(self._ciphertext)

    @property
    def masked(self) -> str:
        """The last four characters, behind a mask; only the mask for short secrets."""
        plaintext = self.reveal()
        return MASK + plaintext[-4:] if len(plaintext) >= 12 else MASK

    def fingerprint(self) -> str:
        """Tells whether two secrets hold the same value without storing either."""
        return hashlib.sha256(self.reveal().encode()).hexdigest()

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__


class _SecretDescriptor:
    def __init__(self, field: "SecretField") -> None:
        self.field = field

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        return instance.__dict__.get(self.field.attname)

    def __set__(self, instance, value) -> None:
        instance.__dict__[self.field.attname] = self.field.to_python(value)


class SecretField(models.TextField):
    """Encrypted text. Assign a plaintext str; read back a Secret."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("editable", True)
        super().__init__(*args, **kwargs)

    def contribute_to_class(self, cls, name, private_only=False) -> None:
        super().contribute_to_class(cls, name, private_only=private_only)
        setattr(cls, self.attname, _SecretDescriptor(self))

    def from_db_value(self, value, expression, connection):
        return Secret(value) if value else None

    def to_python(self, value):
        if value is None or isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return Secret.from_plaintext(value) if value else None
        raise TypeError("A secret is assigned as a str.")

    def get_prep_value(self, value):
        value = self.to_python(value)
        return value.ciphertext if value is not None else None

    def validate(self, value, model_instance) -> None:
        """A new secret must be sendable (tenants.validators.validate_sendable_secret)."""
        super().validate(value, model_instance)
        if isinstance(value, Secret) and value.is_new:
            validate_sendable_secret(value.reveal())

    def value_to_string(self, obj) -> str:
        # Serialisation (dumpdata, fixtures) never carries plaintext.
        return ""

    def formfield(self, **kwargs):
        return SecretFormField(required=not self.blank, label=capfirst(self.verbose_name),
                               help_text=self.help_text)

    def save_form_data(self, instance, data) -> None:
        if data is SecretFormField.KEEP:
            return
        setattr(instance, self.attname, None if data is SecretFormField.CLEAR else data)


class SecretWidget(forms.Widget):
    """Shows the stored secret masked, takes a replacement, never renders a value back."""

    template_name = "tenants/widgets/secret.html"

    def get_context(self, name, value, attrs):
        context = super().get_context(name, None, attrs)
        context["widget"]["masked"] = value.masked if isinstance(value, Secret) else ""
        return context

    def value_from_datadict(self, data, files, name):
        return {"new": data.get(name, ""), "clear": bool(data.get(f"{name}__clear"))}

    def value_omitted_from_data(self, data, files, name) -> bool:
        return name not in data and f"{name}__clear" not in data


class SecretFormField(forms.Field):
    widget = SecretWidget
    KEEP = object()
    CLEAR = object()

    def clean(self, value):
        value = value or {"new": "", "clear": False}
        new = value["new"].strip()
        if new:
            return new
        if value["clear"]:
            if self.required:
                raise forms.ValidationError("This secret is required.", code="required")
            return self.CLEAR
        return self.KEEP

    def has_changed(self, initial, data) -> bool:
        return bool(data and (data["new"].strip() or data["clear"]))

    def bound_data(self, data, initial):
        # Re-rendering a form with errors shows the stored mask, not what was typed.
        return initial


class CredentialField(models.CharField):
    """Plain text that grants access by itself and is found by equality: an agent's socket
    token, an API token's SHA-256. Never editable, shown or diffed (audit.services redacts it)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["editable"] = False
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        # The column is a CharField's; only behaviour differs, so migrations keep seeing one
        # and declaring a field a credential needs none.
        return name, "django.db.models.CharField", args, kwargs


# Django's own columns that open an account or a session, by model label.
_FRAMEWORK_CREDENTIALS = {"sessions.session": {"session_key"}}


def is_credential(field) -> bool:
    """Does this model field hold something that grants access (a secret, a token, a hash of one)?"""
    if isinstance(field, SecretField | CredentialField):
        return True
    label = field.model._meta.label_lower
    if label == settings.AUTH_USER_MODEL.lower() and field.name == "password":
        return True
    return field.name in _FRAMEWORK_CREDENTIALS.get(label, ())


def credential_fields() -> list[tuple[type[models.Model], models.Field]]:
    """(model, field) for every concrete field of every installed model that grants access."""
    from django.apps import apps

    return [(model, field) for model in apps.get_models() for field in model._meta.concrete_fields
            if is_credential(field)]
