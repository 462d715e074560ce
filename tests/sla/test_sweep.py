"""The escalation sweep: the ladder fires each step once, in order, and only for untouched leads.

Time is walked forward with time-machine. The scenario policy has a 5-minute
first-touch target on a 24/7 calendar and four steps: remind the rep at 50%
(2.5 min), alert the manager at the breach (5 min), reassign 2 minutes after
it (7 min) and move the lead to a queue 5 minutes after it (10 min).
"""

import gc
import sys
import threading
from datetime import UTC, datetime, time, timedelta

import factory
import pytest
import time_machine
from django.core import mail
from django.db import connection, transaction
from factory.django import DjangoModelFactory

from routing.models import Assignment, Lead, Notification, Queue, RepTask
from routing.notify import notifications_send
from sla import sweep as sweep_module
from sla.models import BusinessCalendar, CalendarHours, Escalation, EscalationStep, LeadSla, SlaPolicy, Touch
from sla.services import sla_clocks_start
from sla.sweep import claim_queryset, escalations_sweep
from tests.factories import (
    AssignmentFactory,
    LeadFactory,
    OutOfOfficeFactory,
    QueueFactory,
    QueueMembershipFactory,
    RepFactory,
    UserFactory,
)
from tests.helpers import backends, helper_takes_part, run_together

# Monday 30 November 2026, 10:00 UTC.
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
Action = EscalationStep.Action
When = EscalationStep.When


class SlaPolicyFactory(DjangoModelFactory):
    class Meta:
        model = SlaPolicy

    name = factory.Sequence(lambda n: f"Policy {n}")
    is_default = True
    first_touch_minutes = 5


class EscalationStepFactory(DjangoModelFactory):
    class Meta:
        model = EscalationStep

    policy = factory.SubFactory(SlaPolicyFactory)
    position = factory.Sequence(lambda n: n + 1)
    when = When.AFTER_DUE
    minutes_after_due = 0
    action = Action.REMIND_REP


def ladder_policy(**fields):
    policy = SlaPolicyFactory(**fields)
    EscalationStepFactory(policy=policy, position=1, when=When.PERCENT_OF_TARGET, percent=50, action=Action.REMIND_REP)
    EscalationStepFactory(policy=policy, position=2, minutes_after_due=0, action=Action.ALERT_MANAGER)
    EscalationStepFactory(policy=policy, position=3, minutes_after_due=2, action=Action.REASSIGN)
    EscalationStepFactory(policy=policy, position=4, minutes_after_due=5, action=Action.MOVE_TO_QUEUE)
    return policy


def inbound_queue(names, **queue_fields):
    """A round-robin queue of always-working UTC reps, in this order; plus the catch-all."""
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    queue = QueueFactory(name="Inbound", **queue_fields)
    manager = UserFactory(username="boss")
    reps = []
    for position, name in enumerate(names):
        rep = RepFactory(user=UserFactory(username=name), time_zone="UTC", manager=manager, max_open_leads=20)
        QueueMembershipFactory(queue=queue, rep=rep, position=position)
        reps.append(rep)
    return queue, reps


def assigned_lead(rep, queue, *, at=T0):
    """A lead routed to ``rep`` at ``at`` with its clock started by the SLA service."""
    lead = LeadFactory(status=Lead.Status.ASSIGNED, owner=rep, queue=queue)
    AssignmentFactory(lead=lead, rep=rep, queue=queue, assigned_at=at)
    with time_machine.travel(at, tick=False):
        sla_clocks_start(leads=[lead], now=at)
    return lead


def deliver_sla_notices() -> int:
    """What the notify worker does with the tasks a sweep enqueues: send the reminders and alerts still pending."""
    pending = Notification.objects.filter(escalation_id__isnull=False, status=Notification.Status.PENDING)
    return notifications_send(notification_ids=list(pending.values_list("pk", flat=True)))


