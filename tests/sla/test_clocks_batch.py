"""Starting a batch's clocks at once gives every lead the clock the per-lead arithmetic gives it.

``sla_clocks_start`` works out each (policy, calendar) start once for the batch and writes every clock in one
statement. The oracle below is the per-lead way: ``sla_policy_for`` on the lead's facts read from its row,
``sla_calendar_for`` the owner and queue, and the ladder's due time and first step for that lead alone. The
batch is started on Christmas Eve 2026, a Thursday, shortly before the Berlin office closes for a holiday
weekend, so the due times cross closed days in several calendars.
"""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from routing.models import Lead
from sla import ladder
from sla.models import BusinessCalendar, CalendarHours, ClosedDate, EscalationStep, LeadSla, SlaPolicy
from sla.services import (
    _step_infos,
    calendar_spec,
    lead_facts_from_row,
    sla_calendar_for,
    sla_clocks_start,
    sla_clocks_start_due,
    sla_policy_for,
    territory_parents,
)
from tests.factories import AccountFactory, LeadFactory, QueueFactory, RepFactory, TeamFactory, TerritoryFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 24, 16, 40, tzinfo=UTC)
When = EscalationStep.When


def calendar(name: str, time_zone: str, start: int, end: int, **fields) -> BusinessCalendar:
    """Monday to Friday from ``start`` to ``end`` o'clock in ``time_zone``."""
    made = BusinessCalendar.objects.create(name=name, time_zone=time_zone, **fields)
    CalendarHours.objects.bulk_create(
        CalendarHours(calendar=made, weekday=weekday, start=time(start), end=time(end)) for weekday in range(5)
    )
    return made


def policy(name: str, minutes: int | None, *steps: tuple[str, int, str], **fields) -> SlaPolicy:
    """A policy with a ladder: each step is (when, percent or minutes after due, action)."""
    made = SlaPolicy.objects.create(name=name, first_touch_minutes=minutes, **fields)
    for position, (when, amount, action) in enumerate(steps, start=1):
        EscalationStep.objects.create(
            policy=made,
            position=position,
            when=when,
            percent=amount if when == When.PERCENT_OF_TARGET else None,
            minutes_after_due=amount if when == When.AFTER_DUE else None,
            action=action,
        )
    return made


@pytest.fixture
def organisation():
    """Territories, queues, teams and reps with calendars of their own or none, and policies of every kind."""
    emea = TerritoryFactory(name="EMEA")
    dach = TerritoryFactory(name="DACH", parent=emea)
    inbound = QueueFactory(name="Inbound")
    partners = QueueFactory(name="Partners")
    berlin_team, open_team = TeamFactory(name="Berlin team"), TeamFactory(name="Open team")
    reps = [
        RepFactory(team=berlin_team),
        RepFactory(team=berlin_team),
        RepFactory(team=open_team, time_zone="America/New_York"),
        RepFactory(team=None, time_zone="UTC"),
    ]
    calendar("New York rep", "America/New_York", 9, 17, holiday_country="US", rep=reps[2])
    calendar("Berlin office", "Europe/Berlin", 9, 18, holiday_country="DE", team=berlin_team)
    calendar("Inbound desk", "Europe/London", 8, 16, queue=inbound)
    default = calendar("Default hours", "UTC", 9, 17, is_default=True)
    ClosedDate.objects.create(calendar=default, date=NOW.date() + timedelta(days=4), reason="Company day")
    policy(
        "Demo requests",
        5,
        (When.PERCENT_OF_TARGET, 50, "remind_rep"),
        (When.AFTER_DUE, 0, "alert_manager"),
        position=10,
        condition={"all": [{"field": "source", "op": "equals", "value": "Demo request"}]},
    )
    policy(
        "Customers",
        120,
        (When.PERCENT_OF_TARGET, 80, "remind_rep"),
        position=20,
        condition={"any": [{"field": "account.is_customer", "op": "equals", "value": True}]},
    )
    policy("EMEA", 45, (When.AFTER_DUE, 15, "reassign"), position=30, territory=emea)
    policy("Partners", None, position=40, queue=partners, no_sla=True)
    policy("Retired", 1, position=1, active=False)
    policy("Broken", 1, position=2, condition={"every": []})
    policy("Standard", 240, (When.PERCENT_OF_TARGET, 80, "remind_rep"), position=900, is_default=True)
    customer, prospect = AccountFactory(is_customer=True), AccountFactory(is_customer=False)
    leads = [
        LeadFactory(
            status=Lead.Status.ASSIGNED,
            owner=reps[n % 4],
            queue=(inbound, partners, None)[n % 3],
            source=("Demo request", "web", "Webinar")[n % 5 % 3],
            account=(customer, prospect, None)[n % 7 % 3],
            territory=(dach, emea, None)[n % 11 % 3],
            score=n,
        )
        for n in range(60)
    ]
    return leads


