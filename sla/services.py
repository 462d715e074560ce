"""Writes for SLAs: starting a lead's first-touch clock, and logging touches that stop it.

Also the small pure-ish reads every caller of these needs (which policy and which
calendar apply to a lead, and the live state of a clock for display).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

import psycopg
from django.conf import settings
from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from routing.bulk import ids_in, pg_execute, typed_array
from routing.conditions import ConditionError, parse_condition
from routing.engine.conditions import evaluate
from routing.engine.facts import AccountFacts, ConditionGroup, LeadFacts
from routing.models import ApiKey, Assignment, EventType, Lead, Queue, RepTask
from routing.outbound import Event, api_time, events_record
from routing.pipeline import LEAD_FACT_FIELDS
from routing.rows import instances_build
from routing.selectors import account_facts_of
from sla import ladder
from sla.calendar import CalendarSpec, business_time_between
from sla.models import BusinessCalendar, EscalationStep, LeadSla, SlaPolicy, Touch
from territories.coverage_version import coverage_version
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


# --- Batches -----------------------------------------------------------------------------------------


def rows_of(queryset: QuerySet[Any, Any]) -> list[tuple[Any, ...]]:
    """The rows of a ``values_list`` queryset of plain columns (numbers, text, times), as tuples. On
    PostgreSQL its SQL runs with binary results, which psycopg reads in C: for a thousand rows with times
    that costs a fraction of Django's reading them as text."""
    if connection.vendor != "postgresql":
        return list(queryset)
    sql, params = queryset.query.sql_with_params()
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()


# --- Starting clocks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SlaSetup:
    version: str
    policies: list[SlaPolicy]
    policy_by_id: dict[int, SlaPolicy]
    calendar_index: _CalendarIndex
    rep_teams: dict[int, int | None]  # every rep's team, for the calendar a clock runs on
    # Each calendar's spec and each policy's ladder, worked out once per setup rather than once per clock
    # start of every batch (calendars and policies here never change: an edit brings a new setup).
    specs: dict[int, CalendarSpec] = field(default_factory=dict)
    ladders: dict[int, list[ladder.StepInfo]] = field(default_factory=dict)

    def spec(self, calendar: BusinessCalendar | None) -> CalendarSpec:
        if calendar is None:
            return ALWAYS_OPEN
        if calendar.pk not in self.specs:
            self.specs[calendar.pk] = calendar_spec(calendar)
        return self.specs[calendar.pk]

    def steps_of(self, policy: SlaPolicy) -> list[ladder.StepInfo]:
        if policy.pk not in self.ladders:
            self.ladders[policy.pk] = _step_infos(policy)
        return self.ladders[policy.pk]


_setup: _SlaSetup | None = None


def _sla_setup() -> _SlaSetup:
    """The SLA policies (in order, with their ladders), the business calendars (with hours and closed
    dates) and the reps' teams, kept in this process until the coverage version changes: policies, calendars
    and reps are coverage models (sla/apps.py, territories/apps.py), so an edit in admin or an import applies
    to the next batch, and a batch that changes nothing pays one indexed query for them instead of six (none
    in a routing batch, which pins the version). Without a version row (a database
    just emptied) they are read every time."""
    global _setup
    version = coverage_version()
    if _setup is not None and version is not None and _setup.version == version:
        return _setup
    policies = list(
        SlaPolicy.objects.prefetch_related(
            Prefetch("steps", queryset=EscalationStep.objects.order_by("position"))
        ).order_by("position", "id")
    )
    calendars = list(BusinessCalendar.objects.prefetch_related("hours", "closed_dates"))
    setup = _SlaSetup(
        version=version or "",
        policies=policies,
        policy_by_id={policy.pk: policy for policy in policies},
        calendar_index=_CalendarIndex.of(calendars),
        rep_teams=dict(Rep.objects.order_by().values_list("id", "team_id")),
    )
    if version is not None:
        _setup = setup
    return setup


