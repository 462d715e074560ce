"""The exact new-lead messages: subject, both bodies, headers, the whole MIME message and the Slack text, byte
for byte, so that a change in how they are loaded or built cannot change a character a rep receives.

Row ids differ from run to run; the expected text names them LEAD_PK and NOTIFICATION_PK. The MIME
boundary is random in every message and is compared as BOUNDARY.
"""

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail

from routing.models import Assignment, Notification, RepTask
from routing.notify import notifications_plan, notifications_send
from tests.factories import AccountFactory, AssignmentFactory, LeadFactory, QueueFactory, RepFactory, UserFactory
from tests.helpers import slack_server
from tests.routing.test_notify import RuleFactory

NOW = dt.datetime(2026, 3, 2, 14, 7, 9, tzinfo=dt.UTC)
DUE = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def slack():
    with slack_server() as server:
        yield server


@pytest.fixture(autouse=True)
def mail_settings(settings):
    settings.LEADROUTER_BASE_URL = "https://leads.example.com/"
    settings.DEFAULT_FROM_EMAIL = "Lead Router <leads@example.com>"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def stored(assignment: Assignment) -> Assignment:
    notifications, task = notifications_plan(assignment=assignment)
    Notification.objects.bulk_create(notifications)
    task.due_at = DUE
    task.save()
    return assignment


def full_assignment(slack) -> Assignment:
    rep = RepFactory(
        user=UserFactory(username="jane", first_name="Jane", last_name="Roe", email="jane@seller.example"),
        time_zone="Europe/Berlin",
        slack_webhook_url=slack.url("/rep"),
    )
    queue = QueueFactory(name="DACH <Inbound>", slack_webhook_url=slack.url("/queue"))
    lead = LeadFactory(
        email="ada@acme.example",
        first_name="Ada",
        last_name="Lovelace",
        title="Head of Data & AI",
        phone="+49 30 123456",
        company="Acme & <Sons>",
        account=AccountFactory(name="Acme Corp", tier="tier_1", is_customer=True),
        rule=RuleFactory(name="DACH 'enterprise'", queue=queue),
        score=72,
        fit_score=40,
        intent_score=None,
        # Keys shortest first: PostgreSQL's jsonb keeps an object's keys in that order, SQLite as written.
        form_answers={
            "": "no question",
            "Tools": ["Salesforce", {"crm": True}, None, 3],
            "Budget": None,
            "Comment": '<script>alert(1)</script> & "more"',
            "Team size": "50-200",
        },
        page_history=["/pricing", {"url": "/demo", "title": "Book a demo", "at": "2026-03-01T10:00:00Z"}, {"x": 1}],
        receipt={"outcome": "assigned", "routing": {"summary": "Country DE matched rule 'DACH'; round robin."}},
    )
    return stored(AssignmentFactory(lead=lead, rep=rep, queue=queue, assigned_at=NOW))


def bare_assignment() -> Assignment:
    # No names, no company, no account, rule, score, receipt, queue or task; the task's due time from the assignment.
    rep = RepFactory(user=UserFactory(username="kai", first_name="", last_name="", email="kai@seller.example"))
    rep.time_zone = "America/New_York"
    rep.save()
    lead = LeadFactory(
        email="someone@nowhere.example",
        first_name="",
        last_name="",
        title="",
        phone="",
        company="",
        score=None,
        receipt={},
        form_answers={},
        page_history=[],
    )
    assignment = stored(AssignmentFactory(lead=lead, rep=rep, queue=None, assigned_at=NOW))
    RepTask.objects.filter(assignment=assignment).delete()
    return assignment


