"""The reports page as RevOps and managers read it: scales that show the figures, per-rep and per-team SLA
adherence, a CSV for every table, a chosen date range, and rows that open the leads behind them."""

import csv
import datetime as dt
import io
import xml.etree.ElementTree as ET

import pytest
import time_machine
from django.urls import reverse

from routing import charts, reports
from routing.models import Lead, Queue, Rule
from sla import reports as sla_reports
from sla.models import LeadSla
from sla.report_views import CSV_TABLES
from tests.factories import LeadFactory, QueueFactory, QueueMembershipFactory, RepFactory, TeamFactory, UserFactory

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def clock(rep, state, *, hours_ago=3, rule=None, wall=None):
    routed = NOW - dt.timedelta(hours=hours_ago)
    with time_machine.travel(routed, tick=False):
        lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED, routed_at=routed, rule=rule)
    return LeadSla.objects.create(
        lead=lead,
        state=state,
        started_at=routed,
        due_at=routed + dt.timedelta(minutes=30),
        touched_at=routed + dt.timedelta(seconds=wall or 600) if state != LeadSla.State.BREACHED else None,
        speed_wall_seconds=wall if state != LeadSla.State.BREACHED else None,
    )


def y_labels(markup):
    root = ET.fromstring(str(markup))
    return [text.text for text in root.iter(f"{SVG}text") if text.get("text-anchor") == "end"]


# -- Scales ---------------------------------------------------------------------------------------------------------


def test_a_percentage_chart_runs_from_0_to_100_whatever_the_best_day():
    markup = charts.bar_chart([("03-01", 84.1), ("03-02", 40.0)], title="SLA met", unit="%", fixed_top=100)

    assert y_labels(markup) == ["0", "25", "50", "75", "100"]


def test_a_count_axis_has_round_figures_above_the_largest_value():
    assert [label for _, label in charts.linear_ticks(3037)] == ["0", "1000", "2000", "3000", "4000"]
    assert [label for _, label in charts.linear_ticks(18)] == ["0", "5", "10", "15", "20"]


def test_speed_axis_is_logarithmic_in_durations_so_minutes_and_days_both_read():
    ticks = charts.duration_ticks([5 * 60, 93 * 60, 30 * 3600])
    assert [label for _, label in ticks] == ["1 min", "5 min", "15 min", "1 h", "4 h", "1 d", "1 w"]

    markup = charts.line_chart(
        ["03-01", "03-02"],
        [("Median", [300.0, 600.0]), ("p90", [86400.0, 100000.0])],
        title="Speed",
        ticks=ticks,
        log=True,
    )
    points = [
        [float(pair.split(",")[1]) for pair in line.get("points").split()]
        for line in ET.fromstring(str(markup)).iter(f"{SVG}polyline")
    ]
    median, p90 = points
    # On a linear axis a 5-minute median would sit on the baseline under a day-long p90; here it is well clear.
    baseline = 220 - 44
    assert baseline - max(median) > 20
    assert min(p90) < min(median) - 40


def test_a_long_rule_name_is_shown_whole_beside_its_bar():
    name = "Everything else by territory and product line"
    root = ET.fromstring(str(charts.hbar_chart([(name, 67.7)], title="Reached", unit="%", fixed_top=100)))

    shown = " ".join(span.text for span in root.iter(f"{SVG}tspan"))
    assert shown == name


# -- Per rep and team -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sla_adherence_per_rep_and_team_worst_first(revops, frozen):
    north, south = TeamFactory(name="North"), TeamFactory(name="South")
    ada = RepFactory(user=UserFactory(username="ada"), team=north)
    bo = RepFactory(user=UserFactory(username="bo"), team=south)
    for state in (LeadSla.State.MET, LeadSla.State.MET, LeadSla.State.MISSED):
        clock(ada, state)
    clock(bo, LeadSla.State.MET)
    clock(bo, LeadSla.State.BREACHED)

    reps, teams = sla_reports.sla_adherence_by_owner(user=revops, period=reports.period_for(None))

    assert [(row.label, row.met, row.missed, row.breached, row.percent_met) for row in reps] == [
        ("bo", 1, 0, 1, 50.0),
        ("ada", 2, 1, 0, 66.7),
    ]
    assert [(row.label, row.percent_met) for row in teams] == [("South", 50.0), ("North", 66.7)]


@pytest.mark.django_db
def test_a_manager_sees_only_their_reps_in_the_per_rep_adherence(client, manager, rep, outsider, frozen):
    clock(rep, LeadSla.State.MET)
    clock(outsider, LeadSla.State.MISSED)
    client.force_login(manager)

    content = client.get(reverse("reports")).content.decode()

    assert rep.username in content
    assert outsider.username not in content
    # Managers do not work in the admin: no links into it.
    assert reverse("admin:routing_lead_changelist") not in content


