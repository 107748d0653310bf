import zoneinfo
from typing import Callable, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from .fields import CredentialField, SecretField
from .roles import DEFAULT_POLICY, Role, role_allows
from .validators import validate_company_limits, validate_e164, validate_opening_hours


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError("%(value)s is not an IANA time zone such as Europe/Berlin.",
                              params={"value": value}, code="invalid_timezone")


def user_memberships(user) -> list["Membership"]:
    """The user's memberships, loaded once per user object (that is, per request)."""
    cached = getattr(user, "_voicedesk_memberships", None)
    if cached is None:
        cached = list(Membership.objects.filter(user=user, company__is_active=True)
                      .only("company_id", "role", "limited_to_granted_objects"))
        user._voicedesk_memberships = cached
    return cached


def forget_memberships(user) -> None:
    user.__dict__.pop("_voicedesk_memberships", None)


# Models whose rows belong to granted objects without being granted themselves (an agent's
# calls, the appointments made in them, the audit entries about them): per model, the rows a
# membership limited to granted objects may act on, as a Q over that model for a user. The app
# that knows the link registers it (voice.access); `restrict()` applies it.
LimitedScope = Callable[[object], Q]
_limited_scopes: dict[type[models.Model], LimitedScope] = {}


def limited_scope_register(model: type[models.Model], scope: LimitedScope) -> None:
    """Declare which rows of `model` a membership limited to granted objects may act on.

    `scope(user)` returns a Q over `model`; it is combined with the role's companies, so it
    only has to say which rows belong to objects granted to `user` (and which belong to none).
    """
    if getattr(model, "grantable", False):
        raise ValueError(f"{model._meta.label} is granted itself; its rows are narrowed by the grants.")
    _limited_scopes[model] = scope


def limited_scope(model: type[models.Model]) -> LimitedScope | None:
    """The registered scope of `model`, or None when a limited membership sees it company-wide."""
    return _limited_scopes.get(model)


class TenantQuerySet(models.QuerySet):
    """The one place that decides which rows a user may act on.

    `restrict(user, action)` keeps the rows of companies where one of the user's roles
    allows `action` on this model. A membership limited to granted objects sees only
    the rows of a grantable model that django-guardian grants it that permission on, and
    of a model with a limited scope (`limited_scope_register`) only the rows that scope
    gives it; every other model it sees as its role allows, company-wide.
    """

    company_lookup = "company_id"

    def restrict(self, user, action: str = "view") -> "TenantQuerySet":
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        model = self.model
        grantable = getattr(model, "grantable", False)
        scope = limited_scope(model)
        whole_companies, granted_only, scoped = [], [], []
        for membership in user_memberships(user):
            if not role_allows(membership.role, model, action):
                continue
            if grantable and membership.limited_to_granted_objects:
                granted_only.append(membership.company_id)
            elif scope is not None and membership.limited_to_granted_objects:
                scoped.append(membership.company_id)
            else:
                whole_companies.append(membership.company_id)
        condition = Q(**{f"{self.company_lookup}__in": whole_companies})
        if granted_only:
            from guardian.shortcuts import get_objects_for_user

            perm = f"{model._meta.app_label}.{action}_{model._meta.model_name}"
            granted = get_objects_for_user(user, perm, klass=model._base_manager.all(),
                                           accept_global_perms=False, with_superuser=False)
            condition |= Q(**{f"{self.company_lookup}__in": granted_only}, pk__in=granted.values("pk"))
        if scoped:
            condition |= Q(**{f"{self.company_lookup}__in": scoped}) & scope(user)
        return self.filter(condition)


class CompanyQuerySet(TenantQuerySet):
    company_lookup = "pk"


def stt_provider_choices() -> list[tuple[str, str]]:
    """The speech-to-text providers (voice.speech.registry), read when a form or a check needs
    them, so that this ground-floor module does not load the speech components at start-up."""
    from voice.speech.registry import STT_CHOICES

    return STT_CHOICES


def tts_provider_choices() -> list[tuple[str, str]]:
    """The text-to-speech providers (voice.speech.registry), read lazily like stt_provider_choices."""
    from voice.speech.registry import TTS_CHOICES

    return TTS_CHOICES


