"""Celery adapters: they take ids; the services load the company explicitly."""

from celery import shared_task

from . import services


@shared_task(name="voice.receipt_process", ignore_result=True)
def receipt_process_task(receipt_id: int) -> None:
    services.receipt_process(receipt_id=receipt_id)


@shared_task(name="voice.receipts_sweep", ignore_result=True)
def receipts_sweep_task() -> int:
    return services.receipts_sweep()