@pytest.fixture
def sweep_at(django_capture_on_commit_callbacks):
    """Sweep at ``at``, then deliver its notices as the notify worker would."""

    def sweep(at, **options):
        with time_machine.travel(at, tick=False):
            with django_capture_on_commit_callbacks(execute=True):
                report = escalations_sweep(**options)
            if report.notices:
                deliver_sla_notices()
        return report

    return sweep


def fired(lead):
    return list(Escalation.objects.filter(lead=lead).order_by("fired_at", "pk").values_list("action", flat=True))


@pytest.mark.django_db
def test_walking_the_clock_fires_each_step_once_and_in_order(sweep_at):
    # The next reps in the rotation: Bea is at capacity, Carl out of office, so Dana takes the lead.
    queue, (ann, bea, carl, dana) = inbound_queue(["ann", "bea", "carl", "dana"])
    overflow = QueueFactory(name="Overflow")
    Queue.objects.filter(pk=queue.pk).update(fallback=overflow, rr_pointer=1)
    bea.max_open_leads = 1
    bea.save()
    LeadFactory(status=Lead.Status.ASSIGNED, owner=bea, queue=queue)
    OutOfOfficeFactory(rep=carl, starts_at=T0 - timedelta(days=1), ends_at=T0 + timedelta(days=1))
    ladder_policy()
    lead = assigned_lead(ann, queue)

    assert sweep_at(T0 + 2 * MINUTE).total_fired == 0
    # 2.5 minutes: the reminder to Ann.
    report = sweep_at(T0 + 150 * MINUTE / 60)
    assert report.fired == {"remind_rep": 1}
    assert [(m.to, m.subject.startswith("Reminder: first touch due")) for m in mail.outbox] == [
        (["ann@example.com"], True)
    ]
    reminder = Escalation.objects.get(lead=lead)
    assert reminder.rep == ann and reminder.notified == ann.user
    assert reminder.reason == "No first touch 2.5 business minutes after assignment (50% of the 5-minute target)"

    # 5 minutes, the breach: Ann's manager hears about it.
    assert sweep_at(T0 + 5 * MINUTE).fired == {"alert_manager": 1}
    assert mail.outbox[1].to == ["boss@example.com"]
    assert Escalation.objects.get(lead=lead, action=Action.ALERT_MANAGER).notified.username == "boss"

    # 7 minutes: reassigned past Bea (at capacity) and Carl (away) to Dana.
    assert sweep_at(T0 + 7 * MINUTE).fired == {"reassign": 1}
    lead.refresh_from_db()
    assert lead.owner == dana and lead.status == Lead.Status.ASSIGNED
    old, new = Assignment.objects.filter(lead=lead).order_by("assigned_at")
    assert old.rep == ann and old.ended_at == T0 + 7 * MINUTE
    assert new.rep == dana and new.reason == Assignment.Reason.ESCALATION and new.ended_at is None
    assert "reassigned from ann to dana" in new.note
    assert Notification.objects.filter(assignment=new).exists() and RepTask.objects.filter(assignment=new).exists()
    assert Escalation.objects.get(lead=lead, action=Action.REASSIGN).to_rep == dana
    assert Queue.objects.get(pk=queue.pk).rr_pointer == 4
    # Dana's clock starts now; the steps that fired do not fire again, so the next one is the move.
    clock = LeadSla.objects.get(lead=lead)
    assert (clock.reassignments, clock.previous_owner_ids) == (1, [ann.pk])
    assert clock.started_at == T0 + 7 * MINUTE and clock.due_at == T0 + 12 * MINUTE
    assert clock.next_step.action == Action.MOVE_TO_QUEUE and clock.next_step_at == T0 + 17 * MINUTE

    assert sweep_at(T0 + 16 * MINUTE).total_fired == 0
    # 5 minutes after Dana's due time: the lead leaves her and waits in the queue's fallback.
    assert sweep_at(T0 + 17 * MINUTE).fired == {"move_to_queue": 1}
    lead.refresh_from_db()
    assert (lead.status, lead.owner, lead.queue) == (Lead.Status.QUEUED, None, overflow)
    held = Assignment.objects.get(lead=lead, ended_at__isnull=True)
    assert held.rep is None and held.queue == overflow and held.reason == Assignment.Reason.ESCALATION
    assert Escalation.objects.get(lead=lead, action=Action.MOVE_TO_QUEUE).to_queue == overflow
    assert LeadSla.objects.get(lead=lead).next_step is None

    assert fired(lead) == ["remind_rep", "alert_manager", "reassign", "move_to_queue"]
    assert sweep_at(T0 + 60 * MINUTE).total_fired == 0
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_a_late_sweep_fires_only_the_latest_due_step(sweep_at):
    # The sweep was down for eight minutes: the reminder and the alert are stale, the reassignment is what counts.
    queue, (ann, bea) = inbound_queue(["ann", "bea"])
    ladder_policy()
    lead = assigned_lead(ann, queue)

    report = sweep_at(T0 + 8 * MINUTE)

    assert report.fired == {"reassign": 1} and report.skipped == 2
    assert fired(lead) == ["reassign"]
    assert Lead.objects.get(pk=lead.pk).owner == bea
    assert mail.outbox == []
    # Bea's ladder starts afresh with her clock: she is reminded at half her target.
    clock = LeadSla.objects.get(lead=lead)
    assert clock.next_step.action == Action.REMIND_REP and clock.next_step_at == T0 + 8 * MINUTE + 150 * MINUTE / 60


