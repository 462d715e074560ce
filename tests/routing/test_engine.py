"""The routing engine on plain data: territory, account, rules, distribution and the receipt.

No database: each test builds a small coverage snapshot by hand.
"""

import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

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
    evaluate,
    route_lead,
    weighted_sequence,
)

# A Monday afternoon in UTC.
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
CATCH_ALL = 99
WEEKDAYS_9_TO_5 = tuple((day, time(9), time(17)) for day in range(5))


def rep(rep_id, **fields):
    return RepInfo(id=rep_id, username=f"rep{rep_id}", **fields)


def queue(queue_id, rep_ids=(), **fields):
    members = tuple(MemberInfo(rep_id, position=index) for index, rep_id in enumerate(rep_ids))
    return QueueInfo(id=queue_id, name=f"Queue {queue_id}", members=members, **fields)


def snapshot(*, territories=(), rules=(), queues=(), reps=(), catch_all_reps=()):
    catch_all = queue(CATCH_ALL, catch_all_reps, is_catch_all=True)
    catch_all = QueueInfo(**{**catch_all.__dict__, "name": "Catch-all"})
    known = {r.id for r in reps}
    extra = tuple(rep(rep_id) for rep_id in catch_all_reps if rep_id not in known)
    return Snapshot(
        territories=tuple(territories),
        rules=tuple(rules),
        queues=(*queues, catch_all),
        reps=(*reps, *extra),
        catch_all_queue_id=CATCH_ALL,
    )


def always(rule_id, action, position=None, **fields):
    return RuleInfo(
        id=rule_id, name=f"Rule {rule_id}", position=rule_id if position is None else position, action=action, **fields
    )


def when(field, op, value=None):
    return ConditionGroup("all", (Condition(field, op, value),))


def away(start=NOW - timedelta(days=1), end=NOW + timedelta(days=1)):
    return ((start, end),)


# Step 1: territories.

EMEA = TerritoryInfo(1, "EMEA", criteria={"country": frozenset({"DE", "AT", "FR"})}, queue_id=10)
DACH_ENTERPRISE = TerritoryInfo(
    2,
    "DACH Enterprise",
    parent_id=1,
    criteria={"country": frozenset({"DE", "AT"}), "size_band": frozenset({"1001-5000", "5001+"})},
    rep_id=5,
)
DACH_SOFTWARE = TerritoryInfo(3, "DACH Software", parent_id=1, criteria={"industry": frozenset({"software"})})


def territory_snapshot(**fields):
    return snapshot(
        territories=(EMEA, DACH_ENTERPRISE, DACH_SOFTWARE),
        rules=(always(1, "territory"),),
        queues=(queue(10, (1, 2)),),
        reps=(rep(1), rep(2), rep(5)),
        **fields,
    )


def test_lead_falls_in_the_deepest_matching_territory():
    decision = route_lead(LeadFacts(country="DE", size_band="5001+"), territory_snapshot(), now=NOW)
    assert decision.territory_id == 2
    # DACH Enterprise is covered by one rep, who takes the lead.
    assert (decision.outcome, decision.rep_id, decision.rule_id) == ("assigned", 5, 1)
    assert [c["id"] for c in decision.receipt["territory"]["candidates"]] == [2, 1]


def test_kinds_must_all_hold_and_values_of_one_kind_are_alternatives():
    # Austria is one of two countries, but the size band is missing: only EMEA matches.
    decision = route_lead(LeadFacts(country="AT", size_band="11-50"), territory_snapshot(), now=NOW)
    assert decision.territory_id == 1
    assert decision.queue_id == 10


def test_child_territory_needs_its_ancestors_criteria_too():
    # Software in the US meets DACH Software's own criterion but not its parent EMEA's.
    decision = route_lead(LeadFacts(country="US", industry="software"), territory_snapshot(), now=NOW)
    assert decision.territory_id is None
    assert decision.receipt["rules"][0] == {
        "id": 1,
        "name": "Rule 1",
        "action": "territory",
        "result": "skipped",
        "why": "no territory matched",
    }
    assert decision.queue_id == CATCH_ALL


def test_equally_deep_territories_tie_on_more_criteria_kinds_then_lowest_id():
    # A German software enterprise meets both children; DACH Enterprise has two kinds, DACH Software one.
    lead = LeadFacts(country="DE", size_band="5001+", industry="software")
    assert route_lead(lead, territory_snapshot(), now=NOW).territory_id == 2
    twin = TerritoryInfo(4, "DACH Twin", parent_id=1, criteria=DACH_ENTERPRISE.criteria, rep_id=5)
    snap = Snapshot(
        territories=(twin, DACH_ENTERPRISE, EMEA),
        rules=(),
        queues=(queue(CATCH_ALL, is_catch_all=True),),
        reps=(rep(5),),
        catch_all_queue_id=CATCH_ALL,
    )
    assert route_lead(lead, snap, now=NOW).territory_id == 2


