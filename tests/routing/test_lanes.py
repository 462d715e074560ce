"""Lanes: live leads, bulk work and notifications travel in queues of their own, so a live lead never waits
behind a bulk import. Each test reads the messages actually published to the broker, on queues of its own."""

import io
import time

import pytest
from rest_framework.test import APIClient

from leadrouter.celery import app
from routing import dispatch
from routing.dispatch import leads_route, leads_route_stale
from routing.lead_import import leads_import_csv
from routing.models import Lead, Notification
from routing.notify import notifications_plan, notifications_resend
from routing.reassign import rep_departure_apply
from routing.services import apikey_create
from routing.tasks import BULK_NOTICES_MAX_WAIT_SECONDS, notify_assignments_behind_bulk
from tests import test_worker
from tests.factories import (
    AssignmentFactory,
    LeadFactory,
    QueueFactory,
    dach_coverage,
)

pytestmark = pytest.mark.django_db

# A default queue and one queue per lane of this test's own, removed from the broker afterwards.
celery_queue = test_worker.celery_queue


@pytest.fixture
def lanes(celery_queue: str) -> dict[str, str]:
    return {"default": celery_queue, **test_worker.lane_queues(celery_queue)}


def published(queue_name: str) -> list[tuple[str, list, dict]]:
    """The tasks waiting in this broker queue, taken off it: (task name, args, kwargs) each."""
    found = []
    with app.connection_for_write() as broker:
        queue = app.amqp.queues[queue_name].bind(broker.default_channel)
        queue.declare()
        while (message := queue.get(no_ack=True, accept=["json"])) is not None:
            args, kwargs, _embed = message.decode()
            found.append((message.headers["task"], args, kwargs))
    return found


def everything_published(lanes: dict[str, str]) -> dict[str, list[tuple[str, list, dict]]]:
    return {lane: published(queue_name) for lane, queue_name in lanes.items()}


