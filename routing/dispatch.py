"""Routing for real: claim waiting leads, decide, write the outcome, notify after commit.

The lead row is its own outbox. Intake stores a lead as ``received`` and sends
its id to a worker; ``leads_route`` claims leads still ``received`` in batches
with ``SELECT … FOR UPDATE SKIP LOCKED``, so two workers never take the same
lead, and a worker that dies mid-batch rolls its transaction back, leaving the
leads ``received`` for the sweep (``leads_route_stale``) to route.

Within a batch's transaction:

1. Prepare the batch (standardize, enrich, match accounts: ``match_leads``). This reads only the
   coverage model, so it runs without the routing lock, in parallel with other workers. Scoring, which
   reads nothing, is left for step 3, where it fills time this process would otherwise wait for the
   database.
2. Take the routing lock. Distribution reads and moves shared state — round-robin
   pointers, each rep's open load and today's count — and a rep can sit in several
   queues and overflow chains, so the lock covers all of it at once: on
   PostgreSQL a transaction-level advisory lock; on SQLite every write
   transaction is already exclusive. Under the lock the pointers and the load
   counters are read fresh, so they include everything earlier batches committed.
3. Score each lead and route it with the pure engine, folding each decision into the
   batch's own copy of the snapshot (``apply_decision_in_batch``, in place) so
   the next lead in the batch sees the new pointer and load. Caps and round
   robin are therefore exact.
4. Hand the decisions to the ownership layer (routing/ownership.py), which writes leads,
   assignment history, pointers, load counters, SLA clocks, tasks and notifications
   set-based, then commit. Notifications go out after commit, once per kind.

Every other writer of ownership (a manager's reassignment and a rep's departure in
routing/reassign.py, the SLA ladder in sla/sweep.py, "take next" and "not mine" in
routing/services.py) takes the same lock and writes through the same layer. Lock order,
everywhere: first the rows being changed (leads, clocks) in id order, then the routing
lock — the order a routing batch uses — so writers never deadlock on each other.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from routing import turns
from routing.bulk import pipelined, reads_together, typed_array
from routing.engine import (
    Decision,
    Snapshot,
    apply_decision,
    apply_decision_in_batch,
    batch_snapshot,
    batch_snapshot_settled,
)
from routing.engine.distribution import distribute
from routing.matching import AccountIndex
from routing.models import Assignment, Lead
from routing.ownership import Handover, OwnersChange, owners_change, routing_lock, routing_lock_statement
from routing.pipeline import Matched, Prepared, match_leads, route_prepared
from routing.planner import statistics_freshen
from routing.rows import RowQuery, RowSelect, rows_select_together, sql_ids_in
from routing.scoring import ScoringRuleInfo, Thresholds
from routing.selectors import (
    accounts_facts,
    current_state_statement,
    routing_snapshot,
    scoring_snapshot,
    snapshot_with_current_load,
)
from routing.standardize import StandardizedLead
from routing.turns import Turns
from territories.coverage_version import coverage_version, coverage_version_pinned

logger = logging.getLogger(__name__)

# Lead statuses a new lead with the same e-mail is attached to.
DUPLICATE_TARGET_STATUSES = (Lead.Status.QUEUED, *Lead.OPEN_STATUSES)
# How long one sweep keeps routing before it lets the next run take over.
SWEEP_BUDGET_SECONDS = 40

STATUS_BY_OUTCOME = {
    "assigned": Lead.Status.ASSIGNED,
    "queued": Lead.Status.QUEUED,
    "nurture": Lead.Status.NURTURE,
    "discarded": Lead.Status.DISCARDED,
    "disqualified": Lead.Status.DISQUALIFIED,
}

# Standardized values the lead row keeps (every StandardizedLead field but the flags); enrichment only
# fills what the lead left blank.
STANDARDIZED_FIELDS = list(StandardizedLead.value_fields())
# The lead columns a routing batch writes.
ROUTED_FIELDS = [
    *STANDARDIZED_FIELDS,
    "flags",
    "enrichment_sources",
    "enrichment_failures",
    "fit_score",
    "intent_score",
    "score",
    "account",
    "account_match_method",
    "account_match_confidence",
    "account_match_weak",
    "status",
    "owner",
    "queue",
    "territory",
    "rule",
    "duplicate_of",
    "receipt",
    "routing_attempts",
    "routing_error",
    "routed_at",
    "updated_at",
]
ENRICHABLE_FIELDS = ("company", "employees", "industry", "country", "size_band")


class CoverageCache:
    """This process's copy of the slowly changing coverage model: territories, rules, queues, reps'
    availability (working hours and out-of-office periods, judged at each decision's ``now``), accounts
    and scoring rules.

    ``refresh()`` starts every batch: one query reads the coverage version
    (territories/coverage_version.py), and the copy is dropped only when it changed. Every coverage
    change bumps the version in its own transaction, so an edit applies to the next batch, and an idle
    worker reloads nothing. The copy is also reloaded when the clock runs back before it was loaded
    (it keeps only out-of-office periods not yet over at load time).

    ``refresh()`` gives the copy of the version it read (a ``CoverageView``), which a batch keeps to its
    end: another routing thread of the process (``leads_route``) that reads a newer version meanwhile starts
    a new copy and leaves this one whole. The cache's own ``snapshot``, ``accounts`` and ``scoring`` are
    those of the last version read.

    What changes with every lead (round-robin pointers, open leads, today's counts, whether a queue or a
    rep is active) is never taken from here: ``snapshot_with_current_load`` reads it fresh under the
    routing lock. So caps and rotation are always exact.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._view = CoverageView(None, self)
        self.loads = 0  # How many times a part of the copy was read from the database.

    def refresh(self) -> CoverageView:
        """Check the coverage version (one query) and drop the copy if it changed; returns the copy of the
        version read."""
        version = coverage_version()
        with self._lock:
            if version is None or version != self._view.version:
                self._view = CoverageView(version, self)
            return self._view

    def _count_load(self) -> None:
        with self._lock:
            self.loads += 1

    def snapshot(self, *, now: datetime) -> Snapshot:
        return self._view.snapshot(now=now)

    def accounts(self) -> AccountIndex:
        return self._view.accounts()

    def scoring(self) -> tuple[list[ScoringRuleInfo], Thresholds]:
        return self._view.scoring()


class CoverageView:
    """The coverage model at one version, each part read on first use (see ``CoverageCache``). Two threads
    asking for a part not yet read may both read it: rare (once a version), and harmless."""

    def __init__(self, version: str | None, cache: CoverageCache) -> None:
        self.version = version
        self._cache = cache
        self._parts: dict[str, Any] = {}
        self._loaded_at: datetime | None = None

    def _get(self, name: str, load: Callable[[], Any]) -> Any:
        part = self._parts.get(name)
        if part is None or self.version is None:
            self._cache._count_load()
            part = self._parts[name] = load()
        return part

    def snapshot(self, *, now: datetime) -> Snapshot:
        if self._loaded_at is not None and now < self._loaded_at:
            self._parts.pop("snapshot", None)
        if "snapshot" not in self._parts:
            self._loaded_at = now
        snapshot: Snapshot = self._get("snapshot", lambda: routing_snapshot(now=now))
        return snapshot

    def accounts(self) -> AccountIndex:
        accounts: AccountIndex = self._get("accounts", AccountIndex.load)
        return accounts

    def scoring(self) -> tuple[list[ScoringRuleInfo], Thresholds]:
        scoring: tuple[list[ScoringRuleInfo], Thresholds] = self._get("scoring", scoring_snapshot)
        return scoring


coverage = CoverageCache()


@dataclass
class RouteReport:
    """What one call routed, by resulting status."""

    leads: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    assignment_ids: list[int] = field(default_factory=list)

    def add(self, other: RouteReport) -> None:
        self.leads += other.leads
        for status, count in other.by_status.items():
            self.by_status[status] = self.by_status.get(status, 0) + count
        self.assignment_ids.extend(other.assignment_ids)


@dataclass
class RoutingTimings:
    """Where this process's routing batches spent their time, for the benchmark: ``lock_seconds`` holding the
    routing lock (from its reads back to the commit that releases it), ``batch_seconds`` the whole batch, and
    ``phases``: each phase's wall time and this thread's CPU time, in seconds (``PHASES``; a batch's phases
    follow one another, so they add up to its time). Wall time a phase spent beyond its CPU is time spent
    waiting, mostly on the database; profiling a batch by phase is where speed work starts."""

    batches: int = 0
    leads: int = 0
    batch_seconds: float = 0.0
    lock_seconds: float = 0.0
    phases: dict[str, list[float]] = field(default_factory=dict)

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def reset(self) -> None:
        with self._lock:
            self.batches, self.leads, self.batch_seconds, self.lock_seconds = 0, 0, 0.0, 0.0
            self.phases = {}

    def batch_done(self, *, leads: int, seconds: float, locked_seconds: float) -> None:
        """A batch of ``leads`` ended, after ``seconds``, ``locked_seconds`` of them holding the routing lock."""
        with self._lock:
            self.batches += 1
            self.leads += leads
            self.batch_seconds += seconds
            self.lock_seconds += locked_seconds

    def phase_start(self) -> None:
        """A batch starts: the next ``phase_end`` counts from now."""
        _phase_clock.last = (time.perf_counter(), time.thread_time())

    def phase_end(self, name: str) -> None:
        """The phase ``name`` ends now: the time since the last mark goes to it (phases may recur, as a
        batch in parts decides and writes each part in turn)."""
        last = getattr(_phase_clock, "last", None)
        now = (time.perf_counter(), time.thread_time())
        if last is not None:
            with self._lock:
                spent = self.phases.setdefault(name, [0.0, 0.0])
                spent[0] += now[0] - last[0]
                spent[1] += now[1] - last[1]
        _phase_clock.last = now


# A routing batch's phases, in the order they come: what ``RoutingTimings.phases`` holds. "claim": lock the
# batch's rows, read them, check the coverage version; "prepare": standardize, enrich, match accounts; "lock and
# reads": the routing lock, the pointers, loads and open leads by e-mail (and, for a batch in one part, what its
# ownership change reads); "decide": scoring, the engine, and each lead's receipt; "write": the rows sent
# set-based (leads, history, tasks, clocks, counters, notices), then the batch's objects freed; "last writes":
# waiting for the database to finish what was sent; "commit": the commit, and the notices' task sent. With
# several routing threads (``leads_route``), a phase's wall time includes waiting for the turn while another
# runs (``routing.turns``), and the phases of the threads' batches overlap: they add up to more than the time
# that passed.
PHASES = ("claim", "prepare", "lock and reads", "decide", "write", "last writes", "commit")
# Each thread's last mark (perf_counter, thread_time): a test may route from several threads at once.
_phase_clock = threading.local()


timings = RoutingTimings()


def leads_route(
    *, lead_ids: list[int] | None = None, batch_size: int | None = None, lane: str | None = None
) -> RouteReport:
    """Route leads still ``received``: these ids, or all of them when ``lead_ids`` is None.

    One transaction per batch. Leads another worker holds are skipped (it routes them);
    leads already routed are left alone, so running this twice is harmless. A batch with
    room left takes other waiting leads of ``lane`` along (of any lane when None), so a
    live task never carries a bulk backlog (see ``_claim``). The bulk lane routes the live leads waiting
    before each of its batches (``_live_first``), and while live leads keep coming its batches are small
    (``LEADROUTER_BULK_BATCH_SIZE_WHILE_LIVE``), so a live lead waits for a short one at most; an import with
    no live traffic beside it goes in ``LEADROUTER_BULK_BATCH_SIZE`` batches.
    Side effects: writes leads, assignments, queue pointers, notifications and rep tasks;
    enqueues ``notify_assignments`` after commit.
    """
    bulk = lane == Lead.Lane.BULK
    if lane == Lead.Lane.LIVE:
        # Live traffic reaches this process: an import's next batches, here and in the other processes, start
        # small, not only after a full-size batch has held the live leads that came meanwhile.
        _live_traffic_seen()
    batch_size = batch_size or (settings.LEADROUTER_BULK_BATCH_SIZE if bulk else settings.LEADROUTER_ROUTING_BATCH_SIZE)
    # Anything to do? When an earlier batch took these leads along (see _claim), one cheap query and no
    # transaction: under a burst of single posts most messages end here. A live task still routes the live
    # leads waiting now (the batch below fills up with them): their own messages may sit behind bulk work
    # in a busy worker.
    if lead_ids is not None and not _any_waiting(lead_ids, live=lane == Lead.Lane.LIVE):
        return RouteReport()
    if bulk:
        # Bulk work changes the lead tables by thousands of rows: plans made from older statistics would read
        # every open lead (routing/planner.py).
        statistics_freshen()
    work = _Work(lead_ids, batch_size, lane)
    if work.remaining is not None and len(work.remaining) <= batch_size:
        return _route_work(work)
    if not helper_allowed() or (bulk and _live_traffic()):
        # While live leads keep coming, an import's task routes its leads in small batches in one thread: a live
        # batch then waits for one small bulk batch at most, not behind bulk threads that keep the lock busy.
        return _route_work(work)
    return _route_work_with_helper(work)


class _Work:
    """The batches of one ``leads_route`` call, handed out to its threads one at a time: these ids in order,
    ``batch_size`` at a time, or (``lead_ids`` None) any waiting lead of the lane, until a batch finds none."""

    def __init__(self, lead_ids: list[int] | None, batch_size: int, lane: str | None) -> None:
        self.remaining = sorted(set(lead_ids)) if lead_ids is not None else None
        self.batch_size = batch_size
        self.lane = lane
        self.finished = False
        self._lock = threading.Lock()

    def take(self, size: int) -> tuple[bool, list[int] | None]:
        """(True, the next batch's ids, or None for any waiting lead), or (False, None) when all is done."""
        with self._lock:
            if self.finished:
                return False, None
            if self.remaining:
                chunk, self.remaining = self.remaining[:size], self.remaining[size:]
                return True, chunk
            if self.remaining is None:
                return True, None
            return False, None

    def finish(self) -> None:
        """No batch is handed out after this (none found waiting, or a thread's batch failed)."""
        with self._lock:
            self.finished = True


def _route_work(work: _Work, *, helper: bool = False) -> RouteReport:
    """Route ``work``'s batches one after the other, in this thread, until there is none left. In the bulk
    lane, while live leads keep coming (``_live_traffic``), batches are small and a ``helper`` thread stops."""
    report = RouteReport()
    try:
        while True:
            size = work.batch_size
            if work.lane == Lead.Lane.BULK:
                if _live_first():
                    _live_traffic_seen()
                if _live_traffic():
                    size = min(work.batch_size, settings.LEADROUTER_BULK_BATCH_SIZE_WHILE_LIVE)
                    if helper:
                        return report
            more, chunk = work.take(size)
            if not more:
                return report
            batch = _route_batch(lead_ids=chunk, limit=size, lane=work.lane)
            report.add(batch)
            if chunk is None and batch.leads == 0:
                work.finish()
                return report
    except BaseException:
        work.finish()
        raise


_T = TypeVar("_T")


# Seconds between the interpreter's forced switches while two routing threads take turns (``_route_work_with_helper``).
HELPER_SWITCH_INTERVAL = 0.1


@contextlib.contextmanager
def _switches_spaced() -> Iterator[None]:
    """The interpreter's switch interval at ``HELPER_SWITCH_INTERVAL`` while the block runs. It is process-wide:
    with several such calls at once (a threaded caller), the first sets it and the last one to end puts back
    what it was."""
    with _switches.lock:
        if _switches.calls == 0:
            _switches.before = sys.getswitchinterval()
            sys.setswitchinterval(HELPER_SWITCH_INTERVAL)
        _switches.calls += 1
    try:
        yield
    finally:
        with _switches.lock:
            _switches.calls -= 1
            if _switches.calls == 0:
                sys.setswitchinterval(_switches.before)


class _Switches:
    """The calls running with the switch interval spaced (``_switches_spaced``), and what it was before them."""

    lock = threading.Lock()
    calls = 0
    before = 0.005


def _route_work_with_helper(work: _Work) -> RouteReport:
    """Route ``work`` in this thread and one more (``two_threads``), each routing whole batches. The routing
    lock orders their decisions as it orders workers, so caps and round robin stay exact. An error in either
    thread stops both once their batches end (``_Work.finish``), and is raised here."""
    reports = two_threads(lambda helper: _route_work(work, helper=helper), name="routing-helper")
    report = reports[0]
    for other in reports[1:]:
        report.add(other)
    return report


def helper_allowed() -> bool:
    """Whether a second thread may help a call of many batches (``two_threads``): on PostgreSQL, outside a
    caller's transaction (a helper has its own connection, which would not see what the caller's transaction
    wrote), and unless ``LEADROUTER_ROUTING_THREADS`` is 1."""
    return (
        settings.LEADROUTER_ROUTING_THREADS > 1 and connection.vendor == "postgresql" and not connection.in_atomic_block
    )


def two_threads(work: Callable[[bool], _T], *, name: str) -> list[_T]:
    """``work(False)`` in this thread and ``work(True)`` in one more, each with its own connection and
    transactions, taking turns (``routing.turns``): each runs its Python while the other waits for the
    database. Returns their results, this thread's first. The helper's connection is closed when it ends. An
    error in the helper is raised here once both have ended; ``work`` stops the other thread on an error of
    its own (it shares a flag or a queue of work with it). Call it where ``helper_allowed``."""
    shared = Turns()
    helper_results: list[_T] = []
    helper_error: list[BaseException] = []

    def helper() -> None:
        try:
            with shared.taking_part():
                helper_results.append(work(True))
        except BaseException as error:  # Raised in the calling thread, below.
            helper_error.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=helper, name=name, daemon=True)
    # The interpreter hands its lock to a waiting thread every 5 ms; the turn already decides which thread
    # runs, and those switches only broke into the running thread's Python for the other's few lines between
    # two waits (a commit's end, its notices' task). Paired runs, 5,000 leads per call: +8% over one thread
    # with them, +12% with the switch every 0.1 s. Process-wide, so only while this call lasts.
    failed = True
    try:
        with _switches_spaced():
            try:
                with shared.taking_part():
                    thread.start()
                    result = work(False)
            finally:
                thread.join()  # Once this thread has let go of its turn (``taking_part``'s end).
        failed = False
    finally:
        if failed and helper_error:
            logger.error("The %s thread failed too.", name, exc_info=helper_error[0])
    if helper_error:
        raise helper_error[0]
    return [result, *helper_results]


