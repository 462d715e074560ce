"""The rep's pages: my leads in SLA order, taking the next lead from a shared queue, the lead page and its
one-click actions, and who may see or do what (the outsider sees nothing and gets 404 everywhere)."""

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from routing.dispatch import leads_route
from routing.models import Assignment, Lead, Queue, Rule
from routing.services import lead_take_next
from sla.models import LeadSla, SlaPolicy, Touch
from tests.factories import (
    AssignmentFactory,
    LeadFactory,
    QueueFactory,
    QueueMembershipFactory,
    RepFactory,
    UserFactory,
)
from tests.helpers import join_all

ACTIONS = ("lead-accept", "lead-touch", "lead-disqualify", "lead-nurture", "lead-convert", "lead-not-mine")


def owned_lead(rep, *, due_in=None, status=Lead.Status.ASSIGNED, queue=None, company="Acme AG", **fields):
    """A lead routed to ``rep``, with a first-touch clock due ``due_in`` from now when given."""
    lead = LeadFactory(owner=rep, status=status, queue=queue, company=company, **fields)
    AssignmentFactory(lead=lead, rep=rep, queue=queue)
    if due_in is not None:
        now = timezone.now()
        policy, _ = SlaPolicy.objects.get_or_create(name="Inbound demo requests", defaults={"first_touch_minutes": 30})
        LeadSla.objects.create(lead=lead, policy=policy, started_at=now - dt.timedelta(minutes=1), due_at=now + due_in)
    return lead


def queued_lead(queue, *, received_minutes_ago: int, company: str = "Waiting AG"):
    """A lead held in ``queue`` (nobody was eligible), received some minutes ago."""
    lead = LeadFactory(status=Lead.Status.QUEUED, queue=queue, company=company)
    Lead.objects.filter(pk=lead.pk).update(received_at=timezone.now() - dt.timedelta(minutes=received_minutes_ago))
    Assignment.objects.create(lead=lead, rep=None, queue=queue, assigned_at=timezone.now())
    lead.refresh_from_db()
    return lead


def messages_of(response) -> str:
    return " ".join(str(message) for message in response.context["messages"])


