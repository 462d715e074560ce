"""Soak a running Lead Router: post single leads at a steady rate for minutes and watch what it holds.

    manage.py soak_intake --url http://127.0.0.1:8000 --key lr_demo_website_form_key --rate 30 --seconds 180

Run it against ``make run`` (or a production layout) with the same ``DATABASE_URL`` the stack uses. Every
second it samples the database's open connections (PostgreSQL's ``pg_stat_activity``) and, for each
``--pid``, the process tree's resident memory and open file handles. At the end it waits for the posted
leads to be routed and prints the answers by status code, the latency of the POSTs, the largest number
of connections seen and the memory and handles at the start and at the end. The last line is the same
as one JSON object. Exit status 1 when any POST answered 5xx or failed, or a lead was not routed.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from routing.models import Lead

# How long the routed check waits without any lead leaving "received" before it gives up.
ROUTED_STALL_SECONDS = 120


@dataclass
class _Samples:
    connections: list[int] = field(default_factory=list)
    memory_kb: dict[int, list[int]] = field(default_factory=dict)
    handles: dict[int, list[int]] = field(default_factory=dict)


class Command(BaseCommand):
    help = "Post leads to a running server at a steady rate and report connections, memory and handles."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="The running server.")
        parser.add_argument("--key", required=True, help="An intake API key with the leads:write scope.")
        parser.add_argument("--rate", type=int, default=30, help="Leads posted per second.")
        parser.add_argument("--seconds", type=int, default=180, help="How long to post.")
        parser.add_argument(
            "--pid",
            type=int,
            action="append",
            default=[],
            help="A process whose tree's memory and open files to watch (repeat for web, worker, beat).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["rate"] < 1 or options["seconds"] < 1:
            raise CommandError("--rate and --seconds must be at least 1.")
        target = urlsplit(options["url"])
        if target.hostname not in {"127.0.0.1", "localhost", "::1"}:
            raise CommandError("The soak only posts to this machine (127.0.0.1, localhost or ::1).")
        base = (target.hostname, target.port or 80)
        run = uuid.uuid4().hex[:8]
        samples = _Samples()
        stop = threading.Event()
        sampler = threading.Thread(target=_sample, args=(samples, options["pid"], stop), daemon=True)
        sampler.start()

        total = options["rate"] * options["seconds"]
        self.stdout.write(f"Posting {total:,} leads at {options['rate']}/s for {options['seconds']} s to {base}…")
        answers: Counter[str] = Counter()
        latencies: list[float] = []
        lead_ids: list[int] = []
        lock = threading.Lock()
        local = threading.local()
        headers = {"Authorization": f"Token {options['key']}", "Content-Type": "application/json"}

        def post(n: int) -> None:
            body = json.dumps(_lead(run, n))
            started = time.monotonic()
            try:
                if not hasattr(local, "connection"):
                    local.connection = http.client.HTTPConnection(*base, timeout=30)
                local.connection.request("POST", "/api/v1/leads/", body, headers)
                response = local.connection.getresponse()
                data = response.read()
                code = str(response.status)
            except (OSError, http.client.HTTPException) as error:
                local.__dict__.pop("connection", None)
                code, data = f"error: {error.__class__.__name__}", b""
            elapsed = (time.monotonic() - started) * 1000
            with lock:
                answers[code] += 1
                latencies.append(elapsed)
                if code in {"200", "201"}:
                    lead_ids.append(json.loads(data)["id"])

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            for n in range(total):
                delay = started + n / options["rate"] - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(post, n)
        posting_seconds = time.monotonic() - started
        still_received = _wait_until_routed(lead_ids)
        time.sleep(2)  # One more sample after the load, to see connections fall back.
        stop.set()
        sampler.join()

        latencies.sort()
        failures = sum(count for code, count in answers.items() if not code.startswith(("2", "4")))
        report = {
            "posted": total,
            "answers": dict(sorted(answers.items())),
            "server_errors_or_failures": failures,
            "achieved_rate_per_s": round(total / posting_seconds, 1),
            "post_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
            "post_p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 1) if latencies else None,
            "still_received": still_received,
            "db_connections_max": max(samples.connections, default=None),
            "db_connections_end": samples.connections[-1] if samples.connections else None,
            "processes": {
                str(pid): {
                    "rss_kb_start": samples.memory_kb[pid][0],
                    "rss_kb_end": samples.memory_kb[pid][-1],
                    "rss_kb_max": max(samples.memory_kb[pid]),
                    "open_files_start": samples.handles[pid][0],
                    "open_files_end": samples.handles[pid][-1],
                    "open_files_max": max(samples.handles[pid]),
                }
                for pid in options["pid"]
                if samples.memory_kb.get(pid)
            },
        }
        self.stdout.write(f"    answers: {report['answers']}")
        self.stdout.write(
            f"    POST latency: p50 {report['post_p50_ms']} ms, p99 {report['post_p99_ms']} ms; "
            f"achieved {report['achieved_rate_per_s']}/s"
        )
        self.stdout.write(
            f"    database connections: max {report['db_connections_max']}, "
            f"at the end {report['db_connections_end']}; leads still received: {still_received}"
        )
        for pid, figures in report["processes"].items():
            self.stdout.write(
                f"    process tree {pid}: RSS {figures['rss_kb_start']:,} → {figures['rss_kb_end']:,} kB "
                f"(max {figures['rss_kb_max']:,}); open files {figures['open_files_start']} → "
                f"{figures['open_files_end']} (max {figures['open_files_max']})"
            )
        self.stdout.write(json.dumps(report))
        if failures or still_received:
            raise CommandError("The soak saw server errors, failed requests or unrouted leads.")


def _lead(run: str, n: int) -> dict[str, Any]:
    countries = ["Germany", "USA", "France", "United Kingdom", "Austria", "Canada"]
    return {
        "email": f"soak{n}@soak-{run}.example",
        "first_name": "Sam",
        "last_name": f"Soak {n}",
        "company": f"Soak {n % 400} GmbH",
        "country": countries[n % len(countries)],
        "employees": [12, 80, 450, 2400][n % 4],
        "source": "Demo request" if n % 10 == 0 else "Contact us",
        "external_id": f"soak-{run}-{n}",
    }


def _connections() -> int | None:
    """Open connections to this database, other than the soak's own."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _process_figures(pid: int) -> tuple[int, int] | None:
    rss = handles = 0
    for member in _tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
            rss += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            handles += len(os.listdir(f"/proc/{member}/fd"))
        except (OSError, StopIteration):
            continue
    return (rss, handles) if rss else None


def _sample(samples: _Samples, pids: list[int], stop: threading.Event) -> None:
    try:
        while True:
            count = _connections()
            if count is not None:
                samples.connections.append(count)
            for pid in pids:
                figures = _process_figures(pid)
                if figures is not None:
                    samples.memory_kb.setdefault(pid, []).append(figures[0])
                    samples.handles.setdefault(pid, []).append(figures[1])
            if stop.wait(1.0):
                return
    finally:
        connection.close()


def _wait_until_routed(lead_ids: list[int]) -> int:
    """Wait while leads leave "received"; give up only when none has left it for a while. Returns how many wait."""
    waiting = Lead.objects.filter(pk__in=lead_ids, status=Lead.Status.RECEIVED).count()
    last_progress = time.monotonic()
    while waiting and time.monotonic() - last_progress < ROUTED_STALL_SECONDS:
        time.sleep(0.5)
        now_waiting = Lead.objects.filter(pk__in=lead_ids, status=Lead.Status.RECEIVED).count()
        if now_waiting < waiting:
            last_progress = time.monotonic()
        waiting = now_waiting
    return waiting
