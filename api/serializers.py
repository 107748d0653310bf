"""Serializer pieces the apps' api.py share."""

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


class TenantSerializer(serializers.ModelSerializer):
    """A tenant-owned row: `company` is its company's id, given when the row is made."""

    company = CompanyField()

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and "company" in fields and not isinstance(self.instance, list):
            fields["company"].required = False
        return fields
