"""The ``rules`` section of the coverage document: routing rules as code."""

import pytest

from leadrouter.coverage import CoverageError, apply_import, dump_yaml, export_coverage, load_yaml, plan_import
from routing.models import Rule
from tests.territories.test_coverage import history_counts

BASE = """\
version: 1
reps:
  - {username: anna.schmidt, time_zone: Europe/Berlin}
  - {username: ben.keller, time_zone: Europe/Zurich}
queues:
  - {name: Catch-all, catch_all: true}
  - {name: DACH Inbound, members: [{rep: anna.schmidt}]}
"""

RULES = """\
rules:
  - name: Existing customers to their owner
    description: Agreed with Customer Success.
    position: 10
    when:
      all:
        - {field: account.is_customer, op: equals, value: true}
    action: account_owner
  - name: Students to nurture
    position: 20
    active: false
    when:
      any:
        - {field: is_free_email, op: equals, value: true}
        - all:
            - {field: employees, op: between, value: [1, 10]}
            - {field: country, op: in, value: [DE, AT, CH]}
    action: nurture
  - name: DACH inbound
    position: 20
    when:
      all:
        - {field: country, op: in, value: [DE, AT, CH]}
    action: queue
    queue: DACH Inbound
  - name: Anna's strategic deals
    when:
      all:
        - {field: account.tier, op: equals, value: tier_1}
    action: rep
    rep: anna.schmidt
  - name: Last resort
    position: 1000
    action: queue
    queue: Catch-all
  - name: Everything else by territory
    action: territory
"""


def document(rules: str = RULES) -> dict:
    return load_yaml(BASE + rules)


def errors_of(document: dict, *, prune: bool = False) -> list[tuple[str, str]]:
    with pytest.raises(CoverageError) as caught:
        plan_import(document, prune=prune)
    return caught.value.errors


@pytest.mark.django_db
def test_round_trip_with_rules_is_identical_and_in_position_order():
    apply_import(document())
    first = dump_yaml(export_coverage())
    names = [rule["name"] for rule in export_coverage()["rules"]]
    # Position order, ties by name; the default position is 100.
    assert names == [
        "Existing customers to their owner",
        "DACH inbound",
        "Students to nurture",
        "Anna's strategic deals",
        "Everything else by territory",
        "Last resort",
    ]
    # Defaults are left out.
    territory_rule = export_coverage()["rules"][4]
    assert territory_rule == {"name": "Everything else by territory", "action": "territory"}

    apply_import(load_yaml(first))
    assert dump_yaml(export_coverage()) == first
    assert plan_import(load_yaml(first)).is_empty

    rule = Rule.objects.get(name="DACH inbound")
    assert rule.queue is not None and rule.queue.name == "DACH Inbound"
    assert rule.condition == {"all": [{"field": "country", "op": "in", "value": ["DE", "AT", "CH"]}]}
    assert Rule.objects.get(name="Students to nurture").active is False
    assert Rule.objects.get(name="Everything else by territory").condition is None
    assert Rule.objects.get(name="Anna's strategic deals").rep.user.username == "anna.schmidt"


@pytest.mark.django_db
def test_second_import_writes_nothing():
    apply_import(document())
    before = history_counts()
    assert before["HistoricalRule"] == 6
    plan = apply_import(document())
    assert plan.is_empty, plan.render()
    assert history_counts() == before


@pytest.mark.django_db
def test_rule_history_names_the_import_and_the_user(django_user_model):
    user = django_user_model.objects.create_user(username="revops")
    apply_import(document(), user=user)
    record = Rule.history.get(name="DACH inbound")
    assert record.history_change_reason == "coverage import"
    assert record.history_user == user


@pytest.mark.django_db
def test_invalid_when_is_reported_with_its_document_path():
    rules = """\
rules:
  - {name: Fine, action: nurture}
  - name: Unknown field
    when: {all: [{field: acount.tier, op: equals, value: tier_1}]}
    action: nurture
  - name: Unknown operator
    when: {all: [{field: country, op: eq, value: DE}]}
    action: nurture
  - name: Missing value
    when: {any: [{all: [{field: employees, op: gte}]}]}
    action: discard
  - name: Empty group
    when: {all: []}
    action: discard
"""
    errors = dict(errors_of(document(rules)))
    assert "unknown field 'acount.tier'" in errors["rules[1].when.all[0].field"]
    assert '"eq" is not allowed' in errors["rules[2].when.all[0].op"]
    assert errors["rules[3].when.any[0].all[0].value"] == "gte needs a value"
    assert errors["rules[4].when.all"] == "list at least one condition"
    assert not any(path.startswith("rules[0]") for path in errors)


