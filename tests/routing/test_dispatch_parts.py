"""A batch bigger than ``dispatch.WRITE_PART`` is decided and written part by part (on PostgreSQL in one
pipeline, so the database writes a part while the next is decided). Whatever the part size, the batch must
come out the same: exact round robin across parts, one open assignment, task, clock and notice per assigned
lead, counters equal to a recount, one event per assignment, and the pointer saved where the last part left
it. Each test runs with parts of two leads and with the whole batch as one part."""

import datetime as dt

import pytest
import time_machine
from django.db import DatabaseError, connection

from routing import dispatch, lanes
from routing.dispatch import leads_route
from routing.models import Assignment, Lead, Notification, OutboundEvent, Queue, RepTask, Rule, WebhookSubscription
from routing.ownership import loads_recount
from sla.models import LeadSla
from tests.factories import QueueFactory, QueueMembershipFactory, RepFactory, UserFactory
from tests.sla.test_sweep import ladder_policy

MONDAY = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)

pytestmark = pytest.mark.parametrize("write_part", [2, 1000], ids=["parts of 2", "one part"])


@pytest.fixture
def inbound(db):
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    queue = QueueFactory(name="Inbound")
    for position, name in enumerate(("anna", "ben", "cara")):
        rep = RepFactory(
            user=UserFactory(username=name, email=f"{name}@seller.example"),
            time_zone="UTC",
            max_open_leads=50,
            slack_webhook_url="https://hooks.slack.example/ben" if name == "ben" else "",
        )
        QueueMembershipFactory(queue=queue, rep=rep, position=position)
    Rule.objects.create(name="All to Inbound", position=1, action=Rule.Action.QUEUE, queue=queue)
    ladder_policy()
    WebhookSubscription.objects.create(name="Warehouse", url="https://warehouse.example/in", events=["lead.assigned"])
    return queue


def _route(write_part, monkeypatch, payloads):
    monkeypatch.setattr(dispatch, "WRITE_PART", write_part)
    with time_machine.travel(MONDAY, tick=False):
        leads = [Lead.objects.create(raw_payload=payload) for payload in payloads]
        report = leads_route(lead_ids=[lead.pk for lead in leads])
    return [Lead.objects.select_related("owner__user").get(pk=lead.pk) for lead in leads], report


def _buyer(n):
    return {"email": f"buyer{n}@prospect{n}.example", "company": f"Prospect {n}", "country": "DE"}


def test_round_robin_duplicates_and_every_row_of_an_assignment_come_out_the_same(write_part, inbound, monkeypatch):
    # The fourth lead has the first one's e-mail: it is attached to it, in another part than its original.
    payloads = [_buyer(0), _buyer(1), _buyer(2), {**_buyer(0), "first_name": "Again"}, _buyer(4), _buyer(5), _buyer(6)]

    leads, report = _route(write_part, monkeypatch, payloads)

    assert [lead.owner.user.username if lead.owner else None for lead in leads] == [
        "anna",
        "ben",
        "cara",
        None,
        "anna",
        "ben",
        "cara",
    ]
    assert [lead.status for lead in leads] == ["assigned"] * 3 + ["duplicate"] + ["assigned"] * 3
    assert leads[3].duplicate_of_id == leads[0].pk
    assigned = [lead for lead in leads if lead.status == "assigned"]
    assert sorted(report.assignment_ids) == sorted(Assignment.objects.values_list("pk", flat=True))
    for lead in assigned:
        [period] = Assignment.objects.filter(lead=lead)
        assert (period.rep_id, period.queue_id, period.ended_at) == (lead.owner_id, inbound.pk, None)
        assert period.receipt["summary"] == lead.receipt["routing"]["summary"]
        [task] = RepTask.objects.filter(lead=lead)
        clock = LeadSla.objects.get(lead=lead)
        assert (task.assignment_id, task.rep_id, task.done_at) == (period.pk, lead.owner_id, None)
        assert task.due_at == clock.due_at is not None
        assert clock.state == LeadSla.State.ON_TRACK
        kinds = sorted(Notification.objects.filter(assignment=period).values_list("kind", flat=True))
        assert kinds == (["email", "slack"] if lead.owner.user.username == "ben" else ["email"])
        assert OutboundEvent.objects.filter(lead=lead, type="lead.assigned").count() == 1
    assert not Assignment.objects.filter(lead=leads[3]).exists()
    assert loads_recount(now=MONDAY) == []


