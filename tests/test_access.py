"""Who may see what (``routing.access``): each scope once, and the API, the lead page, the reports and the
escalations agree on it.

The Inside Sales team (``manager``, ``rep``) works the "Inside Inbound" queue. Three leads:

- ``moved``: held by ``former`` (a rep of Field Sales whose direct manager is ``boss``) when its escalation
  fired and ``boss`` was alerted; the ladder then gave it to ``rep``. It waits in Inside Inbound.
- ``kept``: still ``former``'s, in another queue, with an escalation of its own.
- ``waiting``: in Inside Inbound with no owner yet.

``deputy`` stands in for Inside Inbound; ``regional`` is staff with a django-guardian grant on that queue in
admin, and nothing else.
"""

import pytest
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from routing import access, reports
from routing.models import Lead
from sla.models import Escalation
from sla.selectors import escalations_for_user
from territories.access import is_revops, managed_reps
from tests.factories import (
    AssignmentFactory,
    LeadFactory,
    QueueFactory,
    QueueMembershipFactory,
    RepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(revops, manager, rep, outsider):
    inbound = QueueFactory(name="Inside Inbound")
    QueueMembershipFactory(queue=inbound, rep=rep)
    field = QueueFactory(name="Field Events")
    boss = UserFactory(username="boss")
    former = RepFactory(user=UserFactory(username="former"), team=outsider.team, manager=boss)
    deputy = UserFactory(username="deputy")
    assign_perm("routing.deputize_queue", deputy, inbound)
    regional = UserFactory(username="emea.revops", is_staff=True)
    assign_perm("routing.change_queue", regional, inbound)

    moved = LeadFactory(status=Lead.Status.ASSIGNED, owner=rep, queue=inbound, company="Moved GmbH")
    AssignmentFactory(lead=moved, rep=former, queue=inbound, ended_at=timezone.now())
    AssignmentFactory(lead=moved, rep=rep, queue=inbound)
    kept = LeadFactory(status=Lead.Status.ASSIGNED, owner=former, queue=field, company="Kept SA")
    AssignmentFactory(lead=kept, rep=former, queue=field)
    waiting = LeadFactory(status=Lead.Status.QUEUED, owner=None, queue=inbound, company="Waiting BV")
    escalations = {
        lead: Escalation.objects.create(
            lead=lead, rep=former, notified=boss, action="alert_manager", reason="Breached", fired_at=timezone.now()
        )
        for lead in (moved, kept)
    }
    return {
        "leads": {"moved": moved, "kept": kept, "waiting": waiting},
        "escalations": escalations,
        "people": {
            "revops": revops,
            "regional": regional,
            "manager": manager,
            "boss": boss,
            "deputy": deputy,
            "rep": rep.user,
            "former": former.user,
            "outsider": outsider.user,
        },
    }


# Each persona, the leads they see, and whether they manage (team board, reports, handling escalations).
SCOPES = {
    # RevOps see everything.
    "revops": ({"moved", "kept", "waiting"}, True),
    # A regional RevOps user's grants work in admin only: on the pages they are nobody.
    "regional": (set(), False),
    # A team manager sees the leads their team's reps own now.
    "manager": ({"moved"}, True),
    # A direct manager sees the leads of their direct report, not a lead the report no longer holds.
    "boss": ({"kept"}, True),
    # A deputy sees every lead in the delegated queue, owned or waiting.
    "deputy": ({"moved", "waiting"}, True),
    # The current owner sees their lead.
    "rep": ({"moved"}, False),
    # The previous owner sees only what they hold now.
    "former": ({"kept"}, False),
    "outsider": (set(), False),
}


def _ok(client, name, lead):
    response = client.get(reverse(name, args=[lead.pk]))
    assert response.status_code in (200, 404), (name, response.status_code)
    return response.status_code == 200


def test_every_persona_is_covered(world):
    assert set(SCOPES) == set(world["people"])


@pytest.mark.parametrize("persona", sorted(SCOPES))
def test_api_lead_page_reports_and_escalations_show_the_same_leads(client, world, persona):
    expected, manages = SCOPES[persona]
    user = world["people"][persona]
    leads = world["leads"]
    client.force_login(user)

    through_api = {name for name, lead in leads.items() if _ok(client, "lead-detail", lead)}
    through_page = {name for name, lead in leads.items() if _ok(client, "lead-page", lead)}
    ids = {lead.pk: name for name, lead in leads.items()}
    through_selector = {ids[pk] for pk in access.visible_leads(user=user).values_list("pk", flat=True)}
    through_reports = {ids[pk] for pk in reports.leads_for_reports(user=user).values_list("pk", flat=True)}
    through_escalations = {ids[pk] for pk in escalations_for_user(user=user).values_list("lead", flat=True)}

    assert through_api == through_page == through_selector == through_reports == expected
    # Escalations follow their lead: those of the leads the persona sees, and no other.
    assert through_escalations == expected & {"moved", "kept"}
    # The reports and health pages are open to RevOps and to people who manage; anyone else gets a 404.
    assert client.get(reverse("reports")).status_code == (200 if manages else 404)
    assert client.get(reverse("routing-health")).status_code == (200 if manages else 404)
    assert client.get(reverse("team-board")).status_code == (200 if manages else 404)


@pytest.mark.parametrize("persona", sorted(SCOPES))
def test_only_the_leads_managers_and_revops_acknowledge_an_escalation(client, world, persona):
    expected, manages = SCOPES[persona]
    user = world["people"][persona]
    escalation = world["escalations"][world["leads"]["moved"]]
    client.force_login(user)

    response = client.post(reverse("escalation-acknowledge", args=[escalation.pk]), {"comment": "On it."})

    escalation.refresh_from_db()
    if manages and "moved" in expected:
        assert response.status_code == 302
        assert escalation.status == Escalation.Status.ACKNOWLEDGED
    else:
        # The owner sees it read-only (403); the previous owner and the manager alerted back then no longer
        # see it at all (404), like everyone else outside the lead.
        assert response.status_code == (403 if "moved" in expected else 404)
        assert escalation.status == Escalation.Status.OPEN


def test_the_previous_owner_sees_neither_the_lead_nor_its_escalation_on_any_page(client, world):
    client.force_login(world["people"]["former"])

    escalations = client.get(reverse("escalations"), {"status": "all"}).content.decode()
    lead_page = client.get(reverse("lead-page", args=[world["leads"]["moved"].pk]))

    assert "Moved GmbH" not in escalations
    assert "Kept SA" in escalations
    assert lead_page.status_code == 404


def test_one_definition_of_revops(revops, rep):
    staff_viewer = UserFactory(username="viewer", is_staff=True)
    assign_perm("routing.view_lead", staff_viewer)
    not_staff = UserFactory(username="not.staff")
    assign_perm("routing.view_lead", not_staff)
    inactive = UserFactory(username="gone", is_staff=True, is_active=False)
    inactive.groups.set(revops.groups.all())

    assert is_revops(revops)
    assert is_revops(UserFactory(username="root", is_superuser=True))
    # The permission that opens every lead in admin is the one that makes RevOps on the pages.
    assert is_revops(staff_viewer)
    assert not is_revops(not_staff)
    assert not is_revops(inactive)
    assert not is_revops(rep.user)


def test_team_managers_and_direct_managers_both_manage_a_rep(manager, rep, outsider):
    boss = UserFactory(username="boss")
    outsider.manager = boss
    outsider.save()

    assert set(managed_reps(user=manager)) == {rep}
    assert set(managed_reps(user=boss)) == {outsider}
    assert not managed_reps(user=rep.user).exists()


def test_the_page_shell_offers_each_person_their_pages(client, world):
    for persona, (_expected, manages) in SCOPES.items():
        client.force_login(world["people"][persona])
        shell = client.get(reverse("escalations")).context["shell"]
        links = (shell["show_team"], shell["show_escalations"], shell["show_reports"])
        assert links == (manages, manages, manages), persona
        assert shell["show_my_leads"] == (persona in {"rep", "former", "outsider"}), persona


def test_a_shared_queues_workload_shows_a_manager_only_the_reps_they_manage(world, manager, rep, outsider):
    inbound = world["leads"]["moved"].queue
    QueueMembershipFactory(queue=inbound, rep=outsider)
    period = reports.period_for(None)

    as_manager = reports.queue_workload(user=manager, queue_id=inbound.pk, period=period)
    as_deputy = reports.queue_workload(user=world["people"]["deputy"], queue_id=inbound.pk, period=period)

    # The outsider's leads are not the manager's to count, so their row would read as a false zero.
    assert [row.rep for row in as_manager.rows] == [rep]
    assert {row.rep for row in as_deputy.rows} == {rep, outsider}
