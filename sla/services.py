"""Writes for SLAs: starting a lead's first-touch clock, and logging touches that stop it.

Also the small pure-ish reads every caller of these needs (which policy and which
calendar apply to a lead, and the live state of a clock for display).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from routing.conditions import ConditionError, parse_condition
from routing.engine.conditions import evaluate
from routing.engine.facts import LeadFacts
from routing.models import ApiKey, Assignment, Lead, Queue, RepTask
from routing.pipeline import LEAD_FACT_FIELDS
from routing.selectors import account_facts_of
from sla import ladder
from sla.calendar import CalendarSpec, business_time_between
from sla.models import BusinessCalendar, EscalationStep, LeadSla, SlaPolicy, Touch
from territories.models import Account, Rep, Territory

logger = logging.getLogger(__name__)

# A clock without a calendar runs around the clock in UTC (no windows means always open).
ALWAYS_OPEN = CalendarSpec(time_zone="UTC", windows=())
# A clock is at risk when less than this share of its target is left.
AT_RISK_SHARE = 0.2


# --- Which policy and which calendar ------------------------------------------------------------------


def lead_facts_from_row(lead: Lead, *, account: Account | None = None) -> LeadFacts:
    """The facts a policy condition reads, from the stored lead row and its account.

    ``account`` saves the query for ``lead.account`` when the caller loaded accounts in bulk.
    """
    if account is None and lead.account_id is not None:
        account = lead.account
    return LeadFacts(
        **{name: getattr(lead, name) for name in LEAD_FACT_FIELDS},
        score=lead.score or 0,
        account=None if account is None else account_facts_of(account, weak_match=lead.account_match_weak),
    )


def territory_parents() -> dict[int, int | None]:
    """Every territory's parent, for subtree checks in Python (one query)."""
    return dict(Territory.objects.values_list("id", "parent_id"))


def _in_subtree(territory_id: int | None, root_id: int, parents: Mapping[int, int | None]) -> bool:
    """Whether ``territory_id`` is ``root_id`` or one of its descendants (a cycle ends the walk)."""
    seen: set[int] = set()
    node = territory_id
    while node is not None and node not in seen:
        if node == root_id:
            return True
        seen.add(node)
        node = parents.get(node)
    return False


def sla_policy_for(
    *,
    lead: Lead,
    policies: Sequence[SlaPolicy],
    parents: Mapping[int, int | None] | None = None,
    facts: LeadFacts | None = None,
) -> SlaPolicy | None:
    """The policy that applies to ``lead``: the first active one by position (then id) whose condition
    holds and whose territory (the lead's territory or an ancestor of it) and queue match; else the
    active default policy; else None.

    ``parents`` (territory id → parent id) and ``facts`` save queries when the caller has them; a policy
    with a broken stored condition is skipped and logged, never applied to every lead.
    """
    candidates = sorted(
        (policy for policy in policies if policy.active and not policy.is_default), key=lambda p: (p.position, p.pk)
    )
    for policy in candidates:
        if policy.queue_id is not None and policy.queue_id != lead.queue_id:
            continue
        if policy.territory_id is not None:
            if parents is None:
                parents = territory_parents()
            if not _in_subtree(lead.territory_id, policy.territory_id, parents):
                continue
        try:
            condition = parse_condition(policy.condition)
        except ConditionError:
            logger.error("SLA policy %s has an invalid condition and is left out.", policy.name)
            continue
        if condition is not None:
            facts = facts or lead_facts_from_row(lead)
            held, _why = evaluate(condition, facts)
            if not held:
                continue
        return policy
    return next((policy for policy in policies if policy.active and policy.is_default), None)


@dataclass(frozen=True)
class _CalendarIndex:
    by_rep: dict[int, BusinessCalendar]
    by_team: dict[int, BusinessCalendar]
    by_queue: dict[int, BusinessCalendar]
    default: BusinessCalendar | None

    @classmethod
    def of(cls, calendars: Iterable[BusinessCalendar]) -> _CalendarIndex:
        calendars = list(calendars)
        return cls(
            by_rep={c.rep_id: c for c in calendars if c.rep_id is not None},
            by_team={c.team_id: c for c in calendars if c.team_id is not None},
            by_queue={c.queue_id: c for c in calendars if c.queue_id is not None},
            default=next((c for c in calendars if c.is_default), None),
        )

    def pick(self, *, rep_id: int | None, team_id: int | None, queue_id: int | None) -> BusinessCalendar | None:
        return (
            (self.by_rep.get(rep_id) if rep_id is not None else None)
            or (self.by_team.get(team_id) if team_id is not None else None)
            or (self.by_queue.get(queue_id) if queue_id is not None else None)
            or self.default
        )


