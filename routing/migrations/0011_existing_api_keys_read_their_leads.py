# Keys that existed before scopes posted leads and read them back (with their receipts): keep them working for
# what a web form needs, posting and reading its own leads' status. Receipts and touches are granted explicitly.

from django.db import migrations


def grant_read(apps, schema_editor):
    ApiKey = apps.get_model("routing", "ApiKey")
    for api_key in ApiKey.objects.all():
        scopes = list(api_key.scopes or [])
        for scope in ("leads:write", "leads:read"):
            if scope not in scopes:
                scopes.append(scope)
        api_key.scopes = scopes
        api_key.save(update_fields=["scopes"])


class Migration(migrations.Migration):

    dependencies = [
        ('routing', '0010_apikey_scopes'),
    ]

    operations = [
        migrations.RunPython(grant_read, migrations.RunPython.noop),
    ]