def sla_clocks_start(*, leads: list[Lead], now: datetime, first: frozenset[int] = frozenset()) -> list[LeadSla]:
    """Start (or, on reassignment, restart) the first-touch clock of each lead just given to a rep. ``first``
    are the ids of leads given an owner for the first time: they have no clock, so none is looked for.

    Called inside the routing transaction for a whole batch. Its cost is a few queries and one write whatever
    the number of leads, plus a few microseconds of Python per lead:

    1. Read once: the leads' existing clocks and their owners' teams, and only when an active policy needs
       them, the territory tree and the columns of the leads' accounts that the policies' conditions read.
       The policies with their steps and the calendars with hours and closed dates come from
       ``_sla_setup``, kept until the coverage changes.
    2. The policy: for a lead that already has a clock (a reassignment), the clock's own policy; else the one
       ``sla_policy_for`` chooses, each of its tests answered once per distinct input (``_PolicyChoice``).
       No policy, or a "no SLA" one, gives a clock in state ``none`` with no due time.
    3. The calendar: the new owner's, else the owner's team's, else the lead's queue's, else the default
       (``sla_calendar_for``).
    4. The due time (the policy's target in business minutes after ``now``), the ladder's first step and
       when it fires, state ``on_track``: the same for every clock of one policy and one calendar, since the
       batch shares ``now``, so worked out once per (policy, calendar).
    5. One statement writes every clock: ``INSERT … ON CONFLICT (lead_id) DO UPDATE`` starts the new ones
       and restarts the others, which keep ``reassignments`` and ``previous_owner_ids`` (the caller
       maintains them).

    A lead already touched never gets a new clock: its clock is returned unchanged. Side effects: inserts
    and updates LeadSla rows. Returns the clocks in the order of ``leads``, with their ids; their related rows
    (lead, policy, calendar, next step) are not attached and load when read. (``sla_clocks_start_due`` does
    the same and returns only the due times.)
    """
    if not leads:
        return []
    written, start_list, existing = _clocks_plan(leads, now=now, first=first)
    ids = _clocks_write(written, start_list, now=now)
    rows = []
    for lead, index in written:
        start = start_list[index]
        previous = existing.get(lead.pk)
        rows.append(
            (
                ids.get(lead.pk),
                lead.pk,
                start.policy_id,
                start.calendar_id,
                start.state,
                now,
                start.due_at,
                None,
                start.next_step_id,
                start.next_step_at,
                previous.reassignments if previous is not None else 0,
                previous.previous_owner_ids if previous is not None else [],
                None,
                None,
                None,
            )
        )
    started = {clock.lead_id: clock for clock in instances_build(LeadSla, CLOCK_ATTNAMES, rows, DEFAULT_DB_ALIAS)}
    return [started.get(lead.pk) or existing[lead.pk] for lead in leads]


def sla_clocks_start_due(
    *, leads: list[Lead], now: datetime, first: frozenset[int] = frozenset()
) -> dict[int, datetime | None]:
    """``sla_clocks_start`` for the ownership layer, which needs only each lead's due time (by lead id): the
    write reads nothing back (on PostgreSQL inside ``routing.bulk.pipelined`` it does not wait for the
    database), and no clock instance is built."""
    if not leads:
        return {}
    written, start_list, existing = _clocks_plan(leads, now=now, first=first)
    _clocks_write(written, start_list, now=now, returning=False)
    due = {lead_id: clock.due_at for lead_id, clock in existing.items()}
    due.update((lead.id, start_list[index].due_at) for lead, index in written)
    return {lead.id: due[lead.id] for lead in leads}


_Plan = tuple[list[tuple[Lead, int]], list["_Start"], dict[int, LeadSla]]


