"""SQLite under concurrent writers: web, worker and beat share one database file.

Each write here is the risky pattern: a transaction that reads, then writes. In
SQLite's default (deferred) mode the read takes a shared lock that must be
upgraded for the write, and in WAL mode a failed upgrade raises "database is
locked" at once, without waiting for the busy timeout. The settings open every
transaction with BEGIN IMMEDIATE, so writers queue at BEGIN instead.
"""

import os
import subprocess
import sys
import threading

import pytest
from django.conf import settings
from django.db import connection, connections, transaction

from routing.models import Lead, Queue
from tests.helpers import STALL_SECONDS, join_all, wait_for_progress

pytestmark = [pytest.mark.sqlite, pytest.mark.django_db(transaction=True)]

THREADS = 4
WRITES = 40

# The same writes from another process, started with the test database.
CHILD = """
import sys
import django

django.setup()
from tests.test_sqlite_concurrency import write_leads

print("ready", flush=True)
sys.stdin.readline()
write_leads(queue_id=int(sys.argv[1]), writer="process", count=int(sys.argv[2]))
"""


def write_leads(*, queue_id: int, writer: str, count: int) -> None:
    """``count`` transactions that each read the queue's pointer, store a lead and
    write the pointer back plus one. Only serialized transactions lose no update."""
    for n in range(count):
        with transaction.atomic():
            pointer = Queue.objects.values_list("rr_pointer", flat=True).get(pk=queue_id)
            Lead.objects.create(source=writer, external_id=str(n), email=f"{writer}-{n}@example.com")
            Queue.objects.filter(pk=queue_id).update(rr_pointer=pointer + 1)


def test_concurrent_writers_never_hit_database_is_locked() -> None:
    queue = Queue.objects.create(name="Concurrency")
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS + 1)

    def thread_writer(name: str) -> None:
        try:
            start.wait(STALL_SECONDS)
            write_leads(queue_id=queue.pk, writer=name, count=WRITES)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(queue.pk), str(WRITES)],
        cwd=settings.BASE_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "leadrouter.settings",
            "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
            "LEADROUTER_VAR_DIR": str(settings.VAR_DIR),
        },
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    threads = [threading.Thread(target=thread_writer, args=(f"thread-{n}",)) for n in range(THREADS)]
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "ready\n", child.communicate(timeout=30)[1]
        for thread in threads:
            thread.start()
        # Threads and process start writing together.
        start.wait(STALL_SECONDS)
        child.stdin.write("go\n")
        child.stdin.flush()
        # The writers queue behind each other; on a busy machine that takes longer, but the count keeps moving.
        wait_for_progress(
            lambda: (Lead.objects.count(), child.poll()),
            lambda value: value[1] is not None,
            what="the writer process (leads stored, exit code)",
        )
        _, child_errors = child.communicate()
    finally:
        # On an early failure, release the threads still waiting to start.
        start.abort()
        if child.poll() is None:
            child.kill()
            child.wait()
        join_all(
            [thread for thread in threads if thread.is_alive()], what="writer threads", progress=Lead.objects.count
        )

    assert errors == []
    assert child.returncode == 0, child_errors
    writers = THREADS + 1
    assert Lead.objects.count() == writers * WRITES
    assert set(Lead.objects.values_list("source", flat=True)) == {"process", *(f"thread-{n}" for n in range(THREADS))}
    queue.refresh_from_db()
    assert queue.rr_pointer == writers * WRITES