def test_uncovered_territory_passes_leads_to_the_nearest_covered_ancestor():
    decision = route_lead(LeadFacts(country="FR", industry="software"), territory_snapshot(), now=NOW)
    assert decision.territory_id == 3
    assert decision.receipt["territory"]["covered_by"]["territory_id"] == 1
    assert (decision.queue_id, decision.rep_id) == (10, 1)


def test_postal_prefix_matches_the_code_in_upper_case_without_spaces():
    london = TerritoryInfo(7, "London SW", criteria={"postal_prefix": frozenset({"SW1"})}, queue_id=10)
    snap = snapshot(territories=(london,), rules=(always(1, "territory"),), queues=(queue(10, (1,)),), reps=(rep(1),))
    assert route_lead(LeadFacts(postal_code="sw1a 1aa"), snap, now=NOW).territory_id == 7
    assert route_lead(LeadFacts(postal_code="SE1 7PB"), snap, now=NOW).territory_id is None
    assert route_lead(LeadFacts(), snap, now=NOW).territory_id is None


def test_product_line_criterion_matches_product_interest():
    analytics = TerritoryInfo(8, "Analytics", criteria={"product_line": frozenset({"analytics"})}, queue_id=10)
    snap = snapshot(territories=(analytics,), queues=(queue(10, (1,)),), reps=(rep(1),))
    assert route_lead(LeadFacts(product_interest="analytics"), snap, now=NOW).territory_id == 8
    assert route_lead(LeadFacts(product_interest="payments"), snap, now=NOW).territory_id is None


def test_territory_rule_skips_an_away_territory_rep_and_the_next_rule_wins():
    snap = snapshot(
        territories=(EMEA, DACH_ENTERPRISE),
        rules=(always(1, "territory"), always(2, "queue", queue_id=10)),
        queues=(queue(10, (1,)),),
        reps=(rep(1), rep(5, out_of_office=away())),
    )
    decision = route_lead(LeadFacts(country="DE", size_band="5001+"), snap, now=NOW)
    assert decision.receipt["rules"][0]["why"] == "territory DACH Enterprise's rep rep5 is out of office"
    assert (decision.rule_id, decision.rep_id) == (2, 1)


# Step 2: the account.


def account_snapshot(*reps):
    return snapshot(rules=(always(1, "queue", queue_id=10),), queues=(queue(10, (1,)),), reps=(rep(1), *reps))


def test_open_opportunity_owner_takes_the_lead_before_any_rule():
    account = AccountFacts(id=3, name="Acme", owner_rep_id=7, open_opportunity_owner_rep_id=8)
    decision = route_lead(LeadFacts(account=account), account_snapshot(rep(7), rep(8)), now=NOW)
    assert (decision.outcome, decision.via, decision.rep_id, decision.rule_id) == ("assigned", "account", 8, None)
    assert decision.receipt["rules"] == []
    assert decision.receipt["summary"] == "Assigned to rep8, the open opportunity owner of Acme."


def test_account_owner_takes_the_lead_without_an_open_opportunity():
    account = AccountFacts(id=3, name="Acme", owner_rep_id=7)
    assert route_lead(LeadFacts(account=account), account_snapshot(rep(7)), now=NOW).rep_id == 7


def test_away_opportunity_owner_hands_the_lead_to_the_account_owner():
    account = AccountFacts(id=3, name="Acme", owner_rep_id=7, open_opportunity_owner_rep_id=8)
    decision = route_lead(LeadFacts(account=account), account_snapshot(rep(7), rep(8, active=False)), now=NOW)
    assert decision.rep_id == 7
    assert [o["reason"] for o in decision.receipt["account"]["owners"]] == ["inactive", "chosen"]


def test_weak_account_match_is_not_trusted_for_ownership():
    account = AccountFacts(id=3, name="IBM", owner_rep_id=7, weak_match=True)
    decision = route_lead(LeadFacts(account=account), account_snapshot(rep(7)), now=NOW)
    assert (decision.via, decision.rep_id) == ("queue", 1)
    assert decision.receipt["account"]["result"] == "weak match: not trusted for ownership"


def test_out_of_office_owner_lets_the_rules_route_and_the_receipt_says_why():
    account = AccountFacts(id=3, name="Acme", owner_rep_id=7)
    decision = route_lead(LeadFacts(account=account), account_snapshot(rep(7, out_of_office=away())), now=NOW)
    assert (decision.rule_id, decision.rep_id) == (1, 1)
    assert decision.receipt["account"]["owners"][0]["reason"] == "out of office"
    assert decision.receipt["account"]["result"] == "owners unavailable"


def test_account_owner_rule_is_skipped_without_an_account():
    snap = snapshot(rules=(always(1, "account_owner"),), catch_all_reps=(1,))
    decision = route_lead(LeadFacts(), snap, now=NOW)
    assert decision.receipt["rules"][0]["result"] == "skipped"
    assert (decision.queue_id, decision.via) == (CATCH_ALL, "catch-all")


