"""Touches API: systems and people log touches of the leads they may see; the first stops the SLA clock."""

import datetime as dt
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from routing.models import Lead
from routing.services import apikey_create
from sla.models import TOUCH_NOTE_MAX_CHARS, BusinessCalendar, CalendarHours, LeadSla, SlaPolicy, Touch
from sla.services import sla_clocks_start, sla_state
from tests.factories import AssignmentFactory, LeadFactory

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY_7AM = datetime(2026, 11, 23, 7, 0, tzinfo=BERLIN)
MONDAY_930 = datetime(2026, 11, 23, 9, 30, tzinfo=BERLIN)


def touches_url(lead_id: int) -> str:
    return f"/api/v1/leads/{lead_id}/touches/"


def key_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def website(db):
    api_key, raw_key = apikey_create(name="Website demo form", scopes=["leads:write", "touches:write"])
    return api_key, key_client(raw_key)


@pytest.fixture
def lead(rep, website):
    """Posted by the website, routed to the rep at 07:00 on Monday; due 10:00 in Berlin office hours."""
    calendar = BusinessCalendar.objects.create(name="Berlin office", time_zone="Europe/Berlin", is_default=True)
    CalendarHours.objects.bulk_create(
        CalendarHours(calendar=calendar, weekday=weekday, start=time(9), end=time(18)) for weekday in range(5)
    )
    SlaPolicy.objects.create(name="Standard", first_touch_minutes=60, is_default=True)
    lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED, routed_at=MONDAY_7AM, intake_source=website[0])
    sla_clocks_start(leads=[lead], now=MONDAY_7AM)
    return lead


def test_owner_rep_logs_a_touch_and_gets_the_sla(rep, lead):
    with time_machine.travel(MONDAY_930, tick=False):
        response = session_client(rep.user).post(
            touches_url(lead.pk), {"kind": "call", "note": "Left a voicemail"}, format="json"
        )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["touch"]["kind"] == "call"
    assert body["touch"]["by"] == "rep"
    assert body["touch"]["note"] == "Left a voicemail"
    assert body["sla"]["state"] == "met"
    assert body["sla"]["breach_business_seconds"] is None
    assert body["sla"]["speed_wall_seconds"] == 9000
    assert body["sla"]["speed_business_seconds"] == 1800
    assert LeadSla.objects.get(lead=lead).touched_at == MONDAY_930


def test_late_touch_reports_the_breach(rep, lead):
    with time_machine.travel(datetime(2026, 11, 23, 12, tzinfo=BERLIN), tick=False):
        response = session_client(rep.user).post(
            touches_url(lead.pk), {"kind": "email", "at": "2026-11-23T10:00:00Z"}, format="json"
        )
    assert response.status_code == 201, response.json()
    # Due 09:00 UTC (10:00 Berlin), touched 10:00 UTC: one business hour late.
    assert response.json()["sla"]["state"] == "missed"
    assert response.json()["sla"]["breach_business_seconds"] == 3600


def test_manager_may_touch_their_rep_s_lead(manager, lead):
    with time_machine.travel(MONDAY_930, tick=False):
        response = session_client(manager).post(touches_url(lead.pk), {"kind": "meeting"}, format="json")
    assert response.status_code == 201


