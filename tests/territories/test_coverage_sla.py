"""The ``calendars`` and ``sla_policies`` sections of the coverage document: SLAs as code."""

import datetime as dt

import pytest

from leadrouter.coverage import CoverageError, apply_import, dump_yaml, export_coverage, load_yaml, plan_import
from sla.models import BusinessCalendar, EscalationStep, SlaPolicy

pytestmark = pytest.mark.django_db

BASE = """\
version: 1
teams:
  - {name: DACH}
reps:
  - {username: anna.schmidt, team: DACH, time_zone: Europe/Berlin}
queues:
  - {name: Catch-all, catch_all: true}
  - {name: DACH Inbound, members: [{rep: anna.schmidt}]}
  - {name: Escalations}
territories:
  - {name: DACH, queue: DACH Inbound, criteria: {countries: [DE, AT, CH]}}
"""

SLA = """\
calendars:
  - name: DACH business hours
    time_zone: Europe/Berlin
    holidays: {country: DE, subdivision: BY}
    owner: {team: DACH}
    hours:
      - {days: mon-fri, start: "08:00", end: "18:00"}
    closed:
      - {date: "2026-12-24", reason: Christmas Eve}
      - {date: "2026-12-31"}
  - name: Default hours
    owner: {default: true}
    hours:
      - {days: "mon,tue,wed,thu,fri", start: "09:00", end: "17:00"}
      - {days: sat, start: "22:00", end: "06:00"}
sla_policies:
  - name: Demo requests
    position: 10
    condition:
      all:
        - {field: source, op: equals, value: Demo request}
    territory: DACH
    first_touch_minutes: 5
    steps:
      - {at: 50%, action: remind_rep}
      - {after_due: 0, action: alert_manager}
      - {after_due: 2, action: reassign}
      - {after_due: 5, action: move_to_queue, queue: Escalations}
  - name: Partners
    position: 20
    active: false
    queue: DACH Inbound
    no_sla: true
  - name: Everyone else
    position: 900
    default: true
    first_touch_minutes: 240
    max_reassignments: 1
    notify_outside_business_hours: true
    steps:
      - {at: 80%, action: remind_rep}
      - {after_due: 0, action: alert_manager}
"""


def document(sla: str = SLA) -> dict:
    return load_yaml(BASE + sla)


def errors_of(document: dict, *, prune: bool = False) -> list[tuple[str, str]]:
    with pytest.raises(CoverageError) as caught:
        plan_import(document, prune=prune)
    return caught.value.errors


def test_import_writes_calendars_and_policies_as_the_file_says():
    apply_import(document())

    calendar = BusinessCalendar.objects.get(name="DACH business hours")
    assert (calendar.time_zone, calendar.holiday_country, calendar.holiday_subdivision) == ("Europe/Berlin", "DE", "BY")
    assert calendar.team.name == "DACH" and not calendar.is_default
    assert sorted(calendar.hours.values_list("weekday", flat=True)) == [0, 1, 2, 3, 4]
    assert {str(closed) for closed in calendar.closed_dates.all()} == {"2026-12-24 Christmas Eve", "2026-12-31"}
    assert calendar.spec().time_zone == "Europe/Berlin"
    default = BusinessCalendar.objects.get(is_default=True)
    assert default.hours.get(weekday=5).end == dt.time(6, 0)

    demo = SlaPolicy.objects.get(name="Demo requests")
    assert demo.first_touch_minutes == 5 and demo.territory.name == "DACH"
    assert [str(step) for step in demo.steps.all()] == [
        "1. at 50%: Remind the rep",
        "2. due + 0 min: Alert the manager",
        "3. due + 2 min: Reassign to the next eligible rep in the queue",
        "4. due + 5 min: Move to a queue",
    ]
    assert demo.steps.get(position=4).queue.name == "Escalations"
    assert SlaPolicy.objects.get(name="Partners").no_sla
    assert SlaPolicy.objects.get(is_default=True).name == "Everyone else"


def test_round_trip_is_identical_and_importing_the_export_changes_nothing():
    apply_import(document())
    first = dump_yaml(export_coverage())
    assert plan_import(load_yaml(first)).is_empty
    apply_import(load_yaml(first))
    assert dump_yaml(export_coverage()) == first
    # The export groups the week: five days written one by one come back as a range.
    assert "- {days: mon-fri, start: '09:00', end: '17:00'}" in first
    # Policies are written in the order they are tried.
    assert [policy["name"] for policy in export_coverage()["sla_policies"]] == [
        "Demo requests",
        "Partners",
        "Everyone else",
    ]


def test_day_ranges_and_day_lists_mean_the_same_week():
    apply_import(document())
    same_week = SLA.replace('days: mon-fri, start: "08:00"', 'days: "mon,tue,wed-fri", start: "08:00"')
    assert plan_import(document(same_week)).is_empty


def test_plan_shows_a_changed_target_and_a_new_step():
    apply_import(document())
    changed = SLA.replace("first_touch_minutes: 240", "first_touch_minutes: 120").replace(
        "      - {at: 80%, action: remind_rep}\n", "      - {at: 75%, action: remind_rep}\n"
    )
    plan = plan_import(document(changed))
    text = plan.render()
    assert '~ SLA policy "Everyone else": first_touch_minutes 240 → 120' in text
    assert '~ SLA policy "Everyone else": steps [{"at": "80%"' in text and '→ [{"at": "75%"' in text
    assert text.endswith("1 change: 1 to update.")

    step_ids = list(EscalationStep.objects.filter(policy__name="Everyone else").values_list("pk", flat=True))
    apply_import(document(changed))
    policy = SlaPolicy.objects.get(name="Everyone else")
    assert policy.first_touch_minutes == 120
    assert policy.steps.get(position=1).percent == 75
    # The ladder's rows are rewritten in place, so running clocks keep their next step.
    assert list(policy.steps.values_list("pk", flat=True)) == step_ids


