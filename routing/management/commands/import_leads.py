"""``manage.py import_leads FILE [--skip-invalid] [--user USERNAME]``: the admin's CSV upload, from a shell."""

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.lead_import import LeadImportError, error_lines, leads_import_csv

# Errors printed here; the full report is on the import's admin page.
SHOWN_ERRORS = 20
BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Import leads from a CSV file (UTF-8, a header row with the API's field names, form:<question> columns "
        "for form answers). By default a file with any bad row stores nothing; --skip-invalid stores the rest."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Path to the CSV file.")
        parser.add_argument("--skip-invalid", action="store_true", help="Store the good rows and report the bad ones.")
        parser.add_argument("--user", help="The username recorded as the import's author.")
        parser.add_argument("--chunk-size", type=int, default=1000, help="Leads per bulk insert (default 1000).")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"There is no user named '{options['user']}'.")
        try:
            with path.open("rb") as file:
                lead_import = leads_import_csv(
                    file=file,
                    file_name=path.name,
                    created_by=user,
                    skip_invalid=options["skip_invalid"],
                    chunk_size=options["chunk_size"],
                    progress=self.draw_progress,
                )
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror or error}.") from error
        except LeadImportError as error:
            raise CommandError(str(error)) from error

        self.stdout.write(
            f"{lead_import.file_name}: {lead_import.total_rows:,} rows; {lead_import.imported:,} imported, "
            f"{lead_import.existing:,} already there, {lead_import.rejected:,} rejected."
        )
        for entry in lead_import.errors[:SHOWN_ERRORS]:
            self.stdout.write(f"  Row {entry['row']}: {'; '.join(error_lines(entry))}")
        if lead_import.rejected > SHOWN_ERRORS:
            self.stdout.write(
                f"  … and {lead_import.rejected - SHOWN_ERRORS:,} more: see import #{lead_import.pk} in admin."
            )
        if lead_import.rejected and not options["skip_invalid"]:
            raise CommandError(
                f"Nothing was stored: {lead_import.rejected:,} row(s) have errors. Fix them and import the file "
                "again, or use --skip-invalid to store the other rows."
            )

    def draw_progress(self, done: int, total: int) -> None:
        """A text bar on stderr: redrawn in place on a terminal, one line per tenth in a log or a test."""
        filled = BAR_WIDTH * done // total if total else BAR_WIDTH
        bar = f"[{'#' * filled}{' ' * (BAR_WIDTH - filled)}] {done:,}/{total:,} rows"
        if self.stderr.isatty():
            self.stderr.write(f"\r{bar}", ending="\n" if done >= total else "", style_func=str)
            self.stderr.flush()
            return
        tenth = 10 * done // total if total else 10
        if tenth != getattr(self, "_last_tenth", None):
            self._last_tenth = tenth
            self.stderr.write(bar, style_func=str)
