"""The escalation sweep: fire the SLA ladder steps that are due, in short batches.

Each lead's clock (``LeadSla``) stores the next step of its policy's ladder and
when it fires, so the sweep is an indexed comparison (``leadsla_due_step_idx``:
``next_step_at`` of untouched leads with a step left). One batch, one transaction:

1. Claim up to ``batch_size`` due clocks, oldest first, with ``SELECT … FOR
   UPDATE SKIP LOCKED``: a second sweep running at the same time takes other
   rows and never waits. PostgreSQL re-checks ``touched_at IS NULL`` on the
   newest row version when it locks it, so a lead touched meanwhile is not
   claimed; the claimed clocks are checked again (touched, a logged touch, the
   lead no longer with a rep), and such a ladder simply stops. The clocks are
   read as plain values, not model objects: most steps only notify.
2. When a claimed step changes ownership (reassign, move to a queue), take the
   routing lock, like every writer of ownership, and lock those leads. The
   batch already holds its clocks, and another writer may hold the lock or a
   lead while it waits for one of those clocks (a reassignment restarting the
   clock, a rep closing the lead): so the sweep never waits here. It takes the
   routing lock only if it is free and skips leads another transaction holds;
   the steps it could not take wait for the next batch or run, and the batch
   fires the others. No rep's or manager's action is ever cancelled as a
   deadlock victim of the sweep.
3. Per clock, in due order: when several steps of its ladder are due at once
   (after downtime, or clocks loaded with past times), only the latest of them
   fires and the earlier ones are skipped: a manager gets one escalation per
   lead, the one that says where it stands now. A step that already fired for
   the lead (the ladder restarted after a reassignment) is passed over; a reminder or alert whose
   recipient is outside business hours waits for the next opening (unless the
   policy notifies at any hour); otherwise the step fires: an ``Escalation``
   row and the action. A reminder or an alert is only planned here, as plain
   values; a reassignment or a move to a queue goes through the ownership
   layer lead by lead. The clock then moves to the following step, or its
   ladder ends. After a step that fired late (``LATE_AFTER``), the following
   one keeps the ladder's spacing: it fires no sooner after it, in business
   time, than the ladder spaces them.
4. Write, a few statements for the whole batch: the escalations (``ON
   CONFLICT DO NOTHING``: the unique (lead, step) keeps a step to one row even
   if two sweeps ever got there), the reminders' and alerts' notification rows
   for the escalations just written (the outbox, ``routing.notify``), every
   clock's next step; then the ownership changes and the new owners' clocks.
   Commit, and one task per batch sends the batch's notices
   (``routing.tasks.notify_outbox``): no mail is built or sent in the sweep.

What every batch reads alike (policies and their ladders, calendars, the owners
with their managers, queues) is read once per sweep. The sweep repeats batches
until nothing is due or its time budget is spent; the next run goes on where it
stopped.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import psycopg
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from routing import turns
from routing.bulk import ids_in, pg_execute, rows_update
from routing.dispatch import collector_paused, coverage, helper_allowed, two_threads
from routing.engine import Decision, Snapshot, apply_decision
from routing.engine.distribution import distribute
from routing.models import Assignment, EventType, Lead, Notification, Queue
from routing.notify import Notice, notices_record, notices_send_after_commit
from routing.outbound import Event, api_time, events_record
from routing.ownership import Handover, owners_change, routing_lock_try
from routing.selectors import snapshot_with_current_load
from sla.calendar import CalendarSpec, add_business_time, business_time_between, next_open
from sla.ladder import StepInfo, next_step, step_fires_at
from sla.models import BusinessCalendar, Escalation, EscalationStep, LeadSla, SlaPolicy, Touch
from territories.models import Rep, Team

Action = EscalationStep.Action
Kind = Notification.Kind
# A calendar that never closes: clocks without a calendar, recipients without one.
ALWAYS_OPEN = CalendarSpec(time_zone="UTC", windows=())
OWNERSHIP_ACTIONS = frozenset({Action.REASSIGN, Action.MOVE_TO_QUEUE})
NOTICE_ACTIONS = frozenset({Action.REMIND_REP, Action.ALERT_MANAGER})
# A step that fires this long after its time fired late (the sweep, due every 30 seconds, was not running, or the
# clocks were loaded with past times): the following step keeps the ladder's spacing from then on instead of
# falling due at once. Shorter delays are the sweep's interval and leave the ladder's times as they are.
LATE_AFTER = timedelta(minutes=5)
# The clock columns a batch reads, in the order of ``_Clock``'s fields (the claim's condition says the clock is
# untouched; the ownership path reads the rest of a clock it moves).
CLOCK_COLUMNS = ("id", "lead_id", "policy_id", "calendar_id", "started_at", "due_at", "next_step")
# What the claim reads of each clock's lead, after the clock's columns, in the order of ``_Clock``'s fields.
LEAD_ANNOTATIONS = ("lead_owner_id", "lead_queue_id", "lead_status", "lead_touched", "lead_escalated")
# Stands for the claim's time in its SQL, compiled once per sweep (``_Lookups.claim``).
CLAIM_NOW = datetime(2000, 1, 1, tzinfo=UTC)
# The lead columns the ownership path reads; everything else stays deferred.
LEAD_COLUMNS = ("id", "owner_id", "queue_id", "status", "first_name", "last_name", "email", "company", "updated_at")


@dataclass
class SweepReport:
    """What one sweep did.

    ``fired`` counts steps fired per action; ``waiting`` notices postponed to the
    recipient's business hours; ``stopped`` ladders ended because the lead was
    touched or is no longer with a rep; ``passed_over`` steps that had already
    fired for the lead (after a reassignment restarted its ladder); ``skipped``
    steps left unfired because a later step of the same ladder was due too;
    ``notices`` the reminder and alert notifications written to the outbox; ``deferred`` ownership steps
    left for a later batch because another transaction held the routing lock or the lead.
    """

    fired: dict[str, int] = field(default_factory=dict)
    waiting: int = 0
    stopped: int = 0
    passed_over: int = 0
    skipped: int = 0
    claimed: int = 0
    notices: int = 0
    deferred: int = 0
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
        self.skipped += other.skipped
        self.claimed += other.claimed
        self.notices += other.notices
        self.deferred += other.deferred
        self.batch_seconds.extend(other.batch_seconds)


def escalations_sweep(
    *, now: datetime | None = None, batch_size: int = 1000, budget_seconds: float = 20
) -> SweepReport:
    """Fire the ladder steps due at ``now`` (default: the current time), ``batch_size`` clocks per transaction,
    until nothing is due or ``budget_seconds`` are spent. Safe to run twice or at once.

    When the first batch comes back full, on PostgreSQL and outside a caller's transaction, a second thread
    sweeps beside this one (``routing.dispatch.two_threads``), with its own connection, claiming batches this
    one does not hold: a batch waits for the database for two thirds of its time (its claim, its writes), and
    the other thread's Python fills those waits. A sweep with less to do (every 30 seconds, most of them)
    opens no second connection.

    Side effects: writes escalations, clocks, and the reminders' and alerts' notifications, enqueuing
    ``notify_outbox`` once per batch after commit; for reassignments and moves, the lead, its assignments,
    queue pointers, notifications and rep tasks, enqueuing ``notify_assignments`` for new owners after commit.
    """
    deadline = time.monotonic() + budget_seconds
    lookups = _Lookups()
    report = _batch_sweep(now=now, limit=batch_size, lookups=lookups)
    if _sweep_over(report, deadline):
        return report
    failed = threading.Event()

    def sweep(helper: bool) -> SweepReport:
        try:
            return _batches_sweep(
                now=now,
                batch_size=batch_size,
                deadline=deadline,
                failed=failed,
                lookups=_Lookups() if helper else lookups,
            )
        except BaseException:
            failed.set()  # The other thread stops after its batch.
            raise

    if report.claimed < batch_size or not helper_allowed():
        report.add(sweep(False))
        return report
    for part in two_threads(sweep, name="sweep-helper"):
        report.add(part)
    return report


def _batches_sweep(
    *, now: datetime | None, batch_size: int, deadline: float, failed: threading.Event, lookups: _Lookups
) -> SweepReport:
    """One thread's batches, one after the other, until a claim finds nothing it can take, the time is spent
    or the other thread failed."""
    report = SweepReport()
    while not failed.is_set():
        batch = _batch_sweep(now=now, limit=batch_size, lookups=lookups)
        report.add(batch)
        if _sweep_over(batch, deadline):
            break
    return report


def _batch_sweep(*, now: datetime | None, limit: int, lookups: _Lookups) -> SweepReport:
    """One batch (``_sweep_batch``), timed."""
    clock = time.perf_counter()
    # As a routing batch does: the batch's objects die when it returns, before the collector runs again (its
    # walks were 2% of the sweep: 16 ms of 0.74 s for 15,000 reminders, bench_sla).
    with collector_paused():
        batch = _sweep_batch(now=now or timezone.now(), limit=limit, lookups=lookups)
    if batch.claimed:
        batch.batch_seconds.append(time.perf_counter() - clock)
    return batch


def _sweep_over(batch: SweepReport, deadline: float) -> bool:
    """Whether a thread's sweep ends after this batch. A fired step can make the following one due at once, so
    it goes on until a claim comes back empty, or holds nothing but steps another transaction keeps from it
    for now (the next run takes them), or the time is spent."""
    return batch.claimed <= batch.deferred or time.monotonic() >= deadline


def claim_queryset(*, now: datetime, limit: int) -> Any:
    """The claim: due, untouched clocks, oldest first, skipping rows another sweep holds (a scan of the partial
    index ``leadsla_due_step_idx``; only the clocks are locked), as tuples of ``CLOCK_COLUMNS`` followed by
    what the batch reads of each lead in the same round trip: its owner, queue and status, whether a touch is
    logged, whether any step fired for it already."""
    return (
        LeadSla.objects.filter(touched_at__isnull=True, next_step_at__isnull=False, next_step_at__lte=now)
        .order_by("next_step_at")
        .select_for_update(skip_locked=True, of=("self",))
        .annotate(
            lead_owner_id=F("lead__owner_id"),
            lead_queue_id=F("lead__queue_id"),
            lead_status=F("lead__status"),
            lead_touched=Exists(Touch.objects.filter(lead_id=OuterRef("lead_id"))),
            lead_escalated=Exists(Escalation.objects.filter(lead_id=OuterRef("lead_id"), step__isnull=False)),
        )
        .values_list(*CLOCK_COLUMNS, *LEAD_ANNOTATIONS)[:limit]
    )


# --- What the batches of one sweep share --------------------------------------------------------------------


@dataclass
class _Lookups:
    """The few rows every batch reads: policies with their ladders, calendars, the leads' owners with their
    users and managers, queues. Each is read by the first batch that needs it and kept for the rest of the
    sweep (a policy or a step the sweep has not seen yet makes it read the ladders again); a change made
    meanwhile counts from the next sweep. Also remembered: the answers every clock of a routing batch shares
    (a step's reason, when the following step fires for the same start and due time, when a calendar opens)."""

    policies: dict[int, SlaPolicy] = field(default_factory=dict)
    steps: dict[int, EscalationStep] = field(default_factory=dict)
    steps_by_policy: dict[int, list[EscalationStep]] = field(default_factory=dict)
    step_infos: dict[int, list[StepInfo]] = field(default_factory=dict)
    specs: dict[int, CalendarSpec] = field(default_factory=dict)
    rep_specs: dict[int, CalendarSpec] = field(default_factory=dict)
    team_specs: dict[int, CalendarSpec] = field(default_factory=dict)
    default_spec: CalendarSpec | None = None
    # What was looked up already, found or not: ("calendar" | "rep" | "team" | "default", id).
    calendars_read: set[tuple[str, int]] = field(default_factory=set)
    reps: dict[int, Rep] = field(default_factory=dict)
    managers: dict[int, list[User]] = field(default_factory=dict)
    queues: dict[int, Queue | None] = field(default_factory=dict)
    reasons: dict[tuple[int, int], str] = field(default_factory=dict)
    following: dict[tuple[Any, ...], tuple[StepInfo, datetime] | None] = field(default_factory=dict)
    scheduled: dict[tuple[Any, ...], datetime] = field(default_factory=dict)
    spaced: dict[tuple[Any, ...], datetime] = field(default_factory=dict)
    opens: dict[tuple[tuple[str, int], datetime], datetime] = field(default_factory=dict)
    # The claim's SQL and parameters for a batch size, ``CLAIM_NOW`` standing for the batch's time.
    claim_sql: dict[int, tuple[str, list[Any]]] = field(default_factory=dict)
    # Whether a step is its policy's first after the due time (it reports the breach).
    breaches: dict[int, bool] = field(default_factory=dict)

    def claim(self, *, now: datetime, limit: int) -> list[tuple[Any, ...]]:
        """The claim's rows (``claim_queryset``). On PostgreSQL its SQL is compiled by the first batch and
        kept for the others, which only change its time (compiling it took a few milliseconds a batch), and
        the rows come back in binary, which psycopg reads in C."""
        if connection.vendor != "postgresql":
            return list(claim_queryset(now=now, limit=limit))
        if limit not in self.claim_sql:
            sql, params = claim_queryset(now=CLAIM_NOW, limit=limit).query.sql_with_params()
            assert list(params).count(CLAIM_NOW) == 1, "The claim's SQL takes its time as one parameter."
            self.claim_sql[limit] = (sql, list(params))
        sql, params = self.claim_sql[limit]
        connection.ensure_connection()
        # Waiting for the rows, the other sweeping thread runs (``routing.turns``).
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor, turns.handed_over():
            cursor.execute(sql, [now if param == CLAIM_NOW else param for param in params], binary=True)
            return cursor.fetchall()

    def breaches_sla(self, step: EscalationStep) -> bool:
        """Whether ``step`` is the first of its policy's steps after the due time: firing it reports the
        breach (``sla.breached``)."""
        if step.pk not in self.breaches:
            after_due = [s for s in self.steps_by_policy.get(step.policy_id, []) if s.when == step.when]
            self.breaches[step.pk] = (
                step.when == EscalationStep.When.AFTER_DUE and bool(after_due) and after_due[0].pk == step.pk
            )
        return self.breaches[step.pk]

    def ladders_cover(self, clocks: list[_Clock]) -> None:
        """Read every policy and step (few rows) unless those of ``clocks`` are known already."""
        if all(
            (clock.policy_id is None or clock.policy_id in self.policies)
            and (clock.next_step_id is None or clock.next_step_id in self.steps)
            for clock in clocks
        ):
            return
        self.policies = SlaPolicy.objects.in_bulk()
        self.steps = {step.pk: step for step in EscalationStep.objects.select_related("queue").order_by("position")}
        self.steps_by_policy = {policy_id: [] for policy_id in self.policies}
        for step in self.steps.values():
            self.steps_by_policy.setdefault(step.policy_id, []).append(step)
        self.step_infos = {}
        self.following = {}
        self.scheduled = {}
        self.breaches = {}

    def infos(self, policy_id: int) -> list[StepInfo]:
        if policy_id not in self.step_infos:
            self.step_infos[policy_id] = [_step_info(step) for step in self.steps_by_policy.get(policy_id, [])]
        return self.step_infos[policy_id]

    def scheduled_at(self, clock: _Clock | LeadSla, info: StepInfo, policy: SlaPolicy) -> datetime:
        """When the ladder puts ``info`` for this clock (the clock has a due time and its policy a target)."""
        key = (policy.id, clock.calendar_id, clock.started_at, clock.due_at, info.id)
        if key not in self.scheduled:
            assert clock.due_at is not None and policy.first_touch_minutes
            self.scheduled[key] = step_fires_at(
                step=info,
                spec=self.clock_spec(clock.calendar_id),
                started_at=clock.started_at,
                due=clock.due_at,
                target_minutes=policy.first_touch_minutes,
            )
        return self.scheduled[key]

    def spaced_after(
        self, calendar_id: int | None, fired_at: datetime, scheduled: datetime, following: datetime
    ) -> datetime:
        """When a step that the ladder puts at ``following`` fires, after the step before it, scheduled at
        ``scheduled``, fired at ``fired_at``: as long after it, in the clock's business time, as the ladder
        spaces them."""
        if following <= scheduled:
            return fired_at  # Steps the ladder puts at one instant fire together.
        key = (calendar_id, fired_at, scheduled, following)
        if key not in self.spaced:
            spec = self.clock_spec(calendar_id)
            self.spaced[key] = add_business_time(spec, fired_at, business_time_between(spec, scheduled, following))
        return self.spaced[key]

    def reason(self, step: EscalationStep, policy: SlaPolicy) -> str:
        key = (step.id, policy.id)
        if key not in self.reasons:
            self.reasons[key] = step_reason(step, policy)
        return self.reasons[key]

    def calendars_cover(self, *, calendar_ids: set[int], rep_ids: set[int], team_ids: set[int]) -> None:
        """Read the clocks' calendars and the recipients' (the reps', their teams', the default one) that are
        not known yet: one query, with their hours and closed dates."""
        wanted = {
            *(("calendar", pk) for pk in calendar_ids),
            *(("rep", pk) for pk in rep_ids),
            *(("team", pk) for pk in team_ids),
            ("default", 0),
        }
        missing = wanted - self.calendars_read
        if not missing:
            return
        self.calendars_read |= missing
        of = {
            kind: [pk for missing_kind, pk in missing if missing_kind == kind] for kind in ("calendar", "rep", "team")
        }
        condition = Q(pk__in=of["calendar"]) | Q(rep_id__in=of["rep"]) | Q(team_id__in=of["team"])
        if ("default", 0) in missing:
            condition |= Q(is_default=True)
        for calendar in BusinessCalendar.objects.filter(condition).prefetch_related("hours", "closed_dates"):
            spec = self.specs[calendar.pk] = calendar.spec()
            if calendar.rep_id is not None:
                self.rep_specs[calendar.rep_id] = spec
            if calendar.team_id is not None:
                self.team_specs[calendar.team_id] = spec
            if calendar.is_default:
                self.default_spec = spec

    def clock_spec(self, calendar_id: int | None) -> CalendarSpec:
        """The calendar a clock's ladder is counted in; a clock without one runs around the clock."""
        if calendar_id is None:
            return ALWAYS_OPEN
        if ("calendar", calendar_id) not in self.calendars_read:
            self.calendars_cover(calendar_ids={calendar_id}, rep_ids=set(), team_ids=set())
        return self.specs.get(calendar_id, ALWAYS_OPEN)

    def reps_cover(self, rep_ids: set[int]) -> None:
        """Read the reps not known yet with their users, and who manages each: the rep's manager, else the
        team's managers (by id)."""
        missing = rep_ids - self.reps.keys()
        if not missing:
            return
        reps = Rep.objects.select_related("user", "manager").in_bulk(missing)
        self.reps.update(reps)
        team_ids = {rep.team_id for rep in reps.values() if rep.manager_id is None and rep.team_id is not None}
        team_managers: dict[int, list[User]] = {}
        if team_ids:
            memberships = (
                Team.managers.through.objects.filter(team_id__in=team_ids).select_related("user").order_by("user_id")
            )
            for membership in memberships:
                team_managers.setdefault(membership.team_id, []).append(membership.user)
        for rep in reps.values():
            if rep.manager_id is not None:
                self.managers[rep.pk] = [rep.manager] if rep.manager is not None else []
            else:
                self.managers[rep.pk] = team_managers.get(rep.team_id, []) if rep.team_id is not None else []

    def queues_cover(self, queue_ids: set[int]) -> None:
        missing = queue_ids - self.queues.keys()
        if missing:
            found = Queue.objects.in_bulk(missing)
            self.queues.update({pk: found.get(pk) for pk in missing})

    def opens_at(self, calendar: tuple[str, int], now: datetime) -> datetime:
        """When the recipient's calendar (``_notice_calendar``) is next open at or after ``now``."""
        key = (calendar, now)
        if key not in self.opens:
            kind, pk = calendar
            spec = self.rep_specs.get(pk) if kind == "rep" else self.team_specs.get(pk) if kind == "team" else None
            self.opens[key] = next_open(spec or self.default_spec or ALWAYS_OPEN, now)
        return self.opens[key]


# --- One batch -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Clock:
    """A claimed clock and what the batch reads of its lead, as plain values in the order of the claim's
    columns. The batch changes its next step; only a clock whose step moves the lead becomes a model object
    too (``_Batch.moved_clocks``)."""

    id: int
    lead_id: int
    policy_id: int | None
    calendar_id: int | None
    started_at: datetime
    due_at: datetime | None
    next_step_id: int | None
    owner_id: int | None
    queue_id: int | None
    status: str
    # A touch is logged for the lead (it stops the ladder); some step fired for the lead already.
    touched: bool
    escalated: bool
    # Set by the batch, as every clock's next step is.
    next_step_at: datetime | None = None

    @property
    def pk(self) -> int:
        return self.id

    @property
    def with_a_rep(self) -> bool:
        return self.owner_id is not None and self.status in Lead.OPEN_STATUSES


@dataclass(slots=True)
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
    "to_rep_id",
    "to_queue_id",
    "notified_id",
    "fired_at",
    "status",
    "comment",
]


