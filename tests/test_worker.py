"""A real Celery worker, and beat, against the test database and the configured broker.

The worker and beat run as separate processes, so each test commits its data
(``transaction=True``) and hands them the test database through DATABASE_URL:
on SQLite the test database file under var/ with the file-system broker, on
PostgreSQL the ``test_…`` database with Redis or RabbitMQ.

Every test sends and consumes on a queue of its own, so messages left by an
earlier run, a parallel pytest-xdist process or a local ``make run`` never
reach it, and it never takes theirs.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from leadrouter.celery import app
from routing.models import WorkerHeartbeat
from routing.tasks import heartbeat

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 60
STOP_SECONDS = 15

# ``celery beat`` has no option for the queue it sends to, so beat is started
# through the same command line with the test's queue as the default queue.
BEAT = """
import sys
from leadrouter.celery import app
app.conf.task_default_queue = sys.argv[1]
sys.exit(app.start(["beat", *sys.argv[2:]]))
"""


def worker_name(queue: str) -> str:
    return f"{queue}@leadrouter-tests"


StartProcess = Callable[[str, list[str], dict[str, str]], subprocess.Popen[bytes]]


def database_url_for_test() -> str:
    """DATABASE_URL for the database this test uses (not the one in settings)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db["HOST"] or "", safe="")
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{auth}@{host}{port}/{quote(db['NAME'], safe='')}"


@pytest.fixture
def celery_queue() -> Iterator[str]:
    """A fresh queue, made the default so that ``.delay()`` here sends to it."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = name
    yield name
    app.conf.task_default_queue = default_queue
    # Leave no queue or binding behind: the test's queue and the worker's
    # remote-control queue, each declared again on this channel first so that
    # the channel knows the binding to remove.
    with app.connection_for_write() as broker:
        task_queue = app.amqp.queues[name].bind(broker.default_channel)
        control_queue = app.control.mailbox(broker).get_queue(worker_name(name)).bind(broker.default_channel)
        for queue in (task_queue, control_queue):
            queue.declare()
            queue.delete()
        task_queue.exchange.delete()


@pytest.fixture
def start_process(transactional_db: None, celery_queue: str, tmp_path: Path) -> Iterator[StartProcess]:
    """Start processes that share the test database and the broker.

    They are stopped before the test database is flushed and before the queue is
    deleted; their logs are printed, which pytest shows when the test fails.
    """
    started: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leadrouter.settings",
        "DATABASE_URL": database_url_for_test(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "LEADROUTER_VAR_DIR": str(settings.VAR_DIR),
        "PYTHONUNBUFFERED": "1",
    }

    def start(name: str, args: list[str], extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, *args],
                cwd=settings.BASE_DIR,
                env={**env, **extra_env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group, so the pool's children can be killed with it.
                start_new_session=True,
            )
        started.append((name, process, log))
        return process

    yield start

    for _name, process, _log in reversed(started):
        stop(process)
    for name, process, log in started:
        print(f"----- {name} (exit code {process.returncode}) -----\n{log.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Warm shutdown (SIGTERM), then SIGKILL for the whole process group."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(STOP_SECONDS)


def start_worker(start_process: StartProcess, queue: str) -> subprocess.Popen[bytes]:
    return start_process(
        "worker",
        [
            *("-m", "celery", "--app", "leadrouter", "worker"),
            *("--queues", queue, "--hostname", worker_name(queue), "--concurrency", "1", "--loglevel", "INFO"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        {},
    )


def start_beat(start_process: StartProcess, queue: str) -> subprocess.Popen[bytes]:
    return start_process(
        "beat",
        ["-c", BEAT, queue, "--loglevel", "INFO"],
        # A one-second heartbeat instead of 30 s, so the test takes seconds.
        {"HEARTBEAT_INTERVAL_SECONDS": "1"},
    )


def wait_for_heartbeat(queue: str, processes: list[subprocess.Popen[bytes]]) -> WorkerHeartbeat:
    """Poll until this test's worker has stamped the heartbeat.

    Each query runs in autocommit, outside any transaction, so on SQLite this
    process holds no lock while the worker writes, and always reads the latest
    commit.
    """
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        stamped = WorkerHeartbeat.objects.filter(name="worker", hostname=worker_name(queue)).first()
        if stamped is not None:
            return stamped
        exited = [process.args for process in processes if process.poll() is not None]
        if exited:
            pytest.fail(f"exited early: {exited} (logs below)")
        time.sleep(0.2)
    pytest.fail(f"no heartbeat from the worker on {queue} within {WAIT_SECONDS} s (logs below)")


def test_worker_runs_a_task_sent_with_delay(start_process: StartProcess, celery_queue: str) -> None:
    worker = start_worker(start_process, celery_queue)
    sent_at = timezone.now()
    # Likely sent before the worker is ready: the broker keeps it until the worker consumes.
    heartbeat.delay()

    stamped = wait_for_heartbeat(celery_queue, [worker])

    assert sent_at <= stamped.last_seen_at <= timezone.now()


def test_beat_and_worker_produce_the_heartbeat_on_their_own(start_process: StartProcess, celery_queue: str) -> None:
    worker = start_worker(start_process, celery_queue)
    beat = start_beat(start_process, celery_queue)

    wait_for_heartbeat(celery_queue, [worker, beat])

    # Beat's DatabaseScheduler copied the schedule from settings into the database.
    entry = PeriodicTask.objects.select_related("interval").get(name="worker-heartbeat")
    assert entry.task == "routing.tasks.heartbeat"
    assert entry.interval is not None
    assert (entry.interval.every, entry.interval.period) == (1, "seconds")


def test_healthz_reports_the_worker_ok_once_beat_and_worker_run(
    client: Client, start_process: StartProcess, celery_queue: str
) -> None:
    assert client.get("/healthz").json()["worker"] == {"ok": False, "age_seconds": None}
    worker = start_worker(start_process, celery_queue)
    beat = start_beat(start_process, celery_queue)

    wait_for_heartbeat(celery_queue, [worker, beat])

    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["worker"]["ok"] is True
    assert 0 <= body["worker"]["age_seconds"] < 60
