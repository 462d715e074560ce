"""Lead intake API: forms and systems post leads with an API key; each is stored as received and routed."""

import re
import threading
import time

import pytest
import yaml
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from routing.intake import _stored_with, leads_receive
from routing.models import ApiKey, Lead
from routing.services import apikey_create, apikey_revoke
from routing.standardize import standardize
from tests.factories import LeadFactory
from tests.helpers import STALL_SECONDS, join_all

pytestmark = pytest.mark.django_db

LEADS_URL = "/api/v1/leads/"
MAX_WELL_FORMED = {
    "email": "max@prospect.de",
    "first_name": "Max",
    "last_name": "Muster",
    "company": "Prospect GmbH",
    "country": "Deutschland",
    "employees": "250",
    "annual_revenue": "1000000",
    "form_answers": {"budget": "Q3", "seats": 40},
    "page_history": ["/pricing", {"url": "/demo", "at": "2026-11-23T10:00:00Z"}],
    "external_id": "form-1",
    "source": "web",
    "utm_term": "lead routing",  # Not a field we know: kept in the raw payload.
}


def detail_url(lead_id: int) -> str:
    return f"/api/v1/leads/{lead_id}/"


def key_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


@pytest.fixture
def website():
    """The website's demo form: its key (posting and reading its leads with receipts) and a client that sends it."""
    api_key, raw_key = apikey_create(name="Website demo form", scopes=["leads:write", "leads:read", "receipts:read"])
    return api_key, key_client(raw_key)


def post(client: APIClient, body, **headers):
    return client.post(LEADS_URL, body, format="json", headers=headers)


def test_a_valid_lead_is_stored_as_received_exactly_as_posted(website, django_capture_on_commit_callbacks):
    api_key, client = website
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(client, MAX_WELL_FORMED)

    assert response.status_code == 201
    lead = Lead.objects.get()
    assert response.json() == {"id": lead.pk, "status": "received", "external_id": "form-1", "created": True}
    assert lead.status == Lead.Status.RECEIVED
    assert lead.raw_payload == MAX_WELL_FORMED
    assert lead.intake_source == api_key
    assert (lead.source, lead.external_id) == ("web", "form-1")
    # Routing is enqueued once the lead is committed, not before.
    assert len(callbacks) == 1


def test_a_broker_failure_after_commit_does_not_fail_the_request(
    website, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    from leadrouter.celery import app

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    # The network edge: the broker refuses the message.
    monkeypatch.setattr(app, "send_task", broker_down)
    _, client = website
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, {"email": "max@prospect.de"})

    # The lead is stored as received; the periodic sweep will route it.
    assert response.status_code == 201
    assert Lead.objects.get().status == Lead.Status.RECEIVED
    assert "the sweep will route them" in caplog.text


def test_a_repeated_external_id_returns_the_same_lead(website):
    _, client = website
    first = post(client, {"email": "max@prospect.de", "source": "web", "external_id": "form-1"})
    again = post(client, {"email": "max@prospect.de", "source": "web", "external_id": "form-1"})

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == {**first.json(), "created": False}
    assert Lead.objects.count() == 1


def test_a_repeated_idempotency_key_returns_the_same_lead(website):
    _, client = website
    first = post(client, {"email": "max@prospect.de"}, **{"Idempotency-Key": "req-42"})
    again = post(client, {"email": "max@prospect.de"}, **{"Idempotency-Key": "req-42"})

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Lead.objects.count() == 1


def test_the_same_idempotency_key_from_another_source_is_another_lead(website):
    _, client = website
    _, other_raw = apikey_create(name="Partner portal")
    post(client, {"email": "max@prospect.de"}, **{"Idempotency-Key": "req-42"})
    response = post(key_client(other_raw), {"email": "max@prospect.de"}, **{"Idempotency-Key": "req-42"})

    assert response.status_code == 201
    assert Lead.objects.count() == 2


def test_two_keys_posting_the_same_external_id_get_two_leads(website):
    api_key, client = website
    partner, partner_raw = apikey_create(name="Partner portal", scopes=["leads:write", "receipts:read"])
    partner_client = key_client(partner_raw)
    lead = {"email": "max@prospect.de", "source": "web", "external_id": "form-1"}

    first = post(client, lead)
    second = post(partner_client, {**lead, "email": "eva@partner.de"})

    # Each key's ids are its own: the partner's lead is stored, and nothing of the website's is revealed.
    assert first.status_code == second.status_code == 201
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["created"] is True
    stored = Lead.objects.get(pk=second.json()["id"])
    assert (stored.intake_source, stored.raw_payload["email"]) == (partner, "eva@partner.de")
    assert partner_client.get(detail_url(first.json()["id"])).status_code == 404
    # Each key's repeat still finds its own lead.
    assert post(partner_client, lead).json() == {**second.json(), "created": False}
    assert post(client, lead).json() == {**first.json(), "created": False}
    assert Lead.objects.filter(intake_source=api_key).count() == 1