class _PlannedNotice(NamedTuple):
    """A reminder's or an alert's notification, written once its escalation has an id."""

    lead_id: int
    step_id: int
    rep_id: int
    kind: str
    recipients: list[str] | None = None


@dataclass
class _Batch:
    """What a batch reads once and writes at the end."""

    now: datetime
    report: SweepReport
    lookups: _Lookups
    fired: set[tuple[int, int]]
    snapshot: Snapshot | None = None
    start_pointers: dict[int, int] = field(default_factory=dict)
    escalations: list[_Fired] = field(default_factory=list)
    notices: list[_PlannedNotice] = field(default_factory=list)
    # The ownership path: the leads and clocks as model objects, and the clocks whose step moved their lead.
    lead_objects: dict[int, Lead] = field(default_factory=dict)
    clock_objects: dict[int, LeadSla] = field(default_factory=dict)
    moved_clocks: list[LeadSla] = field(default_factory=list)
    changed_leads: list[Lead] = field(default_factory=list)
    handovers: list[Handover] = field(default_factory=list)
    reassigned: list[Lead] = field(default_factory=list)

    @property
    def steps_by_policy(self) -> dict[int, list[EscalationStep]]:
        return self.lookups.steps_by_policy


def _sweep_batch(*, now: datetime, limit: int, lookups: _Lookups) -> SweepReport:
    report = SweepReport()
    with transaction.atomic():
        clocks = [_Clock(*row) for row in lookups.claim(now=now, limit=limit)]
        if not clocks:
            return report
        report.claimed = len(clocks)
        lookups.ladders_cover(clocks)
        for clock in clocks:
            _catch_up(lookups, clock, now, report)
        moving = [clock for clock in clocks if _step_action(lookups, clock) in OWNERSHIP_ACTIONS]
        batch = _Batch(now=now, report=report, lookups=lookups, fired=set())
        if not moving:
            _commit_without_waiting_for_disk()
        if moving:
            # Ownership changes: read those leads again under the lock every owner-writer takes, without
            # waiting for it nor for a lead (see step 2 above); what is held elsewhere waits for later.
            locked = (
                set(
                    Lead.objects.filter(pk__in=[clock.lead_id for clock in moving])
                    .select_for_update(skip_locked=True)
                    .values_list("pk", flat=True)
                )
                if routing_lock_try()
                else set()
            )
            deferred = {clock.id for clock in moving if clock.lead_id not in locked}
            if deferred:
                report.deferred = len(deferred)
                clocks = [clock for clock in clocks if clock.id not in deferred]
                moving = [clock for clock in moving if clock.id not in deferred]
            batch.lead_objects = Lead.objects.only(*LEAD_COLUMNS).in_bulk([clock.lead_id for clock in moving])
            batch.clock_objects = LeadSla.objects.in_bulk([clock.id for clock in moving])
            for clock in moving:
                lead = batch.lead_objects[clock.lead_id]
                clock.owner_id, clock.queue_id, clock.status = lead.owner_id, lead.queue_id, lead.status
        escalated = [clock.lead_id for clock in clocks if clock.escalated]
        if escalated:
            batch.fired = set(
                Escalation.objects.filter(lead_id__in=ids_in(escalated), step__isnull=False).values_list(
                    "lead_id", "step_id"
                )
            )
        lookups.reps_cover({clock.owner_id for clock in clocks if clock.owner_id is not None})
        owners = [lookups.reps[clock.owner_id] for clock in clocks if clock.owner_id is not None]
        lookups.calendars_cover(
            calendar_ids={clock.calendar_id for clock in clocks if clock.calendar_id is not None},
            rep_ids={owner.pk for owner in owners},
            team_ids={owner.team_id for owner in owners if owner.team_id is not None},
        )
        lookups.queues_cover({clock.queue_id for clock in clocks if clock.queue_id is not None})
        for clock in clocks:
            if clock.touched or not clock.with_a_rep:
                _ladder_end(clock)
                report.stopped += 1
                continue
            _advance(batch, clock)
        _write(batch, clocks)
        # What is left is the commit: the other sweeping thread runs meanwhile; this one takes the turn back
        # once its next claim's rows are in.
        turns.let_go()
    return report