def _any_waiting(lead_ids: list[int], *, live: bool) -> bool:
    """Whether one of these leads (or, for a live task, any live lead) still waits to be routed. Plain SQL:
    every single lead's task asks it, and the ORM's compiling of it cost more than the database's answer."""
    table = connection.ops.quote_name(Lead._meta.db_table)
    wanted, ids = sql_ids_in("id", lead_ids) if lead_ids else ("FALSE", [])
    params: list[Any] = [Lead.Status.RECEIVED.value, *ids]
    if live:
        wanted = f"({wanted} OR lane = %s)"
        params.append(Lead.Lane.LIVE.value)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE status = %s AND {wanted} LIMIT 1", params)
        return cursor.fetchone() is not None


# Bulk batches stay small, in one thread, for this long after live leads were last seen: by this process (a live
# task, or live leads found waiting) or by another, which says so in the cache (``_live_traffic``).
LIVE_TRAFFIC_SECONDS = 30.0
_live_seen_at = -LIVE_TRAFFIC_SECONDS
# Where processes say when they last saw live leads, and how often one says it at most.
LIVE_TRAFFIC_KEY = "routing:live-traffic-at"
LIVE_TRAFFIC_SAY_EVERY = 5.0
_live_said_at = -LIVE_TRAFFIC_SAY_EVERY


