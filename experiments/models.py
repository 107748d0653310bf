"""Prompt A/B testing: an experiment of one agent between two or more variants of its prompt.

A variant is a prompt version (system prompt, greeting, custom instructions; optionally the
Retell voice, this server's ElevenLabs voice and the dialog engine) with a traffic weight.
Calls are assigned at their start (experiments.assignment) and carry their variant on the
Call row (voice.models.Call.experiment_variant).
"""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from tenants.models import TenantOwned


class Metric(models.TextChoices):
    BOOKING_CONVERSION = "booking_conversion", "Booking conversion (share of calls that booked)"
    TRANSFER_RATE = "transfer_rate", "Transfer rate (share of calls transferred to a person)"
    ABANDONMENT = "abandonment", "Abandonment (share of callers who hung up within 20 s)"
    HANDLE_TIME = "handle_time", "Average handle time (seconds per call)"


# Metrics that are a share of calls (a rate): the rest are means.
RATE_METRICS = frozenset({Metric.BOOKING_CONVERSION, Metric.TRANSFER_RATE, Metric.ABANDONMENT})
# A lower value is the better one for these.
LOWER_IS_BETTER = frozenset({Metric.TRANSFER_RATE, Metric.ABANDONMENT, Metric.HANDLE_TIME})


class Experiment(TenantOwned):
    """An A/B test of one agent's prompt. Status: draft -> running -> stopped or promoted."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"
        PROMOTED = "promoted", "Promoted"

    agent = models.ForeignKey("retell_config.Agent", on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=200)
    primary_metric = models.CharField(max_length=24, choices=Metric.choices, default=Metric.BOOKING_CONVERSION)
    baseline = models.FloatField(
        default=0.3, validators=[MinValueValidator(0)],
        help_text="What the primary metric is today: a rate between 0 and 1 (e.g. 0.3 books), or for average "
                  "handle time the standard deviation of a call's length in seconds. Sets the minimum sample.")
    minimum_detectable_effect = models.FloatField(
        default=0.1, validators=[MinValueValidator(0.000001)],
        help_text="The smallest difference worth finding: for a rate an absolute difference (0.1 = ten "
                  "points), for handle time seconds. Smaller differences need more calls.")
    starts_at = models.DateTimeField("planned start", null=True, blank=True)
    ends_at = models.DateTimeField("planned end", null=True, blank=True,
                                   help_text="After this moment calls are no longer assigned.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT, editable=False)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    stopped_at = models.DateTimeField(null=True, blank=True, editable=False)
    winner = models.ForeignKey("Variant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               editable=False)
    promoted_version = models.ForeignKey("retell_config.PromptVersion", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+", editable=False)
    retell_bindings_before = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text="Retell LLM agents: each phone number's inbound_agents before the start, restored at the end.")
    retell_error = models.CharField(max_length=500, blank=True, editable=False,
                                    help_text="The last Retell push of this experiment that failed.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["agent"], condition=Q(status="running"),
                                               name="experiment_one_running_per_agent")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.primary_metric in RATE_METRICS and self.baseline is not None and not 0 < self.baseline < 1:
            raise ValidationError({"baseline": "A rate's baseline lies between 0 and 1 (e.g. 0.3)."})
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The end comes after the start."})

    @property
    def is_rate(self) -> bool:
        return self.primary_metric in RATE_METRICS


class Variant(TenantOwned):
    """One arm of an experiment: what its callers hear, and its share of the traffic."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=100, help_text='e.g. "A: current prompt".')
    weight = models.PositiveIntegerField(
        default=50, validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Relative traffic share: weights 50 and 50 split the calls evenly, 80 and 20 four to one.")
    source_version = models.ForeignKey(
        "retell_config.PromptVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name="from prompt version",
        help_text="Empty texts below are taken from this version of the agent's prompt (without one: from "
                  "the agent's live prompt).")
    general_prompt = models.TextField("system prompt", blank=True)
    begin_message = models.TextField("greeting", blank=True)
    custom_instructions = models.TextField(blank=True)
    voice_id = models.CharField("Retell voice", max_length=128, blank=True,
                                help_text="Empty: the agent's. Sent to Retell for Retell LLM agents.")
    elevenlabs_voice_id = models.CharField("ElevenLabs voice (this server's speech)", max_length=64, blank=True,
                                           help_text="Empty: the agent's.")
    dialog_engine = models.CharField(max_length=16, blank=True,
                                     choices=[("", "The agent's"), ("embedded", "Embedded receptionist"),
                                              ("openai", "OpenAI-compatible LLM")])
    retell_agent_version = models.PositiveIntegerField(
        null=True, blank=True, editable=False,
        help_text="Retell LLM agents: the published Retell agent version that speaks this variant.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["experiment", "pk"]
        constraints = [models.UniqueConstraint(fields=["experiment", "name"], name="variant_unique_name")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.source_version_id and self.experiment_id \
                and self.source_version.agent_id != self.experiment.agent_id:
            raise ValidationError({"source_version": "Choose a version of this experiment's agent."})