def sla_calendar_for(
    *, rep: Rep | None, queue: Queue | None, calendars: Iterable[BusinessCalendar]
) -> BusinessCalendar | None:
    """The rep's calendar, else the rep's team's, else the queue's, else the default; None means 24/7 UTC."""
    return _CalendarIndex.of(calendars).pick(
        rep_id=rep.pk if rep is not None else None,
        team_id=rep.team_id if rep is not None else None,
        queue_id=queue.pk if queue is not None else None,
    )


def calendar_spec(calendar: BusinessCalendar | None) -> CalendarSpec:
    """The calendar's pure spec (its hours and closed dates should be prefetched); 24/7 UTC for None."""
    return ALWAYS_OPEN if calendar is None else calendar.spec()


def _step_infos(policy: SlaPolicy) -> list[ladder.StepInfo]:
    return [
        ladder.StepInfo(
            id=step.pk,
            position=step.position,
            when=step.when,
            percent=step.percent,
            minutes_after_due=step.minutes_after_due,
        )
        for step in policy.steps.all()
    ]


# --- Starting clocks ----------------------------------------------------------------------------------


def sla_clocks_start(*, leads: list[Lead], now: datetime) -> list[LeadSla]:
    """Start (or, on reassignment, restart) the first-touch clock of each lead just given to a rep.

    Called inside the routing transaction. A bounded number of queries whatever the number of leads:
    policies with their steps, calendars with hours and closed dates, territories, accounts and owners
    are each read once, then the clocks are written with one bulk insert and one bulk update.

    1. The policy: for a lead that already has a clock (a reassignment), the clock's own policy; else
       ``sla_policy_for``. No policy, or a "no SLA" one, gives a clock in state ``none`` with no due time.
    2. The calendar: ``sla_calendar_for`` the new owner and the lead's queue.
    3. The due time: the policy's target in business minutes after ``now``; the ladder's first step and
       when it fires; state ``on_track``.
    4. A lead already touched never gets a new clock: its clock is returned unchanged. A reassigned,
       untouched lead keeps ``reassignments`` and ``previous_owner_ids`` (the caller maintains them).

    Side effects: inserts and updates LeadSla rows. Returns the clocks in the order of ``leads``.
    """
    if not leads:
        return []
    policies = list(
        SlaPolicy.objects.prefetch_related(
            Prefetch("steps", queryset=EscalationStep.objects.order_by("position"))
        ).order_by("position", "id")
    )
    policy_by_id = {policy.pk: policy for policy in policies}
    active = [policy for policy in policies if policy.active]
    calendars = list(BusinessCalendar.objects.prefetch_related("hours", "closed_dates"))
    calendar_index = _CalendarIndex.of(calendars)
    specs: dict[int, CalendarSpec] = {}
    existing = {clock.lead_id: clock for clock in LeadSla.objects.filter(lead__in=[lead.pk for lead in leads])}
    needs_policy = [lead for lead in leads if lead.pk not in existing]
    parents = territory_parents() if needs_policy and any(policy.territory_id is not None for policy in active) else {}
    has_conditions = any(policy.condition for policy in active)
    accounts = (
        Account.objects.in_bulk({lead.account_id for lead in needs_policy if lead.account_id is not None})
        if has_conditions
        else {}
    )
    teams = dict(
        Rep.objects.filter(pk__in={lead.owner_id for lead in leads if lead.owner_id is not None}).values_list(
            "id", "team_id"
        )
    )

    to_create: list[LeadSla] = []
    to_update: list[LeadSla] = []
    clocks: list[LeadSla] = []
    for lead in leads:
        clock = existing.get(lead.pk)
        if clock is not None and clock.touched_at is not None:
            clocks.append(clock)
            continue
        if clock is None:
            policy = sla_policy_for(
                lead=lead,
                policies=active,
                parents=parents,
                facts=lead_facts_from_row(lead, account=accounts.get(lead.account_id) if lead.account_id else None)
                if has_conditions
                else None,
            )
            clock = LeadSla(lead=lead, started_at=now)
            to_create.append(clock)
        else:
            policy = policy_by_id.get(clock.policy_id) if clock.policy_id is not None else None
            to_update.append(clock)
        calendar = calendar_index.pick(
            rep_id=lead.owner_id, team_id=teams.get(lead.owner_id) if lead.owner_id else None, queue_id=lead.queue_id
        )
        if calendar is not None and calendar.pk not in specs:
            specs[calendar.pk] = calendar.spec()
        spec = specs[calendar.pk] if calendar is not None else ALWAYS_OPEN
        _restart(clock, policy=policy, calendar=calendar, spec=spec, now=now)
        clocks.append(clock)

    LeadSla.objects.bulk_create(to_create)
    LeadSla.objects.bulk_update(
        to_update,
        [
            "policy",
            "calendar",
            "state",
            "started_at",
            "due_at",
            "touched_at",
            "next_step",
            "next_step_at",
            "breach_business_seconds",
            "speed_wall_seconds",
            "speed_business_seconds",
        ],
    )
    return clocks


