"""What RevOps do to leads from the admin list: route them again through the rules, reassign them, export them."""

import csv
import io

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from routing import lanes
from routing.models import Assignment, Lead, Queue
from tests.factories import LeadFactory, RepFactory, UserFactory, dach_coverage
from tests.helpers import admin_url, messages_text

pytestmark = pytest.mark.django_db


def act(client, action, leads, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [lead.pk for lead in leads], **extra}
    return client.post(admin_url(Lead, "changelist"), data)


def test_a_lead_left_in_the_catch_all_goes_to_the_right_rep_once_the_rules_cover_it(client, revops):
    # The lead came in before DACH had coverage and waits in the catch-all; RevOps then add the DACH rule.
    catch_all = Queue.objects.get(is_catch_all=True)
    lead = LeadFactory(
        status=Lead.Status.QUEUED,
        queue=catch_all,
        country="DE",
        receipt={"outcome": "queued", "standardization_flags": {"country": "Deutschland → DE"}, "routing": {}},
    )
    dach = dach_coverage()
    client.force_login(revops)

    response = act(client, "reroute", [lead])

    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.status == Lead.Status.ASSIGNED
    assert lead.queue == dach
    assert lead.owner.username in ("anna", "ben")
    assert lead.rule.name == "By territory"
    latest = lead.assignments.get(ended_at__isnull=True)
    assert latest.reason == Assignment.Reason.ROUTED
    assert latest.assigned_by == revops
    assert "Routed again 1 lead(s)" in messages_text(response)
    # The lead page's receipt tells the new decision, and keeps how the lead was read on arrival.
    assert lead.receipt["routing"]["summary"].startswith("Assigned to ")
    assert lead.receipt["outcome"] == "assigned"
    assert lead.receipt["standardization_flags"] == {"country": "Deutschland → DE"}


def test_routing_again_leaves_a_lead_where_the_rules_already_put_it_and_says_so(client, revops):
    dach = dach_coverage()
    anna = dach.memberships.get(rep__user__username="anna").rep
    client.force_login(revops)
    # Routed to anna by the rules; with ben away the rules would pick anna again.
    ben = dach.memberships.get(rep__user__username="ben").rep
    ben.active = False
    ben.save()
    lead = LeadFactory(status=Lead.Status.ASSIGNED, queue=dach, owner=anna, country="DE")

    response = act(client, "reroute", [lead])

    lead.refresh_from_db()
    assert lead.owner == anna
    assert not lead.assignments.exists()
    assert "already is" in messages_text(response)


def test_a_lead_still_waiting_for_routing_is_sent_to_the_router(
    client, revops, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(lanes, "route_leads_send", lambda lead_ids, lane: sent.append(lead_ids))
    lead = LeadFactory(status=Lead.Status.RECEIVED)
    client.force_login(revops)

    with django_capture_on_commit_callbacks(execute=True):
        response = act(client, "reroute", [lead])

    assert sent == [[lead.pk]]
    assert messages_text(response) == "Sent 1 lead(s) still waiting for routing to the router."


def test_revops_reassign_leads_to_a_rep_in_two_steps(client, revops):
    dach = dach_coverage()
    anna = dach.memberships.get(rep__user__username="anna").rep
    ben = dach.memberships.get(rep__user__username="ben").rep
    lead = LeadFactory(status=Lead.Status.ASSIGNED, queue=dach, owner=anna)
    client.force_login(revops)

    # Step one: the form asking who takes them.
    step_one = act(client, "reassign", [lead])
    assert step_one.status_code == 200
    assert "Give them to" in step_one.content.decode()

    response = act(client, "reassign", [lead], apply="1", rep=ben.pk, note="Anna is on the Munich event")

    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.owner == ben
    assignment = lead.assignments.get(ended_at__isnull=True)
    assert assignment.reason == Assignment.Reason.MANUAL
    assert assignment.note == "Anna is on the Munich event"
    assert "Reassigned to ben 1 lead(s)" in messages_text(response)


def test_reassigning_without_choosing_a_rep_shows_the_form_again_and_moves_nothing(client, revops):
    dach = dach_coverage()
    anna = dach.memberships.get(rep__user__username="anna").rep
    lead = LeadFactory(status=Lead.Status.ASSIGNED, queue=dach, owner=anna)
    client.force_login(revops)

    response = act(client, "reassign", [lead], apply="1", rep="")

    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    lead.refresh_from_db()
    assert lead.owner == anna


def test_revops_export_the_selected_leads_as_csv_without_live_formulas(client, revops):
    rep = RepFactory(user=UserFactory(username="olivia"))
    leads = [
        LeadFactory(company='=HYPERLINK("http://evil.example")', owner=rep, status=Lead.Status.ASSIGNED),
        LeadFactory(company="Acme GmbH"),
    ]
    client.force_login(revops)

    response = act(client, "export_csv", leads)

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["id"] for row in rows] == [str(lead.pk) for lead in leads]
    assert rows[0]["company"].startswith("'=")
    assert rows[0]["owner"] == "olivia"
    assert rows[1]["company"] == "Acme GmbH"


def test_staff_without_the_lead_permission_get_no_lead_actions(client):
    clerk = UserFactory(username="clerk", is_staff=True)
    lead = LeadFactory()
    client.force_login(clerk)

    response = act(client, "reroute", [lead])

    # The admin does not even show them the lead list.
    assert response.status_code == 403