# Step 3: rules.


def test_rules_run_in_position_order_whatever_order_they_come_in():
    rules = (always(1, "discard", position=20), always(2, "nurture", position=10))
    decision = route_lead(LeadFacts(), snapshot(rules=rules), now=NOW)
    assert (decision.outcome, decision.rule_id) == ("nurture", 2)
    assert [line["id"] for line in decision.receipt["rules"]] == [2]


def test_first_matching_rule_wins_and_the_receipt_shows_the_failed_condition():
    rules = (
        always(1, "queue", queue_id=10, condition=when("country", "in", ("DE", "AT"))),
        always(2, "nurture", condition=when("score", "lt", 30)),
        always(3, "discard"),
    )
    snap = snapshot(rules=rules, queues=(queue(10, (1,)),), reps=(rep(1),))
    decision = route_lead(LeadFacts(country="FR", score=12), snap, now=NOW)
    assert (decision.outcome, decision.rule_id) == ("nurture", 2)
    assert decision.receipt["rules"][0]["result"] == "not matched"
    assert decision.receipt["rules"][0]["why"] == "country in 'DE', 'AT', but country is 'FR'"
    assert decision.receipt["summary"] == "Sent to nurture by rule 'Rule 2'."


def test_rep_rule_with_an_away_rep_is_skipped_and_evaluation_continues():
    rules = (always(1, "rep", rep_id=4), always(2, "rep", rep_id=5))
    snap = snapshot(rules=rules, reps=(rep(4, out_of_office=away()), rep(5)))
    decision = route_lead(LeadFacts(), snap, now=NOW)
    assert decision.receipt["rules"][0] == {
        "id": 1,
        "name": "Rule 1",
        "action": "rep",
        "result": "skipped",
        "why": "rep4 is out of office",
    }
    assert (decision.outcome, decision.rep_id, decision.rule_id, decision.queue_id) == ("assigned", 5, 2, None)


def test_rules_naming_a_missing_rep_or_queue_are_skipped():
    rules = (always(1, "rep", rep_id=42), always(2, "queue", queue_id=42), always(3, "nurture"))
    decision = route_lead(LeadFacts(), snapshot(rules=rules), now=NOW)
    assert [line["why"] for line in decision.receipt["rules"][:2]] == [
        "rep 42 does not exist",
        "queue 42 does not exist",
    ]
    assert decision.rule_id == 3


def test_unmatched_lead_goes_to_the_catch_all():
    snap = snapshot(rules=(always(1, "discard", condition=when("score", "lt", 0)),), catch_all_reps=(3,))
    decision = route_lead(LeadFacts(score=50), snap, now=NOW)
    assert (decision.outcome, decision.queue_id, decision.rep_id, decision.rule_id) == ("assigned", CATCH_ALL, 3, None)
    assert decision.receipt["summary"] == "Assigned to rep3 in Catch-all (no rule matched)."


def test_discard_rule_discards():
    decision = route_lead(LeadFacts(), snapshot(rules=(always(1, "discard"),)), now=NOW)
    assert (decision.outcome, decision.rep_id, decision.queue_id) == ("discarded", None, None)


ACME = AccountFacts(id=1, name="Acme Corp", tier="tier_1", is_customer=True, weak_match=True)


@pytest.mark.parametrize(
    ("lead", "condition", "expected"),
    [
        (LeadFacts(country="de"), Condition("country", "equals", "DE"), True),
        (LeadFacts(country="DE"), Condition("country", "not_equals", "de"), False),
        (LeadFacts(country="AT"), Condition("country", "in", ("de", "at")), True),
        (LeadFacts(country="CH"), Condition("country", "not_in", ("DE", "AT")), True),
        (LeadFacts(title="VP of Sales"), Condition("title", "contains", "vp"), True),
        (LeadFacts(title="Sales Manager"), Condition("title", "contains", ("chief", "vp")), False),
        (LeadFacts(email_domain="mail.acme.com"), Condition("email_domain", "starts_with", "MAIL."), True),
        (LeadFacts(score=80), Condition("score", "gt", 79), True),
        (LeadFacts(score=80), Condition("score", "gte", 81), False),
        (LeadFacts(employees=10), Condition("employees", "lt", "11"), True),
        (LeadFacts(employees=None), Condition("employees", "lte", 100), False),
        (LeadFacts(annual_revenue=Decimal("2500000.00")), Condition("annual_revenue", "between", (1e6, 5e6)), True),
        (LeadFacts(score=5), Condition("score", "between", (10, 20)), False),
        (LeadFacts(company="  "), Condition("company", "is_blank"), True),
        (LeadFacts(company="Acme"), Condition("company", "is_not_blank"), True),
        (LeadFacts(), Condition("account.tier", "is_blank"), True),
        (LeadFacts(account=ACME), Condition("account.tier", "equals", "TIER_1"), True),
        (LeadFacts(account=ACME), Condition("account.is_customer", "equals", True), True),
        (LeadFacts(account=ACME), Condition("account.is_customer", "equals", "false"), False),
        (LeadFacts(account=ACME), Condition("account.name", "contains", "acme"), True),
        (LeadFacts(is_free_email=False), Condition("is_free_email", "equals", False), True),
        (LeadFacts(employees=500), Condition("employees", "equals", "500"), True),
    ],
)
def test_condition_operators(lead, condition, expected):
    assert evaluate(ConditionGroup("all", (condition,)), lead)[0] is expected


