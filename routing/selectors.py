"""Reads for the routing app."""

import logging
import os
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from django.db import connection
from django.db.models import Count, F, Prefetch, Q, QuerySet
from django.utils import timezone

from routing.conditions import ConditionError, parse_condition
from routing.engine import (
    AccountFacts,
    ConditionGroup,
    LeadFacts,
    MemberInfo,
    QueueInfo,
    RepInfo,
    RuleInfo,
    Snapshot,
    TerritoryInfo,
)
from routing.engine.conditions import evaluate
from routing.matching import AccountIndex
from routing.models import Assignment, Lead, Queue, RepLoad, Rule, ScoringRule, ScoringThresholds, WorkerHeartbeat
from routing.ownership import local_day, rep_loads
from routing.pipeline import LEAD_FACT_FIELDS, Evaluation, evaluate_lead
from routing.rows import sql_ids_in
from routing.scoring import ScoringRuleInfo, Thresholds
from territories.models import Account, Opportunity, OutOfOffice, Rep, Territory, TerritoryCriterion

logger = logging.getLogger(__name__)

# Beat sends the heartbeat every 30 s; two missed beats mean something is stuck.
HEARTBEAT_STALE_AFTER = timedelta(seconds=90)


def heartbeat_status(*, name: str = "worker", now: datetime | None = None) -> dict[str, object]:
    now = now or timezone.now()
    heartbeat = WorkerHeartbeat.objects.filter(name=name).first()
    if heartbeat is None:
        return {"ok": False, "last_seen_at": None, "age_seconds": None}
    age = (now - heartbeat.last_seen_at).total_seconds()
    return {
        "ok": age <= HEARTBEAT_STALE_AFTER.total_seconds(),
        "last_seen_at": heartbeat.last_seen_at.isoformat(),
        "age_seconds": round(age, 1),
        "hostname": heartbeat.hostname,
    }


def broker_status(*, timeout: float | None = None) -> dict[str, object]:
    """Whether the Celery broker of the current settings takes a connection now, within ``timeout`` seconds
    (default ``LEADROUTER_BROKER_CHECK_TIMEOUT_SECONDS``), so an outage shows at once rather than when the
    heartbeat goes stale.

    Redis and RabbitMQ: a fresh connection (a pooled one could be stale) with one try and no retry; Redis
    answers a PING on it. The file-system broker has nothing to connect to: its folders must exist and be
    writable. Never raises; the reason is logged, not returned.
    """
    from celery import current_app
    from django.conf import settings

    timeout = settings.LEADROUTER_BROKER_CHECK_TIMEOUT_SECONDS if timeout is None else timeout
    url = settings.CELERY_BROKER_URL
    options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {})
    started = time.monotonic()
    try:
        if url.startswith("filesystem://"):
            folders = {options.get(name) for name in ("data_folder_in", "data_folder_out", "control_folder")}
            unusable = sorted(str(folder) for folder in folders if folder and not os.access(folder, os.W_OK | os.X_OK))
            if unusable:
                raise OSError(f"Broker folders missing or not writable: {', '.join(unusable)}")
        # Redis reads its timeouts from the transport options; AMQP from connect_timeout.
        options.update(socket_connect_timeout=timeout, socket_timeout=timeout)
        with current_app.connection_for_write(url=url, connect_timeout=timeout, transport_options=options) as conn:
            conn.ensure_connection(max_retries=0, timeout=timeout)
    except Exception:
        logger.warning("Health check: the broker does not answer.", exc_info=True)
        return {"ok": False, "seconds": round(time.monotonic() - started, 3)}
    return {"ok": True, "seconds": round(time.monotonic() - started, 3)}


def _stored_condition(data: Any, *, what: str) -> ConditionGroup | None:
    """A stored condition for the engine. Admin and import refuse broken ones; a row written around
    them is left out (and logged) rather than breaking every decision."""
    try:
        return parse_condition(data)
    except ConditionError:
        logger.error("%s has an invalid condition and is left out.", what)
        return None


