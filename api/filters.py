"""Filters every tenant-owned resource shares (django-filter)."""

import django_filters


class TenantFilterSet(django_filters.FilterSet):
    """`?company=<id>`: a number, not a choice of existing companies, so that another company's id
    and an unused one both give an empty page (no answer tells which ids exist)."""

    company = django_filters.NumberFilter(field_name="company_id", help_text="One of your companies' ids.")