def _clocks_plan(leads: list[Lead], *, now: datetime, first: frozenset[int]) -> _Plan:
    """Steps 1–4 of ``sla_clocks_start``: the leads whose clocks are written, each with the index of its start
    in the list of distinct starts, and the leads' existing clocks by lead id."""
    setup = _sla_setup()
    policies, policy_by_id, calendar_index = setup.policies, setup.policy_by_id, setup.calendar_index
    owned_before = [lead.id for lead in leads if lead.id not in first]
    existing = (
        {clock.lead_id: clock for clock in LeadSla.objects.filter(lead_id__in=ids_in(owned_before))}
        if owned_before
        else {}
    )
    choice = _PolicyChoice(policies, [lead for lead in leads if lead.id not in existing])
    teams = setup.rep_teams
    # Each distinct start (policy, calendar) once, and for each lead to write the index of its start.
    starts: dict[tuple[int | None, int | None], int] = {}
    start_list: list[_Start] = []
    written: list[tuple[Lead, int]] = []
    # The start's index for each policy, owner and queue met: the calendar depends on those two alone.
    index_by_place: dict[tuple[int | None, int | None, int | None], int] = {}
    for lead in leads:
        clock = existing.get(lead.id) if existing else None
        if clock is not None and clock.touched_at is not None:
            continue
        if clock is None:
            policy = choice.policy_for(lead)
        else:
            policy = policy_by_id.get(clock.policy_id) if clock.policy_id is not None else None
        owner_id, queue_id = lead.owner_id, lead.queue_id
        place = (policy.id if policy is not None else None, owner_id, queue_id)
        index = index_by_place.get(place)
        if index is None:
            calendar = calendar_index.pick(
                rep_id=owner_id, team_id=teams.get(owner_id) if owner_id else None, queue_id=queue_id
            )
            key = (place[0], calendar.id if calendar is not None else None)
            index = starts.get(key)
            if index is None:
                index = starts[key] = len(start_list)
                start_list.append(_Start.of(policy, calendar, now, setup))
            index_by_place[place] = index
        written.append((lead, index))
    return written, start_list, existing


# Every LeadSla column in the model's order, as ``from_db`` takes a row (checked when the module loads).
CLOCK_ATTNAMES = (
    "id",
    "lead_id",
    "policy_id",
    "calendar_id",
    "state",
    "started_at",
    "due_at",
    "touched_at",
    "next_step_id",
    "next_step_at",
    "reassignments",
    "previous_owner_ids",
    "breach_business_seconds",
    "speed_wall_seconds",
    "speed_business_seconds",
)
assert tuple(field.attname for field in LeadSla._meta.concrete_fields) == CLOCK_ATTNAMES, "LeadSla's columns changed"

# The write: a new clock starts; a restarted one keeps its reassignments and previous owners, and forgets its
# touch, breach and speed (there were none: a touched clock is never restarted).
CLOCK_UPSERT = (
    f"INSERT INTO {LeadSla._meta.db_table} (lead_id, policy_id, calendar_id, state, due_at, next_step_id, "
    "next_step_at, started_at, touched_at, reassignments, previous_owner_ids, breach_business_seconds, "
    "speed_wall_seconds, speed_business_seconds) {rows} "
    "ON CONFLICT (lead_id) DO UPDATE SET policy_id = excluded.policy_id, calendar_id = excluded.calendar_id, "
    "state = excluded.state, due_at = excluded.due_at, next_step_id = excluded.next_step_id, "
    "next_step_at = excluded.next_step_at, started_at = excluded.started_at, touched_at = NULL, "
    "breach_business_seconds = NULL, speed_wall_seconds = NULL, speed_business_seconds = NULL"
    " RETURNING id, lead_id"
)
CLOCK_RETURNING = " RETURNING id, lead_id"
# What every clock starts with besides its start: untouched, never reassigned, no breach or speed yet.
CLOCK_FRESH = "NULL, 0, '[]', NULL, NULL, NULL"
# PostgreSQL: each lead travels with the number of its start, and the few starts once; the join puts them
# together (unnest … WITH ORDINALITY numbers the starts from 1).
CLOCK_ROWS_POSTGRES = (
    "SELECT v.lead_id, s.policy_id, s.calendar_id, s.state, s.due_at, s.next_step_id, s.next_step_at, "
    f"%b::timestamptz, {CLOCK_FRESH} FROM unnest(%b::bigint[], %b::int[]) AS v(lead_id, start) "
    "JOIN unnest(%b::bigint[], %b::bigint[], %b::varchar[], %b::timestamptz[], %b::bigint[], %b::timestamptz[]) "
    "WITH ORDINALITY AS s(policy_id, calendar_id, state, due_at, next_step_id, next_step_at, n) ON s.n = v.start"
)
# SQLite has no arrays: rows travel as VALUES lists, this many per statement (well under its parameter limit).
SQLITE_CLOCK_ROWS = 200


