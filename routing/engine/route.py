"""The routing decision for one lead: account, rules, territory and queue in one pass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from datetime import datetime
from functools import cache, cached_property, lru_cache
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from routing.engine.availability import direct_skip_reason
from routing.engine.distribution import QueueResult, distribute
from routing.engine.facts import Decision, LeadFacts, RuleInfo, Snapshot
from routing.engine.territories import TerritoryMatch


def route_lead(lead: LeadFacts, snapshot: Snapshot, *, now: datetime) -> Decision:
    """Decide where ``lead`` goes at instant ``now`` (timezone-aware). See the package docstring for the steps."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware.")
    if lead.excluded_rep_ids:
        # This decision only: reps who sent the lead back are skipped with that reason. The caller's snapshot
        # (and apply_decision on it) is untouched.
        snapshot = _keeping_indexes(
            snapshot,
            replace(
                snapshot,
                # Each rep as the snapshot's map has them now (a batch snapshot updates only its maps).
                reps=tuple(
                    replace(rep, unavailable="sent this lead back") if rep.id in lead.excluded_rep_ids else rep
                    for rep in (snapshot.rep_by_id.get(rep.id, rep) for rep in snapshot.reps)
                ),
            ),
            (*_UNCHANGED_BY_A_DECISION, "queue_by_id"),
        )
    match = snapshot.territory_index.match(lead)
    territory_id = match.territory.id if match.territory else None
    receipt: dict[str, Any] = {
        "decided_at": _isoformat(now),
        "territory": match.receipt,
        "account": None,
        "rules": [],
        "queue_path": [],
        "winner": None,
    }

    # Step 2: a trusted account's owner.
    owner_id, account_receipt = _account_owner(lead, snapshot, now)
    receipt["account"] = account_receipt
    if owner_id is not None:
        return _finish(
            receipt, Decision("assigned", "account", rep_id=owner_id, territory_id=territory_id), snapshot, now
        )

    # Step 3: the first rule that holds and can be carried out.
    for rule in snapshot.rules_in_order:
        held, why = snapshot.condition_memo.evaluate(rule.condition, lead)
        line: dict[str, Any] = {"id": rule.id, "name": rule.name, "action": rule.action}
        receipt["rules"].append(line)
        if not held:
            line.update(result="not matched", why=why)
            continue
        decision, skipped = _carry_out(rule, lead, match, snapshot, now, territory_id)
        if decision is None:
            line.update(result="skipped", why=skipped)
            continue
        line["result"] = "matched"
        return _finish(receipt, decision, snapshot, now)

    # No rule placed the lead: the catch-all queue.
    placed = distribute(snapshot.catch_all_queue_id, snapshot, now)
    return _finish(receipt, _from_queue(placed, "catch-all", territory_id, None), snapshot, now)


def _isoformat(instant: datetime) -> str:
    # Equal instants in other zones are equal keys, and print otherwise: the zone is part of the key.
    return _isoformat_in(instant, instant.tzinfo)


@lru_cache(maxsize=64)  # A batch decides all its leads at one ``now``; held leads share a few reopenings.
def _isoformat_in(instant: datetime, zone: Any) -> str:
    return instant.isoformat()


def _account_owner(lead: LeadFacts, snapshot: Snapshot, now: datetime) -> tuple[int | None, dict[str, Any]]:
    """The open opportunity's owner, else the account owner, when eligible as a direct target.

    Both are tried in that order, so an opportunity owner on vacation hands the
    lead to the account owner rather than to the rules.
    """
    account = lead.account
    if account is None:
        return None, {"result": "no account matched"}
    line: dict[str, Any] = {"id": account.id, "name": account.name}
    if account.weak_match:
        line["result"] = "weak match: not trusted for ownership"
        return None, line
    tried: list[dict[str, Any]] = []
    line["owners"] = tried
    for role, rep_id in (
        ("open opportunity owner", account.open_opportunity_owner_rep_id),
        ("account owner", account.owner_rep_id),
    ):
        if rep_id is None:
            continue
        reason = direct_skip_reason(snapshot.rep_by_id.get(rep_id), now)
        tried.append({"role": role, "rep_id": rep_id, "eligible": reason is None, "reason": reason or "chosen"})
        if reason is None:
            line["result"] = f"assigned to the {role}"
            return rep_id, line
    line["result"] = "owners unavailable" if tried else "the account has no owner"
    return None, line


