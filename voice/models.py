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



class LiveTurnLatency(TenantOwned):
    """The latency of one answered (or superseded) turn of the live socket, as a plain row the
    Analytics page aggregates in the database (the full turn stays in `Call.live_turns`).

    Written by voice.services.call_record_live_turns, the one place turns are recorded, once
    per (call, response_id): a turn answered again after a reconnect replaces its row.
    `dialog_engine` is the engine that answered (the session's), not the agent's current
    setting; `agent` the agent whose session answered. Milliseconds from response_required to
    the first and to the last chunk; NULL when the turn had none (e.g. superseded).
    """

    # The unique (call, response_id) index serves the lookups by call: no index of its own.
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="turn_latencies", db_index=False)
    agent = models.ForeignKey("retell_config.Agent", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    dialog_engine = models.CharField(max_length=16, blank=True)
    response_id = models.BigIntegerField()
    started_at = models.DateTimeField(help_text="When the request arrived (the turn's started_at).")
    first_chunk_ms = models.FloatField(null=True, blank=True)
    complete_ms = models.FloatField(null=True, blank=True)

    tenant_policy: ClassVar = READ_ONLY_POLICY

    class Meta:
        verbose_name = "live turn latency"
        constraints = [models.UniqueConstraint(fields=["call", "response_id"], name="voice_turn_latency_once")]
        # Every column the latency charts read is in the index, so a range of turns is read by an
        # index-only scan (no visit to rows scattered over the table), on SQLite as on PostgreSQL.
        indexes = [models.Index(fields=["company", "started_at", "agent", "dialog_engine", "first_chunk_ms",
                                        "complete_ms", "call"], name="voice_turn_latency_company_at")]

    def __str__(self) -> str:
        return f"{self.call_id} #{self.response_id}"

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


class Scenario(TenantOwned):
    """A saved test call of one agent: what the caller says, line by line, and what must come of it.

    The expectations are checked against the effects of the scenario's own call (its appointments and
    function invocations, by call id) and against its transcript (voice.scenarios.expectations_check).
    """

    class Outcome(models.TextChoices):
        ANY = "", "Not checked"
        BOOKED = "booked", "An appointment booked"
        MOVED = "moved", "An appointment moved"
        CANCELLED = "cancelled", "An appointment cancelled"
        NONE = "none", "No appointment booked, moved or cancelled"

    class Transfer(models.TextChoices):
        ANY = "", "Not checked"
        YES = "yes", "The agent transfers the call"
        NO = "no", "The agent does not transfer the call"

    agent = models.ForeignKey("retell_config.Agent", on_delete=models.CASCADE, related_name="scenarios")
    name = models.CharField(max_length=200)
    language = models.CharField(max_length=8, choices=[("en", "English"), ("de", "German")], default="en",
                                help_text="The caller's language (the agent answers in its own).")
    script = models.TextField(
        "caller script", help_text="One caller line per line; blank lines and lines starting with # are skipped; "
                                   "a line [silence] is the caller saying nothing (Retell asks for a reminder).")
    expect_outcome = models.CharField("appointment", max_length=16, choices=Outcome.choices, blank=True)
    expect_service = models.CharField("service", max_length=200, blank=True,
                                      help_text="Part of the service's name, any case; empty: any service.")
    expect_day = models.CharField(
        "day", max_length=10, blank=True,
        help_text="A date (2026-12-02) or a weekday in English (wednesday), in the company's time zone; "
                  "empty: any day.")
    expect_time = models.TimeField("time", null=True, blank=True, help_text="Local start time; empty: any time.")
    expect_transfer = models.CharField("transfer", max_length=3, choices=Transfer.choices, blank=True)
    must_say = models.TextField(blank=True, help_text="One word or phrase per line that the agent must say "
                                                      "(any case, anywhere in the call).")
    must_not_say = models.TextField(blank=True, help_text="One word or phrase per line the agent must never say.")
    max_turns = models.PositiveIntegerField(null=True, blank=True,
                                            help_text="The most answers the call may take (the greeting is none).")
    max_latency_ms = models.PositiveIntegerField(
        "max latency (ms)", null=True, blank=True,
        help_text="The longest any answer may take to its first chunk, from response_required.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["agent__name", "name"]
        constraints = [models.UniqueConstraint(fields=["agent", "name"], name="scenario_name_per_agent")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        from .scenarios import day_problem, script_problem

        errors = {}
        if self.agent_id and self.company_id and self.agent.company_id != self.company_id:
            errors["agent"] = "Choose one of this company's own agents."
        if (problem := script_problem(self.script)) is not None:
            errors["script"] = problem
        if (problem := day_problem(self.expect_day)) is not None:
            errors["expect_day"] = problem
        if errors:
            raise ValidationError(errors)


class ScenarioRun(TenantOwned):
    """One run of one scenario: its call (test_origin scenario), its transcript and each expectation's verdict.

    Runs started together share a `batch` (the run page shows them with their progress). `prompt_draft`
    holds the prompt texts the run's call uses instead of the agent's (an unsaved draft); empty: the
    agent as saved.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        ERROR = "error", "Error (the call could not be made)"

    FINISHED: ClassVar = (Status.PASSED, Status.FAILED, Status.ERROR)
    # The agent's prompt texts a draft may replace for the run's call.
    DRAFT_FIELDS: ClassVar = ("general_prompt", "begin_message", "custom_instructions")

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="runs")
    batch = models.UUIDField(db_index=True, help_text="Runs started together.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.PositiveIntegerField(default=0, help_text="Caller lines said so far.")
    total = models.PositiveIntegerField(default=0, help_text="Caller lines in the script.")
    call_id = models.CharField("call id", max_length=128, blank=True, db_index=True)
    transcript = models.JSONField(default=list, blank=True,
                                  help_text="[{role: caller|agent|tool, text, first_chunk_ms, complete_ms}]")
    results = models.JSONField(default=list, blank=True,
                               help_text="Per expectation: [{expectation, passed, reason}].")
    error = models.TextField(blank=True)
    prompt_draft = models.JSONField(default=dict, blank=True,
                                    help_text="Prompt texts used instead of the agent's for this run's call.")
    triggered_by = models.CharField(max_length=200, blank=True)
    variant = models.ForeignKey(
        "experiments.Variant", null=True, blank=True, on_delete=models.SET_NULL, related_name="scenario_runs",
        help_text="Run against this experiment variant's prompt (its texts are the run's draft).")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_policy: ClassVar = READ_ONLY_POLICY

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.scenario} #{self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def against(self) -> str:
        return "prompt draft" if self.prompt_draft else "live agent"
