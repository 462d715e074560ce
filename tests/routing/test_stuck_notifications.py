"""Nothing is silently stuck after a crash: a notification a dead worker left "sending" is sent again (e-mail) or
shown as "delivery unknown" (Slack) once the timeout passed, the routing health page and admin offer to resend
it to the people who may see its lead, and /healthz reports the broker itself.
"""

import datetime as dt
import time

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from routing.models import Notification
from routing.notify import notifications_plan, notifications_resend, notifications_sweep
from tests.factories import AssignmentFactory, LeadFactory, QueueFactory, RepFactory, TeamFactory, UserFactory
from tests.helpers import admin_url, messages_text

pytestmark = pytest.mark.django_db

# Any URL: nothing may be posted to Slack in these tests, and a post to this port would fail loudly.
WEBHOOK = "http://127.0.0.1:9/never-posted"


def assigned(rep, *, slack: bool = False, company: str = "Acme AG"):
    """A lead assigned to ``rep`` with its e-mail (and Slack) notices stored as routing stores them."""
    rep.user.email = rep.user.email or f"{rep.user.username}@seller.example"
    rep.user.save()
    if slack:
        rep.slack_webhook_url = WEBHOOK
        rep.save()
    lead = LeadFactory(owner=rep, company=company, status="assigned")
    assignment = AssignmentFactory(lead=lead, rep=rep, queue=QueueFactory())
    notifications, task = notifications_plan(assignment=assignment)
    Notification.objects.bulk_create(notifications)
    task.save()
    return assignment


def left_sending(assignment, *, ago: dt.timedelta, attempts: int = 1, kind: str | None = None) -> None:
    """As a worker killed between the claim and the outcome leaves them."""
    rows = Notification.objects.filter(assignment=assignment)
    if kind:
        rows = rows.filter(kind=kind)
    rows.update(status="sending", attempts=attempts, sending_since=timezone.now() - ago)


def row(assignment, kind: str = "email") -> Notification:
    return Notification.objects.get(assignment=assignment, kind=kind)


# --- The sweep -------------------------------------------------------------------------------------------


def test_sending_a_notice_records_when_it_started(rep):
    assignment = assigned(rep)
    before = timezone.now()

    notifications_sweep(pending_for_seconds=-1)

    sent = row(assignment)
    assert sent.status == "sent"
    assert sent.sending_since is not None and sent.sending_since >= before


def test_an_email_left_sending_is_sent_again_after_the_timeout_with_the_same_message_id(rep, settings):
    settings.LEADROUTER_NOTIFICATION_SENDING_TIMEOUT_SECONDS = 300
    assignment = assigned(rep)
    notifications_sweep(pending_for_seconds=-1)
    first_id = mail.outbox[0].extra_headers["Message-ID"]
    mail.outbox.clear()
    # The worker died after handing the mail over but before recording it: the row is still "sending".
    left_sending(assignment, ago=dt.timedelta(minutes=6), attempts=1)

    assert notifications_sweep() == 1

    [message] = mail.outbox
    assert message.extra_headers["Message-ID"] == first_id
    again = row(assignment)
    assert (again.status, again.attempts, again.error) == ("sent", 2, "")


def test_a_notice_sending_for_less_than_the_timeout_is_left_to_its_worker(rep, settings):
    settings.LEADROUTER_NOTIFICATION_SENDING_TIMEOUT_SECONDS = 300
    assignment = assigned(rep, slack=True)
    left_sending(assignment, ago=dt.timedelta(seconds=30))

    assert notifications_sweep() == 0

    assert mail.outbox == []
    assert {n.status for n in Notification.objects.filter(assignment=assignment)} == {"sending"}


def test_a_slack_notice_left_sending_becomes_delivery_unknown_and_is_not_posted_again(rep, settings):
    settings.LEADROUTER_NOTIFICATION_SENDING_TIMEOUT_SECONDS = 300
    assignment = assigned(rep, slack=True)
    left_sending(assignment, ago=dt.timedelta(minutes=10))

    # The e-mail goes again; the Slack notice is not retried (a second post would be a visible duplicate).
    assert notifications_sweep() == 1

    assert row(assignment, "email").status == "sent"
    unknown = row(assignment, "slack")
    assert (unknown.status, unknown.attempts) == ("unknown", 1)
    assert "unknown" in unknown.error
    assert unknown.get_status_display() == "Delivery unknown"


def test_an_email_left_sending_on_its_last_attempt_becomes_delivery_unknown(rep):
    assignment = assigned(rep)
    left_sending(assignment, ago=dt.timedelta(hours=1), attempts=3)

    assert notifications_sweep(sending_for_seconds=60) == 0

    assert mail.outbox == []
    assert row(assignment).status == "unknown"


def test_a_row_claimed_before_sending_since_existed_counts_as_stale(rep):
    assignment = assigned(rep, slack=True)
    Notification.objects.filter(assignment=assignment).update(status="sending", attempts=1, sending_since=None)

    notifications_sweep(sending_for_seconds=60)

    assert row(assignment, "email").status == "sent"
    assert row(assignment, "slack").status == "unknown"