@pytest.fixture
def form_client() -> APIClient:
    _key, raw_key = apikey_create(name="Website demo form", scopes=["leads:write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


def post(client: APIClient, body) -> list[int]:
    response = client.post("/api/v1/leads/", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    return [row["id"] for row in data["leads"]] if isinstance(body, list) else [data["id"]]


def batch(count: int, *, start: int = 0) -> list[dict]:
    return [{"email": f"buyer{n}@prospect{n}.example", "country": "DE"} for n in range(start, start + count)]


def test_a_single_post_and_a_small_batch_travel_in_the_live_lane(
    lanes, form_client, settings, django_capture_on_commit_callbacks
):
    settings.LEADROUTER_BULK_THRESHOLD = 10
    with django_capture_on_commit_callbacks(execute=True):
        [single] = post(form_client, {"email": "max@prospect.de", "country": "DE"})
        small = post(form_client, batch(10))

    sent = everything_published(lanes)
    # In either order: the file-system broker orders messages sent within the same millisecond at random.
    sent["live"].sort(key=lambda message: len(message[1][0]))
    assert sent == {
        "default": [],
        "live": [
            ("routing.tasks.route_leads", [[single]], {"lane": "live"}),
            ("routing.tasks.route_leads", [small], {"lane": "live"}),
        ],
        "bulk": [],
        "notify": [],
        # No webhook subscription: no event, no sender task.
        "webhooks": [],
    }
    assert set(Lead.objects.values_list("lane", flat=True)) == {"live"}


def test_a_batch_over_the_threshold_travels_in_the_bulk_lane(
    lanes, form_client, settings, django_capture_on_commit_callbacks
):
    settings.LEADROUTER_BULK_THRESHOLD = 10
    with django_capture_on_commit_callbacks(execute=True):
        eleven = post(form_client, batch(11))
        five_hundred = post(form_client, batch(500, start=11))

    sent = everything_published(lanes)
    # The two messages in either order: the file-system broker orders messages sent within the same
    # millisecond at random.
    assert sorted(sent["bulk"], key=lambda message: len(message[1][0])) == [
        ("routing.tasks.route_leads", [eleven], {"lane": "bulk"}),
        ("routing.tasks.route_leads", [five_hundred], {"lane": "bulk"}),
    ]
    assert sent["live"] == sent["notify"] == sent["default"] == []
    assert Lead.objects.filter(lane="bulk").count() == 511


def test_a_csv_import_travels_in_the_bulk_lane_however_small(lanes, django_capture_on_commit_callbacks):
    text = "email,company,country\nana@nordwind.de,Nordwind,DE\ncleo@westend.ch,Westend,CH\n"
    with django_capture_on_commit_callbacks(execute=True):
        leads_import_csv(file=io.BytesIO(text.encode()), file_name="leads.csv", created_by=None, skip_invalid=False)

    ids = sorted(Lead.objects.values_list("pk", flat=True))
    sent = everything_published(lanes)
    assert sent["bulk"] == [("routing.tasks.route_leads", [ids], {"lane": "bulk"})]
    assert sent["live"] == sent["notify"] == []


@pytest.fixture
def dach():
    queue = dach_coverage()
    return [membership.rep for membership in queue.memberships.order_by("position")]


def received(lane: str, n: int) -> Lead:
    """A lead as intake stores it in ``lane``."""
    return Lead.objects.create(raw_payload={"email": f"lead{n}@prospect{n}.de", "country": "DE"}, lane=lane)


def test_a_live_task_takes_only_live_leads_along_and_a_bulk_task_only_bulk_leads(dach):
    backlog = [received("bulk", n) for n in range(5)]
    live = [received("live", n) for n in range(5, 8)]

    report = leads_route(lead_ids=[live[0].pk], lane="live")

    assert report.leads == 3
    assert set(Lead.objects.exclude(status="received").values_list("pk", flat=True)) == {lead.pk for lead in live}

    report = leads_route(lead_ids=[backlog[0].pk], lane="bulk")

    assert report.leads == 5
    assert not Lead.objects.filter(status="received").exists()


def test_a_bulk_task_routes_the_live_leads_waiting_before_each_of_its_batches(dach, settings, monkeypatch):
    # A worker busy with an import has no free process for a live lead's own message: the import's task
    # routes waiting live leads between its batches, so a live lead waits for one bulk batch at most; and once
    # live leads come in, the import's batches are the small ones.
    settings.LEADROUTER_BULK_BATCH_SIZE = 6
    settings.LEADROUTER_BULK_BATCH_SIZE_WHILE_LIVE = 2
    monkeypatch.setattr(dispatch, "_live_seen_at", -dispatch.LIVE_TRAFFIC_SECONDS)
    backlog = [received("bulk", n) for n in range(6)]
    early = received("live", 10)
    posted_later: list[Lead] = []
    route_batch = dispatch._route_batch

    def route_and_post(**kwargs):
        report = route_batch(**kwargs)
        if kwargs.get("lane") == "bulk" and not posted_later:
            posted_later.append(received("live", 11))  # Arrives while the first bulk batch is routed.
        return report

    monkeypatch.setattr(dispatch, "_route_batch", route_and_post)
    report = leads_route(lead_ids=[lead.pk for lead in backlog], lane="bulk")

    assert report.leads == 6  # The bulk task's own leads; the live ones are routed besides.
    routed_at = dict(Lead.objects.values_list("pk", "routed_at"))
    bulk_times = sorted(routed_at[lead.pk] for lead in backlog)
    # The live lead waiting at the start went first; the one posted during the first bulk batch (of two, not
    # six) went before the second.
    assert routed_at[early.pk] < bulk_times[0]
    assert bulk_times[1] < routed_at[posted_later[0].pk] < bulk_times[2]


def test_an_import_with_no_live_traffic_beside_it_goes_in_full_size_batches(dach, settings, monkeypatch):
    settings.LEADROUTER_BULK_BATCH_SIZE = 4
    settings.LEADROUTER_BULK_BATCH_SIZE_WHILE_LIVE = 1
    monkeypatch.setattr(dispatch, "_live_seen_at", -dispatch.LIVE_TRAFFIC_SECONDS)
    backlog = [received("bulk", n) for n in range(8)]

    leads_route(lead_ids=[lead.pk for lead in backlog], lane="bulk")

    assert len(set(Lead.objects.values_list("routed_at", flat=True))) == 2  # Two batches of four.


def test_the_sweep_routes_leads_of_every_lane_live_ones_first(dach, settings):
    settings.LEADROUTER_ROUTING_BATCH_SIZE = 2
    backlog = [received("bulk", n) for n in range(3)]
    live = received("live", 3)

    leads_route_stale(older_than_seconds=0)

    assert not Lead.objects.filter(status="received").exists()
    live.refresh_from_db()
    routed_at = sorted(Lead.objects.filter(pk__in=[lead.pk for lead in backlog]).values_list("routed_at", flat=True))
    # The first batch took the live lead although three bulk leads had waited longer.
    assert live.routed_at == routed_at[0] < routed_at[-1]


def test_routing_notifies_live_leads_in_the_notify_lane_and_bulk_work_behind_the_bulk_lane(
    lanes, dach, django_capture_on_commit_callbacks
):
    live = received("live", 1)
    bulk = received("bulk", 2)

    with django_capture_on_commit_callbacks(execute=True):
        leads_route(lead_ids=[live.pk], lane="live")
        leads_route(lead_ids=[bulk.pk], lane="bulk")

    live_assignment = live.assignments.get().pk
    bulk_assignment = bulk.assignments.get().pk
    sent = everything_published(lanes)
    assert sent["notify"] == [("routing.tasks.notify_assignments", [[live_assignment]], {})]
    assert sent["bulk"] == [("routing.tasks.notify_assignments_behind_bulk", [[bulk_assignment]], {})]
    assert sent["live"] == sent["default"] == []


def _bulk_batch_routed(django_capture_on_commit_callbacks) -> int:
    """A bulk lead routed, its notices planned but not sent (the message is taken off the broker): its assignment."""
    lead = received("bulk", 90)
    with django_capture_on_commit_callbacks(execute=True):
        leads_route(lead_ids=[lead.pk], lane="bulk")
    return lead.assignments.get().pk


def test_bulk_notices_go_behind_the_bulk_leads_still_waiting_to_be_routed(
    lanes, dach, mailoutbox, django_capture_on_commit_callbacks
):
    assignment = _bulk_batch_routed(django_capture_on_commit_callbacks)
    everything_published(lanes)
    waiting = received("bulk", 91)  # The rest of the import, not routed yet.

    notify_assignments_behind_bulk([assignment])

    # Nothing sent: the task went to the back of the bulk queue, remembering since when it waits.
    assert mailoutbox == []
    assert set(Notification.objects.filter(assignment_id=assignment).values_list("status", flat=True)) == {"pending"}
    ((name, args, kwargs),) = everything_published(lanes)["bulk"]
    assert (name, args) == ("routing.tasks.notify_assignments_behind_bulk", [[assignment]])
    assert kwargs["waiting_since"] > 0

    # Once the import is routed, the same message sends the notices.
    leads_route(lead_ids=[waiting.pk], lane="bulk")
    everything_published(lanes)
    notify_assignments_behind_bulk([assignment], waiting_since=kwargs["waiting_since"])
    assert len(mailoutbox) == 1
    assert everything_published(lanes)["bulk"] == []


def test_bulk_notices_wait_behind_routing_only_so_long(lanes, dach, mailoutbox, django_capture_on_commit_callbacks):
    assignment = _bulk_batch_routed(django_capture_on_commit_callbacks)
    everything_published(lanes)
    received("bulk", 91)  # Still waiting, for whatever reason.

    notify_assignments_behind_bulk([assignment], waiting_since=time.time() - BULK_NOTICES_MAX_WAIT_SECONDS - 1)

    assert len(mailoutbox) == 1
    assert everything_published(lanes)["bulk"] == []


def test_a_departure_notifies_behind_the_bulk_lane(lanes, dach, revops, django_capture_on_commit_callbacks):
    anna, _ben = dach
    leads = [LeadFactory(owner=anna, status="assigned", country="DE") for _ in range(3)]
    for lead in leads:
        AssignmentFactory(lead=lead, rep=anna)

    with django_capture_on_commit_callbacks(execute=True):
        rep_departure_apply(rep=anna, by=revops)

    sent = everything_published(lanes)
    assert [name for name, _args, _kwargs in sent["bulk"]] == ["routing.tasks.notify_assignments_behind_bulk"]
    assert len(sent["bulk"][0][1][0]) == 3
    assert sent["notify"] == sent["live"] == []


def test_a_resent_notification_travels_in_the_notify_lane(lanes, dach, django_capture_on_commit_callbacks):
    anna, _ben = dach
    assignment = AssignmentFactory(lead=LeadFactory(owner=anna, status="assigned"), rep=anna, queue=QueueFactory())
    notifications, _task = notifications_plan(assignment=assignment)
    Notification.objects.bulk_create(notifications)
    Notification.objects.update(status="failed", attempts=1)

    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_resend(notification_ids=list(Notification.objects.values_list("pk", flat=True))) == 1

    sent = everything_published(lanes)
    assert sent["notify"] == [("routing.tasks.notify_assignments", [[assignment.pk]], {})]
    assert sent["bulk"] == sent["live"] == []


def test_a_live_task_whose_lead_was_taken_along_routes_the_live_leads_waiting_now(dach):
    # The first task's batch took its lead along; when the task arrives, live leads posted since then wait
    # (their own messages may be queued behind bulk work): the task routes them, never the bulk backlog.
    first = received("live", 1)
    leads_route(lead_ids=[first.pk], lane="live")
    later = [received("live", n) for n in range(2, 5)]
    backlog = received("bulk", 9)

    report = leads_route(lead_ids=[first.pk], lane="live")

    assert report.leads == 3
    assert not Lead.objects.filter(pk__in=[lead.pk for lead in later], status="received").exists()
    assert Lead.objects.get(pk=backlog.pk).status == "received"


def test_a_task_whose_leads_were_taken_along_asks_one_question_and_opens_no_transaction(
    dach, django_assert_num_queries
):
    # Under a burst of single posts most tasks find their lead routed by an earlier batch: that costs them one
    # indexed query, whichever lane, and nothing else.
    first, second = received("live", 1), received("bulk", 2)
    leads_route(lead_ids=[first.pk], lane="live")
    leads_route(lead_ids=[second.pk], lane="bulk")

    with django_assert_num_queries(1):
        assert leads_route(lead_ids=[first.pk], lane="live").leads == 0
    with django_assert_num_queries(1):
        assert leads_route(lead_ids=[second.pk], lane="bulk").leads == 0
