"""Closing a lead closes its clock: disqualifying, nurturing, converting or handing a lead back stops its SLA
clock and resolves its open escalations with the reason; the lead page says who closed it, when and why; the
rep's closed view lists closed leads and the owner (or their manager) reopens one within the reopen window."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from routing.models import CLOSE_REASON_MAX_CHARS, Assignment, Lead, RepLoad
from routing.services import LeadActionError, lead_disqualify, lead_reopen
from sla.models import TOUCH_NOTE_MAX_CHARS, Escalation, LeadSla, SlaPolicy, Touch
from tests.factories import AssignmentFactory, LeadFactory, RepFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


def overdue_lead(rep, *, days_overdue: int = 16, **fields):
    """A lead of ``rep`` whose first touch was due ``days_overdue`` days ago, with the manager's open alert."""
    lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED, **fields)
    AssignmentFactory(lead=lead, rep=rep, assigned_at=NOW - dt.timedelta(days=days_overdue, hours=1))
    policy, _ = SlaPolicy.objects.get_or_create(name="Inbound", defaults={"first_touch_minutes": 60})
    LeadSla.objects.create(
        lead=lead,
        policy=policy,
        started_at=NOW - dt.timedelta(days=days_overdue, hours=1),
        due_at=NOW - dt.timedelta(days=days_overdue),
        next_step_at=NOW + dt.timedelta(minutes=5),
    )
    Escalation.objects.create(
        lead=lead,
        action="alert_manager",
        rep=rep,
        reason="No first touch within the target",
        fired_at=NOW - dt.timedelta(days=15),
    )
    return lead


def messages_of(response) -> str:
    return " ".join(str(message) for message in response.context["messages"])


@time_machine.travel(NOW, tick=False)
def test_a_disqualified_lead_reads_closed_with_its_reason_and_no_open_escalation(client, rep):
    lead = overdue_lead(rep)
    client.force_login(rep.user)
    page = client.get(reverse("lead-page", args=[lead.pk])).content.decode()
    assert "Breached" in page and "overdue 16 d" in page

    client.post(reverse("lead-disqualify", args=[lead.pk]), {"reason": "Student project, no budget"})

    lead.refresh_from_db()
    assert (lead.status, lead.closed_by, lead.closed_at) == (Lead.Status.DISQUALIFIED, rep.user, NOW)
    clock = LeadSla.objects.get(lead=lead)
    assert (clock.state, clock.next_step_at) == (LeadSla.State.STOPPED, None)  # The ladder fires no more.
    escalation = Escalation.objects.get(lead=lead)
    assert (escalation.status, escalation.handled_by, escalation.handled_at) == ("resolved", rep.user, NOW)
    assert escalation.comment == "Lead disqualified: Student project, no budget"
    page = client.get(reverse("lead-page", args=[lead.pk])).content.decode()
    assert "Breached" not in page and "overdue" not in page
    assert "Stopped: lead closed" in page
    assert f"By {rep.user.get_full_name()} on " in page and "Student project, no budget" in page
    assert "Open</td>" not in page  # No escalation reads open.


@time_machine.travel(NOW, tick=False)
def test_nurture_and_converted_close_the_clock_too_and_keep_their_optional_reason(client, rep):
    nurtured, won = overdue_lead(rep), overdue_lead(rep)
    client.force_login(rep.user)

    client.post(reverse("lead-nurture", args=[nurtured.pk]), {"reason": ""})
    client.post(reverse("lead-convert", args=[won.pk]), {"reason": "Pilot signed"})

    nurtured.refresh_from_db()
    won.refresh_from_db()
    assert (nurtured.status, nurtured.close_reason) == (Lead.Status.NURTURE, "")
    assert (won.status, won.close_reason) == (Lead.Status.CONVERTED, "Pilot signed")
    assert Escalation.objects.get(lead=nurtured).comment == "Lead sent to nurture."
    assert Escalation.objects.get(lead=won).comment == "Lead converted (won): Pilot signed"
    assert not Escalation.objects.filter(status="open").exists()
    assert RepLoad.objects.get(rep=rep).open_leads == 0


@time_machine.travel(NOW, tick=False)
def test_a_touched_clock_keeps_its_result_when_the_lead_closes(rep):
    lead = overdue_lead(rep)
    LeadSla.objects.filter(lead=lead).update(touched_at=NOW, state=LeadSla.State.MISSED, next_step_at=None)

    lead_disqualify(lead=lead, by=rep.user, reason="Not a fit")

    assert LeadSla.objects.get(lead=lead).state == LeadSla.State.MISSED


@time_machine.travel(NOW, tick=False)
def test_handing_a_lead_back_resolves_its_escalations_with_the_reason(client, rep, django_capture_on_commit_callbacks):
    lead = overdue_lead(rep)
    client.force_login(rep.user)

    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("lead-not-mine", args=[lead.pk]), {"reason": "Existing customer of the US team"})

    escalation = Escalation.objects.get(lead=lead)
    assert escalation.status == "resolved"
    assert escalation.comment == "Handed back as not theirs: Existing customer of the US team"
    assert LeadSla.objects.get(lead=lead).state == LeadSla.State.STOPPED


