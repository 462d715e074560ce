"""The rule form's condition editor: rows and groups in, the same JSON out; conditions read as words in history."""

import pytest
from django.urls import reverse

from routing.conditions import OPERATOR_LABELS, condition_from_text, value_as_text
from routing.engine.facts import OPERATORS
from routing.forms import ConditionEditor
from routing.models import Rule
from tests.factories import QueueFactory
from tests.helpers import admin_url

pytestmark = pytest.mark.django_db

NESTED = {
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


def rule_post(queue, **rows):
    data = {"name": "Enterprise DACH", "position": 10, "active": "on", "action": "queue", "queue": queue.pk}
    data.update(rows)
    return data


def nested_rows():
    # The top group's first row, its blank rows left empty, and the folded sub-group filled in.
    return {
        "condition__g-mode": "all",
        "condition__g-0-field": "country",
        "condition__g-0-op": "in",
        "condition__g-0-value": "DE, AT,CH",
        "condition__g-1-field": "",
        "condition__g-1-op": "",
        "condition__g-1-value": "",
        "condition__g-2-mode": "any",
        "condition__g-2-0-field": "employees",
        "condition__g-2-0-op": "gte",
        "condition__g-2-0-value": "1000",
        "condition__g-2-1-field": "account.tier",
        "condition__g-2-1-op": "equals",
        "condition__g-2-1-value": "tier_1",
    }


def test_revops_save_a_nested_condition_from_rows_and_it_is_stored_as_json(client, revops):
    queue = QueueFactory(name="DACH Enterprise")
    client.force_login(revops)

    response = client.post(admin_url(Rule, "add"), rule_post(queue, **nested_rows()))

    assert response.status_code == 302, response.content.decode()[:3000]
    assert Rule.objects.get().condition == NESTED


def test_the_editor_shows_a_stored_condition_as_rows_with_blank_ones_to_add(client, revops):
    rule = Rule.objects.create(name="DACH", action=Rule.Action.QUEUE, queue=QueueFactory(), condition=NESTED)
    client.force_login(revops)

    html = client.get(admin_url(rule, "change", rule.pk)).content.decode()

    assert 'name="condition__g-0-value" value="DE, AT, CH"' in html
    assert 'name="condition__g-1-mode"' in html
    assert 'name="condition__g-1-0-value" value="1000"' in html
    # Two empty rows after the stored ones, and a folded group to add.
    assert 'name="condition__g-3-field"' in html
    assert "Add a nested group" in html
    # No JSON to type.
    assert "<textarea" not in html.split('id="condition-editor"')[1].split("</div>")[0]


def test_a_row_with_a_bad_value_is_refused_with_its_place_and_nothing_is_saved(client, revops):
    queue = QueueFactory()
    client.force_login(revops)
    rows = nested_rows() | {"condition__g-2-0-value": "a thousand"}

    response = client.post(admin_url(Rule, "add"), rule_post(queue, **rows))

    assert response.status_code == 200
    assert "all[1].any[0].value: gte compares numbers" in response.content.decode()
    # What was typed is still there to fix, and the row says what is wrong with it.
    html = response.content.decode()
    assert 'value="a thousand" aria-label="Value" placeholder="value" aria-invalid="true"' in html
    row = html.split('data-row="condition__g-1-0"')[1].split("</div>")[0]
    assert "value: gte compares numbers; &#x27;a thousand&#x27; is not one" in row
    assert not Rule.objects.exists()


def test_clearing_every_row_makes_a_rule_that_always_applies(client, revops):
    rule = Rule.objects.create(name="DACH", action=Rule.Action.QUEUE, queue=QueueFactory(), condition=NESTED)
    client.force_login(revops)
    data = rule_post(rule.queue, **{"condition__g-mode": "all", "condition__g-0-field": "", "condition__g-0-op": ""})
    data["name"] = "DACH"

    response = client.post(admin_url(rule, "change", rule.pk), data)

    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.condition is None


def test_a_condition_posted_as_json_text_is_still_accepted():
    widget = ConditionEditor()
    assert widget.value_from_datadict({"condition": '{"all": []}'}, {}, "condition") == '{"all": []}'


@pytest.mark.parametrize(
    ("field", "op", "text", "stored"),
    [
        ("country", "in", "DE, AT", {"field": "country", "op": "in", "value": ["DE", "AT"]}),
        ("employees", "between", "200, 1000", {"field": "employees", "op": "between", "value": [200, 1000]}),
        ("employees", "equals", "500", {"field": "employees", "op": "equals", "value": 500}),
        ("postal_code", "equals", "01067", {"field": "postal_code", "op": "equals", "value": "01067"}),
        ("is_free_email", "equals", "true", {"field": "is_free_email", "op": "equals", "value": True}),
        ("annual_revenue", "gt", "2.5", {"field": "annual_revenue", "op": "gt", "value": 2.5}),
        ("company", "is_blank", "", {"field": "company", "op": "is_blank"}),
    ],
)
def test_typed_values_are_stored_as_json_would_hold_them(field, op, text, stored):
    assert condition_from_text(field, op, text) == stored
    assert value_as_text(stored.get("value")) == (text.replace(",", ", ").replace(",  ", ", ") if text else "")


def test_rule_history_and_the_change_log_show_conditions_in_words(client, revops):
    queue = QueueFactory()
    client.force_login(revops)
    client.post(admin_url(Rule, "add"), rule_post(queue, **nested_rows()))
    rule = Rule.objects.get()
    rows = nested_rows() | {"condition__g-0-value": "DE"}
    client.post(admin_url(rule, "change", rule.pk), rule_post(queue, **rows))

    log = client.get(reverse("admin:coverage_change_log")).content.decode()
    history = client.get(admin_url(rule, "history", rule.pk)).content.decode()

    words = "country in &#x27;DE&#x27; and (employees ≥ 1000 or account.tier = &#x27;tier_1&#x27;)"
    for page in (log, history):
        assert words in page
        assert "{&#x27;all&#x27;" not in page


def test_the_editor_offers_every_operator_the_engine_knows():
    assert {op for op, _ in OPERATOR_LABELS} == set(OPERATORS)
