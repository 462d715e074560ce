"""Brute force is slowed: failed logins lock out a user name and an address, and the API has rate limits."""

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from routing.services import apikey_create
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LEAD = {"email": "jana.keller@keller-maschinenbau.de", "company": "Keller Maschinenbau GmbH", "country": "DE"}


def log_in(client: Client, username: str, password: str, url: str = "/accounts/login/", address: str = "192.0.2.10"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_eleventh_failed_login_in_a_minute_is_refused_without_checking_the_password(client, settings):
    UserFactory(username="anna")
    for attempt in range(1, 10):
        assert log_in(client, "anna", "wrong").status_code == 200, attempt  # The form again, with its error.
    # The tenth failure locks the user name out.
    assert log_in(client, "anna", "wrong").status_code == 429

    # Even the right password is refused now: the lock is checked before the password.
    locked = log_in(client, "anna", PASSWORD)
    assert locked.status_code == 429
    assert locked["Retry-After"] == str(15 * 60)
    assert "Too many failed logins" in locked.content.decode()
    assert not is_signed_in(client)


def test_failures_for_one_user_name_lock_it_from_every_address(client):
    UserFactory(username="anna")
    for attempt in range(10):
        log_in(client, "anna", "wrong", address=f"198.51.100.{attempt}")

    assert log_in(client, "anna", PASSWORD, address="203.0.113.99").status_code == 429
    assert not is_signed_in(client)


def test_failures_from_one_address_lock_it_for_every_user_name(client):
    UserFactory(username="anna")
    for attempt in range(10):
        log_in(client, f"guess{attempt}", "wrong", address="192.0.2.66")

    assert log_in(client, "anna", PASSWORD, address="192.0.2.66").status_code == 429
    # Anna, from her own address, is not affected.
    assert log_in(client, "anna", PASSWORD, address="192.0.2.10").status_code == 302
    assert is_signed_in(client)


def test_the_admin_login_is_limited_too_and_lockouts_are_listed_in_admin(client):
    UserFactory(username="anna", is_staff=True)
    for _ in range(10):
        log_in(client, "anna", "wrong", url="/admin/login/")
    assert log_in(client, "anna", PASSWORD, url="/admin/login/").status_code == 429

    administrator = Client()
    administrator.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    attempts = administrator.get(reverse("admin:axes_accessattempt_changelist"))
    assert attempts.status_code == 200
    assert "anna" in attempts.content.decode()


def test_behind_a_trusted_proxy_the_client_is_the_address_the_proxy_saw(settings):
    from django.test import RequestFactory

    from leadrouter.security import client_ip

    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.10")
    # Without a proxy configured, the header is the client's own claim and is ignored.
    assert client_ip(request) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 1
    # One proxy: its entry (the right-most) is the client; what the client wrote further left is not trusted.
    assert client_ip(request) == "192.0.2.10"


def rates(settings, **overrides):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **overrides},
    }


def key_client(name: str) -> APIClient:
    _, raw_key = apikey_create(name=name, scopes=["leads:write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


def test_an_api_key_over_its_rate_gets_429_with_retry_after_and_other_keys_go_on(settings):
    rates(settings, api_key="2/minute")
    website, partner = key_client("Website form"), key_client("Partner portal")

    assert website.post("/api/v1/leads/", LEAD, format="json").status_code < 300
    assert website.post("/api/v1/leads/", LEAD, format="json").status_code < 300
    throttled = website.post("/api/v1/leads/", LEAD, format="json")

    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert "throttled" in throttled.json()["detail"].lower()
    assert partner.post("/api/v1/leads/", LEAD, format="json").status_code < 300


def test_anonymous_callers_are_limited_per_address(settings):
    rates(settings, anon="2/minute")
    anonymous = APIClient()

    assert anonymous.get("/api/schema/", REMOTE_ADDR="192.0.2.7").status_code == 200
    assert anonymous.get("/api/schema/", REMOTE_ADDR="192.0.2.7").status_code == 200
    throttled = anonymous.get("/api/schema/", REMOTE_ADDR="192.0.2.7")

    assert throttled.status_code == 429
    assert "Retry-After" in throttled
    assert anonymous.get("/api/schema/", REMOTE_ADDR="192.0.2.8").status_code == 200


def test_signed_in_people_are_limited_per_person(settings, revops):
    rates(settings, user="1/minute", anon="100/minute")
    person = APIClient()
    person.force_login(revops)

    assert person.get("/api/schema/").status_code == 200
    assert person.get("/api/schema/").status_code == 429