@pytest.mark.django_db
def test_after_downtime_the_ladder_keeps_its_spacing_from_the_step_that_fired(sweep_at):
    # Remind at 2.5 minutes, alert at the breach (5), move to a queue 30 minutes after it (35).
    queue, (ann,) = inbound_queue(["ann"])
    policy = SlaPolicyFactory()
    EscalationStepFactory(policy=policy, position=1, when=When.PERCENT_OF_TARGET, percent=50, action=Action.REMIND_REP)
    EscalationStepFactory(policy=policy, position=2, minutes_after_due=0, action=Action.ALERT_MANAGER)
    EscalationStepFactory(policy=policy, position=3, minutes_after_due=30, action=Action.MOVE_TO_QUEUE)
    lead = assigned_lead(ann, queue)

    # The sweep is back at 12 minutes: only the alert fires, and the move keeps its 30 minutes after it.
    assert sweep_at(T0 + 12 * MINUTE).fired == {"alert_manager": 1}
    assert [m.to for m in mail.outbox] == [["boss@example.com"]]
    clock = LeadSla.objects.get(lead=lead)
    assert clock.next_step.action == Action.MOVE_TO_QUEUE and clock.next_step_at == T0 + 42 * MINUTE
    assert sweep_at(T0 + 35 * MINUTE).total_fired == 0
    assert sweep_at(T0 + 42 * MINUTE).fired == {"move_to_queue": 1}
    assert fired(lead) == ["alert_manager", "move_to_queue"]


@pytest.mark.django_db
def test_steps_the_ladder_puts_at_one_instant_all_fire_after_downtime(sweep_at):
    queue, (ann,) = inbound_queue(["ann"])
    policy = SlaPolicyFactory()
    EscalationStepFactory(policy=policy, position=1, when=When.PERCENT_OF_TARGET, percent=50, action=Action.REMIND_REP)
    EscalationStepFactory(policy=policy, position=2, minutes_after_due=0, action=Action.REMIND_REP)
    EscalationStepFactory(policy=policy, position=3, minutes_after_due=0, action=Action.ALERT_MANAGER)
    lead = assigned_lead(ann, queue)

    report = sweep_at(T0 + 20 * MINUTE)

    # The early reminder is stale; the reminder and the alert at the breach both stand.
    assert report.fired == {"remind_rep": 1, "alert_manager": 1} and report.skipped == 1
    assert fired(lead) == ["remind_rep", "alert_manager"]
    assert sorted(Escalation.objects.filter(lead=lead).values_list("step__position", flat=True)) == [2, 3]


