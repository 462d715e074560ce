"""First-touch SLA clocks: which policy and calendar apply, due times in business hours, touches, speed-to-lead.

Berlin is UTC+1 in November (CET) and UTC+2 in May (CEST). 23 November 2026 is a Monday;
14 May 2026 (Ascension Day) is a public holiday all over Germany.
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from routing.models import Lead, RepTask
from sla.models import BusinessCalendar, CalendarHours, EscalationStep, LeadSla, SlaPolicy, Touch
from sla.services import (
    sla_calendar_for,
    sla_clocks_start,
    sla_policy_for,
    sla_remaining,
    sla_state,
    touch_log,
)
from tests.factories import (
    AccountFactory,
    AssignmentFactory,
    LeadFactory,
    QueueFactory,
    RepFactory,
    TeamFactory,
    TerritoryFactory,
)

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY_7AM = datetime(2026, 11, 23, 7, 0, tzinfo=BERLIN)


def berlin(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def office_calendar(name: str = "Berlin office", **fields) -> BusinessCalendar:
    """Monday to Friday 09:00–18:00 in Berlin, with German public holidays."""
    calendar = BusinessCalendar.objects.create(name=name, time_zone="Europe/Berlin", holiday_country="DE", **fields)
    CalendarHours.objects.bulk_create(
        CalendarHours(calendar=calendar, weekday=weekday, start=time(9), end=time(18)) for weekday in range(5)
    )
    return calendar


def where(field: str, op: str, value) -> dict:
    """A one-test condition, in the stored form."""
    return {"all": [{"field": field, "op": op, "value": value}]}


def policy(name: str, minutes: int | None = 60, **fields) -> SlaPolicy:
    return SlaPolicy.objects.create(name=name, first_touch_minutes=minutes, **fields)


def assigned_lead(owner, *, routed_at: datetime | None = None, **fields):
    return LeadFactory(owner=owner, status=Lead.Status.ASSIGNED, routed_at=routed_at or timezone.now(), **fields)


def start_clock(lead: Lead) -> LeadSla:
    (clock,) = sla_clocks_start(leads=[lead], now=timezone.now())
    return LeadSla.objects.get(pk=clock.pk)


@pytest.fixture
def office(db):
    return office_calendar(is_default=True)


@pytest.fixture
def hour_policy(db):
    return policy("Standard", 60, is_default=True)


# Due times in business hours


def test_lead_assigned_before_opening_is_due_an_hour_after_opening(rep, office, hour_policy):
    with time_machine.travel(MONDAY_7AM, tick=False):
        clock = start_clock(assigned_lead(rep))
    assert clock.policy == hour_policy
    assert clock.calendar == office
    assert clock.state == LeadSla.State.ON_TRACK
    assert clock.started_at == MONDAY_7AM
    assert clock.due_at == berlin(2026, 11, 23, 10)


def test_lead_assigned_late_on_friday_is_due_on_monday_morning(rep, office, hour_policy):
    with time_machine.travel(berlin(2026, 11, 27, 17, 30), tick=False):
        clock = start_clock(assigned_lead(rep))
    assert clock.due_at == berlin(2026, 11, 30, 9, 30)


def test_public_holiday_does_not_count(rep, office, hour_policy):
    # Wednesday evening before Ascension Day: half an hour that day, the rest on Friday.
    with time_machine.travel(berlin(2026, 5, 13, 17, 30), tick=False):
        clock = start_clock(assigned_lead(rep))
    assert clock.due_at == berlin(2026, 5, 15, 9, 30)


def test_without_any_calendar_the_clock_runs_around_the_clock(rep, hour_policy):
    with time_machine.travel(MONDAY_7AM, tick=False):
        clock = start_clock(assigned_lead(rep))
    assert clock.calendar is None
    assert clock.due_at == berlin(2026, 11, 23, 8)


def test_the_clock_starts_the_ladder_at_its_first_step(rep, office, hour_policy):
    remind = EscalationStep.objects.create(
        policy=hour_policy, position=1, when=EscalationStep.When.PERCENT_OF_TARGET, percent=80, action="remind_rep"
    )
    EscalationStep.objects.create(
        policy=hour_policy, position=2, when=EscalationStep.When.AFTER_DUE, minutes_after_due=0, action="alert_manager"
    )
    with time_machine.travel(MONDAY_7AM, tick=False):
        clock = start_clock(assigned_lead(rep))
    assert clock.next_step == remind
    assert clock.next_step_at == berlin(2026, 11, 23, 9, 48)


# Which policy


def test_policy_is_chosen_by_condition_on_the_lead_source(rep, office, hour_policy):
    partners = policy("Partner leads", 15, position=10, condition=where("source", "equals", "partner"))
    with time_machine.travel(MONDAY_7AM, tick=False):
        partner_clock = start_clock(assigned_lead(rep, source="partner"))
        web_clock = start_clock(assigned_lead(rep, source="web"))
    assert partner_clock.policy == partners
    assert partner_clock.due_at == berlin(2026, 11, 23, 9, 15)
    assert web_clock.policy == hour_policy


def test_policy_condition_reads_the_account(rep, hour_policy):
    customers = policy("Customers", 30, condition=where("account.is_customer", "equals", True))
    customer = AccountFactory(is_customer=True)
    lead = assigned_lead(rep, account=customer)
    assert sla_policy_for(lead=lead, policies=[hour_policy, customers]) == customers
    assert sla_policy_for(lead=assigned_lead(rep), policies=[hour_policy, customers]) == hour_policy


def test_policies_are_tried_by_position(rep, hour_policy):
    later = policy("Later", 30, position=20)
    earlier = policy("Earlier", 45, position=10)
    assert sla_policy_for(lead=assigned_lead(rep), policies=[hour_policy, later, earlier]) == earlier


def test_inactive_policy_is_skipped(rep, hour_policy):
    inactive = policy("Inactive", 5, position=1, active=False)
    assert sla_policy_for(lead=assigned_lead(rep), policies=[inactive, hour_policy]) == hour_policy


def test_policy_for_a_territory_covers_its_whole_subtree(rep, hour_policy):
    emea = TerritoryFactory(name="EMEA")
    dach = TerritoryFactory(name="DACH", parent=emea)
    germany = TerritoryFactory(name="Germany", parent=dach)
    dach_policy = policy("DACH", 30, territory=dach)
    policies = [hour_policy, dach_policy]
    assert sla_policy_for(lead=assigned_lead(rep, territory=germany), policies=policies) == dach_policy
    assert sla_policy_for(lead=assigned_lead(rep, territory=dach), policies=policies) == dach_policy
    assert sla_policy_for(lead=assigned_lead(rep, territory=emea), policies=policies) == hour_policy
    assert sla_policy_for(lead=assigned_lead(rep), policies=policies) == hour_policy


def test_policy_for_a_queue_covers_leads_routed_through_it(rep, hour_policy):
    enterprise = QueueFactory(name="Enterprise")
    smb = QueueFactory(name="SMB")
    enterprise_policy = policy("Enterprise", 30, queue=enterprise)
    policies = [hour_policy, enterprise_policy]
    assert sla_policy_for(lead=assigned_lead(rep, queue=enterprise), policies=policies) == enterprise_policy
    assert sla_policy_for(lead=assigned_lead(rep, queue=smb), policies=policies) == hour_policy


def test_without_default_an_unmatched_lead_has_no_clock_due(rep, office):
    policy("Partner leads", 15, condition=where("source", "equals", "partner"))
    with time_machine.travel(MONDAY_7AM, tick=False):
        clock = start_clock(assigned_lead(rep, source="web"))
    assert clock.policy is None
    assert clock.state == LeadSla.State.NONE
    assert clock.due_at is None


def test_explicit_no_sla_policy_gives_no_due_time_and_no_ladder(rep, office, hour_policy):
    nurture = policy("Events: no SLA", None, position=1, no_sla=True, condition=where("source", "equals", "event"))
    EscalationStep.objects.create(
        policy=nurture, position=1, when=EscalationStep.When.AFTER_DUE, minutes_after_due=0, action="remind_rep"
    )
    with time_machine.travel(MONDAY_7AM, tick=False):
        clock = start_clock(assigned_lead(rep, source="event"))
    assert clock.policy == nurture
    assert clock.state == LeadSla.State.NONE
    assert clock.due_at is None
    assert clock.next_step_at is None


# Which calendar


def test_calendar_precedence_is_rep_then_team_then_queue_then_default(db):
    team = TeamFactory(name="Nordics")
    rep = RepFactory(team=team)
    queue = QueueFactory(name="Inbound")
    default = office_calendar("Default", is_default=True)
    queue_calendar = office_calendar("Inbound hours", queue=queue)
    team_calendar = office_calendar("Nordics hours", team=team)
    rep_calendar = office_calendar("Rep hours", rep=rep)
    calendars = [default, queue_calendar, team_calendar, rep_calendar]
    assert sla_calendar_for(rep=rep, queue=queue, calendars=calendars) == rep_calendar
    assert sla_calendar_for(rep=rep, queue=queue, calendars=calendars[:3]) == team_calendar
    assert sla_calendar_for(rep=rep, queue=queue, calendars=calendars[:2]) == queue_calendar
    assert sla_calendar_for(rep=rep, queue=None, calendars=calendars[:2]) == default
    assert sla_calendar_for(rep=None, queue=None, calendars=[queue_calendar]) is None


def test_the_rep_s_own_calendar_sets_the_due_time(rep, office, hour_policy):
    # The rep works from New York: 07:00 in Berlin is 01:00 there; their day starts at 09:00 EST (15:00 Berlin).
    night_owl = BusinessCalendar.objects.create(name="New York", time_zone="America/New_York", rep=rep)
    CalendarHours.objects.bulk_create(
        CalendarHours(calendar=night_owl, weekday=weekday, start=time(9), end=time(17)) for weekday in range(5)
    )
    with time_machine.travel(MONDAY_7AM, tick=False):
        clock = start_clock(assigned_lead(rep))
    assert clock.calendar == night_owl
    assert clock.due_at == berlin(2026, 11, 23, 16)


# Reassignment


def test_reassignment_restarts_an_untouched_clock_and_keeps_the_history(rep, outsider, office, hour_policy):
    with time_machine.travel(MONDAY_7AM, tick=False):
        lead = assigned_lead(rep)
        start_clock(lead)
    LeadSla.objects.filter(lead=lead).update(reassignments=1, previous_owner_ids=[rep.pk])
    lead.owner = outsider
    with time_machine.travel(berlin(2026, 11, 23, 11), tick=False):
        clock = start_clock(lead)
    assert clock.started_at == berlin(2026, 11, 23, 11)
    assert clock.due_at == berlin(2026, 11, 23, 12)
    assert clock.state == LeadSla.State.ON_TRACK
    assert clock.reassignments == 1
    assert clock.previous_owner_ids == [rep.pk]
    assert LeadSla.objects.filter(lead=lead).count() == 1


def test_a_touched_lead_never_gets_a_new_clock(rep, outsider, office, hour_policy):
    with time_machine.travel(MONDAY_7AM, tick=False):
        lead = assigned_lead(rep)
        start_clock(lead)
    touch_log(lead=lead, kind="call", at=berlin(2026, 11, 23, 9, 30), by=rep.user)
    lead.owner = outsider
    with time_machine.travel(berlin(2026, 11, 23, 11), tick=False):
        clock = start_clock(lead)
    assert clock.started_at == MONDAY_7AM
    assert clock.state == LeadSla.State.MET
    assert clock.touched_at == berlin(2026, 11, 23, 9, 30)


# Touches


@pytest.fixture
def clocked_lead(rep, office, hour_policy):
    """Routed to the rep at 07:00 on Monday, with its task, its clock (due 10:00) and a ladder."""
    EscalationStep.objects.create(
        policy=hour_policy, position=1, when=EscalationStep.When.PERCENT_OF_TARGET, percent=80, action="remind_rep"
    )
    with time_machine.travel(MONDAY_7AM, tick=False):
        lead = assigned_lead(rep)
        assignment = AssignmentFactory(lead=lead, rep=rep, assigned_at=MONDAY_7AM)
        RepTask.objects.create(assignment=assignment, lead=lead, rep=rep, title="Call", due_at=MONDAY_7AM)
        start_clock(lead)
    return lead


def test_first_touch_in_time_meets_the_sla_and_records_speed_to_lead(rep, clocked_lead):
    touch = touch_log(lead=clocked_lead, kind="call", at=berlin(2026, 11, 23, 9, 30), by=rep.user, note="Left a VM")
    clock = LeadSla.objects.get(lead=clocked_lead)
    assert touch.by == rep.user
    assert clock.state == LeadSla.State.MET
    assert clock.touched_at == berlin(2026, 11, 23, 9, 30)
    assert clock.breach_business_seconds is None
    # 07:00 → 09:30 is two and a half hours on the wall, of which half an hour was business time.
    assert clock.speed_wall_seconds == 9000
    assert clock.speed_business_seconds == 1800
    # The ladder stops.
    assert clock.next_step is None
    assert clock.next_step_at is None
    clocked_lead.refresh_from_db()
    assert clocked_lead.status == Lead.Status.WORKING
    assert RepTask.objects.get(lead=clocked_lead).done_at == berlin(2026, 11, 23, 9, 30)


def test_late_touch_misses_the_sla_with_the_breach_in_business_time(rep, clocked_lead):
    # Due Monday 10:00, touched Tuesday 09:30: 8 business hours on Monday and half an hour on Tuesday late.
    touch_log(lead=clocked_lead, kind="email", at=berlin(2026, 11, 24, 9, 30), by=rep.user)
    clock = LeadSla.objects.get(lead=clocked_lead)
    assert clock.state == LeadSla.State.MISSED
    assert clock.breach_business_seconds == 8 * 3600 + 1800
    assert clock.speed_wall_seconds == 26 * 3600 + 1800
    assert clock.speed_business_seconds == 9 * 3600 + 1800


def test_a_second_touch_changes_nothing_on_the_clock(rep, clocked_lead):
    touch_log(lead=clocked_lead, kind="call", at=berlin(2026, 11, 23, 9, 30), by=rep.user)
    before = LeadSla.objects.get(lead=clocked_lead)
    touch_log(lead=clocked_lead, kind="meeting", at=berlin(2026, 11, 25, 14), by=rep.user)
    after = LeadSla.objects.get(lead=clocked_lead)
    assert Touch.objects.filter(lead=clocked_lead).count() == 2
    for field in ("state", "touched_at", "breach_business_seconds", "speed_wall_seconds", "speed_business_seconds"):
        assert getattr(after, field) == getattr(before, field)


def test_a_repeated_identical_touch_is_stored_once(rep, clocked_lead):
    at = berlin(2026, 11, 23, 9, 30)
    first = touch_log(lead=clocked_lead, kind="call", at=at, by=rep.user)
    again = touch_log(lead=clocked_lead, kind="call", at=at, by=rep.user)
    assert again == first
    assert Touch.objects.filter(lead=clocked_lead).count() == 1


def test_touch_of_a_lead_without_clock_is_still_logged(rep):
    lead = assigned_lead(rep)
    touch = touch_log(lead=lead, kind="call", at=None, by=rep.user)
    assert touch.pk is not None
    assert not LeadSla.objects.filter(lead=lead).exists()


# Live state for display


def test_live_state_runs_from_on_track_to_at_risk_to_breached(clocked_lead):
    clock = LeadSla.objects.select_related("policy", "calendar").get(lead=clocked_lead)
    # Before opening the whole hour is left; the first reminder (80%) is at 09:48.
    assert sla_state(lead_sla=clock, now=berlin(2026, 11, 23, 8)) == LeadSla.State.ON_TRACK
    assert sla_remaining(lead_sla=clock, now=berlin(2026, 11, 23, 8)) == timedelta(hours=1)
    assert sla_state(lead_sla=clock, now=berlin(2026, 11, 23, 9, 40)) == LeadSla.State.ON_TRACK
    assert sla_state(lead_sla=clock, now=berlin(2026, 11, 23, 9, 48)) == LeadSla.State.AT_RISK
    assert sla_state(lead_sla=clock, now=berlin(2026, 11, 23, 10)) == LeadSla.State.BREACHED
    assert sla_remaining(lead_sla=clock, now=berlin(2026, 11, 23, 10, 30)) == -timedelta(minutes=30)


def test_live_state_is_at_risk_with_less_than_a_fifth_of_the_target_left(rep, office, hour_policy):
    with time_machine.travel(MONDAY_7AM, tick=False):
        clock = start_clock(assigned_lead(rep))
    assert sla_state(lead_sla=clock, now=berlin(2026, 11, 23, 9, 47)) == LeadSla.State.ON_TRACK
    assert sla_state(lead_sla=clock, now=berlin(2026, 11, 23, 9, 49)) == LeadSla.State.AT_RISK


# Bounded queries


def test_starting_fifty_clocks_takes_a_bounded_number_of_queries(django_assert_max_num_queries, office, hour_policy):
    emea = TerritoryFactory(name="EMEA")
    dach = TerritoryFactory(name="DACH", parent=emea)
    queue = QueueFactory(name="Inbound")
    policy("Customers", 30, position=1, condition=where("account.is_customer", "equals", True))
    emea_policy = policy("EMEA", 45, position=2, territory=emea)
    EscalationStep.objects.create(
        policy=emea_policy, position=1, when=EscalationStep.When.PERCENT_OF_TARGET, percent=50, action="remind_rep"
    )
    policy("Inbound", 20, position=3, queue=queue)
    reps = [RepFactory() for _ in range(5)]
    office_calendar("Rep 0 hours", rep=reps[0])
    office_calendar("Team 1 hours", team=reps[1].team)
    accounts = [AccountFactory(is_customer=n % 2 == 0) for n in range(5)]
    leads = [
        assigned_lead(
            reps[n % 5],
            account=accounts[n % 5] if n % 3 else None,
            territory=dach if n % 4 == 0 else None,
            queue=queue if n % 7 == 0 else None,
        )
        for n in range(50)
    ]
    with time_machine.travel(MONDAY_7AM, tick=False):
        sla_clocks_start(leads=leads[:10], now=timezone.now())  # Ten of them are reassigned below.
        fresh = [Lead.objects.get(pk=lead.pk) for lead in leads]
        # Policies, steps, calendars, hours, closed dates, clocks, territories, accounts, owners, insert, update.
        with django_assert_max_num_queries(11):
            clocks = sla_clocks_start(leads=fresh, now=timezone.now())
    assert len(clocks) == 50
    assert LeadSla.objects.count() == 50
    assert LeadSla.objects.filter(due_at__isnull=False).count() == 50
    assert {clock.policy.name for clock in clocks} == {"Customers", "EMEA", "Inbound", "Standard"}
