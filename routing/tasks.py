"""Celery tasks. Each takes ids, never objects, and is safe to run twice: the
lead row and the notification row are the outboxes, so a task only ever routes
leads still ``received`` and only ever sends notifications still ``pending``."""

import logging
import time

from celery import Task, shared_task
from django.conf import settings

from routing import lanes, services
from routing.dispatch import leads_route, leads_route_stale
from routing.models import Lead
from routing.notify import notifications_send, notifications_sweep
from routing.outbound import deliveries_due, deliveries_enqueue, deliveries_prune, deliveries_send

logger = logging.getLogger(__name__)


@shared_task(bind=True, ignore_result=True)
def heartbeat(self: Task) -> None:
    """Periodic proof of life for beat → broker → worker → database."""
    services.heartbeat_record(name="worker", hostname=self.request.hostname or "")


@shared_task(ignore_result=True)
def route_leads(lead_ids: list[int], lane: str | None = None) -> None:
    """Route these leads, if they are still waiting, filling the batch with waiting leads of ``lane`` (any
    lane when None). Intake sends this after commit with ``routing.lanes.route_leads_send``."""
    leads_route(lead_ids=lead_ids, lane=lane)


@shared_task(ignore_result=True)
def sweep_received() -> None:
    """Route every lead left in ``received`` for longer than the sweep delay: a lost message, a broker that
    was down at intake, a worker killed mid-batch. Harmless when it overlaps a routing task."""
    leads_route_stale(older_than_seconds=settings.LEADROUTER_RECEIVED_SWEEP_AFTER_SECONDS)


@shared_task(ignore_result=True)
def notify_assignments(assignment_ids: list[int]) -> None:
    """Send the pending notifications of these assignments (e-mail, Slack). Each goes out at most once."""
    notifications_send(assignment_ids=assignment_ids)


# How long a bulk batch's notices may wait behind bulk routing before they go out anyway.
BULK_NOTICES_MAX_WAIT_SECONDS = 600.0


@shared_task(ignore_result=True)
def notify_assignments_behind_bulk(assignment_ids: list[int], waiting_since: float | None = None) -> None:
    """Send the notices of a bulk batch's assignments (an import, a departure) once no bulk lead waits to be
    routed: until then the task goes to the back of the bulk queue again. An import's notices cost about as much
    as routing its leads; sent between its batches, they held its last leads back by seconds. A notice waits
    at most ``BULK_NOTICES_MAX_WAIT_SECONDS``; then it goes out whatever still waits."""
    waiting_since = waiting_since or time.time()
    bulk_waiting = Lead.objects.filter(status=Lead.Status.RECEIVED, lane=Lead.Lane.BULK)
    if time.time() - waiting_since < BULK_NOTICES_MAX_WAIT_SECONDS and bulk_waiting.exists():
        lanes.notify_assignments_behind_bulk_send(assignment_ids, waiting_since=waiting_since)
        return
    notifications_send(assignment_ids=assignment_ids)


@shared_task(ignore_result=True)
def notify_outbox(notification_ids: list[int]) -> None:
    """Send these pending notifications by id: the notices other apps record (the SLA ladder's reminders and
    manager alerts), rendered as their app registered. Each goes out at most once."""
    notifications_send(notification_ids=notification_ids)


@shared_task(ignore_result=True)
def sweep_notifications() -> None:
    """Send notifications a lost message left pending, and retry failed ones a few times."""
    notifications_sweep()


# --- Webhooks and CRM write-back (routing/outbound.py) -------------------------------------------------------


@shared_task(ignore_result=True)
def deliver_events() -> None:
    """Send the due webhook and CRM deliveries, in order per lead and receiver, in the webhooks queue, apart
    from routing's lanes (``routing.outbound.deliveries_enqueue``). Each is claimed before it is sent, so
    tasks running at once never send one twice."""
    deliveries_send()


@shared_task(ignore_result=True)
def sweep_deliveries() -> None:
    """Wake the sender when retries came due (or the broker was down when the events were recorded)."""
    if deliveries_due():
        deliveries_enqueue()


@shared_task(ignore_result=True)
def prune_deliveries() -> None:
    """Delete the events past their retention, with their deliveries and attempt logs, in bounded batches
    (``routing.outbound.deliveries_prune``)."""
    report = deliveries_prune()
    if report.events:
        logger.info(
            "Pruned %d events, %d deliveries and %d attempts%s.",
            report.events,
            report.deliveries,
            report.attempts,
            "" if report.done else "; more are left for the next run",
        )
