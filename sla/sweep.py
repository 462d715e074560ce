"""The escalation sweep: fire the SLA ladder steps that are due, in short batches.

Each lead's clock (``LeadSla``) stores the next step of its policy's ladder and
when it fires, so the sweep is an indexed comparison (``leadsla_due_step_idx``:
``next_step_at`` of untouched leads with a step left). One batch, one transaction:

1. Claim up to ``batch_size`` due clocks, oldest first, with ``SELECT … FOR
   UPDATE SKIP LOCKED``: a second sweep running at the same time takes other
   rows and never waits. PostgreSQL re-checks ``touched_at IS NULL`` on the
   newest row version when it locks it, so a lead touched meanwhile is not
   claimed; the loaded rows are checked again (touched, a logged touch, the lead
   no longer with a rep), and such a ladder simply stops.
2. When a claimed step changes ownership (reassign, move to a queue), take the
   routing lock before reading the leads, like every writer of ownership. The
   batch then holds its clocks while it waits for that lock; a writer holding
   the routing lock that updated one of those very clocks would close a cycle,
   which PostgreSQL's deadlock detector breaks by aborting one transaction (a
   sweep batch rolls back whole and the next run takes it again).
3. Per clock, in due order: a step that already fired for the lead (the ladder
   restarted after a reassignment) is passed over; a reminder or alert whose
   recipient is outside business hours waits for the next opening (unless the
   policy notifies at any hour); otherwise the step fires: an ``Escalation``
   row and the action. The clock then moves to the following step (never
   earlier than now), or its ladder ends.
4. Write escalations (``ignore_conflicts``: the unique (lead, step) keeps a
   step to one row even if two sweeps ever got there), clocks, leads,
   assignments, pointers, notifications and rep tasks; restart the clocks of
   reassigned leads with ``sla_clocks_start``; commit. Mail goes out after the
   commit, outside the locks.

The sweep repeats batches until nothing is due or its time budget is spent;
the next run goes on where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from routing.bulk import rows_update
from routing.dispatch import coverage
from routing.engine import Decision, Snapshot, apply_decision
from routing.engine.distribution import distribute
from routing.models import Assignment, Lead, Queue
from routing.notify import _format_due, _lead_label, lead_admin_link
from routing.ownership import Handover, owners_change, routing_lock
from routing.selectors import snapshot_with_current_load
from sla.calendar import CalendarSpec, next_open
from sla.ladder import StepInfo, next_step
from sla.models import BusinessCalendar, Escalation, EscalationStep, LeadSla, SlaPolicy, Touch
from territories.models import Rep

logger = logging.getLogger(__name__)

Action = EscalationStep.Action
# A calendar that never closes: clocks without a calendar, recipients without one.
ALWAYS_OPEN = CalendarSpec(time_zone="UTC", windows=())
OWNERSHIP_ACTIONS = frozenset({Action.REASSIGN, Action.MOVE_TO_QUEUE})
NOTICE_ACTIONS = frozenset({Action.REMIND_REP, Action.ALERT_MANAGER})
# The clock columns a batch writes.
CLOCK_FIELDS = ["next_step", "next_step_at", "reassignments", "previous_owner_ids"]
# The clock and lead columns a batch reads; everything else stays deferred.
CLOCK_COLUMNS = ("id", "lead_id", "policy_id", "calendar_id", "started_at", "due_at", "touched_at", *CLOCK_FIELDS)
LEAD_COLUMNS = ("id", "owner_id", "queue_id", "status", "first_name", "last_name", "email", "company", "updated_at")


@dataclass
class SweepReport:
    """What one sweep did.

    ``fired`` counts steps fired per action; ``waiting`` notices postponed to the
    recipient's business hours; ``stopped`` ladders ended because the lead was
    touched or is no longer with a rep; ``passed_over`` steps that had already
    fired for the lead (after a reassignment restarted its ladder).
    """

    fired: dict[str, int] = field(default_factory=dict)
    waiting: int = 0
    stopped: int = 0
    passed_over: int = 0
    claimed: int = 0
    mail_seconds: float = 0.0
    batch_seconds: list[float] = field(default_factory=list)

    @property
    def total_fired(self) -> int:
        return sum(self.fired.values())

    def count(self, action: str) -> None:
        self.fired[action] = self.fired.get(action, 0) + 1

    def add(self, other: SweepReport) -> None:
        for action, count in other.fired.items():
            self.fired[action] = self.fired.get(action, 0) + count
        self.waiting += other.waiting
        self.stopped += other.stopped
        self.passed_over += other.passed_over
        self.claimed += other.claimed
        self.mail_seconds += other.mail_seconds
        self.batch_seconds.extend(other.batch_seconds)


def escalations_sweep(*, now: datetime | None = None, batch_size: int = 500, budget_seconds: float = 20) -> SweepReport:
    """Fire the ladder steps due at ``now`` (default: the current time), ``batch_size`` clocks per transaction,
    until nothing is due or ``budget_seconds`` are spent. Safe to run twice or at once.

    Side effects: writes escalations, clocks, and for reassignments and moves the lead, its assignments,
    queue pointers, notifications and rep tasks; sends reminder and alert mail after each batch commits;
    enqueues ``notify_assignments`` for new owners after commit.
    """
    started = time.monotonic()
    report = SweepReport()
    while True:
        clock = time.perf_counter()
        batch = _sweep_batch(now=now or timezone.now(), limit=batch_size)
        if batch.claimed:
            batch.batch_seconds.append(time.perf_counter() - clock)
        report.add(batch)
        # A fired step can make the following one due at once, so go on until a claim comes back empty.
        if not batch.claimed or time.monotonic() - started >= budget_seconds:
            return report


def claim_queryset(*, now: datetime, limit: int) -> Any:
    """The claim: due, untouched clocks, oldest first, skipping rows another sweep holds (a scan of the partial
    index ``leadsla_due_step_idx``), with the columns the sweep reads."""
    return (
        LeadSla.objects.filter(touched_at__isnull=True, next_step_at__isnull=False, next_step_at__lte=now)
        .order_by("next_step_at")
        .select_for_update(skip_locked=True)
        .only(*CLOCK_COLUMNS)[:limit]
    )


# --- One batch -----------------------------------------------------------------------------------------------


@dataclass
class _Fired:
    """An ``Escalation`` row to insert: plain values, written in one statement per batch."""

    lead_id: int
    step_id: int
    action: str
    rep_id: int
    reason: str
    fired_at: datetime
    to_rep_id: int | None = None
    to_queue_id: int | None = None
    notified_id: int | None = None


ESCALATION_COLUMNS = [
    "lead_id",
    "step_id",
    "action",
    "rep_id",
    "reason",
    "fired_at",
    "to_rep_id",
    "to_queue_id",
    "notified_id",
    "status",
    "comment",
]


@dataclass
class _Batch:
    """What a batch reads once and writes at the end."""

    now: datetime
    report: SweepReport
    steps_by_policy: dict[int, list[EscalationStep]]
    fired: set[tuple[int, int]]
    specs: dict[int, CalendarSpec] = field(default_factory=dict)
    notice_calendars: _NoticeCalendars | None = None
    snapshot: Snapshot | None = None
    start_pointers: dict[int, int] = field(default_factory=dict)
    escalations: list[_Fired] = field(default_factory=list)
    mails: list[Callable[[], EmailMessage]] = field(default_factory=list)
    changed_leads: list[Lead] = field(default_factory=list)
    handovers: list[Handover] = field(default_factory=list)
    reassigned: list[Lead] = field(default_factory=list)
    owners: list[Rep] = field(default_factory=list)
    managers: dict[int, list[Any]] = field(default_factory=dict)
    notice_opens: dict[CalendarSpec, datetime] = field(default_factory=dict)


def _sweep_batch(*, now: datetime, limit: int) -> SweepReport:
    report = SweepReport()
    with transaction.atomic():
        slas = list(claim_queryset(now=now, limit=limit))
        if not slas:
            return report
        report.claimed = len(slas)
        # The ladders, policies and calendars are few: read each once and attach them to the clocks.
        policies = SlaPolicy.objects.in_bulk({sla.policy_id for sla in slas if sla.policy_id is not None})
        steps = {step.pk: step for step in EscalationStep.objects.filter(policy__in=policies).select_related("queue")}
        steps_by_policy: dict[int, list[EscalationStep]] = {policy_id: [] for policy_id in policies}
        for step in steps.values():
            steps_by_policy[step.policy_id].append(step)
        calendars = BusinessCalendar.objects.prefetch_related("hours", "closed_dates").in_bulk(
            {sla.calendar_id for sla in slas if sla.calendar_id is not None}
        )
        if any(steps[sla.next_step_id].action in OWNERSHIP_ACTIONS for sla in slas if sla.next_step_id in steps):
            # Ownership changes: read the leads only under the lock every owner-writer takes.
            routing_lock()
        leads = Lead.objects.only(*LEAD_COLUMNS).in_bulk([sla.lead_id for sla in slas])
        owners = Rep.objects.select_related("user", "team").in_bulk(
            {lead.owner_id for lead in leads.values() if lead.owner_id is not None}
        )
        queues = Queue.objects.in_bulk({lead.queue_id for lead in leads.values() if lead.queue_id is not None})
        touched = set(Touch.objects.filter(lead_id__in=list(leads)).values_list("lead_id", flat=True).distinct())
        fired = set(
            Escalation.objects.filter(lead_id__in=list(leads), step__isnull=False).values_list("lead_id", "step_id")
        )
        batch = _Batch(now=now, report=report, steps_by_policy=steps_by_policy, fired=fired)
        batch.owners = list(owners.values())
        for sla in slas:
            lead = sla.lead = leads[sla.lead_id]
            lead.owner = owners.get(lead.owner_id) if lead.owner_id is not None else None
            lead.queue = queues.get(lead.queue_id) if lead.queue_id is not None else None
            sla.policy = policies.get(sla.policy_id) if sla.policy_id is not None else None
            sla.calendar = calendars.get(sla.calendar_id) if sla.calendar_id is not None else None
            sla.next_step = steps.get(sla.next_step_id) if sla.next_step_id is not None else None
            if sla.touched_at is not None or sla.lead_id in touched or not _with_a_rep(lead):
                _ladder_end(sla)
                report.stopped += 1
                continue
            _advance(batch, sla)
        _write(batch, slas)
    _send_after_commit(batch.mails, report)
    return report


def _with_a_rep(lead: Lead) -> bool:
    return lead.owner_id is not None and lead.status in Lead.OPEN_STATUSES


def _ladder_end(sla: LeadSla) -> None:
    sla.next_step = None
    sla.next_step_at = None


def _advance(batch: _Batch, sla: LeadSla) -> None:
    """Fire the clock's step (or pass it over, or let it wait), then set the following one."""
    step = sla.next_step
    policy = sla.policy
    if step is None or policy is None or step.policy_id != policy.pk:
        _ladder_end(sla)  # The step or the policy was deleted or changed: nothing left to fire.
        batch.report.stopped += 1
        return
    if (sla.lead_id, step.pk) in batch.fired:
        batch.report.passed_over += 1
    else:
        if step.action in NOTICE_ACTIONS and not policy.notify_outside_business_hours:
            spec = _notice_spec(batch, sla, step)
            if spec not in batch.notice_opens:
                batch.notice_opens[spec] = next_open(spec, batch.now)
            opens = batch.notice_opens[spec]
            if opens > batch.now:
                sla.next_step_at = opens  # The same step, at the recipient's next opening.
                batch.report.waiting += 1
                return
        _fire(batch, sla, step, policy)
        batch.fired.add((sla.lead_id, step.pk))
        batch.report.count(step.action)
        if step.action == Action.MOVE_TO_QUEUE:
            _ladder_end(sla)  # Nobody holds the lead any more; the ladder has no one to chase.
            return
    _set_following_step(batch, sla, step, policy)


