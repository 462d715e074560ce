"""``manage.py coverage``: export the coverage model as YAML, or import it back.

    manage.py coverage export [FILE]
    manage.py coverage import FILE [--dry-run] [--prune] [--user USERNAME]

See docs/coverage.md.
"""

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from leadrouter.coverage import CoverageError, apply_import, dump_yaml, export_coverage, load_yaml


class Command(BaseCommand):
    help = "Export the coverage model as one YAML document, or import such a document."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{export,import}")
        export = actions.add_parser("export", help="Write the coverage model as YAML.")
        export.add_argument("file", nargs="?", help="Where to write; standard output when left out.")
        load = actions.add_parser("import", help="Make the coverage model match a YAML document.")
        load.add_argument("file", help="The YAML document to import.")
        load.add_argument(
            "--dry-run",
            action="store_true",
            help="Validate, try every write and show the plan; roll back, so nothing is written.",
        )
        load.add_argument(
            "--prune",
            action="store_true",
            help="Delete what the document does not list (reps are deactivated; the catch-all queue stays).",
        )
        load.add_argument("--user", help="The user name the change history records; default none.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            self.export(options["file"])
        else:
            self.import_(options["file"], dry_run=options["dry_run"], prune=options["prune"], username=options["user"])

    def export(self, file: str | None) -> None:
        text = dump_yaml(export_coverage())
        if file is None:
            self.stdout.write(text, ending="")
            return
        Path(file).write_text(text, encoding="utf-8")
        self.stderr.write(f"Wrote the coverage model to {file}.")

    def import_(self, file: str, *, dry_run: bool, prune: bool, username: str | None) -> None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror or error}") from error
        user = None
        if username:
            User = get_user_model()
            try:
                user = User._default_manager.get_by_natural_key(username)
            except User.DoesNotExist as error:
                raise CommandError(f"There is no user {username!r} to record in the change history.") from error
        try:
            document = load_yaml(text)
            # A dry run makes the same writes as the import and rolls them back, so the database's own
            # constraints judge it too: a dry run that passes means the import passes.
            plan = apply_import(document, prune=prune, user=user, dry_run=dry_run)
        except CoverageError as error:
            for path, message in error.errors:
                self.stderr.write(f"{path}: {message}")
            count = len(error.errors)
            raise CommandError(
                f"{file}: {count} {'problem' if count == 1 else 'problems'} found; nothing was written."
            ) from error
        self.stdout.write(plan.render())
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
        elif not plan.is_empty:
            self.stdout.write("Applied.")