def test_a_reason_longer_than_the_form_allows_is_refused_and_the_lead_stays_open(client, rep):
    lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED)
    AssignmentFactory(lead=lead, rep=rep)
    client.force_login(rep.user)

    for action in ("lead-disqualify", "lead-nurture", "lead-convert", "lead-not-mine"):
        response = client.post(reverse(action, args=[lead.pk]), {"reason": "x" * 5_000}, follow=True)
        assert f"Keep the reason to {CLOSE_REASON_MAX_CHARS} characters (it has 5,000)." in messages_of(response)

    lead.refresh_from_db()
    assert (lead.status, lead.owner) == (Lead.Status.ASSIGNED, rep)
    page = client.get(reverse("lead-page", args=[lead.pk])).content.decode()
    assert f'maxlength="{CLOSE_REASON_MAX_CHARS}"' in page


# --- Reopening ----------------------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_the_owner_reopens_a_closed_lead_and_it_is_theirs_again_with_the_close_in_its_history(client, rep):
    lead = overdue_lead(rep)
    lead_disqualify(lead=lead, by=rep.user, reason="Wrong number")
    assert RepLoad.objects.get(rep=rep).open_leads == 0
    client.force_login(rep.user)

    with time_machine.travel(NOW + dt.timedelta(days=3), tick=False):
        response = client.post(reverse("lead-reopen", args=[lead.pk]), follow=True)

    assert "is open again for" in messages_of(response)
    lead.refresh_from_db()
    assert (lead.status, lead.owner, lead.closed_at, lead.close_reason) == (Lead.Status.ACCEPTED, rep, None, "")
    assert RepLoad.objects.get(rep=rep).open_leads == 1
    reopened = Assignment.objects.get(lead=lead, ended_at__isnull=True)
    assert (reopened.rep, reopened.reason, reopened.assigned_by) == (rep, "reopened", rep.user)
    assert reopened.note == f"Disqualified by rep on {NOW:%Y-%m-%d %H:%M} UTC: Wrong number"
    assert reopened.task.rep == rep  # A follow-up task again.
    # The untouched clock starts afresh from the reopening.
    clock = LeadSla.objects.get(lead=lead)
    assert clock.state == LeadSla.State.ON_TRACK and clock.started_at == NOW + dt.timedelta(days=3)
    page = response.content.decode()
    assert "Reopened after closing" in page and "Wrong number" in page


@time_machine.travel(NOW, tick=False)
def test_a_lead_closed_longer_ago_than_the_window_cannot_be_reopened(client, rep, settings):
    settings.LEADROUTER_REOPEN_DAYS = 30
    lead = overdue_lead(rep)
    lead_disqualify(lead=lead, by=rep.user, reason="Not a fit")

    with time_machine.travel(NOW + dt.timedelta(days=31), tick=False):
        client.force_login(rep.user)
        response = client.post(reverse("lead-reopen", args=[lead.pk]), follow=True)
        closed_view = client.get(reverse("my-leads"), {"view": "closed"}).content.decode()

    assert "can be reopened for 30 days after closing" in messages_of(response)
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.DISQUALIFIED
    assert "Too old to reopen" in closed_view


@time_machine.travel(NOW, tick=False)
def test_the_owners_manager_may_reopen_a_colleague_may_not(client, rep, manager, team):
    colleague = RepFactory(user=UserFactory(username="colleague"), team=team, manager=manager)
    lead = overdue_lead(rep)
    lead_disqualify(lead=lead, by=rep.user, reason="Duplicate of a call yesterday")

    client.force_login(colleague.user)
    assert client.post(reverse("lead-reopen", args=[lead.pk])).status_code == 404
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.DISQUALIFIED

    client.force_login(manager)
    client.post(reverse("lead-reopen", args=[lead.pk]))
    lead.refresh_from_db()
    assert (lead.status, lead.owner) == (Lead.Status.ACCEPTED, rep)
    assert Assignment.objects.get(lead=lead, ended_at__isnull=True).assigned_by == manager


@time_machine.travel(NOW, tick=False)
def test_reopening_twice_reopens_once_and_an_open_lead_cannot_be_reopened(rep):
    lead = overdue_lead(rep)
    with pytest.raises(LeadActionError, match="Only a closed lead"):
        lead_reopen(lead=lead, by=rep.user)
    lead_disqualify(lead=lead, by=rep.user, reason="Not a fit")
    stale = Lead.objects.get(pk=lead.pk)

    assert lead_reopen(lead=lead, by=rep.user) is True
    assert lead_reopen(lead=stale, by=rep.user) is False
    assert Assignment.objects.filter(lead=lead, reason="reopened").count() == 1
    assert RepLoad.objects.get(rep=rep).open_leads == 1


@time_machine.travel(NOW, tick=False)
def test_reopening_respects_the_owners_capacity(rep):
    rep.max_open_leads = 1
    rep.save()
    lead = overdue_lead(rep)
    lead_disqualify(lead=lead, by=rep.user, reason="Not a fit")
    LeadFactory(owner=rep, status=Lead.Status.ASSIGNED)

    with pytest.raises(LeadActionError, match="at capacity"):
        lead_reopen(lead=lead, by=rep.user)


