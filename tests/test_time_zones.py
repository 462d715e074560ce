"""Everyone sees their own time: which zone a user reads times in, and the middleware that turns it on per page."""

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from leadrouter.middleware import UserTimeZoneMiddleware
from territories.models import Profile
from territories.time_zones import user_time_zone, zone_info

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def site_default_new_york(settings):
    settings.LEADROUTER_DEFAULT_TIME_ZONE = "America/New_York"


def test_a_site_default_that_is_no_zone_stops_the_app_with_what_to_fix(tmp_path):
    env = {**os.environ, "LEADROUTER_VAR_DIR": str(tmp_path), "LEADROUTER_DEFAULT_TIME_ZONE": "Berlin"}
    check = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode != 0
    assert "LEADROUTER_DEFAULT_TIME_ZONE='Berlin' is not an IANA time zone" in check.stderr


# --- Whose zone -----------------------------------------------------------------------------------------------------


def test_a_rep_sees_their_own_zone(rep):
    assert rep.time_zone == "Europe/Berlin"
    assert user_time_zone(user=rep.user) == "Europe/Berlin"


def test_a_reps_own_zone_wins_over_a_profile_written_past_validation(rep):
    Profile.objects.create(user=rep.user, time_zone="Asia/Tokyo")
    assert user_time_zone(user=rep.user) == "Europe/Berlin"


def test_a_manager_sees_the_zone_in_their_profile(manager):
    Profile.objects.create(user=manager, time_zone="Asia/Kolkata")
    assert user_time_zone(user=manager) == "Asia/Kolkata"


def test_a_manager_without_a_zone_of_their_own_sees_the_site_default(manager):
    assert user_time_zone(user=manager) == "America/New_York"
    Profile.objects.create(user=manager, time_zone="")
    assert user_time_zone(user=manager) == "America/New_York"


def test_someone_signed_out_sees_the_site_default():
    assert user_time_zone(user=AnonymousUser()) == "America/New_York"


def test_a_zone_that_no_longer_exists_falls_back_to_the_site_default():
    assert zone_info("Mars/Olympus_Mons").key == "America/New_York"
    assert zone_info("Europe/Berlin").key == "Europe/Berlin"


# --- The profile in admin -------------------------------------------------------------------------------------------


def test_a_profile_refuses_a_zone_that_is_not_an_iana_name(manager):
    with pytest.raises(ValidationError) as error:
        Profile(user=manager, time_zone="CET+1").full_clean()
    assert "is not an IANA time zone" in str(error.value.message_dict["time_zone"])


def test_a_profile_of_a_rep_sends_the_zone_to_the_rep(rep):
    with pytest.raises(ValidationError) as error:
        Profile(user=rep.user, time_zone="Asia/Tokyo").full_clean()
    assert "Change it on the rep" in error.value.message_dict["time_zone"][0]


def test_revops_sets_a_managers_zone_in_admin_and_bad_names_are_explained(client, revops, manager):
    client.force_login(revops)
    url = reverse("admin:territories_profile_add")

    refused = client.post(url, {"user": manager.pk, "time_zone": "Berlin"})
    assert refused.status_code == 200
    assert "Berlin is not an IANA time zone" in refused.content.decode()

    saved = client.post(url, {"user": manager.pk, "time_zone": "Asia/Kolkata"})
    assert saved.status_code == 302
    assert user_time_zone(user=manager) == "Asia/Kolkata"


# --- The middleware -------------------------------------------------------------------------------------------------


def zone_seen_by(user, path: str) -> str:
    """The zone a view at ``path`` runs in for ``user``."""
    seen: list[str] = []

    def view(request):
        seen.append(timezone.get_current_timezone_name())
        return HttpResponse()

    request = RequestFactory().get(path)
    request.user = user
    UserTimeZoneMiddleware(view)(request)
    return seen[0]


def test_pages_run_in_the_readers_zone_and_the_zone_is_reset_after(rep, manager):
    assert zone_seen_by(rep.user, "/leads/") == "Europe/Berlin"
    assert zone_seen_by(manager, "/team/") == "America/New_York"
    assert zone_seen_by(AnonymousUser(), "/login/") == "America/New_York"
    # The next request on this thread starts from UTC again.
    assert timezone.get_current_timezone_name() == "UTC"


def test_the_api_stays_in_utc(rep):
    assert zone_seen_by(rep.user, "/api/v1/leads/") == "UTC"


def test_every_page_names_the_zone_its_times_are_in(client, rep, manager):
    client.force_login(rep.user)
    page = client.get(reverse("my-leads")).content.decode()
    assert "Times in Europe/Berlin (CE" in page  # CET in winter, CEST in summer

    client.force_login(manager)
    page = client.get(reverse("team-board")).content.decode()
    assert "Times in America/New_York (E" in page  # EST or EDT


def test_a_zone_whose_name_is_its_abbreviation_is_named_once(client, manager, settings):
    settings.LEADROUTER_DEFAULT_TIME_ZONE = "UTC"
    client.force_login(manager)

    page = client.get(reverse("team-board")).content.decode()

    assert ">Times in UTC</span>" in page
