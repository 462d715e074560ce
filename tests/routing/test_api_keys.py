"""API keys for intake sources: shown once, stored hashed, refused once revoked."""

import datetime as dt
import re
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from routing.authentication import ApiKeyAuthentication
from routing.models import ApiKey
from routing.services import apikey_create, apikey_revoke
from tests.helpers import admin_url, messages_text

pytestmark = pytest.mark.django_db


class WhoAmI(APIView):
    """A stand-in for the intake endpoints: answers with the source behind the key."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"source": request.auth.name})


def call_with(header: str | None):
    request = APIRequestFactory().get("/whoami", **({"HTTP_AUTHORIZATION": header} if header else {}))
    return WhoAmI.as_view()(request)


def test_apikey_create_prints_the_key_once_and_stores_only_its_hash():
    out, err = StringIO(), StringIO()
    call_command("apikey", "create", "Website demo form", stdout=out, stderr=err)

    raw_key = out.getvalue().strip()
    api_key = ApiKey.objects.get(name="Website demo form")
    assert raw_key.startswith("lr_") and len(raw_key) > 40
    assert raw_key.startswith(api_key.prefix)
    assert raw_key not in api_key.key_hash
    assert "shown only now" in err.getvalue()
    # The key authenticates as its source.
    assert call_with(f"Token {raw_key}").data == {"source": "Website demo form"}


def test_apikey_names_are_unique():
    apikey_create(name="Partner portal")
    with pytest.raises(CommandError, match="already exists"):
        call_command("apikey", "create", "Partner portal", stdout=StringIO(), stderr=StringIO())


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Authentication credentials were not provided."),
        ("Token lr_not-a-real-key", "Unknown API key."),
        ("Token two words", "no spaces in the key"),
    ],
)
def test_requests_without_a_valid_key_get_401_with_a_reason(header, message):
    apikey_create(name="Website demo form")
    response = call_with(header)
    assert response.status_code == 401
    assert message in str(response.data["detail"])
    assert response["WWW-Authenticate"] == "Token"


def test_a_revoked_key_is_refused_at_once():
    api_key, raw_key = apikey_create(name="Old event scanner")
    assert call_with(f"Token {raw_key}").status_code == 200

    call_command("apikey", "revoke", "Old event scanner", stdout=StringIO())

    response = call_with(f"Token {raw_key}")
    assert response.status_code == 401
    assert "revoked" in str(response.data["detail"])
    api_key.refresh_from_db()
    assert api_key.is_revoked


def test_last_use_is_stamped_at_most_once_a_minute():
    api_key, raw_key = apikey_create(name="Webinar tool")
    with time_machine.travel(dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC), tick=False):
        call_with(f"Token {raw_key}")
    with time_machine.travel(dt.datetime(2026, 11, 23, 9, 0, 30, tzinfo=dt.UTC), tick=False):
        call_with(f"Token {raw_key}")
    api_key.refresh_from_db()
    assert api_key.last_used_at == dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(dt.datetime(2026, 11, 23, 9, 2, tzinfo=dt.UTC), tick=False):
        call_with(f"Token {raw_key}")
    api_key.refresh_from_db()
    assert api_key.last_used_at == dt.datetime(2026, 11, 23, 9, 2, tzinfo=dt.UTC)


def test_revoking_twice_changes_nothing():
    apikey_create(name="CSV uploads")
    keys = ApiKey.objects.filter(name="CSV uploads")
    assert apikey_revoke(keys=keys) == 1
    assert apikey_revoke(keys=keys) == 0


def test_revops_creates_a_key_in_admin_and_sees_it_once(client, revops):
    client.force_login(revops)
    response = client.post(admin_url(ApiKey, "add"), {"name": "Website demo form"}, follow=True)

    assert response.status_code == 200
    api_key = ApiKey.objects.get(name="Website demo form")
    shown = messages_text(response)
    assert "will not be shown again" in shown
    raw_key = re.search(r"lr_[\w-]+", shown).group(0)
    assert call_with(f"Token {raw_key}").data == {"source": "Website demo form"}
    assert api_key.created_by == revops
    # The list shows the prefix, never the key.
    listing = client.get(admin_url(ApiKey, "changelist")).content.decode()
    assert api_key.prefix in listing
    assert raw_key not in listing


def test_revops_revokes_keys_from_the_admin_list(client, revops):
    api_key, raw_key = apikey_create(name="Partner portal")
    client.force_login(revops)
    client.post(admin_url(ApiKey, "changelist"), {"action": "revoke", "_selected_action": [api_key.pk]})
    assert call_with(f"Token {raw_key}").status_code == 401


# --- Scopes ---------------------------------------------------------------------------------------------


def key_client(raw_key: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


def test_a_new_key_may_post_leads_but_not_read_them_or_log_touches():
    from sla.models import Touch

    api_key, raw_key = apikey_create(name="Website form")
    client = key_client(raw_key)

    assert api_key.scopes == ["leads:write"]
    posted = client.post("/api/v1/leads/", {"email": "max@prospect.de"}, format="json")
    assert posted.status_code == 201
    lead_id = posted.json()["id"]
    read = client.get(f"/api/v1/leads/{lead_id}/")
    assert (read.status_code, read.json()) == (403, {"detail": "This API key lacks the scope leads:read."})
    touched = client.post(f"/api/v1/leads/{lead_id}/touches/", {"kind": "call"}, format="json")
    assert (touched.status_code, touched.json()) == (403, {"detail": "This API key lacks the scope touches:write."})
    assert not Touch.objects.exists()


def test_a_key_without_leads_write_cannot_post():
    from routing.models import Lead

    _, raw_key = apikey_create(name="Status page", scopes=["leads:read"])

    response = key_client(raw_key).post("/api/v1/leads/", {"email": "max@prospect.de"}, format="json")

    assert (response.status_code, response.json()) == (403, {"detail": "This API key lacks the scope leads:write."})
    assert not Lead.objects.exists()


def test_leads_read_shows_status_owner_queue_and_due_but_not_the_receipt(rep):
    from tests.factories import LeadFactory, QueueFactory

    api_key, raw_key = apikey_create(name="Website form", scopes=["leads:write", "leads:read"])
    rep.user.first_name, rep.user.last_name = "Anna", "Schmidt"
    rep.user.save()
    lead = LeadFactory(
        intake_source=api_key,
        owner=rep,
        queue=QueueFactory(name="DACH Commercial"),
        status="assigned",
        receipt={"rules": ["secret"]},
        external_id="f-1",
    )

    body = key_client(raw_key).get(f"/api/v1/leads/{lead.pk}/").json()

    assert body["status"] == "assigned"
    assert (body["owner"], body["owner_name"], body["queue"]) == (rep.user.username, "Anna Schmidt", "DACH Commercial")
    assert body["external_id"] == "f-1"
    assert "sla_due_at" in body
    assert "receipt" not in body and "rule" not in body and "email" not in body


def test_receipts_read_shows_the_whole_lead_with_its_receipt():
    from tests.factories import LeadFactory

    api_key, raw_key = apikey_create(name="Partner portal", scopes=["receipts:read"])
    lead = LeadFactory(intake_source=api_key, receipt={"outcome": "assigned"})

    body = key_client(raw_key).get(f"/api/v1/leads/{lead.pk}/").json()

    assert body["receipt"] == {"outcome": "assigned"}


def test_apikey_create_takes_scopes_and_refuses_unknown_ones():
    out = StringIO()
    call_command(
        "apikey", "create", "CRM sync", "--scope", "leads:read", "--scope", "touches:write", stdout=out, stderr=out
    )
    assert ApiKey.objects.get(name="CRM sync").scopes == ["leads:read", "touches:write"]

    with pytest.raises(CommandError, match="invalid choice"):
        call_command("apikey", "create", "Other", "--scope", "leads:delete", stdout=StringIO(), stderr=StringIO())

    listing = StringIO()
    call_command("apikey", "list", stdout=listing)
    assert "leads:read, touches:write" in listing.getvalue()


def test_revops_sets_scopes_in_admin_and_unknown_ones_are_refused(client, revops):
    client.force_login(revops)
    client.post(admin_url(ApiKey, "add"), {"name": "Partner portal", "scopes": ["leads:write", "receipts:read"]})
    api_key = ApiKey.objects.get(name="Partner portal")
    assert api_key.scopes == ["leads:write", "receipts:read"]

    response = client.post(admin_url(ApiKey, "change", api_key.pk), {"name": api_key.name, "scopes": ["leads:nuke"]})

    assert response.status_code == 200
    assert "not one of the available choices" in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.scopes == ["leads:write", "receipts:read"]
    assert "leads:write, receipts:read" in client.get(admin_url(ApiKey, "changelist")).content.decode()
    client.post(admin_url(ApiKey, "change", api_key.pk), {"name": api_key.name, "scopes": ["touches:write"]})
    api_key.refresh_from_db()
    assert api_key.scopes == ["touches:write"]


def test_the_demo_key_may_read_back_its_leads_with_receipts():
    from leadrouter.demo.loader import DEMO_API_KEY_NAME, demo_api_key_ensure

    demo_api_key_ensure()
    api_key = ApiKey.objects.get(name=DEMO_API_KEY_NAME)
    api_key.scopes = ["leads:write"]
    api_key.save()
    demo_api_key_ensure()

    api_key.refresh_from_db()
    assert api_key.scopes == ["leads:write", "leads:read", "receipts:read"]


def test_every_endpoint_an_api_key_can_call_names_its_scope():
    """A new API view that accepts keys cannot ship without deciding which scope it needs."""
    from django.urls import URLPattern, URLResolver, get_resolver

    from routing.authentication import ApiKeyScopes

    def views(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from views(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                yield getattr(pattern.callback, "cls", None)

    keyed = [view for view in views(get_resolver().url_patterns) if view is not None and ApiKeyAuthentication in
             getattr(view, "authentication_classes", [])]  # fmt: skip
    assert len(keyed) >= 3
    for view in keyed:
        assert any(issubclass(permission, ApiKeyScopes) for permission in view.permission_classes), view