def per_lead(lead: Lead, *, now: datetime, clock_policy: SlaPolicy | None = None) -> tuple:
    """The clock of ``lead`` as the per-lead arithmetic has it: (policy, calendar, state, due time, first step
    and when it fires). ``clock_policy``: the policy of the clock the lead already has."""
    policies = list(SlaPolicy.objects.prefetch_related("steps").order_by("position", "id"))
    active = [candidate for candidate in policies if candidate.active]
    chosen = clock_policy or sla_policy_for(
        lead=lead, policies=active, parents=territory_parents(), facts=lead_facts_from_row(lead)
    )
    chosen = next((p for p in policies if chosen is not None and p.pk == chosen.pk), None)
    cal = sla_calendar_for(rep=lead.owner, queue=lead.queue, calendars=BusinessCalendar.objects.all())
    spec = calendar_spec(cal)
    ids = (chosen.pk if chosen else None, cal.pk if cal else None)
    if chosen is None or chosen.no_sla or not chosen.first_touch_minutes:
        return (*ids, LeadSla.State.NONE, None, None, None)
    due = ladder.due_at(spec=spec, started_at=now, target_minutes=chosen.first_touch_minutes)
    first = ladder.next_step(
        _step_infos(chosen),
        after_position=None,
        spec=spec,
        started_at=now,
        due=due,
        target_minutes=chosen.first_touch_minutes,
    )
    step_id, fires_at = (first[0].id, first[1]) if first else (None, None)
    return (*ids, LeadSla.State.ON_TRACK, due, step_id, fires_at)


def stored(clock: LeadSla) -> tuple:
    return (clock.policy_id, clock.calendar_id, clock.state, clock.due_at, clock.next_step_id, clock.next_step_at)


def test_a_batch_of_new_clocks_gets_the_due_times_of_the_per_lead_arithmetic(organisation):
    leads = [Lead.objects.select_related("owner", "queue", "account").get(pk=lead.pk) for lead in organisation]

    clocks = sla_clocks_start(leads=leads, now=NOW)

    assert [clock.lead_id for clock in clocks] == [lead.pk for lead in leads]
    by_lead = {clock.lead_id: clock for clock in LeadSla.objects.all()}
    for lead, clock in zip(leads, clocks, strict=True):
        expected = per_lead(lead, now=NOW)
        assert stored(clock) == expected, lead
        assert stored(by_lead[lead.pk]) == expected, lead
        assert clock.pk == by_lead[lead.pk].pk and clock.started_at == NOW
    # The batch spans every kind of outcome, so each was compared.
    names = set(SlaPolicy.objects.filter(pk__in=[c.policy_id for c in clocks]).values_list("name", flat=True))
    assert names == {"Demo requests", "Customers", "EMEA", "Partners", "Standard"}
    assert len({clock.calendar_id for clock in clocks}) == 4
    assert {clock.due_at.date() for clock in clocks if clock.due_at} >= {datetime(2026, 12, 28).date()}


def test_policies_chosen_by_conditions_alone_match_the_per_lead_choice_in_every_queue_and_territory():
    # No policy is limited to a queue or a territory: the batch asks each condition once per set of values it
    # reads (the account's included), whatever the lead's queue, territory and account.
    calendar("Default hours", "UTC", 9, 17, is_default=True)
    policy(
        "Demo requests",
        5,
        (When.PERCENT_OF_TARGET, 50, "remind_rep"),
        position=10,
        condition={"all": [{"field": "source", "op": "equals", "value": "Demo request"}]},
    )
    policy(
        "Big customers",
        60,
        (When.PERCENT_OF_TARGET, 80, "remind_rep"),
        position=20,
        condition={
            "all": [
                {"field": "account.is_customer", "op": "equals", "value": True},
                {"field": "account.tier", "op": "equals", "value": "enterprise"},
            ]
        },
    )
    policy("Standard", 240, (When.PERCENT_OF_TARGET, 80, "remind_rep"), position=900, is_default=True)
    accounts = [AccountFactory(is_customer=n % 2 == 0, tier=("enterprise", "smb", "")[n % 3]) for n in range(6)]
    queues = [QueueFactory(name=f"Queue {n}") for n in range(3)]
    territories = [TerritoryFactory(name=f"Territory {n}") for n in range(2)]
    reps = [RepFactory(), RepFactory()]
    made = [
        LeadFactory(
            status=Lead.Status.ASSIGNED,
            owner=reps[n % 2],
            queue=queues[n % 3],
            territory=(*territories, None)[n % 5 % 3],
            account=(*accounts, None)[n % 7],
            source=("Demo request", "web", "Webinar")[n % 4 % 3],
        )
        for n in range(84)
    ]
    leads = [Lead.objects.select_related("owner", "queue", "account").get(pk=lead.pk) for lead in made]

    clocks = sla_clocks_start(leads=leads, now=NOW)

    assert [stored(clock) for clock in clocks] == [per_lead(lead, now=NOW) for lead in leads]
    names = set(SlaPolicy.objects.filter(pk__in=[c.policy_id for c in clocks]).values_list("name", flat=True))
    assert names == {"Demo requests", "Big customers", "Standard"}


