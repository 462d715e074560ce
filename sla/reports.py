"""Reads for the SLA parts of the reports page: speed-to-lead and first-touch SLA adherence.

Scoped like every report (``routing.reports``): the clocks of the leads ``user`` sees, as ``routing.access``
defines them. Each selector runs a fixed number of queries whatever the number of rows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from routing.access import lead_scope
from routing.reports import Period
from sla.models import LeadSla

# Percentiles are computed in Python over at most this many of the newest rows; the page says when it cut.
MAX_SPEED_ROWS = 50_000


# -- Speed-to-lead ------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile with linear interpolation between ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class SpeedRow:
    label: str
    count: int
    wall_p50: float | None
    wall_p90: float | None
    business_p50: float | None
    business_p90: float | None


@dataclass
class SpeedReport:
    by_day: list[SpeedRow]
    by_segment: list[SpeedRow]
    by_rule: list[SpeedRow]
    overall: SpeedRow
    truncated: bool
    # The id of each rule named in ``by_rule``, so a row can open the rule's leads.
    rule_ids: dict[str, int] = field(default_factory=dict)


def _speed_row(label: str, samples: list[tuple[int, int | None]]) -> SpeedRow:
    wall = [float(w) for w, _ in samples]
    business = [float(b) for _, b in samples if b is not None]
    return SpeedRow(
        label=label,
        count=len(samples),
        wall_p50=percentile(wall, 0.5),
        wall_p90=percentile(wall, 0.9),
        business_p50=percentile(business, 0.5),
        business_p90=percentile(business, 0.9),
    )


def speed_to_lead(*, user: Any, period: Period) -> SpeedReport:
    """Median and p90 of routed → first touch, wall clock and business time, by day routed, source and rule.

    One query over at most ``MAX_SPEED_ROWS`` of the newest touched leads; percentiles in Python, so SQLite and
    PostgreSQL give the same figures.
    """
    rows = list(
        LeadSla.objects.filter(
            lead_scope(user, "lead__"),
            lead__routed_at__gte=period.start,
            lead__routed_at__lt=period.end,
            speed_wall_seconds__isnull=False,
        )
        .order_by("-lead__routed_at")
        .values_list(
            "lead__routed_at",
            "speed_wall_seconds",
            "speed_business_seconds",
            "lead__source",
            "lead__rule__name",
            "lead__rule_id",
        )[: MAX_SPEED_ROWS + 1]
    )
    truncated = len(rows) > MAX_SPEED_ROWS
    rows = rows[:MAX_SPEED_ROWS]
    by_day: dict[date, list[tuple[int, int | None]]] = defaultdict(list)
    by_source: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
    by_rule: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
    samples: list[tuple[int, int | None]] = []
    rule_ids: dict[str, int] = {}
    for routed_at, wall, business, source, rule, rule_id in rows:
        if rule and rule_id is not None:
            rule_ids[rule] = rule_id
        # The filter excludes a missing wall-clock speed; mypy cannot see that.
        sample = (int(wall or 0), business)
        samples.append(sample)
        by_day[timezone.localdate(routed_at)].append(sample)
        by_source[source or "(no source)"].append(sample)
        by_rule[rule or "(no rule)"].append(sample)
    return SpeedReport(
        by_day=[_speed_row(f"{day:%Y-%m-%d}", by_day.get(day, [])) for day in period.day_list],
        by_segment=[_speed_row(label, samples) for label, samples in sorted(by_source.items())],
        by_rule=[_speed_row(label, samples) for label, samples in sorted(by_rule.items())],
        overall=_speed_row("All", samples),
        truncated=truncated,
        rule_ids=rule_ids,
    )


# -- SLA adherence ------------------------------------------------------------------------------------------------


@dataclass
class AdherenceRow:
    label: str
    met: int = 0
    missed: int = 0
    breached: int = 0
    # The rep or team the row counts (per-owner rows), so a row can open its leads.
    key: int | None = None

    @property
    def decided(self) -> int:
        return self.met + self.missed + self.breached

    @property
    def percent_met(self) -> float | None:
        return round(100 * self.met / self.decided, 1) if self.decided else None


@dataclass
class AdherenceReport:
    by_day: list[AdherenceRow]
    total: AdherenceRow = field(default_factory=lambda: AdherenceRow(label="All"))


def sla_adherence(*, user: Any, period: Period, now: datetime | None = None) -> AdherenceReport:
    """First-touch SLAs started in the period, by day: met, touched late, and breached with no touch yet.

    An untouched clock past its due time counts as breached even before the sweep stores that. Clocks still
    running (or leads without an SLA) are in none of the three. One grouped query.
    """
    now = now or timezone.now()
    breached = Q(touched_at__isnull=True) & (Q(state=LeadSla.State.BREACHED) | Q(due_at__lt=now))
    grouped = (
        LeadSla.objects.filter(lead_scope(user, "lead__"), started_at__gte=period.start, started_at__lt=period.end)
        .annotate(day=TruncDate("started_at"))
        .order_by()
        .values("day")
        .annotate(
            met=Count("pk", filter=Q(state=LeadSla.State.MET)),
            missed=Count("pk", filter=Q(state=LeadSla.State.MISSED)),
            breached=Count("pk", filter=breached),
        )
    )
    counts = {row["day"]: row for row in grouped}
    report = AdherenceReport(by_day=[])
    for day in period.day_list:
        found = counts.get(day, {})
        row = AdherenceRow(
            label=f"{day:%Y-%m-%d}",
            met=found.get("met", 0),
            missed=found.get("missed", 0),
            breached=found.get("breached", 0),
        )
        report.by_day.append(row)
        report.total.met += row.met
        report.total.missed += row.missed
        report.total.breached += row.breached
    return report


def _breached(now: datetime) -> Q:
    return Q(touched_at__isnull=True) & (Q(state=LeadSla.State.BREACHED) | Q(due_at__lt=now))


def sla_adherence_by_owner(
    *, user: Any, period: Period, now: datetime | None = None
) -> tuple[list[AdherenceRow], list[AdherenceRow]]:
    """First-touch SLAs started in the period per rep and per team of the lead's owner now, counted as in
    ``sla_adherence`` (met, touched late, breached and untouched); clocks of leads without an owner are in
    neither. Worst adherence first, so the rows to act on lead. Two grouped queries."""
    now = now or timezone.now()
    clocks = LeadSla.objects.filter(
        lead_scope(user, "lead__"),
        started_at__gte=period.start,
        started_at__lt=period.end,
        lead__owner__isnull=False,
    ).order_by()
    counts = {
        "met": Count("pk", filter=Q(state=LeadSla.State.MET)),
        "missed": Count("pk", filter=Q(state=LeadSla.State.MISSED)),
        "breached": Count("pk", filter=_breached(now)),
    }
    reps = [
        AdherenceRow(label=row["lead__owner__user__username"], key=row["lead__owner_id"], **_counts(row))
        for row in clocks.values("lead__owner_id", "lead__owner__user__username").annotate(**counts)
    ]
    teams = [
        AdherenceRow(
            label=row["lead__owner__team__name"] or "(no team)", key=row["lead__owner__team_id"], **_counts(row)
        )
        for row in clocks.values("lead__owner__team_id", "lead__owner__team__name").annotate(**counts)
    ]
    return _worst_first(reps), _worst_first(teams)


def _counts(row: dict[str, Any]) -> dict[str, int]:
    return {"met": row["met"], "missed": row["missed"], "breached": row["breached"]}


def _worst_first(rows: list[AdherenceRow]) -> list[AdherenceRow]:
    decided = [row for row in rows if row.decided]
    return sorted(decided, key=lambda row: (row.percent_met or 0.0, -row.decided, row.label))
