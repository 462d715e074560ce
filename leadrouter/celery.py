"""The Celery app. Configuration comes from Django settings (``CELERY_*``)."""

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init
from django.db import close_old_connections

from leadrouter import broker
from leadrouter.warmup import coverage_load, long_lived_freeze, static_load

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadrouter.settings")
broker.register()  # The file-system broker writes each message whole (leadrouter/broker.py).

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


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(sender: Task | None = None, **kwargs: Any) -> None:
    """A task's database connections live as a request's do: kept from one task to the next (settings,
    ``CELERY_DB_REUSE_MAX``), closed once older than ``CONN_MAX_AGE``, after an error, or when the health check
    fails. Not around a task run eagerly, inside its caller's transaction (as Django's test client leaves a
    request's connection alone)."""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return
    close_old_connections()
