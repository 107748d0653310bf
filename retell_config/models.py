import hashlib
import secrets
from typing import ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.conf import settings
from django.db import models

from tenants.fields import CredentialField, SecretField
from tenants.models import TenantOwned
from tenants.roles import READ_ONLY_POLICY
from tenants.validators import validate_e164

from .voices import DEFAULT_VOICE_ID


def validate_phone_number_list(value) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError("Phone numbers are a list of E.164 strings.", code="invalid")
    for number in value:
        validate_e164(number)


def new_socket_token() -> str:
    return secrets.token_urlsafe(32)


TOOL_KEY_PREFIX = "vdtk_"


def new_tool_key() -> str:
    """A key for an agent's ElevenLabs webhook tools (sent as `Authorization: Bearer <key>`)."""
    return TOOL_KEY_PREFIX + secrets.token_urlsafe(32)


def tool_key_hash(key: str) -> str:
    """What is stored of a tool key: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


# The Retell language an agent gets from its company's language (Company.language).
COMPANY_AGENT_LANGUAGES = {"de": "de-DE", "en": "en-US"}


def agent_language_for(company_language: str) -> str:
    """The Retell language code for an agent of a company speaking `company_language`.

    "de" -> "de-DE", "en" -> "en-US"; a language without its own code here -> "multi"
    (the agent then follows the company's language on every call).
    """
    return COMPANY_AGENT_LANGUAGES.get((company_language or "").lower(), "multi")


def agent_language_matches(agent_language: str, company_language: str) -> bool:
    """Does an agent speaking `agent_language` ("en-GB", "multi", ...) speak its company's language ("en")?"""
    return agent_language == "multi" or agent_language.lower().split("-")[0] == (company_language or "").lower()


# The one answer for an agent id that cannot be added, whichever company (this one or another) holds it.
AGENT_ID_UNAVAILABLE = "This Retell agent id cannot be added here. Check the id in your Retell dashboard."


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
    language = models.CharField(
        max_length=8, choices=Language.choices, blank=True,
        help_text="Empty: the company's language (de: de-DE, en: en-US), filled in when the agent is saved.")
    # Any id Retell holds is kept (a sync takes it as it is); a push from a form is checked
    # against the company's voice list (services.agent_update).
    voice_id = models.CharField("Retell voice", max_length=128, default=DEFAULT_VOICE_ID,
                                help_text="Retell's voice id, e.g. 11labs-Adrian, as Retell's voice list gives it.")
    voice_speed = models.FloatField(default=1.0, validators=[MinValueValidator(0.5), MaxValueValidator(2.0)])
    elevenlabs_voice_id = models.CharField(
        "ElevenLabs voice (this server's speech)", max_length=64, blank=True,
        help_text="The voice of this server's own speech (the Twilio path), with the stability and similarity "
                  "below; empty: ELEVENLABS_VOICE_ID. Not sent to Retell.")
    voice_stability = models.FloatField(default=0.5, validators=[MinValueValidator(0), MaxValueValidator(1)])
    voice_similarity_boost = models.FloatField(default=0.75, validators=[MinValueValidator(0), MaxValueValidator(1)])
    begin_message = models.TextField("greeting", blank=True,
                                     help_text="What the agent says first; empty waits for the caller.")
    general_prompt = models.TextField("system prompt", blank=True)
    custom_instructions = models.TextField(blank=True)
    webhook_url = models.URLField("webhook URL override", blank=True,
                                  help_text="Empty: the company's webhook configuration applies.")
    webhook_secret = SecretField(
        verbose_name="webhook signing secret override",
        help_text="Verifies x-retell-signature on this agent's webhooks and custom-function calls; empty: the "
                  "company's webhook secret (else its Retell API key) verifies them.")
    previous_webhook_secret = SecretField(editable=False,
                                          help_text="The secret before the last change, accepted until it expires.")
    previous_webhook_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    socket_token = CredentialField(max_length=64, unique=True, default=new_socket_token, editable=False,
                                   help_text="Names this agent in its socket URL /retell-llm/{token}.")
    elevenlabs_tool_key_hash = CredentialField(
        "ElevenLabs tool key (SHA-256)", max_length=64, blank=True, default="",
        help_text="Of the key this agent's ElevenLabs webhook tools send; set by each ElevenLabs export.")
    elevenlabs_tools_exported_at = models.DateTimeField(
        "ElevenLabs tools exported", null=True, blank=True, editable=False,
        help_text="When the ElevenLabs tools were last exported for this agent with a new key.")
    remote_state = models.JSONField(default=dict, blank=True, editable=False,
                                    help_text="What Retell held at the last sync: the base drift is measured from.")
    remote_drift = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text="The drift the last sync reported and no one has resolved yet: per field, ours and Retell's. "
                  "A push of a drifted field needs a choice of side (services.agent_update).")
    synced_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    grantable: ClassVar[bool] = True

    class Meta:
        ordering = ["company__name", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.agent_id})"

    def clean(self) -> None:
        # Filled before the audit trail compares old and new, so it records the language kept.
        self._language_from_company()
        super().clean()

    def unique_error_message(self, model_class, unique_check):
        if model_class is Agent and tuple(unique_check) == ("agent_id",):
            # Agent ids are unique across companies: the answer must not tell that another one holds it.
            return ValidationError(AGENT_ID_UNAVAILABLE, code="agent_id_unavailable")
        return super().unique_error_message(model_class, unique_check)

    def save(self, *args, **kwargs) -> None:
        self._language_from_company()
        super().save(*args, **kwargs)

    def _language_from_company(self) -> None:
        # Every way an agent is made (service, admin, sync, a bare create) starts in its company's language.
        if not self.language and self.company_id:
            self.language = agent_language_for(self.company.language)