def test_nested_groups_combine_all_and_any():
    # Enterprise in DACH, or any lead scoring 90 and above.
    group = ConditionGroup(
        "any",
        (
            ConditionGroup(
                "all", (Condition("country", "in", ("DE", "AT")), Condition("size_band", "equals", "5001+"))
            ),
            Condition("score", "gte", 90),
        ),
    )
    assert evaluate(group, LeadFacts(country="DE", size_band="5001+"))[0]
    assert evaluate(group, LeadFacts(country="US", score=95))[0]
    held, why = evaluate(group, LeadFacts(country="DE", size_band="1-10", score=10))
    assert not held
    assert why == "none held: size_band = '5001+', but size_band is '1-10'; score ≥ 90, but score is 10"


def test_unknown_fields_and_operators_are_rejected():
    with pytest.raises(ValueError, match="Unknown condition operator"):
        Condition("country", "like", "D%")
    with pytest.raises(ValueError, match="Unknown lead field"):
        LeadFacts().value("favourite_colour")
    with pytest.raises(ValueError, match="Unknown account field"):
        LeadFacts().value("account.revenue")


def test_now_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        route_lead(LeadFacts(), snapshot(), now=datetime(2026, 1, 1))


# Step 4: distribution inside a queue.


def reason_of(decision, rep_id):
    lines = [line for step in decision.receipt["queue_path"] for line in step.get("candidates", [])]
    return next(line["reason"] for line in lines if line["rep_id"] == rep_id)


@pytest.mark.parametrize(
    ("member", "candidate", "queue_fields", "reason"),
    [
        (MemberInfo(1, active=False), rep(1), {}, "membership inactive"),
        (MemberInfo(1), rep(1, active=False), {}, "inactive"),
        (MemberInfo(1), rep(1, out_of_office=away()), {}, "out of office"),
        (MemberInfo(1), rep(1, working_hours=((0, time(6), time(9)),)), {}, "off hours"),
        (
            MemberInfo(1),
            rep(1, skills=frozenset({"german"})),
            {"required_skills": frozenset({"german", "sap"})},
            "missing skill: sap",
        ),
        (MemberInfo(1), rep(1, open_leads=5, max_open_leads=5), {}, "at capacity"),
        (MemberInfo(1), rep(1, assigned_today=3, daily_cap=3), {}, "daily cap reached"),
    ],
)
def test_each_skip_reason_is_recorded_and_the_next_rep_gets_the_lead(member, candidate, queue_fields, reason):
    members = (member, MemberInfo(2, position=1))
    snap = snapshot(
        rules=(always(1, "queue", queue_id=10),),
        queues=(QueueInfo(10, "Inbound", members=members, **queue_fields),),
        reps=(candidate, rep(2, skills=frozenset({"german", "sap"}))),
    )
    decision = route_lead(LeadFacts(), snap, now=NOW)
    assert decision.rep_id == 2
    assert reason_of(decision, 1) == reason


def test_off_hours_reps_are_eligible_when_the_queue_does_not_skip_them():
    snap = snapshot(
        rules=(always(1, "queue", queue_id=10),),
        queues=(queue(10, (1,), skip_off_hours_reps=False),),
        reps=(rep(1, working_hours=((0, time(6), time(9)),)),),
    )
    assert route_lead(LeadFacts(), snap, now=NOW).rep_id == 1


def test_out_of_office_starts_inclusive_and_ends_exclusive():
    snap = snapshot(catch_all_reps=(1,))
    for start, end, expected in ((NOW, NOW + timedelta(hours=1), None), (NOW - timedelta(hours=1), NOW, 1)):
        reps = (rep(1, out_of_office=((start, end),)),)
        snap = Snapshot(territories=(), rules=(), queues=snap.queues, reps=reps, catch_all_queue_id=CATCH_ALL)
        assert route_lead(LeadFacts(), snap, now=NOW).rep_id == expected


THREE_REPS = (rep(1), rep(2), rep(3))


def round_robin_snapshot(pointer, reps=THREE_REPS):
    return snapshot(
        rules=(always(1, "queue", queue_id=10),),
        queues=(queue(10, (1, 2, 3), rr_pointer=pointer),),
        reps=reps,
    )


