"""The managers' escalations page: who sees what, the filters, and acknowledging or resolving with a comment."""

import datetime as dt

import factory
import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from factory.django import DjangoModelFactory

from routing.models import Lead
from sla.models import Escalation, EscalationStep, LeadSla, SlaPolicy
from sla.services_pages import EscalationHandleError, escalation_handle
from tests.factories import PASSWORD, AssignmentFactory, LeadFactory, QueueFactory, RepFactory, UserFactory

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


class SlaPolicyFactory(DjangoModelFactory):
    class Meta:
        model = SlaPolicy
        django_get_or_create = ("name",)

    name = "Inbound demo requests"
    first_touch_minutes = 30


class EscalationStepFactory(DjangoModelFactory):
    class Meta:
        model = EscalationStep
        django_get_or_create = ("policy", "position")

    policy = factory.SubFactory(SlaPolicyFactory)
    position = 2
    when = EscalationStep.When.AFTER_DUE
    minutes_after_due = 0
    action = EscalationStep.Action.ALERT_MANAGER


class LeadSlaFactory(DjangoModelFactory):
    class Meta:
        model = LeadSla

    lead = factory.SubFactory(LeadFactory)
    policy = factory.SubFactory(SlaPolicyFactory)
    state = LeadSla.State.BREACHED
    started_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(minutes=44))
    due_at = factory.LazyAttribute(lambda sla: sla.started_at + dt.timedelta(minutes=30))


class EscalationFactory(DjangoModelFactory):
    class Meta:
        model = Escalation

    lead = factory.SubFactory(LeadFactory)
    step = factory.SubFactory(EscalationStepFactory)
    action = factory.LazyAttribute(lambda escalation: escalation.step.action)
    rep = factory.LazyAttribute(lambda escalation: escalation.lead.owner)
    reason = "Not touched 0 business minutes after the due time."
    fired_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(minutes=12))


def escalated_lead(rep, *, queue=None, company="Acme AG", action=EscalationStep.Action.ALERT_MANAGER, **kwargs):
    """A lead routed to ``rep`` (through ``queue``), breached, with one escalation."""
    lead = LeadFactory(owner=rep, queue=queue, company=company, status=Lead.Status.ASSIGNED)
    AssignmentFactory(lead=lead, rep=rep, queue=queue)
    LeadSlaFactory(lead=lead)
    step = EscalationStepFactory(position=list(EscalationStep.Action.values).index(action) + 1, action=action)
    return EscalationFactory(lead=lead, step=step, **kwargs)


@pytest.fixture
def as_user(client):
    def log_in(user):
        client.force_login(user)
        return client

    return log_in


