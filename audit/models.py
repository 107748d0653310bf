from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.models import Company, TenantOwned, TenantQuerySet
from tenants.roles import READ_ONLY_POLICY, Role


class AuditEntry(models.Model):
    """One configuration change, written by the service layer; never edited."""

    class ActorKind(models.TextChoices):
        USER = "user", "User"
        TOKEN = "token", "API token"
        SYSTEM = "system", "System"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Empty for platform-wide changes (key rotation); only superusers see those.
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.SET_NULL)
    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices)
    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()
    tenant_policy: ClassVar = READ_ONLY_POLICY

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["company", "-created_at"]),
                   models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type} {self.object_repr}".strip()


class ActivityLogEntry(models.Model):
    """A line of the live activity log that the admin's debug console shows."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.CASCADE)
    kind = models.CharField(max_length=64, help_text="Dotted, e.g. webhook.received.")
    level = models.CharField(max_length=8, default="info",
                             choices=[("info", "info"), ("warning", "warning"), ("error", "error")])
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    objects = TenantQuerySet.as_manager()
    tenant_policy: ClassVar = READ_ONLY_POLICY

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "activity log line"
        indexes = [models.Index(fields=["company", "-created_at"])]

    def __str__(self) -> str:
        return f"[{self.created_at:%Y-%m-%d %H:%M:%S}] {self.message}"


# --- Inbound webhook receipts and outbound deliveries -----------------------------------
class WebhookReceipt(models.Model):
    """One inbound provider request, stored before anything is parsed or trusted.

    The raw body is kept byte for byte (signatures are over those bytes); headers
    that carry credentials are stored redacted. A verified event is the one receipt
    holding its dedupe key (a partial unique constraint); a repeat becomes a
    `duplicate` and is never processed.
    """

    class Provider(models.TextChoices):
        RETELL = "retell", "Retell"
        ELEVENLABS = "elevenlabs", "ElevenLabs"
        TWILIO = "twilio", "Twilio"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        VERIFIED = "verified", "Verified (awaiting processing)"
        REJECTED = "rejected", "Rejected"
        DUPLICATE = "duplicate", "Duplicate"
        IGNORED = "ignored", "Ignored"
        PROCESSED = "processed", "Processed"
        # Retried with backoff while `next_attempt_at` is set; given up (needing a person)
        # once it is not: tries spent, or a failure no retry can mend.
        FAILED = "failed", "Failed"

    # The states of the one receipt that owns a dedupe key.
    KEY_HOLDING = (Status.VERIFIED, Status.PROCESSED, Status.FAILED)

    provider = models.CharField(max_length=16, choices=Provider.choices)
    # Empty until the payload named a known agent (or key) of a company.
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.CASCADE)
    is_test = models.BooleanField(
        "test", default=False, db_index=True,
        help_text="Sent by the admin's testing tools (webhook tester, replay of a test): its call and "
                  "appointments are marked as tests and nothing reaches the practice's backend.")
    endpoint = models.CharField(max_length=200)
    body = models.BinaryField()
    body_truncated = models.BooleanField(default=False, help_text="The body was over the size limit; "
                                                                  "only its first bytes are stored.")
    headers = models.JSONField(default=dict, blank=True)
    query = models.CharField(max_length=500, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    kind = models.CharField(max_length=16, blank=True, help_text="event or function (custom-function call).")
    event_type = models.CharField(max_length=64, blank=True)
    call_id = models.CharField(max_length=128, blank=True, db_index=True)
    dedupe_key = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    notes = models.JSONField(default=list, blank=True,
                             help_text="What had to be cleaned, cut or dropped to store or process the request "
                                       "(e.g. \"call.transcript: NUL characters removed\").")
    replay_count = models.PositiveIntegerField(
        "replays", default=0, help_text="How often it was processed again from the admin (Replay); the status "
                                        "and error say how the latest went, the audit trail who replayed it.")
    replayed_at = models.DateTimeField("last replayed at", null=True, blank=True)

    objects = TenantQuerySet.as_manager()
    # Rows only the receivers write; owners and admins may process a stored one again (Replay).
    tenant_policy: ClassVar = {
        **READ_ONLY_POLICY,
        Role.OWNER: frozenset({"view", "replay"}),
        Role.ADMIN: frozenset({"view", "replay"}),
    }

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["company", "-received_at"]),
                   models.Index(fields=["status", "received_at"]),
                   # Every column the Analytics page's webhook charts read: a range of receipts is
                   # read by an index-only scan (bench/analytics_bench.py: ~35 % less time for them).
                   models.Index(fields=["company", "received_at", "is_test", "status", "error_code", "event_type",
                                        "processed_at"], name="webhookreceipt_analytics")]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "company", "dedupe_key"], name="webhookreceipt_one_holder_per_dedupe_key",
                condition=~models.Q(dedupe_key="") & models.Q(status__in=["verified", "processed", "failed"])),
        ]

    def __str__(self) -> str:
        what = self.event_type or self.kind or "request"
        return f"{self.get_provider_display()} {what} {self.call_id}".strip()

    @property
    def body_text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")


class Delivery(TenantOwned):
    """One outbound message to a company's backend: its payload, target and fate.

    Sent by Celery with one DeliveryAttempt per try; retried with backoff until it
    succeeds or its tries run out (`dead`, the dead letter), from where an owner or
    admin can retry it.
    """

    class Kind(models.TextChoices):
        APPOINTMENT_CONFIRM = "appointment_confirm", "Appointment confirmation"
        CALL_RECORD = "call_record", "Call record"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_FLIGHT = "in_flight", "In flight"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (will be retried)"
        DEAD = "dead", "Dead letter"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    target_url = models.URLField(max_length=500, help_text="Where the latest try went (each try goes to the "
                                                           "company's backend as configured then).")
    payload = models.JSONField()
    idempotency_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=8)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    # Rows only the engine writes; owners and admins may send one again.
    tenant_policy: ClassVar = {
        **READ_ONLY_POLICY,
        Role.OWNER: frozenset({"view", "retry"}),
        Role.ADMIN: frozenset({"view", "retry"}),
    }

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"]),
                   models.Index(fields=["company", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.idempotency_key}"


class DeliveryAttempt(TenantOwned):
    """One try of a delivery: what was sent (no secrets) and what came back."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    url = models.URLField("URL", max_length=500, blank=True, help_text="Where this try was sent.")
    duration_ms = models.PositiveIntegerField(default=0)
    request_headers = models.JSONField(default=dict, blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)

    tenant_policy: ClassVar = READ_ONLY_POLICY

    class Meta:
        ordering = ["delivery_id", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="deliveryattempt_one_per_number")]

    def __str__(self) -> str:
        # Counted against the delivery's tries (a retry from the admin raises its max_attempts).
        return f"attempt {self.number} of {self.delivery.max_attempts}"