def _set_following_step(batch: _Batch, sla: LeadSla, step: EscalationStep | None, policy: SlaPolicy) -> None:
    """Point the clock at the first step after ``step`` (after none: the first) that has not fired for the
    lead yet, never earlier than now; or end its ladder."""
    steps = batch.steps_by_policy.get(policy.pk, [])
    if sla.due_at is None or not policy.first_touch_minutes:
        _ladder_end(sla)
        return
    infos = [_step_info(candidate) for candidate in steps]
    position = step.position if step is not None else None
    while True:
        following = next_step(
            infos,
            after_position=position,
            spec=_clock_spec(batch, sla.calendar),
            started_at=sla.started_at,
            due=sla.due_at,
            target_minutes=policy.first_touch_minutes,
            not_before=batch.now,
        )
        if following is None:
            _ladder_end(sla)
            return
        info, fires_at = following
        if (sla.lead_id, info.id) not in batch.fired:
            sla.next_step = next(candidate for candidate in steps if candidate.pk == info.id)
            sla.next_step_at = fires_at
            return
        position = info.position


def _step_info(step: EscalationStep) -> StepInfo:
    return StepInfo(
        id=step.pk,
        position=step.position,
        when=step.when,
        percent=step.percent,
        minutes_after_due=step.minutes_after_due,
    )