def _clocks_write(
    written: list[tuple[Lead, int]], starts: list[_Start], *, now: datetime, returning: bool = True
) -> dict[int, int]:
    """Write the clocks of ``written`` (each lead with the index of its start in ``starts``) in one statement;
    return each clock's id by lead id (on PostgreSQL, none unless ``returning``)."""
    if not written:
        return {}
    if connection.vendor == "postgresql":
        upsert = CLOCK_UPSERT.format(rows=CLOCK_ROWS_POSTGRES)
        found = pg_execute(
            upsert if returning else upsert.removesuffix(CLOCK_RETURNING),
            [
                now,
                typed_array("bigint", [lead.id for lead, _ in written]),
                typed_array("integer", [index + 1 for _, index in written]),
                typed_array("bigint", [start.policy_id for start in starts]),
                typed_array("bigint", [start.calendar_id for start in starts]),
                typed_array("varchar", [start.state for start in starts]),
                typed_array("timestamp with time zone", [start.due_at for start in starts]),
                typed_array("bigint", [start.next_step_id for start in starts]),
                typed_array("timestamp with time zone", [start.next_step_at for start in starts]),
            ],
            fetch=returning,
        )
        return {lead_id: pk for pk, lead_id in found}
    with connection.cursor() as cursor:
        # SQLite: datetimes prepared as the ORM stores them.
        prepare = LeadSla._meta.get_field("due_at").get_db_prep_save
        rows = [
            [
                s.policy_id,
                s.calendar_id,
                s.state,
                prepare(s.due_at, connection),
                s.next_step_id,
                prepare(s.next_step_at, connection),
                prepare(now, connection),
            ]
            for s in starts
        ]
        ids: dict[int, int] = {}
        for offset in range(0, len(written), SQLITE_CLOCK_ROWS):
            chunk = written[offset : offset + SQLITE_CLOCK_ROWS]
            values = ", ".join([f"(%s, %s, %s, %s, %s, %s, %s, %s, {CLOCK_FRESH})"] * len(chunk))
            params: list[Any] = []
            for lead, index in chunk:
                params += [lead.pk, *rows[index]]
            cursor.execute(CLOCK_UPSERT.format(rows=f"VALUES {values}"), params)
            ids.update((lead_id, pk) for pk, lead_id in cursor.fetchall())
        return ids


@dataclass(frozen=True)
class _Start:
    """How a clock starts under one policy in one calendar at one instant: the same for every clock of a
    batch with that policy and calendar."""

    policy_id: int | None
    calendar_id: int | None
    state: str
    due_at: datetime | None = None
    next_step_id: int | None = None
    next_step_at: datetime | None = None

    @classmethod
    def of(cls, policy: SlaPolicy | None, calendar: BusinessCalendar | None, now: datetime, setup: _SlaSetup) -> _Start:
        ids = (policy.pk if policy is not None else None, calendar.pk if calendar is not None else None)
        if policy is None or policy.no_sla or not policy.first_touch_minutes:
            return cls(*ids, state=LeadSla.State.NONE)
        spec = setup.spec(calendar)
        target = policy.first_touch_minutes
        due = ladder.due_at(spec=spec, started_at=now, target_minutes=target)
        first = ladder.next_step(
            setup.steps_of(policy), after_position=None, spec=spec, started_at=now, due=due, target_minutes=target
        )
        if first is None:
            return cls(*ids, state=LeadSla.State.ON_TRACK, due_at=due)
        step, fires_at = first
        return cls(*ids, state=LeadSla.State.ON_TRACK, due_at=due, next_step_id=step.id, next_step_at=fires_at)


