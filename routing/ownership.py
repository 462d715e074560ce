"""The ownership layer: the one place that writes "this lead has a new owner" and all that follows from it.

Ownership changes come from the routing worker and the release of held leads (routing/dispatch.py),
"take next" and "not mine" (routing/services.py), a manager's reassignment and a rep's departure
(routing/reassign.py), and the SLA ladder's reassign and move-to-queue steps (sla/sweep.py). Each of
them locks the rows it changes, takes the routing lock (``routing_lock``), decides where each lead goes,
and hands its decisions, as ``Handover``s, to ``owners_change``, which does everything a new owner means,
set-based (a few statements per batch whatever its size, routing/bulk.py):

1. the lead rows: owner, queue, status, and whatever else the caller changed on them;
2. the lead's open assignment ends and a new one starts (the history a manager reads);
3. the previous owner's open task closes and the new owner's task opens;
4. the round-robin pointers the decisions moved;
5. the load counters (routing.RepLoad): open leads and today's count of each rep, up and down, so that
   routing reads loads in O(reps) however many leads are open (``rep_loads``);
6. the first-touch SLA clock, through the one hook the sla app registers at start-up
   (``clock_starter_register``; routing never imports sla);
7. the notification rows, sent by a task after commit, in the caller's lane;
8. the ``lead.assigned`` and ``lead.reassigned`` events for webhooks and CRM write-back (routing/outbound.py:
   nothing is written when no receiver listens).

Leads leaving the open statuses without a new owner (disqualified, nurtured, converted, closed) go through
``leads_close``, which records who closed them, when and why (and the ``lead.closed`` events), and a lead the
rep sends back through ``lead_send_back``; both keep the counters, and both stop the clock and resolve the
lead's open escalations through the sla app's second hook (``clock_stopper_register``). A closed lead reopens through
``owners_change`` (routing.services.lead_reopen).
``loads_recount`` recounts from scratch (``manage.py loads_check``); the tests keep drift at zero.

Lock order, everywhere: first the rows being changed (leads, clocks) in id order, then the routing lock,
the order a routing batch uses, so writers never deadlock on each other.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q

from routing import lanes
from routing.bulk import reads_together, rows_insert, rows_update
from routing.models import Assignment, EventType, Lead, Notification, Queue, RepLoad, RepTask
from routing.outbound import (
    Event,
    Receivers,
    event_receivers_found,
    event_receivers_statements,
    events_record,
)
from routing.render import closed_as, lead_label
from routing.rows import sql_ids_in
from territories.coverage_version import coverage_version
from territories.models import Rep

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key: "LEADROUT" as an integer; any constant shared by all writers works.
ROUTING_LOCK_KEY = 0x4C45414452
# The columns every ownership change writes on the lead row.
OWNER_FIELDS = ("owner", "queue", "status", "updated_at")
TASK_TITLE_MAX = 300


def routing_lock() -> None:
    """Serialize ownership changes until the current transaction ends. Call inside ``transaction.atomic``."""
    statement = routing_lock_statement()
    if statement is not None:
        with connection.cursor() as cursor:
            cursor.execute(*statement)


def routing_lock_statement() -> tuple[str, list[Any]] | None:
    """``routing_lock``'s statement, for a caller that sends it first among others in one round trip
    (``routing.bulk.reads_together``, where each statement runs after the one before it: the reads after it
    see the database as the lock's holder does). None where no statement is needed: SQLite, where the project
    opens every transaction with BEGIN IMMEDIATE, which already excludes other writers."""
    if connection.vendor == "postgresql":
        return "SELECT pg_advisory_xact_lock(%s)", [ROUTING_LOCK_KEY]
    return None


def routing_lock_try() -> bool:
    """Take the routing lock if no one holds it, without waiting; True when taken (always on SQLite, see
    ``routing_lock``). For a transaction that already holds other rows an ownership writer may wait for
    (the SLA sweep's clocks): waiting for the lock there could close a cycle."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ROUTING_LOCK_KEY])
        return bool(cursor.fetchone()[0])


# --- The SLA hook -----------------------------------------------------------------------------------------


class ClockStarter(Protocol):
    """Start (or restart) the first-touch clock of each lead just given to a rep, and remember each changed
    lead's previous owner; return each started clock's due time by lead id (None: no SLA applies). ``first``
    are the ids of leads given an owner for the first time, which have no clock yet."""

    def __call__(
        self,
        *,
        leads: list[Lead],
        previous_owners: Mapping[int, int],
        now: dt.datetime,
        first: frozenset[int] = frozenset(),
    ) -> Mapping[int, dt.datetime | None]: ...


_clock_starter: ClockStarter | None = None


def clock_starter_register(starter: ClockStarter) -> None:
    """Called once by the sla app in ``AppConfig.ready``: ownership changes start clocks through it."""
    global _clock_starter
    _clock_starter = starter


class ClockStopper(Protocol):
    """Stop the untouched first-touch clocks of leads that were closed or handed back, and resolve their open
    escalations, as done by ``by_id`` with ``comment``."""

    def __call__(self, *, lead_ids: list[int], by_id: int | None, comment: str, now: dt.datetime) -> None: ...


_clock_stopper: ClockStopper | None = None


def clock_stopper_register(stopper: ClockStopper) -> None:
    """Called once by the sla app in ``AppConfig.ready``: closing a lead stops its clock through it."""
    global _clock_stopper
    _clock_stopper = stopper


# --- Loads ----------------------------------------------------------------------------------------------


def local_day(now: dt.datetime, time_zone: str) -> dt.date:
    """The date ``now`` is in ``time_zone`` (UTC when blank): the day a rep's today count belongs to."""
    return now.astimezone(ZoneInfo(time_zone or "UTC")).date()


def rep_loads(*, now: dt.datetime, rep_ids: Iterable[int] | None = None) -> tuple[dict[int, int], dict[int, int]]:
    """Each rep's open leads, and new leads since midnight in the rep's own time zone, from the counters:
    one small query, whatever the number of open leads."""
    rows = RepLoad.objects.all() if rep_ids is None else RepLoad.objects.filter(rep_id__in=list(rep_ids))
    open_leads: dict[int, int] = {}
    assigned_today: dict[int, int] = {}
    zones: dict[str, dt.date] = {}
    for rep_id, count, day, today, time_zone in rows.values_list(
        "rep_id", "open_leads", "day", "assigned_today", "rep__time_zone"
    ):
        open_leads[rep_id] = count
        if time_zone not in zones:
            zones[time_zone] = local_day(now, time_zone)
        assigned_today[rep_id] = today if day == zones[time_zone] else 0
    return open_leads, assigned_today


def rep_loads_counted(*, now: dt.datetime) -> tuple[dict[int, int], dict[int, int]]:
    """The same figures as ``rep_loads``, counted from the leads and the assignment history (slow: it
    reads every open lead). The check command compares the two."""
    open_leads = dict(
        Lead.objects.filter(status__in=Lead.OPEN_STATUSES, owner__isnull=False)
        .values("owner_id")
        .annotate(count=Count("id"))
        .values_list("owner_id", "count")
    )
    zones = {
        zone: dt.datetime.combine(local_day(now, zone), dt.time(), tzinfo=ZoneInfo(zone or "UTC"))
        for zone in set(Rep.objects.values_list("time_zone", flat=True))
    }
    assigned_today: dict[int, int] = {}
    if zones:
        since_own_midnight = Q()
        for zone, midnight in zones.items():
            since_own_midnight |= Q(rep__time_zone=zone, assigned_at__gte=midnight)
        assigned_today = dict(
            Assignment.objects.filter(since_own_midnight, assigned_at__gte=min(zones.values()))
            .values("rep_id")
            .annotate(count=Count("id"))
            .values_list("rep_id", "count")
        )
    return open_leads, assigned_today


@dataclass(frozen=True)
class LoadDrift:
    rep_id: int
    open_leads: int
    open_leads_counted: int
    assigned_today: int
    assigned_today_counted: int


def loads_recount(*, now: dt.datetime, fix: bool = False) -> list[LoadDrift]:
    """Compare every rep's counters with a count from scratch; with ``fix``, set the counters to the count.
    Takes the routing lock so nothing changes ownership meanwhile."""
    with transaction.atomic():
        routing_lock()
        kept_open, kept_today = rep_loads(now=now)
        open_leads, assigned_today = rep_loads_counted(now=now)
        drift = []
        zones = dict(Rep.objects.values_list("id", "time_zone"))
        for rep_id in sorted(zones):
            found = (kept_open.get(rep_id, 0), kept_today.get(rep_id, 0))
            counted = (open_leads.get(rep_id, 0), assigned_today.get(rep_id, 0))
            if found != counted:
                drift.append(LoadDrift(rep_id, found[0], counted[0], found[1], counted[1]))
        if fix and drift:
            _loads_set({d.rep_id: (d.open_leads_counted, d.assigned_today_counted) for d in drift}, zones, now)
    return drift


def _loads_set(values: Mapping[int, tuple[int, int]], zones: Mapping[int, str], now: dt.datetime) -> None:
    rows = [
        RepLoad(rep_id=rep_id, open_leads=count, assigned_today=today, day=local_day(now, zones[rep_id]))
        for rep_id, (count, today) in values.items()
    ]
    RepLoad.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["rep"],
        update_fields=["open_leads", "assigned_today", "day"],
    )


def _loads_add(opened: Counter[int], assigned: Counter[int], *, now: dt.datetime) -> None:
    """Add to the counters: ``opened`` open leads (negative: fewer) and ``assigned`` new leads today, per rep.
    One statement; a rep's today count starts again at zero when the rep's local day changed."""
    rep_ids = sorted(rep_id for rep_id in set(opened) | set(assigned) if opened[rep_id] or assigned[rep_id])
    if not rep_ids:
        return
    zones = rep_time_zones()
    rows = [(rep_id, opened[rep_id], local_day(now, zones.get(rep_id, "UTC")), assigned[rep_id]) for rep_id in rep_ids]
    table = RepLoad._meta.db_table
    upsert = (
        f"ON CONFLICT (rep_id) DO UPDATE SET open_leads = {table}.open_leads + excluded.open_leads, "
        f"assigned_today = CASE WHEN {table}.day = excluded.day "
        f"THEN {table}.assigned_today + excluded.assigned_today ELSE excluded.assigned_today END, "
        "day = excluded.day"
    )
    columns = f"INSERT INTO {table} (rep_id, open_leads, day, assigned_today)"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"{columns} SELECT * FROM unnest(%s::bigint[], %s::int[], %s::date[], %s::int[]) {upsert}",
                [list(column) for column in zip(*rows, strict=True)],
            )
        else:
            cursor.executemany(f"{columns} VALUES (%s, %s, %s, %s) {upsert}", [list(row) for row in rows])