def _carry_out(
    rule: RuleInfo,
    lead: LeadFacts,
    match: TerritoryMatch,
    snapshot: Snapshot,
    now: datetime,
    territory_id: int | None,
) -> tuple[Decision | None, str]:
    """The decision a matching rule leads to, or None and why the rule cannot be carried out."""
    if rule.action == "nurture":
        return Decision("nurture", "nurture", territory_id=territory_id, rule_id=rule.id), ""
    if rule.action == "discard":
        return Decision("discarded", "discard", territory_id=territory_id, rule_id=rule.id), ""
    if rule.action == "queue":
        if rule.queue_id not in snapshot.queue_by_id:
            return None, f"queue {rule.queue_id} does not exist"
        return _from_queue(distribute(rule.queue_id, snapshot, now), "queue", territory_id, rule.id), ""
    if rule.action == "account_owner":
        owner_id, account_receipt = _account_owner(lead, snapshot, now)
        if owner_id is None:
            return None, account_receipt["result"]
        return Decision("assigned", "rule", rep_id=owner_id, territory_id=territory_id, rule_id=rule.id), ""
    if rule.action == "rep":
        reason = direct_skip_reason(snapshot.rep_by_id.get(rule.rep_id or 0), now)
        if reason is not None:
            return None, _unavailable(_rep_name(snapshot, rule.rep_id), reason)
        return Decision("assigned", "rule", rep_id=rule.rep_id, territory_id=territory_id, rule_id=rule.id), ""
    # The territory action: the matched territory's coverage.
    if match.territory is None:
        return None, "no territory matched"
    coverage = match.coverage
    if coverage is None:
        return None, f"territory {match.territory.name} has no queue or rep"
    if coverage.queue_id is not None:
        if coverage.queue_id not in snapshot.queue_by_id:
            return None, f"territory {coverage.name}'s queue {coverage.queue_id} does not exist"
        return _from_queue(distribute(coverage.queue_id, snapshot, now), "queue", territory_id, rule.id), ""
    reason = direct_skip_reason(snapshot.rep_by_id.get(coverage.rep_id or 0), now)
    if reason is not None:
        return None, _unavailable(f"territory {coverage.name}'s rep {_rep_name(snapshot, coverage.rep_id)}", reason)
    return Decision("assigned", "rule", rep_id=coverage.rep_id, territory_id=territory_id, rule_id=rule.id), ""


def _rep_name(snapshot: Snapshot, rep_id: int | None) -> str:
    """A rep as the receipt names them: by username, which is what RevOps and reps recognise."""
    rep = snapshot.rep_by_id.get(rep_id or 0)
    return rep.username if rep is not None else f"rep {rep_id}"


def _unavailable(who: str, reason: str) -> str:
    return f"{who} does not exist" if reason == "unknown rep" else f"{who} is {reason}"


def _from_queue(placed: QueueResult, via: str, territory_id: int | None, rule_id: int | None) -> Decision:
    receipt: dict[str, Any] = {"queue_path": placed.path}
    if placed.held_until is not None:
        receipt["held_until"] = _isoformat(placed.held_until)
        receipt["held_for"] = placed.held_for
        receipt["held_zone"] = str(placed.held_until.tzinfo)
    return Decision(
        placed.outcome,
        via,
        rep_id=placed.rep_id,
        queue_id=placed.queue_id,
        territory_id=territory_id,
        rule_id=rule_id,
        pointer_advance=placed.pointer_advance,
        receipt=receipt,
    )


def _finish(receipt: dict[str, Any], decision: Decision, snapshot: Snapshot, now: datetime) -> Decision:
    """Attach the full receipt, with the outcome and winner, to the decision."""
    receipt = {**receipt, **decision.receipt}
    rep = snapshot.rep_by_id.get(decision.rep_id) if decision.rep_id is not None else None
    receipt["outcome"] = decision.outcome
    receipt["via"] = decision.via
    receipt["rule_id"] = decision.rule_id
    receipt["queue_id"] = decision.queue_id
    receipt["territory_id"] = decision.territory_id
    if rep is not None:
        receipt["winner"] = {"rep_id": rep.id, "username": rep.username}
    receipt["summary"] = _summary(decision, receipt)
    # Every decision given here was made by this call and nothing else holds it yet: it takes its receipt
    # in place rather than as a copy.
    decision.__dict__["receipt"] = receipt
    return decision