# The account column behind each field a condition can read as ``account.<field>``.
ACCOUNT_COLUMNS = {
    "id": "id",
    "name": "name",
    "tier": "tier",
    "is_customer": "is_customer",
    "owner_rep_id": "owner_id",
    "territory_id": "territory_id",
}


class _PolicyChoice:
    """``sla_policy_for`` over a batch of leads, with each test answered once per distinct input.

    The same policies in the same order and the same tests: the lead's queue, its territory (within the
    policy's, answered once per pair of territories) and the condition. A condition reads a few fields, so
    its answer depends on their values alone: it is evaluated once per policy and distinct values, on facts
    holding those values (the account columns it reads come in one query for the batch).
    """

    def __init__(self, policies: Sequence[SlaPolicy], leads: Sequence[Lead]) -> None:
        active = [policy for policy in policies if policy.active]
        self.default = next((policy for policy in active if policy.is_default), None)
        self.candidates: list[tuple[SlaPolicy, ConditionGroup | None, tuple[str, ...]]] = []
        for policy in sorted((p for p in active if not p.is_default), key=lambda p: (p.position, p.pk)):
            try:
                condition = parse_condition(policy.condition)
            except ConditionError:
                logger.error("SLA policy %s has an invalid condition and is left out.", policy.name)
                continue
            self.candidates.append((policy, condition, _fields_read(condition) if condition is not None else ()))
        needs_tree = bool(leads) and any(policy.territory_id is not None for policy, _, _ in self.candidates)
        self.parents = territory_parents() if needs_tree else {}
        read = sorted({name.removeprefix("account.") for _, _, names in self.candidates for name in names})
        account_fields = [name for name in read if name in ACCOUNT_COLUMNS and name != "id"]
        account_ids = {lead.account_id for lead in leads if lead.account_id is not None}
        self.accounts: dict[int, dict[str, Any]] = {}
        if account_fields and account_ids:
            columns = [ACCOUNT_COLUMNS[name] for name in account_fields]
            for pk, *values in Account.objects.filter(pk__in=ids_in(list(account_ids))).values_list("pk", *columns):
                self.accounts[pk] = dict(zip(account_fields, values, strict=True))
        self.within: dict[tuple[int | None, int], bool] = {}
        self.held: dict[tuple[int, tuple[Any, ...]], bool] = {}
        # The answer depends on the lead's queue and territory (where a policy is limited to one) and on the
        # values the conditions read, the account's included: remembered per distinct set of them. A batch's
        # thousand leads come to a few dozen such sets, where their accounts alone were hundreds.
        read_by_any = sorted({name for _, _, names in self.candidates for name in names})
        plain = [name for name in read_by_any if not name.startswith("account.")]
        self._values_key = attrgetter(*plain) if plain else None
        self._account_names = [name for name in read_by_any if name.startswith("account.")]
        self._by_queue = any(policy.queue_id is not None for policy, _, _ in self.candidates)
        self._by_territory = any(policy.territory_id is not None for policy, _, _ in self.candidates)
        self.chosen: dict[tuple[Any, ...], SlaPolicy | None] = {}

    def policy_for(self, lead: Lead) -> SlaPolicy | None:
        key = (
            lead.queue_id if self._by_queue else None,
            lead.territory_id if self._by_territory else None,
            self._values_key(lead) if self._values_key is not None else None,
            tuple(self._value(lead, name) for name in self._account_names) if self._account_names else None,
        )
        try:
            return self.chosen[key]
        except KeyError:
            policy = self.chosen[key] = self._policy_for(lead)
            return policy
        except TypeError:  # A value that cannot be a key: answered without remembering.
            return self._policy_for(lead)

    def _policy_for(self, lead: Lead) -> SlaPolicy | None:
        for policy, condition, names in self.candidates:
            if policy.queue_id is not None and policy.queue_id != lead.queue_id:
                continue
            if policy.territory_id is not None and not self._within(lead.territory_id, policy.territory_id):
                continue
            if condition is not None and not self._holds(policy, condition, names, lead):
                continue
            return policy
        return self.default

    def _within(self, territory_id: int | None, root_id: int) -> bool:
        key = (territory_id, root_id)
        if key not in self.within:
            self.within[key] = _in_subtree(territory_id, root_id, self.parents)
        return self.within[key]

    def _holds(self, policy: SlaPolicy, condition: ConditionGroup, names: tuple[str, ...], lead: Lead) -> bool:
        values = tuple(self._value(lead, name) for name in names)
        key = (policy.pk, values)
        if key not in self.held:
            self.held[key], _why = evaluate(condition, _facts_holding(lead, dict(zip(names, values, strict=True))))
        return self.held[key]

    def _value(self, lead: Lead, name: str) -> Any:
        """What ``LeadFacts.value(name)`` reads for this lead, as ``lead_facts_from_row`` builds its facts."""
        if not name.startswith("account."):
            return (lead.score or 0) if name == "score" else getattr(lead, name)
        if lead.account_id is None:
            return None
        field_name = name.removeprefix("account.")
        if field_name == "id":
            return lead.account_id
        account = self.accounts.get(lead.account_id)
        return account.get(field_name) if account is not None else None