@pytest.mark.django_db
def test_bad_references_and_action_targets():
    rules = """\
rules:
  - {name: Twice, action: nurture}
  - {name: Twice, action: discard}
  - {name: No such queue, action: queue, queue: Japan Inbound}
  - {name: No such rep, action: rep, rep: nobody}
  - {name: Queue missing, action: queue}
  - {name: Rep missing, action: rep}
  - {name: Queue with nurture, action: nurture, queue: DACH Inbound}
  - {name: Rep with territory, action: territory, rep: anna.schmidt}
  - {name: Unknown action, action: round_robin}
"""
    errors = errors_of(document(rules))
    assert errors == [
        ("rules[1].name", '"Twice" is listed twice: the same as rules[0]'),
        ("rules[2].queue", 'there is no queue "Japan Inbound"'),
        ("rules[3].rep", 'there is no rep "nobody"'),
        ("rules[4].queue", "is required with action: queue; choose the queue this rule routes to"),
        ("rules[5].rep", "is required with action: rep; choose the rep this rule routes to"),
        ("rules[6].queue", "only action: queue uses a queue; remove it or change the action"),
        ("rules[7].rep", "only action: rep uses a rep; remove it or change the action"),
        (
            "rules[8].action",
            '"round_robin" is not allowed; use one of: queue, territory, account_owner, rep, nurture, discard',
        ),
    ]


@pytest.mark.django_db
def test_references_may_name_the_database_unless_pruning():
    apply_import(document())
    rules_only = load_yaml("version: 1\nrules:\n  - {name: Anna, action: rep, rep: ben.keller}\n")
    assert [change.lines() for change in plan_import(rules_only).changes] == [['+ rule "Anna"']]
    # With --prune the document must hold what it names; the catch-all can always be named.
    pruned = load_yaml(
        "version: 1\nskills: []\nproduct_lines: []\nteams: []\nreps: []\nterritories: []\naccounts: []\n"
        "queues:\n  - {name: Catch-all, catch_all: true}\n"
        "rules:\n  - {name: Anna, action: rep, rep: ben.keller}\n  - {name: Rest, action: queue, queue: Catch-all}\n"
    )
    errors = errors_of(pruned, prune=True)
    assert errors == [
        (
            "rules[0].rep",
            'there is no rep "ben.keller"; it is not in this document, so --prune would deactivate it',
        )
    ]


@pytest.mark.django_db
def test_prune_deletes_a_rule_absent_from_the_document():
    apply_import(document())
    exported = export_coverage()
    exported["rules"] = [rule for rule in exported["rules"] if rule["name"] != "DACH inbound"]
    plan = plan_import(exported, prune=True)
    assert plan.render().splitlines() == ['- rule "DACH inbound"', "1 change: 1 to delete."]
    apply_import(exported, prune=True)
    assert not Rule.objects.filter(name="DACH inbound").exists()
    assert Rule.objects.count() == 5
    # The queue it routed to can now go too.
    exported["queues"] = [queue for queue in exported["queues"] if queue["name"] != "DACH Inbound"]
    apply_import(exported, prune=True)


@pytest.mark.django_db
def test_prune_without_a_rules_section_is_refused():
    apply_import(document())
    exported = export_coverage()
    del exported["rules"]
    errors = errors_of(exported, prune=True)
    assert errors == [
        (
            "rules",
            "the section is missing, and --prune would remove the 6 already in the database; write `rules: []` to "
            "remove them, or import without --prune",
        )
    ]
    # Without --prune a missing section leaves the rules alone.
    assert plan_import(exported).is_empty


@pytest.mark.django_db
def test_dry_run_shows_the_diff_lines():
    apply_import(document())
    exported = export_coverage()
    for rule in exported["rules"]:
        if rule["name"] == "Existing customers to their owner":
            rule["position"] = 20
        if rule["name"] == "DACH inbound":
            rule["when"] = {"all": [{"field": "country", "op": "in", "value": ["DE", "AT"]}]}
    exported["rules"].append({"name": "Japan", "action": "queue", "queue": "DACH Inbound"})
    before = history_counts()
    lines = plan_import(exported).render().splitlines()
    assert lines == [
        '~ rule "DACH inbound": when {"all": [{"field": "country", "op": "in", "value": ["DE", "AT", "CH"]}]} → '
        '{"all": [{"field": "country", "op": "in", "value": ["DE", "AT"]}]}',
        '~ rule "Existing customers to their owner": position 10 → 20',
        '+ rule "Japan"',
        "3 changes: 1 to create, 2 to update.",
    ]
    assert history_counts() == before


@pytest.mark.django_db
def test_rules_follow_a_catch_all_rename():
    apply_import(document())
    exported = export_coverage()
    for queue in exported["queues"]:
        if queue.get("catch_all"):
            queue["name"] = "Everything else"
    for rule in exported["rules"]:
        if rule.get("queue") == "Catch-all":
            rule["queue"] = "Everything else"
    plan = plan_import(exported)
    assert plan.render().splitlines() == [
        '~ queue "Everything else": name "Catch-all" → "Everything else"',
        "1 change: 1 to update.",
    ]
    apply_import(exported)
    assert Rule.objects.get(name="Last resort").queue.name == "Everything else"
