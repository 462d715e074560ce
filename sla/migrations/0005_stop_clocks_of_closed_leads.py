"""Leads closed before closing stopped their clock: stop the untouched clocks of closed leads and resolve their
open escalations, as closing does now, by whoever closed the lead, with its reason."""

from django.db import migrations

CLOSED_STATUSES = ("disqualified", "nurture", "converted", "closed")
CLOSED_AS = {"disqualified": "disqualified", "nurture": "sent to nurture", "converted": "converted (won)"}
CHUNK = 1000


def stop_clocks(apps, schema_editor):
    LeadSla = apps.get_model("sla", "LeadSla")
    Escalation = apps.get_model("sla", "Escalation")
    LeadSla.objects.filter(lead__status__in=CLOSED_STATUSES, touched_at__isnull=True).update(
        state="stopped", next_step=None, next_step_at=None
    )
    escalations = Escalation.objects.filter(
        lead__status__in=CLOSED_STATUSES, status__in=("open", "acknowledged")
    ).select_related("lead")
    batch = []
    for escalation in escalations.iterator(chunk_size=CHUNK):
        lead = escalation.lead
        said = CLOSED_AS.get(lead.status, "closed")
        escalation.status = "resolved"
        escalation.handled_by_id = lead.closed_by_id
        escalation.handled_at = lead.closed_at or lead.updated_at
        escalation.comment = f"Lead {said}: {lead.close_reason}" if lead.close_reason else f"Lead {said}."
        batch.append(escalation)
        if len(batch) >= CHUNK:
            Escalation.objects.bulk_update(batch, ["status", "handled_by", "handled_at", "comment"])
            batch = []
    Escalation.objects.bulk_update(batch, ["status", "handled_by", "handled_at", "comment"])


class Migration(migrations.Migration):
    dependencies = [
        ("sla", "0004_clock_stopped_state"),
        ("routing", "0021_lead_close_record_from_receipt"),
    ]

    operations = [migrations.RunPython(stop_clocks, migrations.RunPython.noop)]
