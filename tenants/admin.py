"""The tenant-scoped admin.

`TenantAdmin` is the base of every tenant-owned model's admin. It limits querysets
with `restrict()`, limits foreign-key and many-to-many choices to the same company,
fills in the company on create, checks object permissions on every view, saves
through the audited services, and makes guardian's object-permission pages safe.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename, get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404
from django.utils.html import format_html

from guardian.admin import GroupManage, GuardedModelAdminMixin, UserManage
from guardian.forms import UserObjectPermissionsForm
from guardian.shortcuts import get_perms_for_model

from audit.actor import Actor
from audit.services import instance_delete, instance_save

from . import services
from .forms import CompanyForm
from .models import ApiToken, Company, Membership, company_of_model, user_memberships
from .roles import Role, outranks_or_equals, role_allows
from .selectors import companies_allowing


NO_SUCH_MEMBER = "No member of this company has this username."
GROUPS_ARE_THE_PLATFORMS = "Groups are managed by the platform's administrators."


class CompanyListFilter(admin.SimpleListFilter):
    """A company filter that lists only the user's own companies."""

    title = "company"
    parameter_name = "company"

    def lookups(self, request, model_admin):
        return [(c.pk, c.name) for c in Company.objects.restrict(request.user, "view")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{company_of_model(queryset.model): self.value()})
        return queryset