def test_without_a_key_external_ids_are_shared_by_csv_and_people(revops):
    first = leads_receive(payloads=[{"email": "a@b.de", "source": "fair", "external_id": "7"}], intake_source=None)
    again = leads_receive(payloads=[{"email": "a@b.de", "source": "fair", "external_id": "7"}], intake_source=None)

    assert again[0].lead_id == first[0].lead_id and not again[0].created
    assert Lead.objects.count() == 1


def test_a_batch_is_stored_and_answered_in_order(website):
    _, client = website
    batch = [{"email": f"lead{i}@prospect.de", "external_id": f"b-{i}"} for i in range(3)]
    response = post(client, batch)

    assert response.status_code == 201
    leads = response.json()["leads"]
    assert [lead["external_id"] for lead in leads] == ["b-0", "b-1", "b-2"]
    stored = {lead.pk: lead.raw_payload for lead in Lead.objects.all()}
    assert [stored[lead["id"]] for lead in leads] == batch


def test_a_retried_batch_with_its_idempotency_key_creates_nothing_new(website):
    _, client = website
    batch = [{"email": f"lead{i}@prospect.de"} for i in range(3)]
    first = post(client, batch, **{"Idempotency-Key": "import-7"})
    again = post(client, batch, **{"Idempotency-Key": "import-7"})

    assert again.status_code == 200
    assert [lead["id"] for lead in again.json()["leads"]] == [lead["id"] for lead in first.json()["leads"]]
    assert Lead.objects.count() == 3


def test_a_repeat_inside_one_batch_is_one_lead(website):
    _, client = website
    response = post(client, [{"email": "a@prospect.de", "external_id": "x"}, {"phone": "+4930123", "external_id": "x"}])

    leads = response.json()["leads"]
    assert response.status_code == 201
    assert leads[0]["id"] == leads[1]["id"]
    assert [lead["created"] for lead in leads] == [True, False]
    assert Lead.objects.count() == 1


def test_a_resent_batch_finds_each_lead_by_its_own_source_and_external_id(website):
    """The same external id under two sources is two leads; sent again, each finds its own."""
    _, client = website
    batch = [
        {"email": "a@prospect.de", "source": "web", "external_id": "7"},
        {"email": "b@prospect.de", "source": "webinar", "external_id": "7"},
        {"email": "c@prospect.de", "source": "web", "external_id": "8"},
        {"email": "d@prospect.de", "external_id": "7"},  # no source
    ]
    first = post(client, batch)
    again = post(client, [*reversed(batch), {"email": "e@prospect.de", "source": "fair", "external_id": "7"}])

    ids = [lead["id"] for lead in first.json()["leads"]]
    assert len(set(ids)) == 4
    repeated = again.json()["leads"]
    assert [lead["id"] for lead in repeated[:4]] == ids[::-1]
    assert [lead["created"] for lead in repeated] == [False, False, False, False, True]
    assert Lead.objects.count() == 5


def test_a_batch_over_the_limit_is_refused_and_nothing_is_stored(website):
    _, client = website
    response = post(client, [{"email": f"lead{i}@prospect.de"} for i in range(1001)])

    assert response.status_code == 400
    assert response.json() == {"detail": "A batch holds at most 1000 leads; this one has 1001."}
    assert not Lead.objects.exists()


def test_an_empty_batch_is_refused(website):
    _, client = website
    assert post(client, []).status_code == 400


def test_one_bad_email_refuses_the_whole_batch_with_its_index(website):
    _, client = website
    batch = [{"email": "a@prospect.de"}, {"email": "b@prospect.de"}, {"email": "not-an-email"}]
    response = post(client, batch)

    assert response.status_code == 400
    assert response.json() == {"errors": [{"index": 2, "errors": {"email": ["Enter a valid e-mail address."]}}]}
    assert not Lead.objects.exists()


