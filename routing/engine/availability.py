"""Whether a rep can take a lead at an instant, and if not, why.

Working hours are read in the rep's own time zone: the instant is converted to
the rep's wall-clock time with zoneinfo, so daylight-saving changes need no
special case (09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from routing.engine.facts import MemberInfo, QueueInfo, RepInfo


def is_out_of_office(rep: RepInfo, now: datetime) -> bool:
    return any(start <= now < end for start, end in rep.out_of_office)


def is_working(rep: RepInfo, now: datetime) -> bool:
    """Whether ``now`` falls in one of the rep's windows. No windows configured: always working.

    A window whose end is not after its start is a night shift: it covers its
    own weekday from the start and the next weekday until the end.
    """
    if not rep.working_hours:
        return True
    local = now.astimezone(ZoneInfo(rep.time_zone))
    weekday, clock = local.weekday(), local.time().replace(tzinfo=None)
    for day, start, end in rep.working_hours:
        if start < end:
            if weekday == day and start <= clock < end:
                return True
        elif (weekday == day and clock >= start) or (weekday == (day + 1) % 7 and clock < end):
            return True
    return False


def direct_skip_reason(rep: RepInfo | None, now: datetime) -> str | None:
    """Why a rep named directly (account owner, a rule's rep, a territory's rep) cannot take the lead."""
    if rep is None:
        return "unknown rep"
    if rep.unavailable:
        return rep.unavailable
    if not rep.active:
        return "inactive"
    if is_out_of_office(rep, now):
        return "out of office"
    return None


def member_skip_reason(member: MemberInfo, rep: RepInfo | None, queue: QueueInfo, now: datetime) -> str | None:
    """Why a queue member cannot take this lead now, or None when eligible. The first reason found is given."""
    if not member.active:
        return "membership inactive"
    reason = direct_skip_reason(rep, now)
    if reason is not None or rep is None:
        return reason or "unknown rep"
    if queue.skip_off_hours_reps and not is_working(rep, now):
        return "off hours"
    missing = sorted(queue.required_skills - rep.skills)
    if missing:
        return "missing skill: " + ", ".join(missing)
    if rep.open_leads >= rep.max_open_leads:
        return "at capacity"
    if rep.daily_cap is not None and rep.assigned_today >= rep.daily_cap:
        return "daily cap reached"
    return None
