"""Signed webhooks out and CRM owner write-back (routing/outbound.py), against local HTTP stand-ins.

A lead's events are recorded with the change that made them, signed, sent in order per lead and receiver,
retried with backoff (or after Retry-After), logged attempt by attempt, and dead after the maximum age. The
HubSpot and Salesforce connectors write the new owner back as those APIs are documented to take it. The
sender runs in-process here; tests/test_webhooks_worker.py runs it in a real worker.
"""

import datetime as dt
import hashlib
import hmac
import io
import json
from contextlib import redirect_stderr

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from routing.dispatch import leads_route
from routing.models import (
    CrmConnector,
    CrmOwner,
    Delivery,
    DeliveryAttempt,
    EventType,
    Lead,
    OutboundEvent,
    Queue,
    Rule,
    WebhookSubscription,
)
from routing.outbound import (
    Event,
    deliveries_resend,
    deliveries_send,
    events_record,
    retry_after_seconds,
    signature,
    signature_verify,
)
from routing.reassign import leads_reassign
from routing.services import apikey_create, lead_disqualify
from tests.factories import QueueFactory, QueueMembershipFactory, RepFactory, UserFactory
from tests.helpers import admin_url, import_csv, messages_text, run_together
from tests.receivers import HANG, Answer, HubSpot, Receiver, Salesforce, running

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def inbound(db):
    """A round-robin queue of two reps that takes every lead, and the catch-all."""
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    queue = QueueFactory(name="Inbound")
    reps = []
    for position in range(2):
        rep = RepFactory(user=UserFactory(username=f"seller{position}"), time_zone="UTC", max_open_leads=1000)
        QueueMembershipFactory(queue=queue, rep=rep, position=position)
        reps.append(rep)
    Rule.objects.create(name="Everything to Inbound", position=1, action=Rule.Action.QUEUE, queue=queue)
    return reps


