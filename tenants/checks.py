from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.checks.security import base as security_checks
from django.core.checks.security import csrf as csrf_checks
from django.test.utils import override_settings
from django.utils.module_loading import import_string


@register(Tags.security, deploy=True)
def check_production_secrets(app_configs, **kwargs):
    problems = []
    if settings.SECRET_KEY == settings.EMBEDDED_SECRET_KEY:
        problems.append(Error("DJANGO_SECRET_KEY is the embedded run's public default.",
                              hint="Set DJANGO_SECRET_KEY to a long random value.", id="voicedesk.E001"))
    if not settings.FIELD_ENCRYPTION_KEYS:
        problems.append(Error("FIELD_ENCRYPTION_KEYS is not set; secrets use a key derived from "
                              "DJANGO_SECRET_KEY.",
                              hint="Run `manage.py generate_encryption_key` and set FIELD_ENCRYPTION_KEYS.",
                              id="voicedesk.E002"))
    return problems


@register(Tags.compatibility)
def check_guardian_backend_is_ours(app_configs, **kwargs):
    # guardian.W001 asks for guardian's own backend. It is left out on purpose: it
    # would let an object grant exceed the role of the membership. Our backend reads
    # the grants through TenantQuerySet.restrict instead.
    if "guardian.backends.ObjectPermissionBackend" in settings.AUTHENTICATION_BACKENDS:
        return [Warning("guardian's ObjectPermissionBackend lets object grants exceed membership roles.",
                        id="voicedesk.W001")]
    return []


# Django finds these by their dotted paths in MIDDLEWARE; config.middleware subclasses them.
DJANGO_MIDDLEWARE = ("django.middleware.security.SecurityMiddleware",
                     "django.middleware.clickjacking.XFrameOptionsMiddleware",
                     "django.middleware.csrf.CsrfViewMiddleware")
# Django's deploy checks that look only when they find that middleware by its path.
MIDDLEWARE_BOUND_CHECKS = (
    security_checks.check_security_middleware, security_checks.check_xframe_options_middleware,
    csrf_checks.check_csrf_middleware, security_checks.check_sts, security_checks.check_sts_include_subdomains,
    security_checks.check_sts_preload, security_checks.check_content_type_nosniff, security_checks.check_ssl_redirect,
    security_checks.check_xframe_deny, security_checks.check_referrer_policy,
    security_checks.check_cross_origin_opener_policy, csrf_checks.check_csrf_cookie_secure)
# The presence checks (silenced in settings) report under our ids, so that a real absence is never silenced.
PRESENCE_IDS = {"security.W001": "voicedesk.W002", "security.W002": "voicedesk.W003", "security.W003": "voicedesk.W004"}


def _as_django(path: str) -> str:
    try:
        middleware = import_string(path)
    except ImportError:
        return path
    return next((name for name in DJANGO_MIDDLEWARE if isinstance(middleware, type)
                 and issubclass(middleware, import_string(name))), path)


@register(Tags.security, deploy=True)
def check_middleware_bound_security(app_configs, **kwargs):
    """Django's middleware-bound deploy checks, with this product's subclasses of that middleware
    taken for the classes they extend (settings.SILENCED_SYSTEM_CHECKS says why)."""
    as_django = [_as_django(path) for path in settings.MIDDLEWARE]
    with override_settings(MIDDLEWARE=as_django):
        messages = [message for check in MIDDLEWARE_BOUND_CHECKS for message in check(app_configs)]
    for message in messages:
        message.id = PRESENCE_IDS.get(message.id, message.id)
    if as_django == list(settings.MIDDLEWARE):  # Django's own run sees the same: only the renamed ones
        return [message for message in messages if message.id in PRESENCE_IDS.values()]
    return messages
