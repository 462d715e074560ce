"""Routing rules as RevOps write them: validated with paths, and read by the engine as written."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from routing.conditions import ConditionError, canonical_condition, parse_condition, summarize
from routing.engine import LeadFacts, evaluate
from routing.models import Rule
from tests.factories import QueueFactory, RepFactory
from tests.helpers import admin_url

ENTERPRISE_DACH = {
    "all": [
        {"field": "country", "op": "in", "value": ["DE", "AT", "CH"]},
        {
            "any": [
                {"field": "employees", "op": "gte", "value": 1000},
                {"field": "account.tier", "op": "equals", "value": "tier_1"},
            ]
        },
    ]
}


def test_a_stored_condition_means_what_it_says_to_the_engine():
    group = parse_condition(ENTERPRISE_DACH)

    assert evaluate(group, LeadFacts(country="AT", employees=2500))[0]
    assert not evaluate(group, LeadFacts(country="AT", employees=40))[0]
    assert not evaluate(group, LeadFacts(country="FR", employees=2500))[0]
    assert summarize(group) == "country in 'DE', 'AT', 'CH' and (employees ≥ 1000 or account.tier = 'tier_1')"


def test_an_empty_condition_always_holds():
    assert parse_condition(None) is None
    assert parse_condition({}) is None
    assert summarize(None) == "always"


def test_every_mistake_in_a_condition_is_named_by_its_path():
    with pytest.raises(ConditionError) as caught:
        parse_condition(
            {
                "all": [
                    {"field": "countri", "op": "in", "value": ["DE"]},
                    {"field": "country", "op": "in", "value": "DE"},
                    {"any": [{"field": "employees", "op": "gte", "value": "many"}]},
                    {"field": "industry", "op": "eq", "value": "software"},
                    {"field": "employees", "op": "between", "value": [1000]},
                    {"field": "company", "op": "is_blank", "value": "x"},
                ]
            }
        )
    paths = [path for path, _ in caught.value.errors]
    assert paths == [
        "all[0].field",
        "all[1].value",
        "all[2].any[0].value",
        "all[3].op",
        "all[4].value",
        "all[5].value",
    ]
    messages = dict(caught.value.errors)
    assert "unknown field 'countri'" in messages["all[0].field"]
    assert "takes a list, such as [DE, AT]" in messages["all[1].value"]


@pytest.mark.parametrize("data", [[], {"both": []}, {"all": []}, {"all": [{"field": "country"}]}])
def test_malformed_groups_are_refused(data):
    with pytest.raises(ConditionError):
        parse_condition(data)


@pytest.mark.django_db
def test_rule_validation_puts_condition_errors_on_the_condition_field():
    rule = Rule(name="Bad", action=Rule.Action.NURTURE, condition={"all": [{"field": "x", "op": "in", "value": []}]})
    with pytest.raises(ValidationError) as caught:
        rule.full_clean()
    assert any("all[0].field" in message for message in caught.value.message_dict["condition"])


@pytest.mark.django_db
def test_a_rule_names_the_target_its_action_needs_and_no_other():
    queue, rep = QueueFactory(name="DACH"), RepFactory()
    with pytest.raises(ValidationError) as caught:
        Rule(name="No queue", action=Rule.Action.QUEUE).full_clean()
    assert "Choose the queue" in caught.value.message_dict["queue"][0]
    with pytest.raises(ValidationError) as caught:
        Rule(name="Both", action=Rule.Action.NURTURE, queue=queue, rep=rep).full_clean()
    assert set(caught.value.message_dict) == {"queue", "rep"}
    # The database holds the same line whatever path the write takes.
    with pytest.raises(IntegrityError), transaction.atomic():
        Rule.objects.create(name="Raw", action=Rule.Action.QUEUE)


@pytest.mark.django_db
def test_revops_write_a_rule_in_admin_and_see_it_in_plain_words(client, revops):
    queue = QueueFactory(name="DACH Enterprise")
    client.force_login(revops)
    condition = '{"all": [{"field": "country", "op": "in", "value": ["DE", "AT"]}]}'

    response = client.post(
        admin_url(Rule, "add"),
        {
            "name": "Enterprise DACH",
            "position": 10,
            "active": "on",
            "condition": condition,
            "action": "queue",
            "queue": queue.pk,
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    listing = client.get(admin_url(Rule, "changelist")).content.decode()
    assert "country in &#x27;DE&#x27;, &#x27;AT&#x27;" in listing
    assert "DACH Enterprise" in listing


@pytest.mark.django_db
def test_admin_refuses_a_condition_with_a_typo_and_says_where(client, revops):
    client.force_login(revops)
    response = client.post(
        admin_url(Rule, "add"),
        {
            "name": "Typo",
            "position": 10,
            "condition": '{"all": [{"field": "country", "op": "inn", "value": ["DE"]}]}',
            "action": "nurture",
        },
    )
    assert response.status_code == 200
    assert "all[0].op: unknown operator &#x27;inn&#x27;" in response.content.decode()
    assert not Rule.objects.exists()


def test_conditions_read_back_from_postgresql_are_put_back_in_written_order():
    # jsonb stores {"field", "op", "value"} as {"op", "field", "value"}; shown and compared, it must read as written.
    stored = {
        "all": [
            {"op": "in", "value": ["DE"], "field": "country"},
            {"any": [{"value": 5, "op": "gt", "field": "score"}]},
        ]
    }
    canonical = canonical_condition(stored)
    assert list(canonical["all"][0]) == ["field", "op", "value"]
    assert list(canonical["all"][1]["any"][0]) == ["field", "op", "value"]
    assert canonical == stored