def _summary(decision: Decision, receipt: dict[str, Any]) -> str:
    """One sentence for a rep: why this lead is theirs, or where it went instead."""
    rule = next((line["name"] for line in receipt["rules"] if line.get("result") == "matched"), None)
    because = f" by rule '{rule}'" if rule else ""
    if decision.outcome == "nurture":
        return f"Sent to nurture{because}."
    if decision.outcome == "discarded":
        return f"Discarded{because}."
    queue = receipt["queue_path"][-1]["queue"] if receipt["queue_path"] else None
    if decision.outcome == "queued" and receipt.get("held_until"):
        zone = receipt.get("held_zone") or "UTC"
        starts = datetime.fromisoformat(receipt["held_until"]).astimezone(ZoneInfo(zone))
        return (
            f"Held in {queue}{because} until {receipt['held_for']} starts work at {starts:%a %d %b %H:%M} "
            f"{starts.tzname()} ({zone}): nobody eligible is working now. The SLA clock starts when the lead is "
            "assigned."
        )
    if decision.outcome == "queued":
        return f"Waiting in {queue}: nobody eligible{because}."
    who = receipt["winner"]["username"] if receipt["winner"] else f"rep {decision.rep_id}"
    if decision.via == "account":
        account = receipt["account"]
        return f"Assigned to {who}, {account['result'].removeprefix('assigned to ')} of {account['name']}."
    if queue is not None:
        return f"Assigned to {who} in {queue}{because}{'' if rule else ' (no rule matched)'}."
    return f"Assigned to {who}{because}."


def apply_decision(snapshot: Snapshot, decision: Decision) -> Snapshot:
    """The snapshot after the decision takes effect: the winner has one more open lead and one more today, and
    round-robin pointers have moved. Simulation and replay use it to route a sequence of leads.

    Only the winner and the moved queues are replaced; everything else, and the indexes built on the
    snapshot (territories, rules in order, reps and queues by id), are shared with ``snapshot`` rather
    than rebuilt for every lead of a batch."""
    reps, rep_by_id = snapshot.reps, snapshot.rep_by_id
    winner = rep_by_id.get(decision.rep_id) if decision.outcome == "assigned" and decision.rep_id is not None else None
    if winner is not None:
        counted = _changed(winner, open_leads=winner.open_leads + 1, assigned_today=winner.assigned_today + 1)
        reps = _replaced(reps, snapshot.rep_position[winner.id], counted)
        rep_by_id = {**rep_by_id, winner.id: counted}
    queues, queue_by_id = snapshot.queues, snapshot.queue_by_id
    moved = [queue_by_id[queue_id] for queue_id in decision.pointer_advance if queue_id in queue_by_id]
    for queue in moved:
        pointed = _changed(queue, rr_pointer=decision.pointer_advance[queue.id])
        queues = _replaced(queues, snapshot.queue_position[queue.id], pointed)
        queue_by_id = {**queue_by_id, queue.id: pointed}
    if winner is None and not moved:
        return snapshot
    after = _keeping_indexes(snapshot, _changed(snapshot, reps=reps, queues=queues), _UNCHANGED_BY_A_DECISION)
    after.__dict__["rep_by_id"] = rep_by_id
    after.__dict__["queue_by_id"] = queue_by_id
    return after


def batch_snapshot(snapshot: Snapshot) -> Snapshot:
    """A copy of ``snapshot`` that ``apply_decision_in_batch`` changes in place, for a caller that routes a
    batch with a snapshot it holds alone (routing/dispatch.py): the copy has its own maps of reps and queues by
    id, and shares every other index with ``snapshot``.

    ``apply_decision`` builds a new snapshot for every decision, copying the tuples and maps of reps and
    queues: O(reps + queues) a lead, which an organisation with hundreds of reps pays on every lead of every
    batch. Here a decision replaces the winner in the rep map and the moved queues in the queue map, O(1);
    ``reps`` and ``queues`` are left as they were until ``batch_snapshot_settled``."""
    copy = _keeping_indexes(snapshot, _changed(snapshot), _UNCHANGED_BY_A_DECISION)
    copy.__dict__["rep_by_id"] = dict(snapshot.rep_by_id)
    copy.__dict__["queue_by_id"] = dict(snapshot.queue_by_id)
    return copy


def apply_decision_in_batch(snapshot: Snapshot, decision: Decision) -> Snapshot:
    """``apply_decision`` on a ``batch_snapshot``, in place: its rep and queue maps (what the engine reads while
    deciding) take the winner's counts and the moved pointers. Returns ``snapshot``."""
    rep_by_id, queue_by_id = snapshot.rep_by_id, snapshot.queue_by_id
    winner = rep_by_id.get(decision.rep_id) if decision.outcome == "assigned" and decision.rep_id is not None else None
    if winner is not None:
        rep_by_id[winner.id] = _changed(
            winner, open_leads=winner.open_leads + 1, assigned_today=winner.assigned_today + 1
        )
    for queue_id, pointer in decision.pointer_advance.items():
        queue = queue_by_id.get(queue_id)
        if queue is not None:
            queue_by_id[queue_id] = _changed(queue, rr_pointer=pointer)
    return snapshot


