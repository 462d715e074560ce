import pytest
from django.core.management import call_command

from routing.models import Queue


@pytest.mark.django_db
def test_fresh_database_has_exactly_one_catch_all_queue():
    assert Queue.objects.filter(is_catch_all=True).count() == 1
    assert Queue.objects.catch_all().active


@pytest.mark.django_db
def test_models_and_migrations_agree():
    # makemigrations --check exits non-zero when a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_healthz_reports_database_and_worker(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    # No worker has run in a test database yet.
    assert body["worker"] == {"ok": False, "age_seconds": None}


@pytest.mark.django_db
def test_beat_schedule_entries_expire_after_their_interval():
    # Runs queued while workers were down must not pile up: the stored entry carries the expiry.
    from django.conf import settings
    from django_celery_beat.schedulers import ModelEntry

    from leadrouter.celery import app

    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        stored = ModelEntry.from_entry(name, app=app, **entry).model
        assert stored.expire_seconds == entry["schedule"].total_seconds(), name


def test_empty_service_variables_mean_the_embedded_defaults(tmp_path):
    # "DATABASE_URL=" left in a .env must not break start-up: it means SQLite and the file broker.
    import os
    import subprocess
    import sys

    from django.conf import settings

    env = {
        **os.environ,
        "DATABASE_URL": "",
        "CELERY_BROKER_URL": "",
        "CACHE_URL": "",
        "LEADROUTER_VAR_DIR": str(tmp_path),
    }
    probe = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'leadrouter.settings'; django.setup();"
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.CACHES['default']['BACKEND'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "filesystem://",
        "django.core.cache.backends.filebased.FileBasedCache",
    ]