def _live_traffic_seen() -> None:
    """Live leads reach this process now: remembered here, and said in the cache for the other processes (at
    most every ``LIVE_TRAFFIC_SAY_EVERY`` seconds; a cache that fails loses only the hint)."""
    global _live_seen_at, _live_said_at
    _live_seen_at = time.monotonic()
    if _live_seen_at - _live_said_at < LIVE_TRAFFIC_SAY_EVERY:
        return
    _live_said_at = _live_seen_at
    try:
        cache.set(LIVE_TRAFFIC_KEY, time.time(), LIVE_TRAFFIC_SECONDS)
    except Exception:
        logger.warning("Could not say in the cache that live leads are coming.", exc_info=True)


def _live_traffic() -> bool:
    """Whether live leads were seen in the last ``LIVE_TRAFFIC_SECONDS``, by this process or another. A worker
    process busy with an import sees none of the live tasks: the other processes route them."""
    if time.monotonic() - _live_seen_at < LIVE_TRAFFIC_SECONDS:
        return True
    try:
        said = cache.get(LIVE_TRAFFIC_KEY)
    except Exception:
        return False
    return isinstance(said, float) and time.time() - said < LIVE_TRAFFIC_SECONDS


def _live_first() -> bool:
    """Route the live leads waiting now, before the next bulk batch (one indexed query when none waits);
    True when some were waiting.

    A worker serving both lanes may have every process busy with an import when a live lead comes in: its
    message then waits for a free process. Checking between bulk batches bounds that wait to one bulk
    batch; the live lead's own message later finds nothing left to do."""
    waiting = Lead.objects.filter(status=Lead.Status.RECEIVED, lane=Lead.Lane.LIVE)
    found = False
    while waiting.exists():
        found = True
        if not _route_batch(lead_ids=None, limit=settings.LEADROUTER_ROUTING_BATCH_SIZE, lane=Lead.Lane.LIVE).leads:
            break  # Another worker holds them: it routes them.
    return found


