"""Properties of the routing engine over generated coverage models and leads."""

import dataclasses
import json
from collections import Counter
from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.engine import (
    AccountFacts,
    Condition,
    ConditionGroup,
    LeadFacts,
    MemberInfo,
    QueueInfo,
    RepInfo,
    RuleInfo,
    Snapshot,
    TerritoryInfo,
    apply_decision,
    apply_decision_in_batch,
    batch_snapshot,
    batch_snapshot_settled,
    evaluate,
    member_skip_reason,
    route_lead,
    weighted_sequence,
)
from routing.engine.availability import STANDING_FIELDS
from routing.engine.distribution import _same_standing, _skip_reason

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
CATCH_ALL = 100
COUNTRIES = ("DE", "FR", "US", "")
SKILLS = ("german", "french")
REP_IDS = st.integers(1, 6)
QUEUE_IDS = st.sampled_from((10, 11, 12, 13, CATCH_ALL))

FAST = settings(max_examples=100, deadline=None)


@st.composite
def reps(draw, rep_id):
    away = draw(st.booleans()) and draw(st.booleans())
    window = draw(st.sampled_from(((), ((0, time(9), time(17)),), ((0, time(22), time(6)),), ((6, time(1), time(2)),))))
    return RepInfo(
        id=rep_id,
        username=f"rep{rep_id}",
        active=draw(st.booleans()) or draw(st.booleans()),
        time_zone=draw(st.sampled_from(("UTC", "Europe/Berlin", "America/New_York"))),
        working_hours=window,
        out_of_office=((NOW - timedelta(hours=1), NOW + timedelta(hours=1)),) if away else (),
        skills=frozenset(draw(st.sets(st.sampled_from(SKILLS)))),
        open_leads=draw(st.integers(0, 6)),
        max_open_leads=draw(st.integers(1, 6)),
        assigned_today=draw(st.integers(0, 3)),
        daily_cap=draw(st.none() | st.integers(1, 4)),
    )


@st.composite
def queues(draw, queue_id):
    rep_ids = draw(st.lists(REP_IDS, unique=True, max_size=5))
    members = tuple(
        MemberInfo(
            rep_id,
            weight=draw(st.integers(1, 3)),
            active=draw(st.booleans()) or draw(st.booleans()),
            position=draw(st.integers(0, 3)),
        )
        for rep_id in rep_ids
    )
    catch_all = queue_id == CATCH_ALL
    return QueueInfo(
        id=queue_id,
        name=f"Queue {queue_id}",
        method=draw(st.sampled_from(("round_robin", "weighted", "load_balanced"))),
        active=catch_all or draw(st.booleans()) or draw(st.booleans()),
        is_catch_all=catch_all,
        required_skills=frozenset(draw(st.sets(st.sampled_from(SKILLS), max_size=1))),
        skip_off_hours_reps=draw(st.booleans()),
        when_nobody_eligible="hold" if catch_all else draw(st.sampled_from(("hold", "overflow"))),
        # Fallbacks may form cycles: the engine must still end.
        fallback_id=None if catch_all else draw(st.none() | QUEUE_IDS.filter(lambda other: other != queue_id)),
        rr_pointer=draw(st.integers(0, 20)),
        members=members,
    )


CONDITIONS = st.one_of(
    st.builds(
        Condition,
        st.just("country"),
        st.sampled_from(("in", "not_in")),
        st.sets(st.sampled_from(COUNTRIES), max_size=2).map(tuple),
    ),
    st.builds(Condition, st.just("score"), st.sampled_from(("gt", "lt", "gte", "lte")), st.integers(0, 100)),
    st.builds(Condition, st.just("account.is_customer"), st.just("equals"), st.booleans()),
    st.builds(Condition, st.just("company"), st.sampled_from(("is_blank", "is_not_blank"))),
)
GROUPS = st.recursive(
    st.builds(ConditionGroup, st.sampled_from(("all", "any")), st.lists(CONDITIONS, min_size=1, max_size=3).map(tuple)),
    lambda children: st.builds(
        ConditionGroup,
        st.sampled_from(("all", "any")),
        st.lists(children | CONDITIONS, min_size=1, max_size=3).map(tuple),
    ),
    max_leaves=6,
)


