"""Measure the escalation sweep on PostgreSQL over a million open clocks.

    manage.py bench_sla [--leads 1000000] [--due-share 0.015] [--keep]

It creates a scratch database next to the configured one (``<name>_slabench``),
migrates it and fills it in SQL (``INSERT … SELECT generate_series``, not the ORM
row by row): a few reps in one queue, one policy with one step (remind the rep),
``--leads`` open assigned leads each with a clock, of which ``--due-share`` have
their step in the past and the rest in the future; then ``VACUUM ANALYZE``.
Mail goes to Django's in-memory backend. It prints:

(a) the sweep that fires every due step: total seconds, batches, per-batch p50
    (target: at most 1 s in all);
(b) the idle sweep when nothing is due: median of 20 runs (target: at most 20 ms);
and the plan of the claim query, which should scan the partial index
``leadsla_due_step_idx``.

The scratch database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import gc
import statistics
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, models, transaction
from django.test.utils import override_settings
from django.utils import timezone

from leadrouter.bench import scratch_database
from routing.models import Lead, Queue, QueueMembership
from sla.models import EscalationStep, LeadSla, SlaPolicy
from sla.sweep import claim_queryset, escalations_sweep
from territories.models import Rep

REPS = 4
IDLE_RUNS = 20


class Command(BaseCommand):
    help = "Benchmark the SLA escalation sweep on PostgreSQL over many open clocks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--leads", type=int, default=1_000_000, help="Open assigned leads with a clock.")
        parser.add_argument(
            "--due-share", type=float, default=0.015, help="Share of clocks whose next step is due (0.015 = 1.5%%)."
        )
        parser.add_argument("--batch-size", type=int, default=500, help="Clocks per sweep transaction.")
        parser.add_argument("--keep", action="store_true", help="Keep the scratch database for a look afterwards.")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("bench_sla measures PostgreSQL: set DATABASE_URL=postgres://… and run it again.")
        if not 0 <= options["due_share"] <= 1:
            raise CommandError("--due-share is a share between 0 and 1, such as 0.015.")
        if options["leads"] < 1:
            raise CommandError("--leads must be at least 1.")
        bench_db = f"{settings.DATABASES['default']['NAME']}_slabench"
        with scratch_database(bench_db, keep=options["keep"], stdout=self.stdout):
            now = timezone.now()
            due = self._fill(options["leads"], options["due_share"], now)
            with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
                self._measure(now, due, options["batch_size"])

    # --- set-up ---------------------------------------------------------------------------------------------

    def _fill(self, count: int, due_share: float, now: datetime) -> int:
        """Minimal valid rows: reps in one queue, one policy with one reminder, the leads and their clocks."""
        self.stdout.write(f"Setting up {count:,} open leads with clocks in the scratch database…")
        started = time.monotonic()
        call_command("migrate", verbosity=0)
        from django.contrib.auth import get_user_model

        queue = Queue.objects.create(name="Bench inbound")
        reps = []
        for n in range(REPS):
            user = get_user_model().objects.create(username=f"bench-rep-{n}", email=f"bench-rep-{n}@example.com")
            reps.append(Rep.objects.create(user=user, time_zone="UTC", max_open_leads=10_000_000))
            QueueMembership.objects.create(queue=queue, rep=reps[-1], position=n)
        policy = SlaPolicy.objects.create(name="Bench", is_default=True, first_touch_minutes=60)
        step = EscalationStep.objects.create(
            policy=policy, position=1, when=EscalationStep.When.PERCENT_OF_TARGET, percent=50, action="remind_rep"
        )
        # Every 10,000th slice of ids: the first ``due_per_10k`` of each are due, spread over the table.
        due_per_10k = round(due_share * 10_000)
        rep_ids = "ARRAY[" + ",".join(str(rep.pk) for rep in reps) + "]"
        _insert_select(
            Lead,
            "FROM generate_series(1, %(count)s) AS g(n)",
            {
                "email": "'lead' || g.n || '@prospect.example'",
                "email_domain": "'prospect.example'",
                "company": "'Prospect ' || g.n",
                "status": "'assigned'",
                "owner_id": f"({rep_ids})[1 + g.n %% {REPS}]",
                "queue_id": str(queue.pk),
                "routed_at": "%(started)s",
            },
            {"count": count, "started": now - timedelta(minutes=40)},
        )
        _insert_select(
            LeadSla,
            "FROM routing_lead AS l WHERE l.status = 'assigned'",
            {
                "lead_id": "l.id",
                "policy_id": str(policy.pk),
                "started_at": "%(started)s",
                "due_at": "%(started)s + interval '60 minutes'",
                "next_step_id": str(step.pk),
                # Due: up to 20 minutes ago; the rest: up to 10 hours ahead.
                "next_step_at": (
                    f"CASE WHEN l.id %% 10000 < {due_per_10k} "
                    "THEN %(now)s - interval '1 second' * (1 + l.id %% 1200) "
                    "ELSE %(now)s + interval '1 second' * (60 + l.id %% 36000) END"
                ),
            },
            {"started": now - timedelta(minutes=40), "now": now},
        )
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        due = LeadSla.objects.filter(touched_at__isnull=True, next_step_at__lte=now).count()
        self.stdout.write(
            f"    {count:,} leads and clocks, {due:,} due ({due / count:.1%}), in {time.monotonic() - started:.1f} s"
        )
        return due

    # --- runs ------------------------------------------------------------------------------------------------

    def _measure(self, now: datetime, due: int, batch_size: int) -> None:
        from django.core import mail

        with transaction.atomic():
            plan = claim_queryset(now=now, limit=batch_size).explain()
        self.stdout.write("Claim plan:\n" + "\n".join(f"    {line}" for line in plan.splitlines()))
        if "leadsla_due_step_idx" not in plan:
            self.stdout.write(self.style.WARNING("    The claim does not use leadsla_due_step_idx."))

        mail.outbox = []
        # Set-up (migrations, model state) leaves many long-lived objects; keep the collector from rescanning them.
        gc.collect()
        gc.freeze()
        self.stdout.write(f"(a) sweep of {due:,} due steps in batches of {batch_size}…")
        started = time.perf_counter()
        report = escalations_sweep(now=now, batch_size=batch_size, budget_seconds=600)
        total = time.perf_counter() - started
        left = LeadSla.objects.filter(touched_at__isnull=True, next_step_at__lte=now).count()
        batches = report.batch_seconds
        self.stdout.write(
            f"    {report.total_fired:,} steps fired {dict(report.fired)} in {total:.3f} s "
            f"({report.total_fired / total:,.0f}/s), {len(batches)} batches, "
            f"per batch p50 {statistics.median(batches) * 1000:.1f} ms, max {max(batches) * 1000:.1f} ms; "
            f"{len(mail.outbox):,} mails; {left} still due"
            if batches
            else "    nothing was due"
        )
        self.stdout.write(
            f"    of which sending mail after commit (locmem): {report.mail_seconds:.3f} s; "
            f"sweep without it: {total - report.mail_seconds:.3f} s"
        )
        self.stdout.write(f"    target ≤ 1 s: {'met' if total <= 1 else 'MISSED'}")

        idle = []
        for _ in range(IDLE_RUNS):
            clock = time.perf_counter()
            escalations_sweep(now=now)
            idle.append(time.perf_counter() - clock)
        median = statistics.median(idle) * 1000
        self.stdout.write(
            f"(b) idle sweep: median {median:.2f} ms of {IDLE_RUNS} runs (min {min(idle) * 1000:.2f}, "
            f"max {max(idle) * 1000:.2f}); target ≤ 20 ms: {'met' if median <= 20 else 'MISSED'}"
        )


def _insert_select(model: type[models.Model], source: str, values: dict[str, str], params: dict[str, Any]) -> None:
    """``INSERT INTO <model> (every column) SELECT … <source>``: ``values`` gives SQL per column; every other
    column gets the field's default (``now`` for the automatic timestamps), so the rows are valid model rows."""
    columns, expressions = [], []
    for model_field in model._meta.concrete_fields:
        if model_field.primary_key:
            continue
        column = model_field.column
        columns.append(connection.ops.quote_name(column))
        if column in values:
            expressions.append(values[column])
            continue
        key = f"default_{column}"
        default = model_field.get_default()
        if default is None and not model_field.null:
            if not isinstance(model_field, models.DateTimeField):
                raise CommandError(f"{model.__name__}.{model_field.name} needs a value in the bench.")
            default = timezone.now()
        params[key] = model_field.get_db_prep_save(default, connection)
        expressions.append(f"%({key})s")
    sql = (
        f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(expressions)} {source}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