def leads_route_stale(*, older_than_seconds: int, budget_seconds: float = SWEEP_BUDGET_SECONDS) -> RouteReport:
    """The sweep: route leads left ``received`` longer than ``older_than_seconds``, then give held leads
    another chance. Stops after ``budget_seconds``; the next sweep goes on. Harmless when it overlaps
    routing tasks or another sweep. Leads of every lane are swept, live ones first, so that a live lead
    a lost message left behind does not wait behind a bulk backlog either."""
    started = time.monotonic()
    report = RouteReport()
    statistics_freshen()  # Periodic, so that steady live traffic alone also keeps the statistics fresh.
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    size = settings.LEADROUTER_ROUTING_BATCH_SIZE
    while time.monotonic() - started < budget_seconds:
        stale: list[int] = []
        for lane in (Lead.Lane.LIVE, Lead.Lane.BULK):
            if len(stale) < size:
                stale.extend(
                    Lead.objects.filter(status=Lead.Status.RECEIVED, lane=lane, received_at__lt=cutoff)
                    .order_by("received_at")
                    .values_list("pk", flat=True)[: size - len(stale)]
                )
        if not stale:
            break
        logger.warning("Sweep: routing %d leads left in 'received'.", len(stale))
        batch = _route_batch(lead_ids=stale, limit=len(stale))
        report.add(batch)
        if batch.leads == 0:
            break  # Another worker holds them all.
    report.add(queued_leads_distribute())
    return report


def _claim(lead_ids: list[int] | None, limit: int, lane: str | None = None) -> list[Lead]:
    """Lock up to ``limit`` received leads for this transaction: these ids first, then the oldest others
    of ``lane`` (of any lane when None).

    Filling the batch with other waiting leads is what keeps a burst of single-lead posts
    fast: one worker routes many in one transaction, and the tasks sent for those leads
    find nothing left to do. Only leads of the task's own lane come along: a live task that
    took 500 leads of a waiting import would make its own lead wait for all of them.
    Leads another worker holds are skipped, never waited for.

    Read with plain statements (routing/rows.py), without the columns routing replaces (``REPLACED_FIELDS``):
    the ORM's thousand instances of every column, and the receipts' unpacking, cost about twice the statements.
    """
    lock = _CLAIM_LOCK if connection.features.has_select_for_update_skip_locked else ""
    received = Lead.Status.RECEIVED.value
    queries: list[RowQuery] = []
    if lead_ids:
        among, ids = sql_ids_in("t0.id", lead_ids)
        queries.append(RowQuery(f"t0.status = %s AND {among} ORDER BY t0.id LIMIT %s{lock}", [received, *ids, limit]))
    # The others, the oldest first, through the partial indexes on received leads (by lane, or by time alone).
    # Asked without waiting for the first statement's answer (both go in one round trip): leaving out all of
    # ``lead_ids`` leaves out the ones the first took, and the room is what ``lead_ids`` leave, so a batch
    # whose own leads were taken by another is smaller by those, rather than waiting for a second answer.
    others = limit - len(lead_ids or ())
    if others > 0:
        where: list[str] = ["t0.status = %s"]
        params: list[object] = [received]
        if lead_ids:
            where.append(f"NOT {among}")
            params.extend(ids)
        if lane is not None:
            where.append("t0.lane = %s")
            params.append(lane)
        queries.append(
            RowQuery(
                f"{' AND '.join(where)} ORDER BY t0.received_at, t0.id LIMIT %s{lock}",
                [*params, others],
                _IN_INDEX_ORDER,
            )
        )
    claimed = [lead for found in rows_select_together(_CLAIMED, queries) for lead in found]
    # Routed in arrival order, so round robin and caps favour whoever waited longest.
    return sorted(claimed, key=_ARRIVAL_ORDER)


# The lead columns a prepared lead's routing replaces whatever they held (``_copy_prepared``, ``_decide``): the
# claim does not read them. A lead whose preparation fails reads them then (``_prepare_all``); any other use
# reads a column on first access, as a deferred field does.
REPLACED_FIELDS = (
    *STANDARDIZED_FIELDS,
    "flags",
    "enrichment_sources",
    "enrichment_failures",
    "account",
    "account_match_method",
    "account_match_confidence",
    "account_match_weak",
    "receipt",
)
_CLAIMED = RowSelect(Lead, omit=REPLACED_FIELDS)
_ARRIVAL_ORDER = attrgetter("received_at", "id")
_CLAIM_LOCK = " FOR UPDATE OF t0 SKIP LOCKED"
# The claim reads the waiting leads in the order of their index (``lead_received_outbox_idx``,
# ``lead_received_lane_idx``: received_at, id) and stops at the batch's last. Left to its statistics, the planner
# believed the few waiting leads it saw at the last ANALYZE, as it does after any import, and read every waiting
# lead of the lane to sort them all: ~0.7 µs a waiting lead, for each batch (a 10,000-lead backlog cost its
# first batch 7 ms of claim, 100,000 waiting leads ~70 ms), where the index's order reads 1,000 rows in ~0.8 ms
# whatever the backlog. Sorting is turned off for this one statement, so the planner takes the index's order.
_IN_INDEX_ORDER = {"enable_sort": "off"}