# --- Who may see what ---------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(client, rep):
    lead = owned_lead(rep)
    for url in (reverse("my-leads"), reverse("lead-page", args=[lead.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={url}"


def test_rep_sees_own_open_leads_most_urgent_first_and_not_others(client, rep, outsider):
    later = owned_lead(rep, due_in=dt.timedelta(minutes=50), company="Later AG")
    no_sla = owned_lead(rep, company="No Clock AG")
    sooner = owned_lead(rep, due_in=dt.timedelta(minutes=5), company="Sooner AG")
    breached = owned_lead(rep, due_in=dt.timedelta(minutes=-3), company="Late AG")
    # Touched long ago: its old due time no longer makes it urgent.
    touched = owned_lead(rep, due_in=dt.timedelta(hours=-30), company="Touched AG", status=Lead.Status.WORKING)
    LeadSla.objects.filter(lead=touched).update(touched_at=timezone.now() - dt.timedelta(hours=29), state="met")
    owned_lead(rep, status=Lead.Status.DISQUALIFIED, company="Closed AG")
    theirs = owned_lead(outsider, due_in=dt.timedelta(minutes=1), company="Theirs AG")
    client.force_login(rep.user)

    response = client.get(reverse("my-leads"))

    assert response.status_code == 200
    assert [row.lead for row in response.context["rows"]] == [breached, sooner, later, no_sla, touched]
    page = response.content.decode()
    assert theirs.company not in page and "Closed AG" not in page
    # The clock is rendered by the server and ticks from data-due; overdue rows are marked red.
    assert 'data-due="' in page and "due in 4:" in page
    assert f'id="lead-{breached.pk}" class="lead aging-breached"' in page


def test_my_leads_filters_by_status_and_queue(client, rep):
    queue = QueueFactory(name="EMEA inbound")
    in_queue = owned_lead(rep, queue=queue, status=Lead.Status.ACCEPTED)
    owned_lead(rep, status=Lead.Status.ASSIGNED)
    client.force_login(rep.user)

    by_status = client.get(reverse("my-leads"), {"status": "accepted"})
    by_queue = client.get(reverse("my-leads"), {"queue": queue.pk})

    assert [row.lead for row in by_status.context["rows"]] == [in_queue]
    assert [row.lead for row in by_queue.context["rows"]] == [in_queue]


def test_outsider_gets_404_on_the_lead_page_and_every_action(client, rep, outsider):
    lead = owned_lead(rep, due_in=dt.timedelta(minutes=30))
    client.force_login(outsider.user)

    assert client.get(reverse("lead-page", args=[lead.pk])).status_code == 404
    for name in ACTIONS:
        response = client.post(reverse(name, args=[lead.pk]), {"kind": "call", "reason": "Not my region"})
        assert response.status_code == 404, name
    lead.refresh_from_db()
    assert lead.status == Lead.Status.ASSIGNED and lead.owner == rep
    assert not Touch.objects.exists()


def test_manager_of_the_team_and_revops_open_the_lead_page(client, rep, manager, revops):
    lead = owned_lead(rep, company="Acme Robotics AG", form_answers={"Team size": "40"}, page_history=["/pricing"])
    lead.receipt = {"outcome": "assigned", "routing": {"summary": "Round robin in EMEA inbound: rep's turn."}}
    lead.save()

    for user in (manager, revops, rep.user):
        client.force_login(user)
        response = client.get(reverse("lead-page", args=[lead.pk]))
        assert response.status_code == 200
        page = response.content.decode()
        assert "Acme Robotics AG" in page and "Team size" in page and "/pricing" in page
        assert "Why this lead is yours" in page and "Round robin in EMEA inbound" in page


def test_a_rep_cannot_open_another_reps_lead(client, rep, outsider):
    lead = owned_lead(outsider)
    client.force_login(rep.user)

    assert client.get(reverse("lead-page", args=[lead.pk])).status_code == 404


# --- One-click actions --------------------------------------------------------------------------------


def test_a_touch_from_the_page_stops_the_clock_and_shows_on_the_page(client, rep):
    lead = owned_lead(rep, due_in=dt.timedelta(minutes=20))
    client.force_login(rep.user)

    response = client.post(reverse("lead-touch", args=[lead.pk]), {"kind": "call"}, follow=True)

    assert response.status_code == 200
    lead.refresh_from_db()
    assert lead.sla.state == LeadSla.State.MET
    assert lead.status == Lead.Status.WORKING
    touch = Touch.objects.get(lead=lead)
    assert touch.kind == "call" and touch.by == rep.user
    assert "Call logged." in messages_of(response)
    assert 'id="touches"' in response.content.decode() and "Call ·" in response.content.decode()


def test_a_touch_dated_before_the_lead_was_assigned_is_refused_on_the_page(client, rep):
    lead = owned_lead(rep, due_in=dt.timedelta(minutes=-10))
    client.force_login(rep.user)

    response = client.post(
        reverse("lead-touch", args=[lead.pk]), {"kind": "call", "at": "1999-01-01T09:00"}, follow=True
    )

    assert response.status_code == 200
    assert "Not logged: A touch cannot be before the lead's current assignment started" in messages_of(response)
    assert not Touch.objects.filter(lead=lead).exists()
    lead.sla.refresh_from_db()
    assert lead.sla.touched_at is None


def test_a_touch_dated_in_the_future_is_refused_on_the_page(client, rep):
    lead = owned_lead(rep, due_in=dt.timedelta(minutes=20))
    client.force_login(rep.user)
    # Typed in the rep's own zone, as the page says.
    later = f"{timezone.localtime(timezone.now() + dt.timedelta(hours=1), ZoneInfo(rep.time_zone)):%Y-%m-%dT%H:%M}"

    response = client.post(reverse("lead-touch", args=[lead.pk]), {"kind": "email", "at": later}, follow=True)

    assert "Not logged: A touch cannot be more than 2 minutes in the future." in messages_of(response)
    assert not Touch.objects.filter(lead=lead).exists()


def test_a_call_logged_on_the_page_an_hour_later_shows_as_logged_late(client, rep):
    # The rep called at once but logs the call an hour later, giving its time: the clock stops at the call,
    # and the history says when it was written down.
    with time_machine.travel(timezone.now() - dt.timedelta(hours=1), tick=False):
        lead = owned_lead(rep, due_in=dt.timedelta(minutes=30))
        called = timezone.now() + dt.timedelta(minutes=2)
    client.force_login(rep.user)
    # The rep types the time in their own zone and reads the page in it.
    berlin = ZoneInfo(rep.time_zone)

    response = client.post(
        reverse("lead-touch", args=[lead.pk]),
        {"kind": "call", "at": timezone.localtime(called, berlin).strftime("%Y-%m-%dT%H:%M")},
        follow=True,
    )

    assert "Call logged." in messages_of(response)
    touch = Touch.objects.get(lead=lead)
    assert touch.logged_late and touch.at == called.replace(second=0, microsecond=0)
    assert LeadSla.objects.get(lead=lead).state == LeadSla.State.MET
    logged = timezone.localtime(touch.created_at, berlin)
    assert f"logged late at {logged:%Y-%m-%d %H:%M %Z}" in response.content.decode()


@pytest.mark.parametrize(
    ("action", "data", "expected"),
    [
        ("lead-accept", {}, Lead.Status.ACCEPTED),
        ("lead-disqualify", {"reason": "Student, no budget"}, Lead.Status.DISQUALIFIED),
        ("lead-nurture", {}, Lead.Status.NURTURE),
        ("lead-convert", {"reason": "Signed the pilot"}, Lead.Status.CONVERTED),
    ],
)
def test_status_actions_change_the_lead_once_and_a_double_submit_is_harmless(client, rep, action, data, expected):
    lead = owned_lead(rep)
    client.force_login(rep.user)

    first = client.post(reverse(action, args=[lead.pk]), data, follow=True)
    lead.refresh_from_db()
    changed_at = lead.updated_at
    second = client.post(reverse(action, args=[lead.pk]), data, follow=True)

    lead.refresh_from_db()
    assert lead.status == expected
    assert lead.updated_at == changed_at
    assert first.status_code == second.status_code == 200
    assert "Nothing" in messages_of(second)
    if action == "lead-disqualify":
        # Who closed it, when and why, on the lead.
        assert (lead.closed_by, lead.close_reason) == (rep.user, "Student, no budget")
        assert lead.closed_at == changed_at


def test_disqualify_needs_a_reason(client, rep):
    lead = owned_lead(rep)
    client.force_login(rep.user)

    response = client.post(reverse("lead-disqualify", args=[lead.pk]), {"reason": "  "}, follow=True)

    lead.refresh_from_db()
    assert lead.status == Lead.Status.ASSIGNED
    assert "Say why" in messages_of(response)


def two_rep_queue(rep):
    """A round-robin queue of ``rep`` then a colleague, that a rule sends every lead to."""
    colleague = RepFactory(user=UserFactory(username="colleague"), team=rep.team, time_zone="UTC")
    rep.time_zone = "UTC"
    rep.save()
    queue = QueueFactory(name="Inbound")
    QueueMembershipFactory(queue=queue, rep=rep, position=0)
    QueueMembershipFactory(queue=queue, rep=colleague, position=1)
    Rule.objects.create(name="All to Inbound", position=1, action=Rule.Action.QUEUE, queue=queue)
    return queue, colleague


def test_not_mine_reroutes_to_someone_else_with_the_reason_in_the_history(
    client, rep, django_capture_on_commit_callbacks
):
    _queue, colleague = two_rep_queue(rep)
    lead = Lead.objects.create(raw_payload={"email": "buyer@prospect.example", "company": "Prospect AG"})
    leads_route(lead_ids=[lead.pk])
    lead.refresh_from_db()
    assert lead.owner == rep
    client.force_login(rep.user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("lead-not-mine", args=[lead.pk]), {"reason": "Existing customer of Bob's"})

    # The rep no longer sees the lead, so they land on their list; the lead waits for a worker to route it.
    assert response.status_code == 302 and response["Location"] == reverse("my-leads")
    lead.refresh_from_db()
    assert lead.owner is None and lead.status == Lead.Status.RECEIVED
    leads_route(lead_ids=[lead.pk])  # What the worker does with the task the page sent.
    lead.refresh_from_db()
    assert lead.owner == colleague and lead.status == Lead.Status.ASSIGNED
    sent_back = Assignment.objects.get(lead=lead, rep=rep)
    assert sent_back.reason == Assignment.Reason.NOT_MINE
    assert sent_back.note == "Existing customer of Bob's"
    assert sent_back.ended_at is not None
    assert lead.sla.previous_owner_ids == [rep.pk]
    # The new owner's page says why the lead came to them second.
    client.force_login(colleague.user)
    page = client.get(reverse("lead-page", args=[lead.pk])).content.decode()
    assert "Sent back by rep" in page and "Existing customer of Bob&#x27;s" in page


def test_not_mine_needs_a_reason_and_a_double_submit_routes_once(client, rep, django_capture_on_commit_callbacks):
    two_rep_queue(rep)
    lead = Lead.objects.create(raw_payload={"email": "buyer@prospect.example"})
    leads_route(lead_ids=[lead.pk])
    client.force_login(rep.user)
    url = reverse("lead-not-mine", args=[lead.pk])

    client.post(url, {"reason": ""})
    lead.refresh_from_db()
    assert lead.owner == rep

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"reason": "Wrong region"})
    leads_route(lead_ids=[lead.pk])  # The worker routes it again, to the colleague.
    with django_capture_on_commit_callbacks(execute=True):
        second = client.post(url, {"reason": "Wrong region"})

    assert second.status_code == 404  # No longer theirs.
    assert Assignment.objects.filter(lead=lead, reason=Assignment.Reason.NOT_MINE).count() == 1
    assert Assignment.objects.filter(lead=lead).count() == 2


# --- Take next ----------------------------------------------------------------------------------------


def test_take_next_assigns_the_oldest_waiting_lead(client, rep):
    queue = QueueFactory(name="Shared")
    QueueMembershipFactory(queue=queue, rep=rep)
    newer = queued_lead(queue, received_minutes_ago=5, company="Newer AG")
    oldest = queued_lead(queue, received_minutes_ago=50, company="Oldest AG")
    client.force_login(rep.user)

    listing = client.get(reverse("my-leads"))
    assert [(q.pk, q.waiting) for q in listing.context["queues"]] == [(queue.pk, 2)]
    response = client.post(reverse("take-next", args=[queue.pk]))

    assert response.status_code == 302 and response["Location"] == reverse("lead-page", args=[oldest.pk])
    oldest.refresh_from_db()
    newer.refresh_from_db()
    assert oldest.owner == rep and oldest.status == Lead.Status.ASSIGNED
    assert newer.status == Lead.Status.QUEUED and newer.owner is None
    held, taken = Assignment.objects.filter(lead=oldest).order_by("pk")
    assert held.rep is None and held.ended_at is not None
    assert taken.rep == rep and taken.reason == Assignment.Reason.ROUTED and taken.note == "taken from the queue"
    assert taken.task.rep == rep  # The rep's to-do, as routing creates it.
    assert LeadSla.objects.filter(lead=oldest).exists()  # The first-touch clock started (no policy: no SLA).


def test_take_next_respects_capacity(client, rep):
    rep.max_open_leads = 1
    rep.save()
    owned_lead(rep)
    queue = QueueFactory(name="Shared")
    QueueMembershipFactory(queue=queue, rep=rep)
    waiting = queued_lead(queue, received_minutes_ago=5)
    client.force_login(rep.user)

    response = client.post(reverse("take-next", args=[queue.pk]), follow=True)

    assert "at capacity" in messages_of(response)
    waiting.refresh_from_db()
    assert waiting.status == Lead.Status.QUEUED and waiting.owner is None


def test_take_next_with_nothing_waiting_says_so(client, rep):
    queue = QueueFactory(name="Shared")
    QueueMembershipFactory(queue=queue, rep=rep)
    client.force_login(rep.user)

    response = client.post(reverse("take-next", args=[queue.pk]), follow=True)

    assert "Nothing is waiting" in messages_of(response)


def test_take_next_from_a_queue_the_rep_is_not_in_is_404(client, rep, outsider):
    queue = QueueFactory(name="Theirs")
    QueueMembershipFactory(queue=queue, rep=outsider)
    queued_lead(queue, received_minutes_ago=5)
    client.force_login(rep.user)

    assert client.post(reverse("take-next", args=[queue.pk])).status_code == 404


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_four_reps_taking_from_three_waiting_leads_get_three_distinct_leads_and_one_none():
    queue = QueueFactory(name="Shared")
    reps = [RepFactory(user=UserFactory(username=f"taker-{n}"), time_zone="UTC") for n in range(4)]
    for rep in reps:
        QueueMembershipFactory(queue=queue, rep=rep)
    leads = [queued_lead(queue, received_minutes_ago=10 - n) for n in range(3)]
    barrier = threading.Barrier(len(reps))
    results: list[Lead | None] = []
    errors: list[BaseException] = []

    def take(rep) -> None:
        try:
            barrier.wait()
            results.append(lead_take_next(rep=rep, queue=queue))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(rep,)) for rep in reps]
    for thread in threads:
        thread.start()
    join_all(threads)

    assert errors == []
    taken = [lead.pk for lead in results if lead is not None]
    assert sorted(taken) == sorted(lead.pk for lead in leads)
    assert results.count(None) == 1
    # Every lead has exactly one owner period, with a distinct rep.
    owners = list(Assignment.objects.filter(rep__isnull=False).values_list("lead_id", "rep_id"))
    assert len(owners) == 3 and len({lead for lead, _ in owners}) == 3 and len({rep for _, rep in owners}) == 3
    assert not Queue.objects.get(pk=queue.pk).leads.filter(status=Lead.Status.QUEUED).exists()


@pytest.mark.parametrize(
    ("seconds", "label"),
    [
        (750, "due in 12:30"),
        (7530, "due in 2:05:30"),
        (-190, "overdue 3:10"),
        (-(3 * 86400 + 4 * 3600 + 59), "overdue 3 d 4 h"),
    ],
)
def test_the_clock_reads_in_minutes_hours_or_days(seconds, label):
    from sla.lead_views import countdown_label

    assert countdown_label(seconds) == label
