"""Telling the rep about a new lead: what is planned, what the messages say, and that each goes out once.

Slack webhooks are a real HTTP server on 127.0.0.1; e-mail goes through Django's locmem backend (or a real
SMTP backend pointed at a closed port), so only the network edge is stood in for.
"""

import datetime as dt
import socket
import threading
import time
from zoneinfo import ZoneInfo

import factory
import pytest
from django.core import mail
from django.db import connections
from django.utils import timezone
from factory.django import DjangoModelFactory

from routing.models import Assignment, Notification, RepTask, Rule
from routing.notify import (
    Email,
    Notice,
    notice_kind_register,
    notice_kinds,
    notices_record,
    notifications_plan,
    notifications_retry_failed,
    notifications_send,
    notifications_sweep,
)
from tests.factories import AccountFactory, AssignmentFactory, LeadFactory, QueueFactory, RepFactory, UserFactory
from tests.helpers import STALL_SECONDS, join_all, slack_server

SUMMARY = "Country DE matched rule 'DACH enterprise'; round robin in DACH queue picked jane."


class RuleFactory(DjangoModelFactory):
    class Meta:
        model = Rule
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Rule {n}")
    action = Rule.Action.QUEUE
    queue = factory.SubFactory(QueueFactory)


def routed_assignment(*, rep=None, queue=None, **lead_fields):
    """A lead routed to ``rep`` through ``queue``, with its notifications and task stored as routing stores them."""
    queue = queue or QueueFactory(name="DACH")
    rep = rep or RepFactory(user=UserFactory(username="jane", email="jane@seller.example"))
    lead_defaults = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "title": "Head of Data",
        "phone": "+4930123456",
        "company": "Acme",
        "account": AccountFactory(name="Acme Corp", tier="tier_1", is_customer=True),
        "rule": RuleFactory(name="DACH enterprise", queue=queue),
        "score": 72,
        "form_answers": {"Team size": "50-200", "Use case": "Lead routing"},
        "page_history": ["/pricing", {"url": "/demo", "title": "Book a demo"}],
        "receipt": {"outcome": "assigned", "routing": {"summary": SUMMARY, "winner": {"username": "jane"}}},
    }
    lead = LeadFactory(**{**lead_defaults, **lead_fields})
    assignment = AssignmentFactory(lead=lead, rep=rep, queue=queue)
    notifications, task = notifications_plan(assignment=assignment)
    Notification.objects.bulk_create(notifications)
    task.save()
    return assignment


def notification(assignment: Assignment, kind: str) -> Notification:
    return Notification.objects.get(assignment=assignment, kind=kind)


@pytest.fixture
def slack():
    with slack_server() as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    # A port that was free a moment ago: nothing listens there, so connecting is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- The plan --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_plan_gives_email_slack_and_task_when_configured(settings, django_assert_num_queries):
    settings.LEADROUTER_FIRST_TOUCH_MINUTES = 30
    rep = RepFactory(user=UserFactory(email="jane@seller.example"), slack_webhook_url="https://hooks.example/rep")
    queue = QueueFactory(slack_webhook_url="https://hooks.example/queue")
    lead = LeadFactory(first_name="Jane", last_name="Doe", company="Acme")
    stored = AssignmentFactory(lead=lead, rep=rep, queue=queue)
    # The routing service hands over an assignment with lead, rep, user and queue loaded.
    assignment = Assignment.objects.select_related("lead", "rep__user", "queue").get(pk=stored.pk)

    with django_assert_num_queries(0):
        notifications, task = notifications_plan(assignment=assignment)

    assert [n.kind for n in notifications] == ["email", "slack"]
    assert all(n.pk is None and n.status == "pending" and n.rep == rep and n.lead == lead for n in notifications)
    assert task.pk is None
    assert task.title == "Follow up: Jane Doe (Acme)"
    assert task.due_at == assignment.assigned_at + dt.timedelta(minutes=30)
    assert (task.rep, task.lead, task.assignment) == (rep, lead, assignment)


@pytest.mark.django_db
def test_plan_gives_only_task_when_rep_has_no_email_and_no_webhook():
    rep = RepFactory(user=UserFactory(email=""))
    assignment = AssignmentFactory(rep=rep, queue=QueueFactory(), lead=LeadFactory(company=""))

    notifications, task = notifications_plan(assignment=assignment)

    assert notifications == []
    assert task.title == f"Follow up: {assignment.lead.first_name} {assignment.lead.last_name}"