@pytest.mark.django_db
def test_sweeping_twice_at_the_same_instant_fires_nothing_twice(sweep_at):
    queue, (ann, _bea) = inbound_queue(["ann", "bea"])
    ladder_policy()
    lead = assigned_lead(ann, queue)

    first = sweep_at(T0 + 7 * MINUTE)
    second = sweep_at(T0 + 7 * MINUTE)

    assert first.total_fired == 1 and second.total_fired == 0
    assert fired(lead) == ["reassign"]
    assert Assignment.objects.filter(lead=lead).count() == 2


@pytest.mark.django_db
def test_the_cycle_collector_waits_while_a_sweep_batch_fires_and_runs_again_after_it(sweep_at, monkeypatch):
    queue, (ann, _bea) = inbound_queue(["ann", "bea"])
    ladder_policy()
    lead = assigned_lead(ann, queue)
    seen = []
    write = sweep_module._write

    def watched(*args, **kwargs):
        seen.append(gc.isenabled())
        return write(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "_write", watched)
    report = sweep_at(T0 + 7 * MINUTE)

    assert report.total_fired == 1 and fired(lead) == ["reassign"]
    assert seen == [False]
    assert gc.isenabled()


@pytest.mark.django_db
def test_a_touched_lead_stops_escalating(sweep_at):
    queue, (ann, _bea) = inbound_queue(["ann", "bea"])
    ladder_policy()
    touched = assigned_lead(ann, queue)
    logged = assigned_lead(ann, queue)
    sweep_at(T0 + 3 * MINUTE)
    # One touch is stamped on the clock; the other is only logged so far.
    LeadSla.objects.filter(lead=touched).update(touched_at=T0 + 4 * MINUTE)
    Touch.objects.create(lead=logged, kind=Touch.Kind.CALL, at=T0 + 4 * MINUTE)

    report = sweep_at(T0 + 30 * MINUTE)

    assert report.total_fired == 0
    assert fired(touched) == fired(logged) == ["remind_rep"]
    assert Lead.objects.get(pk=logged.pk).owner == ann
    assert LeadSla.objects.get(lead=logged).next_step is None
    assert sweep_at(T0 + 31 * MINUTE).claimed == 0


@pytest.mark.django_db
def test_reassignment_never_returns_a_lead_to_a_previous_owner(sweep_at):
    # Two reassign steps, two reps: after Ann → Bea nobody else is left.
    queue, (ann, bea) = inbound_queue(["ann", "bea"])
    policy = SlaPolicyFactory()
    EscalationStepFactory(policy=policy, position=1, minutes_after_due=0, action=Action.REASSIGN)
    EscalationStepFactory(policy=policy, position=2, minutes_after_due=2, action=Action.REASSIGN)
    lead = assigned_lead(ann, queue)

    sweep_at(T0 + 5 * MINUTE)
    assert Lead.objects.get(pk=lead.pk).owner == bea
    # Bea's clock restarted at 5: due at 10, the second reassign at 12.
    assert sweep_at(T0 + 12 * MINUTE).fired == {"reassign": 1}

    assert Lead.objects.get(pk=lead.pk).owner == bea
    second = Escalation.objects.get(lead=lead, step__position=2)
    assert "nobody else eligible" in second.reason and second.to_rep is None and second.rep == bea
    assert Assignment.objects.filter(lead=lead).count() == 2


