"""Replay: a coverage document run over past leads, routed for real beforehand by the routing worker's code."""

import copy
import datetime as dt

import pytest
import time_machine

from leadrouter.coverage import export_coverage
from leadrouter.replay import ReplayError, ReplayFilters, coverage_replay
from routing.dispatch import leads_route
from routing.models import Lead, Queue
from routing.ownership import leads_close
from routing.reassign import rep_departure_apply
from territories.models import CoverageVersion, Territory
from tests.factories import (
    QueueFactory,
    QueueMembershipFactory,
    RepFactory,
    TerritoryCriterionFactory,
    UserFactory,
    dach_coverage,
)

pytestmark = pytest.mark.django_db

# A Monday; the reps below work in UTC with no working hours set, so they are always on.
MONDAY = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
PERIOD = ReplayFilters(since=MONDAY - dt.timedelta(days=1), until=MONDAY + dt.timedelta(days=10))


@pytest.fixture
def coverage():
    return dach_and_alps()


def dach_and_alps():
    """DACH Inbound (anna, ben) takes DE and AT through the DACH territory; Alps Inbound (carla) exists but
    no territory sends it anything yet."""
    dach = dach_coverage()
    TerritoryCriterionFactory(territory=Territory.objects.get(name="DACH"), kind="country", value="AT")
    alps = QueueFactory(name="Alps Inbound")
    carla = RepFactory(user=UserFactory(username="carla", email="carla@seller.example"), time_zone="UTC")
    QueueMembershipFactory(queue=alps, rep=carla, position=0)
    return dach, alps


def route_history(countries, *, start=MONDAY, every=dt.timedelta(hours=3), close_every=3):
    """Leads received and routed one at a time, ``every`` apart; every ``close_every``-th lead is closed an
    hour after routing. Returns the leads in routing order."""
    leads = []
    at = start
    for number, country in enumerate(countries):
        lead = Lead.objects.create(raw_payload={"email": f"lead{number}@prospect{number}.example", "country": country})
        with time_machine.travel(at, tick=False):
            leads_route(lead_ids=[lead.pk])
        leads.append(lead)
        if close_every and number % close_every == 0:
            with time_machine.travel(at + dt.timedelta(hours=1), tick=False):
                lead.refresh_from_db()
                leads_close([lead], to=Lead.Status.CLOSED, now=at + dt.timedelta(hours=1))
        at += every
    return [Lead.objects.get(pk=lead.pk) for lead in leads]


def without_timings(report):
    return {key: value for key, value in report.items() if key != "timings"}


def austria_draft():
    """The live document with Austria moved from DACH to its own territory served by Alps Inbound."""
    document = copy.deepcopy(export_coverage())
    for territory in document["territories"]:
        if territory["name"] == "DACH":
            territory["criteria"]["countries"] = ["DE"]
    document["territories"].append({"name": "Austria", "queue": "Alps Inbound", "criteria": {"countries": ["AT"]}})
    return document


def test_the_live_coverage_replayed_over_its_own_history_changes_nothing(coverage):
    route_history(["DE", "AT", "DE", "DE", "AT", "DE", "AT", "DE", "DE", "AT", "DE", "DE"])

    report = coverage_replay(document=None, filters=PERIOD)

    assert report["leads"] == 12
    assert report["changed_count"] == 0
    assert report["changed"] == []
    by_rep = {line["rep"]: (line["before"], line["after"]) for line in report["by_rep"]}
    assert by_rep == {"anna": (6, 6), "ben": (6, 6), "carla": (0, 0)}


def test_replaying_the_live_document_through_the_import_changes_nothing_and_keeps_nothing(coverage):
    route_history(["DE", "AT", "DE", "AT", "DE"])
    version = CoverageVersion.objects.values_list("version", "stamp").first()
    territories = list(Territory.objects.values_list("name", flat=True))

    report = coverage_replay(document=export_coverage(), filters=PERIOD)

    assert (report["leads"], report["changed_count"]) == (5, 0)
    # The import ran and was rolled back: no row, no coverage version bump.
    assert CoverageVersion.objects.values_list("version", "stamp").first() == version
    assert list(Territory.objects.values_list("name", flat=True)) == territories


def test_a_draft_moving_a_region_to_another_queue_changes_exactly_those_leads(coverage):
    # Anna alone serves DACH, so the rotation there cannot shift: only the Austrian leads may move.
    dach, _ = coverage
    dach.memberships.filter(rep__user__username="ben").update(active=False)
    leads = route_history(["DE", "AT", "DE", "DE", "AT", "DE", "AT", "DE"])
    austrian = {lead.pk for lead in leads if lead.country == "AT"}

    report = coverage_replay(document=austria_draft(), filters=PERIOD)

    assert report["leads"] == 8
    assert {line["lead"] for line in report["changed"]} == austrian
    for line in report["changed"]:
        assert line["before"] == {"outcome": "assigned", "rep": "anna", "queue": "DACH Inbound", "rule": "By territory"}
        assert line["after"] == {"outcome": "assigned", "rep": "carla", "queue": "Alps Inbound", "rule": "By territory"}
        assert line["decided_by"] == "rule 'By territory'"
    by_queue = {line["queue"]: (line["before"], line["after"]) for line in report["by_queue"]}
    assert by_queue == {"Alps Inbound": (0, 3), "DACH Inbound": (8, 5)}
    by_rep = {line["rep"]: (line["before"], line["after"], line["gains"], line["losses"]) for line in report["by_rep"]}
    assert by_rep == {"anna": (8, 5, 0, 3), "carla": (0, 3, 3, 0)}
    assert report["fairness"]["before"]["spread"] == 8
    assert report["fairness"]["after"]["spread"] == 2
    assert report["fairness"]["after"]["gini"] < report["fairness"]["before"]["gini"]
    # Nothing of the draft was kept.
    assert not Territory.objects.filter(name="Austria").exists()


