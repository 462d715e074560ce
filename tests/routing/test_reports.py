"""The routing health page and the reports: the SVG charts, the figures on known data, and who sees what."""

import datetime as dt
import xml.etree.ElementTree as ET

import factory
import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from factory.django import DjangoModelFactory

from routing import charts, reports
from routing.models import Assignment, Lead, Queue, Rule
from sla import reports as sla_reports
from sla.models import LeadSla
from tests.factories import (
    AssignmentFactory,
    LeadFactory,
    QueueFactory,
    QueueMembershipFactory,
    RepFactory,
)

# A Monday morning; the default period (30 days, today included) then starts on 2026-02-01.
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
SVG = "{http://www.w3.org/2000/svg}"


class RuleFactory(DjangoModelFactory):
    class Meta:
        model = Rule
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Rule {n}")
    action = Rule.Action.NURTURE


class LeadSlaFactory(DjangoModelFactory):
    class Meta:
        model = LeadSla

    lead = factory.SubFactory(LeadFactory)
    state = LeadSla.State.ON_TRACK
    started_at = factory.LazyFunction(lambda: NOW - dt.timedelta(hours=1))
    due_at = factory.LazyAttribute(lambda sla: sla.started_at + dt.timedelta(minutes=30))


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def lead_at(when, **kwargs):
    """A lead received at ``when`` (received_at is stamped on insert, so travel there first)."""
    kwargs.setdefault("status", Lead.Status.ASSIGNED)
    with time_machine.travel(when, tick=False):
        return LeadFactory(**kwargs)


def day_index(when, period):
    return (when.date() - period.first_day).days


def by_key(sections):
    return {section.key: section for section in sections}


# -- Charts -------------------------------------------------------------------------------------------------------


def test_bar_chart_is_valid_svg_with_escaped_labels():
    markup = charts.bar_chart([("<script>alert(1)</script>", 3), ("A & B", 5)], title='Leads "per" rep', unit="leads")

    root = ET.fromstring(str(markup))
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox") == "0 0 600 220"
    assert root.get("role") == "img"
    assert root.get("aria-label").startswith('Leads "per" rep')
    assert root.find(f"{SVG}title").text.startswith('Leads "per" rep')
    assert len(root.findall(f"{SVG}rect")) == 2
    # The label is text, never markup.
    assert "<script>" not in markup
    texts = [element.text for element in root.iter() if element.text]
    assert any("<script>alert(1)</script>" in text for text in texts)
    assert any("A & B" in text for text in texts)


def test_line_chart_is_valid_svg_and_breaks_lines_on_missing_days():
    markup = charts.line_chart(
        ["03-01", "03-02", "03-03", "03-04"],
        [("Median <wall>", [1.0, None, 3.0, 4.0]), ("p90", [2.0, 5.0, 6.0, 8.0])],
        title="Speed & more",
        unit="minutes",
    )

    root = ET.fromstring(str(markup))
    assert root.get("viewBox") and root.get("role") == "img"
    # The first series has a lone point before the gap and a two-point line after it.
    assert len(root.findall(f".//{SVG}polyline")) == 2
    assert len(root.findall(f".//{SVG}circle")) == 1
    assert "Median <wall>" in [element.text for element in root.iter()]


def test_sparkline_is_valid_svg_even_without_data():
    for values in ([], [0, 0, 0], [1, 4, 2]):
        root = ET.fromstring(str(charts.sparkline(values, title="Catch-all <per> day")))
        assert root.get("role") == "img"
        assert root.find(f"{SVG}title").text.startswith("Catch-all <per> day")


def test_percentile_interpolates_like_percentile_cont():
    assert sla_reports.percentile([10, 20, 30, 40], 0.5) == 25
    assert sla_reports.percentile([10, 20, 30, 40], 0.9) == pytest.approx(37)
    assert sla_reports.percentile([7], 0.9) == 7
    assert sla_reports.percentile([], 0.5) is None


def test_period_accepts_7_30_90_and_falls_back_to_30():
    assert reports.period_for("7", now=NOW).days == 7
    assert reports.period_for("90", now=NOW).days == 90
    assert reports.period_for("12", now=NOW).days == 30
    assert reports.period_for("junk", now=NOW).days == 30
    period = reports.period_for(None, now=NOW)
    assert period.first_day == dt.date(2026, 2, 1)
    assert len(period.day_list) == 30 and period.day_list[-1] == NOW.date()