def _commit_without_waiting_for_disk() -> None:
    """Let this batch's commit return before PostgreSQL has flushed it to disk (``synchronous_commit = off``
    for this transaction only; the WAL writer flushes it within a fraction of a second). Used for batches that
    only remind and alert: waiting for the disk was a third of the sweep's time. What a crash of the database
    server in that fraction of a second can lose is a batch whose steps are then still due, so the next sweep
    fires them again, and a reminder may go out twice. A batch that moves leads waits for the disk as usual:
    the new owners are told at once, so losing the move is not acceptable."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _step_action(lookups: _Lookups, clock: _Clock) -> str | None:
    step = lookups.steps.get(clock.next_step_id) if clock.next_step_id is not None else None
    return step.action if step is not None else None


def _catch_up(lookups: _Lookups, clock: _Clock, now: datetime, report: SweepReport) -> None:
    """Point the clock at the latest step of its ladder that is due (the first of them when several fall at the
    same instant), skipping the earlier due ones: after downtime, or for clocks loaded with past times, a lead
    gets one escalation that says where it stands, not every step it missed. Pure; the ladders are known."""
    step = lookups.steps.get(clock.next_step_id) if clock.next_step_id is not None else None
    policy = lookups.policies.get(clock.policy_id) if clock.policy_id is not None else None
    if step is None or policy is None or step.policy_id != policy.id:
        return
    if clock.due_at is None or not policy.first_touch_minutes:
        return
    infos = [info for info in lookups.infos(policy.id) if info.position >= step.position]
    if len(infos) < 2 or lookups.scheduled_at(clock, infos[1], policy) > now:
        return  # The usual case: the step after this one is not due yet.
    latest: StepInfo | None = None
    latest_at: datetime | None = None
    at: datetime | None = None
    for info in infos:
        # A step never fires before the one it follows.
        scheduled = lookups.scheduled_at(clock, info, policy)
        at = scheduled if at is None else max(at, scheduled)
        if at > now:
            break
        if latest_at is None or at > latest_at:
            latest, latest_at = info, at
    if latest is not None and latest.id != step.id:
        report.skipped += sum(1 for info in infos if info.position < latest.position)
        clock.next_step_id = latest.id


def _ladder_end(clock: _Clock | LeadSla) -> None:
    clock.next_step_id = None
    clock.next_step_at = None


def _advance(batch: _Batch, clock: _Clock) -> None:
    """Fire the clock's step (or pass it over, or let it wait), then set the following one."""
    lookups = batch.lookups
    step = lookups.steps.get(clock.next_step_id) if clock.next_step_id is not None else None
    policy = lookups.policies.get(clock.policy_id) if clock.policy_id is not None else None
    if step is None or policy is None or step.policy_id != policy.id:
        _ladder_end(clock)  # The step or the policy was deleted or changed: nothing left to fire.
        batch.report.stopped += 1
        return
    assert clock.owner_id is not None
    owner = lookups.reps[clock.owner_id]
    if (clock.lead_id, step.id) in batch.fired:
        batch.report.passed_over += 1
    else:
        if step.action in NOTICE_ACTIONS and not policy.notify_outside_business_hours:
            opens = lookups.opens_at(_notice_calendar(lookups, owner, step), batch.now)
            if opens > batch.now:
                clock.next_step_at = opens  # The same step, at the recipient's next opening.
                batch.report.waiting += 1
                return
        _fire(batch, clock, owner, step, policy)
        batch.fired.add((clock.lead_id, step.id))
        batch.report.count(step.action)
        if step.action == Action.MOVE_TO_QUEUE:
            _ladder_end(clock)  # Nobody holds the lead any more; the ladder has no one to chase.
            return
    _set_following_step(batch, clock, step, policy)