def batch_snapshot_settled(snapshot: Snapshot) -> Snapshot:
    """A ``batch_snapshot`` after its decisions as an ordinary snapshot: ``reps`` and ``queues`` in their order,
    as its maps have them, what ``apply_decision`` would have given decision after decision."""
    rep_by_id, queue_by_id = snapshot.rep_by_id, snapshot.queue_by_id
    settled = _changed(
        snapshot,
        reps=tuple(rep_by_id.get(rep.id, rep) for rep in snapshot.reps),
        queues=tuple(queue_by_id.get(queue.id, queue) for queue in snapshot.queues),
    )
    after = _keeping_indexes(snapshot, settled, _UNCHANGED_BY_A_DECISION)
    after.__dict__["rep_by_id"] = dict(rep_by_id)
    after.__dict__["queue_by_id"] = dict(queue_by_id)
    return after


def with_rep_loads(snapshot: Snapshot, loads: Mapping[int, tuple[int, int]]) -> Snapshot:
    """The snapshot with these reps' open leads and today's count set to ``loads[rep_id]`` =
    ``(open_leads, assigned_today)``. Replay uses it between decisions: a lead closing frees its owner's
    capacity, and a rep's count for the day starts again at their midnight. Indexes are kept, as in
    ``apply_decision``; reps not in the snapshot are ignored."""
    reps, rep_by_id = snapshot.reps, dict(snapshot.rep_by_id)
    for rep_id, (open_leads, assigned_today) in loads.items():
        rep = rep_by_id.get(rep_id)
        if rep is None or (rep.open_leads, rep.assigned_today) == (open_leads, assigned_today):
            continue
        counted = _changed(rep, open_leads=open_leads, assigned_today=assigned_today)
        reps = _replaced(reps, snapshot.rep_position[rep_id], counted)
        rep_by_id[rep_id] = counted
    if reps is snapshot.reps:
        return snapshot
    after = _keeping_indexes(snapshot, _changed(snapshot, reps=reps), (*_UNCHANGED_BY_A_DECISION, "queue_by_id"))
    after.__dict__["rep_by_id"] = rep_by_id
    return after


# The snapshot's cached indexes that a decision leaves as they are.
_UNCHANGED_BY_A_DECISION = (
    "territory_by_id",
    "territory_index",
    "rules_in_order",
    "condition_memo",
    "skip_reason_memo",
    "member_order",
    "rep_position",
    "queue_position",
)

T = TypeVar("T")


def _changed(record: T, **changes: Any) -> T:
    """``dataclasses.replace`` for the engine's own updates (a rep's counters, a queue's pointer, a decision's
    receipt, a snapshot's reps and queues), without running ``__init__`` again: its checks never read these
    fields, and skipping it takes each update from ~3 µs to well under 1, paid for every lead of a batch.
    Fields are copied; cached indexes are not."""
    record_type: type = type(record)
    copy: Any = object.__new__(record_type)
    names = _field_names(record_type)
    if names is None:  # Only fields in its __dict__: copied whole.
        copy.__dict__.update(record.__dict__, **changes)
    else:
        copy.__dict__.update({name: record.__dict__[name] for name in names}, **changes)
    return cast(T, copy)


@cache
def _field_names(record_type: type) -> tuple[str, ...] | None:
    """The fields of ``record_type``, or None when its instances keep nothing else in ``__dict__`` (it has no
    cached properties), so that ``_changed`` copies the whole ``__dict__`` at once."""
    if not any(isinstance(member, cached_property) for klass in record_type.__mro__ for member in vars(klass).values()):
        return None
    return tuple(record_field.name for record_field in fields(record_type))


def _replaced(items: tuple[Any, ...], position: int, item: Any) -> tuple[Any, ...]:
    return (*items[:position], item, *items[position + 1 :])


def _keeping_indexes(before: Snapshot, after: Snapshot, names: tuple[str, ...]) -> Snapshot:
    """``after`` with the named cached indexes of ``before`` that still hold for it, instead of rebuilding them."""
    for name in names:
        if name in before.__dict__:
            after.__dict__[name] = before.__dict__[name]
    return after