def reassigned_assignment() -> Assignment:
    manager = UserFactory(username="max", first_name="Max", last_name="Muster", email="max@seller.example")
    rep = RepFactory(user=UserFactory(username="li", first_name="Li", last_name="Wei", email="li@seller.example"))
    lead = LeadFactory(
        email="bo@beta.example",
        first_name="Bo",
        last_name="Berg",
        title="CTO",
        phone="",
        company="Beta\nLabs",
        score=10,
        fit_score=None,
        intent_score=5,
        form_answers=[{"question": "Why?", "answer": "Because"}, "loose answer"],
        page_history="not a list",
        receipt={"routing": {"summary": "Routed to the EMEA queue."}},
    )
    return stored(
        AssignmentFactory(
            lead=lead,
            rep=rep,
            queue=QueueFactory(name="EMEA"),
            reason=Assignment.Reason.MANUAL,
            note="Speaks Swedish",
            assigned_by=manager,
            assigned_at=NOW,
        )
    )


def mime_text(message) -> str:
    """The message as the mail server receives it, with its random MIME boundary named BOUNDARY."""
    return re.sub(r"===============\d+==", "BOUNDARY", message.message().as_bytes().decode())


def named(text: str, assignment: Assignment) -> str:
    email = Notification.objects.get(assignment=assignment, kind="email")
    return text.replace("LEAD_PK", str(assignment.lead_id)).replace("NOTIFICATION_PK", str(email.pk))


@pytest.mark.django_db
def test_a_lead_with_everything_reads_exactly_so_in_the_email_and_on_slack(slack):
    with time_machine.travel(NOW, tick=False):
        assignment = full_assignment(slack)

        assert notifications_send(assignment_ids=[assignment.pk]) == 2

        [message] = mail.outbox
        assert message.subject == "New lead: Ada Lovelace (Acme & <Sons>)"
        assert message.to == ["jane@seller.example"]
        assert message.extra_headers == {
            "Message-ID": named("<notification-NOTIFICATION_PK.lead-LEAD_PK@", assignment) + "leads.example.com>"
        }
        assert mime_text(message) == named(FULL_MIME, assignment)
    text = named(FULL_SLACK, assignment)
    assert sorted((post["path"], post["json"]) for post in slack.posts) == [
        ("/queue", {"text": text}),
        ("/rep", {"text": text}),
    ]


@pytest.mark.django_db
def test_a_bare_lead_reads_exactly_so():
    with time_machine.travel(NOW, tick=False):
        assignment = bare_assignment()

        assert notifications_send(assignment_ids=[assignment.pk]) == 1

        [message] = mail.outbox
        assert mime_text(message) == named(BARE_MIME, assignment)


@pytest.mark.django_db
def test_a_lead_reassigned_by_a_manager_reads_exactly_so():
    with time_machine.travel(NOW, tick=False):
        assignment = reassigned_assignment()

        assert notifications_send(assignment_ids=[assignment.pk]) == 1

        [message] = mail.outbox
        assert mime_text(message) == named(REASSIGNED_MIME, assignment)


@pytest.mark.django_db
def test_a_batch_sends_each_lead_its_own_exact_email(slack):
    # Several assignments in one call: each message is built from its own lead, rep and assignment.
    with time_machine.travel(NOW, tick=False):
        assignments = [full_assignment(slack), bare_assignment(), reassigned_assignment()]

        assert notifications_send(assignment_ids=[a.pk for a in assignments]) == 4

        by_address = {message.to[0]: message for message in mail.outbox}
        assert len(by_address) == 3
        for assignment, expected in zip(assignments, (FULL_MIME, BARE_MIME, REASSIGNED_MIME), strict=True):
            message = by_address[assignment.rep.user.email]
            assert mime_text(message) == named(expected, assignment)


# --- The expected messages -------------------------------------------------------------------------------

