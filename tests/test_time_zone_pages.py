"""Everyone sees their own time on the pages: a Berlin rep reads Berlin times, labelled; a manager reads their own
zone, except for a rep's availability and time off, which are shown in the rep's zone; the API stays in UTC."""

import datetime as dt
import re

import pytest
import time_machine
from django.urls import reverse
from rest_framework.test import APIClient

from routing.models import Lead
from sla.models import LeadSla, SlaPolicy, Touch
from territories.models import OutOfOffice, Profile
from tests.factories import AssignmentFactory, LeadFactory

pytestmark = pytest.mark.django_db

# A Monday in November: Berlin is on CET (UTC+1), New York on EST (UTC-5).
RECEIVED = dt.datetime(2026, 11, 9, 8, 20, tzinfo=dt.UTC)


@pytest.fixture
def berlin_lead(rep):
    """A lead of the (Berlin) rep received at 08:20 UTC, its first touch due 30 minutes later."""
    assert rep.time_zone == "Europe/Berlin"
    with time_machine.travel(RECEIVED, tick=False):
        lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED, company="Keller Maschinenbau GmbH")
        AssignmentFactory(lead=lead, rep=rep)
        policy = SlaPolicy.objects.create(name="Inbound demo requests", first_touch_minutes=30)
        due = RECEIVED + dt.timedelta(minutes=30)
        LeadSla.objects.create(lead=lead, policy=policy, started_at=RECEIVED, due_at=due)
    return lead


def text_of(html: str) -> str:
    """The page's text with tags and runs of white space collapsed, as a reader sees it."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_a_berlin_rep_reads_the_lead_page_in_berlin_time(client, rep, berlin_lead):
    client.force_login(rep.user)
    with time_machine.travel(RECEIVED + dt.timedelta(minutes=10), tick=False):
        html = client.get(reverse("lead-page", args=[berlin_lead.pk])).content.decode()

    text = text_of(html)
    assert "Times in Europe/Berlin (CET)" in text
    assert "Received 2026-11-09 09:20 CET" in text
    assert "Due 2026-11-09 09:50 CET" in text
    assert 'title="Due 2026-11-09 09:50 CET"' in html
    assert "When (Europe/Berlin, empty for now)" in text
    assert "08:20" not in text


def test_a_berlin_rep_reads_due_times_on_their_lead_list_in_berlin_time(client, rep, berlin_lead):
    client.force_login(rep.user)
    with time_machine.travel(RECEIVED + dt.timedelta(minutes=10), tick=False):
        html = client.get(reverse("my-leads")).content.decode()

    assert 'title="Due 2026-11-09 09:50 CET"' in html
    # The live countdown reads an ISO time with its offset, which is the same instant.
    assert 'data-due="2026-11-09T09:50:00+01:00"' in html
    assert "Times in Europe/Berlin (CET)" in text_of(html)


def test_a_touch_time_typed_on_the_lead_page_is_read_in_the_reps_zone(client, rep, berlin_lead):
    client.force_login(rep.user)
    with time_machine.travel(RECEIVED + dt.timedelta(minutes=10), tick=False):
        response = client.post(
            reverse("lead-touch", args=[berlin_lead.pk]), {"kind": "call", "at": "2026-11-09T09:25"}, follow=True
        )

    assert response.status_code == 200
    assert Touch.objects.get(lead=berlin_lead).at == dt.datetime(2026, 11, 9, 8, 25, tzinfo=dt.UTC)
    assert "Call · 2026-11-09 09:25 CET" in text_of(response.content.decode())


def test_the_team_board_shows_a_reps_current_time_and_time_off_in_the_reps_zone(client, manager, rep):
    # The manager reads in New York; Berlin is already at Saturday 00:53 when UTC says Friday 23:53.
    Profile.objects.create(user=manager, time_zone="America/New_York")
    client.force_login(manager)
    with time_machine.travel(dt.datetime(2026, 11, 6, 23, 53, tzinfo=dt.UTC), tick=False):
        saved = client.post(
            reverse("rep-out-of-office", args=[rep.pk]),
            {"start": "2026-11-20T09:00", "end": "2026-11-27T18:00", "reason": "Trade fair"},
            follow=True,
        )
        text = text_of(saved.content.decode())

    assert "Sat 00:53 CET (Europe/Berlin)" in text
    # Time off typed as 09:00 Berlin is stored as 08:00 UTC and shown as 09:00 Berlin.
    period = OutOfOffice.objects.get(rep=rep)
    assert period.starts_at == dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
    assert "2026-11-20 09:00 CET → 2026-11-27 18:00 CET" in text
    assert "UTC" not in text
    # Everything else on the page is in the manager's own zone, and says so.
    assert "Times in America/New_York (EST)" in text


def test_the_team_board_shows_time_off_under_way_in_the_reps_zone(client, manager, rep):
    OutOfOffice.objects.create(
        rep=rep,
        starts_at=dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC),
        ends_at=dt.datetime(2026, 11, 13, 17, 0, tzinfo=dt.UTC),
    )
    client.force_login(manager)
    with time_machine.travel(dt.datetime(2026, 11, 9, 12, 0, tzinfo=dt.UTC), tick=False):
        text = text_of(client.get(reverse("team-board")).content.decode())

    assert "Out of office until 2026-11-13 18:00 CET" in text


def test_the_api_answers_in_utc_whoever_asks(rep, berlin_lead):
    client = APIClient()
    client.force_login(rep.user)

    body = client.get(f"/api/v1/leads/{berlin_lead.pk}/").json()

    assert body["created"] == "2026-11-09T08:20:00Z"


def test_the_admin_names_the_zone_its_times_are_in(client, revops):
    Profile.objects.create(user=revops, time_zone="America/New_York")
    client.force_login(revops)

    text = text_of(client.get(reverse("admin:index")).content.decode())

    assert re.search(r"Times in America/New_York \(E[DS]T\)", text)


def test_the_lead_admin_says_when_routing_decided_and_the_clock_runs_in_the_readers_zone(client, revops, berlin_lead):
    Lead.objects.filter(pk=berlin_lead.pk).update(
        receipt={"routing": {"summary": "Assigned to rep.", "decided_at": "2026-11-09T08:20:01+00:00"}, "elapsed_ms": 4}
    )
    Profile.objects.create(user=revops, time_zone="Asia/Kolkata")
    client.force_login(revops)

    text = text_of(client.get(reverse("admin:routing_lead_change", args=[berlin_lead.pk])).content.decode())

    assert "Decided in 4 ms at 2026-11-09 13:50:01 IST." in text
    assert "Clock started 2026-11-09 13:50 IST, due 2026-11-09 14:20 IST" in text