@pytest.mark.django_db
def test_max_reassignments_is_respected(sweep_at):
    queue, (ann, bea, _carl) = inbound_queue(["ann", "bea", "carl"])
    policy = SlaPolicyFactory(max_reassignments=1)
    EscalationStepFactory(policy=policy, position=1, minutes_after_due=0, action=Action.REASSIGN)
    EscalationStepFactory(policy=policy, position=2, minutes_after_due=2, action=Action.REASSIGN)
    lead = assigned_lead(ann, queue)

    sweep_at(T0 + 5 * MINUTE)
    sweep_at(T0 + 12 * MINUTE)

    assert Lead.objects.get(pk=lead.pk).owner == bea
    assert LeadSla.objects.get(lead=lead).reassignments == 1
    second = Escalation.objects.get(lead=lead, step__position=2)
    assert "nobody else eligible: already reassigned 1 times" in second.reason


@pytest.mark.django_db
def test_a_reminder_outside_the_reps_business_hours_waits_for_the_next_opening(sweep_at):
    queue, (ann,) = inbound_queue(["ann"])
    calendar = BusinessCalendar.objects.create(name="Ann's week", rep=ann, time_zone="UTC")
    for weekday in range(5):
        CalendarHours.objects.create(calendar=calendar, weekday=weekday, start=time(9), end=time(17))
    policy = SlaPolicyFactory()
    remind = EscalationStepFactory(policy=policy, position=1, minutes_after_due=0, action=Action.REMIND_REP)
    lead = LeadFactory(status=Lead.Status.ASSIGNED, owner=ann, queue=queue)
    # A clock counted around the clock (no calendar of its own), due at 17:05 Monday, after Ann's day.
    monday_evening = datetime(2026, 11, 30, 17, 5, tzinfo=UTC)
    LeadSla.objects.create(
        lead=lead,
        policy=policy,
        started_at=monday_evening - 5 * MINUTE,
        due_at=monday_evening,
        next_step=remind,
        next_step_at=monday_evening,
    )

    report = sweep_at(monday_evening)

    assert report.total_fired == 0 and report.waiting == 1
    tuesday_morning = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert LeadSla.objects.get(lead=lead).next_step_at == tuesday_morning
    assert sweep_at(tuesday_morning - MINUTE).claimed == 0
    assert sweep_at(tuesday_morning).fired == {"remind_rep": 1}
    assert sweep_at(tuesday_morning + MINUTE).claimed == 0
    assert len(mail.outbox) == 1 and fired(lead) == ["remind_rep"]


@pytest.mark.django_db
def test_a_policy_that_notifies_at_any_hour_reminds_at_once(sweep_at):
    queue, (ann,) = inbound_queue(["ann"])
    calendar = BusinessCalendar.objects.create(name="Ann's week", rep=ann, time_zone="UTC")
    CalendarHours.objects.create(calendar=calendar, weekday=0, start=time(9), end=time(17))
    policy = SlaPolicyFactory(notify_outside_business_hours=True)
    remind = EscalationStepFactory(policy=policy, position=1, minutes_after_due=0, action=Action.REMIND_REP)
    lead = LeadFactory(status=Lead.Status.ASSIGNED, owner=ann, queue=queue)
    at = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    LeadSla.objects.create(
        lead=lead, policy=policy, started_at=at - 5 * MINUTE, due_at=at, next_step=remind, next_step_at=at
    )

    assert sweep_at(at).fired == {"remind_rep": 1}


@pytest.mark.django_db
def test_an_alert_goes_to_the_team_managers_when_the_rep_has_no_manager(sweep_at, team, manager):
    queue, (ann,) = inbound_queue(["ann"])
    ann.manager = None
    ann.team = team
    ann.save()
    policy = SlaPolicyFactory()
    EscalationStepFactory(policy=policy, position=1, minutes_after_due=0, action=Action.ALERT_MANAGER)
    lead = assigned_lead(ann, queue)

    sweep_at(T0 + 5 * MINUTE)

    assert Escalation.objects.get(lead=lead).notified == manager
    assert mail.outbox[0].to == [manager.email]