# --- Firing a step -----------------------------------------------------------------------------------------


def _fire(batch: _Batch, sla: LeadSla, step: EscalationStep, policy: SlaPolicy) -> None:
    lead = sla.lead
    owner = lead.owner
    assert owner is not None
    escalation = _Fired(
        lead_id=lead.pk,
        step_id=step.pk,
        action=step.action,
        rep_id=owner.pk,
        reason=step_reason(step, policy),
        fired_at=batch.now,
    )
    if step.action == Action.REMIND_REP:
        escalation.notified_id = owner.user_id
        batch.mails.append(_reminder_mail(lead, owner, sla))
    elif step.action == Action.ALERT_MANAGER:
        if owner.pk not in batch.managers:
            batch.managers[owner.pk] = _managers(owner)
        managers = batch.managers[owner.pk]
        escalation.notified_id = managers[0].pk if managers else None
        if managers:
            batch.mails.append(_alert_mail(lead, owner, sla, escalation.reason, managers))
        else:
            escalation.reason += "; nobody to alert: the rep has no manager and the team none"
    elif step.action == Action.REASSIGN:
        _reassign(batch, sla, policy, escalation)
    elif step.action == Action.MOVE_TO_QUEUE:
        _move_to_queue(batch, sla, step, escalation)
    batch.escalations.append(escalation)


