"""Measure routing end to end on PostgreSQL: HTTP intake → broker → real worker(s) → assigned.

    manage.py bench_routing [--bulk 20000] [--rate 200] [--seconds 10] [--workers 2] [--web-workers 2]

It creates a scratch database next to the configured one (``<name>_bench``),
migrates it, loads the demo organisation (75 territories, 360 accounts, 7 rules,
15 reps) with working hours and caps lifted so every lead can be assigned,
starts gunicorn and a Celery worker on a queue of their own with the configured
broker, and prints:

(a) bulk: N leads posted in batches of 1,000 until every one is routed, leads/s;
(b) single: leads posted one by one at a fixed rate, p50/p99 from POST to routed.

The scratch database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.models import Max

from leadrouter.bench import scratch_database
from routing.models import Lead
from routing.services import apikey_create
from territories.coverage_version import coverage_version_bump
from territories.models import OutOfOffice, Rep, WorkingHours

READY_SECONDS = 60
# The lanes intake and routing send to (settings LEADROUTER_QUEUE_LIVE, _BULK, _NOTIFY).
LANES = ("live", "bulk", "notify")


class Command(BaseCommand):
    help = "Benchmark routing end to end on PostgreSQL with a real web server and worker(s)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bulk", type=int, default=20_000, help="Leads for the bulk run (0 to skip).")
        parser.add_argument("--rate", type=int, default=200, help="Single-lead posts per second.")
        parser.add_argument("--seconds", type=int, default=10, help="Duration of the single-lead run (0 to skip).")
        parser.add_argument("--workers", type=int, default=2, help="Celery worker processes.")
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes.")
        parser.add_argument("--keep", action="store_true", help="Keep the scratch database for a look afterwards.")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("bench_routing measures PostgreSQL: set DATABASE_URL=postgres://… and run it again.")
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            raise CommandError("Use a real broker: set CELERY_BROKER_URL=redis://… (or amqp://…).")
        bench_db = f"{settings.DATABASES['default']['NAME']}_bench"
        with scratch_database(bench_db, keep=options["keep"], stdout=self.stdout):
            raw_key = self._set_up()
            with self._servers(options) as base:
                self.stdout.write(
                    f"PostgreSQL database {bench_db}, broker {settings.CELERY_BROKER_URL.split('://')[0]}, "
                    f"{options['workers']} worker process(es), {options['web_workers']} web process(es), "
                    f"{os.cpu_count()} CPU(s)"
                )
                if options["bulk"]:
                    self._bulk(base, raw_key, options["bulk"])
                if options["seconds"]:
                    self._single(base, raw_key, options["rate"], options["seconds"])

    # --- set-up ---------------------------------------------------------------------------------------------

    def _set_up(self) -> str:
        self.stdout.write("Setting up the demo organisation in the scratch database…")
        call_command("migrate", verbosity=0)
        call_command("load_demo", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
        # Every rep always on and without caps, so each lead goes through distribution to a rep.
        WorkingHours.objects.all().delete()
        OutOfOffice.objects.all().delete()
        Rep.objects.update(active=True, max_open_leads=10_000_000, daily_cap=None)
        coverage_version_bump()  # QuerySet.update sends no signals; workers must reload the reps.
        _key, raw_key = apikey_create(name=f"bench-{uuid.uuid4().hex[:6]}")
        return raw_key

    @contextlib.contextmanager
    def _servers(self, options: dict[str, Any]) -> Iterator[tuple[str, int]]:
        db = settings.DATABASES["default"]
        auth = quote(db["USER"] or "", safe="") + (":" + quote(db["PASSWORD"], safe="") if db["PASSWORD"] else "")
        port = _free_port()
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            # The lanes get queues of this run's own too; the worker serves them all, as make run's does.
            **{f"LEADROUTER_QUEUE_{lane.upper()}": f"{queue}-{lane}" for lane in LANES},
            "DEBUG": "false",
            "SECRET_KEY": "bench-" + uuid.uuid4().hex,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            # Plain HTTP on loopback, and a rate limit out of the way: the bench measures routing.
            "SECURE_SSL_REDIRECT": "false",
            "THROTTLE_RATE_API_KEY": "1000000/minute",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "LOG_LEVEL": "WARNING",
        }
        log = open(os.path.join(tempfile.gettempdir(), f"{queue}.log"), "wb")  # noqa: SIM115 - closed below
        self.stdout.write(f"Web server and worker log: {log.name}")
        processes = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "gunicorn", "leadrouter.wsgi", "--bind", f"127.0.0.1:{port}"),
                    *("--workers", str(options["web_workers"]), "--log-level", "warning"),
                ],
                cwd=settings.BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ),
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "celery", "--app", "leadrouter", "worker"),
                    *("--queues", ",".join([queue, *(f"{queue}-{lane}" for lane in LANES)])),
                    *("--concurrency", str(options["workers"]), "--loglevel", "WARNING"),
                    *("--hostname", f"{queue}@bench", "--without-gossip", "--without-mingle", "--without-heartbeat"),
                ],
                cwd=settings.BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ),
        ]
        try:
            _wait_for_web(port, processes)
            yield ("127.0.0.1", port)
        finally:
            for process in processes:
                process.terminate()  # Warm shutdown: the worker finishes its task.
            for process in processes:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            log.close()

    # --- runs ------------------------------------------------------------------------------------------------

    def _bulk(self, base: tuple[str, int], raw_key: str, count: int) -> None:
        self.stdout.write(f"(a) bulk: posting {count:,} leads in batches of 1,000 from 2 clients…")
        batches = [list(range(start, min(start + 1000, count))) for start in range(0, count, 1000)]
        started = time.time()
        with ThreadPoolExecutor(2) as pool:
            client = _Clients(base, raw_key)
            lead_ids = [
                lead_id for ids in pool.map(lambda b: client.post([_lead(n) for n in b]), batches) for lead_id in ids
            ]
        posted = time.time() - started
        _wait_until_routed(lead_ids)
        finished = Lead.objects.filter(pk__in=lead_ids).aggregate(last=Max("updated_at"))["last"].timestamp()
        outcomes = Counter(Lead.objects.filter(pk__in=lead_ids).values_list("status", flat=True))
        self.stdout.write(
            f"    intake: {count / posted:,.0f} leads/s ({posted:.1f} s to post)\n"
            f"    end to end: {count / (finished - started):,.0f} leads/s "
            f"({finished - started:.1f} s from first POST to last lead routed)\n"
            f"    outcomes: {dict(outcomes)}"
        )

    def _single(self, base: tuple[str, int], raw_key: str, rate: int, seconds: int) -> None:
        total = rate * seconds
        self.stdout.write(f"(b) single: {total:,} leads posted one by one at {rate}/s for {seconds} s…")
        client = _Clients(base, raw_key)
        posted_at: dict[int, float] = {}
        lock = threading.Lock()

        def post(n: int) -> None:
            at = time.time()
            (lead_id,) = client.post(_lead(1_000_000 + n))
            with lock:
                posted_at[lead_id] = at

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            for n in range(total):
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(post, n)
        _wait_until_routed(list(posted_at))
        routed = dict(Lead.objects.filter(pk__in=list(posted_at)).values_list("pk", "updated_at"))
        latencies = sorted((_ts(routed[pk]) - at) * 1000 for pk, at in posted_at.items())
        achieved = total / (time.monotonic() - started)
        self.stdout.write(
            f"    POST → routed: p50 {statistics.median(latencies):.0f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.0f} ms, max {latencies[-1]:.0f} ms "
            f"(offered {rate}/s, completed {achieved:.0f}/s)"
        )


class _Clients:
    """One keep-alive HTTP connection per thread."""

    def __init__(self, base: tuple[str, int], raw_key: str) -> None:
        self.base = base
        self.headers = {"Authorization": f"Token {raw_key}", "Content-Type": "application/json"}
        self.local = threading.local()

    def post(self, body: Any) -> list[int]:
        if not hasattr(self.local, "connection"):
            self.local.connection = http.client.HTTPConnection(*self.base, timeout=60)
        self.local.connection.request("POST", "/api/v1/leads/", json.dumps(body), self.headers)
        response = self.local.connection.getresponse()
        answer = response.read()
        if response.status not in (200, 201):
            raise CommandError(f"Intake answered {response.status}: {answer[:500]!r}")
        data = json.loads(answer)
        return [row["id"] for row in data["leads"]] if isinstance(body, list) else [data["id"]]


def _lead(n: int) -> dict[str, Any]:
    """Varied leads: countries, sizes and industries the demo rules and territories tell apart."""
    countries = ["Germany", "USA", "France", "United Kingdom", "Austria", "Canada", "Switzerland", "Japan"]
    industries = ["software", "manufacturing", "financial services", "healthcare", "retail"]
    return {
        "email": f"buyer{n}@prospect{n % 5000}.example",
        "first_name": "Pat",
        "last_name": f"Buyer {n}",
        "company": f"Prospect {n % 5000} GmbH",
        "country": countries[n % len(countries)],
        "employees": [12, 80, 450, 2400, 15000][n % 5],
        "industry": industries[n % len(industries)],
        "source": ["Demo request", "Webinar", "Contact us"][n % 3],
        "external_id": f"bench-{n}",
        "form_answers": {"What are you looking for?": "Routing for our inbound leads"},
        "page_history": ["/pricing", "/demo"],
    }


def _ts(value: datetime) -> float:
    return value.timestamp()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_web(port: int, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise CommandError("The web server or the worker exited during start-up.")
        with contextlib.suppress(OSError):
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            probe.request("GET", "/healthz")
            if probe.getresponse().status in (200, 503):
                return
        time.sleep(0.2)
    raise CommandError(f"The web server did not answer within {READY_SECONDS} s.")


def _wait_until_routed(lead_ids: list[int]) -> None:
    deadline = time.monotonic() + 600
    while Lead.objects.filter(pk__in=lead_ids, status=Lead.Status.RECEIVED).exists():
        if time.monotonic() > deadline:
            raise CommandError("Leads were still waiting after 10 minutes; is the worker running?")
        time.sleep(0.05)