@st.composite
def rules(draw, rule_id):
    action = draw(st.sampled_from(("queue", "territory", "account_owner", "rep", "nurture", "discard")))
    return RuleInfo(
        id=rule_id,
        name=f"Rule {rule_id}",
        position=draw(st.integers(0, 5)),
        action=action,
        condition=draw(st.none() | GROUPS),
        queue_id=draw(QUEUE_IDS) if action == "queue" else None,
        rep_id=draw(st.integers(1, 7)) if action == "rep" else None,
    )


@st.composite
def territories(draw, territory_id):
    coverage = draw(st.sampled_from(("queue", "rep", "none")))
    return TerritoryInfo(
        id=territory_id,
        name=f"Territory {territory_id}",
        parent_id=draw(st.none() | st.integers(1, territory_id - 1)) if territory_id > 1 else None,
        criteria={"country": frozenset(draw(st.sets(st.sampled_from(COUNTRIES[:3]), max_size=2)))},
        queue_id=draw(QUEUE_IDS) if coverage == "queue" else None,
        rep_id=draw(REP_IDS) if coverage == "rep" else None,
    )


@st.composite
def snapshots(draw):
    queue_ids = draw(st.sets(st.sampled_from((10, 11, 12, 13)), min_size=1))
    return Snapshot(
        territories=tuple(draw(territories(tid)) for tid in range(1, draw(st.integers(0, 4)) + 1)),
        rules=tuple(draw(rules(rid)) for rid in range(1, draw(st.integers(0, 5)) + 1)),
        queues=tuple(draw(queues(qid)) for qid in sorted({*queue_ids, CATCH_ALL})),
        reps=tuple(draw(reps(rid)) for rid in range(1, 7)),
        catch_all_queue_id=CATCH_ALL,
    )


ACCOUNTS = st.none() | st.builds(
    AccountFacts,
    id=st.just(1),
    name=st.just("Acme"),
    is_customer=st.booleans(),
    owner_rep_id=st.none() | REP_IDS,
    open_opportunity_owner_rep_id=st.none() | REP_IDS,
    weak_match=st.booleans(),
)
LEADS = st.builds(
    LeadFacts,
    country=st.sampled_from(COUNTRIES),
    company=st.sampled_from(("", "Acme")),
    score=st.integers(0, 100),
    account=ACCOUNTS,
)


@FAST
@given(snapshots(), LEADS)
def test_routing_is_deterministic(snapshot, lead):
    assert route_lead(lead, snapshot, now=NOW) == route_lead(lead, snapshot, now=NOW)


@FAST
@given(snapshots(), LEADS)
def test_every_lead_ends_in_exactly_one_consistent_outcome(snapshot, lead):
    decision = route_lead(lead, snapshot, now=NOW)
    json.dumps(decision.receipt)
    if decision.outcome in ("nurture", "discarded"):
        assert (decision.rep_id, decision.queue_id) == (None, None)
        assert decision.rule_id is not None
    elif decision.outcome == "queued":
        assert decision.rep_id is None
        assert decision.queue_id in snapshot.queue_by_id
    else:
        assert decision.outcome == "assigned"
        assert decision.rep_id in snapshot.rep_by_id
        assert decision.rep_id == decision.receipt["winner"]["rep_id"]
        if decision.queue_id is not None:
            # Distributed by a queue: an eligible member of that very queue.
            queue = snapshot.queue_by_id[decision.queue_id]
            member = next(m for m in queue.members if m.rep_id == decision.rep_id)
            assert member_skip_reason(member, snapshot.rep_by_id[decision.rep_id], queue, NOW) is None
        else:
            # Named directly: active and not away.
            chosen = snapshot.rep_by_id[decision.rep_id]
            assert chosen.active
            assert not any(start <= NOW < end for start, end in chosen.out_of_office)


