"""Celery tasks. Each takes ids, never objects, and is safe to run twice: the
lead row is the outbox, so a task only ever routes leads still ``received`` and
only ever sends notifications still ``pending``."""

from celery import Task, shared_task
from django.conf import settings

from routing import services


@shared_task(bind=True, ignore_result=True)
def heartbeat(self: Task) -> None:
    """Periodic proof of life for beat → broker → worker → database."""
    services.heartbeat_record(name="worker", hostname=self.request.hostname or "")


@shared_task(ignore_result=True)
def route_leads(lead_ids: list[int]) -> None:
    """Route these leads, if they are still waiting. Intake sends this after commit."""
    from routing.dispatch import leads_route

    leads_route(lead_ids=lead_ids)


@shared_task(ignore_result=True)
def sweep_received() -> None:
    """Route every lead left in ``received`` for longer than the sweep delay: a lost message, a broker that
    was down at intake, a worker killed mid-batch. Harmless when it overlaps a routing task."""
    from routing.dispatch import leads_route_stale

    leads_route_stale(older_than_seconds=settings.LEADROUTER_RECEIVED_SWEEP_AFTER_SECONDS)


@shared_task(ignore_result=True)
def notify_assignments(assignment_ids: list[int]) -> None:
    """Send the pending notifications of these assignments (e-mail, Slack). Each goes out at most once."""
    from routing.notify import notifications_send

    notifications_send(assignment_ids=assignment_ids)


@shared_task(ignore_result=True)
def sweep_notifications() -> None:
    """Send notifications a lost message left pending, and retry failed ones a few times."""
    from routing.notify import notifications_sweep

    notifications_sweep()
