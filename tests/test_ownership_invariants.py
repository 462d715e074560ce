"""One test walks a lead book through every kind of ownership change and checks, after each, what the
ownership layer promises (routing/ownership.py): at most one open assignment per lead, and the owner's
for an open lead; one open task, the current owner's, for an untouched open lead and none for a closed
one; and
load counters equal to a count from scratch; a closed lead has no ticking clock and no open escalation."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from routing.dispatch import leads_route, queued_leads_distribute
from routing.models import Assignment, Lead, Queue, RepLoad, RepTask, Rule
from routing.ownership import loads_recount
from routing.reassign import leads_reassign, leads_reroute, rep_departure_apply
from routing.services import lead_convert, lead_disqualify, lead_not_mine, lead_nurture, lead_reopen, lead_take_next
from sla.models import Escalation, LeadSla, Touch
from sla.services import touch_log
from sla.sweep import escalations_sweep
from tests.factories import QueueFactory, QueueMembershipFactory, RepFactory, UserFactory
from tests.sla.test_sweep import ladder_policy

# Monday 30 November 2026, 10:00 UTC.
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def assert_ownership_holds() -> None:
    assert loads_recount(now=timezone.now()) == []
    for lead in Lead.objects.all():
        open_periods = list(Assignment.objects.filter(lead=lead, ended_at__isnull=True))
        open_tasks = [task.rep_id for task in RepTask.objects.filter(lead=lead, done_at__isnull=True)]
        assert len(open_periods) <= 1, f"lead {lead.pk} has {len(open_periods)} open assignments"
        if lead.status in Lead.OPEN_STATUSES:
            assert [period.rep_id for period in open_periods] == [lead.owner_id], f"lead {lead.pk}"
            # The first touch completes the follow-up task (a later new owner gets one again); an untouched
            # lead's owner always has exactly one.
            touched = Touch.objects.filter(lead=lead).exists()
            assert open_tasks in ([[], [lead.owner_id]] if touched else [[lead.owner_id]]), f"lead {lead.pk}"
        else:
            assert open_tasks == [], f"lead {lead.pk} ({lead.status}) still has a task"
        if lead.status in Lead.CLOSE_STATUSES:
            assert lead.closed_at is not None, f"lead {lead.pk} closed without a record"
            clock = LeadSla.objects.filter(lead=lead).first()
            assert clock is None or clock.touched_at is not None or clock.state == LeadSla.State.STOPPED
            assert clock is None or clock.next_step_at is None, f"lead {lead.pk} still climbs the ladder"
            assert not Escalation.objects.filter(lead=lead, status__in=["open", "acknowledged"]).exists()


@pytest.mark.django_db
def test_every_kind_of_ownership_change_keeps_assignments_tasks_and_load_counters_in_step(
    django_capture_on_commit_callbacks,
):
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    queue = QueueFactory(name="Inbound")
    boss = UserFactory(username="boss", is_staff=True)
    reps = []
    for position, name in enumerate(("anna", "ben", "cara", "dan")):
        rep = RepFactory(user=UserFactory(username=name), time_zone="UTC", manager=boss, max_open_leads=20)
        QueueMembershipFactory(queue=queue, rep=rep, position=position)
        reps.append(rep)
    anna, ben, cara, dan = reps
    Rule.objects.create(name="All to Inbound", position=1, action=Rule.Action.QUEUE, queue=queue)
    ladder_policy(max_reassignments=1)

    def at(minutes: float) -> time_machine.travel:
        return time_machine.travel(T0 + minutes * MINUTE, tick=False)

    with at(0), django_capture_on_commit_callbacks(execute=True):
        leads = [
            Lead.objects.create(raw_payload={"email": f"buyer{n}@prospect{n}.example", "company": f"Prospect {n}"})
            for n in range(8)
        ]
        leads_route(lead_ids=[lead.pk for lead in leads])
    assert RepLoad.objects.get(rep=anna).open_leads == 2
    assert_ownership_holds()

    def fresh(n: int) -> Lead:
        return Lead.objects.get(pk=leads[n].pk)

    with at(1), django_capture_on_commit_callbacks(execute=True):
        leads_reassign(leads=[fresh(0)], to_rep=cara, by=boss)  # anna's first lead, by hand
    assert_ownership_holds()

    with at(1.5):
        touch_log(lead=fresh(1), kind=Touch.Kind.CALL, at=None, by=fresh(1).owner.user)
        lead_disqualify(lead=fresh(2), by=fresh(2).owner.user, reason="Student")
        lead_nurture(lead=fresh(3), by=fresh(3).owner.user)
        lead_convert(lead=fresh(5), by=fresh(5).owner.user, reason="Pilot signed")
    assert_ownership_holds()

    # Closed leads reopen for their owners: counters, history and tasks follow.
    with at(1.7), django_capture_on_commit_callbacks(execute=True):
        assert lead_reopen(lead=fresh(2), by=boss) is True
        assert lead_reopen(lead=fresh(5), by=fresh(5).owner.user) is True
    assert fresh(2).status == Lead.Status.ACCEPTED
    assert_ownership_holds()
    with at(1.8):
        lead_disqualify(lead=fresh(5), by=fresh(5).owner.user, reason="Lost after all")
    assert_ownership_holds()

    with at(2), django_capture_on_commit_callbacks(execute=True):
        lead_not_mine(lead=fresh(4), by=fresh(4).owner.user, reason="Existing customer of another team")
    assert_ownership_holds()
    with at(2):
        leads_route(lead_ids=[leads[4].pk])
    assert fresh(4).owner is not None
    assert_ownership_holds()

    # The ladder: untouched leads are reassigned 7 minutes in, then moved to the catch-all at 10.
    with at(8), django_capture_on_commit_callbacks(execute=True):
        escalations_sweep()
    assert Assignment.objects.filter(reason=Assignment.Reason.ESCALATION).exists()
    assert_ownership_holds()
    with at(20), django_capture_on_commit_callbacks(execute=True):
        escalations_sweep()
    held = Lead.objects.filter(status=Lead.Status.QUEUED)
    assert held.exists()
    assert_ownership_holds()

    # Someone takes a held lead from its queue; the sweep hands out the rest.
    with at(21), django_capture_on_commit_callbacks(execute=True):
        waiting = held.first()
        QueueMembershipFactory(queue=waiting.queue, rep=dan, position=9)
        assert lead_take_next(rep=dan, queue=waiting.queue) is not None
    assert_ownership_holds()
    with at(21), django_capture_on_commit_callbacks(execute=True):
        queued_leads_distribute()
    assert_ownership_holds()

    # A rep leaves: their open leads go to the others.
    with at(22), django_capture_on_commit_callbacks(execute=True):
        plan = rep_departure_apply(rep=ben, by=boss)
    assert plan.leads or not Lead.objects.filter(owner=ben, status__in=Lead.OPEN_STATUSES).exists()
    assert_ownership_holds()
    # RevOps send every lead through the rules again from the admin: open ones move on round robin, closed ones stay.
    with at(23), django_capture_on_commit_callbacks(execute=True):
        rerouted = leads_reroute(leads=list(Lead.objects.all()), by=boss)
    assert rerouted.moved and rerouted.skipped
    assert_ownership_holds()
    # A lead closed outside the layer (by hand in the database) is found by the check, and fixed.
    Lead.objects.filter(pk=Lead.objects.filter(status__in=Lead.OPEN_STATUSES).first().pk).update(status="closed")
    assert loads_recount(now=timezone.now()) != []
    loads_recount(now=timezone.now(), fix=True)
    assert loads_recount(now=timezone.now()) == []
