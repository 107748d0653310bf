from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Prompt A/B testing"

    def ready(self) -> None:
        from .access import register_limited_scopes

        # An experiment and its variants belong to their agent (members limited to granted agents).
        register_limited_scopes()
