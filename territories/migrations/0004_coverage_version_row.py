import uuid

from django.db import migrations


def create_version_row(apps, schema_editor):
    # Workers trust their cached coverage model only while this row exists.
    CoverageVersion = apps.get_model("territories", "CoverageVersion")
    CoverageVersion.objects.using(schema_editor.connection.alias).get_or_create(
        pk=1, defaults={"version": 1, "stamp": uuid.uuid4()}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("territories", "0003_coverage_version"),
    ]

    operations = [
        migrations.RunPython(create_version_row, migrations.RunPython.noop),
    ]
