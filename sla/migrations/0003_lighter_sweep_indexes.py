"""Fewer index entries for what the sweep and the routing worker write by the thousand: escalations get no index
of their own on the lead (the unique (lead, step) index starts with it) and indexes on the target rep, target
queue and handler that hold only the rows naming one; clocks get none on their calendar or next step, which
nothing looks them up by."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sla", "0002_touch_logged_late"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="escalation",
            name="handled_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="escalation",
            name="lead",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="escalations",
                to="routing.lead",
            ),
        ),
        migrations.AlterField(
            model_name="escalation",
            name="to_queue",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="routing.queue",
            ),
        ),
        migrations.AlterField(
            model_name="escalation",
            name="to_rep",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="territories.rep",
            ),
        ),
        migrations.AlterField(
            model_name="leadsla",
            name="calendar",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="sla.businesscalendar",
            ),
        ),
        migrations.AlterField(
            model_name="leadsla",
            name="next_step",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="sla.escalationstep",
            ),
        ),
        migrations.AddIndex(
            model_name="escalation",
            index=models.Index(
                condition=models.Q(("to_rep__isnull", False)), fields=["to_rep"], name="escalation_to_rep_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="escalation",
            index=models.Index(
                condition=models.Q(("to_queue__isnull", False)), fields=["to_queue"], name="escalation_to_queue_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="escalation",
            index=models.Index(
                condition=models.Q(("handled_by__isnull", False)),
                fields=["handled_by"],
                name="escalation_handled_by_idx",
            ),
        ),
    ]
