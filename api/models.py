"""What the REST API keeps of its own: the idempotency keys of POSTs that create appointments."""

from typing import ClassVar

from django.conf import settings
from django.db import models

from tenants.models import TenantOwned
from tenants.roles import READ_ONLY_POLICY


class IdempotencyKey(TenantOwned):
    """One `Idempotency-Key` a user sent with a POST that creates something, and what it answered.

    The row is written in the same transaction as what the POST created, so a repeat of the
    key (same user, same key) waits for the first request and is answered with its stored
    response; a POST that failed left no row and may be sent again with the same key.
    `fingerprint` (SHA-256 of the method, path and canonical JSON body) tells a repeat from a
    different request reusing the key (refused with 422).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    tenant_policy: ClassVar = READ_ONLY_POLICY

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotencykey_one_per_user_key")]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code})"