@pytest.fixture
def api():
    _key, raw_key = apikey_create(name="Website form", scopes=["leads:write", "touches:write", "receipts:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


@pytest.fixture
def receiver():
    with running(Receiver()) as server:
        yield server


def subscribe(url: str, *events: str, name: str = "Warehouse") -> WebhookSubscription:
    return WebhookSubscription.objects.create(name=name, url=url, events=list(events))


def post_lead(api: APIClient, **fields) -> int:
    response = api.post("/api/v1/leads/", {"email": "max@prospect.de", "country": "DE", **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def bodies(receiver: Receiver) -> list[dict]:
    return [request.json() for request in receiver.requests]


def test_a_lead_posted_routed_and_touched_sends_received_assigned_touched_in_order_signed(api, inbound, receiver):
    subscription = subscribe(receiver.url("/hooks"), "lead.received", "lead.assigned", "lead.touched")
    lead_id = post_lead(api, external_id="f-1")
    leads_route(lead_ids=[lead_id])
    touched = api.post(f"/api/v1/leads/{lead_id}/touches/", {"kind": "call"}, format="json")
    assert touched.status_code == 201, touched.content

    report = deliveries_send()

    assert report.delivered == 3
    events = bodies(receiver)
    assert [event["type"] for event in events] == ["lead.received", "lead.assigned", "lead.touched"]
    owner = Lead.objects.get(pk=lead_id).owner.user.username
    assert [event["data"]["lead"]["status"] for event in events] == ["received", "assigned", "working"]
    assert events[1]["data"]["lead"]["owner"] == owner and events[1]["data"]["assignment"]["reason"] == "routed"
    assert events[2]["data"]["touch"]["kind"] == "call"
    for request, event in zip(receiver.requests, events, strict=True):
        assert event["version"] == 1 and event["data"]["lead"]["id"] == lead_id
        assert event["data"]["lead"]["external_id"] == "f-1"
        assert request.headers["X-LeadRouter-Event"] == event["type"]
        header = request.headers["X-LeadRouter-Signature"]
        # The receiver's check, spelled out as docs/integrations.md shows it.
        stamp, mac = dict(part.split("=", 1) for part in header.split(",")).values()
        expected = hmac.new(subscription.secret.encode(), f"{stamp}.".encode() + request.body, hashlib.sha256)
        assert hmac.compare_digest(mac, expected.hexdigest())
        assert signature_verify(subscription.secret, request.body, header)
    assert len({event["id"] for event in events}) == 3
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_the_signature_check_refuses_another_secret_a_changed_body_and_a_replay_older_than_five_minutes():
    body = b'{"version":1}'
    now = 1_800_000_000
    header = signature("whsec_a", body, timestamp=now)
    assert signature_verify("whsec_a", body, header, now=now + 299)
    assert not signature_verify("whsec_b", body, header, now=now)
    assert not signature_verify("whsec_a", body + b" ", header, now=now)
    assert not signature_verify("whsec_a", body, header, now=now + 301)
    assert not signature_verify("whsec_a", body, "v1=deadbeef", now=now)
    assert not signature_verify("whsec_a", body, "", now=now)


def test_a_receiver_answering_500_twice_then_200_gets_the_event_on_the_third_attempt(api, inbound, receiver, settings):
    settings.LEADROUTER_WEBHOOK_RETRY_BASE_SECONDS = 10
    receiver.script = [Answer(500, b"boom"), Answer(500, b"boom")]
    subscribe(receiver.url("/hooks"), "lead.received")
    with time_machine.travel(NOW, tick=False) as clock:
        post_lead(api)
        deliveries_send()
        delivery = Delivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("retrying", 1, 500)
        # Backoff with jitter: between half and all of 10 s, then of 20 s. Nothing is sent before it is due.
        assert NOW + dt.timedelta(seconds=5) <= delivery.next_attempt_at <= NOW + dt.timedelta(seconds=10)
        assert deliveries_send().delivered == 0 and len(receiver.requests) == 1
        clock.shift(10)
        deliveries_send()
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("retrying", 2)
        assert dt.timedelta(seconds=10) <= delivery.next_attempt_at - timezone.now() <= dt.timedelta(seconds=20)
        clock.shift(20)
        assert deliveries_send().delivered == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("delivered", 3, 200)
    assert list(DeliveryAttempt.objects.order_by("at").values_list("response_code", flat=True)) == [500, 500, 200]
    # The same event each time, signed afresh.
    assert len({request.body for request in receiver.requests}) == 1
    assert len({request.headers["X-LeadRouter-Signature"] for request in receiver.requests}) == 3


def test_a_receiver_that_never_answers_ends_dead_with_every_attempt_logged(api, inbound, settings):
    settings.LEADROUTER_WEBHOOK_TIMEOUT_SECONDS = 0.3
    settings.LEADROUTER_WEBHOOK_RETRY_BASE_SECONDS = 60
    settings.LEADROUTER_WEBHOOK_MAX_AGE_SECONDS = 600
    with running(Receiver(default=HANG)) as silent, time_machine.travel(NOW, tick=False) as clock:
        subscribe(silent.url("/hooks"), "lead.received")
        post_lead(api)
        for _ in range(20):
            deliveries_send()
            delivery = Delivery.objects.get()
            if delivery.status == Delivery.Status.DEAD:
                break
            clock.move_to(delivery.next_attempt_at)

    assert delivery.status == Delivery.Status.DEAD
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery))
    # 60 s doubling (with jitter) inside ten minutes: several attempts, each one logged, each a timeout.
    assert 3 <= len(attempts) == delivery.attempts == len(silent.requests)
    assert all(attempt.response_code is None and "timed out" in attempt.error for attempt in attempts)


def test_a_later_event_of_a_lead_waits_for_the_earlier_one_while_other_leads_go_ahead(api, inbound, receiver):
    subscribe(receiver.url("/hooks"), "lead.received", "lead.assigned")
    first = post_lead(api, email="first@prospect.de")
    receiver.script = [Answer(503, headers={"Retry-After": "120"})]
    deliveries_send()  # lead.received of the first lead fails
    leads_route(lead_ids=[first])
    second = post_lead(api, email="second@prospect.de")

    deliveries_send()

    sent = [(event["type"], event["data"]["lead"]["id"]) for event in bodies(receiver)]
    assert sent == [("lead.received", first), ("lead.received", second)]
    waiting = Delivery.objects.get(event__type="lead.assigned")
    assert waiting.status == "pending" and waiting.attempts == 0
    assert Delivery.objects.get(lead_id=first, event__type="lead.received").status == "retrying"


def test_recording_with_no_receiver_costs_one_query_and_writes_nothing(inbound, api):
    lead_ids = [post_lead(api, email=f"n{n}@prospect.de") for n in range(3)]
    leads_route(lead_ids=lead_ids)
    with CaptureQueriesContext(connection) as queries:
        assert events_record([Event(EventType.LEAD_TOUCHED, lead_id) for lead_id in lead_ids]) == 0
    assert len(queries) == 1
    assert not OutboundEvent.objects.exists() and not Delivery.objects.exists()
    # A subscription to other events changes nothing either.
    subscribe("https://example.invalid/hooks", "sla.breached")
    leads_route(lead_ids=[post_lead(api, email="late@prospect.de")])
    assert not OutboundEvent.objects.exists()


def test_a_batch_records_its_events_in_the_same_few_statements_whatever_its_size(inbound, api, receiver):
    subscribe(receiver.url("/a"), "lead.assigned", name="A")
    subscribe(receiver.url("/b"), "lead.assigned", name="B")
    lead_ids = [post_lead(api, email=f"b{n}@prospect.de") for n in range(40)]
    leads_route(lead_ids=lead_ids)

    counts = []
    for size in (4, 40):
        with CaptureQueriesContext(connection) as queries:
            events_record([Event(EventType.LEAD_ASSIGNED, lead_id) for lead_id in lead_ids[:size]])
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert OutboundEvent.objects.filter(type="lead.assigned").count() == 40 + 4 + 40
    assert Delivery.objects.filter(event__type="lead.assigned").count() == 2 * (40 + 4 + 40)


def test_reassigning_and_closing_a_lead_send_reassigned_with_the_previous_owner_and_closed(
    api, inbound, receiver, revops
):
    subscribe(receiver.url("/hooks"), "lead.reassigned", "lead.closed")
    lead_id = post_lead(api)
    leads_route(lead_ids=[lead_id])
    lead = Lead.objects.get(pk=lead_id)
    first_owner = lead.owner
    other = next(rep for rep in inbound if rep != first_owner)
    leads_reassign(leads=[lead], to_rep=other, by=revops, note="covering")
    lead = Lead.objects.get(pk=lead_id)
    assert lead_disqualify(lead=lead, by=other.user, reason="Student project")

    deliveries_send()

    reassigned, closed = bodies(receiver)
    assert reassigned["type"] == "lead.reassigned"
    assert reassigned["data"]["previous_owner"] == first_owner.user.username
    assert reassigned["data"]["lead"]["owner"] == other.user.username
    assert reassigned["data"]["assignment"] == {"reason": "manual", "note": "covering"}
    assert closed["type"] == "lead.closed"
    assert closed["data"]["lead"]["status"] == "disqualified"
    assert closed["data"]["lead"]["closed"]["reason"] == "Student project"


def test_an_inactive_subscription_gets_nothing(api, inbound, receiver):
    subscription = subscribe(receiver.url("/hooks"), "lead.received")
    subscription.active = False
    subscription.save()
    post_lead(api)
    assert deliveries_send().delivered == 0 and not receiver.requests


# --- CRM write-back -------------------------------------------------------------------------------------------


def connect(kind: str, url: str, *, reps, owner_ids: list[str], **fields) -> CrmConnector:
    connector = CrmConnector.objects.create(name=kind, kind=kind, base_url=url, token_env="CRM_TOKEN", **fields)
    for rep, owner_id in zip(reps, owner_ids, strict=True):
        CrmOwner.objects.create(connector=connector, rep=rep, owner_id=owner_id)
    return connector


def test_hubspot_gets_the_new_owner_of_the_contact_and_a_429_is_retried_after_retry_after(api, inbound, monkeypatch):
    monkeypatch.setenv("CRM_TOKEN", "pat-na1-secret")
    with (
        running(HubSpot(token="pat-na1-secret", records={"90210"})) as hubspot,
        time_machine.travel(NOW, tick=False) as clock,
    ):
        hubspot.script = [Answer(429, b'{"status":"error","category":"RATE_LIMITS"}', {"Retry-After": "7"})]
        connect("hubspot", hubspot.url(), reps=inbound, owner_ids=["5101", "5102"])
        lead_id = post_lead(api, external_id="90210")
        leads_route(lead_ids=[lead_id])

        deliveries_send()
        delivery = Delivery.objects.get()
        assert (delivery.status, delivery.last_response_code) == ("retrying", 429)
        assert delivery.next_attempt_at == NOW + dt.timedelta(seconds=7)
        clock.shift(6)
        assert deliveries_send().delivered == 0
        clock.shift(1)
        assert deliveries_send().delivered == 1

    owner = Lead.objects.get(pk=lead_id).owner
    expected = "5101" if owner == inbound[0] else "5102"
    retried = hubspot.requests[-1]
    assert len(hubspot.requests) == 2
    assert (retried.method, retried.path) == ("PATCH", "/crm/v3/objects/contacts/90210")
    assert retried.json() == {"properties": {"hubspot_owner_id": expected}}
    assert retried.headers["Authorization"] == "Bearer pat-na1-secret"
    assert Delivery.objects.get().status == "delivered"


def test_salesforce_gets_the_new_owner_id_of_the_lead_record(api, inbound, monkeypatch, revops):
    monkeypatch.setenv("CRM_TOKEN", "00Dxx!token")
    with (
        running(Salesforce(token="00Dxx!token", records={"00Q5e00000AbCdE"})) as salesforce,
        time_machine.travel(NOW, tick=False) as clock,
    ):
        connect(
            "salesforce",
            salesforce.url(),
            reps=inbound,
            owner_ids=["0055e000001AaaA", "0055e000001BbbB"],
            record_id_field="crm_id",
        )
        lead_id = post_lead(api, crm_id="00Q5e00000AbCdE")
        leads_route(lead_ids=[lead_id])
        deliveries_send()
        lead = Lead.objects.get(pk=lead_id)
        other = next(rep for rep in inbound if rep != lead.owner)
        # Rate limited, told to come back at an HTTP date.
        later = "Wed, 02 Dec 2026 10:00:30 GMT"
        salesforce.script = [Answer(429, b"[]", {"Retry-After": later})]
        leads_reassign(leads=[lead], to_rep=other, by=revops)
        deliveries_send()
        assert Delivery.objects.get(event__type="lead.reassigned").next_attempt_at == NOW + dt.timedelta(seconds=30)
        clock.shift(30)
        deliveries_send()

    paths = {request.path for request in salesforce.requests}
    assert paths == {"/services/data/v61.0/sobjects/Lead/00Q5e00000AbCdE"}
    assert [request.json()["OwnerId"] for request in salesforce.requests] == [
        CrmOwner.objects.get(rep=lead.owner).owner_id,
        CrmOwner.objects.get(rep=other).owner_id,
        CrmOwner.objects.get(rep=other).owner_id,
    ]
    assert [attempt.response_code for attempt in DeliveryAttempt.objects.order_by("at", "pk")] == [204, 429, 204]


def test_no_write_back_without_a_record_id_or_an_owner_id_and_a_missing_token_is_an_error_retried(
    api, inbound, monkeypatch
):
    monkeypatch.delenv("CRM_TOKEN", raising=False)
    connect("hubspot", "http://127.0.0.1:9/", reps=inbound[:1], owner_ids=["5101"])
    without_id = post_lead(api, email="a@prospect.de")
    with_id = post_lead(api, email="b@prospect.de", external_id="1")
    other_rep = post_lead(api, email="c@prospect.de", external_id="2")
    leads_route(lead_ids=[without_id, with_id, other_rep])

    # Only the lead with a record id whose owner has a HubSpot id is written back.
    delivery = Delivery.objects.get()
    assert delivery.crm_owner_id == "5101"
    deliveries_send()
    delivery.refresh_from_db()
    assert delivery.status == "retrying" and "CRM_TOKEN" in delivery.last_error


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Wed, 02 Dec 2026 10:01:00 GMT", now=NOW) == 60
    assert retry_after_seconds("Wed, 02 Dec 2026 09:00:00 GMT", now=NOW) == 0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


# --- Command and admin ----------------------------------------------------------------------------------------


def test_the_command_creates_a_subscription_and_prints_its_id_and_secret_once(db):
    out = io.StringIO()
    with redirect_stderr(io.StringIO()):
        call_command(
            "webhook", "create", "Warehouse", "https://hooks.example/lr", "--event", "lead.assigned",
            "--event", "lead.closed", stdout=out, stderr=io.StringIO(),
        )  # fmt: skip
    subscription = WebhookSubscription.objects.get()
    assert out.getvalue() == f"id: {subscription.pk}\nsecret: {subscription.secret}\n"
    assert subscription.secret.startswith("whsec_") and len(subscription.secret) > 40
    assert subscription.events == ["lead.assigned", "lead.closed"]

    call_command("webhook", "create", "Mine", "https://hooks.example/x", "--event", "lead.received",
                 "--secret", "my-own-secret", stdout=io.StringIO(), stderr=io.StringIO())  # fmt: skip
    assert WebhookSubscription.objects.get(name="Mine").secret == "my-own-secret"
    listed = io.StringIO()
    call_command("webhook", "list", stdout=listed)
    assert "Warehouse" in listed.getvalue() and "my-own-secret" not in listed.getvalue()

    with pytest.raises(CommandError, match="url"):
        call_command("webhook", "create", "Bad", "ftp://x.example/", "--event", "lead.received", stderr=io.StringIO())
    with pytest.raises(CommandError, match="name"):
        call_command("webhook", "create", "Warehouse", "https://x.example/", "--event", "lead.received")
    with pytest.raises(CommandError):
        call_command("webhook", "create", "Odd", "https://x.example/", "--event", "lead.exploded")


def test_revops_add_a_subscription_in_admin_and_see_its_secret_once(client, revops):
    client.force_login(revops)
    response = client.post(
        admin_url(WebhookSubscription, "add"),
        {"name": "Warehouse", "url": "https://hooks.example/lr", "events": ["lead.assigned", "sla.breached"],
         "active": "on"},
        follow=True,
    )  # fmt: skip
    subscription = WebhookSubscription.objects.get()
    assert subscription.events == ["lead.assigned", "sla.breached"]
    assert subscription.secret in messages_text(response)
    page = client.get(admin_url(subscription, "change", subscription.pk)).content.decode()
    assert subscription.secret not in page

    refused = client.post(
        admin_url(WebhookSubscription, "add"), {"name": "Bad", "url": "javascript:alert(1)", "events": []}
    )
    assert refused.status_code == 200 and not WebhookSubscription.objects.filter(name="Bad").exists()
    assert "events" in refused.context["adminform"].form.errors


def test_a_dead_delivery_is_resent_from_admin_and_its_attempts_are_listed(api, inbound, revops, client, settings):
    settings.LEADROUTER_WEBHOOK_MAX_AGE_SECONDS = 0
    with running(Receiver(default=Answer(410, b"gone"))) as gone:
        subscribe(gone.url("/hooks"), "lead.received")
        post_lead(api)
        deliveries_send()
        delivery = Delivery.objects.get()
        assert delivery.status == "dead"

        client.force_login(revops)
        listing = client.get(admin_url(Delivery, "changelist")).content.decode()
        assert "lead.received" in listing and "410" in listing
        detail = client.get(admin_url(delivery, "change", delivery.pk)).content.decode()
        assert "HTTP 410: gone" in detail
        gone.default = Answer(200)
        client.post(admin_url(Delivery, "changelist"), {"action": "resend", "_selected_action": [delivery.pk]})
        delivery.refresh_from_db()
        assert delivery.status == "pending"
        deliveries_send()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert deliveries_resend([]) == 0


def test_reps_crm_owner_ids_import_from_csv(client, revops, inbound):
    CrmConnector.objects.create(name="HubSpot", kind="hubspot", token_env="HUBSPOT_TOKEN")
    client.force_login(revops)
    _dry_run, done = import_csv(
        client, CrmOwner, "connector,username,owner_id\nHubSpot,seller0,5101\nhubspot,seller1,5102\n"
    )
    assert done is not None
    assert dict(CrmOwner.objects.values_list("rep__user__username", "owner_id")) == {
        "seller0": "5101",
        "seller1": "5102",
    }
    dry_run, done = import_csv(client, CrmOwner, "connector,username,owner_id\nHubSpot,nobody,1\n")
    assert done is None and "No rep with username" in dry_run.content.decode()


def test_a_salesforce_connector_needs_its_instance_url(db):
    connector = CrmConnector(name="SF", kind="salesforce", token_env="SF_TOKEN")
    with pytest.raises(Exception, match="instance URL"):
        connector.full_clean()
    assert CrmConnector(name="HS", kind="hubspot", token_env="X").api_base == "https://api.hubapi.com"


def test_events_body_is_json_with_the_version_id_type_and_time(api, inbound, receiver):
    subscribe(receiver.url("/hooks"), "lead.received")
    with time_machine.travel(NOW, tick=False):
        post_lead(api)
        deliveries_send()
    event = json.loads(receiver.requests[0].body)
    assert list(event) == ["version", "id", "type", "created", "data"]
    assert event["created"] == "2026-12-02T10:00:00Z"
    assert event["id"] == str(OutboundEvent.objects.get().id)


@pytest.mark.parametrize("model", [WebhookSubscription, CrmConnector, CrmOwner, Delivery])
def test_only_revops_reach_the_integrations_admin(client, outsider, manager, model):
    staff_without_rights = UserFactory(username="intern", is_staff=True)
    for user in (outsider.user, manager):
        client.force_login(user)
        response = client.get(admin_url(model, "changelist"))
        assert response.status_code == 302 and "/login/" in response["Location"]
    client.force_login(staff_without_rights)
    assert client.get(admin_url(model, "changelist")).status_code == 403


def test_the_delivery_log_searches_by_lead_or_event_id_and_odd_searches_are_no_error(
    api, inbound, client, revops, receiver
):
    subscribe(receiver.url("/hooks"), "lead.received")
    lead_id = post_lead(api)
    event = OutboundEvent.objects.get()
    client.force_login(revops)
    for term in (str(lead_id), str(event.id), "abc", "x\x00", "9" * 40):
        response = client.get(admin_url(Delivery, "changelist"), {"q": term})
        assert response.status_code == 200, term
        if term in (str(lead_id), str(event.id)):
            assert response.context["cl"].result_count == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_senders_at_once_send_each_event_once_and_each_lead_in_order(api, inbound, receiver):
    subscribe(receiver.url("/hooks"), "lead.received", "lead.assigned")
    lead_ids = [post_lead(api, email=f"r{n}@prospect.de") for n in range(15)]
    leads_route(lead_ids=lead_ids)

    errors = run_together(deliveries_send, deliveries_send, deliveries_send)

    assert not errors
    sent = [(event["data"]["lead"]["id"], event["type"], event["id"]) for event in bodies(receiver)]
    assert len(sent) == len({event_id for _, _, event_id in sent}) == 30
    for lead_id in lead_ids:
        assert [kind for lead, kind, _ in sent if lead == lead_id] == ["lead.received", "lead.assigned"]
    assert Delivery.objects.filter(status="delivered", attempts=1).count() == 30