class TenantAdmin(GuardedModelAdminMixin, admin.ModelAdmin):
    # Object grants are offered only on models a membership can be limited to.
    include_object_permissions_urls = False
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def __init__(self, model, admin_site) -> None:
        super().__init__(model, admin_site)
        self.include_object_permissions_urls = getattr(model, "grantable", False)
        if not self.include_object_permissions_urls:
            self.change_form_template = None

    # --- who may do what ------------------------------------------------------------
    def _perm(self, action: str) -> str:
        opts = self.opts
        return f"{opts.app_label}.{get_permission_codename(action, opts)}"

    def has_view_permission(self, request, obj=None) -> bool:
        return (request.user.has_perm(self._perm("view"), obj)
                or request.user.has_perm(self._perm("change"), obj))

    def has_add_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(self._perm("add"))

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(self._perm("change"), obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(self._perm("delete"), obj)

    def get_queryset(self, request):
        return super().get_queryset(request).restrict(request.user, "view")

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # Another company's row and a missing row look the same: 404.
            raise Http404(f"No {self.opts.verbose_name} with that id.")
        return obj

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if company_of_model(self.model) == "company_id" and "company" not in filters:
            filters.insert(0, CompanyListFilter)
        return [CompanyListFilter if f == "company" else f for f in filters]

    # --- forms: company and same-company choices ---------------------------------------
    def get_form(self, request, obj=None, change=False, **kwargs):
        request._tenant_admin_obj = obj
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and company_of_model(self.model) == "company_id":
            readonly.append("company")  # a row never moves between companies
        return readonly

    def _choices_for(self, request, related_model, queryset):
        if company_of_model(related_model) is None:
            return queryset
        queryset = related_model._default_manager.restrict(request.user, "view")
        obj = getattr(request, "_tenant_admin_obj", None)
        company_id = obj.pk if isinstance(obj, Company) else getattr(obj, "company_id", None)
        if company_id:
            queryset = queryset.filter(**{company_of_model(related_model): company_id})
        return queryset

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "company" and db_field.related_model is Company:
            companies = companies_allowing(user=request.user, model=self.model, action="add")
            kwargs["queryset"] = companies
            if not request.user.is_superuser and len(companies) == 1:
                kwargs["initial"] = companies[0]
                kwargs["widget"] = forms.HiddenInput
            return super().formfield_for_foreignkey(db_field, request, **kwargs)
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and hasattr(field, "queryset"):
            field.queryset = self._choices_for(request, db_field.related_model, field.queryset)
        return field

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if field is not None and hasattr(field, "queryset"):
            field.queryset = self._choices_for(request, db_field.related_model, field.queryset)
        return field

    # --- writes go through the audited services -------------------------------------
    def save_model(self, request, obj, form, change) -> None:
        # Saved in save_related, together with its many-to-many values, in one
        # audited service call.
        pass

    def save_related(self, request, form, formsets, change) -> None:
        m2m = {f.name: form.cleaned_data[f.name] for f in self.model._meta.many_to_many
               if f.name in form.cleaned_data}
        self.save_instance(request, form.instance, m2m)
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_instance(self, request, instance, m2m: dict) -> None:
        instance_save(actor=Actor.from_request(request), instance=instance, m2m=m2m)

    def save_formset(self, request, form, formset, change) -> None:
        actor = Actor.from_request(request)
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            instance_delete(actor=actor, instance=obj)
        for obj in instances:
            instance_save(actor=actor, instance=obj)

    def delete_model(self, request, obj) -> None:
        instance_delete(actor=Actor.from_request(request), instance=obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    # --- guardian's object-permission pages ---------------------------------------------
    def _may_manage_grants(self, request, obj) -> bool:
        if request.user.is_superuser:
            return True
        return any(m.company_id == obj.company_id and role_allows(m.role, Membership, "change")
                   for m in user_memberships(request.user))

    def _grant_target(self, request, object_pk):
        obj = self.get_object(request, object_pk)
        if not self._may_manage_grants(request, obj):
            raise PermissionDenied
        request._grant_object = obj
        return obj

    def obj_perms_manage_view(self, request, object_pk):
        self._grant_target(request, object_pk)
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        obj = self._grant_target(request, object_pk)
        if not Membership.objects.filter(company_id=obj.company_id, user_id=user_id).exists():
            raise Http404("Not a member of this company.")
        return super().obj_perms_manage_user_view(request, object_pk, user_id)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        # Groups are platform-wide, not a company's: only superusers manage them.
        if not request.user.is_superuser:
            raise PermissionDenied
        return super().obj_perms_manage_group_view(request, object_pk, group_id)

    def get_obj_perms_user_select_form(self, request):
        obj = request._grant_object

        class MemberSelect(UserManage):
            def clean_user(self):
                # One answer, and one query, whether the name is nobody's or another company's
                # member's: the page must not tell which usernames exist on the platform.
                username = self.cleaned_data["user"]
                user_model = get_user_model()
                user = user_model._default_manager.filter(
                    **{user_model.USERNAME_FIELD: username}, memberships__company_id=obj.company_id).first()
                if user is None:
                    raise forms.ValidationError(NO_SUCH_MEMBER, code="no_such_member")
                return user

        return MemberSelect

    def get_obj_perms_group_select_form(self, request):
        if request.user.is_superuser:
            return super().get_obj_perms_group_select_form(request)

        class NoGroups(GroupManage):
            def clean_group(self):
                # Groups are the platform's, managed by superusers: every name gets this one
                # answer, so the form does not tell which group names exist.
                raise forms.ValidationError(GROUPS_ARE_THE_PLATFORMS, code="superusers_only")

        return NoGroups

    def get_obj_perms_manage_user_form(self, request):
        granter = request.user
        actor = Actor.from_request(request)

        class GrantsWithinOwnRights(UserObjectPermissionsForm):
            """Offers only the permissions the granting user holds on this object."""

            def get_obj_perms_field_choices(self):
                app_label = self.obj._meta.app_label
                return [(p.codename, p.name) for p in get_perms_for_model(self.obj)
                        if granter.has_perm(f"{app_label}.{p.codename}", self.obj)]

            def get_obj_perms_field_widget(self):
                return forms.CheckboxSelectMultiple

            def save_obj_perms(self):
                services.object_permissions_set(
                    actor=actor, user=self.user, obj=self.obj,
                    perms=set(self.cleaned_data[self.get_obj_perms_field_name()]),
                    manageable={c for c, _ in self.get_obj_perms_field_choices()})

        return GrantsWithinOwnRights


@admin.register(Company)
class CompanyAdmin(TenantAdmin):
    """Credentials are stored encrypted and shown only as their last four characters.

    Opening hours are a weekday grid (tenants.forms). `beside_opening_hours` names read-only
    fields that apps above add right after them (appointments: the company's closures), as
    display methods they set on this class."""

    form = CompanyForm
    beside_opening_hours: list[str] = []
    list_display = ["name", "slug", "timezone", "language", "phone", "is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["name", "slug", "is_active"]}),
        ("Practice", {"fields": ["timezone", "language", "phone", "address", "opening_hours"]}),
        ("Retell", {"fields": ["retell_api_key", "retell_require_published_ip", "retell_llm_plain_path_enabled"]}),
        ("Twilio", {"fields": ["twilio_enabled", "twilio_account_sid", "twilio_auth_token"]}),
        ("Speech (calls over Twilio)", {"fields": ["stt_provider", "tts_provider"]}),
        ("ElevenLabs", {"fields": ["elevenlabs_api_key", "elevenlabs_webhook_secret"]}),
        ("Practice backend", {"fields": ["backend_url", "backend_api_key"]}),
        ("Language model", {"fields": ["llm_base_url", "llm_model", "llm_api_key"],
                            "description": "For agents whose dialog engine is an OpenAI-compatible LLM."}),
        ("Rate limits", {"fields": ["rate_limits"],
                         "description": "This company's own rates of the limits that count its agents and "
                                        "company (see the README, \"Rate limits\"). Shown to superusers only."}),
    ]
    superuser_fieldsets = ("Rate limits",)

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(name, options) for name, options in super().get_fieldsets(request, obj)
                     if request.user.is_superuser or name not in self.superuser_fieldsets]
        return [(name, {**options, "fields": [f for field in options["fields"]
                                              for f in ([field, *self.beside_opening_hours]
                                                        if field == "opening_hours" else [field])]})
                for name, options in fieldsets]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *self.beside_opening_hours]


