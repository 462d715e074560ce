"""The manager's pages: team board, reassignment, out of office and departures, with their scoping."""

import datetime as dt

import pytest
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from routing.dispatch import queued_leads_distribute
from routing.models import Assignment, Lead, Queue
from routing.reassign import leads_reassign
from sla.models import LeadSla
from sla.services import sla_clocks_start
from territories.models import Account, OutOfOffice
from tests.factories import (
    AccountFactory,
    AssignmentFactory,
    LeadFactory,
    QueueMembershipFactory,
    RepFactory,
    TerritoryCriterionFactory,
    TerritoryFactory,
    UserFactory,
)
from tests.helpers import five_times, messages_text, run_together


def open_lead(rep, *, hours_old=48, **fields):
    """An open lead of ``rep`` received ``hours_old`` ago, with its current assignment and running clock."""
    lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED, **fields)
    Lead.objects.filter(pk=lead.pk).update(received_at=timezone.now() - dt.timedelta(hours=hours_old))
    lead.refresh_from_db()
    AssignmentFactory(lead=lead, rep=rep, queue=lead.queue)
    sla_clocks_start(leads=[lead], now=timezone.now())
    return lead


@pytest.fixture
def teammate(team, manager):
    return RepFactory(user=UserFactory(username="teammate"), team=team)


def current_assignments(lead):
    return Assignment.objects.filter(lead=lead, ended_at__isnull=True)


