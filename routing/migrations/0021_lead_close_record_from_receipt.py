"""Leads closed before leads kept who closed them, when and why: read it from the receipt's "closed" entry the
rep's actions wrote, else the lead's last change."""

import datetime as dt

from django.conf import settings
from django.db import migrations

CLOSED_STATUSES = ("disqualified", "nurture", "converted", "closed")
# What "send to nurture" wrote when it took no reason: not a reason anybody typed.
NOT_A_REASON = "sent back to nurture"
CHUNK = 1000


def _when(value, fallback):
    try:
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else fallback
    except ValueError:
        return fallback


def fill_close_record(apps, schema_editor):
    Lead = apps.get_model("routing", "Lead")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    users = dict(User.objects.values_list("username", "pk"))
    leads = Lead.objects.filter(status__in=CLOSED_STATUSES, closed_at__isnull=True).only("pk", "receipt", "updated_at")
    batch = []
    for lead in leads.iterator(chunk_size=CHUNK):
        closed = lead.receipt.get("closed") if isinstance(lead.receipt, dict) else None
        closed = closed if isinstance(closed, dict) else {}
        reason = str(closed.get("reason") or "")
        lead.closed_at = _when(closed.get("at"), lead.updated_at)
        lead.closed_by_id = users.get(closed.get("by"))
        lead.close_reason = "" if reason == NOT_A_REASON else reason[:500]
        batch.append(lead)
        if len(batch) >= CHUNK:
            Lead.objects.bulk_update(batch, ["closed_at", "closed_by", "close_reason"])
            batch = []
    Lead.objects.bulk_update(batch, ["closed_at", "closed_by", "close_reason"])


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0020_queue_hold_off_hours_inherit_skills"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(fill_close_record, migrations.RunPython.noop)]