def _set_following_step(batch: _Batch, clock: _Clock | LeadSla, step: EscalationStep | None, policy: SlaPolicy) -> None:
    """Point the clock at the first step after ``step`` (after none: the first) that has not fired for the
    lead yet, never earlier than now; or end its ladder. Clocks of one routing batch share their start and
    due time, so each answer is worked out once per sweep."""
    lookups = batch.lookups
    if clock.due_at is None or not policy.first_touch_minutes:
        _ladder_end(clock)
        return
    position = step.position if step is not None else None
    while True:
        key = (policy.id, clock.calendar_id, clock.started_at, clock.due_at, position)
        if key not in lookups.following:
            lookups.following[key] = next_step(
                lookups.infos(policy.id),
                after_position=position,
                spec=lookups.clock_spec(clock.calendar_id),
                started_at=clock.started_at,
                due=clock.due_at,
                target_minutes=policy.first_touch_minutes,
            )
        following = lookups.following[key]
        if following is None:
            _ladder_end(clock)
            return
        info, fires_at = following
        if (clock.lead_id, info.id) not in batch.fired:
            if step is not None:
                # The step fired (or was passed over) late: the following one keeps the ladder's spacing.
                scheduled = lookups.scheduled_at(clock, _step_info(step), policy)
                if batch.now - scheduled > LATE_AFTER:
                    fires_at = max(fires_at, lookups.spaced_after(clock.calendar_id, batch.now, scheduled, fires_at))
            clock.next_step_id = info.id
            clock.next_step_at = max(fires_at, batch.now)
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


