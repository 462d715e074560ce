"""Importing a coverage document: the order of entries never decides whether it imports, and a dry run that
passes means the import passes (it makes the same writes and rolls them back)."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from leadrouter.coverage import apply_import, dump_yaml, export_coverage, load_yaml
from routing.models import Queue
from sla.models import BusinessCalendar, SlaPolicy
from territories.models import Rep
from tests.territories.test_coverage_sla import BASE, SLA

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command("coverage", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def dry_run_then_import(tmp_path: Path, document: dict, *extra: str) -> str:
    """Dry-run ``document`` with the command, then import it; both must pass. Returns the import's output."""
    path = tmp_path / "coverage.yaml"
    path.write_text(dump_yaml(document))
    dry, _ = run("import", str(path), "--dry-run", *extra)
    assert dry.splitlines()[-1] == "Dry run: nothing was written."
    applied, _ = run("import", str(path), *extra)
    assert applied.splitlines()[-1].startswith("Applied as version ")
    # What the dry run planned is what the import did.
    assert dry.splitlines()[:-1] == applied.splitlines()[:-1]
    return applied


@pytest.fixture
def exported() -> dict:
    """The coverage of BASE + SLA, exported: "Everyone else" is the default policy (listed last, position 900),
    "Default hours" the default calendar and "DACH business hours" the team's calendar."""
    apply_import(load_yaml(BASE + SLA))
    return export_coverage()


def make_default_policy(document: dict, name: str) -> dict:
    for policy in document["sla_policies"]:
        policy.pop("default", None)
        if policy["name"] == name:
            policy["default"] = True
    return document


@pytest.mark.parametrize("order", ["as exported", "reversed"])
def test_moving_the_default_sla_policy_imports_whatever_the_order(tmp_path, exported, order):
    # The export lists the new default ("Demo requests", position 10) before the old one (position 900):
    # written in that order, the new default used to meet the old one still holding the flag.
    document = make_default_policy(exported, "Demo requests")
    if order == "reversed":
        document["sla_policies"].reverse()

    output = dry_run_then_import(tmp_path, document)

    assert 'SLA policy "Demo requests"' in output
    assert list(SlaPolicy.objects.filter(is_default=True).values_list("name", flat=True)) == ["Demo requests"]


@pytest.mark.parametrize("order", ["as exported", "reversed"])
def test_moving_the_default_calendar_and_a_team_s_calendar_imports_whatever_the_order(tmp_path, exported, order):
    # The two calendars swap roles: the team's calendar becomes the default and the default becomes the team's.
    for calendar in exported["calendars"]:
        calendar["owner"] = {"default": True} if calendar["name"] == "DACH business hours" else {"team": "DACH"}
    if order == "reversed":
        exported["calendars"].reverse()

    dry_run_then_import(tmp_path, exported)

    assert BusinessCalendar.objects.get(is_default=True).name == "DACH business hours"
    assert BusinessCalendar.objects.get(team__name="DACH").name == "Default hours"


def test_pruning_the_default_policy_while_naming_a_new_one_imports(tmp_path, exported):
    document = make_default_policy(exported, "Partners")
    document["sla_policies"] = [policy for policy in document["sla_policies"] if policy["name"] != "Everyone else"]

    dry_run_then_import(tmp_path, document, "--prune")

    assert list(SlaPolicy.objects.values_list("name", "is_default").order_by("name")) == [
        ("Demo requests", False),
        ("Partners", True),
    ]


def test_a_dry_run_fails_wherever_the_import_would_and_writes_nothing(tmp_path, exported):
    # A first name longer than the user table holds passes every check of the document itself; only writing
    # it finds the problem. The dry run writes it too (then rolls back), so it fails exactly like the import.
    for rep in exported["reps"]:
        rep["first_name"] = "A" * 151
    path = tmp_path / "coverage.yaml"
    path.write_text(dump_yaml(exported))

    failures = []
    for extra in (["--dry-run"], []):
        stderr = StringIO()
        with pytest.raises(CommandError) as caught:
            call_command("coverage", "import", str(path), *extra, stdout=StringIO(), stderr=stderr)
        failures.append((str(caught.value), stderr.getvalue()))

    assert failures[0] == failures[1]
    assert "1 problem found; nothing was written." in failures[0][0]
    assert "reps[0].first_name: Ensure this value has at most 150 characters (it has 151)." in failures[0][1]
    assert Rep.objects.get().user.first_name != "A" * 151


def test_a_dry_run_leaves_the_database_as_it_was(tmp_path, exported):
    before = dump_yaml(export_coverage())
    exported["queues"].append({"name": "Partners inbound"})
    make_default_policy(exported, "Partners")
    path = tmp_path / "coverage.yaml"
    path.write_text(dump_yaml(exported))

    stdout, _ = run("import", str(path), "--dry-run")

    assert '+ queue "Partners inbound"' in stdout
    assert not Queue.objects.filter(name="Partners inbound").exists()
    assert dump_yaml(export_coverage()) == before
