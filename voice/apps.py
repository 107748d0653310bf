from django.apps import AppConfig


class VoiceConfig(AppConfig):
    name = "voice"
    verbose_name = "Calls and voice"

    def ready(self) -> None:
        # Deliveries that call_ended queues authenticate with the practice backend's key;
        # registering here makes that known in every web and worker process.
        import appointments.backend  # noqa: F401

        from .access import register_limited_scopes

        # Which rows belong to an agent, for members limited to granted agents (restrict()).
        register_limited_scopes()