def _fire(batch: _Batch, clock: _Clock, owner: Rep, step: EscalationStep, policy: SlaPolicy) -> None:
    """Record the escalation; plan a reminder's or an alert's notifications, or move the lead."""
    escalation = _Fired(
        lead_id=clock.lead_id,
        step_id=step.id,
        action=step.action,
        rep_id=owner.id,
        reason=batch.lookups.reason(step, policy),
        fired_at=batch.now,
    )
    if step.action == Action.REMIND_REP:
        escalation.notified_id = owner.user_id
        _plan_reminder(batch, clock, owner, step)
    elif step.action == Action.ALERT_MANAGER:
        managers = batch.lookups.managers.get(owner.id, [])
        escalation.notified_id = managers[0].id if managers else None
        if managers:
            _plan_alert(batch, clock, owner, step, managers)
        else:
            escalation.reason += "; nobody to alert: the rep has no manager and the team none"
    else:
        sla = _clock_object(batch, clock, owner, step, policy)
        if step.action == Action.REASSIGN:
            _reassign(batch, sla, policy, escalation)
        else:
            _move_to_queue(batch, sla, step, escalation)
        batch.moved_clocks.append(sla)
    batch.escalations.append(escalation)


def _plan_reminder(batch: _Batch, clock: _Clock, owner: Rep, step: EscalationStep) -> None:
    """The rep hears by e-mail when their user has an address, and on Slack when they have a webhook."""
    if owner.user.email:
        batch.notices.append(_PlannedNotice(clock.lead_id, step.id, owner.id, Kind.SLA_REMINDER_EMAIL))
    if owner.slack_webhook_url:
        batch.notices.append(_PlannedNotice(clock.lead_id, step.id, owner.id, Kind.SLA_REMINDER_SLACK))