# -- Routing health -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_health_counts_each_exception_on_its_day(revops, rep, frozen):
    catch_all = Queue.objects.catch_all()
    three_days_ago = NOW - dt.timedelta(days=3)
    two_days_ago = NOW - dt.timedelta(days=2)
    yesterday = NOW - dt.timedelta(days=1)
    # A lead no rule placed, three days ago.
    lead_at(three_days_ago, queue=catch_all, company="Gap GmbH")
    # A rep sent one back as "not mine" two days ago; a routed assignment does not count.
    misrouted = lead_at(two_days_ago, owner=rep)
    AssignmentFactory(lead=misrouted, rep=rep, assigned_at=two_days_ago, reason=Assignment.Reason.ROUTED)
    AssignmentFactory(lead=misrouted, rep=rep, assigned_at=two_days_ago, reason=Assignment.Reason.NOT_MINE)
    # Enrichment failed yesterday; a weak account match today.
    lead_at(yesterday, enrichment_failures={"clearbit": "timeout"})
    lead_at(NOW - dt.timedelta(hours=2), account_match_weak=True)
    # One lead stuck in received for ten minutes; one that just arrived is not stuck.
    lead_at(NOW - dt.timedelta(minutes=10), status=Lead.Status.RECEIVED, company="Stuck AG")
    lead_at(NOW - dt.timedelta(minutes=1), status=Lead.Status.RECEIVED)

    period = reports.period_for(None)
    sections = by_key(reports.routing_health(user=revops, period=period))

    def only_day(key, when):
        expected = [0] * period.days
        expected[day_index(when, period)] = 1
        assert sections[key].daily == expected, key
        assert sections[key].total == 1, key

    only_day("no-rule", three_days_ago)
    only_day("reassignments", two_days_ago)
    only_day("enrichment", yesterday)
    only_day("weak-match", NOW)
    only_day("stuck", NOW)
    assert sections["routing-errors"].total == 0
    assert sections["enrichment"].rows[0].detail == "clearbit: timeout"
    assert sections["stuck"].rows[0].lead.company == "Stuck AG"
    assert sections["reassignments"].rows[0].detail.startswith("Sent back by the rep")
    # RevOps get a link to the filtered admin changelist.
    assert "enrichment_failed=yes" in sections["enrichment"].admin_url
    assert f"queue__id__exact={catch_all.pk}" in sections["no-rule"].admin_url


@pytest.mark.django_db
def test_health_tells_a_matrix_gap_from_a_staffing_gap_and_from_held_leads(client, revops, frozen):
    catch_all = Queue.objects.catch_all()
    emea = QueueFactory(name="EMEA inbound")
    yesterday = NOW - dt.timedelta(days=1)
    # No rule matched: straight to the catch-all.
    lead_at(yesterday, queue=catch_all, status=Lead.Status.QUEUED, company="Gap GmbH", country="ZA", source="Webinar")
    # A rule placed two leads in EMEA inbound; nobody there or in its fallback was working, so they overflowed.
    rule = RuleFactory(name="DACH inbound")
    receipt = {"queue_path": [{"queue": "EMEA inbound"}, {"queue": "EMEA overflow"}, {"queue": "Catch-all"}]}
    for company in ("Overflow One AG", "Overflow Two AG"):
        lead_at(yesterday, queue=catch_all, status=Lead.Status.QUEUED, rule=rule, company=company, receipt=receipt)
    # A lead held in its own queue until its rep starts work.
    held_receipt = {"held_until": "2026-03-02T08:00:00+00:00", "held_for": "anna", "queue_path": []}
    lead_at(yesterday, queue=emea, status=Lead.Status.QUEUED, rule=rule, company="Held KG", receipt=held_receipt)
    # A routing error sent one to the catch-all: counted with the routing errors only.
    lead_at(yesterday, queue=catch_all, routing_error="boom", company="Broken SA")

    sections = by_key(reports.routing_health(user=revops, period=reports.period_for(None)))

    assert (sections["no-rule"].total, sections["overflowed"].total, sections["held"].total) == (1, 2, 1)
    assert sections["routing-errors"].total == 1
    assert sections["no-rule"].rows[0].detail == "ZA · Webinar; waiting in the queue"
    assert {row.detail for row in sections["overflowed"].rows} == {
        "Rule “DACH inbound”: EMEA inbound → EMEA overflow → Catch-all"
    }
    assert sections["held"].rows[0].detail.startswith("In EMEA inbound until anna starts work (2026-03-02 08:00")
    # Each admin link lists exactly the leads counted.
    client.force_login(revops)
    for key in ("no-rule", "overflowed"):
        response = client.get(sections[key].admin_url)
        assert response.context["cl"].result_count == sections[key].total, key
    content = client.get(reverse("routing-health")).content.decode()
    assert "No rule matched" in content and "Overflowed: nobody eligible" in content and "Held for a rep" in content


