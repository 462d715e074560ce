"""Event bodies built from the leads a batch holds (routing/outbound.py, ``events_record``).

A routing batch, a reassignment or a close records its events from the lead objects it already has instead of
reading the leads back; the body is byte for byte what reading them back gives, and a lead loaded without some
of the view's fields is read in full.
"""

import datetime as dt
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from routing.dispatch import leads_route
from routing.models import EventType, Lead, OutboundEvent, Queue, Rule, WebhookSubscription
from routing.outbound import Event, api_time, events_record
from routing.reassign import leads_reassign
from routing.services import apikey_create, lead_disqualify
from tests.factories import QueueFactory, QueueMembershipFactory, RepFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def inbound(db):
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    queue = QueueFactory(name="Inbound")
    reps = []
    for position, (first, last) in enumerate([("Zoë", "Ärnström"), ("", "")]):
        user = UserFactory(username=f"seller{position}", first_name=first, last_name=last)
        rep = RepFactory(user=user, time_zone="UTC", max_open_leads=1000)
        QueueMembershipFactory(queue=queue, rep=rep, position=position)
        reps.append(rep)
    Rule.objects.create(name="Everything to Inbound", position=1, action=Rule.Action.QUEUE, queue=queue)
    return reps


def lead_read_back(lead_id: int) -> dict:
    """The lead as the event body showed it before the batch's leads were used: read back from the database,
    the owner's and queue's names joined in."""
    row = (
        Lead.objects.filter(pk=lead_id)
        .values(
            *("id", "status", "received_at", "routed_at", "external_id", "source", "campaign", "email"),
            *("first_name", "last_name", "company", "country", "score", "owner_id", "owner__user__username"),
            *("owner__user__first_name", "owner__user__last_name", "queue__name", "closed_at", "close_reason"),
        )
        .get()
    )
    full_name = " ".join(part for part in (row["owner__user__first_name"], row["owner__user__last_name"]) if part)
    return {
        "id": row["id"],
        "status": row["status"],
        "created": api_time(row["received_at"]),
        "routed_at": api_time(row["routed_at"]),
        "external_id": row["external_id"] or None,
        "source": row["source"] or None,
        "campaign": row["campaign"] or None,
        "owner": row["owner__user__username"],
        "owner_name": (full_name or row["owner__user__username"]) if row["owner_id"] else None,
        "queue": row["queue__name"],
        "email": row["email"] or None,
        "first_name": row["first_name"] or None,
        "last_name": row["last_name"] or None,
        "company": row["company"] or None,
        "country": row["country"] or None,
        "score": row["score"],
        "closed": {"at": api_time(row["closed_at"]), "reason": row["close_reason"]} if row["closed_at"] else None,
    }


def body_read_back(event: OutboundEvent) -> str:
    """The body as it was built before the batch's leads were used: the lead read from the database."""
    stored = json.loads(event.body)
    data = {key: value for key, value in stored["data"].items() if key != "lead"}
    return json.dumps(
        {
            "version": 1,
            "id": str(event.pk),
            "type": event.type,
            "created": api_time(event.created_at),
            "data": {"lead": lead_read_back(event.lead_id), **data},
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def test_bodies_built_from_the_batchs_leads_are_byte_for_byte_those_read_back(inbound, revops):
    WebhookSubscription.objects.create(
        name="All", url="https://example.invalid/hooks", events=["lead.received", "lead.assigned"]
    )
    _key, raw_key = apikey_create(name="Website form", scopes=["leads:write"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    posted = api.post(
        "/api/v1/leads/",
        [
            {"email": "jürgen@prospect.de", "first_name": "Jürgen", "company": 'Prospect „GmbH"', "country": "DE"},
            {"email": "max@prospect.de", "external_id": "0031x", "source": "web", "campaign": "Q4"},
            {"email": "ana@prospect.es", "last_name": "O'Neil\u2028", "country": "ES"},
        ],
        format="json",
    )
    assert posted.status_code in (201, 202), posted.content
    lead_ids = sorted(Lead.objects.values_list("pk", flat=True))
    # Each body shows the lead as it was then: compare it before the next change.
    received = list(OutboundEvent.objects.filter(type="lead.received"))
    assert len(received) == 3
    for event in received:
        assert event.body == body_read_back(event)
    leads_route(lead_ids=lead_ids)
    assigned = list(OutboundEvent.objects.filter(type="lead.assigned").order_by("lead_id"))
    assert len(assigned) == 3
    for event in assigned:
        assert event.body == body_read_back(event)
        lead = json.loads(event.body)["data"]["lead"]
        assert lead["owner"] in ("seller0", "seller1") and lead["queue"] == "Inbound"
    zoe = next(json.loads(e.body)["data"]["lead"] for e in assigned if "Zoë" in e.body)
    assert zoe["owner_name"] == "Zoë Ärnström"

    # Reassigned and closed, built from the leads those layers hold, read back the same.
    WebhookSubscription.objects.create(
        name="Changes", url="https://example.invalid/changes", events=["lead.reassigned", "lead.closed"]
    )
    lead = Lead.objects.get(pk=lead_ids[0])
    other = next(rep for rep in inbound if rep.pk != lead.owner_id)
    leads_reassign(leads=[lead], to_rep=other, by=revops, note="covering")
    reassigned = OutboundEvent.objects.get(type="lead.reassigned")
    assert reassigned.body == body_read_back(reassigned)
    assert json.loads(reassigned.body)["data"]["previous_owner"] in ("seller0", "seller1")
    assert lead_disqualify(lead=Lead.objects.get(pk=lead.pk), by=other.user, reason='Student „project"')
    closed_event = OutboundEvent.objects.get(type="lead.closed")
    assert closed_event.body == body_read_back(closed_event)
    closed = json.loads(closed_event.body)["data"]["lead"]
    assert closed["closed"]["reason"] == 'Student „project"' and closed["status"] == "disqualified"


def test_an_event_that_carries_its_lead_reads_no_lead_row(inbound):
    WebhookSubscription.objects.create(name="All", url="https://example.invalid/hooks", events=["lead.touched"])
    lead = Lead.objects.create(email="max@prospect.de", raw_payload={}, owner=inbound[0], status="assigned")
    lead = Lead.objects.get(pk=lead.pk)
    with CaptureQueriesContext(connection) as queries:
        events_record([Event(EventType.LEAD_TOUCHED, lead.pk, {"touch": {"kind": "call"}}, lead=lead)], now=NOW)
    assert not [query for query in queries if 'FROM "routing_lead"' in query["sql"]]
    carried = OutboundEvent.objects.get()
    # The same event without the lead reads it, and writes the same body.
    events_record([Event(EventType.LEAD_TOUCHED, lead.pk, {"touch": {"kind": "call"}})], now=NOW)
    read = OutboundEvent.objects.exclude(pk=carried.pk).get()
    assert read.body.replace(str(read.pk), "") == carried.body.replace(str(carried.pk), "")
    assert carried.body == body_read_back(carried)
    # A lead loaded without some of the view's fields is read in full rather than field by field.
    partial = Lead.objects.only("id").get(pk=lead.pk)
    with CaptureQueriesContext(connection) as queries:
        events_record([Event(EventType.LEAD_TOUCHED, lead.pk, {"touch": {"kind": "call"}}, lead=partial)], now=NOW)
    assert len([query for query in queries if 'FROM "routing_lead"' in query["sql"]]) == 1