_zones_by_version: tuple[str, dict[int, str]] | None = None


def rep_time_zones() -> dict[int, str]:
    """Every rep's time zone by id, kept in this process until the coverage version changes (a rep's time zone
    is part of the coverage model): inside a routing batch, which pins the version, no query at all."""
    global _zones_by_version
    version = coverage_version()
    if _zones_by_version is not None and version is not None and _zones_by_version[0] == version:
        return _zones_by_version[1]
    # No ordering: Rep's default one joins auth_user for nothing.
    zones = dict(Rep.objects.order_by().values_list("id", "time_zone"))
    if version is not None:
        _zones_by_version = (version, zones)
    return zones


def _is_open(status: str) -> bool:
    return status in Lead.OPEN_STATUSES


# --- Changing owners ------------------------------------------------------------------------------------


@dataclass
class Handover:
    """One lead's new owner (a rep, or only a queue where it waits) and why.

    ``lead`` is the row as the caller locked it: its ``owner_id`` and ``status`` are still the old ones,
    which is how the counters know what changes. ``summary`` is the one line the history row keeps.
    """

    lead: Lead
    rep_id: int | None
    queue_id: int | None
    status: str
    reason: str
    summary: str
    receipt: dict[str, Any] = field(default_factory=dict)
    assigned_by_id: int | None = None
    note: str = ""
    # The lead is being routed for the first time: it has had no owner period (no assignment to end) and
    # has no SLA clock, so neither is looked for.
    first: bool = False