class MembershipForm(forms.ModelForm):
    actor: Actor

    def clean(self):
        cleaned = super().clean()
        company = cleaned.get("company") or getattr(self.instance, "company", None)
        role = cleaned.get("role")
        if company and role:
            existing = Membership.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
            try:
                services.membership_role_check(actor=self.actor, company=company, role=role, existing=existing)
            except PermissionDenied as exc:
                raise forms.ValidationError(str(exc)) from None
        return cleaned


@admin.register(Membership)
class MembershipAdmin(TenantAdmin):
    form = MembershipForm
    list_display = ["user", "company", "role", "limited_to_granted_objects", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"actor": Actor.from_request(request)})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:
            # Staff see the people of their own companies, not the platform's user list.
            companies = Company.objects.restrict(request.user, "view")
            kwargs["queryset"] = get_user_model().objects.filter(
                memberships__company__in=companies).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return [*readonly, "user"] if obj is not None else readonly

    def _outranks(self, request, obj) -> bool:
        if obj is None or request.user.is_superuser:
            return True
        own = next((m.role for m in user_memberships(request.user) if m.company_id == obj.company_id), None)
        return own is not None and outranks_or_equals(own, obj.role)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and self._outranks(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if not (super().has_delete_permission(request, obj) and self._outranks(request, obj)):
            return False
        if obj is not None and obj.role == Role.OWNER:
            return Membership.objects.filter(company_id=obj.company_id, role=Role.OWNER).exclude(pk=obj.pk).exists()
        return True

    def save_instance(self, request, instance, m2m) -> None:
        services.membership_save(actor=Actor.from_request(request), membership=instance)

    def delete_model(self, request, obj) -> None:
        services.membership_delete(actor=Actor.from_request(request), membership=obj)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Each member manages their own gateway tokens; the token is shown once, on creation."""

    list_display = ["name", "key_prefix", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    fields = ["name"]
    readonly_fields = []
    actions = ["revoke"]

    def _member(self, request) -> bool:
        return request.user.is_active and request.user.is_staff and (
            request.user.is_superuser or bool(user_memberships(request.user)))

    def has_module_permission(self, request) -> bool:
        return self._member(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._member(request) and (obj is None or request.user.is_superuser or obj.user_id == request.user.pk)

    def has_add_permission(self, request) -> bool:
        return self._member(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        rows = super().get_queryset(request).select_related("user")
        return rows if request.user.is_superuser else rows.filter(user=request.user)

    def get_fields(self, request, obj=None):
        return ["name"] if obj is None else ["name", "key_prefix", "user", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        token, plaintext = services.api_token_create(actor=Actor.from_request(request), user=request.user,
                                                     name=obj.name)
        obj.pk = token.pk
        messages.warning(request, format_html(
            "Your new API token (copy it now: it is shown only once): <code>{}</code>", plaintext))

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:
        actor = Actor.from_request(request)
        for token in queryset:
            services.api_token_revoke(actor=actor, token=token)
        messages.success(request, f"Revoked {queryset.count()} token(s).")
