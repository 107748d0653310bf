"""Permissions from company memberships.

Model-level questions (may this user ever change agents?) are answered from the
roles; object-level ones go through the model's `restrict()` queryset, so the admin,
the API and every other adapter share one rule.
"""

from django.apps import apps

from .models import TenantQuerySet, user_memberships
from .roles import role_allows


def tenant_model(app_label: str, model_name: str):
    try:
        model = apps.get_model(app_label, model_name)
    except LookupError:
        return None
    return model if isinstance(model._default_manager.all(), TenantQuerySet) else None


class MembershipPermissionBackend:
    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user, perm: str, obj=None) -> bool:
        if not user.is_active or user.is_anonymous:
            return False
        app_label, _, codename = perm.partition(".")
        action, _, model_name = codename.partition("_")
        model = tenant_model(app_label, model_name)
        if model is None:
            return False
        if obj is not None:
            if not isinstance(obj, model):
                return False
            return model._default_manager.restrict(user, action).filter(pk=obj.pk).exists()
        grantable = getattr(model, "grantable", False)
        return any(
            role_allows(m.role, model, action)
            # Creating a row is never limited to granted rows: it has no grant yet.
            and not (grantable and m.limited_to_granted_objects and action == "add")
            for m in user_memberships(user)
        )

    def has_module_perms(self, user, app_label: str) -> bool:
        if not user.is_active or user.is_anonymous:
            return False
        return any(
            self.has_perm(user, f"{app_label}.view_{model._meta.model_name}")
            for model in apps.get_app_config(app_label).get_models()
        )
