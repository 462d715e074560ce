"""The SLA ladder's reminders and alerts travel through the notification outbox.

The sweep builds no message: it writes one outbox row per notice, about the escalation it records, and enqueues
one send task per batch. That task renders and sends them, e-mail through Django's locmem backend and Slack to a
stand-in webhook on 127.0.0.1, and the outbox's retries, stuck-notice recovery and resend work for them as for
a new lead's notices. Each test reads the tasks actually published to the broker, on queues of its own.
"""

import datetime as dt
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from routing.models import Lead, Notification
from routing.notify import notice_kinds, notifications_sweep
from routing.tasks import notify_outbox
from sla.models import Escalation, EscalationStep, SlaPolicy
from sla.services import sla_clocks_start
from sla.sweep import escalations_sweep
from tests import test_worker
from tests.factories import LeadFactory, QueueFactory, RepFactory, UserFactory
from tests.helpers import admin_url, slack_server
from tests.routing.test_lanes import everything_published

pytestmark = pytest.mark.django_db

# Monday 30 November 2026, 10:00 UTC.
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
Kind = Notification.Kind

# A default queue and one queue per lane of this test's own, removed from the broker afterwards.
celery_queue = test_worker.celery_queue


@pytest.fixture
def lanes(celery_queue: str) -> dict[str, str]:
    return {"default": celery_queue, **test_worker.lane_queues(celery_queue)}


@pytest.fixture
def slack():
    with slack_server() as server:
        yield server


@pytest.fixture
def ladder(slack):
    """Ann, in the Inbound queue, holds two leads whose clocks started at T0 under a 5-minute policy: remind her
    at 50%, alert her manager at the breach. Ann and the queue post to Slack."""
    queue = QueueFactory(name="Inbound", slack_webhook_url=slack.url("/queue"))
    boss = UserFactory(username="boss", first_name="Bo", last_name="Boss")
    ann = RepFactory(
        user=UserFactory(username="ann", first_name="Ann", last_name="Archer"),
        manager=boss,
        time_zone="UTC",
        slack_webhook_url=slack.url("/ann"),
    )
    policy = SlaPolicy.objects.create(name="Five minutes", is_default=True, first_touch_minutes=5)
    EscalationStep.objects.create(
        policy=policy, position=1, when=EscalationStep.When.PERCENT_OF_TARGET, percent=50, action="remind_rep"
    )
    EscalationStep.objects.create(
        policy=policy, position=2, when=EscalationStep.When.AFTER_DUE, minutes_after_due=0, action="alert_manager"
    )
    leads = [
        LeadFactory(
            status=Lead.Status.ASSIGNED,
            owner=ann,
            queue=queue,
            first_name="Ada",
            last_name=f"Lovelace {n}",
            company="Acme",
        )
        for n in range(2)
    ]
    sla_clocks_start(leads=leads, now=T0)
    return SimpleNamespace(ann=ann, boss=boss, queue=queue, leads=leads)


def sweep_at(at, callbacks, **options):
    """Sweep at ``at``; the send tasks are published when the batches commit."""
    with time_machine.travel(at, tick=False), callbacks(execute=True):
        return escalations_sweep(**options)


def run_send_tasks(published) -> list[list[int]]:
    """What the notify worker does with the tasks the sweep published: run each. Returns their ids."""
    batches = []
    for name, (ids,), _kwargs in published:
        assert name == "routing.tasks.notify_outbox"
        notify_outbox(ids)
        batches.append(ids)
    return batches


def row(kind: str, lead: Lead) -> Notification:
    return Notification.objects.get(kind=kind, lead=lead)


