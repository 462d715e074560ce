"""Integrations close leads (who closed it: the API key), syncs list leads changed since a time (an index on
(updated_at, id)), and website forms post straight to intake (form sources)."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

import routing.models


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0021_lead_close_record_from_receipt"),
    ]

    operations = [
        migrations.CreateModel(
            name="FormSource",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "name",
                    models.CharField(help_text="The form, such as Website demo request.", max_length=100, unique=True),
                ),
                (
                    "source",
                    models.CharField(
                        help_text="The lead source its leads get (what routing rules and reports see as source).",
                        max_length=100,
                    ),
                ),
                (
                    "token",
                    models.CharField(default=routing.models.form_token_new, editable=False, max_length=40, unique=True),
                ),
                (
                    "thank_you_url",
                    models.URLField(
                        help_text="Where the visitor lands after posting (303 See Other).",
                        max_length=500,
                        validators=[django.core.validators.URLValidator(schemes=["https", "http"])],
                        verbose_name="thank-you URL",
                    ),
                ),
                (
                    "honeypot_field",
                    models.CharField(
                        default="homepage",
                        help_text="A field the form hides from people: a post with it filled is a bot's, answered "
                        "as usual and not stored.",
                        max_length=50,
                        validators=[
                            django.core.validators.RegexValidator(
                                "^[A-Za-z][A-Za-z0-9_-]*$", "Letters, digits, - and _, starting with a letter."
                            )
                        ],
                    ),
                ),
                (
                    "active",
                    models.BooleanField(default=True, help_text="Off: posts with its token are refused (404)."),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("token_rotated_at", models.DateTimeField(blank=True, editable=False, null=True)),
            ],
            options={
                "verbose_name": "form source",
                "ordering": ["name"],
            },
        ),
        migrations.AddField(
            model_name="lead",
            name="closed_via",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="routing.apikey",
            ),
        ),
        migrations.AddIndex(
            model_name="lead",
            index=models.Index(fields=["updated_at", "id"], name="lead_updated_idx"),
        ),
    ]
