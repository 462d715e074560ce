"""A real Celery worker, and beat, against the test database and the configured broker.

The worker and beat run as separate processes, so each test commits its data
(``transaction=True``) and hands them the test database through DATABASE_URL:
on SQLite the test database file under var/ with the file-system broker, on
PostgreSQL the ``test_…`` database with Redis or RabbitMQ.

Every test sends and consumes on queues of its own (a default queue and one per
lane), so messages left by an earlier run, a parallel pytest-xdist process or a
local ``make run`` never reach it, and it never takes theirs.

Waits watch progress (leads routed, the processes' logs growing), never a
budget for the whole job: on a busy machine the worker is slower, not stuck,
and a test fails only when nothing has moved for ``STALL_SECONDS``.
"""

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from leadrouter.celery import app
from routing.models import Assignment, Lead, Notification, Queue, Rule, WorkerHeartbeat
from routing.services import apikey_create
from routing.tasks import heartbeat
from territories.models import Rep
from tests.factories import QueueFactory, QueueMembershipFactory, RepFactory, UserFactory
from tests.helpers import wait_for_progress

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

STOP_SECONDS = 15
# Each started process's log, by process id: its growth is progress while the database shows none yet.
LOGS: dict[int, Path] = {}

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


# The settings that name each lane's queue (docs/routing.md, "Lanes").
LANE_SETTINGS = {
    "live": "LEADROUTER_QUEUE_LIVE",
    "bulk": "LEADROUTER_QUEUE_BULK",
    "notify": "LEADROUTER_QUEUE_NOTIFY",
    "webhooks": "LEADROUTER_QUEUE_WEBHOOKS",
}


def lane_queues(queue: str) -> dict[str, str]:
    """This test's queue for each lane, by lane, named after its default queue."""
    return {lane: f"{queue}-{lane}" for lane in LANE_SETTINGS}


def all_queues(queue: str) -> list[str]:
    """The default queue and every lane's: what ``make run``'s worker serves."""
    return [queue, *lane_queues(queue).values()]


@pytest.fixture
def celery_queue(settings) -> Iterator[str]:
    """A fresh queue, made the default so that ``.delay()`` here sends to it, and a fresh queue for each
    lane named after it, so that what intake, routing and the worker send by lane stays in this test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = name
    for lane, queue_name in lane_queues(name).items():
        setattr(settings, LANE_SETTINGS[lane], queue_name)
    yield name
    app.conf.task_default_queue = default_queue
    # Leave no queue or binding behind: the test's queues and the worker's
    # remote-control queue, each declared again on this channel first so that
    # the channel knows the binding to remove.
    with app.connection_for_write() as broker:
        control_queue = app.control.mailbox(broker).get_queue(worker_name(name)).bind(broker.default_channel)
        control_queue.declare()
        control_queue.delete()
        for queue_name in all_queues(name):
            task_queue = app.amqp.queues[queue_name].bind(broker.default_channel)
            task_queue.declare()
            task_queue.delete()
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
        # Tasks the worker sends itself (notifications after routing) stay on this test's queues.
        "CELERY_TASK_DEFAULT_QUEUE": celery_queue,
        **{LANE_SETTINGS[lane]: queue_name for lane, queue_name in lane_queues(celery_queue).items()},
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
        LOGS[process.pid] = log
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


def start_worker(
    start_process: StartProcess,
    queue: str,
    extra_env: dict[str, str] | None = None,
    name: str = "worker",
    queues: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """A worker serving ``queues``: by default the test's default queue and every lane, as ``make run``'s."""
    served = ",".join(queues or all_queues(queue))
    return start_process(
        name,
        [
            *("-m", "celery", "--app", "leadrouter", "worker"),
            *("--queues", served, "--hostname", worker_name(queue), "--concurrency", "1", "--loglevel", "INFO"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        extra_env or {},
    )


def start_beat(start_process: StartProcess, queue: str) -> subprocess.Popen[bytes]:
    return start_process(
        "beat",
        ["-c", BEAT, queue, "--loglevel", "INFO"],
        # A one-second heartbeat and sweep instead of 30 s and 15 s, so the test takes seconds.
        {"HEARTBEAT_INTERVAL_SECONDS": "1", "RECEIVED_SWEEP_INTERVAL_SECONDS": "1"},
    )


def output_of(processes: list[subprocess.Popen[bytes]]) -> int:
    """Bytes the processes have logged so far: a worker still starting up shows its progress only there."""
    return sum(LOGS[process.pid].stat().st_size for process in processes if process.pid in LOGS)


def alive(processes: list[subprocess.Popen[bytes]]) -> Callable[[], None]:
    """A check for ``wait_for_progress``: fail at once when one of the processes has exited."""

    def check() -> None:
        exited = [process.args for process in processes if process.poll() is not None]
        if exited:
            pytest.fail(f"exited early: {exited} (logs below)")

    return check


def wait_for_heartbeat(queue: str, processes: list[subprocess.Popen[bytes]]) -> WorkerHeartbeat:
    """Poll until this test's worker has stamped the heartbeat, as long as the processes' logs keep growing.

    Each query runs in autocommit, outside any transaction, so on SQLite this
    process holds no lock while the worker writes, and always reads the latest
    commit.
    """
    stamped, _output = wait_for_progress(
        lambda: (
            WorkerHeartbeat.objects.filter(name="worker", hostname=worker_name(queue)).first(),
            output_of(processes),
        ),
        lambda value: value[0] is not None,
        what=f"no heartbeat from the worker on {queue}",
        check=alive(processes),
    )
    assert stamped is not None
    return stamped


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


def _other_backends() -> list[int]:
    """The PostgreSQL backends connected to this test's database, other than this process's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.postgres