def test_the_sweep_writes_the_notices_and_one_send_task_per_batch_delivers_them(
    ladder, lanes, slack, django_capture_on_commit_callbacks
):
    # The reminders fire in one sweep, the alerts at the breach in the next.
    reminders = sweep_at(T0 + 3 * MINUTE, django_capture_on_commit_callbacks)
    alerts = sweep_at(T0 + 5 * MINUTE, django_capture_on_commit_callbacks)

    assert reminders.fired == {"remind_rep": 2} and alerts.fired == {"alert_manager": 2}
    assert reminders.notices == alerts.notices == 4
    # Nothing was built or sent in the sweep: only rows, about the escalations just recorded.
    assert mail.outbox == [] and slack.posts == []
    notices = list(Notification.objects.order_by("pk"))
    escalations = Escalation.objects.in_bulk()
    assert all(n.status == "pending" and n.assignment_id is None for n in notices)
    assert sorted((escalations[n.escalation_id].action, n.kind) for n in notices) == sorted(
        [("remind_rep", Kind.SLA_REMINDER_EMAIL), ("remind_rep", Kind.SLA_REMINDER_SLACK)] * 2
        + [("alert_manager", Kind.SLA_ALERT_EMAIL), ("alert_manager", Kind.SLA_ALERT_SLACK)] * 2
    )
    assert all(n.recipients == ["boss@example.com"] for n in notices if n.kind == Kind.SLA_ALERT_EMAIL)
    published = everything_published(lanes)
    assert published["live"] == published["bulk"] == published["default"] == []

    batches = run_send_tasks(published["notify"])

    assert [len(ids) for ids in batches] == [4, 4]
    assert {n.status for n in Notification.objects.all()} == {"sent"}
    reminders = [m for m in mail.outbox if m.to == ["ann@example.com"]]
    alerts = [m for m in mail.outbox if m.to == ["boss@example.com"]]
    assert len(reminders) == len(alerts) == 2 and len(mail.outbox) == 4
    assert all(
        m.subject.startswith("Reminder: first touch due 2026-11-30 10:05 UTC for Ada Lovelace") for m in reminders
    )
    assert all(m.subject.startswith("Escalation: no first touch on Ada Lovelace") for m in alerts)
    assert all("Ann Archer" in m.subject for m in alerts)
    assert all("the 5-minute target was breached" in m.body for m in alerts)
    assert all(m.extra_headers["Message-ID"].startswith("<notification-") for m in mail.outbox)
    assert slack.paths() == ["/ann", "/ann", "/queue", "/queue"]
    texts = {post["path"]: post["json"]["text"] for post in slack.posts}
    assert texts["/ann"].startswith("*Reminder:* <") and "is waiting for your first touch" in texts["/ann"]
    assert texts["/queue"].startswith("*Escalation:* <") and "assigned to Ann Archer" in texts["/queue"]

    # A task run twice sends nothing twice.
    notify_outbox(batches[0])
    assert len(mail.outbox) == 4 and len(slack.posts) == 4


def test_a_rep_without_an_address_or_webhook_gets_no_notice_and_no_task_is_sent(
    ladder, lanes, django_capture_on_commit_callbacks
):
    ladder.ann.user.email = ""
    ladder.ann.user.save()
    ladder.ann.slack_webhook_url = ""
    ladder.ann.save()

    report = sweep_at(T0 + 3 * MINUTE, django_capture_on_commit_callbacks)

    assert report.fired == {"remind_rep": 2} and report.notices == 0
    assert Escalation.objects.count() == 2 and not Notification.objects.exists()
    assert everything_published(lanes)["notify"] == []


def test_a_failed_sla_notice_is_retried_by_the_notification_sweep(
    ladder, lanes, slack, django_capture_on_commit_callbacks
):
    slack.statuses["/queue"] = 503
    sweep_at(T0 + 3 * MINUTE, django_capture_on_commit_callbacks)
    sweep_at(T0 + 5 * MINUTE, django_capture_on_commit_callbacks)
    run_send_tasks(everything_published(lanes)["notify"])
    failed = Notification.objects.filter(kind=Kind.SLA_ALERT_SLACK)
    assert {(n.status, n.attempts) for n in failed} == {("failed", 1)}
    assert all("HTTP 503" in n.error for n in failed)

    slack.statuses["/queue"] = 200
    assert notifications_sweep() == 2

    assert {(n.status, n.attempts) for n in failed.all()} == {("sent", 2)}
    assert slack.paths().count("/queue") == 4


def test_stuck_sla_notices_are_recovered_like_any_notice_and_resent_from_admin(
    ladder, lanes, slack, settings, client, revops, django_capture_on_commit_callbacks
):
    settings.LEADROUTER_NOTIFICATION_SENDING_TIMEOUT_SECONDS = 300
    lead = ladder.leads[0]
    sweep_at(T0 + 3 * MINUTE, django_capture_on_commit_callbacks)
    everything_published(lanes)
    # A worker died after claiming the reminder's e-mail and Slack post of the first lead.
    Notification.objects.filter(lead=lead).update(
        status="sending", attempts=1, sending_since=timezone.now() - dt.timedelta(minutes=10)
    )

    notifications_sweep(pending_for_seconds=-1)

    # The e-mail goes out again; the Slack post, which has no idempotency key, waits for a person.
    email, post = row(Kind.SLA_REMINDER_EMAIL, lead), row(Kind.SLA_REMINDER_SLACK, lead)
    assert (email.status, email.attempts) == ("sent", 2)
    assert [m.to for m in mail.outbox].count(["ann@example.com"]) == 2  # Both leads' reminders.
    assert post.status == "unknown" and slack.paths() == ["/ann"]  # Only the second lead's post.

    client.force_login(revops)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            admin_url(Notification, "changelist"), {"action": "resend", "_selected_action": [post.pk]}, follow=True
        )

    assert "Resending 1 notification(s)." in response.content.decode()
    assert everything_published(lanes)["notify"] == [("routing.tasks.notify_outbox", [[post.pk]], {})]
    notify_outbox([post.pk])
    post.refresh_from_db()
    assert post.status == "sent" and slack.paths() == ["/ann", "/ann"]


def test_every_kind_of_notification_has_a_renderer():
    # A kind added to the outbox without a renderer would fail every notice of that kind.
    assert set(notice_kinds()) == set(Notification.Kind.values)