FULL_MIME = (
    "Content-Type: multipart/alternative;\n"
    ' boundary="BOUNDARY"\n'
    "MIME-Version: 1.0\n"
    "Subject: New lead: Ada Lovelace (Acme & <Sons>)\n"
    "From: Lead Router <leads@example.com>\n"
    "To: jane@seller.example\n"
    "Date: Mon, 02 Mar 2026 14:07:09 -0000\n"
    "Message-ID: <notification-NOTIFICATION_PK.lead-LEAD_PK@leads.example.com>\n"
    "\n"
    "--BOUNDARY\n"
    'Content-Type: text/plain; charset="utf-8"\n'
    "MIME-Version: 1.0\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "New lead for you, Jane: Ada Lovelace (Acme & <Sons>)\n"
    "\n"
    "Who\n"
    "  Ada Lovelace, Head of Data & AI\n"
    "  E-mail: ada@acme.example\n"
    "  Phone: +49 30 123456\n"
    "\n"
    "Company\n"
    "  Acme & <Sons>\n"
    "  Matched account: Acme Corp, Tier 1 (ABM), customer\n"
    "\n"
    "Score: 72 (fit 40, intent -)\n"
    "\n"
    "Why this lead is yours\n"
    "  Country DE matched rule 'DACH'; round robin.\n"
    "  Rule: DACH 'enterprise'\n"
    "  Queue: DACH <Inbound>\n"
    "\n"
    "Form answers\n"
    "  no question\n"
    '  Tools: Salesforce, {"crm": true}, , 3\n'
    "  Budget: \n"
    '  Comment: <script>alert(1)</script> & "more"\n'
    "  Team size: 50-200\n"
    "\n"
    "Page history\n"
    "  - /pricing\n"
    "  - 2026-03-01T10:00:00Z — Book a demo — /demo\n"
    '  - {"x": 1}\n'
    "\n"
    "Follow up by 2026-03-02 16:00 CET.\n"
    "\n"
    "Open the lead: https://leads.example.com/admin/routing/lead/LEAD_PK/change/\n"
    "\n"
    "\n"
    "--BOUNDARY\n"
    'Content-Type: text/html; charset="utf-8"\n'
    "MIME-Version: 1.0\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "<!doctype html>\n"
    '<html lang="en">\n'
    "<head>\n"
    '  <meta charset="utf-8">\n'
    "  <title>New lead: Ada Lovelace (Acme &amp; &lt;Sons&gt;)</title>\n"
    "</head>\n"
    "<body style=\"font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; "
    'font-size: 14px; color: #222;">\n'
    "  <p>New lead for you, Jane: <strong>Ada Lovelace (Acme &amp; &lt;Sons&gt;)</strong></p>\n"
    "\n"
    '  <h2 style="font-size: 16px;">Who</h2>\n'
    "  <ul>\n"
    "    <li>Ada Lovelace, Head of Data &amp; AI</li>\n"
    '    <li>E-mail: <a href="mailto:ada@acme.example">ada@acme.example</a></li>\n'
    "    <li>Phone: +49 30 123456</li>\n"
    "  </ul>\n"
    "\n"
    '  <h2 style="font-size: 16px;">Company</h2>\n'
    "  <ul>\n"
    "    <li>Acme &amp; &lt;Sons&gt;</li>\n"
    "    \n"
    "      <li>Matched account: Acme Corp, Tier 1 (ABM), customer</li>\n"
    "    \n"
    "  </ul>\n"
    "\n"
    "  \n"
    "    <p>Score: <strong>72</strong> (fit 40, intent -)</p>\n"
    "  \n"
    "\n"
    '  <h2 style="font-size: 16px;">Why this lead is yours</h2>\n'
    "  <p>Country DE matched rule &#x27;DACH&#x27;; round robin.</p>\n"
    "  \n"
    "    <ul>\n"
    "      <li>Rule: DACH &#x27;enterprise&#x27;</li>\n"
    "      <li>Queue: DACH &lt;Inbound&gt;</li>\n"
    "    </ul>\n"
    "  \n"
    "\n"
    "  \n"
    '    <h2 style="font-size: 16px;">Form answers</h2>\n'
    "    <dl>\n"
    "      \n"
    "        \n"
    "        <dd>no question</dd>\n"
    "      \n"
    '        <dt style="font-weight: bold;">Tools</dt>\n'
    "        <dd>Salesforce, {&quot;crm&quot;: true}, , 3</dd>\n"
    "      \n"
    '        <dt style="font-weight: bold;">Budget</dt>\n'
    "        <dd>-</dd>\n"
    "      \n"
    '        <dt style="font-weight: bold;">Comment</dt>\n'
    "        <dd>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;more&quot;</dd>\n"
    "      \n"
    '        <dt style="font-weight: bold;">Team size</dt>\n'
    "        <dd>50-200</dd>\n"
    "      \n"
    "    </dl>\n"
    "  \n"
    "\n"
    "  \n"
    '    <h2 style="font-size: 16px;">Page history</h2>\n'
    "    <ol>\n"
    "      <li>/pricing</li><li>2026-03-01T10:00:00Z — Book a demo — /demo</li><li>{&quot;x&quot;: 1}</li>\n"
    "    </ol>\n"
    "  \n"
    "\n"
    "  <p>Follow up by <strong>2026-03-02 16:00 CET</strong>.</p>\n"
    '  <p><a href="https://leads.example.com/admin/routing/lead/LEAD_PK/change/">Open the lead</a></p>\n'
    "</body>\n"
    "</html>\n"
    "\n"
    "--BOUNDARY--\n"
)

