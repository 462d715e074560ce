"""A rule's admin page lists the latest leads its condition holds for, whether or not it decided them."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from routing.dispatch import leads_route
from routing.models import Lead, Rule
from routing.selectors import rule_matches
from tests.factories import dach_coverage

pytestmark = pytest.mark.django_db

MONDAY = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def routed():
    """Six leads routed by territory; a later rule for partner leads that sits below it never wins them."""
    dach_coverage()
    partner = Rule.objects.create(
        name="Partner leads",
        position=20,
        action=Rule.Action.NURTURE,
        condition={"all": [{"field": "source", "op": "equals", "value": "partner"}]},
    )
    for number, source in enumerate(["partner", "web", "partner", "web", "partner", "ads"]):
        lead = Lead.objects.create(
            raw_payload={"email": f"l{number}@prospect{number}.de", "country": "DE", "source": source}, source=source
        )
        with time_machine.travel(MONDAY + dt.timedelta(hours=number), tick=False):
            leads_route(lead_ids=[lead.pk])
    return partner


def test_the_leads_a_rule_would_have_matched_are_listed_newest_first(routed):
    matches = rule_matches(rule=routed)

    assert [match.routed_at.hour for match in matches] == [13, 11, 9]
    # The territory rule above it decided them: this rule would have matched but did not win.
    assert {(match.won, match.rule, match.queue) for match in matches} == {(False, "By territory", "DACH Inbound")}


def test_revops_open_them_from_the_rule_page_and_others_may_not(client, revops, routed, rep):
    client.force_login(revops)
    change = client.get(reverse("admin:routing_rule_change", args=[routed.pk])).content.decode()
    url = reverse("admin:routing_rule_matches", args=[routed.pk])
    assert url in change

    page = client.get(url).content.decode()

    assert page.count('<td><a href="/admin/routing/lead/') == 3
    assert 'id="rule-won">0<' in page and 'id="rule-matched">3<' in page
    client.force_login(rep.user)
    assert client.get(url).status_code in (302, 403, 404)