@pytest.mark.django_db
def test_the_idle_sweep_runs_a_bounded_number_of_queries(sweep_at, django_assert_max_num_queries):
    queue, (ann,) = inbound_queue(["ann"])
    ladder_policy()
    assigned_lead(ann, queue)

    # The claim, inside the batch's savepoint in this test's transaction.
    with django_assert_max_num_queries(3):
        report = sweep_at(T0 + MINUTE)
    assert report.claimed == 0


# --- PostgreSQL ------------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sweeps_racing_at_the_same_instant_fire_each_step_once():
    queue, reps = inbound_queue([f"rep{n}" for n in range(5)])
    ladder_policy()
    leads = [assigned_lead(reps[n % 5], queue) for n in range(30)]

    # Four sweeps race at each step's time: the reminders, the alerts, the reassignments.
    for minutes in (3, 5, 7):

        def sweep(minutes=minutes):
            with time_machine.travel(T0 + minutes * MINUTE, tick=False):
                escalations_sweep(batch_size=4)

        assert run_together(sweep, sweep, sweep, sweep) == []
        # A sweep that found the routing lock taken left its reassignments for its next run, as beat's would.
        with time_machine.travel(T0 + minutes * MINUTE, tick=False):
            escalations_sweep(batch_size=4)
    for lead in leads:
        assert fired(lead) == ["remind_rep", "alert_manager", "reassign"]
        assert Assignment.objects.filter(lead=lead).count() == 2
        assert Assignment.objects.filter(lead=lead, ended_at__isnull=True).count() == 1
        lead.refresh_from_db()
        assert lead.owner_id not in LeadSla.objects.get(lead=lead).previous_owner_ids
    deliver_sla_notices()
    assert len(mail.outbox) == 60


@pytest.fixture
def swept_by(monkeypatch):
    """Steps fired per thread name, both threads taking part (``helper_takes_part``)."""
    return helper_takes_part(
        monkeypatch, sweep_module, "_sweep_batch", helper="sweep-helper", done=lambda report: report.total_fired
    )