@dataclass
class OwnersChanged:
    """What ``owners_change`` wrote: the new assignments with a rep (their notifications go out after
    commit)."""

    assignment_ids: list[int] = field(default_factory=list)


def owners_change(
    handovers: Sequence[Handover],
    *,
    now: dt.datetime,
    lead_fields: Sequence[str] = OWNER_FIELDS,
    unchanged: Sequence[Lead] = (),
    pointers: Mapping[int, int] | None = None,
    lane: str = Lead.Lane.LIVE,
) -> OwnersChanged:
    """Give each handover's lead its new owner, with everything that follows from it (see the module's
    docstring). Call inside ``transaction.atomic`` after ``routing_lock()``, with the leads locked.

    ``lead_fields`` are the lead columns written (the owner columns at least); ``unchanged`` are leads of
    the same batch written with the same columns but no new owner (routing's duplicates, nurtures and
    discards). ``pointers`` maps queue id to the round-robin pointer to save. Side effects: the writes above, and
    notifications enqueued after commit in ``lane``.
    """
    change = OwnersChange(now=now, lead_fields=lead_fields, lane=lane)
    change.leads_write(handovers, unchanged)
    return change.finish(pointers=pointers)


class OwnersChange:
    """``owners_change`` in two steps, for a caller that decides a batch part by part: ``leads_write`` writes
    a part's lead rows (step 1 of the module's docstring) as soon as it is decided, and ``finish`` does steps
    2–8 for the handovers written since the last ``finish``. Inside ``routing.bulk.pipelined`` on PostgreSQL,
    the database writes one part while the caller decides the next (routing/dispatch.py)."""

    def __init__(self, *, now: dt.datetime, lead_fields: Sequence[str] = OWNER_FIELDS, lane: str = Lead.Lane.LIVE):
        self.now = now
        self.lane = lane
        self.fields = list(dict.fromkeys([*OWNER_FIELDS, *lead_fields]))
        self.handovers: list[Handover] = []
        self.opened: Counter[int] = Counter()
        self.assigned: Counter[int] = Counter()
        self.previous_owners: dict[int, int] = {}
        self.had_owner: list[int] = []
        self.events: list[Event] = []
        # What ``read_ahead`` read, else read by ``finish`` when needed.
        self.channels: _Channels | None = None
        self.receivers: Receivers | None = None
        self.reserved_ids: list[int] = []
        # The assignments whose notices go out after commit (``finish``).
        self.notified: list[int] | None = None

    def read_ahead(
        self,
        *,
        rep_ids: Iterable[int],
        queue_ids: Iterable[int],
        assignments: int,
        before: Sequence[tuple[str, Sequence[Any]]] = (),
    ) -> list[list[tuple[Any, ...]]]:
        """Read now what ``finish`` reads between its writes, so that inside ``routing.bulk.pipelined`` it waits
        for nothing until the block ends: the notice channels of the reps and queues that may get leads, the
        event receivers, and on PostgreSQL ``assignments`` ids for the new assignments (ids left unused are
        numbers the table skips). ``before``: the caller's statements, run first in the same round trip (the
        routing lock, its own reads); their rows are returned."""
        # Asked together: on PostgreSQL in one round trip (``reads_together``), which a live lead's small batch
        # waited for three or four times in a row.
        reps, queues = set(rep_ids), set(queue_ids)
        types: set[str] = {EventType.LEAD_ASSIGNED, EventType.LEAD_REASSIGNED}
        channels_statement = _notice_channels_statement(reps, queues)
        statements = event_receivers_statements(types)
        receivers_count = len(statements)
        if channels_statement is not None:
            statements.append(channels_statement)
        reserve = connection.vendor == "postgresql" and assignments > 0
        if reserve:
            meta = Assignment._meta
            # The sequence is looked up once, not once an id: per id, that lookup cost five times the
            # ``nextval`` itself (3.2 ms for 1,000 ids against 0.8).
            statements.append(
                (
                    "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, %s)::regclass AS seq) "
                    "SELECT nextval(s.seq) FROM s, generate_series(1, %s)",
                    [meta.db_table, meta.pk.column, assignments],
                )
            )
        found = reads_together([*before, *statements])
        theirs, found = found[: len(before)], found[len(before) :]
        self.receivers = event_receivers_found(types, found[:receivers_count])
        self.channels = _notice_channels_found(
            reps, queues, found[receivers_count] if channels_statement is not None else []
        )
        if reserve:
            self.reserved_ids = [row[0] for row in found[-1]]
        return theirs

    def leads_write(self, handovers: Sequence[Handover], unchanged: Sequence[Lead] = ()) -> None:
        """Step 1 for these handovers, and the same columns of ``unchanged`` (leads without a new owner)."""
        now = self.now
        # Read ahead, the receivers say whether anyone wants owner events; if nobody does, none is built.
        receivers = self.receivers
        events = receivers is None or any(map(receivers.want, (EventType.LEAD_ASSIGNED, EventType.LEAD_REASSIGNED)))
        for handover in handovers:
            lead = handover.lead
            if events:
                self.events.extend(_owner_events(handover))
            if lead.owner_id is not None:
                self.had_owner.append(lead.pk)
                if _is_open(lead.status):
                    self.opened[lead.owner_id] -= 1
                if lead.owner_id != handover.rep_id:
                    self.previous_owners[lead.pk] = lead.owner_id
            if handover.rep_id is not None:
                self.assigned[handover.rep_id] += 1
                if _is_open(handover.status):
                    self.opened[handover.rep_id] += 1
            if lead._state.fields_cache:  # A related row cached (owner, queue): the keys' descriptors clear it.
                lead.owner_id = handover.rep_id
                lead.queue_id = handover.queue_id
            else:  # Nothing to clear (a routing batch's leads): straight into the instance's dict.
                lead.__dict__.update(owner_id=handover.rep_id, queue_id=handover.queue_id)
            lead.status = handover.status
            lead.updated_at = now
        rows_update(Lead, [*[handover.lead for handover in handovers], *unchanged], self.fields)
        self.handovers.extend(handovers)

    def finish(self, *, pointers: Mapping[int, int] | None = None) -> OwnersChanged:
        """Steps 2–8 for the handovers written since the last ``finish``; ``pointers`` as ``owners_change``
        takes them. A caller writing parts may finish each one: inside ``pipelined`` a part's history, tasks and
        clocks are then written while later parts are decided."""
        result = OwnersChanged()
        now, handovers, previous_owners, had_owner = self.now, self.handovers, self.previous_owners, self.had_owner
        opened, assigned, events = self.opened, self.assigned, self.events
        self.handovers, self.previous_owners, self.had_owner, self.events = [], {}, [], []
        self.opened, self.assigned = Counter(), Counter()
        if pointers:
            _pointers_save(pointers)
        if not handovers:
            return result
        # The current owner period (a rep's, or a queue's while the lead was held) ends where the new one
        # begins, and the old owner's task is done.
        owned_before = [h.lead.pk for h in handovers if not h.first]
        if owned_before:
            Assignment.objects.filter(lead_id__in=owned_before, ended_at__isnull=True).update(ended_at=now)
        if had_owner:
            RepTask.objects.filter(lead_id__in=had_owner, done_at__isnull=True).update(done_at=now)

        assignments = [
            (
                handover.lead.id,
                handover.rep_id,
                handover.queue_id,
                handover.reason,
                handover.assigned_by_id,
                handover.note,
                {"summary": handover.summary, **handover.receipt},
                now,
            )
            for handover in handovers
        ]
        names = ["lead", "rep", "queue", "reason", "assigned_by", "note", "receipt", "assigned_at"]
        if len(self.reserved_ids) >= len(assignments):
            # Ids read ahead: nothing to read back, so the insert does not wait for the statements before it.
            assignment_ids = self.reserved_ids[: len(assignments)]
            self.reserved_ids = self.reserved_ids[len(assignments) :]
            rows_insert(
                Assignment, [(pk, *row) for pk, row in zip(assignment_ids, assignments, strict=True)], ["id", *names]
            )
        else:
            assignment_ids = rows_insert(Assignment, assignments, names, returning_pk=True)
        _loads_add(opened, assigned, now=now)

        with_rep = [(handover, pk) for handover, pk in zip(handovers, assignment_ids, strict=True) if handover.rep_id]
        due_at: Mapping[int, dt.datetime | None] = {}
        if _clock_starter is not None and (with_rep or previous_owners):
            due_at = dict(
                _clock_starter(
                    leads=[handover.lead for handover, _ in with_rep],
                    previous_owners=previous_owners,
                    now=now,
                    first=frozenset(handover.lead.id for handover, _ in with_rep if handover.first),
                )
            )
        if with_rep:
            channels = self.channels
            wanted_reps = {handover.rep_id for handover, _ in with_rep if handover.rep_id is not None}
            wanted_queues = {handover.queue_id for handover, _ in with_rep if handover.queue_id is not None}
            if channels is None or not (
                wanted_reps <= channels.reps.keys() and wanted_queues <= channels.queues.keys()
            ):
                channels = _notice_channels(wanted_reps, wanted_queues)
            _tasks_and_notifications(with_rep, channels=channels, due_at=due_at, now=now)
            result.assignment_ids = [pk for _, pk in with_rep]
            if self.notified is None:
                # One sending for the whole change, whatever the number of parts: it reads the list at commit.
                self.notified = []
                transaction.on_commit(_notices_sender(self.notified, lane=self.lane))
            self.notified.extend(result.assignment_ids)
        events_record(events, now=now, receivers=self.receivers)
        return result