# --- what this product keeps about Retell beyond the agents ---------------------------

class WebhookEvent(models.TextChoices):
    """The events a company subscribes to, as the seed names them."""

    CALL_STARTED = "call_started", "call_started — Triggered when call begins"
    CALL_ENDED = "call_ended", "call_ended — Triggered when call completes"
    CALL_ANALYZED = "call_analyzed", "call_analyzed — Triggered after call analysis"
    TRANSCRIPT_UPDATED = "transcript_updated", "transcript_updated — Triggered on each transcript update"
    CALL_TRANSFERRED = "call_transferred", "call_transferred — Triggered on call transfer"


DEFAULT_WEBHOOK_EVENTS = ["call_started", "call_ended", "call_analyzed"]


def default_webhook_events() -> list[str]:
    return list(DEFAULT_WEBHOOK_EVENTS)


def validate_webhook_events(value) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError("Events are a list of event names.", code="invalid")
    unknown = sorted(set(value) - set(WebhookEvent.values))
    if unknown:
        raise ValidationError("Unknown event %(unknown)s; choose from %(known)s.",
                              params={"unknown": ", ".join(unknown), "known": ", ".join(WebhookEvent.values)},
                              code="unknown_event")


class WebhookConfig(TenantOwned):
    """The company's Retell webhook: where Retell posts call events, for all or some agents."""

    class ApplyTo(models.TextChoices):
        ALL = "all", "All agents in company"
        SELECTED = "selected", "Selected agents only"

    url = models.URLField("webhook URL", max_length=500, blank=True)
    events = models.JSONField(default=default_webhook_events, blank=True, validators=[validate_webhook_events])
    secret = SecretField(verbose_name="signing secret",
                         help_text="Verifies x-retell-signature on Retell's requests; empty uses the company's "
                                   "Retell API key (Retell signs with the webhook-badged key).")
    previous_secret = SecretField(editable=False,
                                  help_text="The secret before the last change, accepted until it expires.")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    apply_to = models.CharField(max_length=8, choices=ApplyTo.choices, default=ApplyTo.ALL)
    agents = models.ManyToManyField(Agent, blank=True, related_name="+",
                                    help_text="Used when applied to selected agents only.")
    deployed_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "webhook configuration"
        constraints = [models.UniqueConstraint(fields=["company"], name="webhookconfig_one_per_company")]

    def __str__(self) -> str:
        return f"Webhook of {self.company}" if self.company_id else "Webhook"

    def applies_to(self, agent: "Agent", selected_ids: set[int] | None = None) -> bool:
        if not self.url:
            return False
        if self.apply_to == self.ApplyTo.ALL:
            return True
        if selected_ids is None:
            selected_ids = {a.pk for a in self.agents.all()}
        return agent.pk in selected_ids


FUNCTION_NAME_RE = r"^[A-Za-z0-9_-]{1,64}$"


def validate_function_parameters(value) -> None:
    """A Retell custom function's parameters: a JSON Schema whose top level is an object."""
    from .protocols.retell_api import parameters_schema_errors

    errors = parameters_schema_errors(value)
    if errors:
        raise ValidationError([ValidationError(e, code="invalid_schema") for e in errors])


def validate_string_map(value) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValidationError('An object of strings, e.g. {"function": "cancel_appointment"}.', code="invalid")


