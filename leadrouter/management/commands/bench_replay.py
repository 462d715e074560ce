"""Measure ``manage.py coverage replay`` over many past leads on PostgreSQL.

    manage.py bench_replay [--leads 100000] [--days 30] [--keep]

It creates a scratch database next to the configured one (``<name>_bench_replay``), migrates it, loads the demo
organisation without its history (working hours, time off and caps kept as they are), and makes ``--leads``
past leads spread over ``--days`` days: each one decided by the engine at its own time, in order, as routing
would have decided it, and written set-based with its assignment history (a third of the assigned leads
closed a few hours to days later). Then it measures, in this order:

(1) ``coverage replay live --json`` over the whole period: wall time of the command, the leads replayed,
    and how many changed (the live model over its own history: 0 expected);
(2) ``coverage replay FILE --json`` with a draft that moves Austria to another queue: wall time, leads
    changed, and the leads/s of the replay itself.

Readable lines come first; the last line printed is one JSON object with every figure. The scratch database
is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import io
import json
import os
import random
import tempfile
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from leadrouter.bench import scratch_database
from leadrouter.coverage import dump_yaml, export_coverage
from leadrouter.demo.loader import demo_load
from leadrouter.replay import _counted, _Loads, _next_midnight, _today  # The replay's own load model.
from routing.dispatch import STATUS_BY_OUTCOME
from routing.engine import AccountFacts, LeadFacts, apply_decision, route_lead, with_rep_loads
from routing.models import Assignment, Lead, Queue
from routing.selectors import routing_snapshot
from territories.coverage_version import coverage_version_bump
from territories.models import Account, Territory

# What a bench lead may look like: countries the demo territories cover, and a few they do not.
COUNTRIES = ("DE", "DE", "DE", "AT", "CH", "FR", "FR", "GB", "GB", "US", "US", "US", "NL", "SE", "ES", "IT", "BR")
INDUSTRIES = ("software", "manufacturing", "finance", "healthcare", "retail", "education", "")
SIZE_BANDS = ((5, "1-10"), (30, "11-50"), (120, "51-200"), (600, "201-1000"), (3000, "1001-5000"), (9000, "5001+"))
PRODUCTS = ("", "", "routing", "analytics", "platform")
SOURCES = ("web", "web", "web", "partner", "event", "ads")


class Command(BaseCommand):
    help = "Measure coverage replay over many past leads on a scratch PostgreSQL database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--leads", type=int, default=100_000, help="Past leads to make (default 100,000).")
        parser.add_argument("--days", type=int, default=30, help="Over how many past days (default 30).")
        parser.add_argument("--keep", action="store_true", help="Keep the scratch database for a look afterwards.")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("bench_replay measures PostgreSQL: set DATABASE_URL=postgres://… and run it again.")
        if options["leads"] < 1 or options["days"] < 1:
            raise CommandError("--leads and --days are at least 1.")
        name = f"{settings.DATABASES['default']['NAME']}_bench_replay"
        figures: dict[str, Any] = {"leads": options["leads"], "days": options["days"], "cpus": os.cpu_count()}
        with override_settings(DEBUG=False), scratch_database(name, keep=options["keep"], stdout=self.stdout):
            self.stdout.write(f"PostgreSQL database {name}, {os.cpu_count()} CPU(s); load average {_load()}")
            call_command("migrate", verbosity=0)
            demo_load(history=False)
            now = timezone.now()
            started = time.perf_counter()
            made = self._history(options["leads"], now - timedelta(days=options["days"]), now)
            figures["history_seconds"] = round(time.perf_counter() - started, 1)
            self.stdout.write(f"Made {made:,} past leads in {figures['history_seconds']} s.")
            figures.update(self._replay("live", "live", options["days"] + 1))
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as draft:
                draft.write(dump_yaml(_austria_elsewhere(export_coverage())))
            try:
                figures.update(self._replay("draft", draft.name, options["days"] + 1))
            finally:
                os.unlink(draft.name)
            figures["load_average_after"] = _load()
        target = figures["draft_command_seconds"] <= 10 and figures["live_command_seconds"] <= 10
        self.stdout.write(
            f"Target: coverage replay over {figures['leads']:,} leads in ≤ 10 s: {'met' if target else 'MISSED'}."
        )
        self.stdout.write(json.dumps(figures))

    def _replay(self, label: str, source: str, days: int) -> dict[str, Any]:
        out = io.StringIO()
        started = time.perf_counter()
        call_command("coverage", "replay", source, "--since", str(days), "--json", stdout=out)
        seconds = time.perf_counter() - started
        report = json.loads(out.getvalue())
        replay_seconds = report["timings"]["replay_seconds"]
        self.stdout.write(
            f"({label}) coverage replay {'live' if source == 'live' else 'DRAFT.yaml'} --json: {seconds:.2f} s "
            f"for {report['leads']:,} leads (reading {report['timings']['load_seconds']} s, replaying "
            f"{replay_seconds} s = {report['leads'] / max(replay_seconds, 1e-9):,.0f} leads/s); "
            f"{report['changed_count']:,} changed, {report['unexplained']:,} of them unexplained; this process's "
            f"CPU {report['timings']['load_cpu_seconds']} + {report['timings']['replay_cpu_seconds']} s."
        )
        return {
            f"{label}_command_seconds": round(seconds, 2),
            f"{label}_load_seconds": report["timings"]["load_seconds"],
            f"{label}_replay_seconds": replay_seconds,
            f"{label}_load_cpu_seconds": report["timings"]["load_cpu_seconds"],
            f"{label}_replay_cpu_seconds": report["timings"]["replay_cpu_seconds"],
            f"{label}_leads": report["leads"],
            f"{label}_changed": report["changed_count"],
            f"{label}_unexplained": report["unexplained"],
        }

    def _history(self, count: int, since: datetime, until: datetime) -> int:
        """``count`` leads decided by the engine at their own times in order, written set-based."""
        rng = random.Random(12)
        # Round-robin pointers start where a new model's do; the history below is all there is.
        Queue.objects.update(rr_pointer=0)
        coverage_version_bump()
        snapshot = routing_snapshot(now=since)
        accounts = [
            AccountFacts(id=pk, name=name, tier=tier, is_customer=customer, owner_rep_id=owner, territory_id=territory)
            for pk, name, tier, customer, owner, territory in Account.objects.values_list(
                "pk", "name", "tier", "is_customer", "owner_id", "territory_id"
            )
        ]
        territories = Territory.objects.count()
        step = (until - since) / count
        leads: list[Lead] = []
        routed: list[tuple[int | None, int | None, datetime] | None] = []
        # Loads move as routing saw them: leads close, and each rep's day count starts again at their midnight.
        loads = _Loads({})
        today: dict[int, tuple[date, int]] = {}
        zones = {rep.id: ZoneInfo(rep.time_zone or "UTC") for rep in snapshot.reps}
        next_midnight = _next_midnight(since, zones.values())
        for number in range(count):
            at = since + step * number
            touched = loads.close_until(at)
            if at >= next_midnight:
                touched.update(rep_id for rep_id in today if today[rep_id][1])
                next_midnight = _next_midnight(at, zones.values())
            if touched:
                snapshot = with_rep_loads(
                    snapshot,
                    {rep_id: (loads.open.get(rep_id, 0), _today(today, rep_id, at, zones)) for rep_id in touched},
                )
            employees, band = rng.choice(SIZE_BANDS)
            account = rng.choice(accounts) if accounts and rng.random() < 0.15 else None
            country = rng.choice(COUNTRIES)
            facts = LeadFacts(
                email=f"lead{number}@prospect{number % 5000}.example",
                email_domain=f"prospect{number % 5000}.example",
                company=f"Prospect {number % 5000}",
                country=country,
                industry=rng.choice(INDUSTRIES),
                employees=employees,
                size_band=band,
                annual_revenue=Decimal(employees * 150_000),
                product_interest=rng.choice(PRODUCTS),
                source=rng.choice(SOURCES),
                score=rng.randrange(0, 100),
                account=account,
            )
            decision = route_lead(facts, snapshot, now=at)
            snapshot = apply_decision(snapshot, decision)
            closed = decision.outcome == "assigned" and rng.random() < 0.33
            closed_at = at + timedelta(hours=rng.randrange(2, 96)) if closed else None
            if decision.outcome == "assigned" and decision.rep_id is not None:
                loads.add(decision.rep_id, closed_at)
                today[decision.rep_id] = _counted(today, decision.rep_id, at, zones)
            status = STATUS_BY_OUTCOME[decision.outcome]
            leads.append(
                Lead(
                    email=facts.email,
                    email_domain=facts.email_domain,
                    company=facts.company,
                    country=country,
                    industry=facts.industry,
                    employees=employees,
                    size_band=band,
                    annual_revenue=facts.annual_revenue,
                    product_interest=facts.product_interest,
                    source=facts.source,
                    score=facts.score,
                    account_id=account.id if account else None,
                    status=Lead.Status.CLOSED if closed else status,
                    owner_id=decision.rep_id,
                    queue_id=decision.queue_id,
                    territory_id=decision.territory_id,
                    rule_id=decision.rule_id,
                    routed_at=at,
                    closed_at=closed_at,
                    routing_attempts=1,
                )
            )
            placed = decision.outcome in ("assigned", "queued")
            routed.append((decision.rep_id, decision.queue_id, at) if placed else None)
        self.stdout.write(f"Decided {count:,} leads over {territories} territories; writing them…")
        Lead.objects.bulk_create(leads, batch_size=5000)
        Assignment.objects.bulk_create(
            [
                Assignment(lead_id=lead.pk, rep_id=item[0], queue_id=item[1], assigned_at=item[2])
                for lead, item in zip(leads, routed, strict=True)
                if item is not None
            ],
            batch_size=5000,
        )
        # received_at is set on insert: put it back at routing time, so the order is the routing order.
        with connection.cursor() as cursor:
            cursor.execute("UPDATE routing_lead SET received_at = routed_at WHERE routed_at IS NOT NULL")
            cursor.execute("ANALYZE")
        return count


def _austria_elsewhere(document: dict[str, Any]) -> dict[str, Any]:
    """The demo document with Austria's territories served by the catch-all's first other queue: a draft
    that moves one region to another queue."""
    queues = [queue["name"] for queue in document.get("queues", []) if not queue.get("catch_all")]
    target = queues[-1]
    for territory in document.get("territories", []):
        countries = territory.get("criteria", {}).get("countries", [])
        if countries == ["AT"] or territory.get("name", "").lower().startswith("austria"):
            territory["queue"] = target
            territory.pop("rep", None)
    return document


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())
