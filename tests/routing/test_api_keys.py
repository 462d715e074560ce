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
