"""Who changed what in the coverage model: per-object History pages and the coverage change log."""

import pytest
from django.urls import reverse

from routing.models import Queue
from territories.forms import user_label
from territories.models import Territory, TerritoryCriterion
from territories.services import reps_deactivate
from tests.factories import (
    QueueFactory,
    QueueMembershipFactory,
    RepFactory,
    SkillFactory,
    TerritoryCriterionFactory,
    TerritoryFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

CHANGE_LOG = reverse("admin:coverage_change_log")


def territory_form(territory, criteria, **changes):
    """The territory change form as the browser posts it, with its criteria inline."""
    data = {
        "name": territory.name,
        "description": territory.description,
        "parent": territory.parent_id or "",
        "queue": territory.queue_id or "",
        "rep": territory.rep_id or "",
        "criteria-TOTAL_FORMS": str(len(criteria)),
        "criteria-INITIAL_FORMS": str(sum(1 for criterion in criteria if criterion.get("id"))),
        "criteria-MIN_NUM_FORMS": "0",
        "criteria-MAX_NUM_FORMS": "1000",
    }
    for index, criterion in enumerate(criteria):
        data |= {f"criteria-{index}-{key}": value for key, value in criterion.items()}
        data[f"criteria-{index}-territory"] = territory.pk
    data.update(changes)
    return data


@pytest.fixture
def dach(db):
    territory = TerritoryFactory(name="DACH", queue=QueueFactory(name="EMEA Inbound"))
    TerritoryCriterionFactory(territory=territory, kind="country", value="DE")
    return territory


def change_dach_through_admin(client, dach):
    # RevOps rename the territory and, in the same save, turn the DE criterion into AT.
    criterion = dach.criteria.get()
    response = client.post(
        reverse("admin:territories_territory_change", args=[dach.pk]),
        territory_form(dach, [{"id": criterion.pk, "kind": "country", "value": "AT"}], name="DACH region"),
    )
    assert response.status_code == 302


def test_admin_changes_record_the_admin_user(client, revops, dach):
    client.force_login(revops)

    change_dach_through_admin(client, dach)

    latest = Territory.history.filter(id=dach.pk).first()
    assert (latest.history_type, latest.history_user, latest.name) == ("~", revops, "DACH region")
    criterion_change = TerritoryCriterion.history.filter(territory_id=dach.pk).first()
    assert (criterion_change.history_user, criterion_change.value) == (revops, "AT")


def test_history_page_shows_who_changed_which_field(client, revops, dach):
    client.force_login(revops)
    change_dach_through_admin(client, dach)

    response = client.get(reverse("admin:territories_territory_history", args=[dach.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "revops" in html
    assert "DACH region" in html
    assert "Revert" not in html


def test_old_versions_cannot_be_restored_by_a_crafted_post(client, revops, dach):
    client.force_login(revops)
    change_dach_through_admin(client, dach)
    first_version = Territory.history.filter(id=dach.pk).last()
    url = reverse("admin:territories_territory_simple_history", args=[dach.pk, first_version.history_id])

    assert client.get(url).status_code == 200
    assert client.post(url, {"name": "DACH"}).status_code == 403
    dach.refresh_from_db()
    assert dach.name == "DACH region"


def test_change_log_shows_an_admin_change_with_its_inline_criterion(client, revops, dach):
    client.force_login(revops)
    change_dach_through_admin(client, dach)

    response = client.get(CHANGE_LOG)

    assert response.status_code == 200
    entries = response.context["entries"]
    territory_entry = next(e for e in entries if e.kind == "territory" and e.action == "changed")
    assert territory_entry.who == user_label(revops)
    assert [(c.field, c.old, c.new) for c in territory_entry.changes] == [("name", "DACH", "DACH region")]
    assert territory_entry.url == reverse("admin:territories_territory_change", args=[dach.pk])
    criterion_entry = next(e for e in entries if e.kind == "territory criterion" and e.action == "changed")
    assert criterion_entry.label == "DACH region › Country (ISO 3166-1) = AT"
    assert [(c.field, c.old, c.new) for c in criterion_entry.changes] == [("value", "DE", "AT")]
    html = response.content.decode()
    assert "DACH region › Country (ISO 3166-1) = AT" in html
    assert "revops" in html


def test_change_log_names_related_rows_and_many_to_many_changes(client, revops, team):
    queue = QueueFactory(name="EMEA Inbound")
    rep = RepFactory(user=UserFactory(username="anna", first_name="Anna", last_name="Schmidt"), team=team)
    rep.skills.add(SkillFactory(code="german", name="German"))
    QueueMembershipFactory(queue=queue, rep=rep)
    reps_deactivate(reps=[rep])
    client.force_login(revops)

    entries = client.get(CHANGE_LOG).context["entries"]

    deactivated = next(
        e
        for e in entries
        if e.kind == "rep" and ("active", "yes", "no") in [(c.field, c.old, c.new) for c in e.changes]
    )
    assert deactivated.label == "Anna Schmidt (anna)"
    assert deactivated.who == "system"
    skills_change = next(e for e in entries if e.kind == "rep" and any(c.field == "skills" for c in e.changes))
    assert [(c.old, c.new) for c in skills_change.changes if c.field == "skills"] == [("—", "German")]
    created = next(e for e in entries if e.kind == "rep" and e.action == "created")
    assert ("team", None, "Inside Sales") in [(c.field, c.old, c.new) for c in created.changes]
    membership = next(e for e in entries if e.kind == "queue membership")
    assert membership.label == "EMEA Inbound › member Anna Schmidt (anna)"


def test_change_log_filters_by_model_and_user(client, revops, dach):
    other = UserFactory(username="other-ops", is_staff=True)
    other.groups.add(*revops.groups.all())
    client.force_login(other)
    client.post(
        reverse("admin:routing_queue_change", args=[dach.queue_id]),
        {
            "name": "EMEA Inbound renamed",
            "method": "round_robin",
            "when_nobody_eligible": "hold",
            "active": "on",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    client.force_login(revops)
    change_dach_through_admin(client, dach)

    by_model = client.get(CHANGE_LOG, {"model": "routing.queue"}).context["entries"]
    by_user = client.get(CHANGE_LOG, {"user": revops.pk}).context["entries"]

    assert {entry.kind for entry in by_model} == {"queue"}
    assert any(change.new == "EMEA Inbound renamed" for entry in by_model for change in entry.changes)
    assert by_user and {entry.who for entry in by_user} == {by_user[0].who}
    assert all(entry.kind != "queue" for entry in by_user)
    who_choices = [label for _, label in client.get(CHANGE_LOG).context["user_choices"]]
    assert user_label(other) in who_choices and user_label(revops) in who_choices


def test_change_log_is_paginated_and_makes_a_bounded_number_of_queries(client, revops, django_assert_max_num_queries):
    queue = QueueFactory(name="Big queue")
    for n in range(40):
        territory = TerritoryFactory(name=f"Territory {n}", queue=queue)
        TerritoryCriterionFactory(territory=territory, kind="country", value="DE")
        rep = RepFactory(skills=[SkillFactory(code=f"skill-{n % 3}")])
        QueueMembershipFactory(queue=queue, rep=rep)
    client.force_login(revops)
    client.get(CHANGE_LOG)

    with django_assert_max_num_queries(45):
        response = client.get(CHANGE_LOG)

    assert len(response.context["entries"]) == 50
    assert response.context["page"].paginator.count > 100
    second = client.get(CHANGE_LOG, {"p": 2})
    assert second.status_code == 200
    assert len(second.context["entries"]) == 50


def test_change_log_is_refused_to_reps(client, rep):
    client.force_login(rep.user)

    response = client.get(CHANGE_LOG)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_coverage_changelists_link_to_the_change_log(client, revops):
    client.force_login(revops)

    html = client.get(reverse("admin:routing_queue_changelist")).content.decode()

    assert f"{CHANGE_LOG}?model=routing.queue" in html
    assert Queue.objects.catch_all().name in html