def test_round_robin_takes_turns_from_the_pointer_and_moves_it_past_the_winner():
    decision = route_lead(LeadFacts(), round_robin_snapshot(pointer=1), now=NOW)
    assert (decision.rep_id, decision.pointer_advance) == (2, {10: 2})
    assert [reason_of(decision, rep_id) for rep_id in (1, 2, 3)] == ["not their turn", "chosen", "not their turn"]
    # The pointer wraps around the member list.
    assert route_lead(LeadFacts(), round_robin_snapshot(pointer=5), now=NOW).rep_id == 3
    assert route_lead(LeadFacts(), round_robin_snapshot(pointer=6), now=NOW).rep_id == 1


def test_round_robin_walks_past_ineligible_reps():
    reps = (rep(1), rep(2, out_of_office=away()), rep(3, active=False))
    decision = route_lead(LeadFacts(), round_robin_snapshot(pointer=1, reps=reps), now=NOW)
    assert (decision.rep_id, decision.pointer_advance) == (1, {10: 1})


def test_round_robin_orders_members_by_position_then_rep_id():
    members = (MemberInfo(3, position=0), MemberInfo(2, position=1), MemberInfo(1, position=1))
    snap = snapshot(
        rules=(always(1, "queue", queue_id=10),),
        queues=(QueueInfo(10, "Q", members=members, rr_pointer=1),),
        reps=(rep(1), rep(2), rep(3)),
    )
    assert route_lead(LeadFacts(), snap, now=NOW).rep_id == 1


def test_weighted_sequence_is_smooth_like_nginx():
    # nginx's documented example: weights 5, 1, 1 give a a b a c a a.
    assert weighted_sequence((5, 1, 1)) == (0, 0, 1, 0, 2, 0, 0)
    # Common factors do not change the pattern, only shorten the cycle.
    assert weighted_sequence((4, 2)) == weighted_sequence((2, 1)) == (0, 1, 0)


def test_weighted_queue_follows_the_sequence_and_walks_past_ineligible_entries():
    def weighted(pointer, reps):
        members = (MemberInfo(1, weight=2, position=0), MemberInfo(2, weight=1, position=1))
        return snapshot(
            rules=(always(1, "queue", queue_id=10),),
            queues=(QueueInfo(10, "W", method="weighted", members=members, rr_pointer=pointer),),
            reps=reps,
        )

    # Sequence (0, 1, 0): slot 1 is rep 2's.
    decision = route_lead(LeadFacts(), weighted(1, (rep(1), rep(2))), now=NOW)
    assert (decision.rep_id, decision.pointer_advance) == (2, {10: 2})
    decision = route_lead(LeadFacts(), weighted(1, (rep(1), rep(2, active=False))), now=NOW)
    assert (decision.rep_id, decision.pointer_advance) == (1, {10: 3})


def test_load_balanced_picks_the_lowest_load_for_capacity_then_fewer_leads_today():
    reps = (
        rep(1, open_leads=5, max_open_leads=10),
        rep(2, open_leads=4, max_open_leads=20, assigned_today=3),
        rep(3, open_leads=2, max_open_leads=10, assigned_today=1),
    )
    snap = snapshot(
        rules=(always(1, "queue", queue_id=10),),
        queues=(queue(10, (1, 2, 3), method="load_balanced"),),
        reps=reps,
    )
    decision = route_lead(LeadFacts(), snap, now=NOW)
    # Reps 2 and 3 both carry 20%; rep 3 got fewer leads today.
    assert (decision.rep_id, decision.pointer_advance) == (3, {})
    candidates = decision.receipt["queue_path"][0]["candidates"]
    assert candidates[0] == {
        "rep_id": 1,
        "username": "rep1",
        "eligible": True,
        "reason": "not their turn",
        "load": "5/10",
    }


def test_hold_queue_keeps_the_lead_when_nobody_is_eligible():
    snap = snapshot(
        rules=(always(1, "queue", queue_id=10),),
        queues=(queue(10, (1,), when_nobody_eligible="hold", fallback_id=11), queue(11, (2,))),
        reps=(rep(1, active=False), rep(2)),
    )
    decision = route_lead(LeadFacts(), snap, now=NOW)
    assert (decision.outcome, decision.queue_id, decision.rep_id, decision.pointer_advance) == ("queued", 10, None, {})
    assert decision.receipt["summary"] == "Waiting in Queue 10: nobody eligible by rule 'Rule 1'."


def test_overflow_follows_the_fallback_chain():
    snap = snapshot(
        rules=(always(1, "queue", queue_id=10),),
        queues=(
            queue(10, (1,), when_nobody_eligible="overflow", fallback_id=11),
            queue(11, (), when_nobody_eligible="overflow", fallback_id=12),
            queue(12, (2,)),
        ),
        reps=(rep(1, open_leads=50), rep(2)),
    )
    decision = route_lead(LeadFacts(), snap, now=NOW)
    assert (decision.outcome, decision.queue_id, decision.rep_id) == ("assigned", 12, 2)
    assert [step["queue_id"] for step in decision.receipt["queue_path"]] == [10, 11, 12]
    assert decision.receipt["queue_path"][0]["result"] == "nobody eligible: overflow to Queue 11"


