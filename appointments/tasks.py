from celery import shared_task

from audit.actor import Actor

from .services import appointments_release_expired


@shared_task(name="appointments.tasks.appointments_release_expired_task")
def appointments_release_expired_task() -> int:
    """Celery beat: release pending appointments whose call never ended (every company)."""
    return appointments_release_expired(actor=Actor.system("celery beat: release expired appointments"))
