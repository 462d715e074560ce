"""Retention of the outbox (routing/outbound.py, ``deliveries_prune``).

Events whose deliveries are all delivered go after LEADROUTER_WEBHOOK_RETENTION_DAYS, those with a dead delivery
after LEADROUTER_WEBHOOK_DEAD_RETENTION_DAYS, with their deliveries and attempt logs, a bounded number of rows per
statement; anything still to send stays.
"""

import datetime as dt
import math

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leadrouter.celery import app
from routing.models import Delivery, DeliveryAttempt, EventType, OutboundEvent, WebhookSubscription
from routing.outbound import deliveries_prune
from routing.tasks import prune_deliveries

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def subscription(db):
    return WebhookSubscription.objects.create(
        name="Warehouse", url="https://example.invalid/hooks", events=["lead.assigned"]
    )


def event_with(subscription, *statuses: str, days_old: float, attempts: int = 2) -> OutboundEvent:
    """An event ``days_old`` days before NOW with one delivery per status, each with ``attempts`` logged tries."""
    at = NOW - dt.timedelta(days=days_old)
    event = OutboundEvent.objects.create(type=EventType.LEAD_ASSIGNED, lead_id=1, body="{}", created_at=at)
    for status in statuses:
        delivery = Delivery.objects.create(
            event=event,
            subscription=subscription,
            target=f"w{subscription.pk}",
            lead_id=1,
            status=status,
            next_attempt_at=at,
            created_at=at,
        )
        for _ in range(attempts):
            DeliveryAttempt.objects.create(delivery=delivery, at=at, duration_ms=12, response_code=200)
    return event


def test_old_delivered_and_dead_events_go_with_their_log_and_everything_else_stays(subscription, settings):
    settings.LEADROUTER_WEBHOOK_RETENTION_DAYS = 30
    settings.LEADROUTER_WEBHOOK_DEAD_RETENTION_DAYS = 90
    delivered, dead, pending, retrying = "delivered", "dead", "pending", "retrying"
    gone = [
        event_with(subscription, delivered, delivered, days_old=31),
        event_with(subscription, dead, days_old=91),
        event_with(subscription, delivered, dead, days_old=95),
        event_with(subscription, days_old=31),  # No receiver needed it.
    ]
    kept = [
        event_with(subscription, delivered, days_old=29),
        event_with(subscription, dead, days_old=60),  # Dead: kept longer, RevOps may still resend it.
        event_with(subscription, delivered, dead, days_old=40),
        event_with(subscription, pending, days_old=200),  # Resent from admin: still to send.
        event_with(subscription, delivered, retrying, days_old=120),
        event_with(subscription, days_old=29),
    ]

    report = deliveries_prune(now=NOW)

    assert set(OutboundEvent.objects.values_list("pk", flat=True)) == {event.pk for event in kept}
    assert (report.events, report.deliveries, report.attempts, report.done) == (4, 5, 10, True)
    assert not Delivery.objects.filter(event_id__in=[event.pk for event in gone]).exists()
    assert Delivery.objects.count() == 7 and DeliveryAttempt.objects.count() == 14
    # Nothing more to do: a second run deletes nothing.
    assert deliveries_prune(now=NOW).events == 0


def test_each_delete_removes_a_bounded_batch_and_a_run_out_of_time_leaves_the_rest(subscription):
    for _ in range(5):
        event_with(subscription, "delivered", days_old=100, attempts=3)

    assert deliveries_prune(now=NOW, budget_seconds=0).done is False
    assert OutboundEvent.objects.count() == 5

    with CaptureQueriesContext(connection) as queries:
        report = deliveries_prune(now=NOW, batch=2)
    assert (report.events, report.deliveries, report.attempts) == (5, 5, 15)
    assert not OutboundEvent.objects.exists() and not DeliveryAttempt.objects.exists()
    deletes = [query["sql"] for query in queries if query["sql"].startswith("DELETE")]
    assert deletes and all("LIMIT 2" in sql for sql in deletes)
    on_attempts = [sql for sql in deletes if sql.startswith('DELETE FROM "routing_deliveryattempt"')]
    assert len(on_attempts) >= math.ceil(15 / 2)


def test_the_hourly_beat_entry_runs_the_prune_task(subscription, settings):
    entry = django_settings.CELERY_BEAT_SCHEDULE["delivery-prune"]
    assert entry["task"] == prune_deliveries.name and entry["task"] in app.tasks
    assert entry["schedule"] == dt.timedelta(hours=1)
    event_with(subscription, "delivered", days_old=settings.LEADROUTER_WEBHOOK_RETENTION_DAYS + 1)
    fresh = OutboundEvent.objects.create(type="lead.closed", lead_id=1, body="{}", created_at=timezone.now())
    prune_deliveries()
    assert list(OutboundEvent.objects.values_list("pk", flat=True)) == [fresh.pk]