def test_restarted_clocks_keep_their_policy_and_history_and_touched_ones_stay_as_they_are(organisation):
    earlier = NOW - timedelta(days=2)
    first = [Lead.objects.get(pk=lead.pk) for lead in organisation[:20]]
    sla_clocks_start(leads=first, now=earlier)
    LeadSla.objects.filter(lead=first[0]).update(touched_at=earlier + timedelta(minutes=3), state=LeadSla.State.MET)
    LeadSla.objects.filter(lead=first[1]).update(reassignments=1, previous_owner_ids=[first[1].owner_id])
    # Leads 2 to 5 change hands; a policy edit since then does not move their clocks to another policy.
    for lead in first[2:6]:
        lead.owner = RepFactory(team=None, time_zone="UTC")
        lead.save()
    SlaPolicy.objects.filter(name="Demo requests").update(condition=None)
    policies_then = dict(LeadSla.objects.values_list("lead_id", "policy_id"))
    touched_then = LeadSla.objects.get(lead=first[0])
    leads = [Lead.objects.select_related("owner", "queue", "account").get(pk=lead.pk) for lead in organisation]

    clocks = sla_clocks_start(leads=leads, now=NOW)

    by_pk = SlaPolicy.objects.in_bulk()
    for lead, clock in zip(leads, clocks, strict=True):
        if lead.pk == first[0].pk:
            assert stored(clock) == stored(touched_then) and clock.touched_at == touched_then.touched_at
            continue
        kept = by_pk.get(policies_then[lead.pk]) if lead.pk in policies_then else None
        expected = per_lead(lead, now=NOW, clock_policy=kept)
        assert stored(clock) == expected, lead
        assert stored(LeadSla.objects.get(lead=lead)) == expected, lead
    reassigned = LeadSla.objects.get(lead=first[1])
    assert (reassigned.reassignments, reassigned.previous_owner_ids, reassigned.started_at) == (
        1,
        [first[1].owner_id],
        NOW,
    )
    assert LeadSla.objects.count() == 60


def test_the_ownership_layers_start_writes_the_same_clocks_and_gives_their_due_times(organisation):
    """``sla_clocks_start_due`` (what routing calls) stores what ``sla_clocks_start`` stores, new, restarted and
    touched clocks alike, and answers each lead's due time."""
    earlier = NOW - timedelta(days=2)
    first = [Lead.objects.get(pk=lead.pk) for lead in organisation[:10]]
    sla_clocks_start_due(leads=first, now=earlier)
    LeadSla.objects.filter(lead=first[0]).update(touched_at=earlier + timedelta(minutes=3), state=LeadSla.State.MET)
    leads = [Lead.objects.select_related("owner", "queue", "account").get(pk=lead.pk) for lead in organisation]

    due = sla_clocks_start_due(leads=leads, now=NOW, first=frozenset(lead.pk for lead in leads[10:]))

    clocks = {clock.lead_id: clock for clock in LeadSla.objects.all()}
    assert list(due) == [lead.pk for lead in leads]
    assert due == {lead.pk: clocks[lead.pk].due_at for lead in leads}
    assert clocks[first[0].pk].started_at == earlier  # touched: left as it was
    for lead in leads[1:]:
        assert stored(clocks[lead.pk]) == per_lead(lead, now=NOW), lead
        assert clocks[lead.pk].started_at == NOW


def test_an_empty_batch_writes_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert sla_clocks_start(leads=[], now=timezone.now()) == []
