"""Writes for the routing app. Routing itself arrives with the routing engine."""

from datetime import datetime

from django.utils import timezone

from routing.models import WorkerHeartbeat


def heartbeat_record(*, name: str, hostname: str = "", now: datetime | None = None) -> WorkerHeartbeat:
    """Stamp the named heartbeat with the current time. Safe to run twice."""
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        name=name, defaults={"last_seen_at": now or timezone.now(), "hostname": hostname}
    )
    return heartbeat
