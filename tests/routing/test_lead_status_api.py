"""Closing a lead from outside (POST /api/v1/leads/{id}/status/) does what the rep's page does: the rep's capacity
is freed, the clock stops and open escalations are resolved; the lead's API shows its assignment history."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from rest_framework.test import APIClient

from routing.dispatch import leads_route, queued_leads_distribute
from routing.models import CLOSE_REASON_MAX_CHARS, Assignment, Lead, RepLoad, RepTask
from routing.ownership import loads_recount
from routing.services import apikey_create, lead_reopen
from sla.api import ASSIGNMENT_HISTORY_MAX
from sla.models import Escalation, LeadSla, SlaPolicy
from tests.factories import AssignmentFactory, LeadFactory, UserFactory, dach_coverage

pytestmark = pytest.mark.django_db

MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def status_url(lead_id: int) -> str:
    return f"/api/v1/leads/{lead_id}/status/"


def key_client(*scopes: str, name: str = "CRM sync") -> tuple[APIClient, object]:
    api_key, raw_key = apikey_create(name=name, scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client, api_key


def signed_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def open_lead(rep, api_key=None, **fields):
    """An assigned lead of ``rep`` with an overdue clock and an open manager alert, posted with ``api_key``."""
    lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED, intake_source=api_key, **fields)
    AssignmentFactory(lead=lead, rep=rep, assigned_at=MONDAY - dt.timedelta(hours=3))
    policy, _ = SlaPolicy.objects.get_or_create(name="Inbound", defaults={"first_touch_minutes": 60})
    LeadSla.objects.create(
        lead=lead,
        policy=policy,
        started_at=MONDAY - dt.timedelta(hours=3),
        due_at=MONDAY - dt.timedelta(hours=2),
        next_step_at=MONDAY + dt.timedelta(minutes=5),
    )
    Escalation.objects.create(
        lead=lead, action="alert_manager", rep=rep, reason="No first touch", fired_at=MONDAY - dt.timedelta(hours=1)
    )
    return lead


@time_machine.travel(MONDAY, tick=False)
def test_converting_through_the_api_frees_the_reps_capacity_for_the_next_lead_in_a_capped_queue():
    queue = dach_coverage()
    for membership in queue.memberships.select_related("rep"):
        membership.rep.max_open_leads = 1
        membership.rep.save()
    client, _ = key_client("leads:write", "leads:read", "leads:status", name="Website")
    ids = []
    for number in range(3):
        response = client.post("/api/v1/leads/", {"email": f"lead{number}@prospect.de", "country": "DE"}, format="json")
        assert response.status_code == 201, response.json()
        ids.append(response.json()["id"])
    leads_route(lead_ids=ids)
    first, _, waiting = (Lead.objects.select_related("owner__user").get(pk=pk) for pk in ids)
    assert first.owner.user.username == "anna"
    assert Lead.objects.get(pk=waiting.pk).status == Lead.Status.QUEUED

    response = client.post(status_url(first.pk), {"status": "converted", "reason": "Opp 0061 won"}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["changed"]) == ("converted", True)
    assert body["closed"] == {"at": "2026-11-23T10:00:00Z", "by": None, "via": "Website", "reason": "Opp 0061 won"}
    assert RepLoad.objects.get(rep=first.owner).open_leads == 0
    assert not RepTask.objects.filter(lead=first, done_at__isnull=True).exists()
    # The sweep releases held leads to whoever has room: the lead that waited goes to anna.
    queued_leads_distribute()
    released = Lead.objects.select_related("owner__user").get(pk=waiting.pk)
    assert (released.status, released.owner.user.username) == ("assigned", "anna")
    assert loads_recount(now=MONDAY) == []


@time_machine.travel(MONDAY, tick=False)
def test_disqualifying_stops_the_clock_and_resolves_escalations_with_the_reason(rep):
    client, api_key = key_client("leads:status")
    lead = open_lead(rep, api_key)

    response = client.post(
        status_url(lead.pk), {"status": "disqualified", "reason": " Student, no budget "}, format="json"
    )

    assert response.status_code == 200, response.json()
    lead.refresh_from_db()
    assert (lead.status, lead.closed_by, lead.closed_via, lead.close_reason) == (
        "disqualified",
        None,
        api_key,
        "Student, no budget",
    )
    clock = LeadSla.objects.get(lead=lead)
    assert clock.next_step_at is None
    escalation = Escalation.objects.get(lead=lead)
    assert escalation.status == Escalation.Status.RESOLVED
    assert escalation.comment == "Lead disqualified: Student, no budget"


@time_machine.travel(MONDAY, tick=False)
def test_a_repeat_changes_nothing_and_another_outcome_is_a_conflict(rep):
    client, api_key = key_client("leads:status")
    lead = open_lead(rep, api_key)
    assert client.post(status_url(lead.pk), {"status": "nurture"}, format="json").status_code == 200

    again = client.post(status_url(lead.pk), {"status": "nurture", "reason": "second try"}, format="json")
    other = client.post(status_url(lead.pk), {"status": "converted"}, format="json")

    assert again.status_code == 200
    assert (again.json()["changed"], again.json()["closed"]["reason"]) == (False, "")
    assert other.status_code == 409
    assert other.json()["status"] == "nurture"
    assert "already sent to nurture" in other.json()["detail"]
    lead.refresh_from_db()
    assert (lead.status, lead.close_reason) == ("nurture", "")


def test_a_lead_that_is_not_open_is_a_conflict(rep):
    client, api_key = key_client("leads:status")
    waiting = LeadFactory(status=Lead.Status.QUEUED, intake_source=api_key)

    response = client.post(status_url(waiting.pk), {"status": "converted"}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "The lead is not open (it is waiting in queue): only an open lead can be closed.",
        "status": "queued",
    }


def test_a_key_acts_only_on_its_own_leads_and_needs_the_scope(rep):
    own_client, _ = key_client("leads:status", "leads:read", name="Own")
    _, other_key = key_client("leads:status", "receipts:read", name="Other")
    reader, reader_key = key_client("leads:read", "leads:write", name="Reader")
    theirs = open_lead(rep, other_key)
    unposted = open_lead(rep, None)
    readable = open_lead(rep, reader_key)

    assert own_client.post(status_url(theirs.pk), {"status": "converted"}, format="json").status_code == 404
    assert own_client.post(status_url(unposted.pk), {"status": "converted"}, format="json").status_code == 404
    assert own_client.post(status_url(999_999), {"status": "converted"}, format="json").status_code == 404
    refused = reader.post(status_url(readable.pk), {"status": "converted"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "This API key lacks the scope leads:status."
    assert APIClient().post(status_url(theirs.pk), {"status": "converted"}, format="json").status_code in (401, 403)
    assert Lead.objects.filter(status=Lead.Status.ASSIGNED).count() == 3


@time_machine.travel(MONDAY, tick=False)
def test_people_who_may_see_the_lead_may_close_it_others_get_404(rep, manager, revops, outsider):
    mine, managed, any_lead, not_theirs = (open_lead(rep) for _ in range(4))

    assert (
        signed_in(outsider.user).post(status_url(not_theirs.pk), {"status": "nurture"}, format="json").status_code
        == 404
    )
    assert signed_in(rep.user).post(status_url(mine.pk), {"status": "converted"}, format="json").status_code == 200
    assert signed_in(manager).post(status_url(managed.pk), {"status": "nurture"}, format="json").status_code == 200
    assert (
        signed_in(revops)
        .post(status_url(any_lead.pk), {"status": "closed", "reason": "Merged"}, format="json")
        .status_code
        == 200
    )

    mine.refresh_from_db()
    assert (mine.status, mine.closed_by, mine.closed_via) == ("converted", rep.user, None)
    assert Lead.objects.get(pk=not_theirs.pk).status == Lead.Status.ASSIGNED
    assert RepLoad.objects.get(rep=rep).open_leads == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"status": "won"}, "status", '"won" is not a valid choice.'),
        ({"status": "queued"}, "status", '"queued" is not a valid choice.'),
        ({}, "status", "This field is required."),
        ({"status": "disqualified"}, "reason", "Say why the lead is disqualified (a reason)."),
        ({"status": "closed", "reason": "   "}, "reason", "Say why the lead is closed (a reason)."),
        (
            {"status": "converted", "reason": "x" * (CLOSE_REASON_MAX_CHARS + 1)},
            "reason",
            "Ensure this field has no more than 500 characters.",
        ),
        # Counted as sent, as the published schema's maxLength says, not after trimming.
        (
            {"status": "closed", "reason": "\x1f" + "x" * CLOSE_REASON_MAX_CHARS},
            "reason",
            "Ensure this field has no more than 500 characters.",
        ),
        ({"status": "closed", "reason": " " * (CLOSE_REASON_MAX_CHARS + 1)}, "reason", None),
        ({"status": "converted", "reason": "a\x00b"}, None, None),
        ({"status": ["converted"]}, "status", None),
        ({"status": "converted", "reason": 42}, "reason", "Send this as text (a JSON string)."),
        ([{"status": "converted"}], None, None),
    ],
)
def test_odd_bodies_are_400s_and_the_lead_stays_open(rep, body, field, message):
    client, api_key = key_client("leads:status")
    lead = open_lead(rep, api_key)

    response = client.post(status_url(lead.pk), body, format="json")

    assert response.status_code == 400, response.content
    if field is not None:
        assert field in response.json()
    if message is not None:
        assert response.json()[field] == [message]
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.ASSIGNED


@pytest.mark.parametrize(
    "raw", [b"not json", b'{"status": "converted"', b"[" * 5000, b'{"status": "converted", "reason": 1e999}']
)
def test_bodies_that_are_not_json_are_400s(rep, raw):
    client, api_key = key_client("leads:status")
    lead = open_lead(rep, api_key)

    response = client.post(status_url(lead.pk), raw, content_type="application/json")

    assert response.status_code == 400
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.ASSIGNED


@time_machine.travel(MONDAY, tick=False)
def test_a_lead_closed_by_a_key_reopens_with_the_key_in_its_history(rep):
    client, api_key = key_client("leads:status")
    lead = open_lead(rep, api_key)
    client.post(status_url(lead.pk), {"status": "disqualified", "reason": "Spam"}, format="json")

    assert lead_reopen(lead=Lead.objects.get(pk=lead.pk), by=rep.user)

    lead.refresh_from_db()
    assert (lead.status, lead.closed_at, lead.closed_via) == ("accepted", None, None)
    reopened = Assignment.objects.filter(lead=lead).order_by("-assigned_at", "-pk").first()
    assert reopened.note.startswith("Disqualified by the API key CRM sync on 2026-11-23 10:00 UTC: Spam")


# --- The assignment history in GET /api/v1/leads/{id}/ ------------------------------------------------------


def test_the_lead_api_shows_the_assignment_history_oldest_first(rep, revops):
    lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED, queue=None)
    first = AssignmentFactory(
        lead=lead, rep=None, reason="routed", assigned_at=MONDAY, ended_at=MONDAY + dt.timedelta(minutes=5)
    )
    first.receipt = {"summary": "Held in the queue."}
    first.save()
    boss = UserFactory(username="boss")
    AssignmentFactory(
        lead=lead,
        rep=rep,
        reason="manual",
        assigned_by=boss,
        note="Speaks German",
        assigned_at=MONDAY + dt.timedelta(minutes=5),
    )

    body = signed_in(revops).get(f"/api/v1/leads/{lead.pk}/").json()

    assert [(row["owner"], row["actor"], row["reason"], row["note"]) for row in body["assignments"]] == [
        (None, None, "routed", ""),
        ("rep", "boss", "manual", "Speaks German"),
    ]
    assert body["assignments"][0]["summary"] == "Held in the queue."
    assert body["assignments"][0]["at"] == "2026-11-23T10:00:00Z"
    assert body["assignments"][0]["ended_at"] == "2026-11-23T10:05:00Z"
    assert body["assignments_omitted"] == 0


def test_a_long_history_shows_the_latest_periods_and_counts_the_rest(rep, revops):
    lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED)
    Assignment.objects.bulk_create(
        Assignment(lead=lead, rep=rep, note=str(number), assigned_at=MONDAY + dt.timedelta(minutes=number))
        for number in range(ASSIGNMENT_HISTORY_MAX + 7)
    )

    body = signed_in(revops).get(f"/api/v1/leads/{lead.pk}/").json()

    notes = [int(row["note"]) for row in body["assignments"]]
    assert notes == list(range(7, ASSIGNMENT_HISTORY_MAX + 7))
    assert body["assignments_omitted"] == 7


def test_a_key_with_leads_read_only_gets_the_summary_without_the_history(rep):
    client, api_key = key_client("leads:read")
    lead = open_lead(rep, api_key)

    body = client.get(f"/api/v1/leads/{lead.pk}/").json()

    assert body["id"] == lead.pk
    assert "assignments" not in body


@time_machine.travel(MONDAY, tick=False)
def test_the_lead_page_says_which_integration_closed_the_lead(client, rep):
    api, api_key = key_client("leads:status")
    lead = open_lead(rep, api_key)
    api.post(status_url(lead.pk), {"status": "converted", "reason": "Opp 0061"}, format="json")
    client.force_login(rep.user)

    page = client.get(reverse("lead-page", args=[lead.pk])).content.decode()

    assert "By the integration CRM sync on 2026-11-23" in page
    assert "“Opp 0061”" in page
