"""Reads for the routing health page and the reports: every figure is scoped to who is asking. The SLA figures
(speed-to-lead, first-touch adherence) read the clocks of the sla app and live in ``sla.reports``.

Every figure counts the leads ``user`` sees, as ``routing.access`` defines them for every page: RevOps all, a
manager those of the reps they manage, a deputy those of the queues delegated to them. Only RevOps and people who
manage see the pages at all (``routing.access.may_see_reports``); the views answer 404 to anyone else. Each
selector takes ``user`` and applies the scope itself, and runs a fixed number of queries whatever the number of
rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from routing.access import deputy_queues, is_revops, lead_scope, report_queues, visible_leads
from routing.models import Assignment, Lead, Notification, Queue, QueueMembership
from routing.notify import undelivered
from routing.render import safe_text
from territories.access import managed_reps
from territories.models import Rep

PERIOD_CHOICES = (7, 30, 90)
DEFAULT_PERIOD_DAYS = 30
# A lead still in "received" after this long was missed by intake and the outbox sweep.
STUCK_AFTER = timedelta(minutes=5)
LATEST_ROWS = 20
# Lead statuses that mean "held in a queue for a rep" (a status of its own where routing gives one).
HELD_STATUSES = tuple(status for status in ("held",) if status in Lead.Status.values)


# -- Who may see what ---------------------------------------------------------------------------------------------


def leads_for_reports(*, user: Any) -> QuerySet[Lead]:
    return visible_leads(user=user)


# -- The period ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The last ``days`` days, today included, in the current time zone."""

    days: int
    first_day: date
    start: datetime
    end: datetime

    @property
    def day_list(self) -> list[date]:
        return [self.first_day + timedelta(days=offset) for offset in range(self.days)]

    @property
    def labels(self) -> list[str]:
        return [f"{day:%m-%d}" for day in self.day_list]


def period_for(
    days: Any = None, *, now: datetime | None = None, first: date | None = None, last: date | None = None
) -> Period:
    """The period for a ``days`` GET value; anything but 7, 30 or 90 means the default of 30. ``first`` and
    ``last`` (both, checked by the caller: at most a year, first before last) choose the days instead."""
    try:
        count = int(days)
    except (TypeError, ValueError):
        count = DEFAULT_PERIOD_DAYS
    if count not in PERIOD_CHOICES:
        count = DEFAULT_PERIOD_DAYS
    today = timezone.localdate(now or timezone.now())
    if first is not None and last is not None:
        today, count = last, (last - first).days + 1
    first_day = today - timedelta(days=count - 1)
    zone = timezone.get_current_timezone()
    start = datetime.combine(first_day, time.min, tzinfo=zone)
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=zone)
    return Period(days=count, first_day=first_day, start=start, end=end)


