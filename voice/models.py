from typing import ClassVar

from django.db import models

from tenants.models import TenantOwned
from tenants.roles import READ_ONLY_POLICY


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

    call_id = models.CharField("call id", max_length=128, unique=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.RETELL)
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
    def duration_seconds(self) -> int | None:
        return None if self.duration_ms is None else round(self.duration_ms / 1000)