@FAST
@given(snapshots(), LEADS)
def test_first_rule_that_holds_and_can_be_carried_out_wins(snapshot, lead):
    decision = route_lead(lead, snapshot, now=NOW)
    lines = decision.receipt["rules"]
    ordered = sorted(snapshot.rules, key=lambda rule: (rule.position, rule.id))
    # The receipt lists rules in position order and stops at the winner.
    assert [line["id"] for line in lines] == [rule.id for rule in ordered][: len(lines)]
    for rule, line in zip(ordered, lines, strict=False):
        held = evaluate(rule.condition, lead)[0]
        assert (line["result"] == "not matched") is not held
        always_possible = rule.action in ("nurture", "discard") or (
            rule.action == "queue" and rule.queue_id in snapshot.queue_by_id
        )
        if held and always_possible:
            # These actions can always be carried out, so the first one that holds wins.
            assert decision.rule_id == rule.id
            break
        if line["result"] == "matched":
            assert decision.rule_id == rule.id
        else:
            assert decision.rule_id != rule.id


@FAST
@given(snapshots(), st.lists(LEADS, min_size=1, max_size=12))
def test_queues_never_exceed_capacity_or_daily_caps(snapshot, leads):
    for lead in leads:
        decision = route_lead(lead, snapshot, now=NOW)
        snapshot = apply_decision(snapshot, decision)
        if decision.outcome == "assigned" and decision.queue_id is not None:
            winner = snapshot.rep_by_id[decision.rep_id]
            assert winner.open_leads <= winner.max_open_leads
            assert winner.daily_cap is None or winner.assigned_today <= winner.daily_cap


@FAST
@given(snapshots(), st.lists(st.tuples(LEADS, st.frozensets(REP_IDS, max_size=2)), min_size=1, max_size=12))
def test_a_batch_snapshot_decides_as_a_new_snapshot_per_decision_does(snapshot, leads):
    """Routing's batches update one snapshot in place (O(1) a decision); simulate and replay build a new one per
    decision. Lead after lead (some sent back by reps), both make the same decisions and end in the same state,
    and the snapshot the batch started from is left as it was."""
    start, reps_before, queues_before = snapshot, dict(snapshot.rep_by_id), dict(snapshot.queue_by_id)
    batch = batch_snapshot(snapshot)
    for lead, sent_back in leads:
        lead = LeadFacts(**{**vars(lead), "excluded_rep_ids": sent_back})
        decision = route_lead(lead, snapshot, now=NOW)
        assert route_lead(lead, batch, now=NOW) == decision
        snapshot = apply_decision(snapshot, decision)
        assert apply_decision_in_batch(batch, decision) is batch
        assert batch.rep_by_id == snapshot.rep_by_id and batch.queue_by_id == snapshot.queue_by_id
    settled = batch_snapshot_settled(batch)

    assert (settled.reps, settled.queues) == (snapshot.reps, snapshot.queues)
    assert (settled.rep_by_id, settled.queue_by_id) == (snapshot.rep_by_id, snapshot.queue_by_id)
    assert settled.rep_position == snapshot.rep_position
    assert (start.rep_by_id, start.queue_by_id) == (reps_before, queues_before)


@FAST
@given(snapshots(), st.lists(LEADS, min_size=1, max_size=12))
def test_a_batch_judges_each_member_as_its_current_record_says_whatever_it_remembered(snapshot, leads):
    """A batch remembers why a member may not take a lead, and a decision replaces the winner's record with
    new counts: every member's reason, lead after lead, is still the one its current record gives (a rep
    who just reached a cap is at capacity; one with room again is not)."""
    batch = batch_snapshot(snapshot)
    for lead in leads:
        decision = route_lead(lead, batch, now=NOW)
        apply_decision_in_batch(batch, decision)
        for queue in batch.queue_by_id.values():
            for member in queue.members:
                rep = batch.rep_by_id.get(member.rep_id)
                assert _skip_reason(member, batch, queue, NOW, None) == member_skip_reason(member, rep, queue, NOW)


