"""What a single POST to the intake API reads on its way: the key, the webhook receivers, the key's rate count.

Each is read fresh on every request (a plain statement, a cache entry of a bounded size), so a change made by
RevOps in admin or by another web process counts from the very next request.
"""

import datetime as dt
from types import SimpleNamespace

import pytest
import time_machine
from django.core.cache import cache
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from routing.access import IntakeClient
from routing.models import ApiKey, Delivery, Lead, OutboundEvent, WebhookSubscription
from routing.services import apikey_authenticate, apikey_create, apikey_revoke
from routing.throttles import ApiKeyRateThrottle

LEADS_URL = "/api/v1/leads/"
NOW = dt.datetime(2026, 11, 23, 9, 0, 0, tzinfo=dt.UTC)


def key_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


def post_lead(client: APIClient, n: int = 0):
    return client.post(LEADS_URL, {"email": f"ann{n}@prospect.de", "company": "Prospect GmbH"}, format="json")


def rates(settings, **overrides):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **overrides},
    }


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


# --- The key's rate limit ------------------------------------------------------------------------------------


def throttled_request(key_id: int = 7):
    return SimpleNamespace(user=IntakeClient(api_key=ApiKey(pk=key_id, name="Website form")))


def asks(times: list[float], *, rate: str) -> list[bool]:
    """Whether each request, made at these times (seconds), is let through by a fresh throttle per request,
    as each request in each web process gets one: only the cache carries the count."""
    answers = []
    for at in times:
        throttle = ApiKeyRateThrottle()
        throttle.rate = rate
        throttle.num_requests, throttle.duration = throttle.parse_rate(rate)
        throttle.timer = lambda at=at: NOW.timestamp() + at
        answers.append(throttle.allow_request(throttled_request(), None))
    return answers


def test_a_key_gets_its_rate_and_each_request_counts_again_once_a_minute_has_passed():
    cache.clear()
    # Three a minute: 0 s, 10 s and 20 s are let through, 30 s is not; at 61 s the first has left the window.
    assert asks([0, 10, 20, 30, 61, 62, 71], rate="3/minute") == [True, True, True, False, True, False, True]


def test_the_count_is_kept_per_key():
    cache.clear()
    assert asks([0, 1], rate="1/minute") == [True, False]
    throttle = ApiKeyRateThrottle()
    assert throttle.allow_request(throttled_request(key_id=8), None)


@pytest.mark.django_db
def test_a_key_over_its_rate_is_told_when_to_retry_within_the_window(settings):
    rates(settings, api_key="2/minute")
    _, raw_key = apikey_create(name="Website form")
    client = key_client(raw_key)

    with time_machine.travel(NOW, tick=False) as traveller:
        assert post_lead(client, 1).status_code == 201
        traveller.shift(dt.timedelta(seconds=20))
        assert post_lead(client, 2).status_code == 201
        traveller.shift(dt.timedelta(seconds=10))
        refused = post_lead(client, 3)
        assert refused.status_code == 429
        # The first request leaves the window 60 s after it came, 30 s from now.
        assert int(refused["Retry-After"]) == 30
        traveller.shift(dt.timedelta(seconds=31))
        assert post_lead(client, 4).status_code == 201


@pytest.mark.django_db
def test_the_count_is_shared_through_the_file_cache_as_web_processes_share_it(settings, tmp_path):
    # The default configuration: a file cache every web process on the machine reads and writes.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    }
    rates(settings, api_key="2/minute")
    _, raw_key = apikey_create(name="Website form")

    assert post_lead(key_client(raw_key), 1).status_code == 201
    assert post_lead(key_client(raw_key), 2).status_code == 201
    assert post_lead(key_client(raw_key), 3).status_code == 429


# The cache is cleared per example; the per-test fixtures only choose which cache.
@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    limit=st.integers(min_value=1, max_value=6),
    gaps=st.lists(st.floats(min_value=0, max_value=15, allow_nan=False), min_size=1, max_size=40),
)
@example(limit=1, gaps=[0.0, 59.99999999999999])  # A minute to the float, on the throttle's clock.
def test_the_limit_is_never_looser_and_a_request_is_remembered_at_most_a_slot_longer(limit, gaps):
    cache.clear()
    times = []
    at = 0.0
    for gap in gaps:
        at += gap
        times.append(at)
    answers = asks(times, rate=f"{limit}/minute")
    # Judged on the clock the throttle reads (seconds since the epoch), where 59.99999999999999 s after a
    # request is already 60 s after it.
    stamps = [NOW.timestamp() + t for t in times]
    allowed = [t for t, ok in zip(stamps, answers, strict=True) if ok]
    slot = 60 / ApiKeyRateThrottle.SLOTS
    for t, ok in zip(stamps, answers, strict=True):
        in_window = [a for a in allowed if t - 60 < a <= t]
        if ok:
            # Never looser: with this request, the last minute holds at most the limit.
            assert len(in_window) <= limit
        else:
            # Refused only when the limit's worth of requests came within the last minute and a slot.
            assert len([a for a in allowed if t - 60 - slot < a <= t]) >= limit
