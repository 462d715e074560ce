"""When each rung of an escalation ladder fires, in business time. Pure: no ORM, no clock.

A step fires either at a share of the first-touch target ("remind the rep at
80%": started + 80% of the target in business minutes) or a number of business
minutes after the due time ("reassign 15 minutes after the breach"). Steps fire
in position order; a step whose time is earlier than the previous one's fires
right after it, never before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sla.calendar import CalendarSpec, add_business_time


@dataclass(frozen=True)
class StepInfo:
    id: int
    position: int
    when: str  # "percent" or "after_due"
    percent: int | None = None
    minutes_after_due: int | None = None


def due_at(*, spec: CalendarSpec, started_at: datetime, target_minutes: int) -> datetime:
    """The first-touch due time: ``target_minutes`` of business time after ``started_at``."""
    return add_business_time(spec, started_at, timedelta(minutes=target_minutes))


def step_fires_at(
    *, step: StepInfo, spec: CalendarSpec, started_at: datetime, due: datetime, target_minutes: int
) -> datetime:
    """When ``step`` fires for a clock started at ``started_at`` and due at ``due``."""
    if step.when == "percent":
        share = timedelta(minutes=target_minutes) * (step.percent or 0) / 100
        return add_business_time(spec, started_at, share)
    return add_business_time(spec, due, timedelta(minutes=step.minutes_after_due or 0))


def next_step(
    steps: Sequence[StepInfo],
    *,
    after_position: int | None,
    spec: CalendarSpec,
    started_at: datetime,
    due: datetime,
    target_minutes: int,
    not_before: datetime | None = None,
) -> tuple[StepInfo, datetime] | None:
    """The step after ``after_position`` (the first when None) and when it fires, or None at the ladder's end.
    ``not_before`` keeps the order: a step never fires before the one it follows."""
    remaining = sorted(
        (step for step in steps if after_position is None or step.position > after_position), key=lambda s: s.position
    )
    if not remaining:
        return None
    step = remaining[0]
    fires = step_fires_at(step=step, spec=spec, started_at=started_at, due=due, target_minutes=target_minutes)
    if not_before is not None and fires < not_before:
        fires = not_before
    return step, fires
