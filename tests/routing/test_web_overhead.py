"""What a single POST to the intake API reads on its way: the key, the webhook receivers.

Each is read fresh on every request (one plain statement), so a change made by RevOps in admin or by another web
process counts from the very next request.
"""

import datetime as dt

import pytest
from rest_framework.test import APIClient

from routing.models import ApiKey, Delivery, Lead, OutboundEvent, WebhookSubscription
from routing.services import apikey_authenticate, apikey_create, apikey_revoke

LEADS_URL = "/api/v1/leads/"
NOW = dt.datetime(2026, 11, 23, 9, 0, 0, tzinfo=dt.UTC)


def key_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


def post_lead(client: APIClient, n: int = 0):
    return client.post(LEADS_URL, {"email": f"ann{n}@prospect.de", "company": "Prospect GmbH"}, format="json")


# --- The key -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_key_revoked_in_another_process_is_refused_on_the_next_request():
    # The web process has served the key; RevOps revoke it (admin, the command: another process), nothing
    # in this process is told, and the next request is refused.
    api_key, raw_key = apikey_create(name="Website form")
    client = key_client(raw_key)
    assert post_lead(client, 1).status_code == 201

    assert apikey_revoke(keys=ApiKey.objects.filter(pk=api_key.pk)) == 1

    refused = post_lead(client, 2)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    assert Lead.objects.count() == 1


@pytest.mark.django_db
def test_a_deleted_key_is_refused_on_the_next_request():
    api_key, raw_key = apikey_create(name="Website form")
    client = key_client(raw_key)
    assert post_lead(client, 1).status_code == 201

    ApiKey.objects.filter(pk=api_key.pk).delete()

    assert post_lead(client, 2).status_code == 401


@pytest.mark.django_db
def test_a_key_whose_scopes_are_taken_away_is_refused_on_the_next_request():
    api_key, raw_key = apikey_create(name="Partner portal", scopes=["leads:write", "leads:read"])
    client = key_client(raw_key)
    assert post_lead(client, 1).status_code == 201

    ApiKey.objects.filter(pk=api_key.pk).update(scopes=["leads:read"])

    refused = post_lead(client, 2)
    assert refused.status_code == 403
    assert "leads:write" in refused.json()["detail"]


@pytest.mark.django_db
def test_the_authenticated_key_is_the_key_as_stored():
    # The key is read with a plain statement; it must come back as the ORM would give it: scopes as a list,
    # times aware, on SQLite and PostgreSQL alike.
    api_key, raw_key = apikey_create(name="Website form", scopes=["leads:write", "receipts:read"])
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=NOW)

    authenticated = apikey_authenticate(raw_key=raw_key, now=NOW + dt.timedelta(seconds=5))

    stored = ApiKey.objects.get(pk=api_key.pk)
    assert authenticated is not None
    assert {field.attname: getattr(authenticated, field.attname) for field in ApiKey._meta.concrete_fields} == {
        field.attname: getattr(stored, field.attname) for field in ApiKey._meta.concrete_fields
    }
    assert authenticated.scopes == ["leads:write", "receipts:read"]
    assert authenticated.last_used_at == NOW and authenticated.last_used_at.tzinfo is not None
    assert apikey_authenticate(raw_key=raw_key[:-1] + "x") is None
    assert apikey_authenticate(raw_key="lr_unknownkeyofnobody") is None


@pytest.mark.django_db
def test_a_key_is_authenticated_with_one_statement(django_assert_num_queries):
    _, raw_key = apikey_create(name="Website form")
    apikey_authenticate(raw_key=raw_key)  # Stamps last_used_at: the next minute's calls only read.

    with django_assert_num_queries(1):
        assert apikey_authenticate(raw_key=raw_key) is not None


# --- Webhook receivers ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_new_subscription_gets_events_from_the_next_post_and_a_paused_one_none():
    _, raw_key = apikey_create(name="Website form")
    client = key_client(raw_key)
    # No subscription: a posted lead records no event.
    assert post_lead(client, 1).status_code == 201
    assert not OutboundEvent.objects.exists()

    subscription = WebhookSubscription.objects.create(
        name="Warehouse", url="https://warehouse.example/hook", events=["lead.received", "lead.assigned"]
    )
    second = post_lead(client, 2)
    assert second.status_code == 201
    delivery = Delivery.objects.get()
    assert delivery.subscription_id == subscription.pk
    assert delivery.lead_id == second.json()["id"]
    assert delivery.event.type == "lead.received"

    WebhookSubscription.objects.filter(pk=subscription.pk).update(active=False)
    assert post_lead(client, 3).status_code == 201
    assert Delivery.objects.count() == 1