def _daily(queryset: QuerySet[Any], field_name: str, period: Period) -> list[int]:
    """Rows per day of ``field_name`` over the period, zeros included: one grouped query."""
    counts: dict[date, int] = dict(
        queryset.filter(**{f"{field_name}__gte": period.start, f"{field_name}__lt": period.end})
        .annotate(day=TruncDate(field_name))
        .order_by()
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    return [counts.get(day, 0) for day in period.day_list]


# -- Routing health -----------------------------------------------------------------------------------------------


@dataclass
class HealthRow:
    lead: Lead
    when: datetime
    detail: str
    # Where a POST resends the row's notification (the undelivered-notifications section only).
    resend_url: str = ""


@dataclass
class HealthSection:
    key: str
    title: str
    description: str
    total: int
    daily: list[int]
    rows: list[HealthRow]
    admin_url: str = ""
    # True when the figure should be zero in a healthy system.
    expect_zero: bool = False
    # Whether each row links to the lead in admin (RevOps only).
    link_rows: bool = False


def _changelist(params: dict[str, Any]) -> str:
    return f"{reverse('admin:routing_lead_changelist')}?{urlencode(params)}"


def routing_health(*, user: Any, period: Period, now: datetime | None = None) -> list[HealthSection]:
    """The exceptions RevOps audit and fold back into the matrix, counted per day over the period.

    1. Leads that ended in the catch-all queue, by day received, told apart by cause: no rule matched (a gap in
       the matrix) or a rule placed them and they overflowed because nobody was eligible (a staffing or
       working-hours gap); and the leads held in a queue for a rep right now.
    2. Manual reassignments and "not mine", by day of the assignment.
    3. Leads an enrichment provider failed on, and weak account matches, by day received.
    4. Leads stuck in "received" past ``STUCK_AFTER`` right now (the sweep should have routed them), whenever
       they arrived, and leads whose routing failed, by day received.
    5. Notifications not delivered right now (delivery unknown, or failed for good), by day created, each
       with a resend action.

    Two queries per section (daily counts, latest rows) plus one for the catch-all queue's id.
    """
    now = now or timezone.now()
    leads = leads_for_reports(user=user).select_related("queue", "owner__user", "account", "rule")
    in_period = Q(received_at__gte=period.start, received_at__lt=period.end)
    link = is_revops(user)
    dates = {"received_at__gte": period.start.isoformat(), "received_at__lt": period.end.isoformat()}

    def section(
        key: str,
        title: str,
        description: str,
        queryset: QuerySet[Lead],
        detail: Any,
        admin_params: dict[str, Any] | None,
        *,
        expect_zero: bool = False,
        total_queryset: QuerySet[Lead] | None = None,
        link_rows: bool = False,
    ) -> HealthSection:
        daily = _daily(queryset, "received_at", period)
        latest = list(queryset.filter(in_period).order_by("-received_at", "-pk")[:LATEST_ROWS])
        if total_queryset is not None:
            # "Right now" figures: every row counts, not only those received in the period.
            latest = list(total_queryset.order_by("-received_at", "-pk")[:LATEST_ROWS])
            total = total_queryset.count()
        else:
            total = sum(daily)
        return HealthSection(
            key=key,
            title=title,
            description=description,
            total=total,
            daily=daily,
            rows=[HealthRow(lead=lead, when=lead.received_at, detail=detail(lead)) for lead in latest],
            admin_url=_changelist(admin_params) if link and admin_params is not None else "",
            expect_zero=expect_zero,
            link_rows=link_rows or (link and admin_params is not None),
        )

    catch_all_id = Queue.objects.filter(is_catch_all=True).values_list("pk", flat=True).first()
    stuck = leads.filter(status=Lead.Status.RECEIVED, received_at__lt=now - STUCK_AFTER)
    # Why a lead reached the catch-all queue: no rule placed it (the matrix has a gap), or a rule did and
    # nobody in its queue's overflow chain was eligible (a staffing or working-hours gap). Routing errors
    # have their own section; held leads (waiting for a rep instead of overflowing) are counted apart.
    in_catch_all = leads.filter(queue__is_catch_all=True, routing_error="").exclude(status__in=HELD_STATUSES)
    held = leads.filter(Q(status__in=HELD_STATUSES) | (Q(status=Lead.Status.QUEUED) & ~Q(queue__is_catch_all=True)))
    caught = {"queue__id__exact": catch_all_id, "routing_error": "no", **dates} if catch_all_id else None
    sections = [
        section(
            "no-rule",
            "No rule matched",
            "No rule placed these leads, so they went to the catch-all queue: a gap in the routing matrix.",
            in_catch_all.filter(rule__isnull=True),
            lambda lead: _where_from(lead),
            {**caught, "rule__isnull": "True"} if caught else None,
        ),
        section(
            "overflowed",
            "Overflowed: nobody eligible",
            "A rule placed these leads, but nobody in its queue or the queues it overflows to was eligible, so "
            "they reached the catch-all queue: a staffing or working-hours gap.",
            in_catch_all.filter(rule__isnull=False),
            lambda lead: _overflow_path(lead),
            {**caught, "rule__isnull": "False"} if caught else None,
        ),
        section(
            "held",
            "Held for a rep",
            "Waiting in their queue right now until someone there is eligible (for example when working hours "
            "start), instead of overflowing.",
            held,
            lambda lead: _held_detail(lead),
            None,
            total_queryset=held,
            link_rows=link,
        ),
        _reassignments(user=user, period=period),
        section(
            "enrichment",
            "Enrichment failures",
            "A provider failed, so rules may have fired on incomplete data.",
            leads.exclude(enrichment_failures={}),
            lambda lead: "; ".join(f"{name}: {why}" for name, why in sorted(lead.enrichment_failures.items())),
            {"enrichment_failed": "yes", **dates},
        ),
        section(
            "weak-match",
            "Weak account matches",
            "A fuzzy match below the trusted confidence: review it, it was not used for ownership.",
            leads.filter(account_match_weak=True),
            lambda lead: (
                f"{lead.account or 'No account'}"
                # The confidence is stored in percent (0–100).
                + (f" ({lead.account_match_confidence:.0f}%)" if lead.account_match_confidence is not None else "")
            ),
            {"account_match_weak__exact": "1", **dates},
        ),
        section(
            "stuck",
            "Stuck in received",
            f"Still waiting for routing after {int(STUCK_AFTER.total_seconds() // 60)} minutes right now. "
            "Should be 0: the sweep routes them.",
            stuck,
            lambda lead: f"{lead.routing_attempts} routing attempt{'s' if lead.routing_attempts != 1 else ''}",
            {"status__exact": Lead.Status.RECEIVED},
            expect_zero=True,
            total_queryset=stuck,
        ),
        section(
            "routing-errors",
            "Routing errors",
            "Routing failed and the catch-all queue took the lead.",
            leads.exclude(routing_error=""),
            lambda lead: lead.routing_error,
            {"routing_error": "yes", **dates},
            expect_zero=True,
        ),
        _undelivered(user=user, period=period, link=link),
    ]
    return sections


def _where_from(lead: Lead) -> str:
    """What a lead no rule placed looks like to the matrix: where it comes from and how it came in."""
    facts = [lead.country or "no country", lead.source or "no source"]
    where = " · ".join(facts)
    return f"{where}; {f'owner {lead.owner}' if lead.owner else 'waiting in the queue'}"


def _overflow_path(lead: Lead) -> str:
    """The rule that placed the lead and the queues it overflowed through, from its receipt (read defensively:
    receipts of older leads may lack a key)."""
    receipt = lead.receipt if isinstance(lead.receipt, dict) else {}
    steps = [step for step in receipt.get("queue_path") or [] if isinstance(step, dict)]
    queues = [str(step.get("queue")) for step in steps if step.get("queue")]
    rule = f"Rule “{lead.rule.name}”" if lead.rule is not None else "A rule"
    return f"{rule}: {' → '.join(queues)}" if queues else f"{rule}; nobody eligible"


def _held_detail(lead: Lead) -> str:
    """Where the lead waits, and until when if its receipt says (a queue holding for working hours)."""
    receipt = lead.receipt if isinstance(lead.receipt, dict) else {}
    queue = lead.queue.name if lead.queue is not None else "its queue"
    held_for, held_until = receipt.get("held_for"), receipt.get("held_until")
    if held_for and held_until:
        try:
            starts = datetime.fromisoformat(str(held_until))
        except ValueError:
            return f"In {queue} until {held_for} starts work"
        return f"In {queue} until {held_for} starts work ({timezone.localtime(starts):%Y-%m-%d %H:%M %Z})"
    return f"In {queue}: nobody eligible yet"


def undelivered_notifications(*, user: Any) -> QuerySet[Notification]:
    """The notifications about leads ``user`` may see that no one will send again on their own: delivery
    unknown (a worker died while sending, on a channel that is not retried), or failed ``MAX_ATTEMPTS`` times.
    Scoped like every health figure: the notices about the leads ``user`` sees."""
    return Notification.objects.filter(undelivered(), lead__in=leads_for_reports(user=user).values("pk"))


def _undelivered(*, user: Any, period: Period, link: bool) -> HealthSection:
    undelivered = undelivered_notifications(user=user)
    latest = undelivered.select_related("lead", "rep__user").order_by("-created_at", "-pk")[:LATEST_ROWS]
    rows = []
    for notification in latest:
        if notification.status == Notification.Status.UNKNOWN:
            outcome = "delivery unknown: the worker sending it stopped"
        else:
            outcome = f"failed {notification.attempts} times: {safe_text(notification.error, 200)}"
        rows.append(
            HealthRow(
                lead=notification.lead,
                when=notification.created_at,
                detail=f"{notification.get_kind_display()} to {notification.rep}, {outcome}",
                resend_url=reverse("notification-resend", args=[notification.pk]),
            )
        )
    admin_url = reverse("admin:routing_notification_changelist") + "?" + urlencode({"undelivered": "yes"})
    return HealthSection(
        key="notifications",
        title="Notifications not delivered",
        description="The rep may not have been told: delivery is unknown (a worker stopped while sending it) or "
        "it failed every retry. Should be 0. Resend once the cause is fixed.",
        total=undelivered.count(),
        daily=_daily(undelivered, "created_at", period),
        rows=rows,
        admin_url=admin_url if link else "",
        expect_zero=True,
    )


def _reassignments(*, user: Any, period: Period) -> HealthSection:
    assignments = Assignment.objects.filter(
        lead_scope(user, "lead__"), reason__in=[Assignment.Reason.MANUAL, Assignment.Reason.NOT_MINE]
    )
    daily = _daily(assignments, "assigned_at", period)
    latest = (
        assignments.filter(assigned_at__gte=period.start, assigned_at__lt=period.end)
        .select_related("lead", "rep__user", "queue")
        .order_by("-assigned_at", "-pk")[:LATEST_ROWS]
    )
    rows = []
    for assignment in latest:
        to = assignment.rep or assignment.queue or "nobody"
        note = f": {assignment.note}" if assignment.note else ""
        rows.append(
            HealthRow(
                lead=assignment.lead,
                when=assignment.assigned_at,
                detail=f"{assignment.get_reason_display()}, to {to}{note}",
            )
        )
    return HealthSection(
        key="reassignments",
        title="Manual reassignments and “not mine”",
        description="Each one is a lead the rules sent to the wrong place.",
        total=sum(daily),
        daily=daily,
        rows=rows,
    )


# -- Workload and fairness ----------------------------------------------------------------------------------------


@dataclass
class WorkloadRow:
    rep: Rep
    active: bool
    weight: int
    open_leads: int
    new_leads: int


@dataclass
class Spread:
    minimum: int
    maximum: int

    @property
    def spread(self) -> int:
        return self.maximum - self.minimum


@dataclass
class WorkloadReport:
    queue: Queue
    rows: list[WorkloadRow]
    open_spread: Spread | None
    new_spread: Spread | None


def _spread(values: Iterable[int]) -> Spread | None:
    values = list(values)
    return Spread(minimum=min(values), maximum=max(values)) if values else None


def queue_workload(*, user: Any, queue_id: int | None, period: Period) -> WorkloadReport | None:
    """Open leads now and new leads in the period per member of one queue, with min, max and spread over the
    members taking leads. None when the user may not see the queue (or there is none). A manager gets the rows
    of the members they manage; RevOps and the queue's deputies every member. At most five queries."""
    queues = report_queues(user=user)
    queue = queues.filter(pk=queue_id).first() if queue_id else None
    if queue is None:
        # The catch-all is for auditing (routing health), not for judging fairness: a real queue by default.
        queue = queues.filter(is_catch_all=False).first() or queues.first()
    if queue is None:
        return None
    members = QueueMembership.objects.filter(queue=queue).select_related("rep__user").order_by("position", "rep_id")
    if not is_revops(user) and not deputy_queues(user=user).filter(pk=queue.pk).exists():
        # A manager of some of the queue's reps sees the leads of those reps only: other members' rows would
        # read as zeros, so they are left out rather than shown wrong.
        members = members.filter(rep__in=managed_reps(user=user).values("pk"))
    memberships = list(members)
    rep_ids = [membership.rep_id for membership in memberships]
    scope = lead_scope(user)
    open_counts = dict(
        Lead.objects.filter(scope, queue=queue, owner__in=rep_ids, status__in=Lead.OPEN_STATUSES)
        .order_by()
        .values("owner")
        .annotate(n=Count("pk"))
        .values_list("owner", "n")
    )
    new_counts = dict(
        Assignment.objects.filter(
            lead_scope(user, "lead__"),
            queue=queue,
            rep__in=rep_ids,
            assigned_at__gte=period.start,
            assigned_at__lt=period.end,
        )
        .order_by()
        .values("rep")
        .annotate(n=Count("pk"))
        .values_list("rep", "n")
    )
    rows = [
        WorkloadRow(
            rep=membership.rep,
            active=membership.active and membership.rep.active,
            weight=membership.weight,
            open_leads=open_counts.get(membership.rep_id, 0),
            new_leads=new_counts.get(membership.rep_id, 0),
        )
        for membership in memberships
    ]
    # Fairness is judged among the reps taking leads; an inactive member's zero is not unfair.
    taking = [row for row in rows if row.active]
    return WorkloadReport(
        queue=queue,
        rows=rows,
        open_spread=_spread(row.open_leads for row in taking),
        new_spread=_spread(row.new_leads for row in taking),
    )


# -- Conversion by rule -------------------------------------------------------------------------------------------


@dataclass
class ConversionRow:
    rule: str
    routed: int
    accepted: int
    touched: int
    reached: int
    rule_id: int | None = None
    won: int = 0

    @property
    def percent_reached(self) -> float | None:
        return round(100 * self.reached / self.routed, 1) if self.routed else None


def conversion_by_rule(*, user: Any, period: Period) -> list[ConversionRow]:
    """Per winning rule, the leads routed in the period, how many reached a rep's hands (accepted or working
    now, touched, or converted) and how many were won (converted). One grouped query."""
    accepted = Q(status__in=[Lead.Status.ACCEPTED, Lead.Status.WORKING])
    won = Q(status=Lead.Status.CONVERTED)
    touched = Q(sla__touched_at__isnull=False)
    grouped = (
        leads_for_reports(user=user)
        .filter(rule__isnull=False, routed_at__gte=period.start, routed_at__lt=period.end)
        .order_by()
        .values("rule_id", "rule__name")
        .annotate(
            routed=Count("pk"),
            accepted=Count("pk", filter=accepted),
            touched=Count("pk", filter=touched),
            reached=Count("pk", filter=accepted | touched | won),
            won=Count("pk", filter=won),
        )
        .order_by("rule__name")
    )
    return [
        ConversionRow(
            rule=row["rule__name"],
            routed=row["routed"],
            accepted=row["accepted"],
            touched=row["touched"],
            reached=row["reached"],
            rule_id=row["rule_id"],
            won=row["won"],
        )
        for row in grouped
    ]