def test_intake_source_may_touch_the_leads_it_posted(website, lead):
    _, client = website
    with time_machine.travel(MONDAY_930, tick=False):
        response = client.post(touches_url(lead.pk), {"kind": "email"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["touch"]["intake_source"] == "Website demo form"
    assert response.json()["touch"]["by"] is None


def test_repeated_identical_touch_from_a_system_is_stored_once(website, lead):
    _, client = website
    body = {"kind": "email", "at": "2026-11-23T08:30:00Z"}
    with time_machine.travel(MONDAY_930, tick=False):
        first = client.post(touches_url(lead.pk), body, format="json")
        again = client.post(touches_url(lead.pk), body, format="json")
    assert first.json()["touch"]["id"] == again.json()["touch"]["id"]
    assert Touch.objects.filter(lead=lead).count() == 1


def test_outsider_gets_404(outsider, lead):
    response = session_client(outsider.user).post(touches_url(lead.pk), {"kind": "call"}, format="json")
    assert response.status_code == 404
    assert not Touch.objects.exists()


def test_another_api_key_gets_404(lead):
    _, raw_key = apikey_create(name="Partner portal", scopes=["touches:write"])
    response = key_client(raw_key).post(touches_url(lead.pk), {"kind": "call"}, format="json")
    assert response.status_code == 404
    assert not Touch.objects.exists()


def test_unknown_lead_is_404(rep, lead):
    response = session_client(rep.user).post(touches_url(lead.pk + 1000), {"kind": "call"}, format="json")
    assert response.status_code == 404


def test_anonymous_request_is_refused(lead):
    response = APIClient().post(touches_url(lead.pk), {"kind": "call"}, format="json")
    assert response.status_code == 401


def test_bad_kind_is_400_with_the_field_error(rep, lead):
    response = session_client(rep.user).post(touches_url(lead.pk), {"kind": "fax"}, format="json")
    assert response.status_code == 400
    assert "kind" in response.json()
    assert not Touch.objects.exists()


def test_touch_far_in_the_future_is_400(rep, lead):
    with time_machine.travel(MONDAY_930, tick=False):
        response = session_client(rep.user).post(
            touches_url(lead.pk), {"kind": "call", "at": "2026-11-23T08:40:00Z"}, format="json"
        )
    # 08:40 UTC is ten minutes after 09:30 in Berlin.
    assert response.status_code == 400
    assert "at" in response.json()
    assert LeadSla.objects.get(lead=lead).touched_at is None


def test_the_lead_api_shows_the_clock_and_the_escalations(client, revops):
    # The lead's page in the API carries its SLA as of now and every step that fired.
    from sla.models import Escalation

    lead = Lead.objects.create(raw_payload={"email": "max@prospect.de"}, status=Lead.Status.ASSIGNED)
    started = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    LeadSla.objects.create(lead=lead, started_at=started, due_at=started + dt.timedelta(hours=1))
    Escalation.objects.create(
        lead=lead, action="remind_rep", reason="No first touch at 80% of the target", fired_at=started
    )
    client.force_login(revops)

    with time_machine.travel(started + dt.timedelta(hours=2), tick=False):
        body = client.get(f"/api/v1/leads/{lead.pk}/").json()

    assert body["sla"]["state"] == "breached"
    assert body["sla"]["due_at"] == "2026-11-23T10:00:00Z"
    assert [(row["action"], row["status"]) for row in body["escalations"]] == [("remind_rep", "open")]


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (85896, "Send this as text (a JSON string), not a number or true/false."),
        (True, "Send this as text (a JSON string), not a number or true/false."),
        # Counted as sent, as the published schema's maxLength says, not after trimming.
        (" " + "x" * TOUCH_NOTE_MAX_CHARS, f"Ensure this field has no more than {TOUCH_NOTE_MAX_CHARS} characters."),
    ],
)
def test_a_note_that_is_not_text_or_is_too_long_is_400_and_nothing_is_logged(website, rep, lead, note, message):
    _, client = website
    with time_machine.travel(MONDAY_930, tick=False):
        response = client.post(touches_url(lead.pk), {"kind": "email", "note": note}, format="json")

    assert response.status_code == 400
    assert response.json()["note"] == [message]
    assert not Touch.objects.exists()
    assert LeadSla.objects.get(lead=lead).touched_at is None


# --- A touch cannot rewrite history ---------------------------------------------------------------------


@pytest.mark.parametrize("at", ["1999-01-01T00:00:00Z", "2026-11-23T05:59:00Z"])
def test_a_touch_before_the_assignment_is_400_and_the_breach_stands(website, rep, lead, at):
    # Routed at 07:00 Berlin (06:00 UTC), due 10:00, still untouched at noon: breached. A touch "from 1999" or a
    # minute before the lead was assigned would turn the breach into "met" with speed 0.
    AssignmentFactory(lead=lead, rep=rep, assigned_at=MONDAY_7AM)
    _, client = website
    with time_machine.travel(datetime(2026, 11, 23, 12, tzinfo=BERLIN), tick=False):
        response = client.post(touches_url(lead.pk), {"kind": "call", "at": at}, format="json")
        clock = LeadSla.objects.get(lead=lead)
        assert sla_state(lead_sla=clock, now=timezone.now()) == LeadSla.State.BREACHED
    assert response.status_code == 400
    assert response.json()["at"] == [
        "A touch cannot be before the lead's current assignment started (2026-11-23 06:00:00 UTC)."
    ]
    assert not Touch.objects.exists()
    assert clock.touched_at is None and clock.speed_wall_seconds is None


