"""A call that routes several batches runs a second routing thread on PostgreSQL (``dispatch.leads_route``):
the two take turns at the interpreter (routing/turns.py), each with its own connection and transaction.
The tests assert what a RevOps team relies on: every lead routed once, the rotation exact, nothing left
open behind, an error raised rather than swallowed; and live leads never waiting behind an import's threads."""

import sys
import threading
from collections import Counter

import pytest
from django.db.models import Count

from routing import dispatch
from routing.dispatch import leads_route
from routing.models import Assignment, Lead
from tests.helpers import backends, helper_takes_part, run_together
from tests.routing.test_dispatch_concurrency import queue_with_reps

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def receive(count: int, *, lane: str = Lead.Lane.LIVE) -> list[int]:
    first = Lead.objects.count()
    leads = Lead.objects.bulk_create(
        Lead(raw_payload={"email": f"buyer{n}@prospect{n}.example", "country": "DE"}, lane=lane)
        for n in range(first, first + count)
    )
    return [lead.pk for lead in leads]


@pytest.fixture
def routed_by(monkeypatch):
    """Leads routed per thread name, both threads taking part (``helper_takes_part``)."""
    return helper_takes_part(monkeypatch, dispatch, "_route_batch", helper="routing-helper", done=lambda r: r.leads)


def test_a_call_of_several_batches_is_routed_by_two_threads_with_the_rotation_exact(settings, routed_by):
    settings.LEADROUTER_ROUTING_THREADS = 2
    _queue, reps = queue_with_reps("Inbound", 4, max_open_leads=100)
    lead_ids = receive(60)
    open_before = backends()
    switch_interval = sys.getswitchinterval()

    report = leads_route(lead_ids=lead_ids, batch_size=5)

    assert report.leads == 60
    # Both threads routed batches.
    assert set(routed_by) == {"MainThread", "routing-helper"}
    assert sum(routed_by.values()) == 60
    # Every lead once, with one history row; the routing lock kept the rotation whole across the two threads.
    assert Lead.objects.filter(status="assigned").count() == 60
    assert not Lead.objects.annotate(n=Count("assignments")).filter(n__gt=1).exists()
    per_rep = Counter(Lead.objects.values_list("owner_id", flat=True))
    assert sorted(per_rep.values()) == [15] * 4
    assert set(per_rep) == {rep.pk for rep in reps}
    owners = list(Assignment.objects.order_by("pk").values_list("rep_id", flat=True))
    assert all(len(set(owners[start : start + 4])) == 4 for start in range(0, 60, 4))
    # The helper closed its connection, and the interpreter switches threads as often as before.
    assert backends() == open_before
    assert sys.getswitchinterval() == switch_interval


def test_one_thread_routes_when_the_setting_says_so(settings, monkeypatch):
    settings.LEADROUTER_ROUTING_THREADS = 1
    queue_with_reps("Inbound", 2, max_open_leads=100)
    lead_ids = receive(12)
    threads: set[str] = set()
    real = dispatch._route_batch

    def spy(**kwargs):
        threads.add(threading.current_thread().name)
        return real(**kwargs)

    monkeypatch.setattr(dispatch, "_route_batch", spy)

    assert leads_route(lead_ids=lead_ids, batch_size=5).leads == 12

    assert threads == {"MainThread"}


def test_an_error_in_the_helper_thread_is_raised_and_loses_no_lead(settings, monkeypatch):
    settings.LEADROUTER_ROUTING_THREADS = 2
    queue_with_reps("Inbound", 2, max_open_leads=100)
    lead_ids = receive(30)
    open_before = backends()
    real = dispatch._route_batch

    def failing_in_the_helper(**kwargs):
        if threading.current_thread().name == "routing-helper":
            raise RuntimeError("the helper's batch broke")
        return real(**kwargs)

    monkeypatch.setattr(dispatch, "_route_batch", failing_in_the_helper)

    with pytest.raises(RuntimeError, match="the helper's batch broke"):
        leads_route(lead_ids=lead_ids, batch_size=5)

    # What was routed was routed whole; the rest waits for the sweep, as after any failed batch.
    assert set(Lead.objects.values_list("status", flat=True)) <= {"assigned", "received"}
    assert Assignment.objects.count() == Lead.objects.filter(status="assigned").count()
    assert backends() == open_before


@pytest.fixture
def no_live_traffic(monkeypatch):
    """No live lead seen lately by this process (another test's may have been)."""
    monkeypatch.setattr(dispatch, "_live_seen_at", -dispatch.LIVE_TRAFFIC_SECONDS)


def test_an_import_message_of_several_batches_is_routed_by_two_threads(settings, no_live_traffic, routed_by):
    settings.LEADROUTER_ROUTING_THREADS = 2
    queue_with_reps("Inbound", 3, max_open_leads=100)
    message = receive(30, lane=Lead.Lane.BULK)
    others = receive(25, lane=Lead.Lane.BULK)

    assert leads_route(lead_ids=message, batch_size=5, lane=Lead.Lane.BULK).leads == 30

    assert set(routed_by) == {"MainThread", "routing-helper"}
    assert not Lead.objects.filter(pk__in=message, status="received").exists()
    # The other messages' leads are theirs to route.
    assert Lead.objects.filter(pk__in=others, status="received").count() == 25


def test_while_live_leads_keep_coming_an_import_message_is_routed_in_small_batches_in_one_thread(
    settings, no_live_traffic, monkeypatch
):
    settings.LEADROUTER_ROUTING_THREADS = 2
    settings.LEADROUTER_BULK_BATCH_SIZE_WHILE_LIVE = 4
    queue_with_reps("Inbound", 3, max_open_leads=100)
    # Another worker process routed a live lead a moment ago, and said so in the cache.
    monkeypatch.setattr(dispatch, "_live_said_at", -dispatch.LIVE_TRAFFIC_SAY_EVERY)
    leads_route(lead_ids=receive(1), lane=Lead.Lane.LIVE)
    monkeypatch.setattr(dispatch, "_live_seen_at", -dispatch.LIVE_TRAFFIC_SECONDS)  # This process saw none.
    message = receive(10, lane=Lead.Lane.BULK)
    others = receive(25, lane=Lead.Lane.BULK)
    batches: list[tuple[str, int]] = []
    real = dispatch._route_batch

    def spy(**kwargs):
        report = real(**kwargs)
        batches.append((threading.current_thread().name, report.leads))
        return report

    monkeypatch.setattr(dispatch, "_route_batch", spy)

    assert leads_route(lead_ids=message, batch_size=5, lane=Lead.Lane.BULK).leads == 12

    # Its leads (the last batch's room filled with two more of the lane, as a batch's room always is), in the
    # small batches a live lead waits for at most, and no helper.
    assert not Lead.objects.filter(pk__in=message, status="received").exists()
    assert Lead.objects.filter(pk__in=others, status="received").count() == 23
    assert batches == [("MainThread", 4)] * 3


def test_calls_from_several_threads_at_once_put_the_switch_interval_back(settings):
    # A threaded caller: four routing calls at once, each with its own helper.
    settings.LEADROUTER_ROUTING_THREADS = 2
    queue_with_reps("Inbound", 3, max_open_leads=1000)
    receive(120)
    switch_interval = sys.getswitchinterval()

    assert run_together(*[lambda: leads_route(batch_size=5)] * 4) == []

    assert not Lead.objects.filter(status="received").exists()
    assert sys.getswitchinterval() == switch_interval