FULL_SLACK = (
    "*New lead for you:* <https://leads.example.com/admin/routing/lead/LEAD_PK/change/"
    "|Ada Lovelace (Acme &amp; &lt;Sons&gt;)>\n"
    "Head of Data &amp; AI · ada@acme.example · +49 30 123456\n"
    "Account: Acme Corp (Tier 1 (ABM), customer)\n"
    "Score: 72\n"
    "Why: Country DE matched rule 'DACH'; round robin. (rule: DACH 'enterprise')\n"
    "Follow up by 2026-03-02 16:00 CET"
)

BARE_MIME = (
    "Content-Type: multipart/alternative;\n"
    ' boundary="BOUNDARY"\n'
    "MIME-Version: 1.0\n"
    "Subject: New lead: someone@nowhere.example\n"
    "From: Lead Router <leads@example.com>\n"
    "To: kai@seller.example\n"
    "Date: Mon, 02 Mar 2026 14:07:09 -0000\n"
    "Message-ID: <notification-NOTIFICATION_PK.lead-LEAD_PK@leads.example.com>\n"
    "\n"
    "--BOUNDARY\n"
    'Content-Type: text/plain; charset="utf-8"\n'
    "MIME-Version: 1.0\n"
    "Content-Transfer-Encoding: 7bit\n"
    "\n"
    "New lead for you, kai: someone@nowhere.example\n"
    "\n"
    "Who\n"
    "  someone@nowhere.example\n"
    "  E-mail: someone@nowhere.example\n"
    "\n"
    "Company\n"
    "  (unknown)\n"
    "  Matched account: none\n"
    "\n"
    "Why this lead is yours\n"
    "  Routed by rules\n"
    "\n"
    "Follow up by 2026-03-02 10:07 EST.\n"
    "\n"
    "Open the lead: https://leads.example.com/admin/routing/lead/LEAD_PK/change/\n"
    "\n"
    "\n"
    "--BOUNDARY\n"
    'Content-Type: text/html; charset="utf-8"\n'
    "MIME-Version: 1.0\n"
    "Content-Transfer-Encoding: 7bit\n"
    "\n"
    "<!doctype html>\n"
    '<html lang="en">\n'
    "<head>\n"
    '  <meta charset="utf-8">\n'
    "  <title>New lead: someone@nowhere.example</title>\n"
    "</head>\n"
    "<body style=\"font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; "
    'font-size: 14px; color: #222;">\n'
    "  <p>New lead for you, kai: <strong>someone@nowhere.example</strong></p>\n"
    "\n"
    '  <h2 style="font-size: 16px;">Who</h2>\n'
    "  <ul>\n"
    "    <li>someone@nowhere.example</li>\n"
    '    <li>E-mail: <a href="mailto:someone@nowhere.example">someone@nowhere.example</a></li>\n'
    "    \n"
    "  </ul>\n"
    "\n"
    '  <h2 style="font-size: 16px;">Company</h2>\n'
    "  <ul>\n"
    "    <li>(unknown)</li>\n"
    "    \n"
    "      <li>Matched account: none</li>\n"
    "    \n"
    "  </ul>\n"
    "\n"
    "  \n"
    "\n"
    '  <h2 style="font-size: 16px;">Why this lead is yours</h2>\n'
    "  <p>Routed by rules</p>\n"
    "  \n"
    "\n"
    "  \n"
    "\n"
    "  \n"
    "\n"
    "  <p>Follow up by <strong>2026-03-02 10:07 EST</strong>.</p>\n"
    '  <p><a href="https://leads.example.com/admin/routing/lead/LEAD_PK/change/">Open the lead</a></p>\n'
    "</body>\n"
    "</html>\n"
    "\n"
    "--BOUNDARY--\n"
)