def test_overflow_cycle_ends_in_the_catch_all_which_holds():
    snap = snapshot(
        rules=(always(1, "queue", queue_id=10),),
        queues=(
            queue(10, (), when_nobody_eligible="overflow", fallback_id=11),
            queue(11, (), when_nobody_eligible="overflow", fallback_id=10),
        ),
    )
    decision = route_lead(LeadFacts(), snap, now=NOW)
    assert (decision.outcome, decision.queue_id) == ("queued", CATCH_ALL)
    assert [step["queue_id"] for step in decision.receipt["queue_path"]] == [10, 11, CATCH_ALL]


def test_inactive_queue_overflows_to_its_fallback_or_the_catch_all():
    snap = snapshot(
        rules=(always(1, "queue", queue_id=10), always(2, "queue", queue_id=11)),
        queues=(queue(10, (1,), active=False, fallback_id=11), queue(11, (2,), active=False)),
        reps=(rep(1), rep(2)),
        catch_all_reps=(3,),
    )
    decision = route_lead(LeadFacts(), snap, now=NOW)
    assert (decision.queue_id, decision.rep_id, decision.rule_id) == (CATCH_ALL, 3, 1)
    assert decision.receipt["queue_path"][0]["result"] == "inactive: overflow to Queue 11"


# Night in Europe: Tuesday 01:30 in Berlin (00:30 UTC). The DACH reps work 08:00–17:00 Berlin time.
BERLIN_NIGHT = datetime(2026, 12, 8, 0, 30, tzinfo=UTC)
BERLIN_8_TO_5 = tuple((day, time(8), time(17)) for day in range(5))


def dach(rep_id, **fields):
    fields = {"time_zone": "Europe/Berlin", "working_hours": BERLIN_8_TO_5, "skills": frozenset({"german"}), **fields}
    return rep(rep_id, **fields)


def night_snapshot(when_nobody_eligible="hold_off_hours", **overflow_fields):
    """DACH (needs German) overflows to EMEA Overflow (English speakers working round the clock)."""
    return snapshot(
        rules=(always(1, "queue", queue_id=10),),
        queues=(
            queue(
                10,
                (1, 2),
                required_skills=frozenset({"german"}),
                when_nobody_eligible=when_nobody_eligible,
                fallback_id=11,
            ),
            queue(11, (3,), when_nobody_eligible="overflow", fallback_id=CATCH_ALL, **overflow_fields),
        ),
        reps=(dach(1), dach(2, working_hours=tuple((day, time(9), time(17)) for day in range(5))), rep(3)),
        catch_all_reps=(4,),
    )


def test_a_queue_holding_off_hours_keeps_a_night_lead_until_its_first_rep_starts_work():
    decision = route_lead(LeadFacts(), night_snapshot(), now=BERLIN_NIGHT)
    assert (decision.outcome, decision.queue_id, decision.rep_id) == ("queued", 10, None)
    # Rep 1 starts at 08:00 Berlin, which is 07:00 UTC in winter; rep 2 only at 09:00.
    assert datetime.fromisoformat(decision.receipt["held_until"]) == datetime(2026, 12, 8, 7, 0, tzinfo=UTC)
    assert decision.receipt["held_for"] == "rep1"
    assert decision.receipt["summary"] == (
        "Held in Queue 10 by rule 'Rule 1' until rep1 starts work at Tue 08 Dec 08:00 CET (Europe/Berlin): "
        "nobody eligible is working now. The SLA clock starts when the lead is assigned."
    )
    assert [step["queue_id"] for step in decision.receipt["queue_path"]] == [10]


def test_a_queue_holding_off_hours_still_overflows_when_its_working_reps_are_full():
    working = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)  # 11:00 Berlin: both DACH reps at work, both full.
    snap = night_snapshot()
    snap = Snapshot(
        territories=snap.territories,
        rules=snap.rules,
        queues=snap.queues,
        reps=(dach(1, open_leads=50), dach(2, open_leads=50), rep(3, skills=frozenset({"german"})), rep(4)),
        catch_all_queue_id=CATCH_ALL,
    )
    decision = route_lead(LeadFacts(), snap, now=working)
    assert (decision.outcome, decision.queue_id, decision.rep_id) == ("assigned", 11, 3)


def test_an_overflowing_lead_keeps_the_skills_its_first_queue_required():
    # Plain overflow at night: EMEA Overflow's rep 3 speaks no German, nor does the catch-all's rep 4.
    decision = route_lead(LeadFacts(), night_snapshot("overflow"), now=BERLIN_NIGHT)
    assert (decision.outcome, decision.queue_id, decision.rep_id) == ("queued", CATCH_ALL, None)
    path = decision.receipt["queue_path"]
    assert [step["queue_id"] for step in path] == [10, 11, CATCH_ALL]
    assert path[1]["required_skills"] == ["german"]
    assert path[1]["candidates"][0]["reason"] == "missing skill: german"