def _owner_events(handover: Handover) -> list[Event]:
    """The event a handover makes, read before the lead takes its new owner: ``lead.assigned`` when a rep gets
    a lead nobody else owned, ``lead.reassigned`` when an owner's lead goes to another rep or back to a queue."""
    lead = handover.lead
    previous = lead.owner_id
    assignment = {"reason": handover.reason, "note": handover.note or None}
    if previous is not None and previous != handover.rep_id:
        return [
            Event(EventType.LEAD_REASSIGNED, lead.pk, {"assignment": assignment}, previous_owner_id=previous, lead=lead)
        ]
    if handover.rep_id is not None:
        return [Event(EventType.LEAD_ASSIGNED, lead.pk, {"assignment": assignment}, lead=lead)]
    return []


def _pointers_save(pointers: Mapping[int, int]) -> None:
    """Persist the round-robin pointers a batch moved (under the routing lock, so nobody else moved them)."""
    queues = [Queue(pk=queue_id, rr_pointer=pointer) for queue_id, pointer in sorted(pointers.items())]
    rows_update(Queue, queues, ["rr_pointer"])


@dataclass
class _Channels:
    """Where reps and queues hear of new leads: each rep's user's e-mail and Slack webhook, each queue's
    Slack webhook (blank: none)."""

    reps: dict[int, tuple[str, str]]
    queues: dict[int, str]