@dataclass
class _Routed:
    lead: Lead
    # Steps 1–3 (``match_leads``), done for the whole batch before the routing lock; None when they failed.
    matched: Matched | None
    # Step 4 too (``_score``), done under the lock just before the lead is decided; None until then, and
    # when preparing the lead failed.
    prepared: Prepared | None = None
    # The reps who sent the lead back ("not mine"), whom its decision leaves out.
    sent_back: frozenset[int] = frozenset()
    decision: Decision | None = None
    elapsed_ms: float = 0.0


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector held off while a batch routes.

    A batch keeps everything it builds (a thousand leads, their receipts, rows and history) alive until it
    ends, so each collection during it walked those objects again and freed nothing: about 6% of a batch's
    CPU (11–15 µs a lead measured, after ``long_lived_freeze``). Reference counting frees them when the
    batch ends, as it frees almost everything; the collector runs again from there, at its next allocation
    past the threshold, and takes whatever cycles the batch left (a bounded batch leaves a bounded few).
    Does nothing where the collector is already off. With several routing threads (``leads_route``), the
    collector runs again once the last of their batches ends."""
    with _collector.lock:
        if _collector.batches == 0:
            _collector.paused_here = gc.isenabled()
            gc.disable()
        _collector.batches += 1
    try:
        yield
    finally:
        with _collector.lock:
            _collector.batches -= 1
            if _collector.batches == 0 and _collector.paused_here:
                gc.enable()


_switches = _Switches()


class _Collector:
    """The batches running with the cycle collector held off (``collector_paused``), and whether they did it."""

    lock = threading.Lock()
    batches = 0
    paused_here = False


_collector = _Collector()


def _route_batch(*, lead_ids: list[int] | None, limit: int, lane: str | None = None) -> RouteReport:
    # The batch's objects die before ``_route_batch_collected`` returns (most of them before the batch's last
    # wait, see ``_route_claimed``), before the collector runs again.
    with collector_paused():
        return _route_batch_collected(lead_ids=lead_ids, limit=limit, lane=lane)


def _route_batch_collected(*, lead_ids: list[int] | None, limit: int, lane: str | None) -> RouteReport:
    started = time.perf_counter()
    timings.phase_start()
    with transaction.atomic():
        leads = _claim(lead_ids, limit, lane)
        if not leads:
            return RouteReport()
        # One query; the coverage model is reloaded only if it changed since the last batch, and then here,
        # before the routing lock is taken, rather than while holding it. The batch decides with the model of
        # that version (its ``CoverageView``), so the rest of it (the SLA policies) is read at the same version,
        # without asking again.
        view = coverage.refresh()
        view.snapshot(now=timezone.now())
        timings.phase_end("claim")
        with coverage_version_pinned(view.version):
            report, locked = _route_claimed(leads, view)
    finished = time.perf_counter()
    timings.phase_end("commit")
    timings.batch_done(leads=report.leads, seconds=finished - started, locked_seconds=finished - locked)
    return report


def _route_claimed(leads: list[Lead], view: CoverageView) -> tuple[RouteReport, float]:
    """Decide and write a claimed batch in the caller's transaction; returns the report and when the routing
    lock was held (``time.perf_counter``). Empties ``leads`` (see the end).

    A batch of more than ``WRITE_PART`` leads is decided part by part, and each part's lead rows are sent as
    soon as it is decided; on PostgreSQL (``pipelined``) the database writes one part while this process
    decides the next. The rest of each part's ownership change (history, tasks, clocks, counters, notices)
    follows its lead rows, from what was read before the first write (``OwnersChange.read_ahead``), so that no
    statement waits for another until the batch's end; the pointers are saved last. A smaller batch is decided
    whole, then written the same way, in one pipeline."""
    routed = _prepare_all(leads, view)
    _exclude_reps_who_sent_back(routed)
    scoring = view.scoring()
    timings.phase_end("prepare")

    cached = view.snapshot(now=timezone.now())
    emails = _batch_emails(routed) if settings.LEADROUTER_ATTACH_DUPLICATES else set()
    # The routing lock, then what the batch reads under it: the reps' and queues' current state, and the open
    # leads with the batch's e-mails. On PostgreSQL they go in one round trip, in order, each statement once the
    # one before it is done: the reads see the database as the lock's holder does. A batch in parts sends its
    # ownership change's reads (``read_ahead``) along too; a live lead's small batch waited for five round
    # trips in a row here.
    lock = [
        statement
        for statement in (routing_lock_statement(), _constraints_immediate_statement(), _no_jit_statement())
        if statement
    ]
    reads = [*lock, current_state_statement()]
    by_email = _open_leads_by_email_statement(emails)
    if by_email is not None:
        reads.append(by_email)
    # A batch with any live lead in it notifies in the live notify lane; a bulk batch's notices follow
    # the bulk work.
    bulk = all(lead.lane == Lead.Lane.BULK for lead in leads)
    # Its ``now`` is the batch's, set below once the lock is held.
    change = OwnersChange(
        now=timezone.now(), lead_fields=ROUTED_FIELDS, lane=Lead.Lane.BULK if bulk else Lead.Lane.LIVE
    )
    parts = len(routed) > WRITE_PART
    # The routing lock's wait: another routing thread of this process runs meanwhile, and this one runs first
    # once it has the lock (``routing.turns``).
    turns.let_go(urgent=True)
    if parts:
        # What the ownership change reads, read before its writes start, so that none of them waits.
        found = change.read_ahead(
            rep_ids=[rep.id for rep in cached.reps],
            queue_ids=[queue.id for queue in cached.queues],
            assignments=len(routed),
            before=reads,
        )
    else:
        found = reads_together(reads)
    locked = time.perf_counter()
    turns.take()
    now = change.now = timezone.now()
    state, *by_email_rows = found[len(lock) :]
    # This batch's own copy, which its decisions update in place (O(1) a lead, whatever the number of reps).
    snapshot = batch_snapshot(snapshot_with_current_load(cached, now=now, state=state))
    # The open leads by e-mail that the batch's leads attach to, the batch's own added as they are routed; None
    # when duplicates are not attached.
    open_by_email: dict[str, int] | None
    if not settings.LEADROUTER_ATTACH_DUPLICATES:
        open_by_email = None
    elif by_email is not None:
        open_by_email = _open_leads_by_email_found(by_email_rows[0])
    else:  # Another database, or (on PostgreSQL) no e-mail in the batch: nothing to ask then.
        open_by_email = _open_leads_by_email(emails)
    start_pointers = {queue.id: queue.rr_pointer for queue in snapshot.queues}
    report = RouteReport(leads=len(routed))
    timings.phase_end("lock and reads")
    if not parts:
        # One part (live traffic): decided first, so that what the change reads is read for its own reps and
        # queues only; its writes then go in one pipeline too, waiting for the database once rather than once
        # a statement (a 5-lead batch had eight of them in a row).
        snapshot = _decide_all(routed, snapshot, now, open_by_email, scoring)
        timings.phase_end("decide")
        turns.let_go(urgent=True)  # A wait holding the lock: this thread runs first again (``routing.turns``).
        change.read_ahead(
            rep_ids={item.decision.rep_id for item in routed if item.decision and item.decision.rep_id},
            queue_ids={item.decision.queue_id for item in routed if item.decision and item.decision.queue_id},
            assignments=sum(1 for item in routed if item.decision is not None),
        )
        turns.take()
        timings.phase_end("lock and reads")
    with pipelined():
        for start in range(0, len(routed), WRITE_PART):
            part = routed[start : start + WRITE_PART]
            if parts:
                snapshot = _decide_all(part, snapshot, now, open_by_email, scoring)
                timings.phase_end("decide")
            _write(part, now, change, report)
            report.assignment_ids.extend(change.finish().assignment_ids)
            timings.phase_end("write")
        snapshot = batch_snapshot_settled(snapshot)
        moved = {
            queue.id: queue.rr_pointer for queue in snapshot.queues if queue.rr_pointer != start_pointers.get(queue.id)
        }
        change.finish(pointers=moved)
        # Nothing of the batch is read again. Its objects (the leads, their payloads and receipts, the prepared
        # records) are freed here, while the database still writes the last part, rather than after the commit,
        # when this process would wait for nothing else: ~6 ms for a batch of 1,000.
        leads.clear()
        routed.clear()
        del part
        timings.phase_end("write")
        # What is left is the database's: the last writes (the block's end), then the commit. Another routing
        # thread of this process runs meanwhile (``routing.turns``; this one's next batch takes the turn back
        # once its claimed rows are in).
        turns.let_go()
    timings.phase_end("last writes")
    return report, locked


def _constraints_immediate_statement() -> tuple[str, list[Any]] | None:
    """On PostgreSQL, the statement that checks the batch's deferrable constraints (the lead row's foreign keys:
    owner, queue, territory, rule, account, duplicate) as each statement ends rather than at commit. Inside the
    pipeline the database then checks them while this process decides the next part; deferred, they were all
    checked in the commit, which nothing overlaps (a batch of 1,000 spent 18 µs a lead there, most of its
    commit). Every row they point at exists before the statement that points at it, so checking earlier
    refuses nothing that the commit would let through, and a refusal still rolls the whole batch back.

    Only when the batch's transaction is the outermost (a worker's, the sweep's): the setting lasts until the
    transaction ends, and a caller's transaction around the batch keeps the checks it asked for. None otherwise."""
    if connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1:
        return "SET CONSTRAINTS ALL IMMEDIATE", []
    return None


