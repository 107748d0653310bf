from typing import ClassVar

from django.conf import settings
from django.db import models

from tenants.models import Company, TenantQuerySet
from tenants.roles import READ_ONLY_POLICY


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
