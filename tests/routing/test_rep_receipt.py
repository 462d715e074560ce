"""The rep's lead page explains in plain words how the lead became theirs: routed (rules, queue, method, each
colleague's reason), taken from a shared queue, reassigned or reopened; no queue ids, method keys, ISO
timestamps or rule conditions."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from routing.dispatch import leads_route
from routing.models import Lead, Queue, Rule
from routing.notify import notifications_send
from routing.render import how_it_became_theirs, receipt_for_people
from routing.services import lead_take_next
from tests.factories import QueueFactory, QueueMembershipFactory, RepFactory, UserFactory

pytestmark = pytest.mark.django_db

ISO_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def visible_text(page: str) -> str:
    """The page without its raw receipt block (kept one click away for RevOps), as text."""
    return page[: page.index('<details class="why-raw">')] + page[page.index("</details>", page.index("why-raw")) :]


def test_a_routed_lead_reads_without_router_internals(client, rep):
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    colleague = RepFactory(user=UserFactory(username="colleague"), team=rep.team, time_zone="UTC", active=False)
    rep.time_zone = "UTC"
    rep.save()
    queue = QueueFactory(name="DACH Commercial", method=Queue.Method.ROUND_ROBIN)
    QueueMembershipFactory(queue=queue, rep=colleague, position=0)
    QueueMembershipFactory(queue=queue, rep=rep, position=1)
    Rule.objects.create(
        name="Existing customers",
        position=1,
        action=Rule.Action.QUEUE,
        queue=queue,
        condition={"all": [{"field": "account.is_customer", "op": "equals", "value": True}]},
    )
    Rule.objects.create(name="Everyone else", position=2, action=Rule.Action.QUEUE, queue=queue)
    lead = Lead.objects.create(raw_payload={"email": "jana@keller.example", "company": "Keller GmbH"})
    leads_route(lead_ids=[lead.pk])
    lead.refresh_from_db()
    assert lead.owner == rep
    client.force_login(rep.user)

    page = client.get(reverse("lead-page", args=[lead.pk])).content.decode()

    why = re.sub(r"<[^>]+>", "", visible_text(page[page.index('id="why"') :]))
    assert "Existing customers: did not match" in why and "Everyone else: matched" in why
    assert "DACH Commercial" in why and "Round robin" in why
    assert "colleague" in why and "inactive" in why  # Why the colleague did not get it.
    for internal in ("round_robin", "queue_id", f"queue {queue.pk}", "account.is_customer", "= True"):
        assert internal not in why, internal
    assert not ISO_TIMESTAMP.search(why)
    assert '<pre id="receipt">' in page  # The raw receipt is still there for RevOps, folded away.


def test_after_take_next_the_page_says_the_rep_took_it_from_the_queue(client, rep):
    queue = QueueFactory(name="DACH Commercial")
    QueueMembershipFactory(queue=queue, rep=rep)
    lead = Lead.objects.create(
        raw_payload={"email": "jana@keller.example"},
        status=Lead.Status.QUEUED,
        queue=queue,
        receipt={"outcome": "queued", "routing": {"summary": "Waiting in DACH Commercial: nobody eligible."}},
    )
    client.force_login(rep.user)

    response = client.post(reverse("take-next", args=[queue.pk]), follow=True)

    assert response.redirect_chain[-1][0] == reverse("lead-page", args=[lead.pk])
    page = response.content.decode()
    name = rep.user.get_full_name()
    assert f"{name} took it from the shared queue DACH Commercial." in page
    assert "When it arrived: Waiting in DACH Commercial: nobody eligible." in page
    history = page[page.index('id="assignments"') :]
    assert "Taken from the shared queue" in history and "Routed by rules" not in history


@pytest.mark.parametrize(
    ("reason", "note", "expected"),
    [
        ("routed", "", ""),
        ("routed", "taken from the queue", "Anna took it from the shared queue DACH."),
        ("manual", "Covering for Ben", "Reassigned to Anna by Maria: “Covering for Ben”"),
        ("escalation", "", "Reassigned to Anna by the SLA escalation ladder."),
        ("departure", "", "Handed over to Anna when its previous owner left."),
        ("reopened", "Disqualified by anna: wrong", "Reopened for Anna by Maria: “Disqualified by anna: wrong”"),
    ],
)
def test_how_the_owner_got_the_lead_reads_as_a_sentence(reason, note, expected):
    assert how_it_became_theirs(reason=reason, note=note, owner="Anna", by="Maria", queue="DACH") == expected


def test_a_receipt_of_any_shape_reads_without_raising():
    for receipt in (None, [], {"routing": []}, {"routing": {"queue_path": [None, {"candidates": "x"}]}}, {"score": 3}):
        story = receipt_for_people(receipt, method_labels={})
        assert story["queues"] == [] or story["queues"][0]["candidates"] == []


def test_the_email_of_a_lead_taken_from_the_queue_says_so_not_where_it_waited(rep, django_capture_on_commit_callbacks):
    queue = QueueFactory(name="DACH Commercial")
    QueueMembershipFactory(queue=queue, rep=rep)
    Lead.objects.create(
        raw_payload={"email": "jana@keller.example"},
        status=Lead.Status.QUEUED,
        queue=queue,
        receipt={"outcome": "queued", "routing": {"summary": "Waiting in DACH Commercial: nobody eligible."}},
    )
    with django_capture_on_commit_callbacks(execute=False):
        lead = lead_take_next(rep=rep, queue=queue)
    assert lead is not None

    notifications_send(assignment_ids=[lead.assignments.get(ended_at__isnull=True).pk])

    [email] = mail.outbox
    assert f"{rep.user.get_full_name()} took it from the shared queue DACH Commercial." in email.body
    assert "nobody eligible" not in email.body
