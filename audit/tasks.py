"""Celery adapters of the delivery engine: they take ids and call the services."""

from celery import shared_task

from . import deliveries


@shared_task(name="audit.delivery_send", ignore_result=True)
def delivery_send_task(delivery_id: int) -> None:
    deliveries.delivery_send(delivery_id=delivery_id)


@shared_task(name="audit.deliveries_sweep", ignore_result=True)
def deliveries_sweep_task() -> int:
    return deliveries.deliveries_sweep()