# -- CSV ------------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("table", sorted(CSV_TABLES))
def test_every_table_downloads_as_csv(client, revops, rep, frozen, table):
    clock(rep, LeadSla.State.MET, rule=Rule.objects.create(name="=cmd|' /C calc'!A0", action="nurture"), wall=900)
    client.force_login(revops)

    response = client.get(reverse("report-csv", args=[table]), {"days": "7"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0]
    # No cell starts a formula.
    assert not any(cell.startswith("=") for row in rows for cell in row)


@pytest.mark.django_db
def test_the_speed_csv_has_minutes_a_spreadsheet_can_sum(client, revops, rep, frozen):
    clock(rep, LeadSla.State.MET, wall=900)
    client.force_login(revops)

    rows = list(
        csv.DictReader(io.StringIO(client.get(reverse("report-csv", args=["speed-by-source"])).content.decode()))
    )

    assert rows == [
        {
            "source": "web",
            "touched_leads": "1",
            "median_wall_minutes": "15.0",
            "p90_wall_minutes": "15.0",
            "median_business_minutes": "",
            "p90_business_minutes": "",
        }
    ]


@pytest.mark.django_db
def test_an_unknown_table_and_an_outsider_get_404(client, revops, outsider):
    client.force_login(revops)
    assert client.get(reverse("report-csv", args=["salaries"])).status_code == 404
    client.force_login(outsider.user)
    assert client.get(reverse("report-csv", args=["conversion"])).status_code == 404


# -- Date range and drill-down -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_chosen_date_range_counts_only_those_days(client, revops, rep, frozen):
    clock(rep, LeadSla.State.MET, hours_ago=24 * 10)
    clock(rep, LeadSla.State.MISSED, hours_ago=3)
    client.force_login(revops)
    ten_days_ago = (NOW - dt.timedelta(days=10)).date()

    response = client.get(reverse("reports"), {"start": ten_days_ago.isoformat(), "end": ten_days_ago.isoformat()})

    assert response.context["adherence"].total.met == 1
    assert response.context["adherence"].total.missed == 0
    assert response.context["period"].days == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-03-01", "", "Give both dates"),
        ("2026-03-02", "2026-02-01", "comes after the last one"),
        ("2024-01-01", "2026-03-01", "at most 366 days"),
        ("yesterday", "2026-03-01", "Enter a valid date"),
    ],
)
def test_a_bad_date_range_is_explained_and_the_preset_period_shown(client, revops, frozen, start, end, message):
    client.force_login(revops)

    response = client.get(reverse("reports"), {"start": start, "end": end})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert response.context["period"].days == 30


@pytest.mark.django_db
def test_revops_open_the_leads_behind_a_rule_row_in_the_admin(client, revops, rep, frozen):
    rule = Rule.objects.create(name="DACH enterprise", action="nurture")
    sla = clock(rep, LeadSla.State.MET, rule=rule)
    other = clock(rep, LeadSla.State.MET)
    client.force_login(revops)

    (row, url) = client.get(reverse("reports")).context["conversion"][0]
    listing = client.get(url)

    assert row.rule == "DACH enterprise"
    assert listing.status_code == 200
    shown = {lead.pk for lead in listing.context["cl"].result_list}
    assert shown == {sla.lead_id}
    assert other.lead_id not in shown


@pytest.mark.django_db
def test_revops_open_a_teams_leads_from_the_per_team_row(client, revops, frozen):
    team = TeamFactory(name="North")
    ada = RepFactory(user=UserFactory(username="ada"), team=team)
    sla = clock(ada, LeadSla.State.MET)
    clock(RepFactory(), LeadSla.State.MET)
    client.force_login(revops)

    (_team, url) = next(
        item for item in client.get(reverse("reports")).context["adherence_teams"] if item[0].label == "North"
    )
    listing = client.get(url)

    assert listing.status_code == 200
    assert {lead.pk for lead in listing.context["cl"].result_list} == {sla.lead_id}


@pytest.mark.django_db
def test_workload_opens_on_a_real_queue_not_the_catch_all(client, revops, frozen):
    inbound = QueueFactory(name="Inbound EMEA")
    QueueMembershipFactory(queue=inbound, rep=RepFactory())
    assert Queue.objects.filter(is_catch_all=True).exists()
    client.force_login(revops)

    response = client.get(reverse("reports"))

    assert response.context["workload"].queue == inbound