@pytest.mark.parametrize(
    ("lead", "field", "message"),
    [
        ({"email": "max@prospect.de", "country": "Narnia"}, "country", "Narnia"),
        ({"email": "max@prospect.de", "employees": "many"}, "employees", "whole number"),
        ({"email": "max@prospect.de", "annual_revenue": -5}, "annual_revenue", "greater than or equal to 0"),
        ({"email": "max@prospect.de", "form_answers": {"essay": ["x" * 4000] * 5}}, "form_answers", "oversize"),
        ({"email": "max@prospect.de", "page_history": ["/p"] * 201}, "page_history", "200"),
        ({"email": "max@prospect.de", "page_history": [42]}, "page_history", "string or an object"),
        ({"email": "max@prospect.de", "first_name": "x" * 101}, "first_name", "100"),
        # Counted as sent (the schema's maxLength), not after trimming.
        ({"email": "max@prospect.de", "first_name": " " + "x" * 100}, "first_name", "100"),
        ({"email": "max@prospect.de", "notes": ["x" * 4000] * 17}, "non_field_errors", "oversize"),
        ({"email": "max@prospect.de", "external_id": 42}, "external_id", "JSON string"),
        ({"company": "Prospect GmbH"}, "non_field_errors", "needs an email, a phone"),
    ],
)
def test_an_invalid_lead_is_refused_with_the_field_that_is_wrong(website, lead, field, message):
    _, client = website
    response = post(client, lead)

    assert response.status_code == 400
    assert message in str(response.json()[field])
    assert not Lead.objects.exists()


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_count_or_amount_is_no_value_as_null_is(website, blank):
    # A form's empty field: stored as sent, standardized to no value, not refused.
    _, client = website
    response = post(client, {"email": "max@prospect.de", "employees": blank, "annual_revenue": blank})

    assert response.status_code == 201, response.content
    lead = Lead.objects.get()
    assert lead.raw_payload["employees"] == blank
    routed = standardize(lead.raw_payload)
    assert routed.employees is None
    assert routed.annual_revenue is None


def test_country_aliases_and_a_company_with_a_name_are_accepted(website):
    _, client = website
    response = post(client, {"company": "Acme", "last_name": "Doe", "country": "USA", "region": "CA"})

    assert response.status_code == 201


@pytest.mark.parametrize("body", ['{"email": ', '"just a string"', "42"])
def test_a_body_that_is_not_a_json_object_or_list_is_refused(website, body):
    _, client = website
    response = client.post(LEADS_URL, body, content_type="application/json")

    assert response.status_code == 400
    assert not Lead.objects.exists()