@pytest.mark.django_db
def test_plan_gives_slack_for_a_queue_webhook_alone():
    rep = RepFactory(user=UserFactory(email=""))
    assignment = AssignmentFactory(rep=rep, queue=QueueFactory(slack_webhook_url="https://hooks.example/queue"))

    notifications, _ = notifications_plan(assignment=assignment)

    assert [n.kind for n in notifications] == ["slack"]


# --- The e-mail ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_email_tells_the_rep_everything_in_text_and_html(settings):
    settings.LEADROUTER_BASE_URL = "https://leads.example.com/"
    assignment = routed_assignment()
    lead = assignment.lead

    assert notifications_send(assignment_ids=[assignment.pk]) == 1

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == "New lead: Ada Lovelace (Acme)"
    assert message.to == ["jane@seller.example"]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    due = RepTask.objects.get(assignment=assignment).due_at
    for body in (message.body, html):
        for expected in (
            "Ada Lovelace",
            "Head of Data",
            lead.email,
            "+4930123456",
            "Acme Corp",
            "Tier 1 (ABM)",
            "customer",
            "72",
            SUMMARY.replace("'", "&#x27;") if body is html else SUMMARY,
            "DACH enterprise",
            "Team size",
            "50-200",
            "Use case",
            "Lead routing",
            "/pricing",
            "Book a demo",
            "/demo",
            # The rep works in Europe/Berlin; the due time is shown there.
            due.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%d %H:%M %Z"),
            f"https://leads.example.com/admin/routing/lead/{lead.pk}/change/",
        ):
            assert expected in body, (expected, body)
    row = notification(assignment, "email")
    assert (row.status, row.attempts, row.error) == ("sent", 1, "")
    assert row.sent_at is not None


@pytest.mark.django_db
def test_due_time_is_shown_in_the_reps_time_zone():
    rep = RepFactory(user=UserFactory(email="kai@seller.example"), time_zone="America/New_York")
    assignment = routed_assignment(rep=rep)
    RepTask.objects.filter(assignment=assignment).update(due_at=dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC))

    notifications_send(assignment_ids=[assignment.pk])

    assert "Follow up by 2026-03-02 10:00 EST." in mail.outbox[0].body


@pytest.mark.django_db
def test_html_part_escapes_a_script_form_answer():
    assignment = routed_assignment(form_answers={"Comment": "<script>alert(1)</script>"})

    notifications_send(assignment_ids=[assignment.pk])

    [(html, _)] = mail.outbox[0].alternatives
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # The plain-text part is not HTML: it shows the answer as typed.
    assert "Comment: <script>alert(1)</script>" in mail.outbox[0].body


@pytest.mark.django_db
def test_missing_receipt_and_account_fall_back_gracefully():
    assignment = routed_assignment(receipt={}, account=None, rule=None, score=None, form_answers={}, page_history=[])

    assert notifications_send(assignment_ids=[assignment.pk]) == 1

    body = mail.outbox[0].body
    assert "Routed by rules" in body
    assert "Matched account: none" in body
    assert "Form answers" not in body


@pytest.mark.django_db
def test_sending_twice_sends_one_email():
    assignment = routed_assignment()

    assert notifications_send(assignment_ids=[assignment.pk]) == 1
    # The task ran again, as after a redelivered message.
    assert notifications_send(assignment_ids=[assignment.pk]) == 0

    assert len(mail.outbox) == 1
    row = notification(assignment, "email")
    assert (row.status, row.attempts) == ("sent", 1)


@pytest.mark.django_db
def test_notification_left_sending_is_not_sent_again():
    assignment = routed_assignment()
    # A worker was killed after claiming the e-mail: whether it went out is unknown.
    Notification.objects.filter(assignment=assignment).update(status="sending", attempts=1)

    assert notifications_send(assignment_ids=[assignment.pk]) == 0

    assert mail.outbox == []
    assert notification(assignment, "email").status == "sending"


@pytest.mark.django_db
def test_only_the_given_assignments_are_sent():
    mine = routed_assignment()
    other = routed_assignment(rep=RepFactory(user=UserFactory(email="kai@seller.example")), queue=QueueFactory())

    notifications_send(assignment_ids=[mine.pk])

    assert [m.to for m in mail.outbox] == [["jane@seller.example"]]
    assert notification(other, "email").status == "pending"


