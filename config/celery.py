import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("voicedesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _log_filters_on_worker_handlers(logger, **kwargs) -> None:
    # The worker replaces the configured handlers with its own: they get the same filters, so
    # no credential reaches the worker's log either (audit.log_filters).
    from audit.log_filters import install_on_handlers

    install_on_handlers(logger)
