"""GET /api/v1/leads/ serves syncs: the leads the requester may read, filtered, paged by a cursor in the order they
last changed, so a sync that stores the last change it read picks up from there."""

import datetime as dt
from urllib.parse import quote

import pytest
import time_machine
from rest_framework.test import APIClient

from routing.models import Lead
from routing.services import apikey_create, lead_accept
from sla.services import touch_log
from tests.factories import LeadFactory, QueueFactory, RepFactory, UserFactory

pytestmark = pytest.mark.django_db

MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def key_client(*scopes: str, name: str = "CRM sync") -> tuple[APIClient, object]:
    api_key, raw_key = apikey_create(name=name, scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client, api_key


def signed_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def lead_at(when: dt.datetime, **fields):
    with time_machine.travel(when, tick=False):
        return LeadFactory(**fields)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


def test_a_key_lists_only_the_leads_it_posted_with_who_owns_them(rep):
    client, api_key = key_client("leads:read")
    _, other_key = key_client("leads:write", name="Other")
    queue = QueueFactory(name="DACH Inbound")
    mine = lead_at(MONDAY, intake_source=api_key, owner=rep, queue=queue, status="assigned", external_id="f-1")
    lead_at(MONDAY, intake_source=other_key)
    lead_at(MONDAY)

    response = client.get("/api/v1/leads/")

    assert ids(response) == [mine.pk]
    row = response.json()["results"][0]
    assert {key: row[key] for key in ("status", "external_id", "owner", "owner_id", "queue", "closed")} == {
        "status": "assigned",
        "external_id": "f-1",
        "owner": "rep",
        "owner_id": rep.pk,
        "queue": "DACH Inbound",
        "closed": None,
    }
    assert row["updated_at"] == "2026-11-23T10:00:00Z"


def test_a_key_needs_leads_read_and_nobody_anonymous_lists(rep):
    writer, _ = key_client("leads:write")
    refused = writer.get("/api/v1/leads/")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "This API key lacks the scope leads:read."
    assert APIClient().get("/api/v1/leads/").status_code in (401, 403)
    # Posting still takes leads:write, not leads:read.
    reader, _ = key_client("leads:read", name="Reader")
    assert reader.post("/api/v1/leads/", {"email": "a@b.de"}, format="json").status_code == 403


def test_people_list_what_their_role_shows_them(rep, manager, revops, outsider):
    owned = lead_at(MONDAY, owner=rep, status="assigned")
    elsewhere = lead_at(MONDAY, owner=outsider, status="assigned")
    waiting = lead_at(MONDAY, status="queued")

    assert ids(signed_in(rep.user).get("/api/v1/leads/")) == [owned.pk]
    assert ids(signed_in(manager).get("/api/v1/leads/")) == [owned.pk]
    assert ids(signed_in(outsider.user).get("/api/v1/leads/")) == [elsewhere.pk]
    assert sorted(ids(signed_in(revops).get("/api/v1/leads/"))) == sorted([owned.pk, elsewhere.pk, waiting.pk])
    assert ids(signed_in(UserFactory()).get("/api/v1/leads/")) == []


def test_filters_by_status_owner_queue_and_time(revops):
    anna = RepFactory(user=UserFactory(username="anna", email="Anna@Seller.example"))
    ben = RepFactory(user=UserFactory(username="ben"))
    dach = QueueFactory(name="DACH Inbound")
    nordics = QueueFactory(name="Nordics")
    early = lead_at(MONDAY, owner=anna, queue=dach, status="assigned")
    converted = lead_at(MONDAY + dt.timedelta(hours=1), owner=anna, queue=nordics, status="converted")
    bens = lead_at(MONDAY + dt.timedelta(hours=2), owner=ben, queue=dach, status="working")
    client = signed_in(revops)

    assert ids(client.get("/api/v1/leads/", {"status": "converted"})) == [converted.pk]
    assert ids(client.get("/api/v1/leads/", {"status": "assigned,working"})) == [early.pk, bens.pk]
    assert ids(client.get("/api/v1/leads/", {"owner": "anna@seller.EXAMPLE"})) == [early.pk, converted.pk]
    assert ids(client.get("/api/v1/leads/", {"owner": str(ben.pk)})) == [bens.pk]
    assert ids(client.get("/api/v1/leads/", {"owner": "ben,anna", "queue": "DACH Inbound"})) == [early.pk, bens.pk]
    assert ids(client.get("/api/v1/leads/", {"queue": str(nordics.pk)})) == [converted.pk]
    assert ids(client.get("/api/v1/leads/", {"updated_since": "2026-11-23T11:00:00Z"})) == [converted.pk, bens.pk]
    since = quote("2026-11-23T12:00:00+01:00")
    assert ids(client.get(f"/api/v1/leads/?updated_since={since}")) == [converted.pk, bens.pk]
    assert ids(client.get("/api/v1/leads/", {"owner": "nobody@nowhere.example"})) == []


def test_the_cursor_pages_in_change_order_and_a_lead_changed_meanwhile_comes_again_at_the_end(rep):
    client, api_key = key_client("leads:read")
    leads = [lead_at(MONDAY, intake_source=api_key, owner=rep, status="assigned") for _ in range(5)]

    first = client.get("/api/v1/leads/", {"page_size": 2})
    assert ids(first) == [leads[0].pk, leads[1].pk]
    # The first lead is accepted while the sync pages: it moves to the end rather than being lost.
    with time_machine.travel(MONDAY + dt.timedelta(minutes=1), tick=False):
        assert lead_accept(lead=leads[0], by=rep.user)
    second = client.get(first.json()["next"])
    third = client.get(second.json()["next"])

    assert ids(second) == [leads[2].pk, leads[3].pk]
    assert ids(third) == [leads[4].pk, leads[0].pk]
    assert third.json()["next"] is None
    assert third.json()["results"][1]["status"] == "accepted"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"updated_since": "2026-11-23T10:00:00"}, "updated_since"),
        ({"updated_since": "2026-13-45T10:00:00Z"}, "updated_since"),
        ({"updated_since": "2026-11-23T10:00:00 01:00"}, "updated_since"),
        ({"updated_since": ""}, "updated_since"),
        ({"status": "won"}, "status"),
        ({"status": ",".join(["queued"] * 21)}, "status"),
        ({"owner": "a\x00b"}, "owner"),
        ({"queue": "q" * 300}, "queue"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "MjAyNi0xMS0yM1QxMDowMDowMHzCuQ"}, "cursor"),
        ({"updated_since": "0001-01-01T00:00:00+18:00"}, "updated_since"),
    ],
)
def test_bad_filters_are_400s_naming_the_filter(revops, params, field):
    response = signed_in(revops).get("/api/v1/leads/", params)

    assert response.status_code == 400
    assert field in response.json()


