"""The coverage version: workers reload their copy of the coverage model when it changed, and only then.

Two completeness checks keep it true as the code grows: every table the cached copy reads must bump the
version when written, and code that writes those tables without model signals (``QuerySet.update``,
``bulk_create``, ``bulk_update``) must bump it itself.
"""

import ast
import datetime as dt
from pathlib import Path

import pytest
import time_machine
from django.apps import apps
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from leadrouter.coverage import apply_import
from routing import dispatch
from routing.dispatch import leads_route
from routing.matching import AccountIndex
from routing.models import Assignment, Lead, RepLoad, Rule, ScoringRule, ScoringThresholds
from routing.selectors import routing_snapshot, scoring_snapshot
from territories.coverage_version import TRACKED, coverage_version, coverage_version_bump
from territories.models import CoverageVersion, Rep
from tests.factories import (
    AccountDomainFactory,
    AccountFactory,
    OutOfOfficeFactory,
    SkillFactory,
    WorkingHoursFactory,
    dach_coverage,
)
from tests.helpers import admin_url, inline_management

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
# A Monday morning; the reps below work in UTC with no working hours set, so they are always on.
MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
# Read fresh for every batch (the load counters, and the leads and history they are checked against), never
# from the cached copy.
READ_FRESH = {Lead, Assignment, RepLoad}


@pytest.fixture
def worker(monkeypatch):
    """A fresh worker process's coverage cache."""
    cache = dispatch.CoverageCache()
    monkeypatch.setattr(dispatch, "coverage", cache)
    return cache


@pytest.fixture
def dach():
    queue = dach_coverage()
    # Scoring creates its thresholds row with the defaults on first use, which is a coverage change of its own.
    ScoringThresholds.current()
    return queue


def received():
    payload = {"email": f"lead{Lead.objects.count()}@prospect.de", "country": "Deutschland"}
    return Lead.objects.create(raw_payload=payload)


def owner(lead):
    return Lead.objects.select_related("owner__user").get(pk=lead.pk).owner.user.username


def route(*leads):
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[lead.pk for lead in leads])
    return [owner(lead) for lead in leads]


def tracked_tables():
    throughs = {field.remote_field.through for model in TRACKED for field in model._meta.local_many_to_many}
    return {model._meta.db_table: model for model in (*TRACKED, *throughs)}


# --- Completeness -------------------------------------------------------------------------------------------


def test_every_table_the_cached_coverage_model_reads_bumps_the_version(dach):
    # One row of everything the cached copy reads, so every prefetch runs.
    rep = Rep.objects.get(user__username="anna")
    rep.skills.add(SkillFactory(code="german"))
    dach.required_skills.add(SkillFactory(code="enterprise"))
    WorkingHoursFactory(rep=rep)
    OutOfOfficeFactory(rep=rep, starts_at=MONDAY, ends_at=MONDAY + dt.timedelta(days=1))
    AccountDomainFactory(account=AccountFactory(name="Prospect GmbH"), domain="prospect.de")
    ScoringRule.objects.create(
        name="Germany",
        kind=ScoringRule.Kind.FIT,
        condition={"all": [{"field": "country", "op": "equals", "value": "DE"}]},
        points=5,
    )
    ScoringThresholds.current()

    with CaptureQueriesContext(connection) as queries:
        routing_snapshot(now=MONDAY)
        scoring_snapshot()
        AccountIndex.load()

    tables = {model._meta.db_table: model for model in apps.get_models(include_auto_created=True)}
    read = {
        table
        for query in queries.captured_queries
        for table in tables
        if f'"{table}"' in query["sql"] or f"`{table}`" in query["sql"]
    }
    cached = {tables[table] for table in read} - READ_FRESH
    untracked = {model._meta.label for model in cached if model._meta.db_table not in tracked_tables()}
    assert not untracked, (
        f"The cached coverage model reads {sorted(untracked)}: register them with coverage_model_track "
        "in their app's AppConfig.ready(), or list them in READ_FRESH if dispatch reads them fresh."
    )


def test_saving_any_tracked_model_bumps_the_version(dach):
    for model in TRACKED:
        obj = model._default_manager.first()
        if obj is None:
            continue
        before = coverage_version()
        obj.save()
        assert coverage_version() != before, model._meta.label


WRITES_WITHOUT_SIGNALS = {"update", "bulk_create", "bulk_update"}


def _unbumped_queryset_writes(path: Path, model_names: set[str]) -> list[str]:
    """``<CoverageModel>.objects….update/bulk_create/bulk_update(…)`` in a function that never calls
    ``coverage_version_bump``. Moving only a queue's round-robin pointer is not a coverage change."""
    found = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        calls = [node for node in ast.walk(function) if isinstance(node, ast.Call)]
        bumps = any(
            getattr(call.func, "id", getattr(call.func, "attr", "")) == "coverage_version_bump" for call in calls
        )
        for call in calls:
            if not (isinstance(call.func, ast.Attribute) and call.func.attr in WRITES_WITHOUT_SIGNALS):
                continue
            chain = []
            node: ast.AST = call.func.value
            while True:
                if isinstance(node, ast.Call):
                    node = node.func
                elif isinstance(node, ast.Attribute):
                    chain.append(node.attr)
                    node = node.value
                else:
                    break
            model = node.id if isinstance(node, ast.Name) else ""
            if model not in model_names or "objects" not in chain:
                continue
            if model == "Queue" and {keyword.arg for keyword in call.keywords} == {"rr_pointer"}:
                continue
            if not bumps:
                found.append(f"{path.relative_to(ROOT)}:{call.lineno} {model}.….{call.func.attr}()")
    return found