def scoring_snapshot() -> tuple[list[ScoringRuleInfo], Thresholds]:
    """The active scoring rules and the thresholds, as the pure scorer reads them."""
    rules = []
    for rule in ScoringRule.objects.filter(active=True).order_by("id"):
        condition = _stored_condition(rule.condition, what=f"Scoring rule {rule.name}")
        if condition is not None:
            kind: Literal["fit", "intent"] = "intent" if rule.kind == ScoringRule.Kind.INTENT else "fit"
            rules.append(ScoringRuleInfo(name=rule.name, kind=kind, condition=condition, points=rule.points))
    current = ScoringThresholds.current()
    return rules, Thresholds(sales_min=current.sales_min, nurture_min=current.nurture_min)


def routing_snapshot(*, now: datetime) -> Snapshot:
    """The coverage model as the engine reads it, at ``now``: a bounded number of queries whatever its size.

    Each rep's load is read from the leads themselves (open leads; leads assigned
    since midnight in the rep's own time zone), so the snapshot never drifts
    from the data it describes.
    """
    territories = tuple(
        TerritoryInfo(
            id=territory.pk,
            name=territory.name,
            parent_id=territory.parent_id,
            criteria=_criteria_by_kind(territory.criteria.all()),
            queue_id=territory.queue_id,
            rep_id=territory.rep_id,
        )
        for territory in Territory.objects.prefetch_related("criteria")
    )
    rules = []
    for rule in Rule.objects.filter(active=True):
        condition = _stored_condition(rule.condition, what=f"Rule {rule.name}")
        if condition is None and rule.condition:
            continue
        rules.append(
            RuleInfo(
                id=rule.pk,
                name=rule.name,
                position=rule.position,
                action=rule.action,  # type: ignore[arg-type]
                condition=condition,
                queue_id=rule.queue_id,
                rep_id=rule.rep_id,
            )
        )
    queues = tuple(
        QueueInfo(
            id=queue.pk,
            name=queue.name,
            method=queue.method,  # type: ignore[arg-type]
            active=queue.active,
            is_catch_all=queue.is_catch_all,
            required_skills=frozenset(skill.code for skill in queue.required_skills.all()),
            skip_off_hours_reps=queue.skip_off_hours_reps,
            when_nobody_eligible=queue.when_nobody_eligible,  # type: ignore[arg-type]
            inherit_skills=queue.inherit_skills,
            fallback_id=queue.fallback_id,
            rr_pointer=queue.rr_pointer,
            members=tuple(
                MemberInfo(rep_id=member.rep_id, weight=member.weight, active=member.active, position=member.position)
                for member in queue.memberships.all()
            ),
        )
        for queue in Queue.objects.prefetch_related("required_skills", "memberships")
    )
    return Snapshot(
        territories=territories,
        rules=tuple(rules),
        queues=queues,
        reps=_rep_infos(now),
        catch_all_queue_id=Queue.objects.catch_all().pk,
    )


def _criteria_by_kind(criteria: Iterable[TerritoryCriterion]) -> dict[str, frozenset[str]]:
    by_kind: dict[str, set[str]] = defaultdict(set)
    for criterion in criteria:
        by_kind[criterion.kind].add(criterion.value)
    return {kind: frozenset(values) for kind, values in by_kind.items()}


def _rep_infos(now: datetime) -> tuple[RepInfo, ...]:
    reps = list(
        Rep.objects.select_related("user").prefetch_related(
            "skills",
            "working_hours",
            Prefetch("out_of_office", queryset=OutOfOffice.objects.filter(ends_at__gt=now)),
        )
    )
    open_leads, assigned_today = rep_loads(now=now)
    return tuple(
        RepInfo(
            id=rep.pk,
            username=rep.user.username,
            active=rep.active,
            time_zone=rep.time_zone,
            working_hours=tuple((window.weekday, window.start, window.end) for window in rep.working_hours.all()),
            out_of_office=tuple((period.starts_at, period.ends_at) for period in rep.out_of_office.all()),
            skills=frozenset(skill.code for skill in rep.skills.all()),
            open_leads=open_leads.get(rep.pk, 0),
            max_open_leads=rep.max_open_leads,
            assigned_today=assigned_today.get(rep.pk, 0),
            daily_cap=rep.daily_cap,
        )
        for rep in reps
    )