def test_a_rep_record_reads_as_new_to_the_memo_when_any_field_but_its_counts_changes():
    rep = RepInfo(id=1, username="anna", working_hours=((0, time(9), time(17)),), skills=frozenset({"german"}))
    assert _same_standing(rep, dataclasses.replace(rep, open_leads=3, assigned_today=2))
    changed = {
        "active": False,
        "unavailable": "sent this lead back",
        "out_of_office": ((NOW, NOW + timedelta(hours=1)),),
        "working_hours": (),
        "time_zone": "Europe/Berlin",
        "skills": frozenset(),
    }
    assert set(changed) == set(STANDING_FIELDS) - {"id"}  # The memo's key holds the id.
    for name, value in changed.items():
        assert not _same_standing(rep, dataclasses.replace(rep, **{name: value})), name


@settings(max_examples=200, deadline=None)
@given(
    snapshots(),
    st.lists(st.tuples(LEADS, st.sampled_from([NOW, NOW + timedelta(hours=7)])), min_size=6, max_size=30),
)
def test_remembered_skip_reasons_are_the_ones_worked_out_afresh(snapshot, leads):
    """A batch remembers each member's skip reasons between leads; a decision, every candidate's line
    included, is the same as with nothing remembered, as reps fill up and the instant changes."""
    batch = batch_snapshot(snapshot)
    for lead, now in leads:
        remembered = route_lead(lead, batch, now=now)
        batch.skip_reason_memo.clear()
        assert route_lead(lead, batch, now=now) == remembered
        apply_decision_in_batch(batch, remembered)


def one_queue(method, weights, pointer):
    members = tuple(MemberInfo(rep_id, weight=weight, position=rep_id) for rep_id, weight in enumerate(weights, 1))
    return Snapshot(
        territories=(),
        rules=(),
        queues=(QueueInfo(CATCH_ALL, "All", method=method, is_catch_all=True, rr_pointer=pointer, members=members),),
        reps=tuple(RepInfo(rep_id, f"rep{rep_id}", max_open_leads=10_000) for rep_id in range(1, len(weights) + 1)),
        catch_all_queue_id=CATCH_ALL,
    )


def spread(snapshot, count):
    winners = Counter()
    for _ in range(count):
        decision = route_lead(LeadFacts(), snapshot, now=NOW)
        winners[decision.rep_id] += 1
        snapshot = apply_decision(snapshot, decision)
    return winners


@FAST
@given(st.integers(1, 8), st.integers(0, 50), st.integers(0, 40))
def test_round_robin_spreads_evenly(reps_count, pointer, leads):
    winners = spread(one_queue("round_robin", [1] * reps_count, pointer), leads)
    counts = [winners[rep_id] for rep_id in range(1, reps_count + 1)]
    assert max(counts) - min(counts) <= 1


@FAST
@given(st.lists(st.integers(1, 5), min_size=1, max_size=5), st.integers(0, 50), st.integers(1, 3))
def test_weighted_spreads_in_proportion_over_full_cycles(weights, pointer, cycles):
    cycle = len(weighted_sequence(tuple(weights)))
    winners = spread(one_queue("weighted", weights, pointer), cycle * cycles)
    for rep_id, weight in enumerate(weights, 1):
        assert winners[rep_id] * sum(weights) == weight * cycle * cycles


@FAST
@given(snapshots(), LEADS)
def test_a_decision_without_explanations_is_the_same_decision(snapshot, lead):
    # Replay asks for decisions only (the candidates' lines are not built); where the lead goes must not change.
    from dataclasses import replace

    full = route_lead(lead, snapshot, now=NOW)
    quick = route_lead(lead, replace(snapshot, explain=False), now=NOW)

    assert (quick.outcome, quick.via, quick.rep_id, quick.queue_id, quick.rule_id, quick.pointer_advance) == (
        full.outcome,
        full.via,
        full.rep_id,
        full.queue_id,
        full.rule_id,
        full.pointer_advance,
    )


@FAST
@given(snapshots())
def test_a_member_is_eligible_exactly_when_no_reason_keeps_them_out(snapshot):
    from routing.engine.availability import member_eligible, member_skip_reasons

    for queue in snapshot.queues:
        for member in queue.members:
            rep = snapshot.rep_by_id.get(member.rep_id)
            assert member_eligible(member, rep, queue, NOW) == (not member_skip_reasons(member, rep, queue, NOW))