def _notice_channels(rep_ids: set[int], queue_ids: set[int]) -> _Channels:
    """The channels of these reps and queues (reps and queues that do not exist have none)."""
    statement = _notice_channels_statement(rep_ids, queue_ids)
    [rows] = reads_together([statement]) if statement is not None else [[]]
    return _notice_channels_found(rep_ids, queue_ids, rows)


def _notice_channels_statement(rep_ids: set[int], queue_ids: set[int]) -> tuple[str, list[int]] | None:
    """What ``_notice_channels`` asks (None: nothing to ask). One plain statement: every batch asks, and
    building and compiling the two querysets it replaced cost a small batch more than its decisions (about
    2 ms of a 3-lead batch's 15)."""
    parts: list[str] = []
    params: list[int] = []
    quote = connection.ops.quote_name
    if rep_ids:
        rep_user: Any = Rep._meta.get_field("user")
        rep, user = Rep._meta, rep_user.related_model._meta
        user_id = quote(rep_user.column)
        reps_in, reps = sql_ids_in(f"r.{quote(rep.pk.column)}", sorted(rep_ids))
        parts.append(
            f"SELECT 'r', r.{quote(rep.pk.column)}, u.{quote(user.get_field('email').column)}, "
            f"r.{quote(rep.get_field('slack_webhook_url').column)} FROM {quote(rep.db_table)} r "
            f"LEFT JOIN {quote(user.db_table)} u ON u.{quote(user.pk.column)} = r.{user_id} "
            f"WHERE {reps_in}"
        )
        params.extend(reps)
    if queue_ids:
        queue = Queue._meta
        queues_in, queues = sql_ids_in(quote(queue.pk.column), sorted(queue_ids))
        parts.append(
            f"SELECT 'q', {quote(queue.pk.column)}, NULL, {quote(queue.get_field('slack_webhook_url').column)} "
            f"FROM {quote(queue.db_table)} WHERE {queues_in}"
        )
        params.extend(queues)
    return (" UNION ALL ".join(parts), params) if parts else None