class CustomFunction(TenantOwned):
    """A Retell custom function (tool) of a company, and the agents it is deployed to."""

    class Method(models.TextChoices):
        GET = "GET", "GET"
        POST = "POST", "POST"
        PUT = "PUT", "PUT"
        PATCH = "PATCH", "PATCH"
        DELETE = "DELETE", "DELETE"

    name = models.CharField(max_length=64, validators=[RegexValidator(
        FUNCTION_NAME_RE, "Letters, digits, _ and - only, at most 64 characters, no spaces (Retell's rule).")])
    description = models.TextField(blank=True)
    parameters = models.JSONField(default=dict, blank=True, validators=[validate_function_parameters],
                                  help_text='JSON Schema with "type": "object" at the top, as Retell requires.')
    url = models.URLField(max_length=500, help_text="The endpoint Retell calls.")
    method = models.CharField(max_length=6, choices=Method.choices, default=Method.POST)
    query_params = models.JSONField(default=dict, blank=True, validators=[validate_string_map])
    speak_during_execution = models.BooleanField(default=True)
    speak_after_execution = models.BooleanField(default=True)
    execution_message = models.TextField(
        blank=True, help_text="What the agent says while the function runs, e.g. \"One moment, let me check.\"")
    timeout_ms = models.PositiveIntegerField(default=120000,
                                             validators=[MinValueValidator(1000), MaxValueValidator(600000)])
    args_at_root = models.BooleanField(default=False, help_text="Retell posts only the arguments as the body.")
    agents = models.ManyToManyField(Agent, blank=True, related_name="custom_functions")
    deployed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company__name", "name"]
        constraints = [models.UniqueConstraint(fields=["company", "name"], name="customfunction_unique_name")]

    def __str__(self) -> str:
        return self.name


class PromptVersion(TenantOwned):
    """One state of an agent's prompt, greeting and instructions; a rollback is a new version."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="prompt_versions")
    number = models.PositiveIntegerField()
    general_prompt = models.TextField("system prompt", blank=True)
    begin_message = models.TextField("greeting", blank=True)
    custom_instructions = models.TextField(blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    author_label = models.CharField(max_length=200)
    note = models.CharField(max_length=300, blank=True)
    rolled_back_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    # A member limited to granted agents sees the versions of those agents (voice.access).
    tenant_policy: ClassVar = READ_ONLY_POLICY

    class Meta:
        ordering = ["agent", "-number"]
        constraints = [models.UniqueConstraint(fields=["agent", "number"], name="promptversion_unique_number")]

    def __str__(self) -> str:
        return f"{self.agent.name if self.agent_id else 'agent'} v{self.number}"


class SyncRun(TenantOwned):
    """One push to or pull from Retell: progress, the outcome per agent, drift and errors."""

    class Kind(models.TextChoices):
        WEBHOOK_UPDATE = "webhook_update", "Webhook update"
        FUNCTIONS_DEPLOY = "functions_deploy", "Custom functions deploy"
        AGENT_UPDATE = "agent_update", "Agent update"
        SYNC_ALL = "sync_all", "Sync all"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partly failed"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_by = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict, blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    outcome = models.JSONField(default=dict, blank=True, help_text="Per Retell agent id: status and detail.")
    drift = models.JSONField(default=dict, blank=True,
                             help_text="Per Retell agent id, per field: the local and the remote value.")
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    tenant_policy: ClassVar = READ_ONLY_POLICY

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["company", "kind", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk or '-'} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.PARTIAL, self.Status.FAILED)

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


class RetellConnection(TenantOwned):
    """The company's last real exchange with Retell's API (one row per company), written by the
    client after each call: when, which operation, how it went, and when Retell last answered."""

    class Outcome(models.TextChoices):
        OK = "ok", "Answered"
        REJECTED = "rejected", "Refused the request"
        UNREACHABLE = "unreachable", "Unreachable"

    last_at = models.DateTimeField("last exchange at")
    operation = models.CharField(max_length=200, help_text='What was asked, e.g. "list agents".')
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    status_code = models.PositiveIntegerField(null=True, blank=True, help_text="Retell's HTTP status, if it answered.")
    error = models.CharField(max_length=500, blank=True)
    last_ok_at = models.DateTimeField("Retell last answered at", null=True, blank=True)

    tenant_policy: ClassVar = READ_ONLY_POLICY

    class Meta:
        constraints = [models.UniqueConstraint(fields=["company"], name="retellconnection_one_per_company")]

    def __str__(self) -> str:
        return f"Retell connection of {self.company}" if self.company_id else "Retell connection"