def snapshot_with_current_load(
    snapshot: Snapshot, *, now: datetime, state: Sequence[tuple[Any, ...]] | None = None
) -> Snapshot:
    """``snapshot`` (possibly cached) with the state that changes with every lead read fresh: round-robin
    pointers, rep loads, and whether each queue and rep still exists and is active — so a rep deactivated
    a moment ago (a departure) gets nothing, and a row deleted since the cache was filled is never chosen.
    One small statement whatever the size of the coverage model (``current_state``); ``state``: its rows, read
    by the caller (``current_state_statement``) with other statements in one round trip."""
    found = current_state_found(state, now=now) if state is not None else current_state(now=now)
    queues_now, reps_active, open_leads, assigned_today = found
    current = replace(
        snapshot,
        queues=tuple(
            replace(queue, rr_pointer=queues_now[queue.id][0], active=queues_now[queue.id][1])
            if queue.id in queues_now
            else replace(queue, active=False)
            for queue in snapshot.queues
        ),
        reps=tuple(
            replace(
                rep,
                active=reps_active.get(rep.id, False),
                open_leads=open_leads.get(rep.id, 0),
                assigned_today=assigned_today.get(rep.id, 0),
            )
            for rep in snapshot.reps
        ),
    )
    # Territories and rules are the cached snapshot's, and reps and queues keep their order: its compiled
    # indexes (built once on it, then kept with it) still hold, where rebuilding the territory index cost
    # every batch about a millisecond.
    for name in (
        "territory_by_id",
        "territory_index",
        "rules_in_order",
        "condition_memo",
        "rep_position",
        "queue_position",
    ):
        current.__dict__[name] = getattr(snapshot, name)
    return current


def current_state(
    *, now: datetime
) -> tuple[dict[int, tuple[int, bool]], dict[int, bool], dict[int, int], dict[int, int]]:
    """What routing reads fresh under its lock, in one statement: each queue's round-robin pointer and
    whether it is active; each rep's being active, open leads and new leads today (their counter's
    ``day`` is the rep's local today, else today's count is zero, as ``rep_loads`` reads it). Written as
    SQL because the routing lock is held while it runs, and building three ORM queries cost more than
    running them."""
    sql, params = current_state_statement()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return current_state_found(rows, now=now)


def current_state_statement() -> tuple[str, list[Any]]:
    """``current_state``'s statement, for a caller that sends it with others (``routing.bulk.reads_together``)."""
    queue, rep, load = Queue._meta.db_table, Rep._meta.db_table, RepLoad._meta.db_table
    sql = (
        f"SELECT 0, id, rr_pointer, active, 0, NULL, 0, '' FROM {queue} "
        f"UNION ALL SELECT 1, r.id, 0, r.active, COALESCE(l.open_leads, 0), l.day, COALESCE(l.assigned_today, 0), "
        f"r.time_zone FROM {rep} r LEFT JOIN {load} l ON l.rep_id = r.id"
    )
    return sql, []


def current_state_found(
    rows: Sequence[tuple[Any, ...]], *, now: datetime
) -> tuple[dict[int, tuple[int, bool]], dict[int, bool], dict[int, int], dict[int, int]]:
    """``current_state`` from the rows of ``current_state_statement``, read at ``now``."""
    queues: dict[int, tuple[int, bool]] = {}
    reps_active: dict[int, bool] = {}
    open_leads: dict[int, int] = {}
    assigned_today: dict[int, int] = {}
    today_in: dict[str, date] = {}
    for kind, pk, pointer, active, count, day, today, time_zone in rows:
        if kind == 0:
            queues[pk] = (pointer, bool(active))
            continue
        reps_active[pk] = bool(active)
        open_leads[pk] = count
        if day is None or not today:
            continue
        if isinstance(day, str):  # SQLite gives dates as text.
            day = date.fromisoformat(day)
        if time_zone not in today_in:
            today_in[time_zone] = local_day(now, time_zone)
        if day == today_in[time_zone]:
            assigned_today[pk] = today
    return queues, reps_active, open_leads, assigned_today


def account_facts(account_id: int) -> AccountFacts | None:
    """What routing needs to know about a matched account: owners, tier, customer flag, territory."""
    return accounts_facts([account_id]).get(account_id)


