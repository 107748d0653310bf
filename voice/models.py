from typing import ClassVar

from django.core.exceptions import ValidationError
from django.db import models

from tenants.models import TenantOwned, stt_provider_choices, tts_provider_choices
from tenants.roles import READ_ONLY_POLICY
from tenants.validators import validate_e164


class Call(TenantOwned):
    """One phone or web call, assembled from the provider's events in any order.

    Values from the provider are stored as sent (a new disconnection reason or
    status is kept, not refused). `field_ranks` records, per field, the rank of the
    event that set it, so an older event never overwrites what a later one set
    (voice.services.call_apply_event).
    """

    class Source(models.TextChoices):
        RETELL = "retell", "Retell"
        ELEVENLABS = "elevenlabs", "ElevenLabs"
        TWILIO = "twilio", "Twilio"

    class TestOrigin(models.TextChoices):
        """Which testing tool made the call; empty for a real caller's call."""

        NONE = "", "Real call"
        WEBHOOK_TESTER = "webhook_tester", "Webhook tester"
        CALL_SIMULATOR = "call_simulator", "Call simulator"
        SCENARIO = "scenario", "Scenario run"

    call_id = models.CharField("call id", max_length=128, unique=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.RETELL)
    test_origin = models.CharField(
        "test", max_length=16, choices=TestOrigin.choices, default=TestOrigin.NONE, blank=True, db_index=True,
        help_text="Set when a testing tool made the call: kept out of analytics and experiments, and nothing of "
                  "it reaches the practice's backend.")
    agent = models.ForeignKey("retell_config.Agent", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="calls")
    call_type = models.CharField(max_length=32, blank=True)
    from_number = models.CharField(max_length=64, blank=True)
    to_number = models.CharField(max_length=64, blank=True)
    direction = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    disconnection_reason = models.CharField(max_length=64, blank=True)
    transcript = models.TextField(blank=True)
    transcript_turns = models.JSONField(default=list, blank=True)
    recording_url = models.URLField(max_length=2000, blank=True)
    analysis = models.JSONField(default=dict, blank=True)
    cost = models.JSONField(default=dict, blank=True)
    latency = models.JSONField(default=dict, blank=True)
    dynamic_variables = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    last_event = models.CharField("last event applied", max_length=64, blank=True,
                                  help_text="The latest stage applied (call_analyzed after call_ended, "
                                            "whatever order they arrived in).")
    events = models.JSONField(default=list, blank=True, help_text="Every event type applied.")
    attachments = models.JSONField(default=dict, blank=True,
                                   help_text="What other providers reported about the call, by provider "
                                             "(e.g. ElevenLabs' post-call transcription and analysis).")
    field_ranks = models.JSONField(default=dict, blank=True, editable=False)
    live_transcript = models.JSONField(
        default=list, blank=True,
        help_text="The transcript as the live socket last saw it (Retell's utterances, tool calls included).")
    experiment_variant = models.ForeignKey(
        "experiments.Variant", null=True, blank=True, on_delete=models.SET_NULL, related_name="calls",
        editable=False, help_text="The prompt experiment's variant this call was given at its start.")
    agent_version = models.PositiveIntegerField(
        null=True, blank=True, editable=False, help_text="The Retell agent version that answered (call webhooks).")
    live_turns = models.JSONField(
        default=list, blank=True,
        help_text="Each answer on the live socket: what was said, the tools run with their results, and the "
                  "latency from response_required to the first and the last chunk.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    tenant_policy: ClassVar = READ_ONLY_POLICY

    class Meta:
        ordering = ["-started_at", "-created_at"]
        indexes = [models.Index(fields=["company", "-created_at"])]

    def __str__(self) -> str:
        return self.call_id

    @property
    def is_test(self) -> bool:
        return bool(self.test_origin)

    @property
    def duration_seconds(self) -> int | None:
        return None if self.duration_ms is None else round(self.duration_ms / 1000)


# The one answer for a number that cannot be added, whichever company (this one or another) holds it.
NUMBER_UNAVAILABLE = "This phone number cannot be added here. Check the number in your Twilio console."


class TwilioNumber(TenantOwned):
    """One of a company's Twilio phone numbers: the agent that answers calls to it, and the speech
    providers of those calls. The called number (`To` of Twilio's webhook) names the company and
    the agent, so a number belongs to one company only.

    `voice_url`, `status_callback` and `number_sid` are what Twilio holds, as last pulled or
    configured from the admin; they are never edited here.
    """

    phone_number = models.CharField(max_length=20, unique=True, validators=[validate_e164],
                                    help_text="E.164, e.g. +493083793369.")
    friendly_name = models.CharField(max_length=64, blank=True)
    agent = models.ForeignKey("retell_config.Agent", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="twilio_numbers",
                              help_text="Answers calls to this number. Empty: callers hear that the number "
                                        "is not in service.")
    stt_provider = models.CharField(
        "speech-to-text", max_length=16, blank=True, choices=stt_provider_choices,
        help_text="Empty: the company's choice.")
    tts_provider = models.CharField(
        "text-to-speech", max_length=16, blank=True, choices=tts_provider_choices,
        help_text="Empty: the company's choice.")
    number_sid = models.CharField("Twilio number SID", max_length=34, blank=True, editable=False)
    voice_url = models.URLField("voice URL on Twilio", max_length=500, blank=True, editable=False)
    status_callback = models.URLField("status callback on Twilio", max_length=500, blank=True, editable=False)
    pulled_at = models.DateTimeField("last pulled from Twilio", null=True, blank=True, editable=False)
    configured_at = models.DateTimeField("last configured on Twilio", null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Twilio number"
        ordering = ["company__name", "phone_number"]

    def __str__(self) -> str:
        return f"{self.phone_number} ({self.friendly_name})" if self.friendly_name else self.phone_number

    def unique_error_message(self, model_class, unique_check):
        if model_class is TwilioNumber and tuple(unique_check) == ("phone_number",):
            # Numbers are unique across companies: the answer must not tell that another one holds it.
            return ValidationError(NUMBER_UNAVAILABLE, code="number_unavailable")
        return super().unique_error_message(model_class, unique_check)