# --- Resending -------------------------------------------------------------------------------------------


def test_resend_puts_unknown_and_failed_notices_back_and_enqueues_them(rep, django_capture_on_commit_callbacks):
    unknown = assigned(rep, company="Unknown AG")
    failed = assigned(rep, company="Failed AG")
    sent = assigned(rep, company="Sent AG")
    Notification.objects.filter(assignment=unknown).update(status="unknown", attempts=1)
    Notification.objects.filter(assignment=failed).update(status="failed", attempts=3, error="SMTP down")
    Notification.objects.filter(assignment=sent).update(status="sent", attempts=1)
    ids = list(Notification.objects.values_list("pk", flat=True))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert notifications_resend(notification_ids=ids) == 2

    assert len(callbacks) == 1
    assert (row(unknown).status, row(failed).status, row(sent).status) == ("pending", "pending", "sent")
    # What the enqueued task runs (or the sweep, when the broker is down).
    notifications_sweep(pending_for_seconds=-1)
    assert len(mail.outbox) == 2
    assert row(unknown).status == row(failed).status == "sent"


# --- The routing health page -----------------------------------------------------------------------------


@pytest.fixture
def stuck_slack(rep):
    assignment = assigned(rep, slack=True, company="Stuck Slack AG")
    left_sending(assignment, ago=dt.timedelta(hours=1), kind="slack")
    notifications_sweep(sending_for_seconds=60)
    assert row(assignment, "slack").status == "unknown"
    return row(assignment, "slack")


def test_the_manager_sees_the_unknown_delivery_and_resends_it(client, manager, stuck_slack):
    client.force_login(manager)

    page = client.get(reverse("routing-health")).content.decode()

    assert 'id="notifications"' in page
    assert "Stuck Slack AG" in page and "delivery unknown" in page
    resend_url = reverse("notification-resend", args=[stuck_slack.pk])
    assert f'action="{resend_url}"' in page

    response = client.post(resend_url)

    assert response.status_code == 302
    assert response["Location"] == reverse("routing-health") + "#notifications"
    assert "Resending the Slack notice" in messages_text(response)
    stuck_slack.refresh_from_db()
    assert stuck_slack.status == "pending"


def test_a_manager_of_another_team_cannot_see_or_resend_it(client, stuck_slack):
    other_manager = UserFactory(username="other-manager")
    TeamFactory(name="Field Sales").managers.add(other_manager)
    RepFactory(team=other_manager.managed_teams.get())
    client.force_login(other_manager)

    assert "Stuck Slack AG" not in client.get(reverse("routing-health")).content.decode()
    assert client.post(reverse("notification-resend", args=[stuck_slack.pk])).status_code == 404

    stuck_slack.refresh_from_db()
    assert stuck_slack.status == "unknown"


def test_resend_is_a_post(client, revops, stuck_slack):
    client.force_login(revops)

    assert client.get(reverse("notification-resend", args=[stuck_slack.pk])).status_code == 405


def test_a_sent_notice_cannot_be_resent_from_the_page(client, revops, rep):
    assignment = assigned(rep)
    notifications_sweep(pending_for_seconds=-1)
    client.force_login(revops)

    assert client.post(reverse("notification-resend", args=[row(assignment).pk])).status_code == 404
    assert len(mail.outbox) == 1


def test_revops_resend_from_the_notification_admin(client, revops, stuck_slack):
    client.force_login(revops)
    changelist = admin_url(Notification, "changelist")
    listed = client.get(changelist, {"undelivered": "yes"})
    assert listed.context["cl"].result_count == 1

    response = client.post(changelist, {"action": "resend", "_selected_action": [stuck_slack.pk]}, follow=True)

    assert response.status_code == 200
    assert "Resending 1 notification(s)." in response.content.decode()
    stuck_slack.refresh_from_db()
    assert stuck_slack.status == "pending"


# --- /healthz ---------------------------------------------------------------------------------------------


def test_healthz_reports_database_broker_and_worker(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"database": "ok", "broker": "ok", "worker": {"ok": False, "age_seconds": None}}


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:1/0", "amqp://guest:guest@127.0.0.1:1//"], ids=["redis", "rabbitmq"]
)
def test_healthz_answers_503_within_seconds_when_the_broker_is_down(client, settings, url):
    # Nothing listens on port 1: the broker is down. The settings fixture restores the real broker after.
    settings.CELERY_BROKER_URL = url
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    settings.LEADROUTER_BROKER_CHECK_TIMEOUT_SECONDS = 1

    started = time.monotonic()
    response = client.get("/healthz")

    # One try with a one-second timeout, not kombu's retry loop, which would take minutes; the bound
    # is loose so that a busy machine does not fail it.
    assert time.monotonic() - started < 30
    assert response.status_code == 503
    assert response.json()["broker"] == "down"
    assert response.json()["database"] == "ok"


def test_healthz_reports_a_file_system_broker_without_its_folders_as_down(client, settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    missing = str(tmp_path / "gone")
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": missing,
        "data_folder_out": missing,
        "control_folder": missing,
    }

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"] == "down"