def _plan_alert(batch: _Batch, clock: _Clock, owner: Rep, step: EscalationStep, managers: list[User]) -> None:
    """The managers hear by e-mail (those with an address), and the lead's queue's channel on Slack when the
    queue has a webhook."""
    addresses = list(dict.fromkeys(manager.email for manager in managers if manager.email))
    if addresses:
        batch.notices.append(_PlannedNotice(clock.lead_id, step.id, owner.id, Kind.SLA_ALERT_EMAIL, addresses))
    queue = batch.lookups.queues.get(clock.queue_id) if clock.queue_id is not None else None
    if queue is not None and queue.slack_webhook_url:
        batch.notices.append(_PlannedNotice(clock.lead_id, step.id, owner.id, Kind.SLA_ALERT_SLACK))


def _clock_object(batch: _Batch, clock: _Clock, owner: Rep, step: EscalationStep, policy: SlaPolicy) -> LeadSla:
    """The clock and its lead as model objects (read under the routing lock), as the ownership path reads
    them."""
    lead = batch.lead_objects[clock.lead_id]
    lead.owner = owner
    lead.queue = batch.lookups.queues.get(clock.queue_id) if clock.queue_id is not None else None
    sla = batch.clock_objects[clock.id]
    sla.lead = lead
    sla.policy = policy
    sla.next_step = step
    return sla


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


