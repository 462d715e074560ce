"""Reads for the routing app."""

from datetime import datetime, timedelta

from django.utils import timezone

from routing.models import WorkerHeartbeat

# Beat sends the heartbeat every 30 s; two missed beats mean something is stuck.
HEARTBEAT_STALE_AFTER = timedelta(seconds=90)


def heartbeat_status(*, name: str = "worker", now: datetime | None = None) -> dict[str, object]:
    now = now or timezone.now()
    heartbeat = WorkerHeartbeat.objects.filter(name=name).first()
    if heartbeat is None:
        return {"ok": False, "last_seen_at": None, "age_seconds": None}
    age = (now - heartbeat.last_seen_at).total_seconds()
    return {
        "ok": age <= HEARTBEAT_STALE_AFTER.total_seconds(),
        "last_seen_at": heartbeat.last_seen_at.isoformat(),
        "age_seconds": round(age, 1),
        "hostname": heartbeat.hostname,
    }