def test_a_body_over_the_upload_limit_is_refused_before_parsing(website, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    _, client = website
    response = post(client, [{"email": f"lead{i}@prospect.de"} for i in range(100)])

    assert response.status_code == 413
    assert not Lead.objects.exists()


def test_an_overlong_idempotency_key_is_refused(website):
    _, client = website
    response = post(client, {"email": "max@prospect.de"}, **{"Idempotency-Key": "k" * 201})

    assert response.status_code == 400


def test_posting_without_a_key_is_unauthorized():
    response = post(APIClient(), {"email": "max@prospect.de"})

    assert response.status_code == 401
    assert not Lead.objects.exists()


def test_posting_with_a_revoked_key_is_unauthorized(website):
    api_key, client = website
    apikey_revoke(keys=ApiKey.objects.filter(pk=api_key.pk))

    response = post(client, {"email": "max@prospect.de"})

    assert response.status_code == 401
    assert not Lead.objects.exists()


def test_revops_can_post_a_lead_signed_in(revops):
    client = APIClient()
    client.force_login(revops)

    response = post(client, {"email": "max@prospect.de"})

    assert response.status_code == 201
    assert Lead.objects.get().intake_source is None


def test_a_rep_cannot_post_leads(rep):
    client = APIClient()
    client.force_login(rep.user)

    assert post(client, {"email": "max@prospect.de"}).status_code == 403


def test_a_big_batch_is_routed_in_the_bulk_lane_in_chunks_of_500(website, django_capture_on_commit_callbacks):
    api_key, _ = website
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        leads_receive(payloads=[{"email": f"l{i}@prospect.de"} for i in range(1001)], intake_source=api_key)

    assert Lead.objects.filter(lane=Lead.Lane.BULK).count() == 1001
    assert len(callbacks) == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("payload", "idempotency_key"),
    [({"email": "max@prospect.de", "source": "web", "external_id": "form-1"}, ""), ({"email": "m@p.de"}, "req-42")],
)
def test_racing_requests_for_the_same_lead_store_it_once(monkeypatch, payload, idempotency_key):
    from leadrouter.celery import app

    # The broker is not under test.
    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: None)
    api_key, _ = apikey_create(name="Website demo form")
    first_inserted = threading.Event()
    results: dict[str, list] = {}
    errors: list[BaseException] = []

    def receive(name: str) -> None:
        try:
            if name == "first":
                # The first request inserts and holds its transaction open while the second one arrives.
                with transaction.atomic():
                    results[name] = leads_receive(
                        payloads=[payload], intake_source=api_key, idempotency_key=idempotency_key
                    )
                    first_inserted.set()
                    time.sleep(0.5)
            else:
                first_inserted.wait(STALL_SECONDS)
                results[name] = leads_receive(
                    payloads=[payload], intake_source=api_key, idempotency_key=idempotency_key
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=receive, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    join_all(threads)

    assert not errors
    assert Lead.objects.count() == 1
    assert results["first"][0].created and not results["second"][0].created
    assert results["second"][0].lead_id == results["first"][0].lead_id


# --- Reading a lead ---------------------------------------------------------------------------------------


@pytest.fixture
def posted_lead(website):
    _, client = website
    return Lead.objects.get(pk=post(client, MAX_WELL_FORMED).json()["id"])


def test_the_posting_source_can_read_its_lead_with_the_receipt(website, posted_lead):
    _, client = website
    posted_lead.receipt = {"outcome": "assigned"}
    posted_lead.save(update_fields=["receipt"])

    response = client.get(detail_url(posted_lead.pk))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == posted_lead.pk
    assert body["status"] == "received"
    assert body["receipt"] == {"outcome": "assigned"}
    assert body["owner"] is None
    assert body["account_match"] == {"method": "", "confidence": None, "weak": False}
    # A field with no value is null, never "" (which the schema's formats and enums refuse).
    # (Not routed yet, so not standardized: the lead's own fields are still empty.)
    assert (body["email"], body["size_band"], body["industry"], body["title"]) == (None, None, None, None)


def test_another_source_cannot_read_the_lead(posted_lead):
    _, other_raw = apikey_create(name="Partner portal", scopes=["leads:read", "receipts:read"])

    assert key_client(other_raw).get(detail_url(posted_lead.pk)).status_code == 404


def test_an_outsider_cannot_read_the_lead(posted_lead, outsider):
    client = APIClient()
    client.force_login(outsider.user)

    assert client.get(detail_url(posted_lead.pk)).status_code == 404


def test_revops_can_read_any_lead(posted_lead, revops):
    client = APIClient()
    client.force_login(revops)

    assert client.get(detail_url(posted_lead.pk)).status_code == 200


def test_the_owner_rep_and_their_manager_can_read_the_lead_but_not_another_rep(rep, manager, outsider):
    lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED)

    for user, expected in ((rep.user, 200), (manager, 200), (outsider.user, 404)):
        client = APIClient()
        client.force_login(user)
        response = client.get(detail_url(lead.pk))
        assert response.status_code == expected, user.username


def test_the_lead_shows_its_owner_by_username(rep, revops):
    lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED)
    client = APIClient()
    client.force_login(revops)

    assert client.get(detail_url(lead.pk)).json()["owner"] == "rep"


def test_reading_without_signing_in_is_unauthorized(posted_lead):
    assert APIClient().get(detail_url(posted_lead.pk)).status_code == 401


# --- Schema and docs -----------------------------------------------------------------------------------


def test_the_schema_describes_lead_intake(client):
    response = client.get(reverse("api-schema"))

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/leads/" in schema["paths"]
    assert "/api/v1/leads/{lead_id}/" in schema["paths"]


def test_the_docs_page_loads_nothing_from_another_host(client):
    response = client.get(reverse("api-docs"))

    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources
    assert not [source for source in sources if "://" in source or "cdn" in source]


@pytest.mark.postgres
def test_an_import_looks_its_external_ids_up_by_the_constraint_whatever_the_statistics_say():
    # Every lead so far was posted with an API key, and the planner's statistics say so.
    api_key, _ = apikey_create(name="Website")
    Lead.objects.bulk_create(
        Lead(raw_payload={}, intake_source=api_key, source="Web", external_id=f"web-{n}") for n in range(2000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE routing_lead")

    # A first CSV import (no API key) asks which of its external ids are stored already.
    with CaptureQueriesContext(connection) as queries:
        _stored_with(None, ("source", "external_id"), [("Web", f"csv-{n}") for n in range(50)])
    [lookup] = [query["sql"] for query in queries.captured_queries if "LATERAL" in query["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {lookup}")
        plan = "\n".join(row[0] for row in cursor.fetchall())

    # One probe of the constraint's index per id, not a walk of the leads without a key for each (an index of
    # every lead's key, which the statistics made look cheap, took 17 s for a 1,000-row chunk).
    assert "lead_unique_external_id_without_key" in plan
