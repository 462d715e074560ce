"""Simulate "as of" a chosen time and zone: working hours and time off are judged then."""

import datetime as dt
import json

import pytest
from django.urls import reverse

from territories.models import WorkingHours
from tests.factories import OutOfOfficeFactory, WorkingHoursFactory, dach_coverage

pytestmark = pytest.mark.django_db

URL = "/api/v1/routing/simulate/"
LEAD = {"email": "max@prospect.de", "country": "DE"}


@pytest.fixture
def shifts():
    """Anna works Monday 09:00–17:00 in Berlin, Ben Monday 17:00–23:00; DACH Inbound skips reps off hours."""
    queue = dach_coverage()
    anna, ben = (queue.members.get(user__username=name) for name in ("anna", "ben"))
    for rep, start, end in ((anna, dt.time(9), dt.time(17)), (ben, dt.time(17), dt.time(23))):
        rep.time_zone = "Europe/Berlin"
        rep.save()
        WorkingHoursFactory(rep=rep, weekday=WorkingHours.Weekday.MONDAY, start=start, end=end)
    return anna, ben


def simulate(client, **when):
    return client.post(URL, json.dumps({"lead": LEAD, **when}), content_type="application/json")


def test_the_same_wall_clock_time_in_two_zones_reaches_different_shifts(client, revops, shifts):
    client.force_login(revops)

    berlin = simulate(client, as_of="2026-12-07T10:00", time_zone="Europe/Berlin")
    new_york = simulate(client, as_of="2026-12-07T12:00", time_zone="America/New_York")  # 18:00 in Berlin

    assert (berlin.status_code, berlin.json()["rep"]) == (200, "anna")
    assert berlin.json()["as_of"] == "2026-12-07T10:00:00+01:00"
    assert (new_york.status_code, new_york.json()["rep"]) == (200, "ben")
    assert new_york.json()["as_of"] == "2026-12-07T12:00:00-05:00"


def test_time_off_is_judged_at_the_chosen_time(client, revops, shifts):
    anna, _ = shifts
    OutOfOfficeFactory(
        rep=anna, starts_at=dt.datetime(2026, 12, 7, tzinfo=dt.UTC), ends_at=dt.datetime(2026, 12, 8, tzinfo=dt.UTC)
    )
    client.force_login(revops)

    away = simulate(client, as_of="2026-12-07T10:00+01:00")
    back = simulate(client, as_of="2026-12-14T10:00+01:00")

    assert away.json()["outcome"] == "queued"  # Ben is off hours too: the queue holds the lead.
    assert back.json()["rep"] == "anna"


@pytest.mark.parametrize(
    ("when", "field"),
    [
        ({"as_of": "2026-12-07T10:00", "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": "Europe/Berlin"}, "time_zone"),
        ({"as_of": "2026-03-29T02:30", "time_zone": "Europe/Berlin"}, "as_of"),  # The clocks skip it.
        ({"as_of": "2026-12-07T10:00+01:00", "time_zone": "Europe/Berlin"}, "as_of"),
        ({"as_of": "1900-01-01T10:00"}, "as_of"),
        ({"as_of": "next monday"}, "as_of"),
        ({"as_of": ["2026-12-07"]}, "as_of"),
        ({"as_of": "x" * 41}, "as_of"),
        ({"as_of": 20261207}, "as_of"),  # A number is not a time, not even one that reads as one.
        ({"as_of": "2026-12-07T10:00", "time_zone": 1}, "time_zone"),
    ],
)
def test_a_time_that_cannot_be_simulated_is_a_400_naming_the_field(client, revops, shifts, when, field):
    client.force_login(revops)

    response = simulate(client, **when)

    assert response.status_code == 400
    assert field in response.json()


def test_revops_simulate_as_of_in_admin(client, revops, shifts):
    client.force_login(revops)
    url = reverse("admin:routing_rule_simulate")

    response = client.post(url, {**LEAD, "as_of": "2026-12-07 12:00", "time_zone": "America/New_York"})
    skipped = client.post(url, {**LEAD, "as_of": "2026-03-29 02:30", "time_zone": "Europe/Berlin"})

    page = response.content.decode()
    assert "Assigned to ben" in page
    assert "Mon 2026-12-07 12:00" in page and "America/New_York" in page
    assert "does not exist in Europe/Berlin" in skipped.content.decode()
    assert 'id="verdict"' not in skipped.content.decode()
