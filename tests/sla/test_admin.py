"""The SLA admin as RevOps use it: calendars with their hours, policies with their ladders, read-only clocks."""

import datetime as dt

import factory
import pytest
from django.contrib import admin
from django.utils import timezone
from django.utils.html import escape
from factory.django import DjangoModelFactory

from sla.models import BusinessCalendar, CalendarHours, Escalation, EscalationStep, LeadSla, SlaPolicy, Touch
from tests.factories import LeadFactory, QueueFactory, RepFactory, TeamFactory
from tests.helpers import admin_url, inline_management

pytestmark = pytest.mark.django_db

SLA_MODELS = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "sla"),
    key=lambda model: model._meta.label_lower,
)


class BusinessCalendarFactory(DjangoModelFactory):
    class Meta:
        model = BusinessCalendar

    name = factory.Sequence(lambda n: f"Calendar {n}")
    time_zone = "Europe/Berlin"


class SlaPolicyFactory(DjangoModelFactory):
    class Meta:
        model = SlaPolicy

    name = factory.Sequence(lambda n: f"Policy {n}")
    first_touch_minutes = 60


def calendar_post(**overrides) -> dict[str, str]:
    """The add form of a calendar, Mon–Fri 09:00–18:00, with no closed dates."""
    data = {
        "name": "DACH business hours",
        "time_zone": "Europe/Berlin",
        "holiday_country": "DE",
        "holiday_subdivision": "",
        "rep": "",
        "team": "",
        "queue": "",
        **inline_management("hours", 5),
        **inline_management("closed_dates", 0),
    }
    for index in range(5):
        data.update(
            {f"hours-{index}-weekday": str(index), f"hours-{index}-start": "09:00", f"hours-{index}-end": "18:00"}
        )
    data.update(overrides)
    return data


def policy_post(**overrides) -> dict[str, str]:
    data = {
        "name": "Demo requests",
        "description": "",
        "position": "10",
        "active": "on",
        "condition": '{"all": [{"field": "source", "op": "equals", "value": "Demo request"}]}',
        "territory": "",
        "queue": "",
        "first_touch_minutes": "5",
        "max_reassignments": "2",
        **inline_management("steps", 0),
    }
    data.update(overrides)
    return {name: value for name, value in data.items() if value is not None}


@pytest.fixture
def one_of_everything(rep):
    calendar = BusinessCalendarFactory(name="Inside Sales hours", team=rep.team)
    CalendarHours.objects.create(calendar=calendar, weekday=0, start=dt.time(9), end=dt.time(17))
    policy = SlaPolicyFactory(name="Everyone else", is_default=True)
    step = EscalationStep.objects.create(policy=policy, when="after_due", minutes_after_due=0, action="alert_manager")
    lead = LeadFactory(owner=rep, email="jana@keller.example")
    now = timezone.now()
    LeadSla.objects.create(lead=lead, policy=policy, calendar=calendar, started_at=now, due_at=now)
    Touch.objects.create(lead=lead, kind=Touch.Kind.CALL, at=now)
    Escalation.objects.create(lead=lead, step=step, action=step.action, rep=rep, reason="Breached", fired_at=now)


@pytest.mark.parametrize("model", SLA_MODELS, ids=lambda model: model.__name__)
def test_revops_can_open_every_sla_list_and_change_page(client, revops, one_of_everything, model):
    client.force_login(revops)
    assert client.get(admin_url(model, "changelist")).status_code == 200
    row = model._default_manager.first()
    assert client.get(admin_url(model, "change", row.pk)).status_code == 200