# --- Access --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, args, method",
    [
        ("team-board", [], "get"),
        ("team-reassign", [], "post"),
        ("rep-out-of-office", [1], "post"),
        ("rep-departure", [1], "get"),
    ],
)
def test_anonymous_is_sent_to_login(client, db, name, args, method):
    response = getattr(client, method)(reverse(name, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_manager_sees_their_teams_reps_and_not_the_outsiders(client, manager, rep, outsider):
    client.force_login(manager)
    response = client.get(reverse("team-board"))
    assert response.status_code == 200
    shown = {row.rep for row in response.context["board"].reps}
    assert shown == {rep}
    assert "outsider" not in response.content.decode()


def test_direct_reports_in_another_team_are_in_scope(client, manager, outsider):
    outsider.manager = manager
    outsider.save()
    client.force_login(manager)
    assert outsider in {row.rep for row in client.get(reverse("team-board")).context["board"].reps}


def test_revops_sees_every_rep(client, revops, rep, outsider):
    client.force_login(revops)
    shown = {row.rep for row in client.get(reverse("team-board")).context["board"].reps}
    assert {rep, outsider} <= shown


def test_outsider_gets_404_everywhere(client, rep, outsider, teammate):
    lead = open_lead(rep)
    client.force_login(outsider.user)
    assert client.get(reverse("team-board")).status_code == 404
    assert client.post(reverse("team-reassign"), {"leads": [lead.pk], "to_rep": outsider.pk}).status_code == 404
    ooo = {"start": "2030-01-01T00:00", "end": "2030-01-08T00:00"}
    assert client.post(reverse("rep-out-of-office", args=[rep.pk]), ooo).status_code == 404
    assert client.get(reverse("rep-departure", args=[rep.pk])).status_code == 404
    assert client.post(reverse("rep-departure", args=[rep.pk])).status_code == 404
    # Nothing changed.
    lead.refresh_from_db()
    rep.refresh_from_db()
    assert lead.owner == rep and rep.active and not OutOfOffice.objects.exists()


def test_manager_cannot_act_on_reps_outside_their_scope(client, manager, rep, outsider):
    lead = open_lead(rep)
    foreign_lead = open_lead(outsider)
    client.force_login(manager)
    # A target outside the team, and a lead outside the team.
    assert client.post(reverse("team-reassign"), {"leads": [lead.pk], "to_rep": outsider.pk}).status_code == 404
    assert client.post(reverse("team-reassign"), {"leads": [foreign_lead.pk], "to_rep": rep.pk}).status_code == 404
    ooo = {"start": "2030-01-01T00:00", "end": "2030-01-08T00:00"}
    assert client.post(reverse("rep-out-of-office", args=[outsider.pk]), ooo).status_code == 404
    assert client.get(reverse("rep-departure", args=[outsider.pk])).status_code == 404
    assert client.post(reverse("rep-departure", args=[outsider.pk])).status_code == 404
    assert Lead.objects.get(pk=lead.pk).owner == rep
    assert Lead.objects.get(pk=foreign_lead.pk).owner == outsider


# --- Board ---------------------------------------------------------------------------------------------------


def test_board_lists_aging_untouched_leads_oldest_first(client, manager, rep):
    newer = open_lead(rep, hours_old=30)
    oldest = open_lead(rep, hours_old=80)
    fresh = open_lead(rep, hours_old=1)
    touched = open_lead(rep, hours_old=50)
    LeadSla.objects.filter(lead=touched).update(touched_at=timezone.now())
    client.force_login(manager)

    aging = client.get(reverse("team-board"), {"aging": "24"}).context["board"]
    assert [item.lead for item in aging.leads] == [oldest, newer]
    everything = client.get(reverse("team-board"), {"aging": "all"}).context["board"]
    assert {item.lead for item in everything.leads} == {oldest, touched, newer, fresh}
    row = next(row for row in everything.reps if row.rep == rep)
    assert (row.open_leads, row.assigned_today) == (4, 4)


def test_out_of_office_set_by_the_manager_shows_on_the_board(client, manager, rep):
    client.force_login(manager)
    response = client.post(
        reverse("rep-out-of-office", args=[rep.pk]),
        {"start": "2030-07-01T00:00", "end": "2030-07-15T00:00", "reason": "Summer"},
    )
    assert response.status_code == 302
    period = OutOfOffice.objects.get(rep=rep)
    # Read in the rep's time zone (Europe/Berlin, UTC+2 in summer).
    assert period.starts_at == dt.datetime(2030, 6, 30, 22, 0, tzinfo=dt.UTC)
    assert period.reason == "Summer"
    board = client.get(reverse("team-board")).context["board"]
    row = next(row for row in board.reps if row.rep == rep)
    assert row.next_away == period
    assert "Summer" in client.get(reverse("team-board")).content.decode()


def test_out_of_office_now_shows_as_away(client, manager, rep):
    client.force_login(manager)
    now = timezone.now()
    OutOfOffice.objects.create(rep=rep, starts_at=now - dt.timedelta(days=1), ends_at=now + dt.timedelta(days=2))
    row = client.get(reverse("team-board")).context["board"].reps[0]
    assert row.away_until == now + dt.timedelta(days=2)


def test_out_of_office_ending_before_it_starts_is_refused(client, manager, rep):
    client.force_login(manager)
    response = client.post(
        reverse("rep-out-of-office", args=[rep.pk]), {"start": "2030-07-15T00:00", "end": "2030-07-01T00:00"}
    )
    assert "must end after it starts" in messages_text(response)
    assert not OutOfOffice.objects.exists()


# --- Reassign ------------------------------------------------------------------------------------------------


def test_reassigning_two_leads_records_manual_assignments_and_restarts_clocks(client, manager, rep, teammate):
    first, second = open_lead(rep), open_lead(rep)
    LeadSla.objects.filter(lead__in=[first, second]).update(started_at=timezone.now() - dt.timedelta(days=2))
    client.force_login(manager)

    response = client.post(
        reverse("team-reassign"), {"leads": [first.pk, second.pk], "to_rep": teammate.pk, "note": "Rep is swamped"}
    )

    assert response.status_code == 302
    assert "2 leads reassigned" in messages_text(response)
    for lead in (first, second):
        lead.refresh_from_db()
        assert lead.owner == teammate
        history = list(Assignment.objects.filter(lead=lead).order_by("assigned_at", "pk"))
        assert len(history) == 2
        old, new = history
        assert old.rep == rep and old.ended_at is not None
        assert new.reason == Assignment.Reason.MANUAL
        assert (new.rep, new.assigned_by, new.note, new.ended_at) == (teammate, manager, "Rep is swamped", None)
        assert new.assigned_at == old.ended_at
        clock = LeadSla.objects.get(lead=lead)
        assert clock.started_at == new.assigned_at
        assert clock.previous_owner_ids == [rep.pk]
        assert lead.tasks.filter(rep=teammate).exists()
    # Never lost: both are still open, each with exactly one current owner.
    assert Lead.objects.filter(status__in=Lead.OPEN_STATUSES, owner=teammate).count() == 2


def test_reassigning_above_capacity_warns_and_respects_the_managers_choice(client, manager, rep, teammate):
    teammate.max_open_leads = 1
    teammate.save()
    open_lead(teammate)
    lead = open_lead(rep)
    client.force_login(manager)
    response = client.post(reverse("team-reassign"), {"leads": [lead.pk], "to_rep": teammate.pk})
    text = messages_text(response)
    assert "above their capacity of 1" in text and "as you chose" in text
    assert Lead.objects.get(pk=lead.pk).owner == teammate


def test_reassigning_a_lead_to_its_owner_is_skipped(client, manager, rep):
    lead = open_lead(rep)
    client.force_login(manager)
    response = client.post(reverse("team-reassign"), {"leads": [lead.pk], "to_rep": rep.pk})
    assert "was not reassigned" in messages_text(response)
    assert current_assignments(lead).count() == 1


def test_reassign_without_leads_says_what_is_missing(client, manager, rep):
    client.force_login(manager)
    response = client.post(reverse("team-reassign"), {"to_rep": rep.pk})
    assert "Select at least one lead" in messages_text(response)


# --- Departure -----------------------------------------------------------------------------------------------


@pytest.fixture
def departure_setup(rep, teammate):
    """rep leaves with three open leads and two accounts. The catch-all rotates to teammate, who has room for
    two more leads; Germany is teammate's territory, France has none."""
    teammate.max_open_leads = 2
    teammate.save()
    QueueMembershipFactory(queue=Queue.objects.catch_all(), rep=teammate)
    QueueMembershipFactory(queue=Queue.objects.catch_all(), rep=rep)
    germany = TerritoryFactory(name="Germany", rep=teammate)
    TerritoryCriterionFactory(territory=germany, value="DE")
    leads = [open_lead(rep, hours_old=hours) for hours in (30, 20, 10)]
    german = AccountFactory(name="Berlin GmbH", owner=rep, country="DE")
    french = AccountFactory(name="Paris SA", owner=rep, country="FR")
    return leads, german, french


def test_departure_preview_matches_what_apply_does(client, manager, rep, teammate, departure_setup):
    leads, german, french = departure_setup
    client.force_login(manager)

    preview = client.get(reverse("rep-departure", args=[rep.pk]))
    assert preview.status_code == 200
    planned = {move.lead.pk: (move.to_rep_id, move.to_queue_id) for move in preview.context["plan"].leads}
    planned_accounts = {move.account.pk: move.to_rep_id for move in preview.context["plan"].accounts}
    # The preview writes nothing.
    rep.refresh_from_db()
    assert rep.active and Lead.objects.filter(owner=rep).count() == 3

    catch_all = Queue.objects.catch_all().pk
    assert sorted(planned.values(), key=str) == sorted(
        [(teammate.pk, catch_all), (teammate.pk, catch_all), (None, catch_all)], key=str
    )
    assert planned_accounts == {german.pk: teammate.pk, french.pk: None}

    done = client.post(reverse("rep-departure", args=[rep.pk]))
    assert done.status_code == 200
    assert "has left" in done.content.decode()
    for lead in leads:
        lead.refresh_from_db()
        assert (lead.owner_id, lead.queue_id) == planned[lead.pk]
        assert lead.status == (Lead.Status.ASSIGNED if lead.owner_id else Lead.Status.QUEUED)
        current = current_assignments(lead).get()
        assert current.reason == Assignment.Reason.DEPARTURE and current.assigned_by == manager
        assert LeadSla.objects.get(lead=lead).previous_owner_ids == [rep.pk]
    assert {account.pk: account.owner_id for account in Account.objects.all()} == planned_accounts
    rep.refresh_from_db()
    assert not rep.active
    assert not Lead.objects.filter(owner=rep, status__in=Lead.OPEN_STATUSES).exists()


def test_departure_with_nobody_eligible_puts_leads_back_in_the_queue(client, manager, rep):
    lead = open_lead(rep)
    client.force_login(manager)
    client.post(reverse("rep-departure", args=[rep.pk]))
    lead.refresh_from_db()
    assert (lead.status, lead.owner_id, lead.queue_id) == (Lead.Status.QUEUED, None, Queue.objects.catch_all().pk)
    assert current_assignments(lead).get().rep is None


# --- Concurrency ---------------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_reassignment_racing_routing_never_leaves_two_current_assignments(team, manager, rep, teammate):
    # Leads held in the catch-all, which routing releases to rep, while the manager gives them all to teammate.
    # (A transactional test starts from an empty database, without the catch-all the migrations create.)
    catch_all, _ = Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    QueueMembershipFactory(queue=catch_all, rep=rep)
    rep.max_open_leads = 100
    rep.save()
    leads = []
    for _ in range(20):
        lead = LeadFactory(status=Lead.Status.QUEUED, queue=catch_all, routed_at=timezone.now())
        AssignmentFactory(lead=lead, rep=None, queue=catch_all)
        leads.append(lead)
    for _ in range(10):
        leads.append(open_lead(rep))
    errors = run_together(
        five_times(lambda: queued_leads_distribute(limit=4)),
        five_times(lambda: leads_reassign(leads=leads, to_rep=teammate, by=manager)),
    )

    assert errors == []
    doubled = Assignment.objects.filter(ended_at__isnull=True).values("lead").annotate(n=Count("id")).filter(n__gt=1)
    assert not doubled.exists()
    # Every lead is still there, held by exactly the owner (or queue) its current assignment names.
    final = list(Lead.objects.filter(pk__in=[lead.pk for lead in leads]))
    assert len(final) == 30
    for lead in final:
        current = current_assignments(lead).get()
        assert current.rep_id == lead.owner_id
        assert lead.status == (Lead.Status.QUEUED if lead.owner_id is None else Lead.Status.ASSIGNED)
    # The manager's choice won for every lead open when the reassignment ran, including those routing released.
    assert Lead.objects.filter(owner=teammate).count() >= 10


def test_board_counts_breached_untouched_and_aging_leads(client, manager, rep, outsider):
    breached = open_lead(rep, hours_old=30)
    LeadSla.objects.filter(lead=breached).update(due_at=timezone.now() - dt.timedelta(hours=1))
    open_lead(rep, hours_old=5)
    touched = open_lead(rep, hours_old=50)
    LeadSla.objects.filter(lead=touched).update(touched_at=timezone.now(), due_at=timezone.now() - dt.timedelta(days=1))
    # Another team's breached lead counts for nobody here.
    theirs = open_lead(outsider, hours_old=30)
    LeadSla.objects.filter(lead=theirs).update(due_at=timezone.now() - dt.timedelta(hours=1))
    client.force_login(manager)

    response = client.get(reverse("team-board"))

    counts = response.context["board"].counts
    assert (counts.breached, counts.untouched, counts.aging) == (1, 2, 1)
    content = response.content.decode()
    assert 'id="count-breached"' in content and "untouched, older than 24 h" in content
    # The aging count follows the age the manager picks.
    counts = client.get(reverse("team-board"), {"aging": "4"}).context["board"].counts
    assert counts.aging == 2
    assert "untouched, older than 4 h" in client.get(reverse("team-board"), {"aging": "4"}).content.decode()


def test_load_bars_turn_amber_near_capacity_and_red_at_it(client, manager, rep, teammate):
    rep.max_open_leads = 2
    rep.save()
    teammate.max_open_leads = 6
    teammate.save()
    for _ in range(2):
        open_lead(rep)
    for _ in range(5):
        open_lead(teammate)
    client.force_login(manager)

    response = client.get(reverse("team-board"))

    rows = {row.rep: row for row in response.context["board"].reps}
    assert (rows[rep].at_capacity, rows[rep].near_capacity) == (True, False)
    assert (rows[teammate].at_capacity, rows[teammate].near_capacity) == (False, True)
    content = response.content.decode()
    # The meter's low and high mark 80% and (just under) 100% of capacity: amber between them, red at capacity.
    assert 'max="6" value="5" low="4.8" high="5.5" optimum="0"' in content
    assert 'max="2" value="2" low="1.6" high="1.5" optimum="0"' in content
    assert "Near capacity" in content and "At capacity" in content