def _no_jit_statement() -> tuple[str, list[Any]] | None:
    """On PostgreSQL, the statement that keeps the rest of the batch's statements from being compiled (JIT).
    They are lookups and set-based writes that the planner prices by the thousand rows they may touch: the
    duplicate lookup of a 1,000-lead batch (1,000 index probes, 6 ms) was priced past
    ``jit_optimize_above_cost`` on a lead table grown to 130,000 rows, and compiled itself for ~190 ms at every
    batch, holding the routing lock. The setting lasts until the batch's transaction ends; like
    ``_constraints_immediate_statement``, only when that transaction is the outermost, so a caller's own
    statements keep theirs (the SLA sweep's scan of open clocks runs faster compiled). None otherwise."""
    if connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1:
        return "SET LOCAL jit = off", []
    return None


def _decide_all(
    items: list[_Routed],
    snapshot: Snapshot,
    now: datetime,
    open_by_email: dict[str, int] | None,
    scoring: tuple[list[ScoringRuleInfo], Thresholds],
) -> Snapshot:
    """``_score`` and ``_decide`` for each of ``items`` in turn, adding each one's time to its ``elapsed_ms``.

    Scoring happens here rather than with the rest of the preparation: it reads nothing, and inside the
    pipeline it runs while the database writes the part before, where the preparation before the lock has
    nothing to overlap (a batch of 1,000 spent ~4 µs a lead there, and its last writes waited as long)."""
    for item in items:
        clock = time.perf_counter()
        _score(item, scoring)
        snapshot = _decide(item, snapshot, now, open_by_email)
        item.elapsed_ms += (time.perf_counter() - clock) * 1000
    return snapshot


# Leads decided before their rows are sent (see ``_route_claimed``): a fifth of a 1,000-lead bulk batch, so
# that four fifths of its rows are written while later leads are decided, and the database has less left to
# write once the last part is sent. Paired runs in one process (10,000 leads each, alternating): 129 µs a
# lead against 137 with parts of 250; parts of 125 cost more statements on both sides and gained nothing.
WRITE_PART = 200


def _prepare_all(leads: list[Lead], view: CoverageView) -> list[_Routed]:
    """Steps 1–3 for the claimed leads, as one batch (``match_leads`` shares lookups and account matching
    across it); a lead whose preparation fails is kept and sent to the catch-all. Each lead's ``elapsed_ms``
    starts with its share of the batch's preparation time."""
    clock = time.perf_counter()
    results = match_leads(
        [lead.raw_payload if isinstance(lead.raw_payload, dict) else {} for lead in leads],
        accounts=view.accounts(),
        accounts_facts=accounts_facts,
    )
    share = (time.perf_counter() - clock) * 1000 / max(len(leads), 1)
    routed = []
    for lead, result in zip(leads, results, strict=True):
        if isinstance(result, Exception):  # A bug must not stop the batch nor lose the lead.
            _preparation_failed(lead, result)
            routed.append(_Routed(lead, None, elapsed_ms=share))
        else:
            routed.append(_Routed(lead, result, elapsed_ms=share))
    return routed