def test_code_writing_coverage_models_without_signals_bumps_the_version_itself():
    model_names = {model.__name__ for model in TRACKED}
    sources = [
        path
        for app in ("territories", "routing", "sla", "leadrouter")
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
    ]
    missing = [line for path in sources for line in _unbumped_queryset_writes(path, model_names)]
    assert not missing, f"Call coverage_version_bump() after these writes, which send no signals: {missing}"


# --- Behaviour ----------------------------------------------------------------------------------------------


def test_a_capacity_lowered_in_admin_applies_to_the_very_next_lead_in_a_running_worker(dach, worker, client, revops):
    assert route(received()) == ["anna"]  # The worker now holds anna with room for 25 open leads.

    # RevOps lowers anna's cap to the one lead she has.
    anna = Rep.objects.select_related("user").get(user__username="anna")
    client.force_login(revops)
    response = client.post(
        admin_url(anna, "change", anna.pk),
        {
            "email": anna.user.email,
            "first_name": "",
            "last_name": "",
            "team": "",
            "manager": "",
            "active": "on",
            "time_zone": "UTC",
            "max_open_leads": "1",
            "daily_cap": "",
            **inline_management("working_hours", 0),
            **inline_management("out_of_office", 0),
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors

    # Round robin would give the third lead to anna; she is at her new cap, so ben takes both.
    assert route(received(), received()) == ["ben", "ben"]


def test_a_rule_switched_off_in_admin_applies_to_the_very_next_lead(dach, worker, client, revops):
    ben = Rep.objects.get(user__username="ben")
    shortcut = Rule.objects.create(name="All to ben", position=1, action=Rule.Action.REP, rep=ben)
    assert route(received()) == ["ben"]

    client.force_login(revops)
    response = client.post(
        admin_url(Rule, "changelist"),
        {
            **inline_management("form", 2, 2),
            "form-0-id": shortcut.pk,
            "form-0-position": "1",
            "form-1-id": Rule.objects.get(name="By territory").pk,
            "form-1-position": "10",
            "form-1-active": "on",
            "_save": "Save",
        },
    )
    assert response.status_code == 302

    # Without the shortcut the territory's round robin starts with anna.
    assert route(received()) == ["anna"]


def test_an_idle_worker_does_not_reload_the_coverage_model(dach, worker):
    route(received())
    loads, version = worker.loads, coverage_version()

    with CaptureQueriesContext(connection) as queries:
        assert route(received(), received()) == ["ben", "anna"]

    # Routing moved the round-robin pointer, which is not a coverage change, and nothing was reloaded.
    assert coverage_version() == version
    assert worker.loads == loads
    assert not [query for query in queries.captured_queries if '"territories_territory"' in query["sql"]]


def test_an_out_of_office_ending_by_the_clock_needs_no_reload(dach, worker):
    anna = Rep.objects.get(user__username="anna")
    OutOfOfficeFactory(rep=anna, starts_at=MONDAY - dt.timedelta(hours=1), ends_at=MONDAY + dt.timedelta(hours=1))
    assert route(received()) == ["ben"]
    loads = worker.loads

    later = received()
    with time_machine.travel(MONDAY + dt.timedelta(hours=2), tick=False):
        leads_route(lead_ids=[later.pk])

    assert owner(later) == "anna"
    assert worker.loads == loads


def test_a_coverage_import_bumps_the_version_and_a_dry_run_does_not():
    document = {"version": 1, "skills": [{"code": "german", "name": "German", "kind": "language"}]}
    before = coverage_version()

    apply_import(document, dry_run=True)
    assert coverage_version() == before

    apply_import(document)
    imported = coverage_version()
    assert imported != before

    apply_import(document)  # Nothing to change, nothing written.
    assert coverage_version() == imported


def test_a_rolled_back_change_is_never_mistaken_for_a_later_one(dach, worker):
    anna = Rep.objects.get(user__username="anna")
    with transaction.atomic():
        anna.max_open_leads = 0
        anna.save()
        rolled_back = coverage_version()
        assert route(received()) == ["ben"]  # The worker caches anna at cap 0 under this version.
        transaction.set_rollback(True)

    # A different change reaches the same version number; the worker must not keep the rolled-back copy.
    ben = Rep.objects.get(user__username="ben")
    ben.max_open_leads = 0
    ben.save()
    assert coverage_version().split(":")[0] == rolled_back.split(":")[0]
    assert route(received()) == ["anna"]


def test_a_missing_version_row_means_no_copy_is_trusted(dach, worker):
    CoverageVersion.objects.all().delete()
    route(received())
    loads = worker.loads

    route(received())

    assert worker.loads > loads


def test_the_version_reads_as_the_row_holds_it_with_or_without_a_stamp():
    with transaction.atomic():
        coverage_version_bump()
    row = CoverageVersion.objects.get()
    assert coverage_version() == f"{row.version}:{row.stamp}"
    assert str(row.stamp) in coverage_version()  # The UUID as it prints, with its dashes, on every database.

    # After a change made outside the ORM, as the module's docstring says to mark it.
    CoverageVersion.objects.update(version=row.version + 1, stamp=None)
    assert coverage_version() == f"{row.version + 1}:None"

    CoverageVersion.objects.all().delete()
    assert coverage_version() is None


def test_a_batch_keeps_the_coverage_of_the_version_it_began_with(worker, dach):
    # Two routing threads of one process: one thread's batch began with this version...
    began_with = worker.refresh()
    scoring = began_with.scoring()
    # ...when a RevOps edit lands and the other thread's batch reads the new version.
    coverage_version_bump()
    now = worker.refresh()

    assert now is not began_with and now.version != began_with.version
    # The first batch goes on with the copy it began with, whole; the next batches read the new one.
    assert began_with.scoring() is scoring
    assert now.scoring() is not scoring
    assert worker.refresh() is now
