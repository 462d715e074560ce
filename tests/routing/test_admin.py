"""The routing admin: queues (with the protected catch-all), leads and worker heartbeats."""

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from routing.models import (
    CrmConnector,
    CrmOwner,
    EventType,
    Firmographic,
    FormSource,
    Lead,
    LeadImport,
    Notification,
    Queue,
    QueueMembership,
    Rule,
    ScoringRule,
    ScoringThresholds,
    WebhookSubscription,
    WorkerHeartbeat,
)
from routing.outbound import Event, events_record
from routing.services import apikey_create, heartbeat_record
from tests.factories import (
    AssignmentFactory,
    LeadFactory,
    QueueFactory,
    QueueMembershipFactory,
    RepFactory,
    SkillFactory,
    TerritoryFactory,
)
from tests.helpers import admin_url, inline_management, messages_text

pytestmark = pytest.mark.django_db

APP_MODELS = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "routing"),
    key=lambda model: model._meta.label_lower,
)


def queue_post(queue, **changes):
    data = {
        "name": queue.name,
        "description": queue.description,
        "method": queue.method,
        "when_nobody_eligible": queue.when_nobody_eligible,
        "skip_off_hours_reps": "on",
        **inline_management("memberships", total=0),
    }
    if queue.active:
        data["active"] = "on"
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def routed_lead(rep):
    queue = QueueFactory(name="EMEA Inbound")
    QueueMembershipFactory(queue=queue, rep=rep)
    lead = LeadFactory(
        owner=rep,
        queue=queue,
        territory=TerritoryFactory(name="EMEA"),
        status=Lead.Status.ASSIGNED,
        raw_payload={"email": "pat@prospect.example", "utm": {"source": "google"}},
    )
    assignment = AssignmentFactory(
        lead=lead, rep=rep, queue=queue, receipt={"winner": "rep", "skipped": {"anna": "out of office"}}
    )
    Notification.objects.create(
        assignment=assignment, lead=lead, rep=rep, kind=Notification.Kind.SLACK, status=Notification.Status.UNKNOWN
    )
    heartbeat_record(name="worker", hostname="worker-1")
    apikey_create(name="Website demo form")
    Firmographic.objects.create(domain="prospect.example", company="Prospect AG", employees=120, country="DE")
    Rule.objects.create(name="EMEA to inbound", action=Rule.Action.QUEUE, queue=queue, condition=None)
    ScoringRule.objects.create(
        name="Demo request",
        kind="intent",
        points=30,
        condition={"all": [{"field": "source", "op": "equals", "value": "demo"}]},
    )
    ScoringThresholds.current()
    LeadImport.objects.create(file_name="leads.csv", total_rows=1, imported=1)
    WebhookSubscription.objects.create(name="Warehouse", url="https://hooks.example/lr", events=["lead.assigned"])
    connector = CrmConnector.objects.create(name="HubSpot", kind="hubspot", token_env="HUBSPOT_TOKEN")
    CrmOwner.objects.create(connector=connector, rep=rep, owner_id="5101")
    FormSource.objects.create(name="Demo request", source="website", thank_you_url="https://www.example.com/thanks")
    events_record([Event(EventType.LEAD_ASSIGNED, lead.pk)])
    return lead


