"""The conventions every REST API resource shares (api.py of each app builds on them).

- Rows: `Model.objects.restrict(user, action)`, the one tenancy rule. A row the user may not
  see answers 404, like a missing one; a row it may see but not change (delete, retry) 403.
- New rows: the `company` of the body must be one of the user's companies whose role allows
  adding that model (403 otherwise; 400 for a company the user cannot see).
- ETag / If-Match: a row's ETag is a hash of its JSON representation, sent on every read and
  write of one row. PUT, PATCH and DELETE require If-Match (428 without it, 412 when it is not
  the current ETag); POST actions on a row (move, cancel, rollback, retry) check it when sent.
  The check and the change run in one transaction holding the row's lock, so two clients never
  overwrite each other blindly.
- Lists: cursor pagination (`?cursor=`, `?page_size=` up to 100), filters with django-filter.
- Errors: api.errors; every write goes through the app's services, which write the audit entry.
"""

from __future__ import annotations

import hashlib
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from rest_framework import exceptions, status, viewsets
from rest_framework.response import Response

from tenants.models import Company
from tenants.selectors import companies_allowing

from .auth import actor_for
from .errors import ApiError
from .pagination import Cursor

VIEW_ACTIONS = {"list": "view", "retrieve": "view", "create": "add", "update": "change",
                "partial_update": "change", "destroy": "delete"}


def etag_of(data) -> str:
    """The strong ETag of a row's JSON representation: a quoted hex digest."""
    canonical = json.dumps(data, sort_keys=True, cls=DjangoJSONEncoder, separators=(",", ":"))
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


class TenantViewSet(viewsets.GenericViewSet):
    """A resource over one tenant-owned model, scoped by `restrict()`.

    Subclasses set `model`, `serializer_class`, `ordering`, `filterset_class`, and may give
    an @action `required="change"` (the action `restrict()` checks on the row).
    """

    model = None
    required: str | None = None
    select_related: tuple[str, ...] = ("company",)
    lookup_value_regex = r"[0-9]+"
    pagination_class = Cursor
    # POST actions on a row take an optional If-Match (documented by api.schema).
    if_match_on_actions = True
    extra_errors: dict[str, list[int]] = {}

    # --- rows and rights ------------------------------------------------------------------
    def required_action(self) -> str:
        return self.required or VIEW_ACTIONS.get(self.action, "view")

    def get_queryset(self):
        rows = self.model.objects.restrict(self.request.user, "view")
        return rows.select_related(*self.select_related) if self.select_related else rows

    def get_object(self):
        obj = super().get_object()
        need = self.required_action()
        if need != "view" and not self.model.objects.restrict(self.request.user, need).filter(pk=obj.pk).exists():
            raise exceptions.PermissionDenied(
                f"Your role may not {need} this {self.model._meta.verbose_name}.")
        return obj

    def company_for_new(self, company: Company) -> Company:
        """The company a new row goes into, once the user's role there allows adding it."""
        if not companies_allowing(user=self.request.user, model=self.model, action="add").filter(
                pk=company.pk, is_active=True).exists():
            raise exceptions.PermissionDenied(
                f"Your role may not add {self.model._meta.verbose_name_plural} to {company.name}.")
        return company

    @property
    def actor(self):
        return actor_for(self.request)

    # --- ETag / If-Match -----------------------------------------------------------------
    def represent(self, obj) -> dict:
        return self.get_serializer(obj).data

    def row_response(self, obj, status_code: int = status.HTTP_200_OK, headers: dict | None = None) -> Response:
        data = self.represent(obj)
        return Response(data, status=status_code, headers={"ETag": etag_of(data), **(headers or {})})

    def locked_object(self, *, if_match_required: bool):
        """The row for a write, locked until the transaction ends, after the If-Match check.

        Call inside transaction.atomic()."""
        obj = self.get_object()
        self.model._base_manager.select_for_update().filter(pk=obj.pk).values_list("pk", flat=True).first()
        obj = self.get_object()  # read again under the lock: what the ETag is compared with
        sent = self.request.headers.get("If-Match")
        if sent is None:
            if if_match_required:
                raise ApiError(status.HTTP_428_PRECONDITION_REQUIRED, "precondition_required",
                               "Send If-Match with the ETag of the row as you last read it.")
            return obj
        current = etag_of(self.represent(obj))
        if sent.strip() != "*" and current not in [tag.strip().removeprefix("W/") for tag in sent.split(",")]:
            raise ApiError(status.HTTP_412_PRECONDITION_FAILED, "precondition_failed",
                           "The row changed since you read it (If-Match is not its ETag): read it again, then "
                           "apply your change.")
        return obj

    # --- the generic operations -----------------------------------------------------------
    def list(self, request, *args, **kwargs):
        rows = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        return self.row_response(self.get_object())

    def refreshed(self, obj):
        return self.get_queryset().get(pk=obj.pk)


class WritableViewSet(TenantViewSet):
    """A resource whose rows are added, changed (PUT, PATCH) and deleted through `perform_add`,
    `perform_change` and `perform_remove`, which call the app's services."""

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        with transaction.atomic():
            obj = self.locked_object(if_match_required=True)
            serializer = self.get_serializer(obj, data=request.data, partial=partial)
            serializer.is_valid(raise_exception=True)
            obj = self.perform_change(obj, serializer.validated_data)
        return self.row_response(self.refreshed(obj))

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request, *args, **kwargs):
        with transaction.atomic():
            obj = self.locked_object(if_match_required=True)
            self.perform_remove(obj)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        company = self.company_for_new(serializer.validated_data["company"])
        with transaction.atomic():
            obj = self.perform_add(company, serializer.validated_data)
        return self.row_response(self.refreshed(obj), status.HTTP_201_CREATED)

    # Subclasses that write implement these through their app's services.
    def perform_add(self, company: Company, data: dict):
        raise NotImplementedError

    def perform_change(self, obj, data: dict):
        raise NotImplementedError

    def perform_remove(self, obj) -> None:
        raise NotImplementedError


class InstanceViewSet(WritableViewSet):
    """A resource whose rows the admin saves as they are (services, closures): the same audited
    `instance_save` / `instance_delete` (audit.services) as TenantAdmin.save_instance."""

    def perform_add(self, company, data):
        from audit.services import instance_save

        return instance_save(actor=self.actor, instance=self.model(**{**data, "company": company}))

    def perform_change(self, obj, data):
        from audit.services import instance_save

        for name, value in data.items():
            if name != "company":
                setattr(obj, name, value)
        return instance_save(actor=self.actor, instance=obj)

    def perform_remove(self, obj) -> None:
        from django.db.models import ProtectedError, RestrictedError

        from audit.services import instance_delete

        try:
            with transaction.atomic():
                instance_delete(actor=self.actor, instance=obj)
        except (ProtectedError, RestrictedError):
            raise ApiError(status.HTTP_409_CONFLICT, "in_use",
                           f"This {self.model._meta.verbose_name} is still used (e.g. by appointments); "
                           "make it inactive instead.") from None
