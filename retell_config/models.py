import secrets
from typing import ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from tenants.models import TenantOwned
from tenants.validators import validate_e164

from .voices import DEFAULT_VOICE_ID, VOICE_CHOICES


def validate_phone_number_list(value) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError("Phone numbers are a list of E.164 strings.", code="invalid")
    for number in value:
        validate_e164(number)


def new_socket_token() -> str:
    return secrets.token_urlsafe(32)


class Agent(TenantOwned):
    """A Retell voice agent of one company."""

    class ResponseEngine(models.TextChoices):
        RETELL_LLM = "retell-llm", "Retell LLM (Retell runs the prompt and calls the custom functions)"
        CUSTOM_LLM = "custom-llm", "Custom LLM (Retell connects to this server's socket)"

    class DialogEngine(models.TextChoices):
        EMBEDDED = "embedded", "Embedded receptionist (offline, deterministic)"
        OPENAI = "openai", "OpenAI-compatible LLM (the company's LLM settings)"

    class Language(models.TextChoices):
        DE_DE = "de-DE", "German"
        EN_US = "en-US", "English (US)"
        EN_GB = "en-GB", "English (UK)"
        MULTI = "multi", "Multilingual"

    agent_id = models.CharField(
        "Retell agent id", max_length=128, unique=True,
        validators=[RegexValidator(r"^[A-Za-z0-9_-]+$", "Letters, digits, _ and - only.")])
    name = models.CharField(max_length=200)
    phone_numbers = models.JSONField(default=list, blank=True, validators=[validate_phone_number_list],
                                     help_text='E.164 numbers, e.g. ["+493083793369"].')
    response_engine = models.CharField(max_length=16, choices=ResponseEngine.choices,
                                       default=ResponseEngine.CUSTOM_LLM)
    llm_id = models.CharField("Retell LLM id", max_length=128, blank=True,
                              help_text="For the Retell LLM engine: the LLM that holds prompt and tools.")
    dialog_engine = models.CharField(max_length=16, choices=DialogEngine.choices, default=DialogEngine.EMBEDDED,
                                     help_text="Who answers on this server's socket (Custom LLM engine).")
    language = models.CharField(max_length=8, choices=Language.choices, default=Language.DE_DE)
    voice_id = models.CharField("ElevenLabs voice", max_length=64, choices=VOICE_CHOICES, default=DEFAULT_VOICE_ID)
    voice_stability = models.FloatField(default=0.5, validators=[MinValueValidator(0), MaxValueValidator(1)])
    voice_similarity_boost = models.FloatField(default=0.75, validators=[MinValueValidator(0), MaxValueValidator(1)])
    voice_speed = models.FloatField(default=1.0, validators=[MinValueValidator(0.5), MaxValueValidator(2.0)])
    begin_message = models.TextField("greeting", blank=True,
                                     help_text="What the agent says first; empty waits for the caller.")
    general_prompt = models.TextField("system prompt", blank=True)
    custom_instructions = models.TextField(blank=True)
    webhook_url = models.URLField("webhook URL override", blank=True,
                                  help_text="Empty: the company's webhook configuration applies.")
    socket_token = models.CharField(max_length=64, unique=True, default=new_socket_token, editable=False,
                                    help_text="Names this agent in its socket URL /retell-llm/<token>.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    grantable: ClassVar[bool] = True

    class Meta:
        ordering = ["company__name", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.agent_id})"