# --- Slack -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_slack_posts_to_the_rep_and_the_queue_webhook(slack):
    rep = RepFactory(user=UserFactory(email="jane@seller.example"), slack_webhook_url=slack.url("/rep"))
    assignment = routed_assignment(rep=rep, queue=QueueFactory(slack_webhook_url=slack.url("/queue")))

    assert notifications_send(assignment_ids=[assignment.pk]) == 2

    assert slack.paths() == ["/queue", "/rep"]
    text = slack.posts[0]["json"]["text"]
    assert set(slack.posts[0]["json"]) == {"text"}
    assert text.startswith("*New lead for you:* <http")
    assert "Ada Lovelace (Acme)" in text
    assert SUMMARY in text
    assert f"/admin/routing/lead/{assignment.lead.pk}/change/" in text
    assert notification(assignment, "slack").status == "sent"
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_same_webhook_on_rep_and_queue_is_posted_once(slack):
    url = slack.url("/shared")
    rep = RepFactory(user=UserFactory(email=""), slack_webhook_url=url)
    assignment = routed_assignment(rep=rep, queue=QueueFactory(slack_webhook_url=url))

    notifications_send(assignment_ids=[assignment.pk])

    assert slack.paths() == ["/shared"]


@pytest.mark.django_db
def test_slack_escapes_lead_text_for_mrkdwn(slack):
    rep = RepFactory(user=UserFactory(email=""), slack_webhook_url=slack.url("/rep"))
    assignment = routed_assignment(rep=rep, company="<!channel> & Co")

    notifications_send(assignment_ids=[assignment.pk])

    text = slack.posts[0]["json"]["text"]
    assert "<!channel>" not in text
    assert "&lt;!channel&gt; &amp; Co" in text


@pytest.mark.django_db
def test_failing_webhook_marks_slack_failed_and_email_still_goes(slack):
    slack.statuses["/rep"] = 500
    rep = RepFactory(user=UserFactory(email="jane@seller.example"), slack_webhook_url=slack.url("/rep"))
    assignment = routed_assignment(rep=rep)

    assert notifications_send(assignment_ids=[assignment.pk]) == 1

    assert len(mail.outbox) == 1
    assert notification(assignment, "email").status == "sent"
    failed = notification(assignment, "slack")
    assert (failed.status, failed.attempts, failed.sent_at) == ("failed", 1, None)
    assert "HTTP 500" in failed.error


@pytest.mark.django_db
def test_one_bad_webhook_of_two_fails_the_slack_notice_but_the_other_is_posted(slack):
    slack.statuses["/queue"] = 404
    rep = RepFactory(user=UserFactory(email=""), slack_webhook_url=slack.url("/rep"))
    assignment = routed_assignment(rep=rep, queue=QueueFactory(slack_webhook_url=slack.url("/queue")))

    assert notifications_send(assignment_ids=[assignment.pk]) == 0

    assert slack.paths() == ["/queue", "/rep"]
    assert "HTTP 404" in notification(assignment, "slack").error


@pytest.mark.django_db
def test_unreachable_webhook_fails_within_the_timeout(settings, closed_port):
    settings.LEADROUTER_SLACK_TIMEOUT_SECONDS = 0.5
    rep = RepFactory(user=UserFactory(email=""), slack_webhook_url=f"http://127.0.0.1:{closed_port}/hook")
    assignment = routed_assignment(rep=rep)

    started = time.monotonic()
    assert notifications_send(assignment_ids=[assignment.pk]) == 0

    assert time.monotonic() - started < 3
    failed = notification(assignment, "slack")
    assert failed.status == "failed"
    assert "unreachable" in failed.error


@pytest.mark.django_db
def test_webhook_that_never_answers_fails_after_the_timeout(settings, slack):
    settings.LEADROUTER_SLACK_TIMEOUT_SECONDS = 0.3
    slack.hanging.add("/slow")
    rep = RepFactory(user=UserFactory(email=""), slack_webhook_url=slack.url("/slow"))
    assignment = routed_assignment(rep=rep)

    started = time.monotonic()
    notifications_send(assignment_ids=[assignment.pk])

    assert time.monotonic() - started < 3
    failed = notification(assignment, "slack")
    assert failed.status == "failed"
    assert "timed out" in failed.error


@pytest.mark.django_db
def test_failing_mail_server_does_not_stop_slack(settings, slack, closed_port):
    # A real SMTP backend pointed at a port where no mail server listens.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port, 1
    rep = RepFactory(user=UserFactory(email="jane@seller.example"), slack_webhook_url=slack.url("/rep"))
    assignment = routed_assignment(rep=rep)

    assert notifications_send(assignment_ids=[assignment.pk]) == 1

    assert notification(assignment, "email").status == "failed"
    assert notification(assignment, "email").error
    assert notification(assignment, "slack").status == "sent"


