"""Celery tasks: thin adapters that load by id and call the services."""

from celery import shared_task

from audit.actor import Actor

from . import services


@shared_task(name="retell_config.tasks.sync_run_execute")
def sync_run_execute_task(run_id: int) -> str:
    return services.sync_run_execute(run_id=run_id).status


@shared_task(name="retell_config.tasks.sync_all_companies")
def sync_all_companies() -> int:
    """Celery beat: sync every company with Retell; drift is recorded, local changes are kept."""
    return len(services.sync_due_companies(actor=Actor.system("celery beat: periodic Retell sync")))
