"""Several workers routing one queue at once on PostgreSQL: no lead assigned twice, caps held, round robin exact.

Each thread has its own database connection and runs the real service, as a
Celery worker process would; they start together at a barrier. The tests
assert invariants on the committed rows, never an interleaving.
"""

from collections import Counter

import pytest
from django.db import IntegrityError
from django.db.models import Count
from django.utils import timezone

from routing import dispatch
from routing.dispatch import leads_route
from routing.models import Assignment, Lead, Queue, RepTask, Rule
from routing.ownership import loads_recount
from sla.models import LeadSla
from tests.factories import QueueFactory, QueueMembershipFactory, RepFactory, UserFactory
from tests.helpers import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WORKERS = 4


def route_from_threads(*, batch_size: int) -> list[BaseException]:
    """Every worker drains the received leads at the same time; returns what any of them raised."""
    return run_together(
        *[lambda: leads_route(batch_size=batch_size)] * WORKERS,
        progress=lambda: Lead.objects.exclude(status=Lead.Status.RECEIVED).count(),
    )


def queue_with_reps(name: str, count: int, **rep_fields):
    # A transactional test starts from an empty database, without the catch-all the migrations create.
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    queue = QueueFactory(name=name)
    reps = []
    for position in range(count):
        rep = RepFactory(user=UserFactory(username=f"{name.lower()}-{position}"), time_zone="UTC", **rep_fields)
        QueueMembershipFactory(queue=queue, rep=rep, position=position)
        reps.append(rep)
    Rule.objects.create(name=f"All to {name}", position=1, action=Rule.Action.QUEUE, queue=queue)
    return queue, reps


def receive(count: int) -> None:
    Lead.objects.bulk_create(
        Lead(raw_payload={"email": f"buyer{n}@prospect{n}.example", "country": "DE"}) for n in range(count)
    )


def test_round_robin_stays_exact_when_four_workers_route_one_queue():
    _queue, reps = queue_with_reps("Inbound", 5, max_open_leads=100)
    receive(200)

    assert route_from_threads(batch_size=7) == []

    # Every lead routed once, with one history row.
    assert Lead.objects.filter(status="assigned").count() == 200
    assert Assignment.objects.count() == 200
    assert not Lead.objects.annotate(n=Count("assignments")).filter(n__gt=1).exists()
    # The rotation never skipped or repeated anyone: 200 leads over 5 reps is 40 each.
    per_rep = Counter(Lead.objects.values_list("owner_id", flat=True))
    assert sorted(per_rep.values()) == [40] * 5
    assert set(per_rep) == {rep.pk for rep in reps}


def test_caps_hold_when_four_workers_route_more_leads_than_the_queue_can_take():
    _queue, reps = queue_with_reps("Capped", 3, max_open_leads=10)
    reps[0].daily_cap = 4
    reps[0].save()
    receive(60)

    assert route_from_threads(batch_size=5) == []

    open_per_rep = Counter(Lead.objects.filter(status="assigned").values_list("owner_id", flat=True))
    # Capacity 10 each, but the first rep stops at the daily cap of 4; the rest wait in the queue.
    assert open_per_rep == {reps[0].pk: 4, reps[1].pk: 10, reps[2].pk: 10}
    assert Lead.objects.filter(status="queued", owner__isnull=True).count() == 36
    assert not Lead.objects.filter(status="received").exists()
    assert Assignment.objects.filter(rep__isnull=False).count() == 24


def test_a_batch_that_points_a_lead_at_a_row_that_is_gone_is_refused_and_rolled_back_whole(monkeypatch):
    """The lead rows' foreign keys are checked as the batch writes them: a rule deleted after this worker
    loaded its coverage model fails the batch, and nothing of it stays, as when they were checked at commit."""
    _queue, _reps = queue_with_reps("Inbound", 2)
    receive(5)
    decide = dispatch._decide

    def deciding_with_a_deleted_rule(item, *args, **kwargs):
        snapshot = decide(item, *args, **kwargs)
        if item.lead.pk == max(Lead.objects.values_list("pk", flat=True)):
            item.lead.rule_id = 987_654
        return snapshot

    monkeypatch.setattr(dispatch, "_decide", deciding_with_a_deleted_rule)
    with pytest.raises(IntegrityError):
        leads_route()

    assert set(Lead.objects.values_list("status", flat=True)) == {"received"}
    assert not Assignment.objects.exists()
    assert not RepTask.objects.exists()
    assert not LeadSla.objects.exists()
    assert loads_recount(now=timezone.now()) == []

    monkeypatch.setattr(dispatch, "_decide", decide)
    leads_route()
    assert Lead.objects.filter(status="assigned").count() == 5