# --- What a send reads ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_send_with_nothing_pending_reads_one_statement_and_sends_nothing(django_assert_num_queries):
    # The task ran again after its notices went out (a redelivered message): it finds nothing and stops.
    assignment = routed_assignment()
    assert notifications_send(assignment_ids=[assignment.pk]) == 1

    with django_assert_num_queries(1):
        assert notifications_send(assignment_ids=[assignment.pk]) == 0

    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_batch_reads_its_leads_reps_and_assignments_once_for_all(slack, django_assert_num_queries):
    # Four reads (notices, assignments, leads, reps) and two writes (claim, mark sent), however many leads:
    # nothing about one lead is read on its own while its messages are built.
    assignments = [
        routed_assignment(
            rep=RepFactory(user=UserFactory(email=f"rep{n}@seller.example"), slack_webhook_url=slack.url(f"/{n}")),
            queue=QueueFactory(name=f"Queue {n}"),
            account=AccountFactory(name=f"Account {n}"),
        )
        for n in range(3)
    ]

    with django_assert_num_queries(6):
        assert notifications_send(assignment_ids=[a.pk for a in assignments]) == 6

    assert sorted(m.to[0] for m in mail.outbox) == ["rep0@seller.example", "rep1@seller.example", "rep2@seller.example"]
    assert slack.paths() == ["/0", "/1", "/2"]


@pytest.mark.django_db
def test_a_registered_renderer_can_read_any_column_of_the_notices_lead():
    # Another app's renderer reads lead columns no routing message shows, and gets them.
    kind = Notification.Kind.SLA_REMINDER_EMAIL
    registered = notice_kinds()[kind]
    seen = []

    def render(notifications):
        def build(notification):
            seen.append((notification.lead.country, notification.lead.city))
            return Email(subject="Reminder", body="Call them.", to=["jane@seller.example"])

        return build

    lead = LeadFactory(country="AT", city="Graz")
    rep = RepFactory(user=UserFactory(email="jane@seller.example"))
    notice_kind_register(kind, channel=Notification.Kind.EMAIL, render=render)
    try:
        ids = notices_record([Notice(1, lead.pk, rep.pk, kind)], now=timezone.now())
        assert notifications_send(notification_ids=ids) == 1
    finally:
        notice_kind_register(kind, channel=registered.channel, render=registered.render)

    assert seen == [("AT", "Graz")]
    assert mail.outbox[0].body == "Call them."


# --- Retrying failures -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_retry_puts_failed_notices_back_and_they_go_out(slack):
    slack.statuses["/rep"] = 503
    rep = RepFactory(user=UserFactory(email=""), slack_webhook_url=slack.url("/rep"))
    assignment = routed_assignment(rep=rep)
    notifications_send(assignment_ids=[assignment.pk])
    slack.statuses["/rep"] = 200

    assert notifications_retry_failed() == [assignment.pk]
    assert notifications_send(assignment_ids=[assignment.pk]) == 1

    row = notification(assignment, "slack")
    assert (row.status, row.attempts, row.error) == ("sent", 2, "")


@pytest.mark.django_db
def test_retry_gives_up_after_max_attempts():
    assignment = routed_assignment()
    Notification.objects.filter(assignment=assignment).update(status="failed", attempts=3, error="SMTP down")

    assert notifications_retry_failed(max_attempts=3) == []
    assert notification(assignment, "email").status == "failed"


# --- Concurrency (PostgreSQL) ----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_senders_send_one_email():
    assignment = routed_assignment()
    threads_count = 4
    start = threading.Barrier(threads_count)
    results: list[int] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            start.wait(STALL_SECONDS)
            results.append(notifications_send(assignment_ids=[assignment.pk]))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    join_all(threads)

    assert errors == []
    assert sorted(results) == [0, 0, 0, 1]
    assert len(mail.outbox) == 1
    row = notification(assignment, "email")
    assert (row.status, row.attempts) == ("sent", 1)


def test_the_sweep_sends_what_a_lost_message_left_pending_and_retries_failures(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assignment = AssignmentFactory(rep=RepFactory(user=UserFactory(email="pat@seller.example")))
    notifications, _task = notifications_plan(assignment=assignment)
    Notification.objects.bulk_create(notifications)
    Notification.objects.update(created_at=timezone.now() - dt.timedelta(minutes=5))

    assert notifications_sweep() == 1
    assert Notification.objects.get().status == "sent"
    # Nothing left to do: running it again sends nothing.
    assert notifications_sweep() == 0
    assert len(mail.outbox) == 1
