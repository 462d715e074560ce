"""Regional RevOps on queues and rules: object permissions (django-guardian) on some rows, and nothing else."""

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from routing.models import Queue, QueueMembership, Rule
from tests.factories import QueueFactory, QueueMembershipFactory, RepFactory, UserFactory
from tests.helpers import admin_url, inline_management

pytestmark = pytest.mark.django_db

CONDITION = '{"all": [{"field": "country", "op": "in", "value": ["DE"]}]}'


@pytest.fixture
def queues():
    emea = QueueFactory(name="EMEA Inbound", description="Inbound leads from EMEA")
    amer = QueueFactory(name="AMER Inbound", description="Inbound leads from the Americas")
    QueueMembershipFactory(queue=emea, rep=RepFactory(user=UserFactory(username="anna")))
    return {"emea": emea, "amer": amer}


@pytest.fixture
def rules(queues):
    emea = Rule.objects.create(
        name="Germany to EMEA", position=10, action=Rule.Action.QUEUE, queue=queues["emea"], condition=CONDITION
    )
    amer = Rule.objects.create(name="US to AMER", position=20, action=Rule.Action.QUEUE, queue=queues["amer"])
    return {"emea": emea, "amer": amer}


@pytest.fixture
def regional(queues, rules):
    """Staff, not in the RevOps group: granted change on the EMEA queue and the EMEA rule only."""
    user = UserFactory(username="emea.revops", is_staff=True)
    assign_perm("routing.change_queue", user, queues["emea"])
    assign_perm("routing.change_rule", user, rules["emea"])
    return user


def queue_form(queue, **changes):
    data = {
        "name": queue.name,
        "description": queue.description,
        "active": "on",
        "method": queue.method,
        "skip_off_hours_reps": "on",
        "when_nobody_eligible": queue.when_nobody_eligible,
        "fallback": queue.fallback_id or "",
        **inline_management("memberships", total=0),
    }
    data.update(changes)
    return data


def rule_form(rule, **changes):
    data = {
        "name": rule.name,
        "description": rule.description,
        "position": rule.position,
        "active": "on",
        "condition": CONDITION,
        "action": rule.action,
        "queue": rule.queue_id or "",
        "rep": "",
    }
    data.update(changes)
    return data


def form_errors(response):
    return response.context["adminform"].form.errors if response.context else ""


def test_a_regional_user_lists_only_the_queues_and_rules_granted_to_them(client, regional):
    client.force_login(regional)

    queues = client.get(admin_url(Queue, "changelist"))
    rules = client.get(admin_url(Rule, "changelist"))

    assert queues.status_code == 200
    assert {queue.name for queue in queues.context["cl"].result_list} == {"EMEA Inbound"}
    assert rules.status_code == 200
    assert {rule.name for rule in rules.context["cl"].result_list} == {"Germany to EMEA"}
    assert "AMER" not in queues.content.decode() + rules.content.decode()


def test_a_regional_user_edits_their_queue_and_adds_a_member(client, regional, queues):
    client.force_login(regional)
    emea = queues["emea"]
    anna = emea.memberships.get()
    ben = RepFactory(user=UserFactory(username="ben"))
    form = queue_form(
        emea,
        description="Inbound leads from Europe, the Middle East and Africa",
        **inline_management("memberships", total=2, initial=1),
        **{
            "memberships-0-id": anna.pk,
            "memberships-0-queue": emea.pk,
            "memberships-0-rep": anna.rep_id,
            "memberships-0-weight": 1,
            "memberships-0-active": "on",
            "memberships-0-position": 0,
            "memberships-1-queue": emea.pk,
            "memberships-1-rep": ben.pk,
            "memberships-1-weight": 2,
            "memberships-1-active": "on",
            "memberships-1-position": 1,
        },
    )

    response = client.post(admin_url(emea, "change", emea.pk), form)

    assert response.status_code == 302, form_errors(response)
    emea.refresh_from_db()
    assert emea.description == "Inbound leads from Europe, the Middle East and Africa"
    assert QueueMembership.objects.get(queue=emea, rep=ben).weight == 2


def test_a_regional_user_edits_their_rule(client, regional, rules):
    client.force_login(regional)
    rule = rules["emea"]

    response = client.post(admin_url(rule, "change", rule.pk), rule_form(rule, description="German-speaking leads"))

    assert response.status_code == 302, form_errors(response)
    rule.refresh_from_db()
    assert rule.description == "German-speaking leads"