def step_reason(step: EscalationStep, policy: SlaPolicy) -> str:
    """Why the step fired, in words: "No first touch 4 business minutes after assignment (80% of the 5-minute
    target)"."""
    target = policy.first_touch_minutes or 0
    if step.when == EscalationStep.When.PERCENT_OF_TARGET:
        elapsed = target * (step.percent or 0) / 100
        return (
            f"No first touch {_minutes(elapsed)} business minute{'' if elapsed == 1 else 's'} after assignment "
            f"({step.percent}% of the {target}-minute target)"
        )
    late = step.minutes_after_due or 0
    if not late:
        return f"No first touch by the due time (the {target}-minute target was breached)"
    return f"No first touch {late} business minute{'' if late == 1 else 's'} after the {target}-minute target was due"


def _minutes(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.1f}"


def _managers(rep: Rep) -> list[Any]:
    """Who hears about the rep's escalations: the rep's manager, else the team's managers."""
    if rep.manager_id is not None:
        return [rep.manager]
    if rep.team is not None:
        return list(rep.team.managers.order_by("pk"))
    return []


def _reassign(batch: _Batch, sla: LeadSla, policy: SlaPolicy, escalation: _Fired) -> None:
    """Give the lead to the next eligible rep of its queue who never held it; else leave it where it is.

    Under the routing lock (taken for the batch): distribution runs on the snapshot with current load,
    with the current and all previous owners marked inactive in a copy of it.
    """
    lead = sla.lead
    owner = lead.owner
    assert owner is not None
    if sla.reassignments >= policy.max_reassignments:
        escalation.reason += (
            f"; nobody else eligible: already reassigned {sla.reassignments} times (the most the policy allows), "
            f"left with {owner.username}"
        )
        return
    snapshot = _snapshot(batch)
    excluded = {owner.pk, *sla.previous_owner_ids}
    candidates = replace(
        snapshot, reps=tuple(replace(rep, active=False) if rep.id in excluded else rep for rep in snapshot.reps)
    )
    placed = distribute(lead.queue_id or snapshot.catch_all_queue_id, candidates, batch.now)
    if placed.outcome != "assigned" or placed.rep_id is None:
        escalation.reason += f"; nobody else eligible, left with {owner.username}"
        return
    # The running snapshot: the new rep has one more lead, the old one one fewer, the pointer moved.
    snapshot = apply_decision(
        snapshot,
        Decision(
            "assigned", "queue", rep_id=placed.rep_id, queue_id=placed.queue_id, pointer_advance=placed.pointer_advance
        ),
    )
    batch.snapshot = replace(
        snapshot,
        reps=tuple(
            replace(rep, open_leads=max(rep.open_leads - 1, 0)) if rep.id == owner.pk else rep for rep in snapshot.reps
        ),
    )
    new_rep = batch.snapshot.rep_by_id[placed.rep_id]
    escalation.to_rep_id = placed.rep_id
    escalation.reason += f"; reassigned from {owner.username} to {new_rep.username}"
    note = f"SLA escalation: {escalation.reason}."
    batch.handovers.append(
        Handover(
            lead=lead,
            rep_id=placed.rep_id,
            queue_id=placed.queue_id,
            status=Lead.Status.ASSIGNED,
            reason=Assignment.Reason.ESCALATION,
            summary=note,
            receipt={"queue_path": placed.path, "excluded_rep_ids": sorted(excluded)},
            note=note,
        )
    )
    sla.previous_owner_ids = [*sla.previous_owner_ids, owner.pk]
    sla.reassignments += 1
    batch.changed_leads.append(lead)
    batch.reassigned.append(lead)