REASSIGNED_MIME = (
    "Content-Type: multipart/alternative;\n"
    ' boundary="BOUNDARY"\n'
    "MIME-Version: 1.0\n"
    "Subject: New lead: Bo Berg (Beta Labs)\n"
    "From: Lead Router <leads@example.com>\n"
    "To: li@seller.example\n"
    "Date: Mon, 02 Mar 2026 14:07:09 -0000\n"
    "Message-ID: <notification-NOTIFICATION_PK.lead-LEAD_PK@leads.example.com>\n"
    "\n"
    "--BOUNDARY\n"
    'Content-Type: text/plain; charset="utf-8"\n'
    "MIME-Version: 1.0\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "New lead for you, Li: Bo Berg (Beta Labs)\n"
    "\n"
    "Who\n"
    "  Bo Berg, CTO\n"
    "  E-mail: bo@beta.example\n"
    "\n"
    "Company\n"
    "  Beta\n"
    "Labs\n"
    "  Matched account: none\n"
    "\n"
    "Score: 10 (fit -, intent 5)\n"
    "\n"
    "Why this lead is yours\n"
    "  Reassigned to Li Wei by Max Muster: “Speaks Swedish”\n"
    "  Queue: EMEA\n"
    "\n"
    "Follow up by 2026-03-02 16:00 CET.\n"
    "\n"
    "Open the lead: https://leads.example.com/admin/routing/lead/LEAD_PK/change/\n"
    "\n"
    "\n"
    "--BOUNDARY\n"
    'Content-Type: text/html; charset="utf-8"\n'
    "MIME-Version: 1.0\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "<!doctype html>\n"
    '<html lang="en">\n'
    "<head>\n"
    '  <meta charset="utf-8">\n'
    "  <title>New lead: Bo Berg (Beta Labs)</title>\n"
    "</head>\n"
    "<body style=\"font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; "
    'font-size: 14px; color: #222;">\n'
    "  <p>New lead for you, Li: <strong>Bo Berg (Beta Labs)</strong></p>\n"
    "\n"
    '  <h2 style="font-size: 16px;">Who</h2>\n'
    "  <ul>\n"
    "    <li>Bo Berg, CTO</li>\n"
    '    <li>E-mail: <a href="mailto:bo@beta.example">bo@beta.example</a></li>\n'
    "    \n"
    "  </ul>\n"
    "\n"
    '  <h2 style="font-size: 16px;">Company</h2>\n'
    "  <ul>\n"
    "    <li>Beta\n"
    "Labs</li>\n"
    "    \n"
    "      <li>Matched account: none</li>\n"
    "    \n"
    "  </ul>\n"
    "\n"
    "  \n"
    "    <p>Score: <strong>10</strong> (fit -, intent 5)</p>\n"
    "  \n"
    "\n"
    '  <h2 style="font-size: 16px;">Why this lead is yours</h2>\n'
    "  <p>Reassigned to Li Wei by Max Muster: “Speaks Swedish”</p>\n"
    "  \n"
    "    <ul>\n"
    "      \n"
    "      <li>Queue: EMEA</li>\n"
    "    </ul>\n"
    "  \n"
    "\n"
    "  \n"
    "\n"
    "  \n"
    "\n"
    "  <p>Follow up by <strong>2026-03-02 16:00 CET</strong>.</p>\n"
    '  <p><a href="https://leads.example.com/admin/routing/lead/LEAD_PK/change/">Open the lead</a></p>\n'
    "</body>\n"
    "</html>\n"
    "\n"
    "--BOUNDARY--\n"
)