def test_a_regional_user_cannot_open_or_change_a_queue_or_rule_outside_their_grant(client, regional, queues, rules):
    client.force_login(regional)

    for row in (queues["amer"], rules["amer"]):
        url = admin_url(row, "change", row.pk)
        opened = client.get(url)
        posted = client.post(url, {"name": "Hijacked"})

        # The admin answers as if the row did not exist: no data of it, and no change.
        assert opened.status_code == 302
        assert "AMER" not in opened.content.decode()
        assert posted.status_code == 302
        assert type(row).objects.get(pk=row.pk).name == row.name


def test_a_regional_user_cannot_add_delete_or_grant(client, regional, queues, rules):
    client.force_login(regional)

    for row in (queues["emea"], rules["emea"]):
        assert client.get(admin_url(row, "add")).status_code == 403
        assert client.get(admin_url(row, "delete", row.pk)).status_code == 403
        assert client.get(admin_url(row, "permissions", row.pk)).status_code == 403
    assert Queue.objects.filter(pk=queues["emea"].pk).exists()


def test_a_regional_user_cannot_simulate_and_sees_no_simulate_button(client, regional):
    client.force_login(regional)
    url = reverse("admin:routing_rule_simulate")

    assert client.get(url).status_code == 403
    assert client.post(url, {"email": "max@prospect.de", "country": "Germany"}).status_code == 403
    assert url not in client.get(admin_url(Rule, "changelist")).content.decode()


def test_a_regional_user_cannot_point_a_rule_at_a_queue_outside_their_grant(client, regional, queues, rules):
    client.force_login(regional)
    rule = rules["emea"]

    response = client.post(admin_url(rule, "change", rule.pk), rule_form(rule, queue=queues["amer"].pk))

    assert response.status_code == 200
    assert "queue" in response.context["adminform"].form.errors
    assert Rule.objects.get(pk=rule.pk).queue == queues["emea"]


def test_a_regional_user_may_only_overflow_into_a_granted_queue(client, regional, queues):
    client.force_login(regional)
    emea = queues["emea"]
    url = admin_url(emea, "change", emea.pk)

    response = client.post(url, queue_form(emea, when_nobody_eligible="overflow", fallback=queues["amer"].pk))

    assert response.status_code == 200
    assert "fallback" in response.context["adminform"].form.errors
    field = response.context["adminform"].form.fields["fallback"]
    assert list(field.queryset) == [emea]
    assert Queue.objects.get(pk=emea.pk).fallback is None


def test_a_fallback_already_outside_the_grant_does_not_block_other_changes(client, regional, queues):
    # RevOps set the EMEA queue to overflow to the catch-all; the regional user only renames the description.
    emea = queues["emea"]
    catch_all = Queue.objects.catch_all()
    Queue.objects.filter(pk=emea.pk).update(fallback=catch_all, when_nobody_eligible="overflow")
    emea.refresh_from_db()
    client.force_login(regional)

    response = client.post(admin_url(emea, "change", emea.pk), queue_form(emea, description="Europe"))

    assert response.status_code == 302, form_errors(response)
    emea.refresh_from_db()
    assert (emea.description, emea.fallback) == ("Europe", catch_all)


def test_the_queue_autocomplete_offers_a_regional_user_only_granted_queues(client, regional, rules):
    client.force_login(regional)

    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "routing", "model_name": "rule", "field_name": "queue", "term": "Inbound"},
    )

    assert response.status_code == 200
    assert [result["text"] for result in response.json()["results"]] == ["EMEA Inbound"]


def test_staff_without_any_grant_see_no_queue_or_rule(client, queues, rules):
    client.force_login(UserFactory(username="other.staff", is_staff=True))

    assert client.get(admin_url(Queue, "changelist")).status_code == 403
    assert client.get(admin_url(Rule, "changelist")).status_code == 403
    assert client.get(reverse("admin:routing_rule_simulate")).status_code == 403


def test_revops_keep_every_queue_and_rule_and_simulate(client, revops, queues, rules):
    client.force_login(revops)
    rule = rules["emea"]

    listed = client.get(admin_url(Rule, "changelist"))
    response = client.post(admin_url(rule, "change", rule.pk), rule_form(rule, queue=queues["amer"].pk))

    assert {row.name for row in listed.context["cl"].result_list} == {"Germany to EMEA", "US to AMER"}
    assert reverse("admin:routing_rule_simulate") in listed.content.decode()
    assert response.status_code == 302, form_errors(response)
    assert Rule.objects.get(pk=rule.pk).queue == queues["amer"]
    assert client.get(reverse("admin:routing_rule_simulate")).status_code == 200
    assert client.get(admin_url(Queue, "permissions", queues["emea"].pk)).status_code == 200
    assert len(client.get(admin_url(Queue, "changelist")).context["cl"].result_list) == Queue.objects.count()
