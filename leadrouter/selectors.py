"""Reads for the project's own pages, which combine the three apps: the team board.

Who a manager acts on (reps, leads, queues) is decided in ``territories.access`` and ``routing.access``.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Count, Prefetch, Q

from routing.access import acting_reps, managed_open_leads
from routing.engine import RepInfo, is_working
from routing.models import Lead
from routing.ownership import rep_loads
from sla.models import LeadSla
from territories.access import managed_teams
from territories.models import OutOfOffice, Rep, Team


@dataclass
class RepBoardRow:
    """One rep on the team board: load against capacity and caps, and availability now and next."""

    rep: Rep
    open_leads: int
    assigned_today: int
    load_percent: int
    # Above this many open leads the rep is near capacity (the load bar turns amber; at capacity, red).
    near_capacity_from: float
    # From this many the bar is red: just under capacity, since a meter's value must pass ``high`` to be red.
    full_from: float
    at_capacity: bool
    at_daily_cap: bool
    away_until: datetime | None
    working_now: bool | None  # None: no working hours configured, so always available
    local_time: datetime
    next_away: OutOfOffice | None

    @property
    def near_capacity(self) -> bool:
        return not self.at_capacity and self.open_leads > self.near_capacity_from


@dataclass
class AgingLead:
    lead: Lead
    age: timedelta
    lead_sla: LeadSla | None


@dataclass
class BoardCounts:
    """The team's open leads that need a manager's eye: never touched, of those past their first-touch due time
    (breached), and of those older than the aging threshold."""

    untouched: int
    breached: int
    aging: int
    aging_after: timedelta


@dataclass
class TeamBoard:
    teams: list[Team]
    reps: list[RepBoardRow]
    leads: list[AgingLead]
    leads_total: int
    targets: list[Rep]
    counts: BoardCounts | None = None

    @property
    def near_capacity(self) -> list[RepBoardRow]:
        return [row for row in self.reps if row.near_capacity]


BOARD_LEAD_LIMIT = 200
# A rep above this share of their open-lead capacity is near it: their load bar turns amber.
NEAR_CAPACITY = 0.8


def team_board(
    *, user: Any, now: datetime, older_than: timedelta | None, aging_after: timedelta = timedelta(hours=24)
) -> TeamBoard:
    """What the team board shows ``user``: each rep in scope with load and availability, and the open
    leads of those reps, oldest first.

    ``older_than`` set: only leads received longer ago than that and never touched (no first touch on
    their SLA clock) — the aging leads. None: every open lead. At most ``BOARD_LEAD_LIMIT`` leads are
    listed (the oldest); ``leads_total`` counts them all. ``counts`` sums up the open leads in one query
    (aging: untouched and received longer ago than ``aging_after``). A fixed number of queries.
    """
    reps = list(
        acting_reps(user=user).prefetch_related(
            "working_hours",
            Prefetch("out_of_office", queryset=OutOfOffice.objects.filter(ends_at__gt=now).order_by("starts_at")),
        )
    )
    open_counts, today_counts = rep_loads(now=now, rep_ids=[rep.pk for rep in reps])
    rows = []
    for rep in reps:
        periods = list(rep.out_of_office.all())
        current = [period for period in periods if period.starts_at <= now]
        upcoming = [period for period in periods if period.starts_at > now]
        hours = tuple((window.weekday, window.start, window.end) for window in rep.working_hours.all())
        info = RepInfo(id=rep.pk, username=rep.user.username, time_zone=rep.time_zone, working_hours=hours)
        open_leads = open_counts.get(rep.pk, 0)
        assigned_today = today_counts.get(rep.pk, 0)
        rows.append(
            RepBoardRow(
                rep=rep,
                open_leads=open_leads,
                assigned_today=assigned_today,
                load_percent=min(100, round(100 * open_leads / rep.max_open_leads)) if rep.max_open_leads else 100,
                near_capacity_from=rep.max_open_leads * NEAR_CAPACITY,
                full_from=rep.max_open_leads - 0.5,
                at_capacity=open_leads >= rep.max_open_leads,
                at_daily_cap=rep.daily_cap is not None and assigned_today >= rep.daily_cap,
                away_until=max(period.ends_at for period in current) if current else None,
                working_now=is_working(info, now) if hours else None,
                local_time=now.astimezone(ZoneInfo(rep.time_zone)),
                next_away=upcoming[0] if upcoming else None,
            )
        )

    leads = managed_open_leads(user=user)
    untouched = Q(sla__isnull=True) | Q(sla__touched_at__isnull=True)
    counted = leads.order_by().aggregate(
        untouched=Count("pk", filter=untouched),
        breached=Count("pk", filter=Q(sla__touched_at__isnull=True, sla__due_at__lte=now)),
        aging=Count("pk", filter=untouched & Q(received_at__lte=now - aging_after)),
    )
    if older_than is not None:
        leads = leads.filter(untouched, received_at__lte=now - older_than)
    leads = leads.order_by("received_at", "pk")
    total = leads.count()
    aging = [
        AgingLead(lead=lead, age=now - lead.received_at, lead_sla=getattr(lead, "sla", None))
        for lead in leads[:BOARD_LEAD_LIMIT]
    ]
    return TeamBoard(
        teams=list(managed_teams(user=user)),
        reps=rows,
        leads=aging,
        leads_total=total,
        targets=[rep for rep in reps if rep.active],
        counts=BoardCounts(aging_after=aging_after, **counted),
    )