@pytest.mark.django_db
def test_a_weak_match_shows_its_confidence_once_as_a_percentage(revops, frozen):
    lead_at(NOW - dt.timedelta(hours=1), account_match_weak=True, account_match_confidence=87.2)

    sections = by_key(reports.routing_health(user=revops, period=reports.period_for(None)))

    assert sections["weak-match"].rows[0].detail.endswith("(87%)")


@pytest.mark.django_db
def test_health_page_shows_figures_and_admin_links_to_revops(client, revops, frozen):
    lead_at(NOW - dt.timedelta(days=1), routing_error="Rule engine failed <boom>", queue=Queue.objects.catch_all())
    client.force_login(revops)

    response = client.get(reverse("routing-health"))

    assert response.status_code == 200
    content = response.content.decode()
    assert "Rule engine failed &lt;boom&gt;" in content
    assert "routing_error=yes" in content
    assert 'role="img"' in content


@pytest.mark.django_db
def test_manager_sees_only_their_teams_figures(client, manager, rep, outsider, frozen):
    yesterday = NOW - dt.timedelta(days=1)
    lead_at(yesterday, owner=rep, enrichment_failures={"a": "down"}, company="Ours AG")
    lead_at(yesterday, owner=outsider, enrichment_failures={"a": "down"}, company="Theirs AG")
    # A lead waiting in a queue one of the manager's reps works is not one of their leads (its deputies see it).
    shared = QueueFactory(name="Shared")
    QueueMembershipFactory(queue=shared, rep=rep)
    lead_at(yesterday, queue=shared, enrichment_failures={"a": "down"}, company="Queued AG")

    period = reports.period_for(None)
    sections = by_key(reports.routing_health(user=manager, period=period))

    assert sections["enrichment"].total == 1
    assert {row.lead.company for row in sections["enrichment"].rows} == {"Ours AG"}
    # Managers are not sent to the admin.
    assert sections["enrichment"].admin_url == ""
    client.force_login(manager)
    content = client.get(reverse("routing-health")).content.decode()
    assert "Ours AG" in content and "Theirs AG" not in content
    assert "/admin/routing/lead/" not in content


@pytest.mark.django_db
def test_revops_sees_every_team(revops, rep, outsider, frozen):
    lead_at(NOW - dt.timedelta(days=1), owner=rep, enrichment_failures={"a": "down"})
    lead_at(NOW - dt.timedelta(days=1), owner=outsider, enrichment_failures={"a": "down"})

    sections = by_key(reports.routing_health(user=revops, period=reports.period_for(None)))

    assert sections["enrichment"].total == 2


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["routing-health", "reports"])
def test_outsider_rep_gets_404_never_data(client, outsider, rep, name):
    lead_at(NOW, owner=rep, enrichment_failures={"a": "down"})
    client.force_login(outsider.user)

    response = client.get(reverse(name))

    assert response.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["routing-health", "reports"])
def test_anonymous_is_sent_to_login(client, name):
    response = client.get(reverse(name))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# -- Reports ------------------------------------------------------------------------------------------------------


def touched_lead(rep, *, wall, business, source="web", rule=None, routed_at=NOW - dt.timedelta(hours=3)):
    lead = lead_at(routed_at, owner=rep, source=source, rule=rule, routed_at=routed_at)
    LeadSlaFactory(
        lead=lead,
        state=LeadSla.State.MET,
        started_at=routed_at,
        touched_at=routed_at + dt.timedelta(seconds=wall),
        speed_wall_seconds=wall,
        speed_business_seconds=business,
    )
    return lead


