"""The notification outbox carries the SLA ladder's notices too: reminders and manager alerts about an escalation
(by id) rather than an assignment, with their own kinds and, for an alert, the managers' addresses."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0014_lead_lane"),
    ]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="escalation_id",
            field=models.BigIntegerField(
                blank=True, help_text="The SLA escalation (sla.Escalation) a ladder notice is about.", null=True
            ),
        ),
        migrations.AddField(
            model_name="notification",
            name="recipients",
            field=models.JSONField(
                blank=True,
                help_text="E-mail addresses it goes to instead of the rep's own (a manager alert).",
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="notification",
            name="assignment",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="notifications",
                to="routing.assignment",
            ),
        ),
        migrations.AlterField(
            model_name="notification",
            name="kind",
            field=models.CharField(
                choices=[
                    ("email", "E-mail"),
                    ("slack", "Slack"),
                    ("sla_reminder_email", "SLA reminder e-mail"),
                    ("sla_reminder_slack", "SLA reminder on Slack"),
                    ("sla_alert_email", "SLA manager alert e-mail"),
                    ("sla_alert_slack", "SLA manager alert on Slack"),
                ],
                max_length=20,
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.UniqueConstraint(
                condition=models.Q(("escalation_id__isnull", False)),
                fields=("escalation_id", "kind"),
                name="notification_once_per_escalation_kind",
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.CheckConstraint(
                condition=models.Q(("assignment__isnull", False), ("escalation_id__isnull", False), _connector="OR"),
                name="notification_about_assignment_or_escalation",
            ),
        ),
    ]
