"""Slimmer lead rows: the receipt stored packed (routing/fields.py), and no copies of the raw payload's
form answers and page history (``Lead.form_answers`` and ``Lead.page_history`` read the payload)."""

from django.db import migrations

import routing.fields

BATCH = 2000


def pack_receipts(apps, schema_editor):
    Lead = apps.get_model("routing", "Lead")
    last = 0
    while True:
        rows = list(Lead.objects.filter(pk__gt=last).order_by("pk").values_list("pk", "receipt")[:BATCH])
        if not rows:
            return
        Lead.objects.bulk_update(
            [Lead(pk=pk, receipt_packed=receipt or {}) for pk, receipt in rows], ["receipt_packed"], batch_size=500
        )
        last = rows[-1][0]


def unpack_receipts(apps, schema_editor):
    Lead = apps.get_model("routing", "Lead")
    last = 0
    while True:
        rows = list(Lead.objects.filter(pk__gt=last).order_by("pk").values_list("pk", "receipt_packed")[:BATCH])
        if not rows:
            return
        Lead.objects.bulk_update([Lead(pk=pk, receipt=packed) for pk, packed in rows], ["receipt"], batch_size=500)
        last = rows[-1][0]


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0016_repload"),
    ]

    operations = [
        migrations.RemoveField(model_name="lead", name="form_answers"),
        migrations.RemoveField(model_name="lead", name="page_history"),
        migrations.AddField(
            model_name="lead",
            name="receipt_packed",
            field=routing.fields.CompactJSONField(blank=True, default=dict),
        ),
        migrations.RunPython(pack_receipts, unpack_receipts, elidable=True),
        migrations.RemoveField(model_name="lead", name="receipt"),
        migrations.RenameField(model_name="lead", old_name="receipt_packed", new_name="receipt"),
    ]
