"""Leads closed before closing stopped the clock: the data migrations give them who closed them, when and why
(from the receipt the rep's action wrote), stop their untouched clocks and resolve their open escalations."""

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("routing", "0020_queue_hold_off_hours_inherit_skills"), ("sla", "0004_clock_stopped_state")]
AFTER = [("routing", "0021_lead_close_record_from_receipt"), ("sla", "0005_stop_clocks_of_closed_leads")]
CLOSED_AT = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture(autouse=True)
def latest_schema_afterwards():
    """Leave the database at the latest migrations, whatever was added after these, for the tests that follow."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_a_lead_disqualified_before_the_change_reads_closed_with_its_reason_afterwards():
    apps = migrate(BEFORE)
    User = apps.get_model("auth", "User")
    Lead = apps.get_model("routing", "Lead")
    LeadSla = apps.get_model("sla", "LeadSla")
    Escalation = apps.get_model("sla", "Escalation")
    anna = User.objects.create(username="anna")
    now = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
    closed = {"status": "disqualified", "by": "anna", "at": CLOSED_AT.isoformat(), "reason": "No budget"}
    disqualified = Lead.objects.create(status="disqualified", receipt={"closed": closed})
    nurtured = Lead.objects.create(
        status="nurture",
        receipt={"closed": {"by": "anna", "at": CLOSED_AT.isoformat(), "reason": "sent back to nurture"}},
    )
    still_open = Lead.objects.create(status="assigned")
    for lead in (disqualified, nurtured, still_open):
        LeadSla.objects.create(
            lead=lead, started_at=now, due_at=now + dt.timedelta(hours=1), next_step_at=now + dt.timedelta(hours=2)
        )
        Escalation.objects.create(lead=lead, action="alert_manager", reason="Overdue", fired_at=now)

    apps = migrate(AFTER)

    Lead = apps.get_model("routing", "Lead")
    LeadSla = apps.get_model("sla", "LeadSla")
    Escalation = apps.get_model("sla", "Escalation")
    lead = Lead.objects.get(pk=disqualified.pk)
    assert (lead.closed_at, lead.closed_by_id, lead.close_reason) == (CLOSED_AT, anna.pk, "No budget")
    assert Lead.objects.get(pk=nurtured.pk).close_reason == ""  # Not a reason anybody typed.
    assert LeadSla.objects.get(lead_id=disqualified.pk).state == "stopped"
    assert LeadSla.objects.get(lead_id=disqualified.pk).next_step_at is None
    escalation = Escalation.objects.get(lead_id=disqualified.pk)
    assert (escalation.status, escalation.handled_by_id, escalation.comment) == (
        "resolved",
        anna.pk,
        "Lead disqualified: No budget",
    )
    assert Escalation.objects.get(lead_id=nurtured.pk).comment == "Lead sent to nurture."
    # An open lead keeps its clock and its escalation.
    assert LeadSla.objects.get(lead_id=still_open.pk).state == "on_track"
    assert Escalation.objects.get(lead_id=still_open.pk).status == "open"
