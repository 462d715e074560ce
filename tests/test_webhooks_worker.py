"""Webhooks through real Celery workers and beat, against a receiver served by this process.

A lead posted, routed by the worker and touched reaches the receiver as lead.received, lead.assigned and
lead.touched, in that order and signed, though the receiver refused the first twice; a receiver that never
answers ends dead-lettered with every attempt logged while a separate routing worker routes leads as fast as
before (docs/integrations.md). Run on PostgreSQL with Redis, as in production, or on SQLite with the file broker.
"""

import statistics
import subprocess

import pytest
from django.db.models import Sum
from django.test import Client

from routing.models import Delivery, DeliveryAttempt, Lead, Queue, WebhookSubscription
from routing.outbound import signature_verify
from routing.services import apikey_create
from territories.models import Rep
from tests import test_worker
from tests.helpers import wait_for_progress
from tests.receivers import HANG, Answer, Receiver, running
from tests.test_worker import (
    BEAT,
    StartProcess,
    alive,
    all_queues,
    inbound,  # noqa: F401  (the fixture: one round-robin queue of three reps)
    lane_queues,
    output_of,
    start_worker,
    wait_until_routed,
    worker_name,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

celery_queue = test_worker.celery_queue
start_process = test_worker.start_process

# Retries a fraction of a second apart and a beat sweep every second, so the test takes seconds, not hours.
FAST_RETRIES = {"LEADROUTER_WEBHOOK_RETRY_BASE_SECONDS": "0.2", "DELIVERY_SWEEP_INTERVAL_SECONDS": "1"}


def start_beat(start_process: StartProcess, queue: str) -> subprocess.Popen[bytes]:
    return start_process("beat", ["-c", BEAT, queue, "--loglevel", "INFO"], FAST_RETRIES)


def post_lead(client: Client, raw_key: str, n: int) -> int:
    response = client.post(
        "/api/v1/leads/",
        {"email": f"buyer{n}@prospect{n}.example", "country": "Germany", "external_id": f"crm-{n}"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {raw_key}",
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_a_lead_posted_routed_and_touched_reaches_the_receiver_in_order_signed_through_retries(
    client: Client,
    start_process: StartProcess,
    celery_queue: str,
    inbound: tuple[Queue, list[Rep]],  # noqa: F811
) -> None:
    _key, raw_key = apikey_create(name="Website form", scopes=["leads:write", "touches:write"])
    with running(Receiver()) as receiver:
        # The first request is refused twice; the lead's later events wait for it, then follow in order.
        receiver.script = [Answer(500, b"busy"), Answer(500, b"busy")]
        subscription = WebhookSubscription.objects.create(
            name="Warehouse", url=receiver.url("/hooks"), events=["lead.received", "lead.assigned", "lead.touched"]
        )
        processes = [start_worker(start_process, celery_queue, FAST_RETRIES), start_beat(start_process, celery_queue)]

        lead_id = post_lead(client, raw_key, 1)
        wait_until_routed([lead_id], processes)
        touched = client.post(
            f"/api/v1/leads/{lead_id}/touches/",
            {"kind": "call"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {raw_key}",
        )
        assert touched.status_code == 201, touched.content
        wait_for_progress(
            lambda: (Delivery.objects.filter(status="delivered").count(), output_of(processes)),
            lambda value: value[0] == 3,
            what="deliveries delivered (count, log bytes)",
            check=alive(processes),
        )

    requests = receiver.requests
    assert [request.json()["type"] for request in requests] == [
        "lead.received",
        "lead.received",
        "lead.received",
        "lead.assigned",
        "lead.touched",
    ]
    for request in requests:
        assert signature_verify(subscription.secret, request.body, request.headers["X-LeadRouter-Signature"])
    received = Delivery.objects.get(event__type="lead.received")
    assert (received.status, received.attempts) == ("delivered", 3)
    assert list(DeliveryAttempt.objects.filter(delivery=received).values_list("response_code", flat=True)) == [
        500,
        500,
        200,
    ]
    owner = Lead.objects.get(pk=lead_id).owner
    assert owner is not None and requests[3].json()["data"]["lead"]["owner"] == owner.user.username


def routing_seconds(lead_id: int) -> float:
    lead = Lead.objects.get(pk=lead_id)
    assert lead.routed_at is not None
    return (lead.routed_at - lead.received_at).total_seconds()


def test_a_receiver_that_never_answers_is_dead_lettered_and_routing_goes_on_as_fast(
    client: Client,
    start_process: StartProcess,
    celery_queue: str,
    inbound: tuple[Queue, list[Rep]],  # noqa: F811
) -> None:
    _key, raw_key = apikey_create(name="Website form", scopes=["leads:write"])
    lanes = lane_queues(celery_queue)
    silent_env = {**FAST_RETRIES, "LEADROUTER_WEBHOOK_TIMEOUT_SECONDS": "3", "LEADROUTER_WEBHOOK_MAX_AGE_SECONDS": "8"}
    # Production's layout: routing's lanes and the webhooks lane have workers of their own.
    routing_worker = start_worker(
        start_process, celery_queue, queues=[q for q in all_queues(celery_queue) if q != lanes["webhooks"]]
    )
    webhook_worker = start_process(
        "webhook-worker",
        [
            *("-m", "celery", "--app", "leadrouter", "worker", "--queues", lanes["webhooks"]),
            *("--hostname", f"webhooks-{worker_name(celery_queue)}", "--concurrency", "1", "--loglevel", "INFO"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        silent_env,
    )
    processes = [routing_worker, webhook_worker, start_beat(start_process, celery_queue)]

    before = []
    for n in range(3):
        lead_id = post_lead(client, raw_key, n)
        wait_until_routed([lead_id], processes)
        before.append(routing_seconds(lead_id))

    with running(Receiver(default=HANG)) as silent:
        WebhookSubscription.objects.create(name="Silent", url=silent.url("/hooks"), events=["lead.received"])
        during = []
        for n in range(3, 6):
            if n > 3:
                # A delivery is in flight: the receiver holds a request whose attempt is not logged yet.
                wait_for_progress(
                    lambda: (len(silent.requests) > DeliveryAttempt.objects.count(), output_of(processes)),
                    lambda value: value[0],
                    what="no delivery in flight (in flight, log bytes)",
                    check=alive(processes),
                )
            lead_id = post_lead(client, raw_key, n)
            wait_until_routed([lead_id], processes)
            during.append(routing_seconds(lead_id))

        wait_for_progress(
            lambda: (
                Delivery.objects.filter(status__in=Delivery.UNDONE).count(),
                DeliveryAttempt.objects.count(),
                output_of(processes),
            ),
            lambda value: value[0] == 0,
            what="deliveries not dead yet (undone, attempts, log bytes)",
            check=alive(processes),
        )

    print(f"routing seconds before: {before}, while the receiver hangs: {during}")
    # Each stuck attempt holds the webhook worker for 3 s; routing never waits for it.
    assert max(during) < 3
    assert statistics.median(during) < max(before) + 1
    deliveries = Delivery.objects.all()
    assert deliveries.count() == 3 and {d.status for d in deliveries} == {"dead"}
    attempts = DeliveryAttempt.objects.all()
    assert attempts.count() == deliveries.aggregate(total=Sum("attempts"))["total"] >= 3
    assert all(attempt.response_code is None and "timed out" in attempt.error for attempt in attempts)