def _move_to_queue(batch: _Batch, sla: LeadSla, step: EscalationStep, escalation: _Fired) -> None:
    """The lead leaves its rep and waits in the step's queue (else its queue's fallback, else the catch-all),
    where the routing sweep offers it to whoever is eligible there."""
    lead = sla.lead
    owner = lead.owner
    assert owner is not None
    snapshot = _snapshot(batch)
    target_id = step.queue_id or (lead.queue.fallback_id if lead.queue is not None else None)
    target_id = target_id or snapshot.catch_all_queue_id
    target = snapshot.queue_by_id.get(target_id)
    target_name = target.name if target is not None else f"queue {target_id}"
    escalation.to_queue_id = target_id
    escalation.reason += f"; taken from {owner.username} to wait in {target_name}"
    note = f"SLA escalation: {escalation.reason}."
    batch.handovers.append(
        Handover(
            lead=lead,
            rep_id=None,
            queue_id=target_id,
            status=Lead.Status.QUEUED,
            reason=Assignment.Reason.ESCALATION,
            summary=note,
            note=note,
        )
    )
    batch.snapshot = replace(
        snapshot,
        reps=tuple(
            replace(rep, open_leads=max(rep.open_leads - 1, 0)) if rep.id == owner.pk else rep for rep in snapshot.reps
        ),
    )
    if owner.pk not in sla.previous_owner_ids:
        sla.previous_owner_ids = [*sla.previous_owner_ids, owner.pk]
    batch.changed_leads.append(lead)


def _snapshot(batch: _Batch) -> Snapshot:
    """The routing snapshot with current load, read once per batch (under the routing lock)."""
    if batch.snapshot is None:
        batch.snapshot = snapshot_with_current_load(coverage.refresh().snapshot(now=batch.now), now=batch.now)
        batch.start_pointers = {queue.id: queue.rr_pointer for queue in batch.snapshot.queues}
    return batch.snapshot