def test_a_touch_counts_from_the_current_assignment_not_the_first_routing(website, rep, lead):
    # Routed at 07:00, reassigned at 11:00 Berlin (10:00 UTC): the new owner's period starts at 11:00.
    reassigned = datetime(2026, 11, 23, 11, tzinfo=BERLIN)
    AssignmentFactory(lead=lead, rep=rep, assigned_at=MONDAY_7AM, ended_at=reassigned)
    AssignmentFactory(lead=lead, rep=rep, assigned_at=reassigned)
    _, client = website
    with time_machine.travel(datetime(2026, 11, 23, 12, tzinfo=BERLIN), tick=False):
        before = client.post(touches_url(lead.pk), {"kind": "call", "at": "2026-11-23T09:59:00Z"}, format="json")
        after = client.post(touches_url(lead.pk), {"kind": "call", "at": "2026-11-23T10:00:00Z"}, format="json")
    assert before.status_code == 400
    assert "2026-11-23 10:00:00 UTC" in before.json()["at"][0]
    assert after.status_code == 201, after.json()
    assert Touch.objects.filter(lead=lead).count() == 1


def test_a_touch_more_than_two_minutes_ahead_is_400_and_a_little_skew_is_fine(rep, lead):
    client = session_client(rep.user)
    with time_machine.travel(MONDAY_930, tick=False):
        ahead = client.post(touches_url(lead.pk), {"kind": "call", "at": "2026-11-23T08:33:00Z"}, format="json")
        skewed = client.post(touches_url(lead.pk), {"kind": "call", "at": "2026-11-23T08:31:30Z"}, format="json")
    assert ahead.status_code == 400
    assert ahead.json()["at"] == ["A touch cannot be more than 2 minutes in the future."]
    assert skewed.status_code == 201, skewed.json()
    assert skewed.json()["touch"]["logged_late"] is False


def test_a_touch_recorded_late_by_an_integration_is_kept_and_marked(website, lead):
    # The CRM syncs at noon a call made at 09:30: the clock stops at 09:30 and the history says it came in late.
    _, client = website
    noon = datetime(2026, 11, 23, 12, tzinfo=BERLIN)
    with time_machine.travel(noon, tick=False):
        response = client.post(touches_url(lead.pk), {"kind": "call", "at": "2026-11-23T08:30:00Z"}, format="json")
    assert response.status_code == 201, response.json()
    touch = response.json()["touch"]
    assert touch["logged_late"] is True
    assert touch["at"] == "2026-11-23T08:30:00Z"
    assert touch["created_at"] == "2026-11-23T11:00:00Z"
    assert response.json()["sla"]["state"] == "met"


def test_a_touch_logged_a_few_minutes_after_it_happened_is_not_marked(website, lead):
    _, client = website
    with time_machine.travel(MONDAY_930, tick=False):
        response = client.post(touches_url(lead.pk), {"kind": "call", "at": "2026-11-23T08:27:00Z"}, format="json")
    assert response.status_code == 201
    assert response.json()["touch"]["logged_late"] is False


def test_a_touch_of_a_lead_not_yet_routed_may_not_predate_its_arrival(website):
    api_key, client = website
    with time_machine.travel(MONDAY_7AM, tick=False):
        lead = LeadFactory(intake_source=api_key)
    with time_machine.travel(MONDAY_930, tick=False):
        response = client.post(touches_url(lead.pk), {"kind": "email", "at": "2026-11-23T05:00:00Z"}, format="json")
    assert response.status_code == 400
    assert response.json()["at"] == ["A touch cannot be before the lead arrived (2026-11-23 06:00:00 UTC)."]
