"""Measure routing on PostgreSQL: in this process, against the database's write ceiling, and end to end
through HTTP intake, the broker and a real worker.

    manage.py bench_routing [--quick] [--routing 10000] [--ceiling 10000] [--bulk 10000]
        [--rate 100] [--seconds 10] [--csv 100000] [--live-rate 20]
        [--backlog 200000] [--backlog-base 1000] [--backlog-batches 5]
        [--skip-routing] [--skip-ceiling] [--skip-bulk] [--skip-single] [--skip-csv] [--skip-backlog]
        [--workers 2] [--web-workers 2] [--web-threads 4] [--keep]

It creates a scratch database next to the configured one (``<name>_bench``),
migrates it, loads the demo organisation (75 territories, 360 accounts, 7 rules,
15 reps, a month of history) with working hours and caps lifted so every lead
can be assigned, and measures, in this order:

(1) routing in this process: leads stored as ``received`` through
    ``leads_receive`` (nothing sent to a worker), then routed by
    ``leads_route`` as a worker routes an import's (on PostgreSQL two
    threads taking turns), five batches of 1,000 per call, after one
    warm-up call; leads/s, and the share of the time the routing lock
    was held (from ``routing.dispatch.timings`` when routing provides it);
(2) the write ceiling: the rows a routed lead writes, written set-based by
    bare SQL into copies of the tables with their foreign keys (leadrouter/bench.py,
    ``WriteCeiling``); leads/s, and routing's share of it; and the same
    without foreign keys, which is what slimmer rows could reach. (1) and (2)
    run interleaved: a routing call, five batches of each ceiling, and so
    on, so both meet the machine in the same moments;
(3) with gunicorn and a Celery worker on queues of their own (one worker
    serving every lane, as ``make run``'s does; with a Redis broker and no
    ``CACHE_URL``, a Redis cache, as in production), each run starting once the
    worker has sent the previous run's notifications; "routed" is when a
    query every 10 ms first sees the lead no longer ``received`` (its batch
    committed):
    (a) bulk: leads posted in batches of 1,000 until every one is routed;
    (b) single: leads posted one by one at a fixed rate, p50/p99 POST → routed, after two
        seconds at that rate that are not measured (the stack's first requests);
    (c) live during an import: a CSV file imported with ``manage.py
        import_leads`` (its leads travel in the bulk lane) while single leads
        are posted at ``--live-rate``; their p99 while the import's leads are
        being routed, and how many of those were routed meanwhile;
(4) backlog: batches routed in this process with ``--backlog-base`` and then
    ``--backlog`` open leads in the database (inserted set-based after the
    lead tables are emptied); the per-batch time with many ÷ with few.

Sizes default to those the targets are set for; ``--quick`` uses small
ones for a smoke test (an explicit size still wins), ``--skip-…`` leaves a
part out (its figures are null). Readable lines come first; the last line
printed is one JSON object with every figure. The scratch database is dropped
at the end unless ``--keep``.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import os
import platform
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
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.models import Max
from django.test.utils import override_settings
from django.utils import timezone
from kombu import Exchange, Queue

from leadrouter.bench import (
    CEILING_NOTIFICATION_KINDS,
    CEILING_SCHEMA,
    WriteCeiling,
    insert_from_template,
    percentile,
    scratch_database,
)
from leadrouter.celery import app
from leadrouter.warmup import long_lived_freeze, static_load
from routing import dispatch
from routing.intake import leads_receive
from routing.models import Assignment, Lead, LeadImport, Notification, RepTask
from routing.services import apikey_create
from sla.models import LeadSla
from territories.coverage_version import coverage_version_bump
from territories.models import OutOfOffice, Rep, WorkingHours

READY_SECONDS = 60
# Single leads posted at the measured rate before the single-lead run, and not measured (see ``_single``).
WARM_UP_SECONDS = 2
# The lanes intake and routing send to (settings LEADROUTER_QUEUE_LIVE, _BULK, _NOTIFY).
LANES = ("live", "bulk", "notify")
# Leads per routing batch and per intake call in this process, and per bulk POST.
BATCH = 1000
# Batches of 1,000 per ``leads_route`` call in the in-process run, between the ceiling's batches.
STRETCH = 5
# The longest the live run posts while an import is routed, and the longest any wait lasts.
MAX_WAIT_SECONDS = 600
# How often waits ask the database whether leads are routed.
WATCH_SECONDS = 0.01
# First numbers of each run's leads (``_lead``), so no two runs share an e-mail or an external id.
FIRST_LEAD = {
    "bulk": 0,
    "single": 1_000_000,
    "live": 2_000_000,
    "csv": 3_000_000,
    "warm_up": 4_000_000,
    "in_process": 10_000_000,
}
# Open leads of the backlog are spread over this many minutes before now (30 days), as a real backlog is.
BACKLOG_SPREAD_MINUTES = 30 * 24 * 60

# The JSON line's keys, and the targets printed beside them: (">=" or "<=", value).
FIGURES = (
    "routing_leads_per_s",
    "bulk_end_to_end_leads_per_s",
    "single_p50_ms",
    "single_p99_ms",
    "live_p99_ms_during_bulk",
    "backlog_flatness",
    "lock_share",
    "write_ceiling_leads_per_s",
    "share_of_ceiling",
    "write_ceiling_without_fks_leads_per_s",
)
TARGETS = {
    "routing_leads_per_s": (">=", 3000),
    "bulk_end_to_end_leads_per_s": (">=", 2000),
    "single_p50_ms": ("<=", 100),
    "single_p99_ms": ("<=", 250),
    "live_p99_ms_during_bulk": ("<=", 500),
    "backlog_flatness": ("<=", 1.3),
    "share_of_ceiling": (">=", 0.6),
}


@dataclass(frozen=True)
class Sizes:
    """How much each part does; 0 leaves the part out."""

    routing: int
    ceiling: int
    bulk: int
    rate: int
    seconds: int
    csv: int
    live_rate: int
    backlog: int
    backlog_base: int
    backlog_batches: int


FULL = Sizes(
    routing=10_000,
    ceiling=10_000,
    bulk=10_000,
    rate=100,
    seconds=10,
    csv=100_000,
    live_rate=20,
    backlog=200_000,
    backlog_base=1_000,
    backlog_batches=5,
)
QUICK = Sizes(
    routing=2_000,
    ceiling=2_000,
    bulk=2_000,
    rate=20,
    seconds=3,
    csv=3_000,
    live_rate=20,
    backlog=5_000,
    backlog_base=1_000,
    backlog_batches=2,
)
# --skip-<part> sets these sizes to 0.
SKIPS = {
    "routing": "routing",
    "ceiling": "ceiling",
    "bulk": "bulk",
    "single": "seconds",
    "csv": "csv",
    "backlog": "backlog",
}


class Command(BaseCommand):
    help = (
        "Benchmark routing on PostgreSQL: in process, against the write ceiling, and end to end with a real "
        "web server and worker(s). The last line printed is JSON with every figure."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        def size(name: str, text: str) -> None:
            parser.add_argument(
                f"--{name.replace('_', '-')}",
                type=int,
                default=None,
                help=f"{text} (default {getattr(FULL, name):,}; --quick {getattr(QUICK, name):,}).",
            )

        size("routing", "Leads routed in this process, after a warm-up call")
        size("ceiling", "Leads written by the write ceiling")
        size("bulk", "Leads posted in batches of 1,000 for the bulk run")
        size("rate", "Single-lead posts per second")
        size("seconds", "Duration of the single-lead run")
        size("csv", "Leads in the CSV file imported during the live run")
        size("live_rate", "Single-lead posts per second while the import is routed")
        size("backlog", "Open leads in the database for the second backlog measure")
        size("backlog_base", "Open leads in the database for the first backlog measure")
        size("backlog_batches", "Batches of 1,000 timed at each backlog size")
        for part in SKIPS:
            parser.add_argument(f"--skip-{part}", action="store_true", help=f"Leave out the {part} run.")
        parser.add_argument("--quick", action="store_true", help="Small sizes: a smoke test in a minute or two.")
        parser.add_argument("--workers", type=int, default=2, help="Celery worker processes.")
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes.")
        parser.add_argument("--web-threads", type=int, default=4, help="Threads per gunicorn process (Procfile: 4).")
        parser.add_argument("--keep", action="store_true", help="Keep the scratch database for a look afterwards.")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("bench_routing measures PostgreSQL: set DATABASE_URL=postgres://… and run it again.")
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            raise CommandError("Use a real broker: set CELERY_BROKER_URL=redis://… (or amqp://…).")
        sizes = _sizes(options)
        if sizes.backlog and not 0 < sizes.backlog_base < sizes.backlog:
            raise CommandError("--backlog-base must be at least 1 and below --backlog.")
        figures: dict[str, float | None] = dict.fromkeys(FIGURES)
        self.next_lead = FIRST_LEAD["in_process"]
        self.warmed_up = False
        bench_db = f"{settings.DATABASES['default']['NAME']}_bench"
        # What this process sends itself (the load's and the in-process routing's routing tasks and notices, as
        # a worker sends them) goes to queues of this run's own, which nothing reads and which are deleted at the
        # end: sent to the deployment's queues, its workers would take the scratch database's ids for their own.
        own_queues = {f"LEADROUTER_QUEUE_{lane.upper()}": f"bench-{uuid.uuid4().hex[:8]}-{lane}" for lane in LANES}
        # This process routes as a worker does: without DEBUG, so Django keeps no log of every query.
        with (
            _queues_deleted(list(own_queues.values())),
            override_settings(DEBUG=False, **own_queues),
            scratch_database(bench_db, keep=options["keep"], stdout=self.stdout),
        ):
            raw_key = self._set_up()
            self.stdout.write(
                f"PostgreSQL database {bench_db}, broker {settings.CELERY_BROKER_URL.split('://')[0]}, "
                f"{os.cpu_count()} CPU(s); Python {platform.python_version()} ({os.path.realpath(sys.executable)})"
            )
            if sizes.routing or sizes.ceiling:
                figures.update(self._routing_and_ceiling(sizes.routing, sizes.ceiling))
            if sizes.bulk or sizes.seconds or sizes.csv:
                with self._servers(options) as base:
                    cache = self.env["CACHE_URL"].split("://")[0] or "the file cache (no CACHE_URL)"
                    self.stdout.write(
                        f"(3) end to end: {options['workers']} worker process(es), "
                        f"{options['web_workers']} web process(es) of {options['web_threads']} threads, cache {cache}"
                    )
                    if sizes.bulk:
                        figures["bulk_end_to_end_leads_per_s"] = self._bulk(base, raw_key, sizes.bulk)
                    if sizes.seconds:
                        self._wait_until_idle()
                        figures.update(self._single(base, raw_key, sizes.rate, sizes.seconds))
                    if sizes.csv:
                        self._wait_until_idle()
                        figures["live_p99_ms_during_bulk"] = self._live_during_import(
                            base, raw_key, sizes.csv, sizes.live_rate
                        )
            if sizes.backlog:
                figures["backlog_flatness"] = self._backlog(sizes)
        if figures["routing_leads_per_s"] and figures["write_ceiling_leads_per_s"]:
            figures["share_of_ceiling"] = figures["routing_leads_per_s"] / figures["write_ceiling_leads_per_s"]
        self._summary(figures)
        self.stdout.write(json.dumps({name: _rounded(name, value) for name, value in figures.items()}))

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
        # This process posts and watches the leads whose latency it measures: the demo organisation it just
        # loaded must not make its own cycle collections pause its posting and watching threads.
        long_lived_freeze()
        return raw_key

    @contextlib.contextmanager
    def _servers(self, options: dict[str, Any]) -> Iterator[tuple[str, int]]:
        """gunicorn and a Celery worker serving this run's own queues; ``self.env`` is their environment,
        for other processes of the run (the CSV import)."""
        db = settings.DATABASES["default"]
        auth = quote(db["USER"] or "", safe="") + (":" + quote(db["PASSWORD"], safe="") if db["PASSWORD"] else "")
        port = _free_port()
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        self.env = {
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
            "EMAIL_BACKEND": "leadrouter.bench.DiscardingEmailBackend",
            "LOG_LEVEL": "WARNING",
            "CACHE_URL": _cache_url(),
        }
        self.log = open(os.path.join(tempfile.gettempdir(), f"{queue}.log"), "wb")  # noqa: SIM115 - closed below
        self.stdout.write(f"Web server, worker and import log: {self.log.name}")

        def start(args: list[str]) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", *args],
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        processes = [
            start(
                [
                    *("gunicorn", "leadrouter.wsgi", "--bind", f"127.0.0.1:{port}"),
                    # Threads as the Procfile runs it: a POST waiting on the database does not hold a process.
                    *("--workers", str(options["web_workers"]), "--threads", str(options["web_threads"])),
                    *("--log-level", "warning"),
                ]
            ),
            start(
                [
                    *("celery", "--app", "leadrouter", "worker"),
                    *("--queues", ",".join([queue, *(f"{queue}-{lane}" for lane in LANES)])),
                    *("--concurrency", str(options["workers"]), "--loglevel", "WARNING"),
                    *("--hostname", f"{queue}@bench", "--without-gossip", "--without-mingle", "--without-heartbeat"),
                ]
            ),
        ]
        self.stack_started = timezone.now()
        try:
            _wait_for_web(port, processes)
            yield ("127.0.0.1", port)
        finally:
            for process in processes:
                process.terminate()  # Warm shutdown: the worker finishes its task.
            for process in processes:
                _stop(process)
            self.log.close()
            _queues_delete([queue, *(f"{queue}-{lane}" for lane in LANES)])

    # --- in this process -------------------------------------------------------------------------------------

    def _receive(self, count: int) -> None:
        """Store ``count`` leads as intake does (``leads_receive``, 1,000 per call), sending no message."""
        for start in range(0, count, BATCH):
            numbers = range(self.next_lead, self.next_lead + min(BATCH, count - start))
            self.next_lead = numbers.stop
            leads_receive(payloads=[_lead(n) for n in numbers], intake_source=None)

    def _route_waiting(self, *, batches: int | None = None) -> list[tuple[int, float]]:
        """Route waiting leads here, ``_route_batch`` after ``_route_batch`` of up to 1,000 (all of them, or
        ``batches`` batches): (leads, seconds) per batch. Each batch sends its notices' task as a worker does,
        to this run's own notify queue, which nothing reads: the sending is timed, the notices are not sent."""
        done: list[tuple[int, float]] = []
        while batches is None or len(done) < batches:
            clock = time.perf_counter()
            report = dispatch._route_batch(lead_ids=None, limit=BATCH)
            elapsed = time.perf_counter() - clock
            if not report.leads:
                break
            done.append((report.leads, elapsed))
        return done

    def _route_stretch(self, lead_ids: list[int]) -> tuple[int, float]:
        """Route these received leads as a worker routes an import's: one ``leads_route`` call, batches of 1,000
        (on PostgreSQL two threads taking turns, routing/turns.py); (leads, seconds)."""
        clock = time.perf_counter()
        report = dispatch.leads_route(lead_ids=lead_ids, batch_size=BATCH)
        return report.leads, time.perf_counter() - clock

    def _warm_up(self) -> None:
        """What a worker process does before it serves (leadrouter/warmup.py): the modules and tables every
        process loads at start (``static_load``: the holiday regions, which the first clock on a calendar with
        holidays would otherwise import, ~0.3 s, inside a timed batch), then one call of ``STRETCH`` batches
        routed as the timed ones are and not timed, which loads this process's copy of the coverage model and
        grows its heap to what two threads' batches hold at once (warmed with one batch, the first timed call
        took 696–820 ms against 627–660 for the second in every run; warmed so, alike). Then what is loaded is
        frozen out of the cycle collector's walks."""
        if not self.warmed_up:
            static_load()
            self._receive(STRETCH * BATCH)
            self._route_stretch(list(Lead.objects.filter(status=Lead.Status.RECEIVED).values_list("pk", flat=True)))
            long_lived_freeze()
            self.warmed_up = True

    def _routing_and_ceiling(self, routing: int, ceiling: int) -> dict[str, float | None]:
        """Parts (1) and (2), stretch for stretch: a routing call of ``STRETCH`` batches, then as many batches of
        each write ceiling (with and without foreign keys), and so on, the order turned round every other
        round. A call rather than a batch: its batches overlap in two threads. This machine's speed
        moves by a tenth and more from one second to the next (other tenants, its own background work);
        measured one after the other, each second of routing met a different machine from the ceiling's,
        and the share moved by ±0.05 from run to run with the code unchanged. Interleaved, both meet the
        same moments, and the share is the ratio of their totals."""
        self._warm_up()
        figures: dict[str, float | None] = {}
        ceilings: list[WriteCeiling] = []
        templates: list[int] = []
        with contextlib.ExitStack() as stack:
            if ceiling:
                # The rows to copy: those routing wrote for the last 1,000 of the warm-up's leads.
                templates = list(
                    Lead.objects.filter(status=Lead.Status.ASSIGNED, routed_at__isnull=False, lead_import__isnull=True)
                    .order_by("-pk")
                    .values_list("pk", flat=True)[:BATCH]
                )
                ceilings = [
                    stack.enter_context(
                        WriteCeiling(
                            template_lead_ids=templates,
                            leads=ceiling,
                            batch_size=BATCH,
                            foreign_keys=foreign_keys,
                            schema=f"{CEILING_SCHEMA}_{'fks' if foreign_keys else 'bare'}",
                        )
                    )
                    for foreign_keys in (True, False)
                ]
            stored = 0.0
            stretches: list[list[int]] = []
            if routing:
                clock = time.perf_counter()
                self._receive(routing)
                stored = time.perf_counter() - clock
                waiting = Lead.objects.filter(status=Lead.Status.RECEIVED).order_by("received_at", "pk")
                received = list(waiting.values_list("pk", flat=True))
                size = STRETCH * BATCH
                stretches = [received[start : start + size] for start in range(0, len(received), size)]
            parts = []
            if routing:
                parts.append(f"(1) routing in this process: {routing:,} leads in batches of {BATCH:,}, after a warm-up")
            if ceiling:
                parts.append(
                    f"(2) write ceiling: {ceiling:,} routed leads' rows written set-based in bare SQL, into tables "
                    "with the schema's foreign keys and without"
                )
            self.stdout.write(
                ";\n".join(parts) + (";\n    stretch for stretch, interleaved…" if routing and ceiling else "…")
            )
            timings = getattr(dispatch, "timings", None)
            if timings is not None:
                timings.reset()
            routed: list[tuple[int, float]] = []
            cpu = 0.0
            rounds = 0
            while stretches or not all(each.done for each in ceilings):
                steps: list[Any] = ["routing", *ceilings]
                if rounds % 2:
                    steps.reverse()
                for step in steps:
                    if step == "routing":
                        if stretches:
                            clock = time.process_time()
                            routed.append(self._route_stretch(stretches.pop(0)))
                            cpu += time.process_time() - clock
                    else:
                        for _ in range(STRETCH):
                            if not step.done:
                                step.batch()
                rounds += 1
        if routing:
            figures.update(self._routing_report(routing, stored, routed, cpu, timings))
        if ceiling:
            figures["write_ceiling_leads_per_s"] = self._ceiling_report(ceilings[0], templates)
            figures["write_ceiling_without_fks_leads_per_s"] = self._ceiling_report(ceilings[1], templates)
        if routing and ceiling:
            # Round by round, routing's stretch against the ceiling's (with foreign keys) batches of the same round.
            times = ceilings[0].times
            rounds_of_ceiling = [times[start : start + STRETCH] for start in range(0, len(times), STRETCH)]
            shares = [
                (leads / seconds) / (BATCH * len(batch_times) / sum(batch_times))
                for (leads, seconds), batch_times in zip(routed, rounds_of_ceiling, strict=False)
                if leads == STRETCH * BATCH and len(batch_times) == STRETCH
            ]
            if shares:
                self.stdout.write(
                    f"    routing ÷ ceiling, round by round ({len(shares)} rounds of {STRETCH} full batches each): "
                    + ", ".join(f"{share:.3f}" for share in shares)
                )
        return figures

    def _routing_report(
        self, count: int, stored: float, stretches: list[tuple[int, float]], cpu: float, timings: Any
    ) -> dict[str, float | None]:
        leads, seconds = sum(n for n, _ in stretches), sum(s for _, s in stretches)
        threads = getattr(settings, "LEADROUTER_ROUTING_THREADS", 1)
        how = "two threads taking turns" if threads > 1 else "one thread"
        self.stdout.write(
            f"    (1) stored as received through leads_receive in {stored:.1f} s ({count / stored:,.0f} leads/s)\n"
            f"    routed {leads:,} in {len(stretches)} leads_route calls of up to {STRETCH} batches ({how}), "
            f"{seconds:.2f} s: {leads / seconds:,.0f} leads/s; "
            f"per call {', '.join(f'{n:,} in {s * 1000:.0f} ms' for n, s in stretches)}\n"
            # This process's CPU is routing's Python; the rest of the time it waited on PostgreSQL.
            f"    per lead: {seconds / leads * 1e6:.0f} µs, of which {cpu / leads * 1e6:.0f} µs CPU in this process "
            f"and {(seconds - cpu) / leads * 1e6:.0f} µs waiting on the database"
        )
        lock_share = None
        if timings is None:
            self.stdout.write("    lock share: routing.dispatch.timings is not there; the figure is null")
        elif seconds:
            # Held, not waited for: from the lock's reads back to the commit, summed over the batches of both
            # threads, over the time routing took. Near 1, more workers would only queue for the lock.
            lock_share = timings.lock_seconds / seconds
            self.stdout.write(
                f"    routing lock held {lock_share:.0%} of the time (routing.dispatch.timings: "
                f"{timings.batches} batches, {timings.leads:,} leads, held {timings.lock_seconds:.2f} s "
                f"of {seconds:.2f} s)"
            )
            self._phases_report(timings)
        return {"routing_leads_per_s": leads / seconds, "lock_share": lock_share}

    def _phases_report(self, timings: Any) -> None:
        """Each phase of the batches, per lead: its wall time and this process's CPU in it (the rest it waited,
        mostly on the database). Where speed work starts: which phase costs what, and whether in Python."""
        phases, leads = getattr(timings, "phases", None), timings.leads
        if not phases or not leads:
            return
        names = [name for name in getattr(dispatch, "PHASES", ()) if name in phases]
        names += [name for name in phases if name not in names]
        lines = [f"{name} {phases[name][0] / leads * 1e6:.0f}/{phases[name][1] / leads * 1e6:.0f}" for name in names]
        self.stdout.write("    by phase, µs a lead (wall/CPU): " + ", ".join(lines))

    def _ceiling_report(self, ceiling: WriteCeiling, templates: list[int]) -> float:
        report = ceiling.report
        per_batch = [s * 1000 for s in report.batches]
        rows = ", ".join(f"{n} × {name}" for name, n in report.rows_per_lead.items())
        # What routing itself wrote for the same leads, so the two can be compared row for row.
        wrote = {
            "assignment": Assignment.objects.filter(lead__in=templates).count(),
            "SLA clock": LeadSla.objects.filter(lead__in=templates).count(),
            "notification": Notification.objects.filter(lead__in=templates).count(),
            "rep task": RepTask.objects.filter(lead__in=templates).count(),
        }
        self.stdout.write(
            "    (2) write ceiling, "
            + ("with the schema's foreign keys" if ceiling.foreign_keys else "without foreign keys")
            + f":\n    per lead: {rows}; contents copied from {report.templates:,} leads routed in the warm-up\n"
            "    how: tables created LIKE the real ones (indexes"
            + (", and the real foreign keys, deferred" if ceiling.foreign_keys else ", no foreign keys")
            + ") in a scratch schema, filled\n"
            f"    with {ceiling.leads:,} received leads; per batch of {BATCH:,}: COPY into staging tables, "
            "one UPDATE … FROM\n    for the leads, one INSERT … SELECT for each other table, commit\n"
            f"    {report.leads:,} leads in {len(report.batches)} batches, {report.seconds:.2f} s: "
            f"{report.leads_per_s:,.0f} leads/s ({1e6 / report.leads_per_s:.0f} µs per lead); "
            f"per batch p50 {statistics.median(per_batch):.0f} ms, "
            f"max {max(per_batch):.0f} ms\n"
            "    routing wrote per assigned lead: "
            + ", ".join(f"{n / len(templates):.2f} {name}" for name, n in wrote.items())
            + f" ({len(CEILING_NOTIFICATION_KINDS)} notifications in the ceiling)"
        )
        return report.leads_per_s

    def _backlog(self, sizes: Sizes) -> float:
        base, large, batches = sizes.backlog_base, sizes.backlog, sizes.backlog_batches
        self.stdout.write(
            f"(4) backlog: {batches} batches of {BATCH:,} routed in this process with {base:,}, then {large:,}, "
            "open leads in the database…"
        )
        self._warm_up()
        template = (
            Lead.objects.filter(status=Lead.Status.ASSIGNED, assignments__reason=Assignment.Reason.ROUTED)
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        if template is None:
            raise CommandError("No routed lead to copy for the backlog.")
        lead_table = connection.ops.quote_name(Lead._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS pg_temp.bench_lead, pg_temp.bench_assignment")
            cursor.execute(f"CREATE TEMPORARY TABLE bench_lead AS SELECT * FROM {lead_table} WHERE id = %s", [template])
            cursor.execute(
                "CREATE TEMPORARY TABLE bench_assignment AS SELECT * FROM "
                f"{connection.ops.quote_name(Assignment._meta.db_table)} WHERE lead_id = %s ORDER BY id LIMIT 1",
                [template],
            )
            # From an empty lead table (and everything that points at leads), so the open count is the only
            # difference between the two measures.
            cursor.execute(f"TRUNCATE {lead_table} CASCADE")
        rep_ids = list(Rep.objects.filter(active=True).order_by("pk").values_list("pk", flat=True))
        medians = []
        for size in (base, large):
            clock = time.monotonic()
            added = self._open_leads(size - Lead.objects.filter(external_id__startswith="backlog-").count(), rep_ids)
            filled = time.monotonic() - clock
            self._receive(batches * BATCH)
            with connection.cursor() as cursor:
                # As autovacuum would after a load this size: the planner knows the table it routes from.
                for model in (Lead, Assignment):
                    cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
                # And as the checkpointer long since would have for a backlog that grew over days: the load's
                # pages (~300 MB for 200,000 leads, twice shared_buffers here) written out now, not by the
                # checkpointer while the batches are timed.
                _checkpoint(cursor)
            times: list[float] = []
            started = timezone.now()
            for _ in range(batches):
                times.extend(seconds for _, seconds in self._route_waiting(batches=1))
                # Routed leads are closed, so the open count stays at ``size``: those the batch just routed, found
                # by their update time through its index. Found by what they are not (not a backlog lead), the
                # update read every open lead between two batches, 200,000 of them, and the next batch met a
                # cache full of them.
                Lead.objects.filter(updated_at__gte=started, status__in=Lead.OPEN_STATUSES).update(
                    status=Lead.Status.CLOSED
                )
            medians.append(statistics.median(times))
            self.stdout.write(
                f"    {size:,} open leads ({added:,} inserted set-based in {filled:.1f} s): per batch "
                f"p50 {medians[-1] * 1000:.0f} ms ({', '.join(f'{s * 1000:.0f}' for s in times)} ms)"
            )
        flatness = medians[1] / medians[0]
        self.stdout.write(f"    per-batch time with {large:,} ÷ with {base:,}: {flatness:.2f}")
        return flatness

    def _open_leads(self, count: int, rep_ids: list[int]) -> int:
        """``count`` more open (assigned) leads with their assignment rows, owned in turn by ``rep_ids``,
        received and assigned over the last 30 days: ``INSERT … SELECT generate_series`` from a routed
        lead's rows."""
        if count <= 0:
            return 0
        last_id = Lead.objects.aggregate(last=Max("pk"))["last"] or 0
        first = Lead.objects.filter(external_id__startswith="backlog-").count() + 1
        when = "%(now)s - interval '1 minute' * (g.n %% %(spread)s)"
        added = insert_from_template(
            Lead,
            source="FROM bench_lead AS t CROSS JOIN generate_series(%(first)s, %(last)s) AS g(n)",
            values={
                "email": "'open' || g.n || '@backlog' || (g.n %% 5000) || '.example'",
                "email_domain": "'backlog' || (g.n %% 5000) || '.example'",
                "external_id": "'backlog-' || g.n",
                "idempotency_key": "''",
                "intake_source_id": "NULL",
                "lead_import_id": "NULL",
                "duplicate_of_id": "NULL",
                "status": "'assigned'",
                "owner_id": "(%(reps)s::bigint[])[1 + g.n %% %(rep_count)s]",
                "received_at": when,
                "routed_at": when,
                "updated_at": when,
            },
            params={
                "first": first,
                "last": first + count - 1,
                "reps": rep_ids,
                "rep_count": len(rep_ids),
                "now": timezone.now(),
                "spread": BACKLOG_SPREAD_MINUTES,
            },
        )
        insert_from_template(
            Assignment,
            source=(
                f"FROM bench_assignment AS t CROSS JOIN {connection.ops.quote_name(Lead._meta.db_table)} AS l "
                "WHERE l.id > %(last_id)s AND l.external_id LIKE 'backlog-%%'"
            ),
            values={
                "lead_id": "l.id",
                "rep_id": "l.owner_id",
                "assigned_by_id": "NULL",
                "assigned_at": "l.routed_at",
                "ended_at": "NULL",
            },
            params={"last_id": last_id},
        )
        return added

    def _wait_until_idle(self) -> None:
        """Each run starts with an idle worker: the previous run's notifications sent."""
        clock = time.monotonic()
        # Leads routed in this process earlier sent no message: their notifications stay pending.
        unsent = Notification.objects.filter(
            status__in=[Notification.Status.PENDING, Notification.Status.SENDING], created_at__gte=self.stack_started
        )
        while unsent.exists():
            if time.monotonic() - clock > MAX_WAIT_SECONDS:
                self.stdout.write(f"    {unsent.count():,} notifications still unsent; going on")
                return
            time.sleep(0.2)
        if time.monotonic() - clock > 1:
            self.stdout.write(f"    (waited {time.monotonic() - clock:.1f} s for the worker to send the notifications)")

    # --- end to end ------------------------------------------------------------------------------------------

    def _bulk(self, base: tuple[str, int], raw_key: str, count: int) -> float:
        self.stdout.write(f"(a) bulk: posting {count:,} leads in batches of 1,000 from 2 clients…")
        first = FIRST_LEAD["bulk"]
        batches = [
            list(range(start, min(start + BATCH, first + count))) for start in range(first, first + count, BATCH)
        ]
        started = time.time()
        with ThreadPoolExecutor(2) as pool:
            client = _Clients(base, raw_key)
            lead_ids = [
                lead_id for ids in pool.map(lambda b: client.post([_lead(n) for n in b]), batches) for lead_id in ids
            ]
        posted = time.time() - started
        finished = _wait_until_routed(lead_ids)
        outcomes = Counter(Lead.objects.filter(pk__in=lead_ids).values_list("status", flat=True))
        self.stdout.write(
            f"    intake: {count / posted:,.0f} leads/s ({posted:.1f} s to post)\n"
            f"    end to end: {count / (finished - started):,.0f} leads/s "
            f"({finished - started:.1f} s from first POST to last lead routed)\n"
            f"    outcomes: {dict(outcomes)}"
        )
        return count / (finished - started)

    def _single(self, base: tuple[str, int], raw_key: str, rate: int, seconds: int) -> dict[str, float | None]:
        total = rate * seconds
        self.stdout.write(
            f"(b) single: {total:,} leads posted one by one at {rate}/s for {seconds} s, after {WARM_UP_SECONDS} s "
            "at the same rate that are not measured…"
        )
        # The first requests a web process's threads serve open their database connections and the first posts
        # to a fresh stack wait for them: a cold start, which this figure is not about.
        warm_up = _Poster(base, raw_key, FIRST_LEAD["warm_up"])
        _post_at_rate(warm_up, rate, rate * WARM_UP_SECONDS)
        warm_up.latencies()  # Until they are routed.
        poster = _Poster(base, raw_key, FIRST_LEAD["single"])
        achieved = _post_at_rate(poster, rate, total)
        latencies = poster.latencies()
        self.stdout.write(
            f"    POST → routed: p50 {statistics.median(latencies):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms, "
            f"max {latencies[-1]:.0f} ms (offered {rate}/s, completed {achieved:.0f}/s); {poster.stamped()}"
            + poster.note()
        )
        return {"single_p50_ms": statistics.median(latencies), "single_p99_ms": percentile(latencies, 0.99)}

    def _live_during_import(self, base: tuple[str, int], raw_key: str, count: int, rate: int) -> float | None:
        self.stdout.write(
            f"(c) live during an import: a {count:,}-lead CSV file through manage.py import_leads; single leads "
            f"posted at {rate}/s while its leads are routed…"
        )
        path = _csv_file(count)
        file_name = os.path.basename(path)
        clock = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "manage.py", "import_leads", path],
            cwd=settings.BASE_DIR,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            import_id = _wait_for(
                lambda: LeadImport.objects.filter(file_name=file_name).values_list("pk", flat=True).first(), process
            )
            # The import checks every row, then stores them all in one transaction: its leads appear at once.
            _wait_for(lambda: Lead.objects.filter(lead_import_id=import_id).exists() or None, process)
            stored = time.monotonic() - clock
            waiting = Lead.objects.filter(lead_import_id=import_id, status=Lead.Status.RECEIVED)
            poster = _Poster(base, raw_key, FIRST_LEAD["live"])
            started = time.monotonic()
            with ThreadPoolExecutor(16) as pool:
                n = 0
                while time.monotonic() - started < MAX_WAIT_SECONDS:
                    # The first lead goes out at once, while the import's leads are surely waiting.
                    if n and n % max(1, rate // 4) == 0 and not waiting.exists():
                        break
                    delay = started + n / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    pool.submit(poster.post)
                    n += 1
            routing_seconds = time.monotonic() - started
            left = waiting.count()
            if left:
                self.stdout.write(
                    f"    {left:,} import leads still waiting after {MAX_WAIT_SECONDS} s; posting stopped"
                )
            latencies = poster.latencies()
            if process.wait(MAX_WAIT_SECONDS) != 0:
                raise CommandError(f"import_leads failed; see {self.log.name}.")
        finally:
            _stop(process)
            os.unlink(path)
        imported = Lead.objects.filter(lead_import_id=import_id)
        window = poster.window()
        during = imported.filter(routed_at__range=window).count() if window else 0
        self.stdout.write(
            f"    import: {count:,} rows checked and stored in {stored:.1f} s; its leads routed by the worker in "
            f"about {routing_seconds:.1f} s; outcomes {dict(Counter(imported.values_list('status', flat=True)))}"
        )
        if not latencies:
            self.stdout.write("    no single lead was posted while the import's leads were routed; the figure is null")
            return None
        self.stdout.write(
            f"    {len(latencies):,} single leads posted while the import was routed ({during:,} import leads "
            f"routed between the first and the last POST): POST → routed p50 {statistics.median(latencies):.0f} ms, "
            f"p99 {percentile(latencies, 0.99):.0f} ms, max {latencies[-1]:.0f} ms; {poster.stamped()}" + poster.note()
        )
        return percentile(latencies, 0.99)

    # --- the end ---------------------------------------------------------------------------------------------

    def _summary(self, figures: dict[str, float | None]) -> None:
        self.stdout.write("Figures (target in brackets):")
        for name, value in figures.items():
            shown = "null (not measured)" if value is None else f"{_rounded(name, value):,}"
            target = ""
            if name in TARGETS:
                sign, goal = TARGETS[name]
                met = value is not None and (value >= goal if sign == ">=" else value <= goal)
                verdict = "met" if met else ("not measured" if value is None else "MISSED")
                target = f"[{'≥' if sign == '>=' else '≤'} {goal:,}: {verdict}]"
            self.stdout.write(f"    {name:<30} {shown:>20}  {target}")


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


class _Poster:
    """Single leads posted from several threads, and a watcher that sees each one routed.

    The watcher asks the database every ``WATCH_SECONDS`` which posted leads are no longer ``received``;
    a lead counts as routed at the start of the first query that sees it so (its commit came before
    that query began), so a latency is POST → routed as anyone reading the database sees it, whatever
    timestamps routing writes, and at most ``WATCH_SECONDS`` plus one query late.
    """

    def __init__(self, base: tuple[str, int], raw_key: str, first: int) -> None:
        self.client = _Clients(base, raw_key)
        self.next = first
        self.posted_at: dict[int, float] = {}
        self.answered_in: list[float] = []
        self.routed_at: dict[int, float] = {}
        self.lock = threading.Lock()
        self.posting = True
        self.failure: Exception | None = None
        self.unrouted = 0
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()

    def post(self) -> None:
        with self.lock:
            n, self.next = self.next, self.next + 1
        at = time.time()
        (lead_id,) = self.client.post(_lead(n))
        answered = time.time()
        with self.lock:
            self.posted_at[lead_id] = at
            self.answered_in.append((answered - at) * 1000)

    def window(self) -> tuple[datetime, datetime] | None:
        """From the first POST to the last."""
        if not self.posted_at:
            return None
        return _dt(min(self.posted_at.values())), _dt(max(self.posted_at.values()))

    def latencies(self) -> list[float]:
        """Milliseconds from POST to routed, sorted; call once posting is over. Waits until every lead is
        routed, or ``MAX_WAIT_SECONDS``: a lead still waiting then counts with the time it waited so far
        (``unrouted`` says how many), so the figures are lower bounds rather than lost."""
        self.posting = False
        self.watcher.join()
        if self.failure is not None:
            raise CommandError(f"Watching the leads failed: {self.failure!r}")
        gave_up = time.time()
        self.unrouted = len(self.posted_at) - len(self.routed_at)
        return sorted((self.routed_at.get(pk, gave_up) - at) * 1000 for pk, at in self.posted_at.items())

    def note(self) -> str:
        """What a reader must know about the latencies, if anything."""
        if not self.unrouted:
            return ""
        return (
            f"\n    {self.unrouted:,} of {len(self.posted_at):,} leads were still not routed {MAX_WAIT_SECONDS} s "
            "after the last POST: they count with the time waited, so the figures are lower bounds"
        )

    def stamped(self) -> str:
        """p50 and p99 from POST to the ``routed_at`` routing wrote on each lead (its decision time): beside
        the latencies seen, the gap shows how long a batch took from its decision to its commit."""
        stamps = dict(
            Lead.objects.filter(pk__in=list(self.posted_at), routed_at__isnull=False).values_list("pk", "routed_at")
        )
        stamped = [(stamp.timestamp() - self.posted_at[pk]) * 1000 for pk, stamp in stamps.items() if stamp]
        if not stamped:
            return "no routed_at stamps"
        answered = sorted(self.answered_in)
        return (
            f"to the leads' routed_at stamps p50 {statistics.median(stamped):.0f} ms, "
            f"p99 {percentile(stamped, 0.99):.0f} ms; POST answered p50 {statistics.median(answered):.0f} ms, "
            f"p99 {percentile(answered, 0.99):.0f} ms"
        )

    def _watch(self) -> None:
        deadline = None
        try:
            while True:
                with self.lock:
                    waiting = [pk for pk in self.posted_at if pk not in self.routed_at]
                if not waiting and not self.posting:
                    return
                if not self.posting:
                    deadline = deadline or time.monotonic() + MAX_WAIT_SECONDS
                    if time.monotonic() > deadline:
                        return
                if waiting:
                    asked = time.time()
                    # Plain SQL: a hundred times a second, the ORM's compiling of the query took ~10% of a core
                    # away from the stack being measured, and held this process's posting threads meanwhile.
                    with connection.cursor() as cursor:
                        cursor.execute(_ROUTED_AMONG, [waiting, Lead.Status.RECEIVED.value])
                        for (pk,) in cursor.fetchall():
                            self.routed_at[pk] = asked
                time.sleep(WATCH_SECONDS)
        except Exception as error:  # Reported by latencies(), in the main thread.
            self.failure = error
        finally:
            connection.close()  # This thread's own connection.


def _cache_url() -> str:
    """The stack's cache (the API keys' rate limits live there): the configured CACHE_URL, else, with a Redis
    broker, a Redis cache in the broker's database, as the README's production layout has one. The single-machine
    default, files under var/cache, wrote a file per POST: ~15% of the web's CPU for a single lead."""
    configured = os.environ.get("CACHE_URL", "")
    if configured or not settings.CELERY_BROKER_URL.startswith("redis://"):
        return configured
    return "rediscache://" + settings.CELERY_BROKER_URL.removeprefix("redis://")


# Which of these leads are no longer waiting to be routed (the watcher's question).
_ROUTED_AMONG = f"SELECT id FROM {Lead._meta.db_table} WHERE id = ANY(%s) AND status <> %s"


def _post_at_rate(poster: _Poster, rate: int, count: int) -> float:
    """Post ``count`` single leads at ``rate`` per second from 16 threads; the rate achieved."""
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        for n in range(count):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(poster.post)
    return count / (time.monotonic() - started)


def _sizes(options: dict[str, Any]) -> Sizes:
    """Each size as given, else the quick or full default; a skipped part's size is 0."""
    defaults = QUICK if options["quick"] else FULL
    chosen = {
        field.name: options[field.name] if options[field.name] is not None else getattr(defaults, field.name)
        for field in fields(Sizes)
    }
    for part, name in SKIPS.items():
        if options[f"skip_{part}"]:
            chosen[name] = 0
    if any(value < 0 for value in chosen.values()) or chosen["rate"] < 1 or chosen["live_rate"] < 1:
        raise CommandError("Sizes are whole numbers of at least 0 (rates at least 1).")
    return Sizes(**chosen)


@contextlib.contextmanager
def _queues_deleted(names: list[str]) -> Iterator[None]:
    """The block, then ``_queues_delete(names)``, whatever happened in it."""
    try:
        yield
    finally:
        _queues_delete(names)


def _queues_delete(names: list[str]) -> None:
    """Remove this run's queues from the broker: a lead's message may be left over when another task's batch
    routed the lead first, and nobody will listen to these queues again. Each is declared as Celery
    declares it (a direct exchange of the same name), so the broker client knows what to delete."""
    with app.connection_for_write() as broker:
        for name in names:
            queue = Queue(name, Exchange(name), routing_key=name, channel=broker.default_channel)
            queue.declare()
            queue.delete()
            queue.exchange.delete()


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


def _csv_file(count: int) -> str:
    """A CSV file of ``count`` leads as a RevOps export has them: the API's fields, a form question."""
    question = "What are you looking for?"
    columns = ["email", "first_name", "last_name", "company", "country", "employees", "industry", "source"]
    with tempfile.NamedTemporaryFile(
        "w", suffix=".csv", prefix="bench-import-", delete=False, newline="", encoding="utf-8"
    ) as file:
        writer = csv.writer(file)
        writer.writerow([*columns, "external_id", f"form:{question}", "page_history"])
        for n in range(FIRST_LEAD["csv"], FIRST_LEAD["csv"] + count):
            lead = _lead(n)
            writer.writerow(
                [
                    *(lead[column] for column in columns),
                    f"bench-csv-{n}",
                    lead["form_answers"][question],
                    json.dumps(lead["page_history"]),
                ]
            )
    return file.name


def _rounded(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    return round(value, 3) if name in ("backlog_flatness", "lock_share", "share_of_ceiling") else round(value, 1)


def _dt(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.get_current_timezone())


def _checkpoint(cursor: Any) -> None:
    """``CHECKPOINT``, where this database user may (superusers, and ``pg_checkpoint``'s members)."""
    cursor.execute(
        "SELECT rolsuper OR pg_has_role(current_user, 'pg_checkpoint', 'MEMBER') FROM pg_roles "
        "WHERE rolname = current_user"
    )
    if cursor.fetchone()[0]:
        cursor.execute("CHECKPOINT")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


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


def _wait_for(found: Any, process: subprocess.Popen[bytes]) -> Any:
    """Poll ``found()`` until it answers something other than None, while ``process`` runs."""
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    while time.monotonic() < deadline:
        answer = found()
        if answer is not None:
            return answer
        if process.poll() is not None:
            raise CommandError(f"The import ended (exit status {process.returncode}) before its leads were stored.")
        time.sleep(0.1)
    raise CommandError(f"Nothing happened within {MAX_WAIT_SECONDS} s.")


def _wait_until_routed(lead_ids: list[int]) -> float:
    """Wait until none of these leads is ``received``; returns the time (``time.time()``) when the query
    that first saw it began."""
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    # By id range, through the partial index on received leads: nothing else is posted meanwhile, and a
    # list of thousands of ids would make each question cost more than the wait's resolution.
    waiting = Lead.objects.filter(status=Lead.Status.RECEIVED, pk__range=(min(lead_ids), max(lead_ids)))
    while True:
        asked = time.time()
        if not waiting.exists():
            return asked
        if time.monotonic() > deadline:
            raise CommandError("Leads were still waiting after 10 minutes; is the worker running?")
        time.sleep(WATCH_SECONDS)