def sweep_until_done(at, **options):
    """Sweep at ``at`` as beat's runs would, until a run fires nothing and leaves nothing for later."""
    reports = []
    with time_machine.travel(at, tick=False):
        for _ in range(20):
            reports.append(escalations_sweep(**options))
            if not reports[-1].total_fired and not reports[-1].deferred:
                return reports
    raise AssertionError(f"the sweep never settled: {reports}")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_sweep_of_several_batches_runs_in_two_threads_and_fires_each_step_once(settings, swept_by):
    settings.LEADROUTER_ROUTING_THREADS = 2
    queue, reps = inbound_queue([f"rep{n}" for n in range(5)])
    ladder_policy()
    leads = [assigned_lead(reps[n % 5], queue) for n in range(40)]
    open_before = backends()
    switch_interval = sys.getswitchinterval()

    # The reminders: both threads fire batches of four.
    first = sweep_until_done(T0 + 3 * MINUTE, batch_size=4)[0]

    assert set(swept_by) == {"MainThread", "sweep-helper"}
    assert first.fired == {"remind_rep": 40}
    assert first.notices == 40
    assert len(first.batch_seconds) >= 10
    # Then the alerts, and the reassignments, which take the routing lock: a thread that finds it taken by the
    # other leaves its steps for a later batch or run.
    sweep_until_done(T0 + 5 * MINUTE, batch_size=4)
    sweep_until_done(T0 + 7 * MINUTE, batch_size=4)
    for lead in leads:
        assert fired(lead) == ["remind_rep", "alert_manager", "reassign"]
        assert Assignment.objects.filter(lead=lead, ended_at__isnull=True).count() == 1
        lead.refresh_from_db()
        assert lead.owner_id not in LeadSla.objects.get(lead=lead).previous_owner_ids
    assert Notification.objects.filter(escalation_id__isnull=False).count() == 80
    # The helper closed its connection, and the interpreter switches threads as often as before.
    assert backends() == open_before
    assert sys.getswitchinterval() == switch_interval


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_error_in_the_sweep_helper_is_raised_and_its_steps_fire_on_the_next_run(settings, monkeypatch):
    settings.LEADROUTER_ROUTING_THREADS = 2
    queue, reps = inbound_queue([f"rep{n}" for n in range(3)])
    ladder_policy()
    leads = [assigned_lead(reps[n % 3], queue) for n in range(24)]
    open_before = backends()
    real = sweep_module._sweep_batch

    def failing_in_the_helper(**kwargs):
        if threading.current_thread().name == "sweep-helper":
            raise RuntimeError("the helper's batch broke")
        return real(**kwargs)

    monkeypatch.setattr(sweep_module, "_sweep_batch", failing_in_the_helper)
    with time_machine.travel(T0 + 3 * MINUTE, tick=False), pytest.raises(RuntimeError, match="helper's batch broke"):
        escalations_sweep(batch_size=4)
    assert backends() == open_before

    # What fired was written whole; the rest is still due, and the next run fires it, once.
    assert Escalation.objects.count() == Notification.objects.count()
    monkeypatch.setattr(sweep_module, "_sweep_batch", real)
    sweep_until_done(T0 + 3 * MINUTE, batch_size=4)
    assert [fired(lead) for lead in leads] == [["remind_rep"]] * 24
    assert Notification.objects.count() == 24


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_claim_is_served_by_the_partial_index():
    with transaction.atomic():
        # A near-empty table would be scanned whole; forbid that to see the index is usable for the claim.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
        plan = claim_queryset(now=T0, limit=500).explain()

    assert "leadsla_due_step_idx" in plan


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_touches_racing_the_sweep_always_stop_the_ladder_and_leave_one_owner():
    # Reps touch their leads at the very moment two sweeps fire the due steps (up to a reassignment).
    from sla.services import touch_log

    queue, reps = inbound_queue([f"rep{n}" for n in range(4)])
    ladder_policy()
    leads = [assigned_lead(reps[n % 4], queue) for n in range(24)]

    def sweep():
        with time_machine.travel(T0 + 7 * MINUTE, tick=False):
            escalations_sweep(batch_size=3)

    def touch(batch):
        with time_machine.travel(T0 + 7 * MINUTE, tick=False):
            for lead in batch:
                touch_log(lead=Lead.objects.get(pk=lead.pk), kind="call", at=None)

    assert run_together(sweep, sweep, lambda: touch(leads[0::2]), lambda: touch(leads[1::2])) == []
    escalations_sweep(now=T0 + 30 * MINUTE)  # Whatever a touch did not stop in time is past now; nothing more fires.
    for lead in leads:
        clock = LeadSla.objects.get(lead=lead)
        assert clock.touched_at is not None
        assert clock.next_step_at is None
        assert Touch.objects.filter(lead=lead).count() == 1
        assert Assignment.objects.filter(lead=lead, ended_at__isnull=True).count() == 1
        actions = fired(lead)
        assert len(actions) == len(set(actions))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_sweep_never_waits_for_an_ownership_writer_and_fires_the_step_on_its_next_run():
    # A manager's reassignment (holding the routing lock) or a rep closing a lead (holding its row) may be
    # waiting for a clock the sweep holds: the sweep must not wait for them in turn. It leaves the step for
    # its next run, fires the rest of the batch, and nobody's action is cancelled as a deadlock victim.
    from routing.ownership import routing_lock

    queue, (ann, bea, _carl) = inbound_queue(["ann", "bea", "carl"])
    policy = SlaPolicyFactory()
    EscalationStepFactory(policy=policy, position=1, minutes_after_due=0, action=Action.REASSIGN)
    held, other = assigned_lead(ann, queue), assigned_lead(bea, queue)
    holding, release = threading.Event(), threading.Event()

    def writer(lock):
        try:
            with transaction.atomic():
                lock()
                holding.set()
                release.wait(60)
        finally:
            connection.close()

    for lock in (routing_lock, lambda: Lead.objects.select_for_update().get(pk=held.pk)):
        thread = threading.Thread(target=writer, args=(lock,))
        thread.start()
        assert holding.wait(60)
        try:
            with time_machine.travel(T0 + 6 * MINUTE, tick=False):
                report = escalations_sweep()
        finally:
            release.set()
            thread.join()
        holding.clear()
        release.clear()
        assert report.deferred >= 1
        assert Lead.objects.get(pk=held.pk).owner == ann
        if lock is routing_lock:
            assert report.fired == {}  # Both steps reassign: both wait for the lock.
        else:
            assert Lead.objects.get(pk=other.pk).owner != bea  # Only the held lead waited.

    with time_machine.travel(T0 + 7 * MINUTE, tick=False):
        escalations_sweep()
    assert Lead.objects.get(pk=held.pk).owner not in (ann, None)
    assert fired(held) == ["reassign"]