def _facts_holding(lead: Lead, values: dict[str, Any]) -> LeadFacts:
    """Facts with these values for the fields a condition reads (``account.<field>`` included) and blanks for
    every other field, which the condition does not read."""
    lead_values = {name: value for name, value in values.items() if not name.startswith("account.")}
    account = None
    if lead.account_id is not None:
        account_values = {
            name.removeprefix("account."): value for name, value in values.items() if name.startswith("account.")
        }
        account_values["id"] = lead.account_id
        account = AccountFacts(**account_values, weak_match=lead.account_match_weak)
    return LeadFacts(**lead_values, account=account)


def _fields_read(group: ConditionGroup) -> tuple[str, ...]:
    """The fields a condition reads, each once, in order."""
    names: list[str] = []
    for item in group.items:
        names.extend(_fields_read(item) if isinstance(item, ConditionGroup) else [item.field])
    return tuple(dict.fromkeys(names))


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
    Side effects: inserts a Touch (and its ``lead.touched`` event); updates LeadSla, RepTask and Lead.
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
        # updated_at too: syncs list leads by their last change (GET /api/v1/leads/?updated_since=…).
        if Lead.objects.filter(pk=lead.pk, status=Lead.Status.ASSIGNED).update(
            status=Lead.Status.WORKING, updated_at=now
        ):
            lead.status, lead.updated_at = Lead.Status.WORKING, now
        touched = {"kind": kind, "at": api_time(at), "by": by.get_username() if by is not None else None}
        events_record([Event(EventType.LEAD_TOUCHED, lead.pk, {"touch": touched})], now=now)
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
        # In the reader's zone: the rep's on the lead page, UTC in the API.
        raise TouchTimeError(f"A touch cannot be before {since} ({timezone.localtime(earliest):%Y-%m-%d %H:%M:%S %Z}).")


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
    if (
        lead_sla.state in (LeadSla.State.MET, LeadSla.State.MISSED, LeadSla.State.NONE, LeadSla.State.STOPPED)
        or lead_sla.due_at is None
    ):
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