class Company(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    timezone = models.CharField(max_length=64, default="Europe/Berlin", validators=[validate_timezone])
    language = models.CharField(max_length=8, choices=settings.LANGUAGES, default="de")
    phone = models.CharField(max_length=20, blank=True, validators=[validate_e164],
                             help_text="E.164, e.g. +493083793369.")
    address = models.TextField(blank=True)
    opening_hours = models.JSONField(
        default=dict, blank=True, validators=[validate_opening_hours],
        help_text='Per weekday a list of [open, close] pairs, e.g. {"mon": [["08:00", "12:00"], '
                  '["13:00", "18:00"]]}. A day left out is closed.')
    is_active = models.BooleanField(default=True)

    retell_api_key = SecretField(verbose_name="Retell API key",
                                 help_text="The webhook-badged key: Retell signs webhooks with it.")
    twilio_account_sid = models.CharField(max_length=64, blank=True)
    twilio_auth_token = SecretField(verbose_name="Twilio auth token",
                                    help_text="The primary auth token: it signs Twilio's webhooks and opens its API.")
    twilio_enabled = models.BooleanField(
        "answer calls to its Twilio numbers", default=False, db_default=False,
        help_text="Off: a call to one of its Twilio numbers hears a short apology and is hung up.")
    stt_provider = models.CharField(
        "speech-to-text", max_length=16, blank=True, default="", db_default="", choices=stt_provider_choices,
        help_text="For calls over Twilio. Empty: the platform's SPEECH_STT_PROVIDER.")
    tts_provider = models.CharField(
        "text-to-speech", max_length=16, blank=True, default="", db_default="", choices=tts_provider_choices,
        help_text="For calls over Twilio. Empty: the platform's SPEECH_TTS_PROVIDER.")
    elevenlabs_api_key = SecretField(verbose_name="ElevenLabs API key")
    retell_require_published_ip = models.BooleanField(
        "accept Retell requests only from Retell's published IP", default=False,
        help_text="Refuse webhook and custom-function requests from any address but RETELL_WEBHOOK_IPS.")
    retell_llm_plain_path_enabled = models.BooleanField(
        "accept the plain /retell-llm/<call_id> socket path", default=False,
        help_text="Off: Retell must use an agent's tokenised URL /retell-llm/{token}. On: the plain path "
                  "is also accepted, once call_details names one of this company's agents.")
    elevenlabs_webhook_secret = SecretField(verbose_name="ElevenLabs webhook secret",
                                            help_text="Verifies ElevenLabs-Signature on callbacks when set.")
    backend_url = models.URLField(blank=True, help_text="The practice backend; empty uses BACKEND_URL.")
    backend_api_key = SecretField(verbose_name="practice backend API key",
                                  help_text="Empty uses BACKEND_API_KEY.")
    llm_base_url = models.URLField("LLM base URL", blank=True,
                                   help_text="An OpenAI-compatible chat-completions API, e.g. https://api.openai.com/v1.")
    llm_model = models.CharField("LLM model", max_length=100, blank=True)
    llm_api_key = SecretField(verbose_name="LLM API key")
    rate_limits = models.JSONField(
        "own rate limits", default=dict, db_default={}, blank=True, validators=[validate_company_limits],
        help_text='Replaces the platform\'s rates (RATE_LIMITS) for this company, e.g. {"webhook.company": '
                  '"12000/m", "function.agent": "2400/m"}. Empty: the platform\'s. Superusers only.')

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CompanyQuerySet.as_manager()

    tenant_policy: ClassVar = {
        Role.OWNER: frozenset({"view", "change"}),
        Role.ADMIN: frozenset({"view", "change"}),
        Role.EDITOR: frozenset({"view"}),
        Role.VIEWER: frozenset({"view"}),
    }

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


def company_of_model(model) -> str | None:
    """The lookup that names a row's company, or None for models outside tenancy."""
    if model is Company:
        return "pk"
    field = next((f for f in model._meta.concrete_fields if f.name == "company"), None)
    return "company_id" if field is not None and field.related_model is Company else None


def rows_outside_company(model, pks, company_id: int) -> list:
    """Which of `pks` are rows of another company (empty for models outside tenancy)."""
    lookup = company_of_model(model)
    pks = [pk for pk in pks if pk is not None]
    if lookup is None or not pks:
        return []
    inside = set(model._base_manager.filter(pk__in=pks, **{lookup: company_id}).values_list("pk", flat=True))
    return [pk for pk in pks if pk not in inside]


class TenantOwned(models.Model):
    """Base of every tenant-owned model: a company and the restricting queryset.

    `clean()` refuses a foreign key to another company's row, so no interface can
    link two tenants' data.
    """

    company = models.ForeignKey(Company, on_delete=models.CASCADE)

    objects = TenantQuerySet.as_manager()

    # True where a membership may be limited to the rows guardian grants it.
    grantable: ClassVar[bool] = False
    tenant_policy: ClassVar = DEFAULT_POLICY

    class Meta:
        abstract = True

    def clean(self) -> None:
        super().clean()
        if not self.company_id:
            return
        errors = {}
        for field in self._meta.concrete_fields:
            if not field.many_to_one or field.name == "company":
                continue
            if rows_outside_company(field.related_model, [getattr(self, field.attname)], self.company_id):
                errors[field.name] = ValidationError("Choose one of this company's own %(what)s.",
                                                     params={"what": field.related_model._meta.verbose_name_plural},
                                                     code="other_company")
        if errors:
            raise ValidationError(errors)


class Membership(TenantOwned):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    limited_to_granted_objects = models.BooleanField(
        default=False,
        help_text="Sees only the agents (and other grantable objects) granted to this user "
                  "on their Object permissions page.")
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_policy: ClassVar = {
        Role.OWNER: frozenset({"view", "add", "change", "delete"}),
        Role.ADMIN: frozenset({"view", "add", "change", "delete"}),
        Role.EDITOR: frozenset({"view"}),
        Role.VIEWER: frozenset({"view"}),
    }

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "company"], name="membership_one_per_user_company"),
        ]
        ordering = ["company__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} of {self.company}"



class ApiToken(models.Model):
    """A user's bearer token for the JSON-RPC gateway. Only a SHA-256 of it is stored;
    the token itself is shown once, when it is made. It acts with its user's rights."""

    PREFIX = "vdk_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What it is for, e.g. \"deploy script\".")
    key_prefix = models.CharField(max_length=16, editable=False,
                                  help_text="The first characters, to tell tokens apart.")
    key_hash = CredentialField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API token"
        ordering = ["user__username", "-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def audit_label(self) -> str:
        """How audit entries name the token: by name and id, never by any part of the key."""
        return f"token:{self.name}#{self.pk}"