@pytest.mark.django_db
def test_speed_to_lead_median_and_p90_on_known_data(revops, rep, frozen):
    demo = RuleFactory(name="Demo requests")
    for wall, business in [(60, 30), (120, 60), (180, 90), (240, 120)]:
        touched_lead(rep, wall=wall, business=business, source="web", rule=demo)
    touched_lead(rep, wall=600, business=300, source="event")
    # An untouched lead has no speed yet and is left out.
    LeadSlaFactory(lead=lead_at(NOW, owner=rep, routed_at=NOW))

    period = reports.period_for(None)
    speed = sla_reports.speed_to_lead(user=revops, period=period)

    assert speed.overall.count == 5
    assert speed.overall.wall_p50 == 180
    assert speed.overall.wall_p90 == pytest.approx(456)  # 240 + 0.6 × (600 − 240)
    assert speed.overall.business_p50 == 90
    assert speed.overall.business_p90 == pytest.approx(228)
    today = speed.by_day[day_index(NOW, period)]
    assert today.count == 5 and today.wall_p50 == 180
    segments = {row.label: row for row in speed.by_segment}
    assert segments["web"].wall_p50 == 150 and segments["event"].wall_p90 == 600
    rules = {row.label: row for row in speed.by_rule}
    assert rules["Demo requests"].count == 4 and rules["(no rule)"].count == 1


@pytest.mark.django_db
def test_sla_adherence_percent_met_on_known_data(revops, rep, frozen):
    started = NOW - dt.timedelta(days=1)

    def clock(state, *, touched=False, due=started + dt.timedelta(minutes=30)):
        lead = lead_at(started, owner=rep)
        LeadSlaFactory(lead=lead, state=state, started_at=started, due_at=due, touched_at=started if touched else None)

    for _ in range(3):
        clock(LeadSla.State.MET, touched=True)
    clock(LeadSla.State.MISSED, touched=True)
    # Past due and untouched: breached even though the sweep has not stored that yet.
    clock(LeadSla.State.ON_TRACK)
    # Still running: in none of the three.
    clock(LeadSla.State.ON_TRACK, due=NOW + dt.timedelta(hours=1))

    period = reports.period_for(None)
    adherence = sla_reports.sla_adherence(user=revops, period=period)

    day = adherence.by_day[day_index(started, period)]
    assert (day.met, day.missed, day.breached) == (3, 1, 1)
    assert day.percent_met == 60.0
    assert adherence.total.percent_met == 60.0
    assert adherence.by_day[day_index(NOW, period)].percent_met is None


@pytest.mark.django_db
def test_workload_spread_across_a_queues_reps(revops, frozen):
    queue = QueueFactory(name="Inbound EMEA")
    busy, light, paused = RepFactory(), RepFactory(), RepFactory()
    QueueMembershipFactory(queue=queue, rep=busy, position=1)
    QueueMembershipFactory(queue=queue, rep=light, position=2)
    QueueMembershipFactory(queue=queue, rep=paused, position=3, active=False)
    for _ in range(3):
        lead = lead_at(NOW - dt.timedelta(days=2), owner=busy, queue=queue)
        AssignmentFactory(lead=lead, rep=busy, queue=queue, assigned_at=NOW - dt.timedelta(days=2))
    lead = lead_at(NOW - dt.timedelta(days=2), owner=light, queue=queue)
    AssignmentFactory(lead=lead, rep=light, queue=queue, assigned_at=NOW - dt.timedelta(days=2))
    # A closed lead is not open; an assignment before the period is not new.
    lead_at(NOW, owner=light, queue=queue, status=Lead.Status.CLOSED)
    AssignmentFactory(lead=lead, rep=light, queue=queue, assigned_at=NOW - dt.timedelta(days=60))

    workload = reports.queue_workload(user=revops, queue_id=queue.pk, period=reports.period_for(None))

    assert [(row.rep, row.open_leads, row.new_leads) for row in workload.rows] == [
        (busy, 3, 3),
        (light, 1, 1),
        (paused, 0, 0),
    ]
    # The paused member's zero is not counted as unfair.
    assert (workload.open_spread.minimum, workload.open_spread.maximum, workload.open_spread.spread) == (1, 3, 2)
    assert workload.new_spread.spread == 2