def _notice_calendar(lookups: _Lookups, owner: Rep, step: EscalationStep) -> tuple[str, int]:
    """Whose business hours the recipient keeps. A reminder's recipient is the rep: the rep's calendar, else
    the team's, else the default one. A manager is taken to work the team's hours: the team's calendar, else
    the default. No calendar at all: always open."""
    if step.action == Action.REMIND_REP and owner.id in lookups.rep_specs:
        return ("rep", owner.id)
    if owner.team_id is not None and owner.team_id in lookups.team_specs:
        return ("team", owner.team_id)
    return ("default", 0)


# --- Writing ------------------------------------------------------------------------------------------------


def _write(batch: _Batch, clocks: list[_Clock]) -> None:
    """Everything the batch decided, in bulk, in its transaction."""
    # Each statement's wait is the other sweeping thread's turn (``routing.turns``).
    with turns.handed_over():
        escalation_ids = _escalations_insert(batch.escalations)
    _notices_write(batch, escalation_ids)
    _events_write(batch, escalation_ids)
    with turns.handed_over():
        _ladders_update(clocks)
    changed = {lead.pk for lead in batch.changed_leads}
    owner_changes = [sla for sla in batch.moved_clocks if sla.lead_id in changed]
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


def _escalations_insert(fired: list[_Fired]) -> dict[tuple[int, int], int]:
    """The batch's escalations in one statement (per row on SQLite); returns the id of each one written, by
    (lead, step). A (lead, step) already recorded is left as it is, and not returned: the unique constraint
    keeps each step to one row, and its notices to one set, whichever sweep got there first."""
    if not fired:
        return {}
    rows = [
        [e.lead_id, e.step_id, e.action, e.rep_id, e.reason, e.to_rep_id, e.to_queue_id, e.notified_id] for e in fired
    ]
    table = Escalation._meta.db_table
    columns = ", ".join(ESCALATION_COLUMNS)
    # A batch fires its steps at one instant.
    fired_at, status = fired[0].fired_at, Escalation.Status.OPEN.value
    conflict = "ON CONFLICT (lead_id, step_id) DO NOTHING RETURNING id, lead_id, step_id"
    if connection.vendor == "postgresql":
        written = pg_execute(
            f"INSERT INTO {table} ({columns}) "
            "SELECT *, %b, %b, '' FROM unnest(%b::bigint[], %b::bigint[], %b::varchar[], %b::bigint[], %b::text[], "
            f"%b::bigint[], %b::bigint[], %b::bigint[]) {conflict}",
            [fired_at, status, *(list(column) for column in zip(*rows, strict=True))],
            fetch=True,
        )
    else:
        written = []
        placeholders = ", ".join(["%s"] * len(ESCALATION_COLUMNS))
        with connection.cursor() as cursor:
            for row in rows:
                cursor.execute(
                    f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) {conflict}",
                    [*row, fired_at, status, ""],
                )
                written.extend(cursor.fetchall())
    return {(lead_id, step_id): pk for pk, lead_id, step_id in written}


