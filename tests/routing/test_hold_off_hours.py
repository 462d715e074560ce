"""A German lead at Berlin night waits for the DACH team's morning instead of going round the world."""

import datetime as dt

import pytest
import time_machine

from routing.dispatch import leads_route, queued_leads_distribute
from routing.models import Lead, Queue
from sla.models import LeadSla, SlaPolicy
from territories.models import Skill
from tests.factories import (
    QueueMembershipFactory,
    RepFactory,
    UserFactory,
    WorkingHoursFactory,
    dach_coverage,
)

pytestmark = pytest.mark.django_db

# Tuesday 8 December 2026, 01:30 in Berlin; the DACH reps start at 08:00 Berlin time (07:00 UTC in winter).
BERLIN_NIGHT = dt.datetime(2026, 12, 8, 0, 30, tzinfo=dt.UTC)
BERLIN_EIGHT = dt.datetime(2026, 12, 8, 7, 0, tzinfo=dt.UTC)


def night_coverage_build() -> Queue:
    """DACH Inbound (German required, holds off hours) with anna and ben in Berlin working 08:00–17:00,
    overflowing to an EMEA queue whose New York rep works around the clock and speaks no German."""
    # A transactional test starts from an empty database, without the catch-all the migrations create.
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    german = Skill.objects.create(code="german", name="German", kind=Skill.Kind.LANGUAGE)
    dach = dach_coverage()
    emea = Queue.objects.create(
        name="EMEA Overflow", when_nobody_eligible=Queue.WhenNobodyEligible.OVERFLOW, fallback=Queue.objects.catch_all()
    )
    QueueMembershipFactory(queue=emea, rep=RepFactory(user=UserFactory(username="nora"), time_zone="America/New_York"))
    dach.required_skills.add(german)
    dach.when_nobody_eligible = Queue.WhenNobodyEligible.HOLD_OFF_HOURS
    dach.fallback = emea
    dach.save()
    for rep in dach.members.all():
        rep.time_zone = "Europe/Berlin"
        rep.save()
        rep.skills.add(german)
        for weekday in range(5):
            WorkingHoursFactory(rep=rep, weekday=weekday, start=dt.time(8), end=dt.time(17))
    SlaPolicy.objects.create(name="First touch in an hour", first_touch_minutes=60)
    return dach


@pytest.fixture
def night_coverage():
    return night_coverage_build()


def test_a_dach_lead_at_night_is_held_for_dach_and_its_clock_starts_at_eight_berlin(night_coverage):
    lead = Lead.objects.create(raw_payload={"email": "max@prospect.de", "country": "Deutschland"})
    with time_machine.travel(BERLIN_NIGHT, tick=False):
        leads_route(lead_ids=[lead.pk])

    lead.refresh_from_db()
    assert (lead.status, lead.queue, lead.owner) == (Lead.Status.QUEUED, night_coverage, None)
    routing = lead.receipt["routing"]
    assert dt.datetime.fromisoformat(routing["held_until"]) == BERLIN_EIGHT
    assert "starts work at Tue 08 Dec 08:00 CET (Europe/Berlin)" in routing["summary"]
    assert not LeadSla.objects.filter(lead=lead).exists()  # No clock runs while the lead waits for the team.

    with time_machine.travel(BERLIN_NIGHT + dt.timedelta(hours=3), tick=False):
        assert queued_leads_distribute().leads == 0  # 04:30 Berlin: still nobody at work.
    with time_machine.travel(BERLIN_EIGHT + dt.timedelta(seconds=30), tick=False):
        queued_leads_distribute()

    lead.refresh_from_db()
    assert lead.status == Lead.Status.ASSIGNED
    assert lead.owner.user.username in ("anna", "ben")
    assert lead.owner.time_zone == "Europe/Berlin"
    clock = LeadSla.objects.get(lead=lead)
    assert clock.started_at == BERLIN_EIGHT + dt.timedelta(seconds=30)
    assert clock.due_at == BERLIN_EIGHT + dt.timedelta(minutes=60, seconds=30)


def test_a_german_lead_held_in_the_catch_all_goes_back_to_dach_when_a_german_speaker_has_room(night_coverage):
    night_coverage.when_nobody_eligible = Queue.WhenNobodyEligible.OVERFLOW
    night_coverage.save()
    catch_all = Queue.objects.catch_all()
    QueueMembershipFactory(queue=catch_all, rep=RepFactory(user=UserFactory(username="sydney"), time_zone="UTC"))
    lead = Lead.objects.create(raw_payload={"email": "max@prospect.de", "country": "Deutschland"})
    with time_machine.travel(BERLIN_NIGHT, tick=False):
        leads_route(lead_ids=[lead.pk])

    lead.refresh_from_db()
    # Neither New York nor Sydney speaks German: the lead waits in the catch-all rather than go to them.
    assert (lead.status, lead.queue, lead.owner) == (Lead.Status.QUEUED, catch_all, None)
    path = lead.receipt["routing"]["queue_path"]
    assert [step["queue"] for step in path] == ["DACH Inbound", "EMEA Overflow", catch_all.name]
    assert {line["reason"] for step in path[1:] for line in step["candidates"]} == {"missing skill: german"}

    with time_machine.travel(BERLIN_EIGHT + dt.timedelta(minutes=5), tick=False):
        queued_leads_distribute()
    lead.refresh_from_db()
    assert (lead.status, lead.queue, lead.owner.user.username in ("anna", "ben")) == (
        Lead.Status.ASSIGNED,
        night_coverage,
        True,
    )
