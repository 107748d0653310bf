"""SecretField: a model field whose column holds only ciphertext.

On the model instance the value is a `Secret` (or None), never a str: a secret
therefore cannot slip into a template, a log line, an exception or an audit diff by
accident. Code that needs the plaintext calls `.reveal()`.
"""

import hashlib

from django import forms
from django.db import models
from django.utils.text import capfirst

from . import crypto

MASK = "••••"


class Secret:
    __slots__ = ("_ciphertext",)

    def __init__(self, ciphertext: str) -> None:
        self._ciphertext = ciphertext

    @classmethod
    def from_plaintext(cls, plaintext: str) -> "Secret":
        return cls(crypto.encrypt(plaintext))

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
