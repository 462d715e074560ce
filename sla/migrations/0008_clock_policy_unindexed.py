"""No index on a clock's policy: nothing looks clocks up by it, and each step the sweep fires writes a new version
of the clock, which added an entry to this index too; deleting a policy reads the clocks once instead.

Only the index is dropped (the name Django gave it, on every backend): altering the field the usual way would also
drop the foreign key and add it back, checking every clock again under a lock of the whole table."""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "sla_leadsla_policy_id_fa3927b1"


class Migration(migrations.Migration):
    dependencies = [
        ("sla", "0007_escalation_unchecked"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="leadsla",
                    name="policy",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="sla.slapolicy",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=f'CREATE INDEX "{INDEX}" ON "sla_leadsla" ("policy_id")',
                ),
            ],
        ),
    ]
