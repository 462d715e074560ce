"""Recount every rep's open leads and today's new leads from scratch and compare them with the counters.

    manage.py loads_check [--fix]

Routing reads each rep's load from counters (routing.RepLoad) that the ownership layer keeps in the same
transaction as every ownership change (routing/ownership.py). This command counts the same figures from
the leads and the assignment history and lists any rep whose counter differs; it exits 1 when there is
drift. ``--fix`` sets the counters to the count. Rows changed by hand in the database, outside the
application, are the usual cause.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from routing.ownership import loads_recount
from territories.models import Rep


class Command(BaseCommand):
    help = "Recount reps' open leads and today's new leads and report (or --fix) drift from the counters."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fix", action="store_true", help="Set the counters to the recount.")

    def handle(self, *args: Any, **options: Any) -> None:
        drift = loads_recount(now=timezone.now(), fix=options["fix"])
        if not drift:
            self.stdout.write(f"No drift: the load counters of all {Rep.objects.count()} reps equal a recount.")
            return
        names = dict(Rep.objects.filter(pk__in=[d.rep_id for d in drift]).values_list("id", "user__username"))
        for d in drift:
            self.stdout.write(
                f"{names.get(d.rep_id, d.rep_id)}: open leads {d.open_leads} (recount {d.open_leads_counted}), "
                f"new today {d.assigned_today} (recount {d.assigned_today_counted})"
            )
        if options["fix"]:
            self.stdout.write(f"Fixed the counters of {len(drift)} rep(s).")
            return
        raise CommandError(f"{len(drift)} rep(s) drifted; run with --fix to set the counters to the recount.")