def _notices_write(batch: _Batch, escalation_ids: dict[tuple[int, int], int]) -> None:
    """The reminders' and alerts' notifications of the escalations just written, as outbox rows in one
    statement; one ``notify_outbox`` task sends them all after commit."""
    notices = [
        Notice(
            escalation_id=escalation_ids[(planned.lead_id, planned.step_id)],
            lead_id=planned.lead_id,
            rep_id=planned.rep_id,
            kind=planned.kind,
            recipients=planned.recipients,
        )
        for planned in batch.notices
        if (planned.lead_id, planned.step_id) in escalation_ids
    ]
    if not notices:
        return
    with turns.handed_over():
        notification_ids = notices_record(notices, now=batch.now)
    notices_send_after_commit(notification_ids)
    batch.report.notices += len(notices)


def _events_write(batch: _Batch, escalation_ids: dict[tuple[int, int], int]) -> None:
    """``escalation.fired`` for each escalation just written, and ``sla.breached`` when it is its policy's first
    step after the due time, for webhooks (written only when a subscription listens)."""
    events = []
    # A batch fires its steps at one instant; escalations of one step with one reason share their body.
    fired_at = api_time(batch.now)
    bodies: dict[tuple[str, str], dict[str, Any]] = {}
    for fired in batch.escalations:
        if (fired.lead_id, fired.step_id) not in escalation_ids:
            continue
        body = bodies.get((fired.action, fired.reason))
        if body is None:
            body = bodies[fired.action, fired.reason] = {
                "escalation": {"action": fired.action, "reason": fired.reason, "fired_at": fired_at}
            }
        step = batch.lookups.steps.get(fired.step_id)
        if step is not None and batch.lookups.breaches_sla(step):
            events.append(Event(EventType.SLA_BREACHED, fired.lead_id, body))
        events.append(Event(EventType.ESCALATION_FIRED, fired.lead_id, body))
    events_record(events, now=batch.now)


def _ladders_update(clocks: list[_Clock]) -> None:
    """Every clock's next step and its time, in one statement for the whole batch."""
    rows_update(LeadSla, clocks, ["next_step", "next_step_at"])


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