def test_a_worker_keeps_its_database_connection_from_one_task_to_the_next(
    start_process: StartProcess, celery_queue: str
) -> None:
    """Celery's Django fixup would close it after every task: a new PostgreSQL backend (a fork, cold caches)
    for each of a live lead's tasks. The connection lives as a web request's does, for ``CONN_MAX_AGE``."""
    worker = start_worker(start_process, celery_queue)
    heartbeat.delay()
    first = wait_for_heartbeat(celery_queue, [worker])
    backends = _other_backends()
    assert len(backends) == 1, backends  # The task is over and the worker's connection is still open.

    heartbeat.delay()
    wait_for_progress(
        lambda: (
            WorkerHeartbeat.objects.get(name="worker", hostname=worker_name(celery_queue)).last_seen_at,
            output_of([worker]),
        ),
        lambda value: value[0] > first.last_seen_at,
        what="no second heartbeat from the worker",
        check=alive([worker]),
    )

    assert _other_backends() == backends  # The second task wrote through the same connection.


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


# --- Routing -------------------------------------------------------------------------------------------------


@pytest.fixture
def inbound():
    """One round-robin queue of three reps that every lead goes to, and the catch-all."""
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    queue = QueueFactory(name="Inbound")
    reps = []
    for position in range(3):
        rep = RepFactory(
            user=UserFactory(username=f"seller{position}", email=f"seller{position}@example.com"),
            time_zone="UTC",
            max_open_leads=10_000,
        )
        QueueMembershipFactory(queue=queue, rep=rep, position=position)
        reps.append(rep)
    Rule.objects.create(name="Everything to Inbound", position=1, action=Rule.Action.QUEUE, queue=queue)
    return queue, reps


def post_leads(client: Client, raw_key: str, count: int, *, start: int = 0) -> list[int]:
    """Post ``count`` leads through the intake API in batches of up to 1,000; returns their ids."""
    ids: list[int] = []
    for offset in range(start, start + count, 1000):
        batch = [
            {"email": f"buyer{n}@prospect{n}.example", "country": "Germany", "external_id": f"crm-{n}"}
            for n in range(offset, min(offset + 1000, start + count))
        ]
        response = client.post(
            "/api/v1/leads/", batch, content_type="application/json", HTTP_AUTHORIZATION=f"Token {raw_key}"
        )
        assert response.status_code == 201, response.content
        ids.extend(row["id"] for row in response.json()["leads"])
    return ids


def wait_until_routed(lead_ids: list[int], processes: list[subprocess.Popen[bytes]]) -> None:
    """Wait until none of the leads is still ``received``, as long as that count (or the logs) keeps moving."""
    wait_for_progress(
        lambda: (Lead.objects.filter(pk__in=lead_ids, status=Lead.Status.RECEIVED).count(), output_of(processes)),
        lambda value: value[0] == 0,
        what="leads still received (count, log bytes)",
        check=alive(processes),
    )


def assert_routed_exactly_once(lead_ids: list[int], reps: list[Rep]) -> None:
    assert Lead.objects.filter(pk__in=lead_ids, status=Lead.Status.ASSIGNED).count() == len(lead_ids)
    assert Assignment.objects.filter(lead_id__in=lead_ids).count() == len(lead_ids)
    assert not Lead.objects.filter(pk__in=lead_ids).annotate(n=Count("assignments")).filter(n__gt=1).exists()
    per_rep = Counter(Lead.objects.filter(pk__in=lead_ids).values_list("owner_id", flat=True))
    assert set(per_rep) == {rep.pk for rep in reps}
    # Round robin over three reps: nobody has more than one lead more than anyone else.
    assert max(per_rep.values()) - min(per_rep.values()) <= 1