# --- Calendars ---------------------------------------------------------------------------------------------


def _clock_spec(batch: _Batch, calendar: BusinessCalendar | None) -> CalendarSpec:
    """The calendar the clock's ladder is counted in (prefetched with the clock)."""
    if calendar is None:
        return ALWAYS_OPEN
    if calendar.pk not in batch.specs:
        batch.specs[calendar.pk] = calendar.spec()
    return batch.specs[calendar.pk]


@dataclass
class _NoticeCalendars:
    by_rep: dict[int, CalendarSpec]
    by_team: dict[int, CalendarSpec]
    default: CalendarSpec | None


def _notice_spec(batch: _Batch, sla: LeadSla, step: EscalationStep) -> CalendarSpec:
    """The recipient's business hours. A reminder's recipient is the rep: the rep's calendar, else the team's,
    else the default one. A manager is taken to work the team's hours: the team's calendar, else the default.
    No calendar at all: always open."""
    if batch.notice_calendars is None:
        batch.notice_calendars = _load_notice_calendars(batch)
    calendars = batch.notice_calendars
    owner = sla.lead.owner
    assert owner is not None
    if step.action == Action.REMIND_REP and owner.pk in calendars.by_rep:
        return calendars.by_rep[owner.pk]
    if owner.team_id is not None and owner.team_id in calendars.by_team:
        return calendars.by_team[owner.team_id]
    return calendars.default or ALWAYS_OPEN


def _load_notice_calendars(batch: _Batch) -> _NoticeCalendars:
    """Every calendar the batch's recipients may need, in three queries."""
    rep_ids = {rep.pk for rep in batch.owners}
    team_ids = {rep.team_id for rep in batch.owners if rep.team_id is not None}
    calendars = BusinessCalendar.objects.filter(
        Q(rep_id__in=rep_ids) | Q(team_id__in=team_ids) | Q(is_default=True)
    ).prefetch_related("hours", "closed_dates")
    found = _NoticeCalendars(by_rep={}, by_team={}, default=None)
    for calendar in calendars:
        if calendar.rep_id in rep_ids:
            found.by_rep[calendar.rep_id] = calendar.spec()
        elif calendar.team_id in team_ids:
            found.by_team[calendar.team_id] = calendar.spec()
        if calendar.is_default:
            found.default = calendar.spec()
    return found


# --- Writing ------------------------------------------------------------------------------------------------


def _write(batch: _Batch, slas: list[LeadSla]) -> None:
    """Everything the batch decided, in bulk, in its transaction."""
    _escalations_insert(batch.escalations)
    _ladders_update(slas)
    changed = {lead.pk for lead in batch.changed_leads}
    owner_changes = [sla for sla in slas if sla.lead_id in changed]
    rows_update(LeadSla, owner_changes, ["reassignments", "previous_owner_ids"])
    if not batch.handovers:
        return
    snapshot = batch.snapshot
    moved = (
        {q.id: q.rr_pointer for q in snapshot.queues if q.rr_pointer != batch.start_pointers.get(q.id)}
        if snapshot is not None
        else {}
    )
    # The ownership layer ends the old assignments, writes the new ones, tasks, counters and notifications,
    # and restarts the new owners' clocks.
    owners_change(batch.handovers, now=batch.now, pointers=moved)
    if batch.reassigned:
        _clocks_restart(batch)