def accounts_facts(account_ids: Collection[int]) -> dict[int, AccountFacts]:
    """``account_facts`` for many accounts in one statement: the facts of each of ``account_ids`` that
    exists, by id. The open opportunity's owner is the newest open opportunity's that has one.

    One plain statement, since every routing batch with a matched account asks: the ORM's queryset with its
    subquery took ~3 ms a batch to build and compile, several times the statement."""
    if not account_ids:
        return {}
    among, params = sql_ids_in("a.id", sorted(account_ids))
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT a.id, a.name, a.tier, a.is_customer, a.owner_id, a.territory_id, ("
            f"SELECT o.owner_id FROM {quote(Opportunity._meta.db_table)} o WHERE o.account_id = a.id "
            "AND o.stage = %s AND o.owner_id IS NOT NULL ORDER BY o.created_at DESC LIMIT 1) "
            f"FROM {quote(Account._meta.db_table)} a WHERE {among}",
            [Opportunity.Stage.OPEN.value, *params],
        )
        rows = cursor.fetchall()
    return {
        account_id: AccountFacts(
            id=account_id,
            name=name,
            tier=tier,
            is_customer=bool(is_customer),
            owner_rep_id=owner_id,
            open_opportunity_owner_rep_id=opportunity_owner_id,
            territory_id=territory_id,
        )
        for account_id, name, tier, is_customer, owner_id, territory_id, opportunity_owner_id in rows
    }


def account_facts_of(
    account: Account, *, open_opportunity_owner_rep_id: int | None = None, weak_match: bool = False
) -> AccountFacts:
    """An account row as the engine and rule conditions read it."""
    return AccountFacts(
        id=account.pk,
        name=account.name,
        tier=account.tier,
        is_customer=account.is_customer,
        owner_rep_id=account.owner_id,
        open_opportunity_owner_rep_id=open_opportunity_owner_rep_id,
        territory_id=account.territory_id,
        weak_match=weak_match,
    )


def lead_simulate(*, raw: Mapping[str, Any], now: datetime | None = None) -> Evaluation:
    """Where ``raw`` would go right now under the live coverage model. Writes nothing."""
    now = now or timezone.now()
    return evaluate_lead(
        raw,
        now=now,
        snapshot=routing_snapshot(now=now),
        accounts=AccountIndex.load(),
        account_facts=account_facts,
        scoring=scoring_snapshot(),
    )


# How many of the latest routed leads a rule's "would have matched" list looks through.
RULE_MATCHES_SCANNED = 5000


@dataclass(frozen=True)
class RuleMatch:
    lead_id: int
    name: str
    routed_at: datetime
    won: bool  # The rule decided the lead then.
    rule: str  # The rule that decided it then, if any.
    owner: str
    queue: str


def rule_matches(*, rule: Rule, limit: int = 100, scanned: int = RULE_MATCHES_SCANNED) -> list[RuleMatch]:
    """The latest leads (up to ``limit``, newest first) whose stored facts meet ``rule``'s condition, among the
    last ``scanned`` routed leads: whether or not the rule won them then (a rule above it may have). The
    condition is the rule's as saved now, read by the engine's own ``evaluate`` on each lead's standardized,
    enriched and scored facts; ``account.*`` fields read the lead's account as it is now. Bounded queries."""
    condition = parse_condition(rule.condition) if rule.condition else None
    columns = (*LEAD_FACT_FIELDS, "score", "account_id", "id", "first_name", "last_name", "routed_at", "rule_id")
    width = len(LEAD_FACT_FIELDS)
    rows = list(
        Lead.objects.filter(routed_at__isnull=False)
        .exclude(status=Lead.Status.DUPLICATE)
        .order_by("-routed_at", "-id")
        .values_list(*columns)[:scanned]
    )
    accounts = {
        account.pk: account_facts_of(account)
        for account in Account.objects.filter(pk__in={row[width + 1] for row in rows} - {None})
    }
    found: list[tuple[Any, ...]] = []
    for row in rows:
        facts = LeadFacts(
            **dict(zip(LEAD_FACT_FIELDS, row[:width], strict=True)),
            score=row[width] or 0,
            account=accounts.get(row[width + 1]),
        )
        if condition is None or evaluate(condition, facts)[0]:
            found.append(row)
            if len(found) >= limit:
                break
    then = {
        pk: (owner or "", queue or "", rule_name or "")
        for pk, owner, queue, rule_name in Lead.objects.filter(pk__in=[row[width + 2] for row in found]).values_list(
            "pk", "owner__user__username", "queue__name", "rule__name"
        )
    }
    matches = []
    for row in found:
        lead_id, first_name, last_name, routed_at, rule_id = row[width + 2 :]
        owner, queue, rule_name = then.get(lead_id, ("", "", ""))
        name = " ".join(part for part in (first_name, last_name) if part) or row[0] or f"Lead {lead_id}"
        matches.append(RuleMatch(lead_id, name, routed_at, rule_id == rule.pk, rule_name, owner, queue))
    return matches


