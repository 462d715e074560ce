"""``manage.py coverage``: export the coverage model as YAML, import it back, and work with versions and drafts.

    manage.py coverage export [FILE]
    manage.py coverage import FILE [--dry-run] [--prune] [--user USERNAME] [--message TEXT] [--draft NAME]
    manage.py coverage versions [--limit N]
    manage.py coverage diff A B
    manage.py coverage rollback N [--dry-run] [--user USERNAME]
    manage.py coverage drafts
    manage.py coverage publish NAME [--at ISO_TIME] [--user USERNAME]
    manage.py coverage replay FILE_OR_DRAFT [--since DAYS] [--source SOURCE] [--queue NAME] [--json]

See docs/coverage.md.
"""

import datetime as dt
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from leadrouter.coverage import CoverageError, dump_yaml, export_coverage, load_yaml, versions
from leadrouter.management.commands import _replay
from territories.models import CoverageDraft, CoverageRevision


class Command(BaseCommand):
    help = "Export the coverage model as one YAML document, import such a document, or work with versions and drafts."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, metavar="{export,import,versions,diff,rollback,drafts,publish,replay}"
        )
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
        load.add_argument("--user", help="The user name the change history and the version record; default none.")
        load.add_argument("--message", default="", help="The version's message; default 'coverage import'.")
        load.add_argument(
            "--draft",
            metavar="NAME",
            help="Save the document as draft NAME (created or replaced) instead of applying it; routing ignores it.",
        )
        listing = actions.add_parser("versions", help="List the numbered versions, newest first.")
        listing.add_argument("--limit", type=int, default=50, help="How many to list; default 50.")
        diff = actions.add_parser("diff", help="What changed from version A to version B.")
        diff.add_argument("a", type=int)
        diff.add_argument("b", type=int)
        rollback = actions.add_parser("rollback", help="Make the model match version N again (a new version).")
        rollback.add_argument("number", type=int)
        rollback.add_argument("--dry-run", action="store_true", help="Show the plan only; nothing is written.")
        rollback.add_argument("--user", help="The user name the version records; default none.")
        actions.add_parser("drafts", help="List the drafts.")
        publish = actions.add_parser("publish", help="Publish draft NAME now, or schedule it with --at.")
        publish.add_argument("name")
        publish.add_argument("--at", help="When to publish (ISO 8601 with an offset); beat publishes it then.")
        publish.add_argument("--user", help="The user name the version records; default none.")
        _replay.add_parser(actions)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "export":
                self.export(options["file"])
            elif action == "import":
                self.import_(options)
            elif action == "versions":
                self.list_versions(options["limit"])
            elif action == "diff":
                self.stdout.write(versions.versions_diff(options["a"], options["b"]).render())
            elif action == "rollback":
                self.rollback(options["number"], dry_run=options["dry_run"], username=options["user"])
            elif action == "drafts":
                self.list_drafts()
            elif action == "replay":
                _replay.run(self, options)
            else:
                self.publish(options["name"], at=options["at"], username=options["user"])
        except CoverageError as error:
            for path, message in error.errors:
                self.stderr.write(f"{path}: {message}")
            count = len(error.errors)
            source = options.get("file") or action
            raise CommandError(
                f"{source}: {count} {'problem' if count == 1 else 'problems'} found; nothing was written."
            ) from error

    def export(self, file: str | None) -> None:
        text = dump_yaml(export_coverage())
        if file is None:
            self.stdout.write(text, ending="")
            return
        Path(file).write_text(text, encoding="utf-8")
        self.stderr.write(f"Wrote the coverage model to {file}.")

    def user(self, username: str | None) -> Any:
        if not username:
            return None
        User = get_user_model()
        try:
            return User._default_manager.get_by_natural_key(username)
        except User.DoesNotExist as error:
            raise CommandError(f"There is no user {username!r} to record in the change history.") from error

    def import_(self, options: dict[str, Any]) -> None:
        file = options["file"]
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror or error}") from error
        user = self.user(options["user"])
        if options["draft"]:
            self.import_draft(options["draft"], text, user=user)
            return
        document = load_yaml(text)
        # A dry run makes the same writes as the import and rolls them back, so the database's own
        # constraints judge it too: a dry run that passes means the import passes.
        plan, version = versions.coverage_import(
            document, prune=options["prune"], user=user, dry_run=options["dry_run"], message=options["message"]
        )
        self.stdout.write(plan.render())
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was written.")
        elif not plan.is_empty:
            self.stdout.write(f"Applied as version {version.number}." if version else "Applied.")

    def import_draft(self, name: str, text: str, *, user: Any) -> None:
        draft = CoverageDraft.objects.filter(name=name).first()
        if draft is None:
            draft = versions.draft_create(name, user=user, text=text)
            self.stdout.write(f"Created draft {name!r} (based on version {draft.base.number if draft.base else '-'}).")
        else:
            versions.draft_save_text(draft, text)
            self.stdout.write(f"Replaced the document of draft {name!r}.")
        self.stdout.write("Publishing it would change:")
        self.stdout.write(versions.draft_plan(draft).render())

    def list_versions(self, limit: int) -> None:
        rows = CoverageRevision.objects.select_related("author", "scheduled_by").order_by("-number")[:limit]
        for version in rows:
            who = version.author.get_username() if version.author else "-"
            if version.scheduled_by:
                who += f" (scheduled by {version.scheduled_by.get_username()})"
            when = version.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            self.stdout.write(f"{version.number:>5}  {when}  {version.kind:<8}  {who:<20}  {version.message}")

    def rollback(self, number: int, *, dry_run: bool, username: str | None) -> None:
        plan, version = versions.version_rollback(number, user=self.user(username), dry_run=dry_run)
        self.stdout.write(plan.render())
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
        elif version is not None:
            self.stdout.write(f"Rolled back to version {number} as version {version.number}.")

    def list_drafts(self) -> None:
        for draft in CoverageDraft.objects.select_related("base", "published").order_by("name"):
            if draft.published:
                state = f"published as version {draft.published.number}"
            elif draft.publish_at:
                state = f"publishes at {draft.publish_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
            else:
                state = "draft"
            base = f"from version {draft.base.number}" if draft.base else ""
            error = f"  last publish failed: {draft.publish_error}" if draft.publish_error else ""
            self.stdout.write(f"{draft.name}  {state}  {base}{error}")

    def publish(self, name: str, *, at: str | None, username: str | None) -> None:
        draft = CoverageDraft.objects.filter(name=name).first()
        if draft is None:
            raise CommandError(f"There is no draft {name!r}.")
        user = self.user(username)
        if at:
            when = dt.datetime.fromisoformat(at) if _is_iso(at) else None
            if when is None or timezone.is_naive(when):
                raise CommandError(
                    f"--at {at!r}: give an ISO 8601 time with an offset, such as 2026-12-24T06:00+00:00."
                )
            versions.draft_schedule(draft, when, user=user)
            self.stdout.write(f"Draft {name!r} publishes at {when.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC.")
            return
        plan, version = versions.draft_publish(draft, user=user)
        self.stdout.write(plan.render())
        self.stdout.write(f"Published draft {name!r} as version {version.number}.")


def _is_iso(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True
