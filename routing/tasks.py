from celery import shared_task

from routing import services


@shared_task(bind=True, ignore_result=True)
def heartbeat(self) -> None:  # type: ignore[no-untyped-def]
    """Periodic proof of life for beat → broker → worker → database."""
    services.heartbeat_record(name="worker", hostname=self.request.hostname or "")
