"""Load counters per rep (routing.RepLoad), filled from the leads and today's assignments."""

import datetime
from zoneinfo import ZoneInfo

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Count
from django.utils import timezone

OPEN_STATUSES = ("assigned", "accepted", "working")


def count_loads(apps, schema_editor):
    Rep = apps.get_model("territories", "Rep")
    Lead = apps.get_model("routing", "Lead")
    Assignment = apps.get_model("routing", "Assignment")
    RepLoad = apps.get_model("routing", "RepLoad")
    now = timezone.now()
    open_leads = dict(
        Lead.objects.filter(status__in=OPEN_STATUSES, owner__isnull=False)
        .values("owner_id")
        .annotate(n=Count("id"))
        .values_list("owner_id", "n")
    )
    rows = []
    for rep_id, time_zone in Rep.objects.values_list("id", "time_zone"):
        local = now.astimezone(ZoneInfo(time_zone or "UTC"))
        midnight = datetime.datetime.combine(local.date(), datetime.time(), tzinfo=local.tzinfo)
        today = Assignment.objects.filter(rep_id=rep_id, assigned_at__gte=midnight).count()
        rows.append(RepLoad(rep_id=rep_id, open_leads=open_leads.get(rep_id, 0), day=local.date(), assigned_today=today))
    RepLoad.objects.bulk_create(rows)


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0015_notification_sla_kinds"),
        ("territories", "0004_coverage_version_row"),
    ]

    operations = [
        migrations.CreateModel(
            name="RepLoad",
            fields=[
                (
                    "rep",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="load_counter",
                        serialize=False,
                        to="territories.rep",
                    ),
                ),
                ("open_leads", models.IntegerField(default=0)),
                ("day", models.DateField(blank=True, null=True)),
                ("assigned_today", models.IntegerField(default=0)),
            ],
        ),
        migrations.RunPython(count_loads, migrations.RunPython.noop),
    ]