def _restart(
    clock: LeadSla, *, policy: SlaPolicy | None, calendar: BusinessCalendar | None, spec: CalendarSpec, now: datetime
) -> None:
    """Set ``clock`` (untouched) running from ``now`` under ``policy`` and ``calendar``."""
    clock.policy = policy
    clock.calendar = calendar
    clock.started_at = now
    clock.touched_at = None
    clock.breach_business_seconds = None
    clock.speed_wall_seconds = None
    clock.speed_business_seconds = None
    clock.next_step = None
    clock.next_step_at = None
    if policy is None or policy.no_sla or not policy.first_touch_minutes:
        clock.state = LeadSla.State.NONE
        clock.due_at = None
        return
    target = policy.first_touch_minutes
    clock.state = LeadSla.State.ON_TRACK
    clock.due_at = ladder.due_at(spec=spec, started_at=now, target_minutes=target)
    first = ladder.next_step(
        _step_infos(policy), after_position=None, spec=spec, started_at=now, due=clock.due_at, target_minutes=target
    )
    if first is not None:
        step_info, fires_at = first
        clock.next_step = next(step for step in policy.steps.all() if step.pk == step_info.id)
        clock.next_step_at = fires_at


# --- Touches ------------------------------------------------------------------------------------------


class TouchTimeError(ValueError):
    """A touch's time that would rewrite history: before the current assignment, or in the future."""


def touch_log(
    *,
    lead: Lead,
    kind: str,
    at: datetime | None,
    by: User | None = None,
    intake_source: ApiKey | None = None,
    note: str = "",
    now: datetime | None = None,
) -> Touch:
    """Record a touch of ``lead``; the first one stops its SLA clock.

    ``at`` (default ``now``, the moment of recording) may not lie before the start of the lead's
    current assignment, nor later than ``now`` plus ``LEADROUTER_TOUCH_FUTURE_ALLOWANCE_SECONDS``;
    otherwise ``TouchTimeError`` is raised and nothing is written. A touch recorded more than
    ``LEADROUTER_TOUCH_LATE_AFTER_SECONDS`` after ``at`` is stored with ``logged_late`` set.

    The first touch sets the clock's ``touched_at``, its state (``met`` when at or before the due time,
    ``missed`` after it, with the breach in business seconds), speed-to-lead (routed → touch, in wall
    and business seconds of the clock's calendar), and clears the ladder's next step so no escalation
    fires. Every touch marks the owner's open task for the lead done and moves an ``assigned`` lead to
    ``working``. A repeated identical touch (same lead, kind, time and source) returns the stored one.

    Atomic; the clock row is locked so a touch racing the escalation sweep sees one consistent clock.
    Side effects: inserts a Touch; updates LeadSla, RepTask and Lead.
    """
    now = now or timezone.now()
    at = at or now
    with transaction.atomic():
        clock = LeadSla.objects.select_for_update().filter(lead_id=lead.pk).first()
        _check_touch_time(lead=lead, clock=clock, at=at, now=now)
        repeated = Touch.objects.filter(
            lead_id=lead.pk,
            kind=kind,
            at=at,
            by_id=by.pk if by is not None else None,
            intake_source=intake_source,
        ).first()
        if repeated is not None:
            return repeated
        late = now - at > timedelta(seconds=settings.LEADROUTER_TOUCH_LATE_AFTER_SECONDS)
        touch = Touch.objects.create(
            lead=lead, kind=kind, at=at, by=by, intake_source=intake_source, note=note, logged_late=late
        )
        if clock is not None and clock.touched_at is None:
            _stop(clock, lead=lead, at=at)
        if lead.owner_id is not None:
            RepTask.objects.filter(lead_id=lead.pk, rep_id=lead.owner_id, done_at__isnull=True).update(done_at=at)
        if Lead.objects.filter(pk=lead.pk, status=Lead.Status.ASSIGNED).update(status=Lead.Status.WORKING):
            lead.status = Lead.Status.WORKING
    return touch


