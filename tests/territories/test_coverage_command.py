"""``manage.py coverage export`` and ``manage.py coverage import``."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from leadrouter.coverage import dump_yaml, export_coverage
from routing.models import Queue
from territories.models import Rep, Territory
from tests.factories import RepFactory, TeamFactory, UserFactory

DOCUMENT = """\
version: 1
teams:
  - {name: DACH}
reps:
  - {username: anna.schmidt, team: DACH, time_zone: Europe/Berlin}
territories:
  - {name: DACH, rep: anna.schmidt, criteria: {countries: [DE, AT, CH]}}
"""


def run(*args: str) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command("coverage", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


@pytest.fixture
def document(tmp_path: Path) -> Path:
    path = tmp_path / "coverage.yaml"
    path.write_text(DOCUMENT)
    return path


@pytest.mark.django_db
def test_export_writes_the_document_to_standard_output():
    RepFactory(user=UserFactory(username="anna.schmidt"), team=TeamFactory(name="DACH"))

    stdout, _stderr = run("export")

    assert stdout == dump_yaml(export_coverage())
    assert "username: anna.schmidt" in stdout


@pytest.mark.django_db
def test_export_writes_the_document_to_a_file(tmp_path: Path):
    path = tmp_path / "out.yaml"

    stdout, _stderr = run("export", str(path))

    assert stdout == ""
    assert path.read_text() == dump_yaml(export_coverage())


@pytest.mark.django_db
def test_export_then_dry_run_import_says_no_changes_on_a_fresh_database(tmp_path: Path):
    path = tmp_path / "a.yaml"
    run("export", str(path))

    stdout, _stderr = run("import", str(path), "--dry-run")

    assert stdout.splitlines() == ["No changes.", "Dry run: nothing was written."]


@pytest.mark.django_db
def test_export_then_dry_run_import_says_no_changes_on_a_populated_database(tmp_path: Path, document: Path):
    run("import", str(document))
    path = tmp_path / "a.yaml"
    run("export", str(path))

    stdout, _stderr = run("import", str(path), "--dry-run")

    assert stdout.splitlines()[0] == "No changes."


@pytest.mark.django_db
def test_dry_run_prints_the_plan_and_writes_nothing(document: Path):
    stdout, _stderr = run("import", str(document), "--dry-run")

    assert stdout.splitlines() == [
        '+ user "anna.schmidt"',
        '+ team "DACH"',
        '+ rep "anna.schmidt"',
        '+ territory "DACH"',
        "4 changes: 4 to create.",
        "Dry run: nothing was written.",
    ]
    assert not Rep.objects.exists()


@pytest.mark.django_db
def test_import_applies_the_document_and_records_the_user(document: Path):
    revops = UserFactory(username="revops")

    stdout, _stderr = run("import", str(document), "--user", "revops")

    # Version 1 is the model before the import (empty), version 2 the import.
    assert stdout.splitlines()[-1] == "Applied as version 2."
    territory = Territory.objects.get(name="DACH")
    assert territory.rep is not None and territory.rep.username == "anna.schmidt"
    assert territory.history.get().history_user == revops
    # A second run finds nothing to do.
    assert run("import", str(document))[0] == "No changes.\n"


@pytest.mark.django_db
def test_import_with_prune_deletes_what_the_document_leaves_out(document: Path):
    Queue.objects.create(name="Old")
    # With --prune every section that has rows must be in the file; the catch-all always stays.
    document.write_text(DOCUMENT + "queues:\n  - {name: Catch-all, catch_all: true}\n")

    stdout, _stderr = run("import", str(document), "--prune")

    assert '- queue "Old"' in stdout.splitlines()
    assert not Queue.objects.filter(name="Old").exists()


@pytest.mark.django_db
def test_invalid_document_prints_every_error_and_exits_with_status_1(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "version: 1\n"
        "reps:\n"
        "  - {username: anna, time_zone: Mars/Olympus, team: Nowhere}\n"
        "territories:\n"
        "  - {name: X, criteria: {countries: [DE, ZZ]}}\n"
    )
    stderr = StringIO()

    with pytest.raises(CommandError) as caught:
        call_command("coverage", "import", str(path), stdout=StringIO(), stderr=stderr)

    assert caught.value.returncode == 1
    assert "3 problems found; nothing was written." in str(caught.value)
    lines = stderr.getvalue().splitlines()
    assert lines[0].startswith("reps[0].time_zone: Mars/Olympus is not an IANA time zone")
    assert lines[1] == 'reps[0].team: there is no team "Nowhere"'
    assert lines[2].startswith("territories[0].criteria.countries[1]: ZZ is not an ISO 3166-1 alpha-2 country code")
    assert not Rep.objects.exists()


@pytest.mark.django_db
def test_yaml_syntax_error_names_the_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nteams:\n  - name: DACH\n   description: [oops\n")
    stderr = StringIO()

    with pytest.raises(CommandError):
        call_command("coverage", "import", str(path), stdout=StringIO(), stderr=stderr)

    assert stderr.getvalue().startswith("line 4: not valid YAML")


@pytest.mark.django_db
def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CommandError, match="Cannot read"):
        run("import", str(tmp_path / "nope.yaml"))
