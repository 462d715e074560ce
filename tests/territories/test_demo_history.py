"""The demo's month of lead history: every persona's pages show real data.

The full history (``load_demo``) is loaded once for the module inside a transaction that is rolled back at
the end; each test runs in a savepoint of it, as pytest-django's ``db`` fixture nests.
"""

from collections import Counter
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from leadrouter.demo.history import demo_history_load
from leadrouter.demo.loader import demo_load
from leadrouter.selectors import team_board
from routing.models import Assignment, Lead, Notification
from routing.ownership import loads_recount
from routing.reports import period_for, routing_health
from sla.models import Escalation, LeadSla
from sla.reports import sla_adherence, speed_to_lead
from sla.selectors import escalations_for_user
from sla.services import sla_state
from tests.helpers import FAST_HASHERS


@pytest.fixture(scope="module")
def loaded(django_db_setup, django_db_blocker):
    """The output of ``manage.py load_demo``, shared by the module's tests."""
    # The tests' fast hasher for the demo's logins (tests/helpers.py): ~5 s less to load.
    with override_settings(PASSWORD_HASHERS=FAST_HASHERS), django_db_blocker.unblock(), transaction.atomic():
        out = StringIO()
        call_command("load_demo", stdout=out)
        yield out.getvalue()
        transaction.set_rollback(True)


@pytest.fixture
def demo(loaded, db):
    return loaded


def user(username):
    return get_user_model().objects.get(username=username)


def test_load_demo_reports_the_history_it_loaded(demo):
    total = Lead.objects.count()
    assert total >= 500
    assert f"Loaded {total} demo leads over the last 30 days." in demo


def test_every_reps_counters_equal_a_recount_once_the_history_is_loaded(demo):
    # The history routes each day's leads at the real now and then moves them back to their day: the counters
    # routing reads (open leads, new leads today) must count what the rows say, or a rep who got one lead
    # today reads as past their daily cap and the README's lead overflows instead of waiting for them.
    assert loads_recount(now=timezone.now()) == []


def test_history_notifies_nobody(demo):
    # Assignments of a month ago are old news: the worker finds nothing to send when `make run` starts.
    assert Notification.objects.exists()
    assert not Notification.objects.exclude(status=Notification.Status.SENT).exists()


def test_the_demo_rep_has_open_leads_in_several_sla_states(demo):
    now = timezone.now()
    leads = Lead.objects.filter(owner__user__username="anna.schmidt", status__in=Lead.OPEN_STATUSES).select_related(
        "sla__policy", "sla__calendar"
    )
    states = Counter(sla_state(lead_sla=lead.sla, now=now) for lead in leads if hasattr(lead, "sla"))
    assert sum(states.values()) >= 5
    assert len(states) >= 2, states
    # Some of them are still running or already late: something to do today.
    assert states[LeadSla.State.BREACHED] + states[LeadSla.State.ON_TRACK] + states[LeadSla.State.AT_RISK] > 0


def test_reports_have_speed_to_lead_and_adherence_over_most_days(demo):
    revops = user("revops")
    period = period_for(30)
    speed = speed_to_lead(user=revops, period=period)
    adherence = sla_adherence(user=revops, period=period)
    assert len([row for row in speed.by_day if row.count]) >= 20
    assert len([row for row in adherence.by_day if row.decided]) >= 20
    # Met and missed both happen: the chart is not one colour.
    assert adherence.total.met and adherence.total.missed and adherence.total.breached
    assert {row.label for row in speed.by_segment} >= {"Demo request", "Webinar", "Contact us"}


def test_health_shows_catch_all_leads_and_not_mine(demo):
    sections = {section.key: section for section in routing_health(user=user("revops"), period=period_for(30))}
    assert sections["no-rule"].total + sections["overflowed"].total >= 1
    assert sections["reassignments"].total >= 1
    assert Assignment.objects.filter(reason=Assignment.Reason.NOT_MINE).exists()
    assert Assignment.objects.filter(reason=Assignment.Reason.MANUAL).exists()
    assert sections["stuck"].total == 0


def test_the_manager_sees_escalations_of_the_team(demo):
    manager = user("manager")
    escalations = escalations_for_user(user=manager)
    assert escalations.count() >= 3
    # Escalations follow the lead: each concerns a lead an EMEA rep (or a direct report) holds now, whoever held
    # it when the step fired and whoever was alerted then.
    for owner_team, owner_manager in escalations.values_list("lead__owner__team__name", "lead__owner__manager"):
        assert owner_team == "EMEA" or owner_manager == manager.pk
    # A lead the ladder moved to another team's rep left this manager's view with its escalations.
    moved_away = Escalation.objects.exclude(lead__owner__team__name="EMEA").filter(rep__team__name="EMEA")
    assert not escalations.filter(pk__in=moved_away.values("pk")).exists()


def test_the_team_board_lists_reps_with_open_leads_and_aging_ones(demo):
    from datetime import timedelta

    manager = user("manager")
    board = team_board(user=manager, now=timezone.now(), older_than=None)
    loaded_reps = [row for row in board.reps if row.open_leads > 0]
    assert len(loaded_reps) >= 3
    assert board.leads_total > 0
    aging = team_board(user=manager, now=timezone.now(), older_than=timedelta(hours=4))
    assert aging.leads_total > 0


def test_reports_page_renders_charts_with_data_for_revops(demo, client):
    client.force_login(user("revops"))
    response = client.get("/reports/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html
    # A chart with data draws bars or lines, not only its frame.
    svgs = html.split("<svg")[1:]
    assert any(("<rect" in svg or "<path" in svg or "<polyline" in svg) for svg in svgs)


def test_health_page_renders_for_revops(demo, client):
    client.force_login(user("revops"))
    response = client.get("/health/")
    assert response.status_code == 200
    assert "catch-all" in response.content.decode().lower()


def _outcome() -> tuple[int, ...]:
    return (
        Lead.objects.count(),
        Lead.objects.filter(status__in=Lead.OPEN_STATUSES).count(),
        Assignment.objects.count(),
        LeadSla.objects.filter(state=LeadSla.State.MET).count(),
        Escalation.objects.count(),
    )


@pytest.mark.django_db
def test_history_is_deterministic_for_a_seed():
    # A short history twice from the same start (each rolled back): the same leads, owners and clocks.
    demo_load()
    now = timezone.now()
    outcomes = []
    for _ in range(2):
        with transaction.atomic():
            demo_history_load(days=4, leads_per_day=12, now=now, seed=3)
            outcomes.append(_outcome())
            transaction.set_rollback(True)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] >= 20
