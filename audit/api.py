"""REST API resources of audit (/api/v1/): inbound webhook receipts (read) and outbound
deliveries to the practice backend (read, retry through audit.deliveries.deliveries_retry, the
admin's retry). Conventions: api.base."""

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.decorators import action

from api.filters import TenantFilterSet
from api.base import TenantViewSet
from api.serializers import ModelSerializer, TenantSerializer

from .deliveries import deliveries_retry
from .models import Delivery, DeliveryAttempt, WebhookReceipt


class WebhookReceiptSerializer(TenantSerializer):
    body = serializers.CharField(source="body_text", read_only=True,
                                 help_text="The raw body as received (UTF-8; undecodable bytes replaced).")

    class Meta:
        model = WebhookReceipt
        fields = ["id", "company", "provider", "is_test", "endpoint", "status", "error_code", "error_message", "kind",
                  "event_type", "call_id", "received_at", "processed_at", "attempts", "next_attempt_at",
                  "body_truncated", "headers", "body", "notes"]
        read_only_fields = fields


class WebhookReceiptFilter(TenantFilterSet):
    class Meta:
        model = WebhookReceipt
        fields = ["company", "provider", "status", "event_type", "call_id"]


@extend_schema_view(
    list=extend_schema(summary="List webhook receipts", description="Every request the providers sent, newest first; "
                                                                     "credential headers are stored redacted."),
    retrieve=extend_schema(summary="Read a webhook receipt"),
)
class WebhookReceiptViewSet(TenantViewSet):
    model = WebhookReceipt
    serializer_class = WebhookReceiptSerializer
    filterset_class = WebhookReceiptFilter
    ordering = ("-received_at", "-id")
    http_method_names = ["get", "head", "options"]


class DeliveryAttemptSerializer(ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "started_at", "url", "duration_ms", "status_code", "response_excerpt", "error"]
        read_only_fields = fields


class DeliverySerializer(TenantSerializer):
    attempts = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = ["id", "company", "kind", "target_url", "payload", "idempotency_key", "status", "attempt_count",
                  "max_attempts", "next_attempt_at", "last_error", "created_at", "updated_at", "succeeded_at",
                  "attempts"]
        read_only_fields = fields


class DeliveryFilter(TenantFilterSet):
    class Meta:
        model = Delivery
        fields = ["company", "kind", "status"]


@extend_schema_view(
    list=extend_schema(summary="List deliveries to the practice backend", description="Newest first, with tries."),
    retrieve=extend_schema(summary="Read a delivery"),
)
class DeliveryViewSet(TenantViewSet):
    model = Delivery
    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilter
    ordering = ("-created_at", "-id")
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        return super().get_queryset().prefetch_related("attempts")

    @extend_schema(summary="Send a failed or dead delivery again", request=None, responses={200: DeliverySerializer},
                   description="Owners and admins: now, with a fresh budget of tries (as the admin's retry). A "
                               "delivery that is neither failed nor dead is left as it is.")
    @action(detail=True, methods=["post"], required="retry")
    def retry(self, request, pk=None):
        with transaction.atomic():
            delivery = self.locked_object(if_match_required=False)
            deliveries_retry(actor=self.actor, deliveries=Delivery.objects.filter(pk=delivery.pk))
        return self.row_response(self.refreshed(delivery))
