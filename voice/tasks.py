"""Celery adapters: they take ids; the services load the company explicitly."""

from celery import shared_task

from . import services


@shared_task(name="voice.receipts_process", ignore_result=True)
def receipts_process_task(receipt_ids: list[int]) -> None:
    """Several receipts at once: the web process batches the ids that arrive together."""
    for receipt_id in receipt_ids:
        services.receipt_process(receipt_id=receipt_id)


@shared_task(name="voice.receipts_sweep", ignore_result=True)
def receipts_sweep_task() -> int:
    return services.receipts_sweep()


@shared_task(name="voice.scenario_runs_execute", ignore_result=True)
def scenario_runs_execute_task(run_ids: list[int]) -> None:
    """Saved scenario runs, one after another (each is one simulated call over the real socket)."""
    from .scenarios import scenario_run_execute

    for run_id in run_ids:
        scenario_run_execute(run_id=run_id)
