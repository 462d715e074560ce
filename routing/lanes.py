"""Sending work to the lanes: routing, notices and their queues (docs/routing.md, "Lanes").

Messages are sent by task name, as ``routing.outbound.deliveries_enqueue`` sends its own: the modules that
send work (intake, the ownership layer, notices, services, admin) are the modules the tasks run, so they do
not import the tasks module, and it imports them at the top. The queue names are read when a message is sent,
not when this module loads, so a deployment (or a test) can name its queues in settings. Each function raises
what the broker raises; the callers log it and leave the work to the sweeps.
"""

from __future__ import annotations

from celery import current_app
from django.conf import settings

from routing.models import Lead

ROUTE_LEADS = "routing.tasks.route_leads"
NOTIFY_ASSIGNMENTS = "routing.tasks.notify_assignments"
NOTIFY_ASSIGNMENTS_BEHIND_BULK = "routing.tasks.notify_assignments_behind_bulk"
NOTIFY_OUTBOX = "routing.tasks.notify_outbox"


def route_leads_send(lead_ids: list[int], *, lane: str) -> None:
    """Send ``route_leads`` for these leads to their lane's queue."""
    queue = settings.LEADROUTER_QUEUE_BULK if lane == Lead.Lane.BULK else settings.LEADROUTER_QUEUE_LIVE
    current_app.send_task(ROUTE_LEADS, args=[lead_ids], kwargs={"lane": lane}, queue=queue)


def notify_assignments_send(assignment_ids: list[int], *, lane: str = Lead.Lane.LIVE) -> None:
    """Send the notices of these assignments: live work's with ``notify_assignments`` to the notify queue,
    bulk work's (a big import, a departure) with ``notify_assignments_behind_bulk`` to the bulk queue, behind
    that work, so that a rep's notice of a live lead never waits behind thousands of an import's, nor an
    import's routing behind its own notices."""
    if lane == Lead.Lane.BULK:
        notify_assignments_behind_bulk_send(assignment_ids)
    else:
        current_app.send_task(NOTIFY_ASSIGNMENTS, args=[assignment_ids], queue=settings.LEADROUTER_QUEUE_NOTIFY)


def notify_assignments_behind_bulk_send(assignment_ids: list[int], *, waiting_since: float | None = None) -> None:
    """Send ``notify_assignments_behind_bulk`` to the back of the bulk queue."""
    kwargs = {"waiting_since": waiting_since} if waiting_since is not None else {}
    current_app.send_task(
        NOTIFY_ASSIGNMENTS_BEHIND_BULK, args=[assignment_ids], kwargs=kwargs, queue=settings.LEADROUTER_QUEUE_BULK
    )


def notify_outbox_send(notification_ids: list[int]) -> None:
    """Send ``notify_outbox`` for these notifications to the notify queue: an SLA reminder or alert is live
    work."""
    current_app.send_task(NOTIFY_OUTBOX, args=[notification_ids], queue=settings.LEADROUTER_QUEUE_NOTIFY)