def test_a_queue_that_does_not_inherit_skills_takes_overflow_on_its_own_terms():
    decision = route_lead(LeadFacts(), night_snapshot("overflow", inherit_skills=False), now=BERLIN_NIGHT)
    assert (decision.outcome, decision.queue_id, decision.rep_id) == ("assigned", 11, 3)


def test_the_receipt_gives_every_reason_a_rep_was_skipped():
    snap = night_snapshot("hold")
    snap = Snapshot(
        territories=snap.territories,
        rules=snap.rules,
        queues=snap.queues,
        reps=(dach(1, open_leads=50), rep(2, time_zone="Europe/Berlin", working_hours=BERLIN_8_TO_5), rep(3)),
        catch_all_queue_id=CATCH_ALL,
    )
    decision = route_lead(LeadFacts(), snap, now=BERLIN_NIGHT)
    reasons = [line["reason"] for line in decision.receipt["queue_path"][0]["candidates"]]
    assert reasons == ["off hours; at capacity", "off hours; missing skill: german"]
    # Nobody is kept out by their hours alone, so the receipt names no time to wait for.
    assert "held_until" not in decision.receipt


def test_a_rep_whose_daily_cap_is_reached_is_waited_for_when_they_next_work_on_another_day():
    # Tuesday night in Berlin: rep 1 reached today's cap, but works again on Wednesday with a new day's count.
    snap = night_snapshot()
    late = datetime(2026, 12, 8, 21, 0, tzinfo=UTC)  # 22:00 Berlin.
    capped = Snapshot(
        territories=snap.territories,
        rules=snap.rules,
        queues=snap.queues,
        reps=(dach(1, assigned_today=5, daily_cap=5), dach(2, assigned_today=5, daily_cap=5), rep(3)),
        catch_all_queue_id=CATCH_ALL,
    )
    decision = route_lead(LeadFacts(), capped, now=late)
    assert (decision.outcome, decision.queue_id) == ("queued", 10)
    assert datetime.fromisoformat(decision.receipt["held_until"]) == datetime(2026, 12, 9, 7, 0, tzinfo=UTC)
    # At 07:30 Berlin the same day, the cap still holds when they start at 08:00: nothing to wait for there,
    # so the lead overflows (and, needing German, is held in the catch-all).
    early = route_lead(LeadFacts(), capped, now=datetime(2026, 12, 8, 6, 30, tzinfo=UTC))
    assert [step["queue_id"] for step in early.receipt["queue_path"]] == [10, 11, CATCH_ALL]
    assert "held_until" not in early.receipt


def test_the_next_working_start_crosses_the_weekend_and_daylight_saving():
    from routing.engine import next_working_start

    friday_evening = datetime(2027, 3, 26, 18, 0, tzinfo=UTC)  # Berlin changes to summer time on Sunday 28th.
    starts = next_working_start(dach(1), friday_evening)
    assert starts == datetime(2027, 3, 29, 6, 0, tzinfo=UTC)  # Monday 08:00 CEST.
    assert next_working_start(rep(9), friday_evening) is None  # No windows: always working.


def test_applying_a_decision_counts_the_lead_and_moves_the_pointer():
    snap = round_robin_snapshot(pointer=0)
    decision = route_lead(LeadFacts(), snap, now=NOW)
    after = apply_decision(snap, decision)
    assert after.rep_by_id[1].open_leads == 1
    assert after.rep_by_id[1].assigned_today == 1
    assert after.queue_by_id[10].rr_pointer == 1
    assert route_lead(LeadFacts(), after, now=NOW).rep_id == 2


# Working hours across daylight-saving changes and midnight.

NEW_YORK = rep(1, time_zone="America/New_York", working_hours=WEEKDAYS_9_TO_5)
BERLIN = rep(2, time_zone="Europe/Berlin", working_hours=WEEKDAYS_9_TO_5)


def working(candidate, instant):
    snap = snapshot(rules=(always(1, "queue", queue_id=10),), queues=(queue(10, (candidate.id,)),), reps=(candidate,))
    return route_lead(LeadFacts(), snap, now=instant).rep_id == candidate.id