def _score(item: _Routed, scoring: tuple[list[ScoringRuleInfo], Thresholds]) -> None:
    """Step 4 for a matched lead (``Matched.prepared``), into ``item.prepared``, its decision to leave out the
    reps who sent it back; a lead whose scoring fails goes to the catch-all as one whose preparation failed."""
    matched = item.matched
    if matched is None or item.prepared is not None:
        return
    result = matched.prepared_or_error(scoring)
    if isinstance(result, Exception):
        item.matched = None
        _preparation_failed(item.lead, result)
        return
    if item.sent_back:
        result = replace(result, facts=replace(result.facts, excluded_rep_ids=item.sent_back))
    item.prepared = result


def _preparation_failed(lead: Lead, error: Exception) -> None:
    """A lead whose preparation raised ``error``: logged with its traceback, and its row written back as it is,
    with the catch-all's outcome and the error (the columns the claim did not read are read for it, one query
    for this lead only)."""
    logger.error("Lead %s could not be prepared for routing.", lead.pk, exc_info=error)
    lead.refresh_from_db(fields=[name for name in REPLACED_FIELDS if name != "receipt"])
    lead.routing_error = f"{type(error).__name__}: {error}"


def _exclude_reps_who_sent_back(routed: list[_Routed]) -> None:
    """A lead coming back after "not mine" must not go to the reps who sent it back (one query per batch, none
    when every lead is routed for the first time: only a routed lead can have been sent back)."""
    again = [item.lead.pk for item in routed if item.lead.routing_attempts]
    if not again:
        return
    sent_back: dict[int, set[int]] = {}
    for lead_id, rep_id in Assignment.objects.filter(
        lead_id__in=again, reason=Assignment.Reason.NOT_MINE, rep__isnull=False
    ).values_list("lead_id", "rep_id"):
        sent_back.setdefault(lead_id, set()).add(rep_id)
    for item in routed:
        if item.lead.pk in sent_back:
            item.sent_back = frozenset(sent_back[item.lead.pk])


def _batch_emails(routed: list[_Routed]) -> set[str]:
    """The batch's e-mails, as duplicates are looked up (lower case)."""
    emails = {item.matched.standardized.email.lower() for item in routed if item.matched}
    emails.discard("")
    return emails


def _open_leads_by_email_statement(emails: set[str]) -> tuple[str, list[Any]] | None:
    """On PostgreSQL, the statement that finds the oldest open (or held) lead per e-mail among ``emails``
    (``_open_leads_by_email_found`` reads its rows); None elsewhere, or without e-mails.

    Looked up e-mail by e-mail (LATERAL, its LIMIT keeps it from being flattened into a join): each one is a
    probe of the e-mail index, whatever the planner's statistics say. Written as one ``IN`` or join, the query
    is planned from them, and before the next ANALYZE after a bulk import they see a few distinct e-mails among
    few leads: the plan then reads every open lead (measured: 50–90 ms for a batch of 1,000 among 78,000
    leads, against 3 ms by the index)."""
    if not emails or connection.vendor != "postgresql":
        return None
    return (
        f"SELECT batch.key, oldest.id FROM unnest(%b::text[]) AS batch(key) CROSS JOIN LATERAL ("
        f"SELECT id FROM {Lead._meta.db_table} WHERE lower(email) = batch.key AND status = ANY(%b::text[]) "
        "ORDER BY received_at, id LIMIT 1) AS oldest",
        [typed_array("text", list(emails)), [str(status) for status in DUPLICATE_TARGET_STATUSES]],
    )