def test_a_worker_routes_leads_posted_through_the_api_and_notifies_the_reps(
    client: Client, start_process: StartProcess, celery_queue: str, inbound: tuple[Queue, list[Rep]]
) -> None:
    _queue, reps = inbound
    _key, raw_key = apikey_create(name="Website form", scopes=["leads:write", "receipts:read"])
    worker = start_worker(start_process, celery_queue)

    lead_ids = post_leads(client, raw_key, 30)
    wait_until_routed(lead_ids, [worker])

    assert_routed_exactly_once(lead_ids, reps)
    # The rep's e-mail went out after commit, once per lead.
    wait_for_progress(
        # Waiting on "not pending" alone races the sender: a notice it has claimed is "sending" for a moment.
        lambda: (
            Notification.objects.filter(status__in=[Notification.Status.PENDING, Notification.Status.SENDING]).count(),
            output_of([worker]),
        ),
        lambda value: value[0] == 0,
        what="notifications still pending or sending (count, log bytes)",
        check=alive([worker]),
    )
    assert Notification.objects.filter(lead_id__in=lead_ids, kind="email", status="sent").count() == 30
    lead = client.get(f"/api/v1/leads/{lead_ids[0]}/", HTTP_AUTHORIZATION=f"Token {raw_key}").json()
    assert lead["status"] == "assigned"
    assert lead["receipt"]["routing"]["summary"].startswith("Assigned to seller")


def test_a_worker_killed_mid_batch_loses_nothing_and_routes_nothing_twice(
    client: Client, start_process: StartProcess, celery_queue: str, inbound: tuple[Queue, list[Rep]]
) -> None:
    _queue, reps = inbound
    _key, raw_key = apikey_create(name="Bulk import")
    # Small batches, so the kill most likely lands inside one; either way nothing may be lost or doubled.
    small_batches = {"LEADROUTER_ROUTING_BATCH_SIZE": "50"}
    lead_ids = post_leads(client, raw_key, 3000)
    doomed = start_worker(start_process, celery_queue, small_batches, name="doomed-worker")

    # Kill it as soon as it has routed something, while most leads are still waiting.
    wait_for_progress(
        lambda: (
            Lead.objects.filter(pk__in=lead_ids).exclude(status=Lead.Status.RECEIVED).exists(),
            output_of([doomed]),
        ),
        lambda value: value[0],
        what="the first worker routed nothing (routed any, log bytes)",
        check=alive([doomed]),
        poll_seconds=0.05,
    )
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait(STOP_SECONDS)
    left = Lead.objects.filter(pk__in=lead_ids, status=Lead.Status.RECEIVED).count()
    assert 0 < left < len(lead_ids), "the kill should land while leads are still waiting"

    # A new worker and beat: the sweep finds what the dead worker's messages no longer will.
    worker = start_worker(
        start_process, celery_queue, {**small_batches, "LEADROUTER_RECEIVED_SWEEP_AFTER_SECONDS": "1"}
    )
    beat = start_beat(start_process, celery_queue)
    wait_until_routed(lead_ids, [worker, beat])

    assert_routed_exactly_once(lead_ids, reps)


def test_a_live_lead_is_routed_while_a_bulk_import_waits(
    client: Client, start_process: StartProcess, celery_queue: str, inbound: tuple[Queue, list[Rep]]
) -> None:
    _queue, reps = inbound
    _key, raw_key = apikey_create(name="Website form", scopes=["leads:write"])
    lanes = lane_queues(celery_queue)
    # A batch of 500 is bulk work; nobody serves the bulk lane yet, as when its workers are all busy.
    bulk_ids = post_leads(client, raw_key, 500)
    live_worker = start_worker(start_process, celery_queue, queues=[celery_queue, lanes["live"], lanes["notify"]])

    [live_id] = post_leads(client, raw_key, 1, start=500)
    wait_until_routed([live_id], [live_worker])

    assert Lead.objects.get(pk=live_id).status == Lead.Status.ASSIGNED
    # The live task took none of the older bulk leads along: they all still wait for the bulk lane.
    assert Lead.objects.filter(pk__in=bulk_ids, status=Lead.Status.RECEIVED).count() == len(bulk_ids)
    # The rep heard of the live lead through the notify lane.
    wait_for_progress(
        lambda: (Notification.objects.filter(lead_id=live_id, status="sent").count(), output_of([live_worker])),
        lambda value: value[0] >= 1,
        what="the live lead's notifications not sent (count, log bytes)",
        check=alive([live_worker]),
    )

    # A worker serving every lane takes the import: nothing waited in vain, nothing is routed twice.
    stop(live_worker)
    worker = start_worker(start_process, celery_queue)
    wait_until_routed(bulk_ids, [worker])
    assert_routed_exactly_once([live_id, *bulk_ids], reps)
