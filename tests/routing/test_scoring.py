"""Fit and intent scoring, and the thresholds that send a lead to sales, nurture or disqualified."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from hypothesis import given
from hypothesis import strategies as st

from routing.conditions import parse_condition
from routing.engine import LeadFacts
from routing.models import ScoringRule, ScoringThresholds
from routing.scoring import ScoringRuleInfo, Thresholds, score_lead
from routing.selectors import scoring_snapshot
from tests.helpers import admin_url

THRESHOLDS = Thresholds(sales_min=40, nurture_min=10)


def rule(name, kind, points, field, op, value=None):
    return ScoringRuleInfo(name, kind, parse_condition({"all": [{"field": field, "op": op, "value": value}]}), points)


RULES = [
    rule("Mid-market or larger", "fit", 25, "employees", "gte", 200),
    rule("Software", "fit", 10, "industry", "equals", "software"),
    rule("Free-mail address", "fit", -20, "is_free_email", "equals", True),
    rule("Asked for a demo", "intent", 30, "source", "in", ["demo request", "contact sales"]),
]


def test_points_add_up_by_kind_and_a_demo_request_from_a_fit_company_goes_to_sales():
    result = score_lead(LeadFacts(employees=500, industry="software", source="Demo request"), RULES, THRESHOLDS)

    assert (result.fit, result.intent, result.total) == (35, 30, 65)
    assert result.disposition == "sales"
    assert result.as_receipt()["matched"] == [
        {"rule": "Mid-market or larger", "points": 25},
        {"rule": "Software", "points": 10},
        {"rule": "Asked for a demo", "points": 30},
    ]


def test_negative_points_take_a_lead_down_to_nurture():
    result = score_lead(LeadFacts(is_free_email=True, source="demo request"), RULES, THRESHOLDS)
    assert result.total == 10
    assert result.disposition == "nurture"


def test_a_lead_below_the_nurture_threshold_is_disqualified():
    assert score_lead(LeadFacts(is_free_email=True), RULES, THRESHOLDS).disposition == "disqualified"


@pytest.mark.parametrize(
    ("total", "disposition"), [(40, "sales"), (39, "nurture"), (10, "nurture"), (9, "disqualified")]
)
def test_a_total_on_a_threshold_goes_up(total, disposition):
    rules = [rule("Flat", "fit", total, "country", "is_blank")]
    assert score_lead(LeadFacts(), rules, THRESHOLDS).disposition == disposition


@given(
    points=st.lists(st.integers(min_value=-50, max_value=50), max_size=6),
    nurture_min=st.integers(min_value=-20, max_value=40),
    gap=st.integers(min_value=0, max_value=60),
)
def test_disposition_follows_the_total_and_only_the_total(points, nurture_min, gap):
    thresholds = Thresholds(sales_min=nurture_min + gap, nurture_min=nurture_min)
    rules = [
        rule(f"r{index}", "fit" if index % 2 else "intent", value, "country", "is_blank")
        for index, value in enumerate(points)
    ]
    result = score_lead(LeadFacts(), rules, thresholds)
    assert result.total == sum(points)
    expected = (
        "sales"
        if result.total >= thresholds.sales_min
        else ("nurture" if result.total >= thresholds.nurture_min else "disqualified")
    )
    assert result.disposition == expected


@pytest.mark.django_db
def test_a_scoring_rule_needs_a_valid_condition():
    with pytest.raises(ValidationError) as caught:
        ScoringRule(name="Everyone", kind="fit", points=5, condition={}).full_clean()
    assert "cannot be blank" in caught.value.message_dict["condition"][0]
    with pytest.raises(ValidationError) as caught:
        ScoringRule(name="Empty group", kind="fit", points=5, condition={"all": []}).full_clean()
    assert "all: list at least one condition" in caught.value.message_dict["condition"][0]
    with pytest.raises(ValidationError) as caught:
        ScoringRule(
            name="Typo", kind="fit", points=5, condition={"all": [{"field": "employes", "op": "gte", "value": 5}]}
        ).full_clean()
    assert "all[0].field" in caught.value.message_dict["condition"][0]


@pytest.mark.django_db
def test_thresholds_are_one_row_in_order():
    thresholds = ScoringThresholds.current()
    assert (thresholds.pk, thresholds.sales_min, thresholds.nurture_min) == (1, 40, 10)
    assert ScoringThresholds.current().pk == 1
    thresholds.nurture_min = 50
    with pytest.raises(ValidationError, match="must not be above the sales threshold"):
        thresholds.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        ScoringThresholds.objects.create(pk=2)


@pytest.mark.django_db
def test_the_scorer_reads_only_active_rules_from_the_database():
    ScoringRule.objects.create(
        name="Enterprise",
        kind="fit",
        points=30,
        condition={"all": [{"field": "employees", "op": "gte", "value": 1000}]},
    )
    ScoringRule.objects.create(
        name="Retired",
        kind="intent",
        points=99,
        active=False,
        condition={"all": [{"field": "source", "op": "equals", "value": "webinar"}]},
    )
    rules, thresholds = scoring_snapshot()
    assert [r.name for r in rules] == ["Enterprise"]
    assert score_lead(LeadFacts(employees=5000, source="webinar"), rules, thresholds).total == 30


@pytest.mark.django_db
def test_revops_tune_thresholds_in_admin_but_cannot_add_or_delete_the_row(client, revops):
    client.force_login(revops)
    assert client.get(admin_url(ScoringThresholds, "changelist")).status_code == 200
    assert client.get(admin_url(ScoringThresholds, "add")).status_code == 403
    response = client.post(admin_url(ScoringThresholds, "change", 1), {"sales_min": 60, "nurture_min": 20})
    assert response.status_code == 302
    assert ScoringThresholds.current().sales_min == 60
    assert client.post(admin_url(ScoringThresholds, "delete", 1), {"post": "yes"}).status_code == 403
