"""Serializer pieces the apps' api.py share."""

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tenants.models import Company


class CompanyField(serializers.PrimaryKeyRelatedField):
    """The id of one of the companies the request's user may see; a row never changes company."""

    def get_queryset(self):
        request = self.context.get("request")
        return Company.objects.restrict(getattr(request, "user", None), "view")

    def to_internal_value(self, data):
        company = super().to_internal_value(data)
        instance = getattr(self.parent, "instance", None)
        if instance is not None and getattr(instance, "company_id", company.pk) != company.pk:
            raise serializers.ValidationError("A row never moves to another company.")
        return company


@extend_schema_field({"anyOf": [{"type": "string", "format": "uri"}, {"type": "string", "maxLength": 0}]})
class OptionalURLField(serializers.URLField):
    """A URL that may be empty: OpenAPI's "uri" format refuses "", so the schema says a string."""


class ModelSerializer(serializers.ModelSerializer):
    """A model's serializer whose URL fields that may be blank are described as they are."""

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if isinstance(model_field, models.URLField) and model_field.blank:
            field_class = OptionalURLField
        return field_class, kwargs


class TenantSerializer(ModelSerializer):
    """A tenant-owned row: `company` is its company's id, given when the row is made."""

    company = CompanyField()

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and "company" in fields and not isinstance(self.instance, list):
            fields["company"].required = False
        return fields
