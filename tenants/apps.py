from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Companies and access"

    def ready(self) -> None:
        from . import checks, crypto  # noqa: F401  (registers checks and the key-reset hook)