@pytest.mark.parametrize(
    ("candidate", "instant", "expected"),
    [
        # New York springs forward on 8 March 2026: 13:00 UTC is 08:00 EST before, 09:00 EDT after.
        (NEW_YORK, datetime(2026, 3, 6, 13, 30, tzinfo=UTC), False),
        (NEW_YORK, datetime(2026, 3, 9, 13, 30, tzinfo=UTC), True),
        # Berlin springs forward on 29 March 2026: 07:30 UTC is 08:30 CET before, 09:30 CEST after.
        (BERLIN, datetime(2026, 3, 27, 7, 30, tzinfo=UTC), False),
        (BERLIN, datetime(2026, 3, 30, 7, 30, tzinfo=UTC), True),
        # Between the two changes New York is 4 hours behind UTC and Berlin 1 ahead.
        (NEW_YORK, datetime(2026, 3, 16, 20, 59, tzinfo=UTC), True),
        (BERLIN, datetime(2026, 3, 16, 16, 0, tzinfo=UTC), False),
        # Berlin falls back on 25 October 2026: 07:30 UTC is 09:30 CEST before, 08:30 CET after.
        (BERLIN, datetime(2026, 10, 23, 7, 30, tzinfo=UTC), True),
        (BERLIN, datetime(2026, 10, 26, 7, 30, tzinfo=UTC), False),
        (BERLIN, datetime(2026, 10, 26, 15, 30, tzinfo=UTC), True),
        # New York falls back on 1 November 2026: 13:30 UTC is 09:30 EDT before, 08:30 EST after.
        (NEW_YORK, datetime(2026, 10, 30, 13, 30, tzinfo=UTC), True),
        (NEW_YORK, datetime(2026, 11, 2, 13, 30, tzinfo=UTC), False),
        (NEW_YORK, datetime(2026, 11, 2, 21, 30, tzinfo=UTC), True),
    ],
)
def test_working_hours_are_read_in_the_reps_time_zone_across_dst(candidate, instant, expected):
    assert working(candidate, instant) is expected


NIGHT_SHIFT = rep(3, time_zone="Europe/Berlin", working_hours=((0, time(22), time(6)), (5, time(22), time(6))))


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (datetime(2026, 11, 23, 20, 59, tzinfo=UTC), False),  # Monday 21:59 in Berlin
        (datetime(2026, 11, 23, 21, 0, tzinfo=UTC), True),  # Monday 22:00
        (datetime(2026, 11, 24, 1, 0, tzinfo=UTC), True),  # Tuesday 02:00, still Monday's shift
        (datetime(2026, 11, 24, 5, 0, tzinfo=UTC), False),  # Tuesday 06:00, the shift is over
        (datetime(2026, 11, 24, 21, 30, tzinfo=UTC), False),  # Tuesday 22:30: no Tuesday shift
        (datetime(2026, 11, 23, 1, 0, tzinfo=UTC), False),  # Monday 02:00 belongs to Sunday: no shift
        # Saturday night's shift runs into the spring-forward night: 05:30 CEST is 03:30 UTC.
        (datetime(2026, 3, 29, 3, 30, tzinfo=UTC), True),
        (datetime(2026, 3, 29, 4, 30, tzinfo=UTC), False),
        # Saturday night's shift in the fall-back night: 05:30 CET is 04:30 UTC.
        (datetime(2026, 10, 25, 4, 30, tzinfo=UTC), True),
        (datetime(2026, 10, 25, 5, 30, tzinfo=UTC), False),
    ],
)
def test_night_shift_runs_past_midnight_into_the_next_day(instant, expected):
    assert working(NIGHT_SHIFT, instant) is expected


# Step 5: the receipt.


def test_receipt_is_json_and_explains_every_candidate():
    reps = (rep(1), rep(2, out_of_office=away()), rep(3, open_leads=50))
    snap = snapshot(
        territories=(EMEA,),
        rules=(always(1, "nurture", condition=when("score", "lt", 10)), always(2, "territory")),
        queues=(queue(10, (1, 2, 3)),),
        reps=reps,
    )
    lead = LeadFacts(country="FR", score=40, annual_revenue=Decimal("10.5"), account=ACME)
    decision = route_lead(lead, snap, now=NOW)
    receipt = json.loads(json.dumps(decision.receipt))
    assert receipt["decided_at"] == "2026-11-23T14:00:00+00:00"
    assert receipt["territory"]["chosen"] == {"id": 1, "name": "EMEA"}
    assert receipt["account"] == {"id": 1, "name": "Acme Corp", "result": "weak match: not trusted for ownership"}
    assert [line["result"] for line in receipt["rules"]] == ["not matched", "matched"]
    assert receipt["rules"][0]["why"] == "score < 10, but score is 40"
    assert [(c["rep_id"], c["eligible"], c["reason"]) for c in receipt["queue_path"][0]["candidates"]] == [
        (1, True, "chosen"),
        (2, False, "out of office"),
        (3, False, "at capacity"),
    ]
    assert receipt["winner"] == {"rep_id": 1, "username": "rep1"}
    assert receipt["summary"] == "Assigned to rep1 in Queue 10 by rule 'Rule 2'."


def test_rep_without_working_hours_is_always_working():
    sunday_night = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert working(rep(4, time_zone="Asia/Tokyo"), sunday_night)


def test_sunday_night_shift_runs_into_monday():
    sunday_shift = rep(5, time_zone="America/New_York", working_hours=((6, time(20), time(4)),))
    assert working(sunday_shift, datetime(2026, 11, 23, 8, 30, tzinfo=UTC))  # Monday 03:30 in New York
    assert not working(sunday_shift, datetime(2026, 11, 23, 9, 30, tzinfo=UTC))  # Monday 04:30
