"""Every installation starts with its catch-all queue, so no lead can fall through."""

from django.db import migrations


def create_catch_all(apps, schema_editor):
    Queue = apps.get_model("routing", "Queue")
    if not Queue.objects.filter(is_catch_all=True).exists():
        Queue.objects.create(
            name="Catch-all",
            description="Leads no rule placed elsewhere. Audit it monthly and fold each case back into the rules.",
            is_catch_all=True,
            active=True,
            method="round_robin",
            when_nobody_eligible="hold",
        )


class Migration(migrations.Migration):
    dependencies = [("routing", "0002_queue_members_and_leads")]

    operations = [migrations.RunPython(create_catch_all, migrations.RunPython.noop)]
