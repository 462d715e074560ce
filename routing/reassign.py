"""Ownership changes a manager makes by hand: reassigning leads, and handing over a departing rep's work.

Both write ownership, so both take the routing lock (``routing_lock()``) like the routing worker and
the SLA sweep, and hand their decisions to the ownership layer (``routing.ownership.owners_change``):
the new owner is notified, gets a task, the counters move and the lead's first-touch clock restarts.

A departure is planned by ``departure_plan`` (a read: the page's preview) and carried out by
``rep_departure_apply``, which recomputes the same plan under the lock and writes it, so what the
manager saw is what happens unless leads or load changed in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from routing.engine import AccountFacts, LeadFacts, Snapshot, apply_decision, route_lead
from routing.engine.availability import direct_skip_reason
from routing.engine.territories import match_territory
from routing.models import Assignment, Lead
from routing.ownership import Handover, owners_change, rep_loads, routing_lock
from routing.selectors import account_facts, routing_snapshot
from territories.coverage_version import coverage_version_bump
from territories.models import Account, Rep
from territories.services import reps_deactivate


class ReassignError(Exception):
    """The reassignment cannot be made; the message says why, for the manager."""


@dataclass
class ReassignResult:
    moved: list[Lead] = field(default_factory=list)
    skipped: list[tuple[Lead, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    assignment_ids: list[int] = field(default_factory=list)


def _lock_leads(leads: Any) -> list[Lead]:
    """Lock these leads, in id order, before the routing lock is taken (their SLA clocks are only written
    while the lead is locked, so the lead's lock covers them).

    The order every writer follows is rows first, then the routing lock: the routing worker and the SLA
    sweep claim their rows (skipping locked ones) and then wait for the lock. Waiting for a row while
    holding the lock could deadlock with one of them.
    """
    return list(leads.select_for_update(of=("self",)).select_related("owner__user").order_by("pk"))


def leads_reassign(*, leads: list[Lead], to_rep: Rep, by: Any, note: str = "") -> ReassignResult:
    """Give ``leads`` to ``to_rep`` by hand, in one transaction under the routing lock.

    The caller has checked that ``by`` may act on these leads and on ``to_rep``. Each lead is read again
    under the lock: one no longer open (closed, or taken back to a queue meanwhile) or already owned by
    ``to_rep`` is skipped and reported. A target above capacity or daily cap is warned about, not
    refused: the manager's explicit choice wins over the caps routing applies.

    Side effects: ends each lead's current assignment (``ended_at``); inserts a ``manual`` assignment
    with ``assigned_by`` and ``note``; sets the lead's owner (status ``assigned``); restarts the
    untouched first-touch clock, adding the previous owner to ``LeadSla.previous_owner_ids``; creates
    the new rep's notifications and task; enqueues ``notify_assignments`` after commit.
    Raises ReassignError for an inactive target.
    """
    if not to_rep.active:
        raise ReassignError(f"{to_rep} is inactive and cannot take leads.")
    note = note.strip()
    by_name = by.get_full_name() or by.get_username()
    result = ReassignResult()
    with transaction.atomic():
        current = {lead.pk: lead for lead in _lock_leads(Lead.objects.filter(pk__in=[lead.pk for lead in leads]))}
        routing_lock()
        now = timezone.now()
        moving: list[Lead] = []
        previous: dict[int, int] = {}
        for requested in leads:
            lead = current.get(requested.pk)
            if lead is None or lead.status not in Lead.OPEN_STATUSES or lead.owner_id is None:
                result.skipped.append((requested, "no longer open with a rep"))
            elif lead.owner_id == to_rep.pk:
                result.skipped.append((lead, f"already {to_rep.username}'s"))
            else:
                previous[lead.pk] = lead.owner_id
                moving.append(lead)
        if not moving:
            return result

        handovers = []
        for lead in moving:
            old_name = lead.owner.username if lead.owner else "nobody"
            handovers.append(
                Handover(
                    lead=lead,
                    rep_id=to_rep.pk,
                    queue_id=lead.queue_id,
                    status=Lead.Status.ASSIGNED,
                    reason=Assignment.Reason.MANUAL,
                    summary=f"Reassigned by hand from {old_name} to {to_rep.username} by {by_name}.",
                    receipt={"previous_owner_id": previous[lead.pk]},
                    assigned_by_id=by.pk,
                    note=note,
                )
            )
        changed = owners_change(handovers, now=now)
        for lead in moving:
            lead.owner = to_rep

        open_leads, assigned_today = rep_loads(now=now, rep_ids=[to_rep.pk])
        if open_leads.get(to_rep.pk, 0) > to_rep.max_open_leads:
            result.warnings.append(
                f"{to_rep.username} now holds {open_leads[to_rep.pk]} open leads, above their capacity of "
                f"{to_rep.max_open_leads}: assigned anyway, as you chose. Routing gives them no new leads until "
                "they are below it."
            )
        if to_rep.daily_cap is not None and assigned_today.get(to_rep.pk, 0) > to_rep.daily_cap:
            result.warnings.append(
                f"{to_rep.username} got {assigned_today[to_rep.pk]} leads today, above their daily cap of "
                f"{to_rep.daily_cap}: assigned anyway, as you chose."
            )
        result.moved = moving
        result.assignment_ids = changed.assignment_ids
    return result


# --- Routing again through the rules -------------------------------------------------------------------------

# Leads RevOps may send through the rules again: waiting in a queue (the catch-all, say, after a rule was fixed)
# or with a rep. Leads still ``received`` need no help: routing takes them as it does every new lead.
REROUTABLE_STATUSES = (Lead.Status.QUEUED, *Lead.OPEN_STATUSES)


def leads_reroute(*, leads: list[Lead], by: Any) -> ReassignResult:
    """Route ``leads`` again through today's rules, in one transaction under the routing lock: what RevOps do
    after fixing a gap in the matrix that left leads in the catch-all.

    1. Each lead is read again under the lock; one not waiting in a queue nor open with a rep is skipped.
    2. The engine decides from the lead's stored values over the live coverage snapshot, each decision
       folded into the snapshot so caps and round robin hold across the batch (as in a departure).
    3. A lead the rules give to a rep goes to that rep; one they hold in a queue waits there. One the rules
       would nurture or discard, or that would end where it is, is skipped and reported: an open lead is
       never dropped here.

    Side effects: through ``owners_change``, ends each moved lead's current assignment and inserts a
    ``routed`` one (``assigned_by`` = ``by``); sets the lead's owner, queue, status, rule, territory and
    receipt; saves the queue pointers routing moved; notifies the new reps after commit.
    The caller has checked that ``by`` may act on these leads.
    """
    by_name = by.get_full_name() or by.get_username()
    result = ReassignResult()
    with transaction.atomic():
        current = {lead.pk: lead for lead in _lock_leads(Lead.objects.filter(pk__in=[lead.pk for lead in leads]))}
        routing_lock()
        now = timezone.now()
        snapshot = routing_snapshot(now=now)
        start_pointers = {queue.id: queue.rr_pointer for queue in snapshot.queues}
        handovers = []
        for requested in sorted(leads, key=lambda lead: lead.pk):
            lead = current.get(requested.pk)
            if lead is None or lead.status not in REROUTABLE_STATUSES:
                result.skipped.append((requested, "not waiting in a queue nor open with a rep"))
                continue
            account = account_facts(lead.account_id) if lead.account_id is not None else None
            if account is not None and lead.account_match_weak:
                account = replace(account, weak_match=True)
            decision = route_lead(_lead_facts(lead, account), snapshot, now=now)
            if decision.outcome not in ("assigned", "queued"):
                result.skipped.append((lead, f"the rules now say {decision.outcome}; left where it is"))
                continue
            rep_id = decision.rep_id if decision.outcome == "assigned" else None
            if rep_id == lead.owner_id and decision.queue_id == lead.queue_id:
                result.skipped.append((lead, "the rules put it where it already is"))
                continue
            snapshot = apply_decision(snapshot, decision)
            # The routing part of the receipt is the new decision; how the lead was read (standardized, enriched,
            # scored) is unchanged and stays, as the lead page and the API read the receipt whole.
            receipt = {**lead.receipt, "outcome": decision.outcome, "routing": decision.receipt}
            lead.rule_id, lead.territory_id, lead.receipt = decision.rule_id, decision.territory_id, receipt
            summary = decision.receipt.get("summary", "")
            handovers.append(
                Handover(
                    lead=lead,
                    rep_id=rep_id,
                    queue_id=decision.queue_id,
                    status=Lead.Status.ASSIGNED if rep_id is not None else Lead.Status.QUEUED,
                    reason=Assignment.Reason.ROUTED,
                    summary=f"Routed again through the rules by {by_name}. {summary}".strip(),
                    receipt={"routing": decision.receipt},
                    assigned_by_id=by.pk,
                    note=f"Routed again through the rules by {by_name}.",
                )
            )
            result.moved.append(lead)
        if handovers:
            moved = {q.id: q.rr_pointer for q in snapshot.queues if q.rr_pointer != start_pointers.get(q.id)}
            changed = owners_change(handovers, now=now, lead_fields=("rule", "territory", "receipt"), pointers=moved)
            result.assignment_ids = changed.assignment_ids
    return result


# --- Departure ---------------------------------------------------------------------------------------------


@dataclass
class LeadMove:
    """Where one open lead of a departing rep goes: a rep, or back to a queue when nobody is eligible."""

    lead: Lead
    to_rep_id: int | None
    to_rep_name: str
    to_queue_id: int | None
    to_queue_name: str
    summary: str
    receipt: dict[str, Any]


@dataclass
class AccountMove:
    """Who owns one of the departing rep's accounts next: the covering territory's rep, or nobody."""

    account: Account
    to_rep_id: int | None
    to_rep_name: str
    why: str


@dataclass
class DeparturePlan:
    rep: Rep
    leads: list[LeadMove]
    accounts: list[AccountMove]
    snapshot: Snapshot
    start_pointers: dict[int, int]


def _lead_facts(lead: Lead, account: AccountFacts | None) -> LeadFacts:
    """The engine's view of a stored lead (its standardized and enriched values and score)."""
    return LeadFacts(
        email=lead.email,
        email_domain=lead.email_domain,
        is_free_email=lead.is_free_email,
        company=lead.company,
        title=lead.title,
        country=lead.country,
        subdivision=lead.subdivision,
        postal_code=lead.postal_code,
        industry=lead.industry,
        employees=lead.employees,
        size_band=lead.size_band,
        annual_revenue=lead.annual_revenue,
        product_interest=lead.product_interest,
        source=lead.source,
        campaign=lead.campaign,
        score=lead.score or 0,
        account=account,
    )


def departure_plan(*, rep: Rep, now: datetime) -> DeparturePlan:
    """Where the rep's open leads and accounts would go if the rep were gone now. Writes nothing.

    1. The live coverage snapshot, read fresh, with the rep made inactive in a copy of it.
    2. Each open lead, oldest first, goes through the engine (account owners, rules, territories, queues)
       from its stored values; each decision is folded into the snapshot, so caps and round robin hold
       across the rep's leads. A lead the engine would hold in a queue, nurture or discard goes back to
       a queue instead (the engine's queue, else its own, else the catch-all): an open lead is never
       dropped here.
    3. Each account the rep owns: the territory that matches the account's country and industry, as the
       engine matches leads; its rep takes the account when active and not out of office. A territory
       covered by a queue, an unavailable rep or no territory leaves the account unowned (a queue cannot
       own an account), and the reason is given.
    """
    base = routing_snapshot(now=now)
    snapshot = replace(
        base, reps=tuple(replace(info, active=False) if info.id == rep.pk else info for info in base.reps)
    )
    start_pointers = {queue.id: queue.rr_pointer for queue in snapshot.queues}
    leads_qs = Lead.objects.filter(owner=rep, status__in=Lead.OPEN_STATUSES).order_by("received_at", "pk")
    facts_cache: dict[int, AccountFacts | None] = {}
    moves: list[LeadMove] = []
    for lead in leads_qs:
        account = None
        if lead.account_id is not None:
            if lead.account_id not in facts_cache:
                facts_cache[lead.account_id] = account_facts(lead.account_id)
            account = facts_cache[lead.account_id]
            if account is not None and lead.account_match_weak:
                account = replace(account, weak_match=True)
        decision = route_lead(_lead_facts(lead, account), snapshot, now=now)
        if decision.outcome == "assigned" and decision.rep_id is not None:
            snapshot = apply_decision(snapshot, decision)
            queue_id = decision.queue_id
            to_rep = snapshot.rep_by_id.get(decision.rep_id)
            summary = decision.receipt.get("summary", "")
        else:
            if decision.outcome == "queued":
                # Holding moves no pointer, but keep the snapshot in step with what routing would do.
                snapshot = apply_decision(snapshot, decision)
            queue_id = (
                (decision.queue_id if decision.outcome == "queued" else None)
                or lead.queue_id
                or snapshot.catch_all_queue_id
            )
            to_rep = None
            summary = (
                decision.receipt.get("summary", "")
                if decision.outcome == "queued"
                else f"The rules say {decision.outcome}; an open lead goes back to its queue instead."
            )
        queue = snapshot.queue_by_id.get(queue_id) if queue_id is not None else None
        moves.append(
            LeadMove(
                lead=lead,
                to_rep_id=to_rep.id if to_rep else None,
                to_rep_name=to_rep.username if to_rep else "",
                to_queue_id=queue_id,
                to_queue_name=queue.name if queue else "",
                summary=summary,
                receipt=decision.receipt,
            )
        )

    account_moves = []
    for owned in Account.objects.filter(owner=rep).order_by("name"):
        match = match_territory(LeadFacts(country=owned.country, industry=owned.industry), snapshot.territory_by_id)
        coverage = match.coverage
        to_rep_id: int | None = None
        to_rep_name = ""
        if match.territory is None:
            why = f"No territory matches country {owned.country or '(blank)'}: left unowned."
        elif coverage is None:
            why = f"Territory {match.territory.name} has no coverage: left unowned."
        elif coverage.rep_id is None:
            queue = snapshot.queue_by_id.get(coverage.queue_id or 0)
            why = (
                f"Territory {match.territory.name} is covered by queue {queue.name if queue else coverage.queue_id}; "
                "a queue cannot own an account: left unowned."
            )
        else:
            reason = direct_skip_reason(snapshot.rep_by_id.get(coverage.rep_id), now)
            candidate = snapshot.rep_by_id.get(coverage.rep_id)
            name = candidate.username if candidate else f"rep {coverage.rep_id}"
            if reason is None:
                to_rep_id, to_rep_name = coverage.rep_id, name
                why = f"Territory {match.territory.name}'s rep."
            else:
                why = f"Territory {match.territory.name}'s rep {name} is {reason}: left unowned."
        account_moves.append(AccountMove(account=owned, to_rep_id=to_rep_id, to_rep_name=to_rep_name, why=why))
    return DeparturePlan(rep=rep, leads=moves, accounts=account_moves, snapshot=snapshot, start_pointers=start_pointers)


def rep_departure_apply(*, rep: Rep, by: Any) -> DeparturePlan:
    """Carry out a rep's departure in one transaction under the routing lock, as ``departure_plan`` says.

    Side effects: clears ``rep.active``; ends each open lead's current assignment and inserts a
    ``departure`` assignment (``assigned_by`` = ``by``) to the planned rep — who gets notifications, a
    task and a restarted first-touch clock — or to the planned queue, where the lead waits as ``queued``
    with no owner; adds the rep to each moved lead's ``LeadSla.previous_owner_ids``; saves the queue
    pointers routing moved; sets each account's owner to the planned rep or none; enqueues
    ``notify_assignments`` after commit. Returns the plan it carried out.
    """
    by_name = by.get_full_name() or by.get_username()
    with transaction.atomic():
        # A departure changes coverage (the rep, their accounts): take the coverage version's lock first, as
        # every coverage write does, so an admin edit of this rep waits instead of deadlocking with it.
        coverage_version_bump()
        rep = Rep.objects.select_for_update().select_related("user").get(pk=rep.pk)
        _lock_leads(Lead.objects.filter(owner=rep, status__in=Lead.OPEN_STATUSES))
        routing_lock()
        now = timezone.now()
        plan = departure_plan(rep=rep, now=now)
        reps_deactivate(reps=[rep])

        handovers = []
        for move in plan.leads:
            where = move.to_rep_name or f"queue {move.to_queue_name}"
            note = f"{rep.username} left; moved to {where} by {by_name}. {move.summary}".strip()
            handovers.append(
                Handover(
                    lead=move.lead,
                    rep_id=move.to_rep_id,
                    queue_id=move.to_queue_id,
                    status=Lead.Status.ASSIGNED if move.to_rep_id is not None else Lead.Status.QUEUED,
                    reason=Assignment.Reason.DEPARTURE,
                    summary=note,
                    receipt={"routing": move.receipt},
                    assigned_by_id=by.pk,
                    note=note,
                )
            )
        moved = {q.id: q.rr_pointer for q in plan.snapshot.queues if q.rr_pointer != plan.start_pointers.get(q.id)}
        # A departure can move hundreds of leads at once: bulk work, whose notices must not hold up live ones.
        owners_change(handovers, now=now, pointers=moved, lane=Lead.Lane.BULK)

        for account_move in plan.accounts:
            account = account_move.account
            account.owner_id = account_move.to_rep_id
            # One save per account (not a bulk update) so each change lands in the change history.
            account.save(update_fields=["owner", "updated_at"])
    return plan
