"""Replay: what a coverage document (a draft, a version, a file, or the live model) would have done to past leads.

The engine is the one every lead goes through (``routing.engine.route_lead``); replay only feeds it the past.
``coverage_replay`` works in this order (docs/replay.md states the model and its limits):

1. Read the leads routed in the period (and matching the filters) in the order they were routed, with only
   the columns the engine reads: their stored standardized, enriched and scored facts, the account match,
   and what routing decided then. Nothing is standardized, enriched or matched again.
2. Read what happened to them afterwards from the assignment history: the decision then is the first routed
   assignment (a held lead has no rep); later rows say a lead was taken from a hold, reassigned by hand or by
   the SLA ladder, sent back, or moved by a departure, which is how a changed lead explains itself.
3. Build the coverage snapshot the document describes. For a document other than the live model, the import
   runs inside a transaction that is always rolled back (as ``coverage import --dry-run`` does), the
   snapshot and the accounts are read in it, and nothing is kept: not the rows, not the coverage version bump,
   not a version record. The routing workers' cached copy is never touched.
4. Set the starting state at the start of the period: each rep's open leads then (leads routed before and not
   closed by then), their count for that day, and each round-robin pointer where the last assignment through
   the queue before the period left it.
5. Route every lead at its original decision time (``routed_at``), in the original order: working hours and
   out-of-office periods are judged at that instant, the account's open opportunity is the one open then.
   Between decisions, leads close when they closed in reality (whoever holds them in the replay), a rep's day
   count starts again at their midnight, and a lead held both then and now is taken from the hold when it was
   then. Loads and pointers move with every decision (``apply_decision``).
6. Compare each decision with the one made then, and sum up per rep and per queue: counts before and after,
   the fairness spread (max − min and a Gini coefficient), leads landing off hours, reps pushed past their
   capacity, and every lead that changes hands with the rule that now decides it.
"""

from __future__ import annotations

import heapq
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Count, Q

from leadrouter.coverage import CoverageError, apply_import, load_yaml
from leadrouter.coverage.versions import draft_document, version_get
from routing.engine import (
    AccountFacts,
    LeadFacts,
    Snapshot,
    apply_decision,
    is_working,
    route_lead,
    weighted_sequence,
    with_rep_loads,
)
from routing.engine.distribution import ordered_members
from routing.models import TAKEN_FROM_QUEUE_NOTE, Assignment, Lead, Rule
from routing.pipeline import LEAD_FACT_FIELDS
from routing.selectors import routing_snapshot
from territories.models import (
    Account,
    CoverageDraft,
    CoverageRevision,
    CoverageVersion,
    Opportunity,
    ReplayRun,
)

UTC = ZoneInfo("UTC")
# The lead columns replay reads: the engine's facts, the account match and the decision then.
_FACT_COLUMNS = (*LEAD_FACT_FIELDS, "score", "account_id", "account_match_weak")
_DECISION_COLUMNS = ("id", "status", "owner_id", "queue_id", "rule_id", "routed_at", "closed_at")
# Statuses of leads that never reached the engine, or not as themselves.
_NOT_ROUTED = (Lead.Status.RECEIVED, Lead.Status.ROUTING, Lead.Status.DUPLICATE)
# Later assignment reasons, as a changed lead's explanation says them.
_LATER: dict[str, str] = {
    Assignment.Reason.MANUAL: "reassigned by hand after routing",
    Assignment.Reason.ESCALATION: "reassigned by the SLA ladder after routing",
    Assignment.Reason.NOT_MINE: "sent back by the rep and routed again",
    Assignment.Reason.DEPARTURE: "moved when its rep left",
    Assignment.Reason.REOPENED: "reopened after closing",
}
# At most this many changed leads are listed by the API and stored with a run; counts cover them all.
CHANGED_LISTED = 2000


@dataclass(frozen=True)
class ReplayFilters:
    """Which past leads to replay: routed in [since, until), optionally of one source and one queue (the
    queue routing placed them in then)."""

    since: datetime
    until: datetime
    source: str = ""
    queue_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "source": self.source,
            "queue_id": self.queue_id,
        }


@dataclass(frozen=True)
class Then:
    """What routing decided for a lead then, and what happened to it afterwards."""

    outcome: str
    rep_id: int | None
    queue_id: int | None
    rule_id: int | None
    released: tuple[int, datetime] | None = None  # A held lead taken from the hold: by whom, when.
    later: tuple[str, ...] = ()  # Later assignment reasons (see _LATER).


