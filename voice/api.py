"""REST API resource of voice (/api/v1/): calls with their turns, read only. Conventions: api.base."""

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.decorators import action

from api.errors import conflict
from api.filters import TenantFilterSet
from api.base import TenantViewSet
from api.serializers import TenantSerializer

from audit.api import WebhookReceiptSerializer, WebhookReceiptViewSet

from .models import Call
from .services import receipt_replay


class CallSerializer(TenantSerializer):
    agent = serializers.SlugRelatedField(slug_field="agent_id", read_only=True, allow_null=True,
                                         help_text="The Retell agent id that answered; null when unknown.")

    class Meta:
        model = Call
        fields = ["id", "company", "call_id", "source", "test_origin", "agent", "call_type", "from_number",
                  "to_number", "direction", "status", "started_at", "ended_at", "duration_ms", "disconnection_reason",
                  "last_event", "created_at", "updated_at"]
        read_only_fields = fields


class CallDetailSerializer(CallSerializer):
    turns = serializers.JSONField(source="transcript_turns", read_only=True,
                                  help_text="The transcript as the provider sent it, turn by turn ({role, content, "
                                            "…}).")
    live_turns = serializers.JSONField(read_only=True, help_text="Each answer on the live socket: what was said, "
                                                                 "the tools run, the latency.")

    class Meta(CallSerializer.Meta):
        fields = [*CallSerializer.Meta.fields, "transcript", "turns", "live_turns", "analysis", "cost", "latency",
                  "recording_url", "events"]
        read_only_fields = fields


class CallFilter(TenantFilterSet):
    agent = django_filters.CharFilter(field_name="agent__agent_id", help_text="A Retell agent id.")
    started_after = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = Call
        fields = ["company", "agent", "source", "status", "call_id", "started_after", "started_before"]


@extend_schema_view(
    list=extend_schema(summary="List calls", description="Newest first, without transcripts."),
    retrieve=extend_schema(summary="Read a call with its turns", responses=CallDetailSerializer),
)
class CallViewSet(TenantViewSet):
    model = Call
    serializer_class = CallSerializer
    filterset_class = CallFilter
    select_related = ("company", "agent")
    ordering = ("-created_at", "-id")
    http_method_names = ["get", "head", "options"]

    def get_serializer_class(self):
        return CallDetailSerializer if self.action == "retrieve" else CallSerializer


@extend_schema_view(
    list=extend_schema(summary="List webhook receipts", description="Every request the providers sent, newest first; "
                                                                     "credential headers are stored redacted."),
    retrieve=extend_schema(summary="Read a webhook receipt"),
)
class ReplayableWebhookReceiptViewSet(WebhookReceiptViewSet):
    """Receipts (audit.api), with Replay: the processing is this app's (voice.services.receipt_replay),
    as in the receipts admin."""

    http_method_names = ["get", "post", "head", "options"]
    extra_errors = {"replay": [409]}

    @extend_schema(summary="Process a stored event receipt again", request=None,
                   responses={200: WebhookReceiptSerializer},
                   description="Owners and admins: now, through the worker's own path; idempotent (a replayed "
                               "call_ended books nothing twice and queues no second delivery). Audited. Only a "
                               "verified, processed or failed event receipt can be replayed (409 otherwise).")
    @action(detail=True, methods=["post"], required="replay")
    def replay(self, request, pk=None):
        receipt = self.get_object()
        replayed = receipt_replay(actor=self.actor, receipt_id=receipt.pk)
        if replayed is None:
            raise conflict("not_replayable", "Only a verified, processed or failed event receipt can be replayed, "
                                             "and not while a worker holds it.")
        return self.row_response(replayed)