@pytest.mark.parametrize("model", SLA_MODELS, ids=lambda model: model.__name__)
@pytest.mark.parametrize("persona", ["rep", "outsider"])
def test_reps_cannot_open_the_sla_admin(client, request, one_of_everything, outsider, model, persona):
    client.force_login(request.getfixturevalue(persona).user)
    response = client.get(admin_url(model, "changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_revops_adds_a_calendar_with_hours_and_sees_the_weekly_summary(client, revops):
    client.force_login(revops)
    team = TeamFactory(name="DACH")
    response = client.post(admin_url(BusinessCalendar, "add"), calendar_post(team=str(team.pk)))
    assert response.status_code == 302, response.context["errors"]

    calendar = BusinessCalendar.objects.get(name="DACH business hours")
    assert calendar.hours.count() == 5 and calendar.team == team
    assert calendar.history.count() == 1
    page = client.get(admin_url(BusinessCalendar, "changelist")).content.decode()
    assert "Mon–Fri 09:00–18:00" in page
    assert "Team DACH" in page
    assert ">DE<" in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("time_zone", "Europe/Berlim", "Europe/Berlim is not an IANA time zone"),
        ("holiday_country", "XX", "Unknown holiday country &#x27;XX&#x27;"),
        ("holiday_subdivision", "ZZ", "Unknown holiday subdivision &#x27;ZZ&#x27; for DE"),
    ],
)
def test_a_bad_zone_or_holiday_region_is_a_form_error_not_a_crash(client, revops, field, value, message):
    client.force_login(revops)
    response = client.post(admin_url(BusinessCalendar, "add"), calendar_post(**{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not BusinessCalendar.objects.exists()


def test_a_calendar_has_one_owner(client, revops):
    client.force_login(revops)
    team, queue = TeamFactory(name="DACH"), QueueFactory(name="DACH Inbound")
    response = client.post(admin_url(BusinessCalendar, "add"), calendar_post(team=str(team.pk), queue=str(queue.pk)))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Clear this or the team: a calendar has one owner." in page
    assert "calendar_belongs_to_one_owner" not in page


def test_overlapping_opening_hours_are_refused_on_the_inline(client, revops):
    client.force_login(revops)
    data = calendar_post(**inline_management("hours", 6))
    data.update({"hours-5-weekday": "0", "hours-5-start": "17:00", "hours-5-end": "20:00"})
    response = client.post(admin_url(BusinessCalendar, "add"), data)
    assert response.status_code == 200
    assert "Monday 09:00–18:00 overlaps Monday 17:00–20:00" in response.content.decode()
    assert not BusinessCalendar.objects.exists()


def test_a_second_default_calendar_is_refused_with_a_friendly_message(client, revops):
    client.force_login(revops)
    BusinessCalendarFactory(name="Head office", is_default=True)
    response = client.post(admin_url(BusinessCalendar, "add"), calendar_post(is_default="on"))
    assert response.status_code == 200
    page = response.content.decode()
    assert escape("“Head office” is the default calendar already") in page
    assert "one_default_calendar" not in page


def test_revops_adds_a_policy_with_a_ladder_and_sees_target_and_summary(client, revops):
    client.force_login(revops)
    data = policy_post(**inline_management("steps", 2))
    data.update(
        {
            "steps-0-position": "1",
            "steps-0-when": "percent",
            "steps-0-percent": "50",
            "steps-0-action": "remind_rep",
            "steps-1-position": "2",
            "steps-1-when": "after_due",
            "steps-1-minutes_after_due": "0",
            "steps-1-action": "alert_manager",
        }
    )
    response = client.post(admin_url(SlaPolicy, "add"), data)
    assert response.status_code == 302, response.context["errors"]
    assert SlaPolicy.objects.get().steps.count() == 2

    SlaPolicyFactory(name="Partners", no_sla=True, first_touch_minutes=None)
    page = client.get(admin_url(SlaPolicy, "changelist")).content.decode()
    assert "5 business min" in page
    assert "No SLA" in page
    assert escape("source = 'Demo request'") in page
    assert "1. at 50%: Remind the rep; 2. due + 0 min: Alert the manager" in page


def test_a_policy_without_target_and_without_no_sla_is_refused(client, revops):
    client.force_login(revops)
    response = client.post(admin_url(SlaPolicy, "add"), policy_post(first_touch_minutes=""))
    assert response.status_code == 200
    assert escape("Set a target, or tick “No SLA” to say these leads have none.") in response.content.decode()
    assert not SlaPolicy.objects.exists()


def test_a_second_default_policy_is_refused_with_a_friendly_message(client, revops):
    client.force_login(revops)
    SlaPolicyFactory(name="Everyone else", is_default=True)
    response = client.post(admin_url(SlaPolicy, "add"), policy_post(is_default="on"))
    assert response.status_code == 200
    page = response.content.decode()
    assert escape("“Everyone else” is the default policy already") in page
    assert "one_default_sla_policy" not in page
    assert SlaPolicy.objects.count() == 1


def test_an_invalid_condition_shows_the_rule_style_message(client, revops):
    client.force_login(revops)
    condition = '{"all": [{"field": "sorce", "op": "equals", "value": "Demo request"}]}'
    response = client.post(admin_url(SlaPolicy, "add"), policy_post(condition=condition))
    assert response.status_code == 200
    assert escape("all[0].field: unknown field 'sorce'") in response.content.decode()


def test_a_step_without_its_share_is_refused(client, revops):
    client.force_login(revops)
    data = policy_post(**inline_management("steps", 1))
    data.update({"steps-0-position": "1", "steps-0-when": "percent", "steps-0-action": "remind_rep"})
    response = client.post(admin_url(SlaPolicy, "add"), data)
    assert response.status_code == 200
    assert "Give the share of the target, such as 80." in response.content.decode()


def test_escalations_can_be_filtered_to_the_open_ones(client, revops, one_of_everything):
    Escalation.objects.update(status=Escalation.Status.RESOLVED)
    lead = LeadFactory(email="open@prospect.example")
    Escalation.objects.create(lead=lead, action="remind_rep", reason="At 80%", fired_at=timezone.now())
    client.force_login(revops)
    response = client.get(admin_url(Escalation, "changelist"), {"status__exact": "open"})
    assert [row.lead.email for row in response.context["cl"].result_list] == ["open@prospect.example"]
    assert client.get(admin_url(Escalation, "changelist"), {"q": "jana@keller"}).context["cl"].result_count == 1


def test_read_only_sla_rows_cannot_be_added_or_changed(client, revops, one_of_everything):
    client.force_login(revops)
    for model in (LeadSla, Touch, Escalation):
        assert client.get(admin_url(model, "add")).status_code == 403
        row = model._default_manager.first()
        response = client.post(admin_url(model, "change", row.pk), {})
        assert response.status_code == 403


def test_the_change_log_lists_calendars_and_policies(client, revops):
    client.force_login(revops)
    client.post(admin_url(BusinessCalendar, "add"), calendar_post())
    response = client.get("/admin/territories/territory/change-log/")
    assert response.status_code == 200
    assert ("sla.businesscalendar", "business calendar") in response.context["model_choices"]
    assert "DACH business hours" in response.content.decode()


def test_rep_factory_still_works_for_owners(client, revops):
    # A rep's own calendar wins over the team's; the admin shows whose it is.
    rep = RepFactory()
    BusinessCalendarFactory(name="Night shift", rep=rep)
    client.force_login(revops)
    assert f"Rep {rep}" in client.get(admin_url(BusinessCalendar, "changelist")).content.decode()