def _check_touch_time(*, lead: Lead, clock: LeadSla | None, at: datetime, now: datetime) -> None:
    """Refuse a touch time that would rewrite the lead's history (see ``touch_log``).

    The earliest allowed time is the start of the current (newest) assignment; a lead without one falls
    back to its routing time, then its clock's start, then its arrival. A touch before that would stop
    the clock at a moment the current owner did not yet hold the lead, turning a breach into "met" with
    no speed at all.
    """
    allowance = timedelta(seconds=settings.LEADROUTER_TOUCH_FUTURE_ALLOWANCE_SECONDS)
    if at > now + allowance:
        minutes = settings.LEADROUTER_TOUCH_FUTURE_ALLOWANCE_SECONDS / 60
        raise TouchTimeError(f"A touch cannot be more than {minutes:g} minutes in the future.")
    current = (
        Assignment.objects.filter(lead_id=lead.pk)
        .order_by("-assigned_at", "-pk")
        .values_list("assigned_at", flat=True)
        .first()
    )
    if current is not None:
        earliest, since = current, "the lead's current assignment started"
    elif lead.routed_at is not None:
        earliest, since = lead.routed_at, "the lead was routed"
    elif clock is not None:
        earliest, since = clock.started_at, "the lead was routed"
    else:
        earliest, since = lead.received_at, "the lead arrived"
    if earliest is not None and at < earliest:
        raise TouchTimeError(f"A touch cannot be before {since} ({earliest.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC).")


def _stop(clock: LeadSla, *, lead: Lead, at: datetime) -> None:
    """Stop ``clock`` at the first touch ``at``: state, breach, speed-to-lead; the ladder ends."""
    calendar = (
        BusinessCalendar.objects.prefetch_related("hours", "closed_dates").filter(pk=clock.calendar_id).first()
        if clock.calendar_id is not None
        else None
    )
    spec = calendar_spec(calendar)
    clock.touched_at = at
    clock.next_step = None
    clock.next_step_at = None
    if clock.due_at is not None:
        if at <= clock.due_at:
            clock.state = LeadSla.State.MET
        else:
            clock.state = LeadSla.State.MISSED
            clock.breach_business_seconds = _seconds(business_time_between(spec, clock.due_at, at))
    routed_at = lead.routed_at or clock.started_at
    clock.speed_wall_seconds = _seconds(at - routed_at)
    clock.speed_business_seconds = _seconds(business_time_between(spec, routed_at, at))
    clock.save(
        update_fields=[
            "touched_at",
            "state",
            "breach_business_seconds",
            "speed_wall_seconds",
            "speed_business_seconds",
            "next_step",
            "next_step_at",
        ]
    )


def _seconds(delta: timedelta) -> int:
    """Whole seconds, never negative (a touch logged before the clock started counts as instant)."""
    return max(0, int(delta.total_seconds()))


# --- Live state for display ---------------------------------------------------------------------------


def sla_state(*, lead_sla: LeadSla, now: datetime) -> str:
    """The clock's state at ``now``: ``met``, ``missed`` and ``none`` as stored; otherwise ``breached``
    once the due time has passed, ``at_risk`` when less than 20% of the target is left in business time
    or the first percent step's share of the target has elapsed, else ``on_track``.

    Reads the clock's policy with its steps and its calendar with hours and closed dates: prefetch them
    when showing many clocks.
    """
    if lead_sla.state in (LeadSla.State.MET, LeadSla.State.MISSED, LeadSla.State.NONE) or lead_sla.due_at is None:
        return lead_sla.state
    if lead_sla.touched_at is not None:
        return LeadSla.State.MET if lead_sla.touched_at <= lead_sla.due_at else LeadSla.State.MISSED
    if now >= lead_sla.due_at:
        return LeadSla.State.BREACHED
    spec = calendar_spec(lead_sla.calendar)
    target = _target(lead_sla, spec)
    left = business_time_between(spec, now, lead_sla.due_at)
    if left < target * AT_RISK_SHARE:
        return LeadSla.State.AT_RISK
    policy = lead_sla.policy
    percents = [
        step.percent
        for step in (policy.steps.all() if policy is not None else [])
        if step.when == EscalationStep.When.PERCENT_OF_TARGET and step.percent
    ]
    if percents:
        first_percent = percents[0]  # Steps are ordered by position.
        if business_time_between(spec, lead_sla.started_at, now) >= target * first_percent / 100:
            return LeadSla.State.AT_RISK
    return LeadSla.State.ON_TRACK


def sla_remaining(*, lead_sla: LeadSla, now: datetime) -> timedelta:
    """Business time left until the due time at ``now`` (or at the touch, once touched); negative once
    breached; zero for a clock without a due time."""
    if lead_sla.due_at is None:
        return timedelta(0)
    spec = calendar_spec(lead_sla.calendar)
    return business_time_between(spec, lead_sla.touched_at or now, lead_sla.due_at)


def _target(lead_sla: LeadSla, spec: CalendarSpec) -> timedelta:
    """The clock's target: the policy's minutes, else (policy gone) the business time from start to due."""
    policy = lead_sla.policy
    if policy is not None and policy.first_touch_minutes:
        return timedelta(minutes=policy.first_touch_minutes)
    assert lead_sla.due_at is not None
    return business_time_between(spec, lead_sla.started_at, lead_sla.due_at)