# --- The rep's pages ----------------------------------------------------------------------------------
# Which lead a page or endpoint may show is ``routing.access.lead_for_requester``.


def _lead_search(leads: QuerySet[Lead], search: str) -> QuerySet[Lead]:
    """Leads matching every word of ``search`` in their first or last name, company or e-mail."""
    for word in search.split()[:SEARCH_MAX_WORDS]:
        leads = leads.filter(
            Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
            | Q(company__icontains=word)
            | Q(email__icontains=word)
        )
    return leads


# Words of a search that count; a longer search is cut here rather than becoming a huge query.
SEARCH_MAX_WORDS = 5
# The closed view lists this many of the rep's leads, the most recently closed first.
CLOSED_VIEW_MAX = 100


def leads_for_rep(*, user: Any, status: str = "", queue_id: int | None = None, search: str = "") -> list[Lead]:
    """The open leads ``user`` owns as a rep, the most urgent SLA first, leads without a due time last.

    ``status`` (one of the open statuses), ``queue_id`` and ``search`` (words found in the name, company or
    e-mail) narrow the list. Each lead comes with its clock (``lead.sla``, or no attribute when it has none)
    and its queue.
    """
    if not user.is_authenticated:
        return []
    leads = Lead.objects.select_related("queue", "sla__policy", "sla__calendar").filter(
        owner__user=user, status__in=Lead.OPEN_STATUSES
    )
    if status:
        leads = leads.filter(status=status)
    if queue_id is not None:
        leads = leads.filter(queue_id=queue_id)
    leads = _lead_search(leads, search)
    # The policy's steps and the calendar's hours are read by the live SLA state of every row.
    leads = leads.prefetch_related("sla__policy__steps", "sla__calendar__hours", "sla__calendar__closed_dates")
    # Untouched clocks first, by due time (the most urgent on top); then touched leads and leads without an SLA.
    return list(
        leads.order_by(
            F("sla__touched_at").asc(nulls_first=True), F("sla__due_at").asc(nulls_last=True), "received_at", "pk"
        )
    )


def closed_leads_for_rep(*, user: Any, queue_id: int | None = None, search: str = "") -> list[Lead]:
    """The closed leads (disqualified, nurtured, converted, closed) ``user`` owns as a rep, the most recently
    closed first, at most ``CLOSED_VIEW_MAX``; ``queue_id`` and ``search`` narrow them as for open leads."""
    if not user.is_authenticated:
        return []
    leads = Lead.objects.select_related("queue", "closed_by").filter(owner__user=user, status__in=Lead.CLOSE_STATUSES)
    if queue_id is not None:
        leads = leads.filter(queue_id=queue_id)
    leads = _lead_search(leads, search)
    return list(leads.order_by(F("closed_at").desc(nulls_last=True), "-pk")[:CLOSED_VIEW_MAX])


def queues_for_rep(*, user: Any) -> list[Queue]:
    """The shared queues ``user`` is an active member of, each with ``waiting``: its leads held in the queue."""
    if not user.is_authenticated:
        return []
    return list(
        Queue.objects.filter(memberships__rep__user=user, memberships__active=True, active=True)
        .annotate(waiting=Count("leads", filter=Q(leads__status=Lead.Status.QUEUED)))
        .order_by("name")
    )


def assignment_history(*, lead: Lead, limit: int) -> tuple[list[Assignment], int]:
    """The lead's latest ``limit`` owner periods, oldest first, and how many older ones were left out."""
    rows = list(
        Assignment.objects.select_related("rep__user", "queue", "assigned_by")
        .filter(lead=lead)
        .order_by("-assigned_at", "-pk")[: limit + 1]
    )
    omitted = 0
    if len(rows) > limit:
        rows = rows[:limit]
        omitted = Assignment.objects.filter(lead=lead).count() - limit
    return rows[::-1], omitted
