from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


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