def listed(response) -> set[int]:
    return {row.escalation.pk for row in response.context["rows"]}


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_anonymous_is_sent_to_login(client, db):
    response = client.get("/escalations/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/escalations/"


def test_manager_sees_their_teams_escalation_and_not_the_other_teams(as_user, manager, rep, outsider):
    ours = escalated_lead(rep, company="Ours GmbH")
    escalated_lead(outsider, company="Theirs SA")

    response = as_user(manager).get("/escalations/")

    assert response.status_code == 200
    assert listed(response) == {ours.pk}
    assert b"Ours GmbH" in response.content
    assert b"Theirs SA" not in response.content


def test_manager_sees_escalations_of_their_direct_reports_not_of_leads_they_were_only_alerted_about(
    as_user, manager, outsider
):
    # Escalations follow the lead: being alerted once about another team's lead gives no view of it.
    escalated_lead(outsider, notified=manager)
    report = RepFactory(user=UserFactory(username="report"), team=outsider.team, manager=manager)
    of_report = escalated_lead(report)
    escalated_lead(outsider)

    response = as_user(manager).get("/escalations/")

    assert listed(response) == {of_report.pk}


def test_the_list_shows_lead_rep_step_age_and_sla_breach(as_user, manager, rep):
    with time_machine.travel(NOW, tick=False):
        escalated_lead(rep, company="Acme AG")

        response = as_user(manager).get("/escalations/")

    [row] = response.context["rows"]
    assert row.age == "12 min"
    assert row.step == "2. due + 0 min: Alert the manager"
    assert row.sla.state == LeadSla.State.BREACHED
    assert row.sla.timing == "breached 14 min ago"
    assert row.lead_url == reverse("lead-page", args=[row.escalation.lead_id])
    content = response.content.decode()
    assert "Acme AG" in content
    assert str(rep) in content
    assert "breached 14 min ago" in content


def test_manager_filters_by_team_queue_and_step_action(as_user, manager, rep, team):
    inbound, partners = QueueFactory(name="Inbound"), QueueFactory(name="Partners")
    other_rep = RepFactory(user=UserFactory(username="rep2"), team=team)
    via_inbound = escalated_lead(rep, queue=inbound)
    via_partners = escalated_lead(other_rep, queue=partners, action=EscalationStep.Action.REASSIGN)
    client = as_user(manager)

    assert listed(client.get("/escalations/", {"queue": inbound.pk})) == {via_inbound.pk}
    assert listed(client.get("/escalations/", {"queue": partners.pk})) == {via_partners.pk}
    assert listed(client.get("/escalations/", {"action": "reassign"})) == {via_partners.pk}
    assert listed(client.get("/escalations/", {"action": "remind_rep"})) == set()
    assert listed(client.get("/escalations/", {"team": team.pk})) == {via_inbound.pk, via_partners.pk}


def test_filter_options_are_scoped_like_the_list(as_user, manager, rep, team, other_team, outsider):
    escalated_lead(rep, queue=QueueFactory(name="Inbound"))
    escalated_lead(outsider, queue=QueueFactory(name="Field events"))

    response = as_user(manager).get("/escalations/")

    form = response.context["form"]
    assert list(form.fields["team"].queryset) == [team]
    assert [queue.name for queue in form.fields["queue"].queryset] == ["Inbound"]
    assert b"Field Sales" not in response.content
    assert b"Field events" not in response.content


def test_a_team_the_manager_does_not_see_cannot_be_used_to_filter(as_user, manager, rep, outsider, other_team):
    ours = escalated_lead(rep)
    escalated_lead(outsider)

    response = as_user(manager).get("/escalations/", {"team": other_team.pk})

    # The choice is refused on the page, and the list stays what the manager may see.
    assert response.context["form"].errors["team"]
    assert listed(response) == {ours.pk}


def test_open_is_the_default_and_the_status_filter_shows_the_others(as_user, manager, rep):
    open_one = escalated_lead(rep)
    acknowledged = escalated_lead(rep, status=Escalation.Status.ACKNOWLEDGED)
    resolved = escalated_lead(rep, status=Escalation.Status.RESOLVED)
    client = as_user(manager)

    assert listed(client.get("/escalations/")) == {open_one.pk}
    assert listed(client.get("/escalations/", {"status": "acknowledged"})) == {acknowledged.pk}
    assert listed(client.get("/escalations/", {"status": "resolved"})) == {resolved.pk}
    assert listed(client.get("/escalations/", {"status": "all"})) == {open_one.pk, acknowledged.pk, resolved.pk}


def test_newest_first_and_fifty_a_page(as_user, manager, rep):
    now = timezone.now()
    escalations = [escalated_lead(rep, fired_at=now - dt.timedelta(minutes=minutes)) for minutes in range(51)]
    client = as_user(manager)

    first = client.get("/escalations/")
    second = client.get("/escalations/", {"page": 2})

    assert [row.escalation.pk for row in first.context["rows"]] == [e.pk for e in escalations[:50]]
    assert [row.escalation.pk for row in second.context["rows"]] == [escalations[50].pk]
    assert b'href="?page=2"' in first.content


def test_revops_sees_all_with_links_to_the_leads(as_user, revops, rep, outsider):
    ours, theirs = escalated_lead(rep), escalated_lead(outsider)

    response = as_user(revops).get("/escalations/")

    assert listed(response) == {ours.pk, theirs.pk}
    assert {row.lead_url for row in response.context["rows"]} == {
        reverse("lead-page", args=[ours.lead_id]),
        reverse("lead-page", args=[theirs.lead_id]),
    }
    assert len(response.context["form"].fields["team"].queryset) == 2


def test_outsider_sees_none_of_the_first_teams_escalations(as_user, rep, outsider):
    ours = escalated_lead(rep)
    client = as_user(outsider.user)

    assert listed(client.get("/escalations/")) == set()
    response = client.post(f"/escalations/{ours.pk}/acknowledge/", {"comment": "mine now"})
    assert response.status_code == 404
    assert client.post(f"/escalations/{ours.pk}/resolve/", {"comment": "mine now"}).status_code == 404
    ours.refresh_from_db()
    assert ours.status == Escalation.Status.OPEN


def test_a_user_who_is_neither_rep_nor_manager_sees_nothing(as_user, rep):
    escalated_lead(rep)

    assert listed(as_user(UserFactory(username="nobody")).get("/escalations/")) == set()


def test_rep_sees_own_escalations_read_only(as_user, rep, outsider):
    own = escalated_lead(rep)
    escalated_lead(outsider)
    client = as_user(rep.user)

    response = client.get("/escalations/")

    assert listed(response) == {own.pk}
    assert b"/acknowledge/" not in response.content
    assert b"/resolve/" not in response.content
    assert client.post(f"/escalations/{own.pk}/resolve/", {"comment": "done"}).status_code == 403
    assert client.post(f"/escalations/{own.pk}/acknowledge/", {"comment": "seen"}).status_code == 403
    own.refresh_from_db()
    assert own.status == Escalation.Status.OPEN


def test_manager_acknowledges_with_a_comment(as_user, manager, rep):
    escalation = escalated_lead(rep)

    with time_machine.travel(NOW, tick=False):
        response = as_user(manager).post(
            f"/escalations/{escalation.pk}/acknowledge/",
            {"comment": "Calling Anna now.", "next": "/escalations/?team=&status=open"},
            follow=True,
        )

    assert response.redirect_chain == [("/escalations/?team=&status=open", 302)]
    assert "acknowledged" in messages_of(response)[0]
    escalation.refresh_from_db()
    assert escalation.status == Escalation.Status.ACKNOWLEDGED
    assert escalation.handled_by == manager
    assert escalation.handled_at == NOW
    assert escalation.comment == "Calling Anna now."


def test_manager_resolves_an_acknowledged_escalation(as_user, manager, rep):
    escalation = escalated_lead(rep, status=Escalation.Status.ACKNOWLEDGED)

    response = as_user(manager).post(f"/escalations/{escalation.pk}/resolve/", {"comment": "Rep called back."})

    assert response.status_code == 302
    assert response["Location"] == "/escalations/"
    escalation.refresh_from_db()
    assert escalation.status == Escalation.Status.RESOLVED
    assert escalation.handled_by == manager
    assert escalation.comment == "Rep called back."


def test_resolve_without_a_comment_is_refused(as_user, manager, rep):
    escalation = escalated_lead(rep)

    response = as_user(manager).post(f"/escalations/{escalation.pk}/resolve/", {"comment": "  "}, follow=True)

    assert "comment is required" in messages_of(response)[0]
    escalation.refresh_from_db()
    assert escalation.status == Escalation.Status.OPEN
    assert escalation.handled_by is None


def test_resolving_a_resolved_escalation_is_refused(as_user, manager, revops, rep):
    escalation = escalated_lead(rep)
    escalation_handle(
        escalation=escalation, user=revops, status=Escalation.Status.RESOLVED, comment="Reassigned by hand."
    )

    response = as_user(manager).post(f"/escalations/{escalation.pk}/resolve/", {"comment": "Me too."}, follow=True)

    assert "already resolved" in messages_of(response)[0]
    escalation.refresh_from_db()
    assert escalation.handled_by == revops
    assert escalation.comment == "Reassigned by hand."


def test_handling_needs_a_post(as_user, manager, rep):
    escalation = escalated_lead(rep)

    assert as_user(manager).get(f"/escalations/{escalation.pk}/acknowledge/").status_code == 405


def test_after_login_each_person_lands_on_their_own_page(client, manager, rep, revops):
    response = client.post("/accounts/login/", {"username": "manager", "password": PASSWORD})
    assert response["Location"] == "/team/"

    client.post("/accounts/logout/")
    response = client.post("/accounts/login/", {"username": "rep", "password": PASSWORD})
    assert response["Location"] == "/leads/"

    client.post("/accounts/logout/")
    response = client.post("/accounts/login/", {"username": "revops", "password": PASSWORD})
    assert response["Location"] == "/admin/"


def test_login_follows_next_and_logout_returns_to_login(client, manager):
    response = client.post(
        "/accounts/login/", {"username": "manager", "password": PASSWORD, "next": "/escalations/?status=all"}
    )
    assert response["Location"] == "/escalations/?status=all"

    response = client.post("/accounts/logout/")
    assert response["Location"] == "/accounts/login/"
    assert client.get("/escalations/").status_code == 302


def test_the_shell_shows_name_links_and_logout(as_user, manager, revops):
    content = as_user(manager).get("/escalations/").content.decode()
    assert manager.get_full_name() in content
    assert 'href="/escalations/"' in content
    assert 'href="/admin/"' not in content
    assert 'action="/accounts/logout/"' in content
    assert 'href="#main"' in content

    content = as_user(revops).get("/escalations/").content.decode()
    assert 'href="/admin/"' in content


def test_acknowledging_twice_is_refused_and_keeps_the_first_handler(manager, revops, rep):
    escalation = escalated_lead(rep)
    escalation_handle(escalation=escalation, user=manager, status=Escalation.Status.ACKNOWLEDGED, comment="On it.")

    with pytest.raises(EscalationHandleError, match="already acknowledged"):
        escalation_handle(escalation=escalation, user=revops, status=Escalation.Status.ACKNOWLEDGED, comment="")

    escalation.refresh_from_db()
    assert (escalation.handled_by, escalation.comment) == (manager, "On it.")


def test_the_login_page_uses_the_shell(client, db):
    content = client.get("/accounts/login/").content.decode()

    assert "/static/leadrouter/site.css" in content
    assert 'name="username"' in content
    assert 'href="#main"' in content


def test_the_page_reads_a_fixed_number_of_queries_whatever_the_rows(as_user, manager, rep):
    client = as_user(manager)
    escalated_lead(rep, notified=manager, to_rep=rep, handled_by=manager)
    # The process's first page reads content types into Django's per-process cache; measure after that.
    client.get("/escalations/")
    with CaptureQueriesContext(connection) as one_row:
        client.get("/escalations/")
    for _ in range(5):
        escalated_lead(rep, notified=manager, to_rep=rep, handled_by=manager)
    with CaptureQueriesContext(connection) as six_rows:
        client.get("/escalations/")

    assert len(six_rows) == len(one_row)


def test_manager_opens_the_lead_from_its_escalation(as_user, manager, rep):
    escalation = escalated_lead(rep, company="Acme AG")
    client = as_user(manager)

    content = client.get("/escalations/").content.decode()

    url = reverse("lead-page", args=[escalation.lead_id])
    assert f'href="{url}"' in content
    assert client.get(url).status_code == 200


def test_counts_by_status_follow_the_other_filters(as_user, manager, revops, rep, team):
    first, second, third = escalated_lead(rep), escalated_lead(rep), escalated_lead(rep)
    escalated_lead(rep, action=EscalationStep.Action.REMIND_REP)
    escalation_handle(escalation=first, user=manager, status=Escalation.Status.ACKNOWLEDGED, comment="")
    escalation_handle(escalation=second, user=manager, status=Escalation.Status.RESOLVED, comment="Called back.")

    response = as_user(manager).get("/escalations/", {"action": EscalationStep.Action.ALERT_MANAGER})

    links = {link["status"]: link for link in response.context["status_links"]}
    assert {status: link["count"] for status, link in links.items()} == {
        "open": 1,
        "acknowledged": 1,
        "resolved": 1,
    }
    assert links["open"]["current"] and listed(response) == {third.pk}
    # Each count links to its status with the other filters kept.
    assert "action=alert_manager" in links["resolved"]["url"] and "status=resolved" in links["resolved"]["url"]


def test_manager_acknowledges_and_resolves_ticked_escalations_at_once(as_user, manager, rep):
    first, second, third = escalated_lead(rep), escalated_lead(rep), escalated_lead(rep)
    client = as_user(manager)

    response = client.post(
        "/escalations/handle/",
        {"escalation": [first.pk, second.pk], "action": "acknowledge", "next": "/escalations/?status=open"},
        follow=True,
    )

    assert messages_of(response) == ["2 escalations acknowledged."]
    assert response.redirect_chain[-1][0] == "/escalations/?status=open"
    assert listed(response) == {third.pk}

    response = client.post(
        "/escalations/handle/",
        {"escalation": [first.pk, third.pk], "action": "resolve", "comment": "Both called back."},
        follow=True,
    )

    assert messages_of(response) == ["2 escalations resolved."]
    statuses = dict(Escalation.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "resolved", second.pk: "acknowledged", third.pk: "resolved"}
    resolved = Escalation.objects.get(pk=third.pk)
    assert (resolved.handled_by, resolved.comment) == (manager, "Both called back.")


def test_resolving_ticked_escalations_needs_a_comment_and_ticks(as_user, manager, rep):
    escalation = escalated_lead(rep)
    client = as_user(manager)

    response = client.post(
        "/escalations/handle/", {"escalation": [escalation.pk], "action": "resolve", "comment": " "}, follow=True
    )
    assert messages_of(response) == ["Say how they were resolved: a comment is required."]
    response = client.post("/escalations/handle/", {"action": "acknowledge"}, follow=True)
    assert messages_of(response) == ["Tick the escalations to handle first."]
    response = client.post("/escalations/handle/", {"escalation": ["x"], "action": "acknowledge"})
    assert response.status_code == 404
    assert Escalation.objects.get(pk=escalation.pk).status == Escalation.Status.OPEN


def test_handled_ones_among_the_ticked_are_left_as_they_were(as_user, manager, revops, rep):
    done, waiting = escalated_lead(rep), escalated_lead(rep)
    escalation_handle(escalation=done, user=revops, status=Escalation.Status.RESOLVED, comment="By hand.")

    response = as_user(manager).post(
        "/escalations/handle/", {"escalation": [done.pk, waiting.pk], "action": "acknowledge"}, follow=True
    )

    assert messages_of(response) == [
        "1 escalation acknowledged.",
        "1 was already acknowledged or resolved, or not yours to handle.",
    ]
    done.refresh_from_db()
    assert (done.status, done.handled_by, done.comment) == ("resolved", revops, "By hand.")


def test_an_outsider_cannot_handle_the_team_escalations_in_bulk(as_user, manager, rep, outsider):
    ours = escalated_lead(rep)
    client = as_user(outsider.user)

    response = client.post("/escalations/handle/", {"escalation": [ours.pk], "action": "resolve", "comment": "Mine."})

    assert response.status_code == 404
    # A manager of another team is an outsider too, and one foreign id spoils the whole request.
    theirs = escalated_lead(outsider)
    other_manager = UserFactory(username="other-manager")
    outsider.manager = other_manager
    outsider.save()
    response = as_user(other_manager).post(
        "/escalations/handle/", {"escalation": [ours.pk, theirs.pk], "action": "acknowledge"}
    )
    assert response.status_code == 404
    assert set(Escalation.objects.values_list("status", flat=True)) == {"open"}


def test_a_rep_cannot_handle_their_own_escalations_in_bulk(as_user, rep):
    own = escalated_lead(rep)

    response = as_user(rep.user).post("/escalations/handle/", {"escalation": [own.pk], "action": "acknowledge"})

    assert response.status_code == 403
    assert Escalation.objects.get(pk=own.pk).status == Escalation.Status.OPEN
