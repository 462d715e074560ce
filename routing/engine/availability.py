"""Whether a rep can take a lead at an instant, and if not, why.

Working hours are read in the rep's own time zone: the instant is converted to
the rep's wall-clock time with zoneinfo, so daylight-saving changes need no
special case (09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from routing.engine.facts import MemberInfo, QueueInfo, RepInfo


def is_out_of_office(rep: RepInfo, now: datetime) -> bool:
    if not rep.out_of_office:
        return False
    return any(start <= now < end for start, end in rep.out_of_office)


def is_working(rep: RepInfo, now: datetime) -> bool:
    """Whether ``now`` falls in one of the rep's windows. No windows configured: always working.

    A window whose end is not after its start is a night shift: it covers its
    own weekday from the start and the next weekday until the end.
    """
    if not rep.working_hours:
        return True
    weekday, clock = _wall_clock(now, rep.time_zone)
    for day, start, end in rep.working_hours:
        if start < end:
            if weekday == day and start <= clock < end:
                return True
        elif (weekday == day and clock >= start) or (weekday == (day + 1) % 7 and clock < end):
            return True
    return False


@lru_cache(maxsize=256)
def _wall_clock(now: datetime, time_zone: str) -> tuple[int, time]:
    """The weekday and time of day ``now`` shows in ``time_zone``: worked out once per instant and zone, since
    every member of a queue in the same zone is judged at the same instant."""
    local = now.astimezone(ZoneInfo(time_zone))
    return local.weekday(), local.time().replace(tzinfo=None)


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


def member_skip_reasons(
    member: MemberInfo,
    rep: RepInfo | None,
    queue: QueueInfo,
    now: datetime,
    required_skills: frozenset[str] | None = None,
) -> list[str]:
    """Every reason a queue member cannot take this lead now; empty when eligible.

    ``required_skills`` are the skills the lead needs here: the queue's own, plus those of the queues it
    overflowed from when this queue inherits them (see ``distribute``); the queue's own when None.
    All reasons are given, not only the first, so a receipt says "off hours; missing skill: german"
    rather than leaving RevOps to guess why the rep would still not have taken the lead in the morning.
    """
    reasons, loaded = standing_skip_reasons(member, rep, queue, now, required_skills)
    if loaded:
        assert rep is not None
        reasons.extend(load_skip_reasons(rep))
    return reasons


def standing_skip_reasons(
    member: MemberInfo,
    rep: RepInfo | None,
    queue: QueueInfo,
    now: datetime,
    required_skills: frozenset[str] | None = None,
) -> tuple[list[str], bool]:
    """``member_skip_reasons`` but for the rep's load (``load_skip_reasons``), and whether the load's reasons
    follow them (not for an inactive membership or an unknown rep). What they read of the rep is
    ``STANDING_FIELDS``."""
    if not member.active:
        return ["membership inactive"], False
    reason = direct_skip_reason(rep, now)
    if rep is None:
        return [reason or "unknown rep"], False
    reasons = [reason] if reason is not None else []
    if queue.skip_off_hours_reps and not is_working(rep, now):
        reasons.append("off hours")
    missing = (queue.required_skills if required_skills is None else required_skills) - rep.skills
    if missing:
        reasons.append("missing skill: " + ", ".join(sorted(missing)))
    return reasons, True


# What ``standing_skip_reasons`` reads of a rep: all but the counts a decision changes.
STANDING_FIELDS = ("id", "active", "unavailable", "out_of_office", "working_hours", "time_zone", "skills")


def load_skip_reasons(rep: RepInfo) -> list[str]:
    """The reasons of the rep's load: open leads at the cap, today's leads at the daily cap."""
    reasons = []
    if rep.open_leads >= rep.max_open_leads:
        reasons.append("at capacity")
    if rep.daily_cap is not None and rep.assigned_today >= rep.daily_cap:
        reasons.append("daily cap reached")
    return reasons


def member_eligible(
    member: MemberInfo,
    rep: RepInfo | None,
    queue: QueueInfo,
    now: datetime,
    required_skills: frozenset[str] | None = None,
) -> bool:
    """Whether ``member_skip_reasons`` gives no reason, stopping at the first one found, cheapest first."""
    if not member.active or rep is None or rep.unavailable or not rep.active:
        return False
    if rep.open_leads >= rep.max_open_leads or (rep.daily_cap is not None and rep.assigned_today >= rep.daily_cap):
        return False
    needed = queue.required_skills if required_skills is None else required_skills
    if needed and not needed <= rep.skills:
        return False
    if is_out_of_office(rep, now):
        return False
    return not queue.skip_off_hours_reps or is_working(rep, now)


def member_skip_reason(
    member: MemberInfo,
    rep: RepInfo | None,
    queue: QueueInfo,
    now: datetime,
    required_skills: frozenset[str] | None = None,
) -> str | None:
    """Why a queue member cannot take this lead now (every reason, joined by "; "), or None when eligible."""
    reasons = member_skip_reasons(member, rep, queue, now, required_skills)
    return "; ".join(reasons) if reasons else None


def next_working_start(rep: RepInfo, now: datetime) -> datetime | None:
    """When the rep's next working window starts after ``now`` (their own time zone, so a Berlin rep's 08:00
    is 07:00 UTC in winter); None when the rep has no windows (always working) or none in the coming week."""
    if not rep.working_hours:
        return None
    zone = ZoneInfo(rep.time_zone)
    today = now.astimezone(zone).date()
    starts = [
        datetime.combine(day, start, tzinfo=zone)
        for day in (today + timedelta(days=offset) for offset in range(8))
        for weekday, start, _end in rep.working_hours
        if day.weekday() == weekday
    ]
    # Compared in UTC: wall-clock datetimes of one zone compare naively, across a DST change too.
    future = [start for start in starts if start.astimezone(ZoneInfo("UTC")) > now]
    return min(future, key=lambda start: start.astimezone(ZoneInfo("UTC"))) if future else None
