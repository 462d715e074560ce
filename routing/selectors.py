"""Reads for the routing app."""

from datetime import datetime, timedelta
from typing import Literal

from django.utils import timezone

from routing.conditions import parse_condition
from routing.models import ScoringRule, ScoringThresholds, WorkerHeartbeat
from routing.scoring import ScoringRuleInfo, Thresholds

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


def scoring_snapshot() -> tuple[list[ScoringRuleInfo], Thresholds]:
    """The active scoring rules and the thresholds, as the pure scorer reads them."""
    rules = []
    for rule in ScoringRule.objects.filter(active=True).order_by("id"):
        condition = parse_condition(rule.condition)
        if condition is not None:
            kind: Literal["fit", "intent"] = "intent" if rule.kind == ScoringRule.Kind.INTENT else "fit"
            rules.append(ScoringRuleInfo(name=rule.name, kind=kind, condition=condition, points=rule.points))
    current = ScoringThresholds.current()
    return rules, Thresholds(sales_min=current.sales_min, nurture_min=current.nurture_min)