# --- The rep's queue: the closed view and search ------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_the_closed_view_lists_the_reps_closed_leads_newest_first_with_reasons(client, rep, outsider):
    older = overdue_lead(rep, company="Older GmbH")
    newer = overdue_lead(rep, company="Newer AG")
    still_open = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED, company="Open Ltd")
    theirs = LeadFactory(owner=outsider, status=Lead.Status.DISQUALIFIED, company="Secret Inc", closed_at=NOW)
    lead_disqualify(lead=older, by=rep.user, reason="No budget")
    with time_machine.travel(NOW + dt.timedelta(hours=1), tick=False):
        lead_disqualify(lead=newer, by=rep.user, reason="Student")
    client.force_login(rep.user)

    response = client.get(reverse("my-leads"), {"view": "closed"})

    assert [row.lead.pk for row in response.context["rows"]] == [newer.pk, older.pk]
    page = response.content.decode()
    assert "No budget" in page and "Student" in page and "Reopen" in page
    assert still_open.company not in page and theirs.company not in page


def test_search_finds_open_and_closed_leads_by_name_company_and_email(client, rep):
    jana = LeadFactory(
        owner=rep, status=Lead.Status.ASSIGNED, first_name="Jana", last_name="Keller", company="Keller Maschinenbau"
    )
    other = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED, first_name="Tom", company="Acme", email="tom@acme.io")
    closed = LeadFactory(
        owner=rep, status=Lead.Status.NURTURE, first_name="Jana", company="Later GmbH", closed_at=timezone.now()
    )
    client.force_login(rep.user)

    def found(**query):
        return [row.lead.pk for row in client.get(reverse("my-leads"), query).context["rows"]]

    assert found(q="jana keller") == [jana.pk]
    assert found(q="maschinenbau") == [jana.pk]
    assert found(q="tom@acme") == [other.pk]
    assert found(q="jana", view="closed") == [closed.pk]
    assert found(q="nobody") == []
    assert "No open leads match." in client.get(reverse("my-leads"), {"q": "nobody"}).content.decode()


def test_a_search_longer_than_the_field_allows_is_refused_with_a_message(client, rep):
    client.force_login(rep.user)

    response = client.get(reverse("my-leads"), {"q": "x" * 500})

    assert response.status_code == 200
    assert "Ensure this value has at most 100 characters" in response.content.decode()


# --- Touch notes --------------------------------------------------------------------------------------------


def test_a_touch_logged_on_the_page_keeps_its_note(client, rep):
    lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED)
    AssignmentFactory(lead=lead, rep=rep)
    client.force_login(rep.user)

    response = client.post(
        reverse("lead-touch", args=[lead.pk]), {"kind": "call", "note": "Left a voicemail"}, follow=True
    )

    assert Touch.objects.get(lead=lead).note == "Left a voicemail"
    assert "Left a voicemail" in response.content.decode()
    too_long = client.post(reverse("lead-touch", args=[lead.pk]), {"kind": "email", "note": "x" * 5_000}, follow=True)
    assert f"at most {TOUCH_NOTE_MAX_CHARS:,}" in messages_of(too_long) or str(TOUCH_NOTE_MAX_CHARS) in messages_of(
        too_long
    )
    assert Touch.objects.filter(lead=lead).count() == 1


def test_the_touches_api_holds_notes_to_the_same_length_as_the_form(rep):
    lead = LeadFactory(owner=rep, status=Lead.Status.ASSIGNED)
    AssignmentFactory(lead=lead, rep=rep)
    api = APIClient()
    api.force_login(rep.user)

    response = api.post(f"/api/v1/leads/{lead.pk}/touches/", {"kind": "call", "note": "x" * 5_000}, format="json")

    assert response.status_code == 400
    assert "note" in response.json()["errors"] if "errors" in response.json() else "note" in response.json()
    assert not Touch.objects.filter(lead=lead).exists()


@time_machine.travel(NOW, tick=False)
def test_the_lead_api_says_who_closed_the_lead_when_and_why(rep):
    lead = overdue_lead(rep)
    api = APIClient()
    api.force_login(rep.user)
    assert api.get(f"/api/v1/leads/{lead.pk}/").json()["closed"] is None

    lead_disqualify(lead=lead, by=rep.user, reason="No budget")

    body = api.get(f"/api/v1/leads/{lead.pk}/").json()
    assert body["closed"] == {"at": "2026-12-02T10:00:00Z", "by": "rep", "via": None, "reason": "No budget"}
    assert body["status"] == "disqualified" and body["sla"]["state"] == "stopped"


@time_machine.travel(NOW, tick=False)
def test_revops_see_who_closed_the_lead_in_admin(client, rep, revops):
    lead = overdue_lead(rep)
    lead_disqualify(lead=lead, by=rep.user, reason="Student project, no budget")
    client.force_login(revops)

    page = client.get(reverse("admin:routing_lead_change", args=[lead.pk])).content.decode()

    assert "Student project, no budget" in page and "Close reason" in page