@pytest.mark.parametrize("model", APP_MODELS, ids=lambda model: model.__name__)
def test_revops_can_open_changelist_add_and_change_pages(client, revops, routed_lead, model):
    client.force_login(revops)
    model_admin = admin.site._registry[model]

    assert client.get(admin_url(model, "changelist")).status_code == 200
    add_page = client.get(admin_url(model, "add"))
    assert add_page.status_code == (200 if model_admin.has_add_permission(add_page.wsgi_request) else 403)
    obj = model.objects.first()
    assert obj is not None, f"add a {model.__name__} row to the routed_lead fixture"
    assert client.get(admin_url(model, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize("model", APP_MODELS, ids=lambda model: model.__name__)
def test_rep_is_sent_to_login_from_every_admin_page(client, rep, routed_lead, model):
    client.force_login(rep.user)
    obj = model.objects.first()

    for url in (admin_url(model, "changelist"), admin_url(model, "add"), admin_url(model, "change", obj.pk)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_queue_changelist_shows_members_fallback_and_catch_all(client, revops, rep, outsider):
    fallback = QueueFactory(name="Overflow")
    queue = QueueFactory(name="EMEA Inbound", fallback=fallback, when_nobody_eligible="overflow")
    queue.required_skills.add(SkillFactory(code="german"))
    QueueMembershipFactory(queue=queue, rep=rep)
    QueueMembershipFactory(queue=queue, rep=outsider, active=False)
    client.force_login(revops)

    response = client.get(admin_url(Queue, "changelist"))

    rows = {queue.name: queue for queue in response.context["cl"].result_list}
    assert admin.site._registry[Queue].member_counts(rows["EMEA Inbound"]) == "1 / 2"
    html = response.content.decode()
    assert "Overflow" in html and "german" in html
    assert "Catch-all" in html


def test_catch_all_has_no_delete_page(client, revops):
    client.force_login(revops)
    catch_all = Queue.objects.catch_all()

    assert client.get(admin_url(catch_all, "delete", catch_all.pk)).status_code == 403
    change_page = client.get(admin_url(catch_all, "change", catch_all.pk)).content.decode()
    assert admin_url(catch_all, "delete", catch_all.pk) not in change_page


def test_bulk_delete_with_the_catch_all_selected_deletes_nothing_and_says_why(client, revops):
    client.force_login(revops)
    catch_all = Queue.objects.catch_all()
    other = QueueFactory(name="Spare")

    response = client.post(
        admin_url(Queue, "changelist"),
        {"action": "delete_selected", "_selected_action": [catch_all.pk, other.pk], "post": "yes"},
    )

    assert response.status_code == 302
    assert "is the catch-all queue and cannot be deleted" in messages_text(response)
    assert Queue.objects.filter(pk__in=[catch_all.pk, other.pk]).count() == 2


def test_bulk_delete_of_ordinary_queues_still_works(client, revops):
    client.force_login(revops)
    spare = QueueFactory(name="Spare")

    response = client.post(
        admin_url(Queue, "changelist"), {"action": "delete_selected", "_selected_action": [spare.pk], "post": "yes"}
    )

    assert response.status_code == 302
    assert not Queue.objects.filter(pk=spare.pk).exists()
    assert Queue.objects.filter(is_catch_all=True).exists()


def test_catch_all_cannot_be_deactivated_and_the_form_says_so(client, revops):
    client.force_login(revops)
    catch_all = Queue.objects.catch_all()

    response = client.post(admin_url(catch_all, "change", catch_all.pk), queue_post(catch_all, active=None))

    assert response.status_code == 200
    assert "The catch-all queue cannot be deactivated" in response.content.decode()
    catch_all.refresh_from_db()
    assert catch_all.active


def test_queue_members_are_added_inline_and_a_repeated_rep_is_named(client, revops, rep):
    client.force_login(revops)
    queue = QueueFactory(name="EMEA Inbound")
    members = {
        "memberships-TOTAL_FORMS": "2",
        "memberships-0-rep": rep.pk,
        "memberships-0-weight": "2",
        "memberships-0-active": "on",
        "memberships-0-position": "0",
        "memberships-1-rep": rep.pk,
        "memberships-1-weight": "1",
        "memberships-1-active": "on",
        "memberships-1-position": "1",
    }

    refused = client.post(admin_url(queue, "change", queue.pk), queue_post(queue, **members))

    assert refused.status_code == 200
    assert f"{rep} is a member twice; remove one of the rows." in refused.content.decode()

    members["memberships-TOTAL_FORMS"] = "1"
    saved = client.post(admin_url(queue, "change", queue.pk), queue_post(queue, **members))

    assert saved.status_code == 302
    assert QueueMembership.objects.get(queue=queue).weight == 2


def test_lead_page_is_read_only_with_pretty_payload_and_assignment_receipt(client, revops, routed_lead):
    client.force_login(revops)

    response = client.get(admin_url(routed_lead, "change", routed_lead.pk))

    html = response.content.decode()
    assert "&quot;utm&quot;: {\n    &quot;source&quot;: &quot;google&quot;\n  }" in html
    assert "out of office" in html
    assert 'name="email"' not in html  # no editable inputs
    assert client.post(admin_url(routed_lead, "change", routed_lead.pk), {"email": "x@example.com"}).status_code == 403


def test_leads_cannot_be_added_in_admin(client, revops):
    client.force_login(revops)

    assert client.get(admin_url(Lead, "add")).status_code == 403


def test_lead_search_finds_by_company_and_email(client, revops, routed_lead):
    LeadFactory(company="Other Corp")
    client.force_login(revops)

    found = client.get(admin_url(Lead, "changelist"), {"q": routed_lead.company}).context["cl"].result_list

    assert list(found) == [routed_lead]


def test_worker_heartbeat_is_read_only(client, revops, routed_lead):
    client.force_login(revops)
    heartbeat = WorkerHeartbeat.objects.get()

    response = client.post(admin_url(heartbeat, "change", heartbeat.pk), {"hostname": "changed"})

    assert response.status_code == 403
    heartbeat.refresh_from_db()
    assert heartbeat.hostname == "worker-1"


def test_routing_changelists_make_a_bounded_number_of_queries(client, revops, django_assert_max_num_queries):
    queues = [QueueFactory(name=f"Queue {n}") for n in range(10)]
    for n in range(30):
        rep = RepFactory()
        QueueMembershipFactory(queue=queues[n % 10], rep=rep)
        lead = LeadFactory(owner=rep, queue=queues[n % 10], status=Lead.Status.ASSIGNED, routed_at=timezone.now())
        AssignmentFactory(lead=lead, rep=rep)
    client.force_login(revops)
    for model in APP_MODELS:
        url = admin_url(model, "changelist")
        client.get(url)

        with django_assert_max_num_queries(14):
            assert client.get(url).status_code == 200


def test_queue_list_shows_active_members_out_of_all(client, revops):
    queue = QueueFactory(name="DACH Inbound")
    QueueMembershipFactory(queue=queue, rep=RepFactory())
    QueueMembershipFactory(queue=queue, rep=RepFactory(), active=False)
    QueueMembershipFactory(queue=queue, rep=RepFactory(active=False))
    client.force_login(revops)

    response = client.get(admin_url(Queue, "changelist"))

    row = next(line for line in response.content.decode().split("<tr") if "DACH Inbound" in line)
    assert '<td class="field-member_counts">1 / 3</td>' in row
