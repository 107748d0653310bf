from typing import ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from tenants.models import TenantOwned
from tenants.validators import validate_e164


def validate_phone_number_list(value) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError("Phone numbers are a list of E.164 strings.", code="invalid")
    for number in value:
        validate_e164(number)


class Agent(TenantOwned):
    """A Retell voice agent of one company."""

    agent_id = models.CharField(
        "Retell agent id", max_length=128, unique=True,
        validators=[RegexValidator(r"^[A-Za-z0-9_-]+$", "Letters, digits, _ and - only.")])
    name = models.CharField(max_length=200)
    phone_numbers = models.JSONField(default=list, blank=True, validators=[validate_phone_number_list],
                                     help_text='E.164 numbers, e.g. ["+493083793369"].')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    grantable: ClassVar[bool] = True

    class Meta:
        ordering = ["company__name", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.agent_id})"