def test_plan_lists_new_calendars_and_policies():
    apply_import(document(""))
    text = plan_import(document()).render()
    assert '+ calendar "DACH business hours"' in text
    assert '+ SLA policy "Demo requests"' in text
    assert text.endswith("5 changes: 5 to create.")


def test_invalid_entries_are_reported_with_their_paths():
    broken = """\
calendars:
  - name: Berlin
    time_zone: Europe/Berlim
    holidays: {country: XX}
    owner: {team: DACH, queue: DACH Inbound}
    hours:
      - {days: fri-mon, start: "09:00", end: "17:00"}
      - {days: mon, start: 10:00, end: "18:00"}
    closed:
      - {date: 2026-13-01}
  - name: Elsewhere
    owner: {team: Nordics}
    hours:
      - {days: mon-fri, start: "09:00", end: "17:00"}
      - {days: wed, start: "16:00", end: "20:00"}
sla_policies:
  - name: No target
    condition:
      all:
        - {field: sorce, op: equals, value: Demo request}
    queue: Nowhere
    steps:
      - {at: 120%, action: remind_rep}
      - {after_due: 5, action: alert_manager, queue: Escalations}
      - {action: reassign}
  - name: First default
    default: true
    no_sla: true
  - name: Second default
    default: true
    no_sla: true
"""
    errors = dict(errors_of(document(broken)))
    assert errors["calendars[0].time_zone"].startswith("Europe/Berlim is not an IANA time zone")
    assert errors["calendars[0].holidays"].startswith("Unknown holiday country 'XX'")
    assert errors["calendars[0].owner"].startswith("a calendar belongs to one rep, one team or one queue")
    assert errors["calendars[0].hours[1].start"] == 'write the time in quotes, such as "09:00"'
    assert errors["calendars[0].closed[0].date"] == '"2026-13-01" is not a date such as 2026-12-24'
    assert errors["calendars[1].owner.team"] == 'there is no team "Nordics"'
    assert errors["calendars[1].hours[1]"] == "the wed window overlaps hours[0]"
    assert errors["sla_policies[0].condition.all[0].field"].startswith("unknown field 'sorce'")
    assert errors["sla_policies[0].first_touch_minutes"].startswith("set a target in business minutes")
    assert errors["sla_policies[0].queue"] == 'there is no queue "Nowhere"'
    assert errors["sla_policies[0].steps[0].at"] == '"120%" is not a share from 1% to 100%'
    assert errors["sla_policies[0].steps[1].queue"].startswith("only action: move_to_queue uses a queue")
    assert errors["sla_policies[0].steps[2]"].startswith("give either at: 80%")
    assert errors["sla_policies[2].default"] == '"First default" is already the default policy; only one can be'


def test_backwards_day_range_is_reported():
    broken = SLA.replace("days: mon-fri", "days: fri-mon")
    assert ("calendars[0].hours[0].days", '"fri-mon" runs backwards; write days in week order') in errors_of(
        document(broken)
    )


def test_a_second_default_or_owner_counts_rows_already_in_the_database():
    apply_import(document())
    other = """\
calendars:
  - {name: Another default, owner: {default: true}}
  - {name: Another DACH, owner: {team: DACH}}
sla_policies:
  - {name: Another default policy, default: true, no_sla: true}
"""
    errors = errors_of(document(other))
    assert errors == [
        ("calendars[0].owner", 'the calendar "Default hours" is already the default; only one can be'),
        (
            "calendars[1].owner",
            'the team "DACH" already has the calendar "DACH business hours"; a team has one calendar',
        ),
        ("sla_policies[0].default", '"Everyone else" is already the default policy; only one can be'),
    ]


def test_prune_deletes_calendars_and_policies_the_file_leaves_out():
    apply_import(document())
    kept = load_yaml(
        BASE
        + """\
calendars:
  - {name: Default hours, owner: {default: true}}
sla_policies: []
"""
    )
    plan = plan_import(kept, prune=True)
    text = plan.render()
    assert '- calendar "DACH business hours"' in text
    assert '- SLA policy "Demo requests"' in text
    assert '~ calendar "Default hours": hours' in text
    apply_import(kept, prune=True)
    assert list(BusinessCalendar.objects.values_list("name", flat=True)) == ["Default hours"]
    assert not SlaPolicy.objects.exists()
    assert not EscalationStep.objects.exists()
    # The queues the policies pointed at are still there: only what the file leaves out goes.
    assert plan_import(kept, prune=True).is_empty


def test_prune_refuses_a_file_without_the_sections_while_the_database_has_rows():
    apply_import(document())
    errors = errors_of(load_yaml(BASE), prune=True)
    assert ("calendars", errors[0][1]) in errors
    assert any(path == "sla_policies" and "--prune would remove the 3 already" in message for path, message in errors)


def test_without_prune_a_partial_file_leaves_other_calendars_and_policies_alone():
    apply_import(document())
    apply_import(load_yaml("version: 1\nsla_policies:\n  - {name: Partners, no_sla: true, active: false}\n"))
    assert SlaPolicy.objects.count() == 3
    assert SlaPolicy.objects.get(name="Partners").queue is None