def _notice_channels_found(rep_ids: set[int], queue_ids: set[int], rows: list[tuple[Any, ...]]) -> _Channels:
    """``_notice_channels`` from the rows of ``_notice_channels_statement``."""
    found = _Channels(reps={}, queues={})
    for kind, pk, email, hook in rows:
        if kind == "r":
            found.reps[pk] = (email or "", hook or "")
        else:
            found.queues[pk] = hook or ""
    # Asked for and not found: no channel, so that the same question is not asked again.
    for rep_id in rep_ids - found.reps.keys():
        found.reps[rep_id] = ("", "")
    for queue_id in queue_ids - found.queues.keys():
        found.queues[queue_id] = ""
    return found


def _tasks_and_notifications(
    with_rep: list[tuple[Handover, int]],
    *,
    channels: _Channels,
    due_at: Mapping[int, dt.datetime | None],
    now: dt.datetime,
) -> None:
    """The new owner's task ("Follow up: …", due when the SLA says, else after the default first-touch
    minutes) and one notification per channel the rep has (``channels``): e-mail when their user has an
    address, Slack when the rep or the queue has a webhook."""
    reps, queue_hooks = channels.reps, channels.queues
    default_due = now + dt.timedelta(minutes=settings.LEADROUTER_FIRST_TOUCH_MINUTES)
    tasks = []
    notices = []
    # The channels of each rep and queue met, worked out once: a part's leads go to a few of each.
    kinds_by_owner: dict[tuple[int, int | None], list[str]] = {}
    for handover, assignment_id in with_rep:
        lead, rep_id = handover.lead, handover.rep_id
        assert rep_id is not None
        lead_id = lead.id
        tasks.append((assignment_id, lead_id, rep_id, follow_up_title(lead), due_at.get(lead_id) or default_due, now))
        owner = (rep_id, handover.queue_id)
        kinds = kinds_by_owner.get(owner)
        if kinds is None:
            email, rep_hook = reps.get(rep_id, ("", ""))
            queue_hook = queue_hooks.get(handover.queue_id, "") if handover.queue_id else ""
            kinds = kinds_by_owner[owner] = assignment_notice_kinds(
                rep_email=email, rep_webhook=rep_hook, queue_webhook=queue_hook
            )
        for kind in kinds:
            notices.append((assignment_id, lead_id, rep_id, kind))
    rows_insert(RepTask, tasks, ["assignment", "lead", "rep", "title", "due_at", "created_at"], on_conflict_ignore=True)
    rows_insert(
        Notification,
        [(*notice, Notification.Status.PENDING.value, 0, "", now) for notice in notices],
        ["assignment", "lead", "rep", "kind", "status", "attempts", "error", "created_at"],
        on_conflict_ignore=True,
    )