def test_every_assignment_is_sent_for_its_notices_once_in_one_message_for_the_batch(
    write_part, inbound, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(lanes, "notify_assignments_send", lambda ids, lane: sent.append((list(ids), lane)))

    with django_capture_on_commit_callbacks(execute=True):
        leads, report = _route(write_part, monkeypatch, [_buyer(n) for n in range(7)])

    assert sent == [(sorted(report.assignment_ids), "live")]
    assigned = Assignment.objects.filter(lead__in=leads).values_list("pk", flat=True)
    assert sorted(report.assignment_ids) == sorted(assigned)


def test_the_pointer_is_saved_where_the_last_part_left_it(write_part, inbound, monkeypatch):
    _route(write_part, monkeypatch, [_buyer(n) for n in range(5)])  # anna, ben, cara, anna, ben

    [next_lead], _ = _route(write_part, monkeypatch, [_buyer(9)])

    assert next_lead.owner.user.username == "cara"


def test_a_part_that_fails_to_write_rolls_the_whole_batch_back(write_part, inbound, monkeypatch):
    """A write error in a later part (on PostgreSQL, reported when the pipeline ends) leaves every lead of the
    batch received, with no assignment, task or clock: the sweep routes them again."""
    payloads = [_buyer(n) for n in range(5)]
    original = dispatch.OwnersChange.finish
    calls = []

    def failing_on_the_last(self, **kwargs):
        calls.append(kwargs)
        if "pointers" in kwargs:
            raise RuntimeError("disk full")
        return original(self, **kwargs)

    monkeypatch.setattr(dispatch.OwnersChange, "finish", failing_on_the_last)
    with pytest.raises(RuntimeError, match="disk full"):
        _route(write_part, monkeypatch, payloads)

    assert set(Lead.objects.values_list("status", flat=True)) == {"received"}
    assert not Assignment.objects.exists()
    assert not RepTask.objects.exists()
    assert not LeadSla.objects.exists()
    assert loads_recount(now=MONDAY) == []


def test_a_statement_the_database_refuses_in_a_later_part_rolls_the_whole_batch_back(write_part, inbound, monkeypatch):
    """On PostgreSQL the refusal comes back only when the pipeline ends, parts after it sent already: it is
    raised as Django's database error and the batch's transaction rolls back."""
    original = dispatch.OwnersChange.leads_write
    parts = []

    def refused_in_the_second_part(self, handovers, unchanged=()):
        original(self, handovers, unchanged)
        parts.append(len(handovers))
        if len(parts) == 2 or write_part > len(handovers) + len(unchanged):
            with connection.cursor() as cursor:
                cursor.execute("UPDATE no_such_table SET x = 1")

    monkeypatch.setattr(dispatch.OwnersChange, "leads_write", refused_in_the_second_part)
    with pytest.raises(DatabaseError):
        _route(write_part, monkeypatch, [_buyer(n) for n in range(5)])

    assert set(Lead.objects.values_list("status", flat=True)) == {"received"}
    assert not Assignment.objects.exists()
    assert not RepTask.objects.exists()
    assert not LeadSla.objects.exists()
    assert not Notification.objects.exists()
    assert loads_recount(now=MONDAY) == []


def test_each_rep_hears_on_the_channels_the_rep_and_the_queue_have(write_part, db, monkeypatch):
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    hooked = QueueFactory(name="Hooked", slack_webhook_url="https://hooks.slack.example/queue")
    quiet = QueueFactory(name="Quiet")
    people = {
        # username: (e-mail, rep webhook, queue)
        "dora": ("dora@seller.example", "", hooked),
        "emil": ("", "", hooked),
        "finn": ("finn@seller.example", "https://hooks.slack.example/finn", quiet),
        "gus": ("", "", quiet),
    }
    for name, (email, hook, queue) in people.items():
        rep = RepFactory(user=UserFactory(username=name, email=email), time_zone="UTC", slack_webhook_url=hook)
        QueueMembershipFactory(queue=queue, rep=rep, position=0)
    german = {"all": [{"field": "country", "op": "equals", "value": "DE"}]}
    Rule.objects.create(name="German to Hooked", position=1, action=Rule.Action.QUEUE, queue=hooked, condition=german)
    Rule.objects.create(name="The rest to Quiet", position=2, action=Rule.Action.QUEUE, queue=quiet)
    payloads = [{**_buyer(n), "country": "DE" if n < 2 else "FR"} for n in range(4)]

    leads, _report = _route(write_part, monkeypatch, payloads)

    heard = {
        lead.owner.user.username: sorted(Notification.objects.filter(lead=lead).values_list("kind", flat=True))
        for lead in leads
    }
    assert heard == {"dora": ["email", "slack"], "emil": ["slack"], "finn": ["email", "slack"], "gus": []}
    assert RepTask.objects.count() == 4


def test_a_batch_is_timed_phase_by_phase_and_the_phases_add_up_to_the_batch(write_part, inbound, monkeypatch):
    """What ``bench_routing`` prints as the batches' profile (``dispatch.timings``): every phase of the batch,
    in the order they come, with its wall time and CPU, and together they are the batch's time."""
    monkeypatch.setattr(dispatch, "timings", dispatch.RoutingTimings())

    _route(write_part, monkeypatch, [_buyer(n) for n in range(5)])

    timings = dispatch.timings
    assert (timings.batches, timings.leads) == (1, 5)
    assert list(timings.phases) == list(dispatch.PHASES)
    assert all(wall >= 0 and cpu >= 0 for wall, cpu in timings.phases.values())
    assert sum(wall for wall, _ in timings.phases.values()) == pytest.approx(timings.batch_seconds, abs=0.005)