def _open_leads_by_email_found(rows: Iterable[tuple[Any, ...]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for email, pk in rows:
        found.setdefault(email, pk)
    return found


def _open_leads_by_email(emails: set[str]) -> dict[str, int]:
    """The oldest open (or held) lead per e-mail among ``emails``, through the ORM (no query without e-mails):
    for the databases without ``_open_leads_by_email_statement`` (SQLite), where the batch's reads do not
    travel together."""
    rows = (
        Lead.objects.annotate(email_key=Lower("email"))
        .filter(email_key__in=emails, status__in=DUPLICATE_TARGET_STATUSES)
        .order_by("received_at", "pk")
        .values_list("email_key", "pk")
    )
    return _open_leads_by_email_found(rows) if emails else {}


def _decide(item: _Routed, snapshot: Snapshot, now: datetime, open_by_email: dict[str, int] | None) -> Snapshot:
    """Route one lead into ``item``; its decision updates ``snapshot`` (a ``batch_snapshot``), which is returned.
    A lead whose e-mail is in ``open_by_email`` is attached to that lead as a duplicate (None: never)."""
    lead, prepared = item.lead, item.prepared
    if prepared is None:
        lead.status = Lead.Status.QUEUED
        lead.queue_id = snapshot.catch_all_queue_id
        lead.receipt = {
            "outcome": "queued",
            "routing": {"summary": "Routing failed; waiting in the catch-all queue for RevOps.", "error": True},
        }
        return snapshot

    _copy_prepared(lead, prepared)
    email = prepared.standardized.email.lower()
    original = open_by_email.get(email) if email and open_by_email is not None else None
    if original is not None:
        lead.status = Lead.Status.DUPLICATE
        lead.duplicate_of_id = original
        lead.receipt = {
            "outcome": "duplicate",
            "account": prepared.account.as_receipt(),
            "routing": {"summary": f"Attached to open lead {original} with the same e-mail; not routed again."},
        }
        return snapshot

    evaluation = route_prepared(prepared, now=now, snapshot=snapshot)
    decision = evaluation.decision
    lead.receipt = evaluation.receipt()
    lead.status = STATUS_BY_OUTCOME[evaluation.outcome]
    if decision is None:
        return snapshot
    item.decision = decision
    # Straight into the instance's dict: a claimed lead caches no related row for Django's foreign-key
    # descriptors to clear, and they cost ~1 µs each a lead.
    lead.__dict__.update(
        owner_id=decision.rep_id,
        queue_id=decision.queue_id,
        territory_id=decision.territory_id,
        rule_id=decision.rule_id,
    )
    if email and open_by_email is not None and lead.status in DUPLICATE_TARGET_STATUSES:
        open_by_email.setdefault(email, lead.id)
    return apply_decision_in_batch(snapshot, decision)


def _copy_prepared(lead: Lead, prepared: Prepared) -> None:
    """The standardized and enriched values, score and account match onto the lead row. (Form answers and
    page history stay in the raw payload, where ``Lead.form_answers`` and ``Lead.page_history`` read them.)"""
    standardized = prepared.standardized
    # Plain columns (no descriptor sets them), so the instance's dict takes them at once: the standardized
    # record's own dict holds its fields and nothing else (the flags among them, replaced by a copy below).
    # Only the two number fields are ever None, which is also their blank. The account's id too: a claimed
    # lead caches no account row for the foreign key's descriptor to clear.
    state = lead.__dict__
    state.update(standardized.__dict__)
    # The facts differ from the standardized values only where enrichment filled something in.
    for name in ENRICHABLE_FIELDS if prepared.enrichment.values else ():
        enriched = getattr(prepared.facts, name, None)
        if enriched not in (None, "") and not getattr(standardized, name):
            state[name] = enriched
    match = prepared.account
    state.update(
        flags=dict(standardized.flags),
        enrichment_sources=dict(prepared.enrichment.sources),
        enrichment_failures=dict(prepared.enrichment.failures),
        account_id=match.account_id,
        account_match_method=match.method,
        account_match_confidence=round(match.confidence, 1) if match.account_id is not None else None,
        account_match_weak=match.weak,
    )
    if prepared.score is not None:
        state.update(fit_score=prepared.score.fit, intent_score=prepared.score.intent, score=prepared.score.total)


# The statuses a routed lead is handed over in: to a rep, or to a queue where it waits.
_OWNED_STATUSES = frozenset({Lead.Status.ASSIGNED, Lead.Status.QUEUED})


def _write(part: list[_Routed], now: datetime, change: OwnersChange, report: RouteReport) -> None:
    """A decided part of the batch: its lead rows, and for each one routed to a rep or a queue its new owner,
    through the ownership layer (``change``); the caller's ``change.finish()`` writes the rest of the part's
    change."""
    handovers: list[Handover] = []
    unchanged: list[Lead] = []
    by_status = report.by_status
    owned = _OWNED_STATUSES
    received, routed = Lead.Status.RECEIVED, Assignment.Reason.ROUTED
    for item in part:
        lead = item.lead
        state = lead.__dict__
        state["routed_at"] = now
        attempts = state["routing_attempts"] = state["routing_attempts"] + 1
        receipt = state["receipt"]
        receipt["elapsed_ms"] = round(item.elapsed_ms, 2)
        status = state["status"]
        by_status[status] = by_status.get(status, 0) + 1
        if status in owned and item.decision is not None:
            # The ownership layer moves the lead from its old owner (none) and status to the decision's. Straight
            # into the instance's dict, as ``_decide`` set them: no related row is cached for the key's
            # descriptor to clear.
            new_owner = state["owner_id"]
            state["owner_id"], state["status"] = None, received
            handovers.append(
                Handover(
                    lead=lead,
                    rep_id=new_owner,
                    queue_id=state["queue_id"],
                    status=status,
                    reason=routed,
                    # The full receipt is on the lead; the history row keeps the one-line why.
                    summary=receipt["routing"].get("summary", ""),
                    first=attempts == 1,
                )
            )
        else:
            state["updated_at"] = now
            unchanged.append(lead)
    change.leads_write(handovers, unchanged)


def _held_where(lead: Lead, snapshot: Snapshot) -> int:
    """The queue where a held lead's distribution starts again (see ``queued_leads_distribute``)."""
    assert lead.queue_id is not None
    routing = lead.receipt.get("routing") if isinstance(lead.receipt, dict) else None
    path = routing.get("queue_path") if isinstance(routing, dict) else None
    if path and isinstance(path, list) and isinstance(path[-1], dict) and path[-1].get("queue_id") == lead.queue_id:
        first = path[0].get("queue_id") if isinstance(path[0], dict) else None
        if first in snapshot.queue_by_id:
            return int(first)
    return lead.queue_id


def queued_leads_distribute(*, limit: int | None = None) -> RouteReport:
    """Give leads held in a queue another chance: anyone eligible in their queue now takes them, oldest first.

    Only distribution runs again (the rules already chose the queue). A lead still where routing held it
    starts again from the first queue of its path, with that path's skills: a German lead held in the
    catch-all because every German speaker was full goes back to DACH when one has room, and a lead held
    for DACH's morning goes to the first DACH rep at work. A lead moved since (by a manager or the SLA
    ladder) is distributed in the queue it is in.
    Side effects: as ``leads_route`` for the leads that find a rep.
    """
    limit = limit or settings.LEADROUTER_ROUTING_BATCH_SIZE
    report = RouteReport()
    with transaction.atomic():
        held = list(
            Lead.objects.filter(status=Lead.Status.QUEUED, queue__isnull=False)
            .select_for_update(skip_locked=True)
            .order_by("routed_at", "pk")[:limit]
        )
        if not held:
            return report
        routing_lock()
        now = timezone.now()
        snapshot = snapshot_with_current_load(coverage.refresh().snapshot(now=now), now=now)
        start_pointers = {queue.id: queue.rr_pointer for queue in snapshot.queues}
        handovers = []
        for lead in held:
            assert lead.queue_id is not None
            placed = distribute(_held_where(lead, snapshot), snapshot, now)
            if placed.outcome != "assigned" or placed.rep_id is None:
                continue
            snapshot = apply_decision(
                snapshot,
                Decision(
                    "assigned",
                    "queue",
                    rep_id=placed.rep_id,
                    queue_id=placed.queue_id,
                    pointer_advance=placed.pointer_advance,
                ),
            )
            winner = snapshot.rep_by_id.get(placed.rep_id)
            released = {
                "at": now.isoformat(),
                "queue_path": placed.path,
                "winner": placed.rep_id,
                "summary": (
                    f"Assigned to {winner.username if winner else f'rep {placed.rep_id}'} in "
                    f"{snapshot.queue_by_id[placed.queue_id].name} once someone there could take it; the SLA "
                    "clock started then."
                ),
            }
            lead.receipt = {**lead.receipt, "routing": {**lead.receipt.get("routing", {}), "released": released}}
            handovers.append(
                Handover(
                    lead=lead,
                    rep_id=placed.rep_id,
                    queue_id=placed.queue_id,
                    status=Lead.Status.ASSIGNED,
                    reason=Assignment.Reason.ROUTED,
                    summary=str(released["summary"]),
                    receipt={"queue_path": placed.path, "winner": placed.rep_id, "at": released["at"]},
                )
            )
        if not handovers:
            return report
        moved = {q.id: q.rr_pointer for q in snapshot.queues if q.rr_pointer != start_pointers.get(q.id)}
        changed = owners_change(handovers, now=now, lead_fields=["receipt"], pointers=moved)
        report.leads = len(handovers)
        report.by_status[Lead.Status.ASSIGNED] = len(handovers)
        report.assignment_ids.extend(changed.assignment_ids)
    return report