@pytest.mark.django_db
def test_deleting_a_lead_or_a_step_still_removes_or_clears_what_the_sweep_wrote(sweep_at):
    # Escalations and notices keep their lead, rep and step without constraints in the database (the sweep
    # writes thousands at a time); the ORM still deletes and clears them with what they point at. (A rep who
    # ever held a lead cannot be deleted: their assignments protect them.)
    queue, (ann, bea) = inbound_queue(["ann", "bea"])
    ladder_policy()
    lead, other = assigned_lead(ann, queue), assigned_lead(bea, queue)
    sweep_at(T0 + 150 * MINUTE / 60)
    assert fired(lead) == fired(other) == ["remind_rep"]
    assert Notification.objects.filter(lead=lead, escalation_id__isnull=False).exists()

    lead.delete()
    assert not Escalation.objects.filter(lead_id=lead.pk).exists()
    assert not Notification.objects.filter(lead_id=lead.pk).exists()

    escalation = Escalation.objects.get(lead=other)
    escalation.step.delete()
    escalation.refresh_from_db()
    assert (escalation.step_id, escalation.rep_id) == (None, bea.pk)


@pytest.mark.django_db
def test_deleting_a_policy_leaves_its_clocks_without_one_and_the_sweep_ends_their_ladders(sweep_at):
    # Clocks are not indexed by their policy (nothing looks them up by it); deleting one still clears it.
    queue, (ann,) = inbound_queue(["ann"])
    policy = ladder_policy()
    lead = assigned_lead(ann, queue)
    assert LeadSla.objects.get(lead=lead).policy == policy

    policy.delete()
    clock = LeadSla.objects.get(lead=lead)
    assert clock.policy_id is None
    assert clock.next_step_id is None  # The steps went with the policy.

    sweep_at(T0 + 10 * MINUTE)
    assert fired(lead) == []
    assert LeadSla.objects.get(lead=lead).next_step_at is None


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_batch_that_only_reminds_commits_without_waiting_for_the_disk(sweep_at):
    # Reminders and alerts may be fired again after a database crash (the clock would still be due), so
    # such a batch does not wait for its commit to reach the disk; a batch that moves a lead does.
    queue, (ann, bea) = inbound_queue(["ann", "bea"])
    policy = SlaPolicyFactory()
    EscalationStepFactory(policy=policy, position=1, minutes_after_due=0, action=Action.REMIND_REP)
    assigned_lead(ann, queue)
    seen = []

    def spy(execute, sql, params, many, context):
        if "synchronous_commit" in sql:
            seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        assert sweep_at(T0 + 6 * MINUTE).fired == {"remind_rep": 1}
    assert seen == ["SET LOCAL synchronous_commit TO OFF"]

    policy.steps.update(action=Action.REASSIGN)
    assigned_lead(bea, queue, at=T0 + 10 * MINUTE)
    seen.clear()
    with connection.execute_wrapper(spy):
        assert sweep_at(T0 + 20 * MINUTE).fired == {"reassign": 1}
    assert seen == []
