"""Simulate: RevOps try a lead against the live coverage model, and nothing is saved."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from routing.models import Assignment, Lead, Queue, Rule, ScoringRule
from routing.selectors import lead_simulate
from territories.models import Account
from tests.factories import (
    AccountDomainFactory,
    AccountFactory,
    QueueFactory,
    QueueMembershipFactory,
    RepFactory,
    TerritoryCriterionFactory,
    TerritoryFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

# A Monday morning; the reps below work in UTC with no working hours set, so they are always on.
MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def dach():
    queue = QueueFactory(name="DACH Inbound")
    for username in ("anna", "ben"):
        QueueMembershipFactory(queue=queue, rep=RepFactory(user=UserFactory(username=username), time_zone="UTC"))
    territory = TerritoryFactory(name="DACH", queue=queue)
    TerritoryCriterionFactory(territory=territory, kind="country", value="DE")
    Rule.objects.create(name="By territory", position=10, action=Rule.Action.TERRITORY)
    return queue


def test_a_lead_is_decided_with_a_receipt_and_nothing_is_saved(dach):
    pointer = dach.rr_pointer
    with time_machine.travel(MONDAY, tick=False):
        evaluation = lead_simulate(raw={"email": "max@prospect.de", "country": "Deutschland", "company": "Prospect"})

    assert evaluation.outcome == "assigned"
    receipt = evaluation.receipt()
    assert receipt["routing"]["summary"] == "Assigned to anna in DACH Inbound by rule 'By territory'."
    assert receipt["routing"]["territory"]["chosen"]["name"] == "DACH"
    assert not Lead.objects.exists()
    assert not Assignment.objects.exists()
    assert Queue.objects.get(pk=dach.pk).rr_pointer == pointer


def test_the_account_owner_takes_a_lead_from_their_account_domain(dach):
    owner = RepFactory(user=UserFactory(username="olga"), time_zone="UTC")
    account = AccountFactory(name="Nordwind Logistik GmbH", owner=owner)
    AccountDomainFactory(account=account, domain="nordwind-logistik.de")

    with time_machine.travel(MONDAY, tick=False):
        evaluation = lead_simulate(raw={"email": "kai@nordwind-logistik.de", "country": "DE"})

    assert evaluation.decision.rep_id == owner.pk
    assert evaluation.decision.via == "account"
    assert evaluation.receipt()["account"]["method"] == "email_domain"


def test_scoring_sends_a_weak_lead_to_nurture_before_any_rep_is_considered(dach):
    ScoringRule.objects.create(
        name="Demo request",
        kind="intent",
        points=50,
        condition={"all": [{"field": "source", "op": "equals", "value": "demo request"}]},
    )
    with time_machine.travel(MONDAY, tick=False):
        cold = lead_simulate(raw={"email": "a@prospect.de", "country": "DE", "source": "webinar"})
        hot = lead_simulate(raw={"email": "b@prospect.de", "country": "DE", "source": "Demo request"})

    assert cold.outcome == "disqualified"
    assert cold.decision is None
    assert hot.outcome == "assigned"
    assert hot.receipt()["score"]["total"] == 50


def test_unmapped_values_show_in_the_receipt(dach):
    with time_machine.travel(MONDAY, tick=False):
        evaluation = lead_simulate(raw={"email": "x@prospect.de", "country": "Atlantis"})
    assert evaluation.receipt()["standardization_flags"] == {"country": "unknown country 'Atlantis'"}
    assert evaluation.receipt()["routing"]["queue_path"][0]["queue"] == "Catch-all"


def test_simulating_reads_a_bounded_number_of_queries(dach, django_assert_max_num_queries):
    for index in range(30):
        queue = QueueFactory(name=f"Queue {index}")
        QueueMembershipFactory(queue=queue, rep=RepFactory(time_zone="UTC"))
        TerritoryCriterionFactory(territory=TerritoryFactory(name=f"T{index}", queue=queue), kind="country", value="FR")
        AccountFactory(name=f"Account {index}")
    with django_assert_max_num_queries(25), time_machine.travel(MONDAY, tick=False):
        lead_simulate(raw={"email": "x@prospect.de", "country": "DE"})


def test_revops_simulate_in_admin(client, revops, dach):
    client.force_login(revops)
    url = reverse("admin:routing_rule_simulate")
    assert client.get(url).status_code == 200
    with time_machine.travel(MONDAY, tick=False):
        response = client.post(url, {"email": "max@prospect.de", "country": "Germany", "industry": "software"})
    page = response.content.decode()
    assert "Assigned to anna in DACH Inbound by rule &#x27;By territory&#x27;." in page
    assert not Lead.objects.exists()


def test_the_simulate_api_answers_revops_with_the_decision(client, revops, dach):
    client.force_login(revops)
    with time_machine.travel(MONDAY, tick=False):
        response = client.post(
            reverse("routing-simulate"), {"lead": {"email": "max@prospect.de", "country": "DE"}}, "application/json"
        )
    assert response.status_code == 200
    body = response.json()
    assert (body["outcome"], body["rep"], body["queue_id"]) == ("assigned", "anna", dach.pk)
    assert body["receipt"]["routing"]["rules"][0]["result"] == "matched"


def test_the_simulate_api_says_what_is_wrong_with_the_request(client, revops):
    client.force_login(revops)
    response = client.post(reverse("routing-simulate"), {"lead": "max@prospect.de"}, "application/json")
    assert response.status_code == 400
    assert "lead" in response.json()


def test_reps_managers_outsiders_and_strangers_cannot_simulate(client, rep, manager, outsider):
    url = reverse("routing-simulate")
    assert client.post(url, {"lead": {"country": "DE"}}, "application/json").status_code == 403
    for user in (rep.user, manager, outsider.user):
        client.force_login(user)
        assert client.post(url, {"lead": {"country": "DE"}}, "application/json").status_code == 403
        assert client.get(reverse("admin:routing_rule_simulate")).status_code == 302
    assert not Account.objects.exists()


def test_a_rule_stored_around_validation_is_left_out_instead_of_breaking_decisions(dach):
    # Admin and import refuse these; a row written by hand in the database must not stop routing.
    Rule.objects.filter(name="By territory").update(position=20)
    Rule.objects.bulk_create([Rule(name="Broken", position=1, action="nurture", condition={"all": [{"field": "x"}]})])
    ScoringRule.objects.bulk_create([ScoringRule(name="Broken", kind="fit", points=99, condition={"nope": 1})])

    with time_machine.travel(MONDAY, tick=False):
        evaluation = lead_simulate(raw={"email": "max@prospect.de", "country": "DE"})

    assert evaluation.outcome == "assigned"
    assert [rule["name"] for rule in evaluation.receipt()["routing"]["rules"]] == ["By territory"]
    assert evaluation.receipt()["score"] == {"result": "no scoring rules: routed to sales"}