@dataclass
class _History:
    lead_ids: list[int] = field(default_factory=list)
    facts: list[tuple[Any, ...]] = field(default_factory=list)
    decided_at: list[datetime] = field(default_factory=list)
    closed_at: list[datetime | None] = field(default_factory=list)
    then: list[Then] = field(default_factory=list)


class ReplayError(ValueError):
    """The document cannot be replayed; ``errors`` are (path, message) pairs, as an import gives them."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))
        self.errors = list(errors)


def coverage_replay(
    *,
    document: Mapping[str, Any] | None,
    filters: ReplayFilters,
    label: str = "",
    changed_limit: int | None = None,
) -> dict[str, Any]:
    """Replay ``document`` (None: the live coverage model) over the leads ``filters`` choose; the report as a
    JSON-serialisable dict. Writes nothing. Raises ReplayError when the document does not import (the
    import's own messages). ``changed_limit`` caps the listed changed leads (all of them when None)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    history = _history(filters)
    live = routing_snapshot(now=filters.since)
    live_rules = dict(Rule.objects.values_list("id", "name"))
    if document is None:
        snapshot, accounts = live, _accounts(history)
    else:
        snapshot, accounts = _document_state(document, filters, history)
    loaded, cpu_loaded = time.perf_counter(), time.process_time()
    report = _replay(history, live, snapshot, accounts, filters, live_rules, changed_limit=changed_limit)
    report["replayed"] = label or ("live coverage" if document is None else "document")
    report["timings"] = {
        "load_seconds": round(loaded - started, 3),
        "replay_seconds": round(time.perf_counter() - loaded, 3),
        # This process's own CPU time: on a busy machine, what the wall times above would be on an idle one.
        "load_cpu_seconds": round(cpu_loaded - cpu_started, 3),
        "replay_cpu_seconds": round(time.process_time() - cpu_loaded, 3),
    }
    return report


@dataclass(frozen=True)
class Replayed:
    """What a replay runs: a whole coverage document (None: the live model), named for people."""

    document: dict[str, Any] | None
    label: str
    draft: CoverageDraft | None = None
    version: CoverageRevision | None = None


def replay_source(source: str) -> Replayed:
    """What ``source`` names: ``live``, ``version N`` or ``vN``, a draft's name, or a YAML file. ReplayError
    when it names nothing or does not read."""
    source = source.strip()
    lowered = source.lower()
    if lowered == "live":
        return Replayed(None, "live coverage")
    number = lowered.removeprefix("version").strip().removeprefix("v")
    if lowered.startswith("v") and number.isdigit():
        return replay_version(int(number))
    draft = CoverageDraft.objects.filter(name=source).first()
    if draft is not None:
        return replay_draft(draft)
    path = Path(source)
    if not path.is_file():
        raise ReplayError([("", f"{source!r} is neither a draft, a version, 'live' nor a readable file.")])
    try:
        return replay_text(path.read_text(encoding="utf-8"), label=path.name)
    except (OSError, UnicodeDecodeError) as error:
        raise ReplayError([("", f"Cannot read {source}: {error}")]) from error


def replay_version(number: int) -> Replayed:
    try:
        version = version_get(number)
    except CoverageError as error:
        raise ReplayError(error.errors) from error
    return Replayed(version.document, f"version {version.number}", version=version)


def replay_draft(draft: CoverageDraft) -> Replayed:
    try:
        return Replayed(draft_document(draft), f"draft {draft.name}", draft=draft)
    except CoverageError as error:
        raise ReplayError(error.errors) from error


def replay_text(text: str, *, label: str) -> Replayed:
    """An uploaded or given YAML document."""
    try:
        return Replayed(load_yaml(text), label)
    except CoverageError as error:
        raise ReplayError(error.errors) from error


def replay_run(*, replayed: Replayed, filters: ReplayFilters, user: Any = None) -> ReplayRun:
    """Replay ``replayed`` over the leads ``filters`` choose and keep the report (its first ``CHANGED_LISTED``
    changed leads; the counts cover all). Side effects: one ReplayRun row; nothing else is written."""
    report = coverage_replay(
        document=replayed.document, filters=filters, label=replayed.label, changed_limit=CHANGED_LISTED
    )
    return ReplayRun.objects.create(
        label=replayed.label[:200],
        draft=replayed.draft,
        version=replayed.version,
        filters=filters.as_json(),
        report=report,
        created_by=user if user is not None and user.is_authenticated else None,
    )


def draft_latest_replay(draft: CoverageDraft) -> ReplayRun | None:
    """The draft's latest replay, shown beside its publish button."""
    return ReplayRun.objects.filter(draft=draft).order_by("-created_at", "-id").first()


# --- 1 and 2: the past ------------------------------------------------------------------------------------


def _history(filters: ReplayFilters) -> _History:
    leads = (
        Lead.objects.filter(routed_at__gte=filters.since, routed_at__lt=filters.until)
        .exclude(status__in=_NOT_ROUTED)
        .filter(routing_error="")
        # Scoring kept these out of sales routing: the engine never saw them, and no coverage change would.
        .exclude(
            status__in=(Lead.Status.NURTURE, Lead.Status.DISQUALIFIED),
            owner__isnull=True,
            queue__isnull=True,
            rule__isnull=True,
        )
    )
    if filters.source:
        leads = leads.filter(source=filters.source)
    if filters.queue_id is not None:
        leads = leads.filter(queue_id=filters.queue_id)
    # A lead with one assignment was decided as its row says (owner, queue, status); only the history of leads
    # with more is read, which keeps 100,000 assignment rows out of this process.
    several = (
        Assignment.objects.filter(lead__in=leads.values("pk"))
        .values("lead_id")
        .annotate(count=Count("id"))
        .filter(count__gt=1)
        .values("lead_id")
    )
    assignments: dict[int, list[tuple[int | None, int | None, str, str, datetime]]] = defaultdict(list)
    for lead_id, rep_id, queue_id, reason, note, assigned_at in (
        Assignment.objects.filter(lead__in=several)
        .order_by("lead_id", "assigned_at", "id")
        .values_list("lead_id", "rep_id", "queue_id", "reason", "note", "assigned_at")
        .iterator(chunk_size=10_000)
    ):
        assignments[lead_id].append((rep_id, queue_id, reason, note, assigned_at))
    history = _History()
    facts_width = len(_FACT_COLUMNS)
    for row in (
        leads.order_by("routed_at", "received_at", "id")
        .values_list(*_FACT_COLUMNS, *_DECISION_COLUMNS)
        .iterator(chunk_size=10_000)
    ):
        facts, (lead_id, status, owner_id, queue_id, rule_id, routed_at, closed_at) = (
            row[:facts_width],
            row[facts_width:],
        )
        history.lead_ids.append(lead_id)
        history.facts.append(facts)
        history.decided_at.append(routed_at)
        history.closed_at.append(closed_at)
        history.then.append(_then(status, owner_id, queue_id, rule_id, assignments.get(lead_id, ())))
    return history


def _then(
    status: str,
    owner_id: int | None,
    queue_id: int | None,
    rule_id: int | None,
    rows: Sequence[tuple[int | None, int | None, str, str, datetime]],
) -> Then:
    """The decision then: the first routed assignment (a held lead's has no rep); without the history (a lead
    assigned once, or never), what the row says: sent to nurture or discarded by a rule, or held (no owner),
    or assigned to its owner."""
    routed = [row for row in rows if row[2] == Assignment.Reason.ROUTED]
    later = tuple(sorted({row[2] for row in rows if row[2] != Assignment.Reason.ROUTED}))
    if not routed:
        if owner_id is None and status in (Lead.Status.NURTURE, Lead.Status.DISCARDED):
            outcome = status
        elif owner_id is None:
            outcome = "queued"  # Held, and perhaps closed since without ever having an owner.
        else:
            outcome = "assigned"
        return Then(outcome, owner_id if outcome == "assigned" else None, queue_id, rule_id, later=later)
    rep_id, first_queue, _, _, _ = routed[0]
    released = None
    if rep_id is None:
        taken = next(((row[0], row[4]) for row in routed[1:] if row[0] is not None), None)
        if taken is not None and taken[0] is not None:
            released = (taken[0], taken[1])
    return Then(
        "assigned" if rep_id is not None else "queued",
        rep_id,
        first_queue,
        rule_id,
        released=released,
        later=later,
    )


# --- 3: the document's coverage ------------------------------------------------------------------------


def _document_state(
    document: Mapping[str, Any], filters: ReplayFilters, history: _History
) -> tuple[Snapshot, dict[int, tuple[AccountFacts, list[tuple[datetime, datetime | None, int]]]]]:
    """The snapshot and accounts ``document`` describes, read inside an import that is rolled back.

    The document is a whole coverage model (``--prune``), as a draft or a version is. A document that does
    not import raises ReplayError with the import's messages."""
    try:
        with transaction.atomic():
            apply_import(dict(document), prune=True)
            snapshot = routing_snapshot(now=filters.since)
            accounts = _accounts(history)
            # Nothing of the import is kept: its rows, its version bump, anything recorded about it.
            transaction.set_rollback(True)
    except CoverageError as error:
        raise ReplayError(error.errors) from error
    return snapshot, accounts


def _accounts(history: _History) -> dict[int, tuple[AccountFacts, list[tuple[datetime, datetime | None, int]]]]:
    """The accounts the replayed leads matched, with their opportunities' (opened, closed, owner), newest
    first, so each lead's open opportunity owner can be judged at its own decision time."""
    position = _FACT_COLUMNS.index("account_id")
    ids = {facts[position] for facts in history.facts} - {None}
    if not ids:
        return {}
    accounts = Account.objects.all() if len(ids) > 5000 else Account.objects.filter(pk__in=ids)
    opportunities: dict[int, list[tuple[datetime, datetime | None, int]]] = defaultdict(list)
    for account_id, created_at, closed_at, stage, owner_id in (
        Opportunity.objects.filter(account__in=accounts, owner__isnull=False)
        .order_by("account_id", "-created_at", "-id")
        .values_list("account_id", "created_at", "closed_at", "stage", "owner_id")
    ):
        if stage != Opportunity.Stage.OPEN and closed_at is None:
            continue  # Closed at a time nobody recorded: never counted as open.
        opportunities[account_id].append((created_at, closed_at, owner_id))
    return {
        pk: (
            AccountFacts(id=pk, name=name, tier=tier, is_customer=customer, owner_rep_id=owner, territory_id=territory),
            opportunities.get(pk, []),
        )
        for pk, name, tier, customer, owner, territory in accounts.values_list(
            "pk", "name", "tier", "is_customer", "owner_id", "territory_id"
        )
        if pk in ids
    }


# --- 4: the state at the start of the period -----------------------------------------------------------


def _open_at_start(since: datetime) -> tuple[dict[int, int], list[tuple[datetime, int]]]:
    """Each rep's open leads at ``since`` (routed before, not closed by then), and when those close later."""
    opened: dict[int, int] = defaultdict(int)
    closing: list[tuple[datetime, int]] = []
    for owner_id, closed_at in (
        Lead.objects.filter(owner__isnull=False, routed_at__lt=since)
        .filter(Q(status__in=Lead.OPEN_STATUSES) | Q(status__in=Lead.CLOSE_STATUSES, closed_at__gt=since))
        .values_list("owner_id", "closed_at")
    ):
        opened[owner_id] += 1
        if closed_at is not None and closed_at > since:
            closing.append((closed_at, owner_id))
    return opened, closing


def _today_at_start(since: datetime, snapshot: Snapshot) -> dict[int, tuple[date, int]]:
    """Each rep's new leads on the day (in their zone) that ``since`` falls in, before ``since``."""
    zones = {rep.id: ZoneInfo(rep.time_zone or "UTC") for rep in snapshot.reps}
    counts: dict[int, tuple[date, int]] = {}
    for rep_id, assigned_at in Assignment.objects.filter(
        rep__isnull=False, assigned_at__gte=since - timedelta(hours=27), assigned_at__lt=since
    ).values_list("rep_id", "assigned_at"):
        zone = zones.get(rep_id)
        if zone is None:
            continue
        day = since.astimezone(zone).date()
        if assigned_at.astimezone(zone).date() == day:
            counts[rep_id] = (day, counts.get(rep_id, (day, 0))[1] + 1)
    return counts


def _pointers_at_start(since: datetime, snapshot: Snapshot) -> dict[int, int]:
    """Each rotating queue's pointer where the last assignments through it before ``since`` left it.

    Round robin: just past the last rep routed there. Weighted: the slot of the sequence that best matches
    the latest picks. A queue never routed through starts at 0, as a new queue does."""
    pointers: dict[int, int] = {}
    for queue in snapshot.queues:
        if queue.method == "load_balanced" or not queue.members:
            continue
        members = [member.rep_id for member in ordered_members(queue)]
        sequence = (
            weighted_sequence(tuple(member.weight for member in ordered_members(queue)))
            if queue.method == "weighted"
            else tuple(range(len(members)))
        )
        recent = list(
            Assignment.objects.filter(
                queue_id=queue.id, rep__isnull=False, reason=Assignment.Reason.ROUTED, assigned_at__lt=since
            )
            .exclude(note=TAKEN_FROM_QUEUE_NOTE)
            .order_by("-assigned_at", "-id")
            .values_list("rep_id", flat=True)[: len(sequence)]
        )
        if not recent or recent[0] not in members:
            continue
        picks = [members.index(rep_id) if rep_id in members else -1 for rep_id in recent]
        best, best_length = None, -1
        for slot, index in enumerate(sequence):
            if index != picks[0]:
                continue
            length = 0
            while length < len(picks) and sequence[(slot - length) % len(sequence)] == picks[length]:
                length += 1
            if length > best_length:
                best, best_length = slot, length
        if best is not None:
            pointers[queue.id] = best + 1
    return pointers


# --- 5 and 6: the replay ----------------------------------------------------------------------------------


@dataclass
class _Loads:
    """Open leads over time for one side (then or replayed): the peak per rep, and when leads close."""

    open: dict[int, int]
    closing: list[tuple[datetime, int, int]] = field(default_factory=list)
    peak: dict[int, int] = field(default_factory=dict)
    sequence: int = 0

    def add(self, rep_id: int, closed_at: datetime | None) -> None:
        self.open[rep_id] = self.open.get(rep_id, 0) + 1
        self.peak[rep_id] = max(self.peak.get(rep_id, 0), self.open[rep_id])
        if closed_at is not None:
            self.close_at(closed_at, rep_id)

    def close_at(self, when: datetime, rep_id: int) -> None:
        self.sequence += 1
        heapq.heappush(self.closing, (when, self.sequence, rep_id))

    def close_until(self, now: datetime) -> set[int]:
        """Close every lead due by ``now``; the reps whose load went down."""
        changed = set()
        while self.closing and self.closing[0][0] <= now:
            _, _, rep_id = heapq.heappop(self.closing)
            self.open[rep_id] = max(self.open.get(rep_id, 0) - 1, 0)
            changed.add(rep_id)
        return changed


def _replay(
    history: _History,
    live: Snapshot,
    snapshot: Snapshot,
    accounts: Mapping[int, tuple[AccountFacts, list[tuple[datetime, datetime | None, int]]]],
    filters: ReplayFilters,
    live_rules: Mapping[int, str],
    *,
    changed_limit: int | None,
) -> dict[str, Any]:
    since = filters.since
    opened, closing = _open_at_start(since)
    before, after = _Loads(dict(opened)), _Loads(dict(opened))
    for when, rep_id in closing:
        before.close_at(when, rep_id)
        after.close_at(when, rep_id)
    today = _today_at_start(since, snapshot)
    zones = {rep.id: ZoneInfo(rep.time_zone or "UTC") for rep in snapshot.reps}
    state = with_rep_loads(
        snapshot,
        {rep.id: (after.open.get(rep.id, 0), _today(today, rep.id, since, zones)) for rep in snapshot.reps},
    )
    pointers = _pointers_at_start(since, snapshot)
    # Decisions only: replay reads where each lead goes, never the candidates' lines of its receipt.
    state = replace(
        state, queues=tuple(replace(q, rr_pointer=pointers.get(q.id, 0)) for q in state.queues), explain=False
    )
    next_midnight = _next_midnight(since, zones.values())
    # Held both then and in the replay: taken from the hold when it was then (time, order, rep, closed at).
    releases: list[tuple[datetime, int, int, datetime | None]] = []

    account_position = _FACT_COLUMNS.index("account_id")
    weak_position = _FACT_COLUMNS.index("account_match_weak")
    score_position = _FACT_COLUMNS.index("score")
    fact_names = LEAD_FACT_FIELDS
    width = len(fact_names)
    # Only the live model's replay compares like with like: there, a coverage change since explains a difference.
    last_change = _coverage_changes(since) if snapshot is live else []

    by_rep_before: dict[int, int] = defaultdict(int)
    by_rep_after: dict[int, int] = defaultdict(int)
    by_queue_before: dict[int, int] = defaultdict(int)
    by_queue_after: dict[int, int] = defaultdict(int)
    outcomes_before: dict[str, int] = defaultdict(int)
    outcomes_after: dict[str, int] = defaultdict(int)
    off_hours_before: dict[int, int] = defaultdict(int)
    off_hours_after: dict[int, int] = defaultdict(int)
    gains: dict[int, int] = defaultdict(int)
    losses: dict[int, int] = defaultdict(int)
    changed: list[dict[str, Any]] = []
    changed_count = 0
    unexplained = 0

    for index, lead_id in enumerate(history.lead_ids):
        now = history.decided_at[index]
        closed_at = history.closed_at[index]
        then = history.then[index]
        touched = after.close_until(now)
        before.close_until(now)
        while releases and releases[0][0] <= now:
            _, _, rep_id, release_closes = heapq.heappop(releases)
            after.add(rep_id, release_closes)
            today[rep_id] = _counted(today, rep_id, now, zones)
            touched.add(rep_id)
        if now >= next_midnight:
            touched.update(rep_id for rep_id in today if today[rep_id][1])
            next_midnight = _next_midnight(now, zones.values())
        if touched:
            state = with_rep_loads(
                state, {rep_id: (after.open.get(rep_id, 0), _today(today, rep_id, now, zones)) for rep_id in touched}
            )

        row = history.facts[index]
        account = None
        account_id = row[account_position]
        if account_id is not None and account_id in accounts:
            account_facts, opportunities = accounts[account_id]
            owner = next(
                (
                    rep
                    for opened_at, closed, rep in opportunities
                    if opened_at <= now and (closed is None or closed > now)
                ),
                None,
            )
            account = replace(account_facts, open_opportunity_owner_rep_id=owner, weak_match=row[weak_position])
        facts = LeadFacts(
            **dict(zip(fact_names, row[:width], strict=True)), score=row[score_position] or 0, account=account
        )
        decision = route_lead(facts, state, now=now)
        state = apply_decision(state, decision)
        if decision.outcome == "assigned" and decision.rep_id is not None:
            after.add(decision.rep_id, closed_at)
            today[decision.rep_id] = _counted(today, decision.rep_id, now, zones)
        elif then.released is not None and decision.outcome == "queued" and decision.queue_id == then.queue_id:
            heapq.heappush(releases, (then.released[1], lead_id, then.released[0], closed_at))

        # Then.
        if then.rep_id is not None and then.outcome == "assigned":
            before.add(then.rep_id, closed_at)
            by_rep_before[then.rep_id] += 1
            rep = live.rep_by_id.get(then.rep_id)
            if rep is not None and not is_working(rep, now):
                off_hours_before[then.rep_id] += 1
        elif then.released is not None:
            before.add(then.released[0], closed_at)
        if then.queue_id is not None:
            by_queue_before[then.queue_id] += 1
        outcomes_before[then.outcome] += 1
        # Now.
        if decision.outcome == "assigned" and decision.rep_id is not None:
            by_rep_after[decision.rep_id] += 1
            rep = state.rep_by_id.get(decision.rep_id)
            if rep is not None and not is_working(rep, now):
                off_hours_after[decision.rep_id] += 1
        if decision.queue_id is not None:
            by_queue_after[decision.queue_id] += 1
        outcomes_after[decision.outcome] += 1

        rep_after = decision.rep_id if decision.outcome == "assigned" else None
        if (then.outcome, then.rep_id, then.queue_id) == (decision.outcome, rep_after, decision.queue_id):
            continue
        changed_count += 1
        if then.rep_id != rep_after:
            if then.rep_id is not None:
                losses[then.rep_id] += 1
            if rep_after is not None:
                gains[rep_after] += 1
        why = _why(then, now, live, last_change)
        if why is None:
            unexplained += 1
        if changed_limit is None or len(changed) < changed_limit:
            changed.append(
                {
                    "lead": lead_id,
                    "routed_at": now.isoformat(),
                    "before": _side(then.outcome, then.rep_id, then.queue_id, then.rule_id, live, live_rules),
                    "after": _side(decision.outcome, rep_after, decision.queue_id, decision.rule_id, state, None),
                    "decided_by": _decided_by(decision, state),
                    "why": why,
                }
            )

    return _summary(
        history=history,
        live=live,
        state=state,
        filters=filters,
        by_rep=(by_rep_before, by_rep_after),
        by_queue=(by_queue_before, by_queue_after),
        outcomes=(outcomes_before, outcomes_after),
        off_hours=(off_hours_before, off_hours_after),
        peaks=(before.peak, after.peak),
        gains_losses=(gains, losses),
        changed=changed,
        changed_count=changed_count,
        unexplained=unexplained,
    )


def _today(today: Mapping[int, tuple[date, int]], rep_id: int, now: datetime, zones: Mapping[int, ZoneInfo]) -> int:
    day, count = today.get(rep_id, (None, 0))
    return count if day == now.astimezone(zones.get(rep_id, UTC)).date() else 0


def _counted(
    today: Mapping[int, tuple[date, int]], rep_id: int, now: datetime, zones: Mapping[int, ZoneInfo]
) -> tuple[date, int]:
    return now.astimezone(zones.get(rep_id, UTC)).date(), _today(today, rep_id, now, zones) + 1


def _next_midnight(now: datetime, zones: Iterable[ZoneInfo]) -> datetime:
    """The first local midnight after ``now`` in any of ``zones``: when some rep's day count starts again."""
    midnights = [
        datetime.combine(now.astimezone(zone).date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        for zone in set(zones) or {UTC}
    ]
    return min(midnight.astimezone(UTC) for midnight in midnights)


def _coverage_changes(since: datetime) -> list[tuple[datetime, int | None]]:
    """When the coverage model changed since ``since``, newest first: the numbered versions, and the last change
    of any kind (an availability page records no version, see leadrouter/coverage/versions.py)."""
    changes: list[tuple[datetime, int | None]] = list(
        CoverageRevision.objects.filter(created_at__gt=since)
        # A baseline records the model as it already was: not a change at its own time.
        .exclude(kind=CoverageRevision.Kind.BASELINE)
        .order_by("-created_at")
        .values_list("created_at", "number")
    )
    changed_at = CoverageVersion.objects.values_list("changed_at", flat=True).first()
    if changed_at is not None and changed_at > since and not any(at >= changed_at for at, _ in changes):
        changes.insert(0, (changed_at, None))
    return changes


def _why(then: Then, now: datetime, live: Snapshot, changes: Sequence[tuple[datetime, int | None]]) -> str | None:
    """Why a lead the replay places differently was placed as it was then, when its history says so."""
    reasons = [_LATER[reason] for reason in then.later if reason in _LATER]
    rep = live.rep_by_id.get(then.rep_id) if then.rep_id is not None else None
    if rep is not None and not rep.active:
        reasons.append(f"{rep.username} has since left")
    if then.released is not None:
        reasons.append("taken from a hold later")
    later = [number for changed_at, number in changes if changed_at > now]
    if later:
        numbers = sorted(number for number in later if number is not None)
        reasons.append("coverage changed since" + (f" (version {numbers[0]} on)" if numbers else ""))
    return "; ".join(reasons) or None


def _side(
    outcome: str,
    rep_id: int | None,
    queue_id: int | None,
    rule_id: int | None,
    snapshot: Snapshot,
    rule_names: Mapping[int, str] | None,
) -> dict[str, Any]:
    rep = snapshot.rep_by_id.get(rep_id) if rep_id is not None else None
    queue = snapshot.queue_by_id.get(queue_id) if queue_id is not None else None
    names = rule_names if rule_names is not None else {rule.id: rule.name for rule in snapshot.rules}
    return {
        "outcome": outcome,
        "rep": rep.username if rep else (None if rep_id is None else f"rep {rep_id}"),
        "queue": queue.name if queue else (None if queue_id is None else f"queue {queue_id}"),
        "rule": names.get(rule_id) if rule_id is not None else None,
    }


def _decided_by(decision: Any, snapshot: Snapshot) -> str:
    """What now decides the lead, as RevOps name it."""
    if decision.via == "account":
        return "the account's owner"
    if decision.rule_id is not None:
        rule = next((rule for rule in snapshot.rules if rule.id == decision.rule_id), None)
        return f"rule '{rule.name}'" if rule else f"rule {decision.rule_id}"
    return "the catch-all queue (no rule matched)"


def _gini(values: Sequence[int]) -> float:
    """The Gini coefficient of ``values``: 0 when everyone has the same, towards 1 when one has everything."""
    ordered = sorted(values)
    total = sum(ordered)
    if not ordered or total == 0:
        return 0.0
    n = len(ordered)
    weighted = sum((position + 1) * value for position, value in enumerate(ordered))
    return round((2 * weighted) / (n * total) - (n + 1) / n, 4)


def _fairness(counts: Mapping[int, int], reps: Iterable[int]) -> dict[str, Any]:
    values = [counts.get(rep_id, 0) for rep_id in reps]
    return {
        "reps": len(values),
        "spread": (max(values) - min(values)) if values else 0,
        "gini": _gini(values),
    }


def _distributing(snapshot: Snapshot) -> set[int]:
    """Reps who take leads from a queue: active members of active queues, themselves active."""
    return {
        member.rep_id
        for queue in snapshot.queues
        if queue.active or queue.is_catch_all
        for member in queue.members
        if member.active and snapshot.rep_by_id.get(member.rep_id) and snapshot.rep_by_id[member.rep_id].active
    }


def _summary(
    *,
    history: _History,
    live: Snapshot,
    state: Snapshot,
    filters: ReplayFilters,
    by_rep: tuple[Mapping[int, int], Mapping[int, int]],
    by_queue: tuple[Mapping[int, int], Mapping[int, int]],
    outcomes: tuple[Mapping[str, int], Mapping[str, int]],
    off_hours: tuple[Mapping[int, int], Mapping[int, int]],
    peaks: tuple[Mapping[int, int], Mapping[int, int]],
    gains_losses: tuple[Mapping[int, int], Mapping[int, int]],
    changed: list[dict[str, Any]],
    changed_count: int,
    unexplained: int,
) -> dict[str, Any]:
    def rep_name(rep_id: int) -> str:
        rep = state.rep_by_id.get(rep_id) or live.rep_by_id.get(rep_id)
        return rep.username if rep else f"rep {rep_id}"

    def queue_name(queue_id: int) -> str:
        queue = state.queue_by_id.get(queue_id) or live.queue_by_id.get(queue_id)
        return queue.name if queue else f"queue {queue_id}"

    rep_ids = set(by_rep[0]) | set(by_rep[1]) | _distributing(live) | _distributing(state)
    reps = []
    for rep_id in sorted(rep_ids, key=rep_name):
        rep = state.rep_by_id.get(rep_id) or live.rep_by_id.get(rep_id)
        capacity = rep.max_open_leads if rep else None
        reps.append(
            {
                "rep": rep_name(rep_id),
                "before": by_rep[0].get(rep_id, 0),
                "after": by_rep[1].get(rep_id, 0),
                "change": by_rep[1].get(rep_id, 0) - by_rep[0].get(rep_id, 0),
                "gains": gains_losses[0].get(rep_id, 0),
                "losses": gains_losses[1].get(rep_id, 0),
                "off_hours_before": off_hours[0].get(rep_id, 0),
                "off_hours_after": off_hours[1].get(rep_id, 0),
                "peak_open_before": peaks[0].get(rep_id, 0),
                "peak_open_after": peaks[1].get(rep_id, 0),
                "max_open_leads": capacity,
                "past_capacity_after": capacity is not None and peaks[1].get(rep_id, 0) > capacity,
            }
        )
    queue_ids = set(by_queue[0]) | set(by_queue[1])
    queues = [
        {
            "queue": queue_name(queue_id),
            "before": by_queue[0].get(queue_id, 0),
            "after": by_queue[1].get(queue_id, 0),
            "change": by_queue[1].get(queue_id, 0) - by_queue[0].get(queue_id, 0),
        }
        for queue_id in sorted(queue_ids, key=queue_name)
    ]
    return {
        "filters": filters.as_json(),
        "leads": len(history.lead_ids),
        "changed_count": changed_count,
        "unexplained": unexplained,
        "changed": changed,
        "by_rep": reps,
        "by_queue": queues,
        "outcomes": {"before": dict(sorted(outcomes[0].items())), "after": dict(sorted(outcomes[1].items()))},
        "fairness": {
            "before": _fairness(by_rep[0], sorted(set(by_rep[0]) | _distributing(live))),
            "after": _fairness(by_rep[1], sorted(set(by_rep[1]) | _distributing(state))),
        },
        "off_hours": {"before": sum(off_hours[0].values()), "after": sum(off_hours[1].values())},
        "past_capacity": [
            {"rep": line["rep"], "peak_open": line["peak_open_after"], "max_open_leads": line["max_open_leads"]}
            for line in reps
            if line["past_capacity_after"]
        ],
    }
