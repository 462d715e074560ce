"""The Celery app. Configuration comes from Django settings (``CELERY_*``)."""

import os
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init

from leadrouter.warmup import coverage_load, long_lived_freeze, static_load

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadrouter.settings")

app = Celery("leadrouter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _warm_main_process(**kwargs: Any) -> None:
    """Modules and tables, once, before the pool forks: the worker processes share them."""
    static_load()
    long_lived_freeze()


@worker_process_init.connect
def _warm_worker_process(**kwargs: Any) -> None:
    """Each worker process's own copy of the coverage model, before its first task."""
    coverage_load()
    long_lived_freeze()
