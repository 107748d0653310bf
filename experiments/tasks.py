"""Celery tasks: thin adapters that load by id and call the services."""

from celery import shared_task

from . import services


@shared_task(name="experiments.tasks.experiment_retell")
def experiment_retell_task(experiment_id: int, step: str) -> str:
    return services.experiment_retell_execute(experiment_id=experiment_id, step=step).retell_error or "ok"


@shared_task(name="experiments.tasks.experiments_stop_due")
def experiments_stop_due_task() -> int:
    """Celery beat: experiments past their planned end stop."""
    return len(services.experiments_stop_due())
