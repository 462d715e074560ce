"""Distribution inside a queue, and the overflow path between queues."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from functools import lru_cache, reduce
from itertools import chain
from math import gcd
from typing import Any, Literal

from routing.engine.availability import (
    load_skip_reasons,
    member_eligible,
    next_working_start,
    standing_skip_reasons,
)
from routing.engine.facts import MemberInfo, QueueInfo, RepInfo, Snapshot
from routing.records import quick_init

CHOSEN = "chosen"
NOT_THEIR_TURN = "not their turn"


@quick_init  # Made for every routed lead (routing/records.py).
@dataclass(frozen=True)
class QueueResult:
    outcome: Literal["assigned", "queued"]
    queue_id: int
    rep_id: int | None = None
    pointer_advance: dict[int, int] = field(default_factory=dict)
    path: list[dict[str, Any]] = field(default_factory=list)
    # A held lead: when the first member kept out only by their working hours starts work, and who.
    held_until: datetime | None = None
    held_for: str | None = None


def ordered_members(queue: QueueInfo, snapshot: Snapshot | None = None) -> list[MemberInfo]:
    """The queue's members in distribution order: by position, then rep id. With ``snapshot``, sorted once
    while the queue keeps the same members (a decision that moves its pointer keeps them)."""
    if snapshot is None:
        return sorted(queue.members, key=lambda member: (member.position, member.rep_id))
    seen = snapshot.member_order.get(queue.id)
    if seen is None or seen[0] is not queue.members:
        seen = snapshot.member_order[queue.id] = (queue.members, ordered_members(queue))
    return seen[1]


@lru_cache(maxsize=256)
def weighted_sequence(weights: tuple[int, ...]) -> tuple[int, ...]:
    """One cycle of smooth weighted round robin (as in nginx), as member indexes.

    Each step adds every member's weight to its running score, picks the
    highest score (the earlier member on a tie) and takes the total weight off
    the winner. Over one cycle each member appears exactly ``weight`` times,
    spread out rather than in runs. The weights are first divided by their
    greatest common divisor, which repeats the same pattern in a shorter cycle.
    """
    if not weights:
        return ()
    divisor = reduce(gcd, weights)
    reduced = [weight // divisor for weight in weights]
    total = sum(reduced)
    scores = [0] * len(reduced)
    sequence: list[int] = []
    for _ in range(total):
        for index, weight in enumerate(reduced):
            scores[index] += weight
        best = max(range(len(scores)), key=lambda index: (scores[index], -index))
        scores[best] -= total
        sequence.append(best)
    return tuple(sequence)


def pick_member(
    queue: QueueInfo, snapshot: Snapshot, now: datetime, required_skills: frozenset[str] | None = None
) -> tuple[int | None, int | None, list[dict[str, Any]]]:
    """The winning rep id, the new round-robin pointer (None when it does not move) and every candidate's line.

    1. Each member is checked for eligibility (needing ``required_skills``, the queue's own when None);
       a skipped member keeps every reason.
    2. Round robin starts at ``rr_pointer % n`` in (position, rep id) order and
       takes the first eligible member; the pointer moves past the winner.
    3. Weighted walks the smooth weighted sequence the same way.
    4. Load-balanced takes the lowest open/max ratio, then fewer leads today,
       then position, then rep id.
    Eligible members who did not win were "not their turn".
    """
    members = ordered_members(queue, snapshot)
    if not snapshot.explain:
        quick = _pick_without_lines(queue, members, snapshot, now, required_skills)
        if quick is not None:
            return quick
    reasons = [_skip_reason(m, snapshot, queue, now, required_skills) for m in members]
    method = queue.method
    winner: int | None = None
    pointer: int | None = None
    if method == "round_robin":
        if members:
            # The first eligible member from the pointer on, wrapping around (``_walk``, inline: it runs for
            # every lead of every batch).
            start = queue.rr_pointer % len(members)
            for index in chain(range(start, len(members)), range(start)):
                if reasons[index] is None:
                    winner, pointer = index, index + 1
                    break
    elif method == "weighted":
        if None in reasons:
            sequence = weighted_sequence(tuple(member.weight for member in members))
            slot = _walk(len(sequence), queue.rr_pointer, lambda slot: reasons[sequence[slot]] is None)
            winner, pointer = sequence[slot], slot + 1
    else:
        eligible = [index for index, reason in enumerate(reasons) if reason is None]
        if eligible:
            winner = min(eligible, key=lambda index: _load_key(members[index], snapshot))

    rep_by_id = snapshot.rep_by_id
    lines: list[dict[str, Any]] = []
    for index, member in enumerate(members):
        reason = reasons[index]
        rep = rep_by_id.get(member.rep_id)
        line: dict[str, Any] = {
            "rep_id": member.rep_id,
            "username": rep.username if rep else None,
            "eligible": reason is None,
            "reason": reason or (CHOSEN if index == winner else NOT_THEIR_TURN),
        }
        if method == "load_balanced" and rep is not None:
            line["load"] = f"{rep.open_leads}/{rep.max_open_leads}"
        elif method == "weighted":
            line["weight"] = member.weight
        lines.append(line)
    return (members[winner].rep_id if winner is not None else None), pointer, lines


def _skip_reason(
    member: MemberInfo, snapshot: Snapshot, queue: QueueInfo, now: datetime, required_skills: frozenset[str] | None
) -> str | None:
    """``member_skip_reasons`` joined, or None when eligible. Their standing part is remembered in the snapshot
    while what it reads is the same: the member, the rep's record but for its counts (a batch replaces the
    winner's record with new counts after each decision, sharing everything else), the instant, and the
    queue's skills and off-hours setting (its pointer, which moves, is not read). The load's reasons are
    judged every time, from the counts."""
    rep = snapshot.rep_by_id.get(member.rep_id)
    memo = snapshot.skip_reason_memo
    key = (member.rep_id, queue.id, required_skills)
    seen = memo.get(key)
    if (
        seen is not None
        and seen[0] is member
        and (seen[1] is rep or _same_standing(seen[1], rep))
        and seen[2] == now
        and seen[3] is queue.required_skills
        and seen[4] == queue.skip_off_hours_reps
    ):
        standing, loaded = seen[5], seen[6]
    else:
        reasons, loaded = standing_skip_reasons(member, rep, queue, now, required_skills)
        standing = "; ".join(reasons) or None
        memo[key] = (member, rep, now, queue.required_skills, queue.skip_off_hours_reps, standing, loaded)
    if not loaded or rep is None:
        return standing
    load = load_skip_reasons(rep)
    if not load:
        return standing
    return "; ".join([standing, *load] if standing is not None else load)


def _same_standing(seen: RepInfo | None, rep: RepInfo | None) -> bool:
    """Whether two records of a rep read the same to ``standing_skip_reasons``: the same objects in each field
    it reads (``STANDING_FIELDS`` but the id, which the memo's key holds), as in a record copied with new
    counts."""
    return (
        seen is not None
        and rep is not None
        and seen.active is rep.active
        and seen.unavailable is rep.unavailable
        and seen.out_of_office is rep.out_of_office
        and seen.working_hours is rep.working_hours
        and seen.time_zone is rep.time_zone
        and seen.skills is rep.skills
    )


def _pick_without_lines(
    queue: QueueInfo,
    members: Sequence[MemberInfo],
    snapshot: Snapshot,
    now: datetime,
    required_skills: frozenset[str] | None,
) -> tuple[int | None, int | None, list[dict[str, Any]]] | None:
    """``pick_member``'s winner and pointer without the candidates' lines, judging members only until the
    winner is found (round robin, weighted). When nobody is eligible, no lines either, except in a queue that
    holds leads off hours: there the lines decide whether it holds the lead or lets it overflow, so this gives
    None and the caller goes the whole way."""
    result = _winner_without_lines(queue, members, snapshot, now, required_skills)
    if result is None and not queue.is_catch_all and queue.when_nobody_eligible == "hold_off_hours":
        return None
    return result or (None, None, [])


def _winner_without_lines(
    queue: QueueInfo,
    members: Sequence[MemberInfo],
    snapshot: Snapshot,
    now: datetime,
    required_skills: frozenset[str] | None,
) -> tuple[int | None, int | None, list[dict[str, Any]]] | None:
    cache: dict[int, bool] = {}

    def eligible(index: int) -> bool:
        if index not in cache:
            member = members[index]
            rep = snapshot.rep_by_id.get(member.rep_id)
            cache[index] = member_eligible(member, rep, queue, now, required_skills)
        return cache[index]

    if not members:
        return None
    if queue.method == "round_robin":
        start = queue.rr_pointer % len(members)
        for index in (step % len(members) for step in range(start, start + len(members))):
            if eligible(index):
                return members[index].rep_id, index + 1, []
        return None
    if queue.method == "weighted":
        sequence = weighted_sequence(tuple(member.weight for member in members))
        start = queue.rr_pointer % len(sequence)
        for slot in (step % len(sequence) for step in range(start, start + len(sequence))):
            if eligible(sequence[slot]):
                return members[sequence[slot]].rep_id, slot + 1, []
        return None
    candidates = [index for index in range(len(members)) if eligible(index)]
    if not candidates:
        return None
    winner = min(candidates, key=lambda index: _load_key(members[index], snapshot))
    return members[winner].rep_id, None, []


def _walk(length: int, pointer: int, accept: Callable[[int], bool]) -> int:
    """The first index from ``pointer % length`` onwards, wrapping around, that ``accept`` takes."""
    start = pointer % length
    return next(index % length for index in range(start, start + length) if accept(index % length))


def _load_key(member: MemberInfo, snapshot: Snapshot) -> tuple[Fraction, int, int, int]:
    rep = snapshot.rep_by_id[member.rep_id]
    return Fraction(rep.open_leads, rep.max_open_leads), rep.assigned_today, member.position, member.rep_id


def distribute(
    queue_id: int, snapshot: Snapshot, now: datetime, carried_skills: frozenset[str] = frozenset()
) -> QueueResult:
    """Place a lead through ``queue_id``, following overflows.

    1. An inactive queue (never the catch-all) passes the lead to its fallback,
       or to the catch-all when it has none.
    2. Otherwise a member is picked (see ``pick_member``). The lead needs the
       queue's required skills plus, when the queue inherits them (the default),
       those of the queues it overflowed from (and ``carried_skills``): a German
       lead overflowing from DACH stays with German speakers.
    3. When nobody is eligible, a "hold" queue and the catch-all keep the lead
       unassigned; an "overflow" queue passes it to its fallback or the
       catch-all; a "hold off hours" queue holds it when a member is kept out
       only by their working hours, and overflows otherwise. A held lead says
       when the first such member starts work (``held_until``, ``held_for``).
    4. A chain that comes back to a queue already visited goes to the catch-all;
       when the catch-all was visited too, the lead is held where it is.
    """
    path: list[dict[str, Any]] = []
    visited: set[int] = set()
    current = snapshot.queue_by_id[queue_id]
    needed = carried_skills
    while True:
        visited.add(current.id)
        needed = current.required_skills | needed if current.inherit_skills else current.required_skills
        step: dict[str, Any] = {"queue_id": current.id, "queue": current.name, "method": current.method}
        if needed != current.required_skills:
            step["required_skills"] = sorted(needed)
        path.append(step)
        usable = current.active or current.is_catch_all
        if usable:
            rep_id, pointer, lines = pick_member(current, snapshot, now, needed)
            step["candidates"] = lines
            if rep_id is not None:
                step["result"] = "assigned"
                advance = {current.id: pointer} if pointer is not None else {}
                return QueueResult("assigned", current.id, rep_id, advance, path)
            rule = "hold" if current.is_catch_all else current.when_nobody_eligible
            waiting = _first_back_at_work(current, snapshot, now, lines) if rule != "overflow" else None
            if rule == "hold" or (rule == "hold_off_hours" and waiting is not None):
                step["result"] = "held: nobody eligible"
                if waiting is not None:
                    step["result"] = "held until the first member's working hours: nobody eligible is working"
                    step["held_until"] = waiting[0].isoformat()
                    step["held_for"] = waiting[1]
                    return QueueResult("queued", current.id, path=path, held_until=waiting[0], held_for=waiting[1])
                return QueueResult("queued", current.id, path=path)
        next_id = _next_queue(current, snapshot, visited)
        if next_id is None:
            step["result"] = "held: the overflow chain loops back" if usable else "held: inactive, nowhere to overflow"
            return QueueResult("queued", current.id, path=path)
        current = snapshot.queue_by_id[next_id]
        step["result"] = f"{'nobody eligible' if usable else 'inactive'}: overflow to {current.name}"


def _first_back_at_work(
    queue: QueueInfo, snapshot: Snapshot, now: datetime, lines: list[dict[str, Any]]
) -> tuple[datetime, str] | None:
    """The earliest next working-hours start among members kept out only by their hours (or also by today's
    cap, when they next start work on another day of their own, with a new day's count), and who it is."""
    starts = []
    for line in lines:
        rep = snapshot.rep_by_id.get(line["rep_id"])
        reasons = set(line["reason"].split("; "))
        if rep is None or "off hours" not in reasons or not reasons <= {"off hours", "daily cap reached"}:
            continue
        start = next_working_start(rep, now)
        if start is None:
            continue
        if "daily cap reached" in reasons and start.date() == now.astimezone(start.tzinfo).date():
            continue  # Back later today, with today's cap still reached.
        starts.append((start, rep.username))
    return min(starts, key=lambda item: (item[0].timestamp(), item[1])) if starts else None


def _next_queue(queue: QueueInfo, snapshot: Snapshot, visited: set[int]) -> int | None:
    for candidate in (queue.fallback_id, snapshot.catch_all_queue_id):
        if candidate is not None and candidate in snapshot.queue_by_id and candidate not in visited:
            return candidate
    return None