def test_odd_but_harmless_filters_find_nothing_rather_than_fail(revops):
    lead_at(MONDAY)
    client = signed_in(revops)

    for params in (
        {"queue": "¹"},
        {"owner": "99999999999999999999999"},
        {"queue": "٣"},
        {"updated_since": "0183-05-07T20:25:00-18:29"},
        {"owner": "!", "queue": "%"},
    ):
        response = client.get("/api/v1/leads/", params)
        assert response.status_code == 200, params
    assert len(ids(client.get("/api/v1/leads/", {"updated_since": "0183-05-07T20:25:00-18:29"}))) == 1


def test_page_sizes_from_1_to_500_are_taken_others_are_400s(revops):
    for _ in range(3):
        lead_at(MONDAY)
    client = signed_in(revops)

    assert len(ids(client.get("/api/v1/leads/", {"page_size": "500"}))) == 3
    assert len(ids(client.get("/api/v1/leads/", {"page_size": "1"}))) == 1
    for odd in ("abc", "-1", "0", "501", "100000", "2.5", "", "٣"):
        response = client.get("/api/v1/leads/", {"page_size": odd})
        assert response.status_code == 400, odd
        assert response.json() == {"page_size": ["Send a whole number from 1 to 500."]}


def test_a_touch_that_starts_work_on_a_lead_counts_as_a_change(rep):
    client, api_key = key_client("leads:read")
    lead = lead_at(MONDAY, intake_source=api_key, owner=rep, status="assigned")
    later = MONDAY + dt.timedelta(hours=1)

    touch_log(lead=lead, kind="call", at=later, by=rep.user, now=later)

    assert ids(client.get("/api/v1/leads/", {"updated_since": "2026-11-23T10:30:00Z"})) == [lead.pk]
    assert Lead.objects.get(pk=lead.pk).status == "working"
