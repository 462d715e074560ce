from celery import Task, shared_task

from routing import services


@shared_task(bind=True, ignore_result=True)
def heartbeat(self: Task) -> None:
    """Periodic proof of life for beat → broker → worker → database."""
    services.heartbeat_record(name="worker", hostname=self.request.hostname or "")