@pytest.mark.django_db
def test_manager_cannot_pick_another_teams_queue(manager, rep, outsider, frozen):
    ours, theirs = QueueFactory(name="Ours"), QueueFactory(name="Theirs")
    QueueMembershipFactory(queue=ours, rep=rep)
    QueueMembershipFactory(queue=theirs, rep=outsider)

    workload = reports.queue_workload(user=manager, queue_id=theirs.pk, period=reports.period_for(None))

    assert list(reports.report_queues(user=manager)) == [ours]
    assert workload.queue == ours


@pytest.mark.django_db
def test_conversion_by_rule_counts_leads_reaching_a_rep(revops, rep, frozen):
    demo = RuleFactory(name="Demo")
    touched_lead(rep, wall=60, business=60, rule=demo)
    lead_at(NOW, owner=rep, rule=demo, routed_at=NOW, status=Lead.Status.ACCEPTED)
    lead_at(NOW, owner=rep, rule=demo, routed_at=NOW, status=Lead.Status.ASSIGNED)
    lead_at(NOW, owner=rep, rule=demo, routed_at=NOW, status=Lead.Status.ASSIGNED)
    # Won without a logged touch: it reached a rep all the same.
    lead_at(NOW, owner=rep, rule=demo, routed_at=NOW, status=Lead.Status.CONVERTED)

    (row,) = reports.conversion_by_rule(user=revops, period=reports.period_for(None))

    assert (row.rule, row.routed, row.accepted, row.touched, row.reached, row.won) == ("Demo", 5, 1, 1, 3, 1)
    assert row.percent_reached == 60.0


@pytest.mark.django_db
def test_reports_page_renders_for_a_manager_with_only_their_figures(client, manager, rep, outsider, frozen):
    touched_lead(rep, wall=120, business=60, source="ours-source")
    touched_lead(outsider, wall=999, business=999, source="their-source")
    client.force_login(manager)

    response = client.get(reverse("reports"), {"days": "7"})

    assert response.status_code == 200
    content = response.content.decode()
    assert "ours-source" in content and "their-source" not in content
    assert content.count("<svg") >= 3
    assert "selected>Last 7 days" in content


# -- Query counts -------------------------------------------------------------------------------------------------


def some_of_everything(rep, queue, *, count):
    for index in range(count):
        when = NOW - dt.timedelta(days=index % 20, hours=1)
        lead = lead_at(
            when,
            owner=rep,
            queue=queue,
            enrichment_failures={"x": "down"},
            account_match_weak=True,
            rule=RuleFactory(name=f"Rule {index % 3}"),
            routed_at=when,
            source=f"source-{index % 4}",
        )
        AssignmentFactory(lead=lead, rep=rep, queue=queue, assigned_at=when, reason=Assignment.Reason.MANUAL)
        LeadSlaFactory(
            lead=lead, state=LeadSla.State.MET, started_at=when, touched_at=when, speed_wall_seconds=60 + index
        )


def queries_for(client, name, params=None):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse(name), params or {}).status_code == 200
    return len(captured)


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "most"), [("routing-health", 28), ("reports", 15)])
def test_queries_are_bounded_whatever_the_row_count(
    client, revops, manager, rep, frozen, name, most, django_assert_max_num_queries
):
    queue = QueueFactory(name="Inbound")
    QueueMembershipFactory(queue=queue, rep=rep)
    some_of_everything(rep, queue, count=2)
    for user in (revops, manager):
        client.force_login(user)
        few = queries_for(client, name, {"queue": queue.pk})
        some_of_everything(rep, queue, count=25)
        many = queries_for(client, name, {"queue": queue.pk})
        assert many == few, user
    with django_assert_max_num_queries(most):
        client.get(reverse(name), {"queue": queue.pk})


@pytest.mark.django_db
def test_health_admin_links_open_the_filtered_changelist(client, revops, frozen):
    lead_at(NOW - dt.timedelta(days=1), queue=Queue.objects.catch_all(), enrichment_failures={"x": "down"})
    client.force_login(revops)

    for section in reports.routing_health(user=revops, period=reports.period_for(None)):
        if not section.admin_url:
            continue
        response = client.get(section.admin_url)
        # The admin answers an unknown filter with a redirect to ?e=1; these must all be understood.
        assert response.status_code == 200, section.key
        assert response.context["cl"].result_count == section.total, section.key
