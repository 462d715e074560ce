"""The engine's compiled territories and its cheap ``apply_decision`` decide exactly as the plain rules say."""

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.engine import (
    Decision,
    LeadFacts,
    MemberInfo,
    QueueInfo,
    RepInfo,
    Snapshot,
    TerritoryInfo,
    apply_decision,
    route_lead,
)
from routing.engine.territories import ancestors, match_territory, meets_own_criteria

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
VALUES = {
    "country": ("DE", "de ", "AT", "US", " ", ""),
    "subdivision": ("DE-BY", "de-by", "US-CA"),
    "industry": ("software", "Software", "retail"),
    "size_band": ("1-10", "5001+"),
    "product_line": ("analytics", "ANALYTICS "),
    "postal_prefix": ("80", "8 0", "sw1", "SW1A", " ", "9"),
}
LEAD_VALUES = {
    "country": ("DE", "de", " AT ", "US", ""),
    "subdivision": ("DE-BY", "US-CA", ""),
    "industry": ("software", "RETAIL", ""),
    "size_band": ("1-10", "5001+", ""),
    "product_interest": ("analytics", "payments", ""),
    "postal_code": ("80331", "8 0331", "sw1a 1aa", "SE1", "9", ""),
}


def every_territory_match(lead, by_id):
    """Territory matching as it was written before compiling: every territory's criteria tested."""
    own = {tid: meets_own_criteria(lead, territory) for tid, territory in by_id.items()}
    candidates = []
    for territory in by_id.values():
        chain = ancestors(territory, by_id)
        if own[territory.id] and all(own[parent.id] for parent in chain):
            kinds = sum(1 for values in territory.criteria.values() if values)
            candidates.append((-len(chain), -kinds, territory.id, territory))
    candidates.sort(key=lambda candidate: candidate[:3])
    if not candidates:
        return None, [], None
    chosen = candidates[0][3]
    coverage = next(
        (t for t in [chosen, *ancestors(chosen, by_id)] if t.queue_id is not None or t.rep_id is not None), None
    )
    return chosen, [t.id for *_, t in candidates], coverage


@st.composite
def territories(draw):
    count = draw(st.integers(0, 9))
    made = []
    for tid in range(1, count + 1):
        kinds = draw(st.sets(st.sampled_from(sorted(VALUES)), max_size=3))
        criteria = {kind: frozenset(draw(st.sets(st.sampled_from(VALUES[kind]), max_size=3))) for kind in kinds}
        made.append(
            TerritoryInfo(
                tid,
                f"Territory {tid}",
                # Parents may be missing or form cycles: matching must still end.
                parent_id=draw(st.none() | st.integers(1, count + 1)),
                criteria=criteria,
                queue_id=draw(st.none() | st.just(10)),
                rep_id=draw(st.none() | st.just(1)),
            )
        )
    return {territory.id: territory for territory in made}


LEADS = st.builds(LeadFacts, **{name: st.sampled_from(values) for name, values in LEAD_VALUES.items()})


@settings(max_examples=400, deadline=None)
@given(territories(), LEADS)
def test_compiled_territories_match_as_testing_every_territory_does(by_id, lead):
    chosen, candidates, coverage = every_territory_match(lead, by_id)
    match = match_territory(lead, by_id)
    assert match.territory == chosen
    assert [candidate["id"] for candidate in match.receipt["candidates"]] == candidates
    assert match.coverage == coverage


def snapshot_of(reps, queues):
    return Snapshot(territories=(), rules=(), queues=queues, reps=reps, catch_all_queue_id=queues[0].id)


def applied_by_rebuilding(snapshot, decision):
    """``apply_decision`` as it was written before: every rep and queue rebuilt."""
    reps = tuple(
        replace(rep, open_leads=rep.open_leads + 1, assigned_today=rep.assigned_today + 1)
        if decision.outcome == "assigned" and rep.id == decision.rep_id
        else rep
        for rep in snapshot.reps
    )
    queues = tuple(
        replace(queue, rr_pointer=decision.pointer_advance[queue.id]) if queue.id in decision.pointer_advance else queue
        for queue in snapshot.queues
    )
    return replace(snapshot, reps=reps, queues=queues)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 8), min_size=1, max_size=8, unique=True),
    st.lists(st.integers(10, 14), min_size=1, max_size=5, unique=True),
    st.lists(
        st.tuples(
            st.sampled_from(("assigned", "queued", "nurture")),
            st.none() | st.integers(0, 9),
            st.dictionaries(st.integers(9, 15), st.integers(0, 30), max_size=2),
        ),
        max_size=10,
    ),
)
def test_applying_decisions_changes_only_the_winner_and_the_moved_queues(rep_ids, queue_ids, decisions):
    reps = tuple(RepInfo(rep_id, f"rep{rep_id}", max_open_leads=100) for rep_id in rep_ids)
    queues = tuple(
        QueueInfo(queue_id, f"Queue {queue_id}", is_catch_all=index == 0, members=(MemberInfo(rep_ids[0]),))
        for index, queue_id in enumerate(queue_ids)
    )
    cheap = rebuilt = snapshot_of(reps, queues)
    for outcome, rep_id, advance in decisions:
        decision = Decision(outcome, "queue", rep_id=rep_id, pointer_advance=advance)
        cheap, rebuilt = apply_decision(cheap, decision), applied_by_rebuilding(rebuilt, decision)
        assert (cheap.reps, cheap.queues) == (rebuilt.reps, rebuilt.queues)
        assert cheap.rep_by_id == rebuilt.rep_by_id
        assert cheap.queue_by_id == rebuilt.queue_by_id
        # The next decision reads the new state.
        assert route_lead(LeadFacts(), cheap, now=NOW) == route_lead(LeadFacts(), rebuilt, now=NOW)
