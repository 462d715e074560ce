"""``manage.py load_demo [--if-empty] [--no-history]``: load the demo organisation, the demo logins and a
month of demo lead history."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leadrouter.coverage import CoverageError
from leadrouter.demo.history import HISTORY_DAYS
from leadrouter.demo.loader import (
    DEMO_API_KEY,
    DEMO_LOGINS,
    DEMO_PASSWORD,
    coverage_exists,
    demo_load,
    demo_logins_exist,
)
from routing.models import Queue
from territories.models import Account, Rep, Team, Territory


class Command(BaseCommand):
    help = "Load the demo organisation (teams, reps, queues, territories, accounts) and the demo logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing when the database already has teams, reps, territories or accounts.",
        )
        parser.add_argument(
            "--no-history",
            action="store_true",
            help="Load the organisation and logins only, without the last 30 days of demo leads.",
        )

    def handle(self, *args: Any, if_empty: bool = False, no_history: bool = False, **options: Any) -> None:
        if if_empty and coverage_exists():
            self.stdout.write("The database already has coverage data; the demo organisation was not loaded.")
            if demo_logins_exist():
                self._print_logins()
            return
        try:
            history_leads = demo_load(history=not no_history)
        except CoverageError as error:
            raise CommandError(f"The demo organisation did not import:\n{error}") from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded the demo organisation: {Team.objects.count()} teams, {Rep.objects.count()} reps, "
                f"{Queue.objects.count()} queues, {Territory.objects.count()} territories, "
                f"{Account.objects.count()} accounts."
            )
        )
        if history_leads:
            self.stdout.write(
                self.style.SUCCESS(f"Loaded {history_leads} demo leads over the last {HISTORY_DAYS} days.")
            )
        self._print_logins()

    def _print_logins(self) -> None:
        self.stdout.write("Demo logins:")
        for login in DEMO_LOGINS:
            self.stdout.write(f"  {login.username:<13} / {DEMO_PASSWORD}   {login.role}: {login.can}")
        self.stdout.write(f"Demo intake API key (demo only): {DEMO_API_KEY}")