def test_in_a_shared_queue_only_the_moved_region_changes_queue(coverage):
    leads = route_history(["DE", "AT", "DE", "DE", "AT", "DE", "AT", "DE"])
    austrian = {lead.pk for lead in leads if lead.country == "AT"}

    report = coverage_replay(document=austria_draft(), filters=PERIOD)

    # The German leads stay in DACH Inbound; with three leads fewer there, its rotation may deal them anew.
    moved = {line["lead"] for line in report["changed"] if line["before"]["queue"] != line["after"]["queue"]}
    assert moved == austrian
    assert all(line["after"]["queue"] == "DACH Inbound" for line in report["changed"] if line["lead"] not in moved)


def test_the_same_replay_twice_gives_the_same_report(coverage):
    route_history(["DE", "AT"] * 6)

    first = coverage_replay(document=austria_draft(), filters=PERIOD)
    second = coverage_replay(document=austria_draft(), filters=PERIOD)

    assert without_timings(first) == without_timings(second)


def test_a_lead_whose_rep_has_left_since_says_so(coverage, revops):
    route_history(["DE", "DE", "DE", "DE"], close_every=0)
    ben = Queue.objects.get(name="DACH Inbound").members.get(user__username="ben")
    rep_departure_apply(rep=ben, by=revops)

    report = coverage_replay(document=None, filters=PERIOD)

    # Ben's two leads would now all have gone to anna; each says why it went to ben then.
    assert report["changed_count"] == 2
    assert report["unexplained"] == 0
    assert {line["why"] for line in report["changed"]} == {
        "moved when its rep left; ben has since left; coverage changed since"
    }


def test_filters_choose_the_leads_by_source_period_and_queue(coverage):
    route_history(["DE", "AT", "DE", "AT"], every=dt.timedelta(days=1))
    Lead.objects.filter(country="AT").update(source="partner")

    by_source = coverage_replay(document=None, filters=ReplayFilters(PERIOD.since, PERIOD.until, source="partner"))
    first_days = coverage_replay(document=None, filters=ReplayFilters(PERIOD.since, MONDAY + dt.timedelta(hours=30)))
    alps = Queue.objects.get(name="Alps Inbound")
    by_queue = coverage_replay(document=None, filters=ReplayFilters(PERIOD.since, PERIOD.until, queue_id=alps.pk))

    assert (by_source["leads"], first_days["leads"], by_queue["leads"]) == (2, 2, 0)


def test_a_document_that_does_not_import_is_refused_with_the_imports_messages(coverage):
    document = austria_draft()
    document["territories"][-1]["queue"] = "No such queue"

    with pytest.raises(ReplayError) as raised:
        coverage_replay(document=document, filters=PERIOD)

    assert any("No such queue" in message for _, message in raised.value.errors)


def test_loads_move_as_leads_close_so_a_capped_load_balanced_queue_replays_exactly(coverage):
    # Two reps with room for two open leads each: who gets a lead depends on which leads closed meanwhile.
    dach, _ = coverage
    Queue.objects.filter(pk=dach.pk).update(method=Queue.Method.LOAD_BALANCED)
    dach.members.update(max_open_leads=2)
    route_history(["DE"] * 10, every=dt.timedelta(hours=1), close_every=2)
    held = Lead.objects.filter(status=Lead.Status.QUEUED).count()

    report = coverage_replay(document=None, filters=PERIOD)

    assert held > 0  # Capacity mattered: some leads waited for room.
    assert report["changed_count"] == 0
    assert report["outcomes"]["before"] == report["outcomes"]["after"]


def test_a_draft_sending_every_lead_to_one_rep_pushes_her_past_capacity(coverage):
    route_history(["DE", "AT"] * 5, close_every=0)
    document = export_coverage()
    # A rule naming a rep hands her the lead whatever her load; she has room for four.
    document["rules"].insert(0, {"name": "All to carla", "position": 1, "action": "rep", "rep": "carla"})
    next(rep for rep in document["reps"] if rep["username"] == "carla")["max_open_leads"] = 4

    report = coverage_replay(document=document, filters=PERIOD)

    assert report["past_capacity"] == [{"rep": "carla", "peak_open": 10, "max_open_leads": 4}]
    carla = next(line for line in report["by_rep"] if line["rep"] == "carla")
    assert (carla["before"], carla["after"], carla["peak_open_after"]) == (0, 10, 10)
    assert {line["decided_by"] for line in report["changed"]} == {"rule 'All to carla'"}