def assignment_notice_kinds(*, rep_email: str, rep_webhook: str, queue_webhook: str) -> list[str]:
    """The channels a rep hears of a new lead on: e-mail when their user has an address, Slack (one notice,
    posted to each URL) when the rep or the queue has a webhook."""
    kinds = [Notification.Kind.EMAIL.value] if rep_email else []
    if rep_webhook or queue_webhook:
        kinds.append(Notification.Kind.SLACK.value)
    return kinds


def follow_up_title(lead: Lead) -> str:
    """The task's title: "Follow up: Jane Doe (Acme)"."""
    return f"Follow up: {lead_label(lead)}"[:TASK_TITLE_MAX]


def notify_after_commit(assignment_ids: list[int], *, lane: str = Lead.Lane.LIVE) -> None:
    """Enqueue ``notify_assignments`` once the transaction commits: in the notify lane for live work, in
    the bulk lane for bulk work (``routing.lanes.notify_assignments_send``)."""
    if assignment_ids:
        transaction.on_commit(_notices_sender(list(assignment_ids), lane=lane))


def _notices_sender(ids: list[int], *, lane: str) -> Callable[[], None]:
    """What enqueues the notices of ``ids`` (as they are when it runs), 500 assignments a message."""

    def send() -> None:
        try:
            for start in range(0, len(ids), 500):
                lanes.notify_assignments_send(ids[start : start + 500], lane=lane)
        except Exception:  # The broker is down: the notifications stay pending for the retry sweep.
            logger.exception("Could not enqueue notifications for %d assignments.", len(ids))

    return send


