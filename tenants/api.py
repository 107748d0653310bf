"""REST API resources of tenants (/api/v1/): companies (read) and their opening hours (read,
replace through tenants.services.company_update, audited). Conventions: api.base."""

import django_filters
from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.decorators import action

from api.base import TenantViewSet

from .models import Company
from .services import company_update
from .validators import WEEKDAYS


class CompanySerializer(serializers.ModelSerializer):
    """A company as its members see it; its credentials are never part of it."""

    class Meta:
        model = Company
        fields = ["id", "name", "slug", "timezone", "language", "phone", "address", "opening_hours", "is_active",
                  "created_at", "updated_at"]
        read_only_fields = fields


class OpeningHoursSerializer(serializers.ModelSerializer):
    company = serializers.IntegerField(source="pk", read_only=True)
    timezone = serializers.CharField(read_only=True, help_text="The hours are wall-clock times in this zone.")
    opening_hours = serializers.JSONField(help_text='Per weekday (mon … sun) a list of ["HH:MM", "HH:MM"] ranges, '
                                                    'e.g. {"mon": [["08:00", "12:00"], ["13:00", "18:00"]]}; a day '
                                                    'left out is closed.')

    class Meta:
        model = Company
        fields = ["company", "timezone", "opening_hours"]

    def validate_opening_hours(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError(f"An object keyed by weekday ({', '.join(WEEKDAYS)}).")
        return value


class CompanyFilter(django_filters.FilterSet):
    class Meta:
        model = Company
        fields = ["slug", "is_active"]


@extend_schema_view(
    list=extend_schema(summary="List your companies"),
    retrieve=extend_schema(summary="Read a company"),
)
class CompanyViewSet(TenantViewSet):
    model = Company
    serializer_class = CompanySerializer
    filterset_class = CompanyFilter
    select_related = ()
    ordering = ("name", "id")
    http_method_names = ["get", "put", "head", "options"]

    def required_action(self) -> str:
        if self.action == "opening_hours" and self.request.method == "PUT":
            return "change"
        return super().required_action()

    def represent(self, obj):
        if self.action == "opening_hours":
            return OpeningHoursSerializer(obj, context=self.get_serializer_context()).data
        return super().represent(obj)

    @extend_schema(methods=["GET"], summary="Read a company's opening hours", responses=OpeningHoursSerializer)
    @extend_schema(methods=["PUT"], summary="Replace a company's opening hours", request=OpeningHoursSerializer,
                   responses=OpeningHoursSerializer,
                   description="Owners and admins. Validated as the admin's weekday grid validates them.")
    @action(detail=True, methods=["get", "put"], url_path="opening-hours")
    def opening_hours(self, request, pk=None):
        if request.method == "GET":
            return self.row_response(self.get_object())
        body = OpeningHoursSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            company = self.locked_object(if_match_required=True)
            company = company_update(actor=self.actor, company=company,
                                     opening_hours=body.validated_data["opening_hours"])
        return self.row_response(self.refreshed(company))