def _escalations_insert(fired: list[_Fired]) -> None:
    """The batch's escalations in one statement (per row on SQLite). A (lead, step) already recorded is left as
    it is: the unique constraint keeps each step to one row whichever sweep got there first."""
    if not fired:
        return
    rows = [
        [e.lead_id, e.step_id, e.action, e.rep_id, e.reason, e.fired_at, e.to_rep_id, e.to_queue_id, e.notified_id]
        for e in fired
    ]
    table = Escalation._meta.db_table
    columns = ", ".join(ESCALATION_COLUMNS)
    status = Escalation.Status.OPEN.value
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} ({columns}) "
                "SELECT *, %s, '' FROM unnest(%s::bigint[], %s::bigint[], %s::varchar[], %s::bigint[], %s::text[], "
                "%s::timestamptz[], %s::bigint[], %s::bigint[], %s::bigint[]) "
                "ON CONFLICT (lead_id, step_id) DO NOTHING",
                [status, *(list(column) for column in zip(*rows, strict=True))],
            )
        else:
            placeholders = ", ".join(["%s"] * len(ESCALATION_COLUMNS))
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT (lead_id, step_id) DO NOTHING",
                [[*row, status, ""] for row in rows],
            )


def _ladders_update(slas: list[LeadSla]) -> None:
    """Every clock's next step and its time, in one statement for the whole batch."""
    if not slas:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            table = LeadSla._meta.db_table
            cursor.execute(
                f"UPDATE {table} SET next_step_id = v.step_id, next_step_at = v.step_at "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[]) AS v(id, step_id, step_at) "
                f"WHERE {table}.id = v.id",
                [[sla.pk for sla in slas], [sla.next_step_id for sla in slas], [sla.next_step_at for sla in slas]],
            )
        else:
            rows_update(LeadSla, slas, ["next_step", "next_step_at"])


def _clocks_restart(batch: _Batch) -> None:
    """The new owner's clock started again with the ownership change (keeping reassignments and previous
    owners). Its ladder starts again, but a step fires at most once per lead: the clock skips to the first
    one left."""
    clocks = list(LeadSla.objects.filter(lead__in=batch.reassigned).select_related("policy"))
    skipped = []
    for clock in clocks:
        policy = clock.policy
        if clock.next_step_id is None or policy is None or (clock.lead_id, clock.next_step_id) not in batch.fired:
            continue
        batch.steps_by_policy.setdefault(
            policy.pk, list(EscalationStep.objects.filter(policy=policy).select_related("queue"))
        )
        _set_following_step(batch, clock, None, policy)
        skipped.append(clock)
    rows_update(LeadSla, skipped, ["next_step", "next_step_at"])


# --- Mail ---------------------------------------------------------------------------------------------------


def _reminder_mail(lead: Lead, rep: Rep, sla: LeadSla) -> Callable[[], EmailMessage]:
    context = _mail_context(lead, rep, sla)
    address = rep.user.email

    def build() -> EmailMessage:
        return EmailMessage(
            subject=f"Reminder: first touch due {context['due_at']} for {context['label']}",
            body=render_to_string("sla/email/reminder.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[address] if address else [],
        )

    return build


def _alert_mail(lead: Lead, rep: Rep, sla: LeadSla, reason: str, managers: list[Any]) -> Callable[[], EmailMessage]:
    context = {**_mail_context(lead, rep, sla), "reason": reason}
    addresses = [manager.email for manager in managers if manager.email]

    def build() -> EmailMessage:
        return EmailMessage(
            subject=f"Escalation: no first touch on {context['label']} ({context['rep_name']})",
            body=render_to_string("sla/email/manager_alert.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=addresses,
        )

    return build


def _mail_context(lead: Lead, rep: Rep, sla: LeadSla) -> dict[str, Any]:
    return {
        "lead": lead,
        "label": _lead_label(lead),
        "rep_name": rep.user.get_full_name() or rep.username,
        "due_at": _format_due(sla.due_at, rep.time_zone) if sla.due_at is not None else "now",
        "link": lead_admin_link(lead),
    }


def _send_after_commit(mails: list[Callable[[], EmailMessage]], report: SweepReport) -> None:
    """Send the batch's mail once it is committed, over one connection; a failure is logged, never raised."""
    if not mails:
        return

    def send() -> None:
        started = time.perf_counter()
        messages = [message for message in (build() for build in mails) if message.to]
        try:
            get_connection().send_messages(messages)
        except Exception:
            logger.exception("Could not send %d SLA reminder/alert e-mails.", len(messages))
        report.mail_seconds += time.perf_counter() - started

    transaction.on_commit(send)