# --- Leaving the open statuses -----------------------------------------------------------------------------


def leads_close(
    leads: Sequence[Lead],
    *,
    to: str,
    now: dt.datetime,
    by_id: int | None = None,
    reason: str = "",
    extra_fields: Sequence[str] = (),
) -> None:
    """Leads leave the open statuses without a new owner (disqualified, nurtured, converted, closed): each
    lead records who closed it (``by_id``), when and why (``reason``); the owner's open task is done, their
    open-lead counter goes down, the untouched clock stops and open escalations are resolved with the reason
    (the sla app's hook). ``leads`` are locked rows whose ``status`` is still the old one; ``extra_fields``
    are other lead columns the caller changed. Call in a transaction."""
    opened: Counter[int] = Counter()
    closing = not _is_open(to)
    for lead in leads:
        if lead.owner_id is not None and _is_open(lead.status) and closing:
            opened[lead.owner_id] -= 1
        lead.status = to
        lead.updated_at = now
        if closing:
            lead.closed_at, lead.closed_by_id, lead.close_reason = now, by_id, reason
    close_fields = ["closed_at", "closed_by", "close_reason"] if closing else []
    rows_update(Lead, list(leads), list(dict.fromkeys(["status", "updated_at", *close_fields, *extra_fields])))
    owned = [lead.pk for lead in leads if lead.owner_id is not None]
    if owned and closing:
        RepTask.objects.filter(lead_id__in=owned, done_at__isnull=True).update(done_at=now)
    _loads_add(opened, Counter(), now=now)
    if closing and leads and _clock_stopper is not None:
        comment = f"Lead {closed_as(to)}: {reason}" if reason else f"Lead {closed_as(to)}."
        _clock_stopper(lead_ids=[lead.pk for lead in leads], by_id=by_id, comment=comment, now=now)
    if closing:
        events_record([Event(EventType.LEAD_CLOSED, lead.pk, lead=lead) for lead in leads], now=now)


def lead_send_back(
    lead: Lead, *, now: dt.datetime, by_id: int | None, reason: str, sent_back: dict[str, Any], receipt: dict[str, Any]
) -> None:
    """The owner says the lead is not theirs: it goes back to ``received`` with no owner, to be routed
    again. The owner's assignment ends with reason ``not_mine`` and ``reason`` as its note, their task is
    done, their counter goes down, the clock remembers them, stops until the next owner's starts, and the
    lead's open escalations are resolved with the reason. Call under the routing lock with the
    lead locked; the caller enqueues routing after commit."""
    owner_id = lead.owner_id
    assert owner_id is not None
    for assignment in Assignment.objects.filter(lead_id=lead.pk, rep_id=owner_id, ended_at__isnull=True):
        assignment.ended_at = now
        assignment.reason = Assignment.Reason.NOT_MINE
        assignment.note = reason
        assignment.assigned_by_id = by_id
        assignment.receipt = {**assignment.receipt, "sent_back": sent_back}
        assignment.save(update_fields=["ended_at", "reason", "note", "assigned_by", "receipt"])
    opened: Counter[int] = Counter({owner_id: -1 if _is_open(lead.status) else 0})
    lead.status, lead.owner_id, lead.receipt, lead.updated_at = Lead.Status.RECEIVED, None, receipt, now
    rows_update(Lead, [lead], ["status", "owner", "receipt", "updated_at"])
    RepTask.objects.filter(lead_id=lead.pk, rep_id=owner_id, done_at__isnull=True).update(done_at=now)
    _loads_add(opened, Counter(), now=now)
    if _clock_starter is not None:
        _clock_starter(leads=[], previous_owners={lead.pk: owner_id}, now=now)
    if _clock_stopper is not None:
        _clock_stopper(lead_ids=[lead.pk], by_id=by_id, comment=f"Handed back as not theirs: {reason}", now=now)
