"""Bulk work refreshes the planner statistics of the tables routing reads, so that an import does not leave
routing's queries planned for a table a hundred times smaller (routing/planner.py)."""

import time

import pytest
from django.db import connection, transaction

from leadrouter.management.commands.bench_routing import _lead as bench_lead
from routing import dispatch, planner
from routing.bulk import objects_insert
from routing.intake import leads_receive
from routing.models import Lead, Queue
from routing.rows import RowQuery, RowSelect, rows_select_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _changes_counted(table: str, at_least: int) -> None:
    """Wait until the statistics collector has counted ``at_least`` changes to ``table`` (it counts a
    transaction's changes shortly after its commit)."""
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_stat_force_next_flush()")
            cursor.execute("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = %s", [table])
            row = cursor.fetchone()
            if row and row[0] >= at_least:
                return
            assert time.monotonic() < deadline, f"the changes to {table} were never counted: {row}"
            time.sleep(0.05)


def _last_analyzed(table: str):
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = %s", [table])
        return cursor.fetchone()[0]


def _store(count: int) -> None:
    objects_insert(
        Lead, [Lead(raw_payload={"email": f"b{n}@bulk.example"}, email=f"b{n}@bulk.example") for n in range(count)]
    )


def test_an_import_sized_change_gets_the_lead_table_analyzed_once():
    table = Lead._meta.db_table
    _store(planner.MIN_CHANGED_ROWS + 100)
    _changes_counted(table, planner.MIN_CHANGED_ROWS + 100)

    assert table in planner.statistics_freshen()
    assert _last_analyzed(table) is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
        assert cursor.fetchone()[0] >= planner.MIN_CHANGED_ROWS  # The planner now knows the rows are there.

    # Nothing changed since: nothing to do, and no second ANALYZE.
    assert planner.statistics_freshen() == []


def test_small_changes_leave_the_statistics_alone():
    planner.statistics_freshen()  # Whatever earlier tests left behind.
    _store(50)
    _changes_counted(Lead._meta.db_table, 50)

    assert planner.statistics_freshen() == []


def test_nothing_is_analyzed_inside_a_transaction():
    # ANALYZE inside a routing batch would hold its locks for the whole transaction.
    _store(planner.MIN_CHANGED_ROWS + 100)
    _changes_counted(Lead._meta.db_table, planner.MIN_CHANGED_ROWS + 100)
    with transaction.atomic():
        assert planner.statistics_freshen() == []
    assert Lead._meta.db_table in planner.statistics_freshen()


def _receive(numbers: range) -> None:
    """Leads stored as intake stores them, a thousand at a time (one instant each)."""
    leads_receive(payloads=[bench_lead(n) for n in numbers], intake_source=None)


def _rows_scanned(plan: dict) -> int:
    """Rows the scans of an ``EXPLAIN (ANALYZE, FORMAT JSON)`` plan read."""
    own = plan["Actual Rows"] * plan["Actual Loops"] if "Scan" in plan["Node Type"] else 0
    return own + sum(_rows_scanned(child) for child in plan.get("Plans", []))


def test_a_batch_claims_the_oldest_waiting_leads_without_reading_the_whole_backlog():
    # Statistics taken before the backlog arrived, as after any import before the next ANALYZE: the planner
    # believes a few leads are waiting. Left to them, it could read every waiting lead to sort them, for every
    # batch (the benchmark's did); the claim takes the index's order instead.
    table = Lead._meta.db_table
    for start in range(0, 5000, 1000):
        _receive(range(start, start + 1000))
    # All routed but a few, as in a working organisation.
    Lead.objects.exclude(pk__in=Lead.objects.order_by("-pk").values("pk")[:20]).update(status=Lead.Status.ASSIGNED)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
    for start in range(5000, 8000, 1000):
        _receive(range(start, start + 1000))
    waiting = Lead.objects.filter(status=Lead.Status.RECEIVED)
    oldest = list(waiting.order_by("received_at", "pk").values_list("pk", flat=True)[:1000])

    statements = []
    with transaction.atomic():

        def keep(execute, sql, params, many, context):
            statements.append((sql, params))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(keep):
            claimed = dispatch._claim(None, 1000)
        with connection.cursor() as cursor:
            cursor.execute("SHOW enable_sort")
            sorting = cursor.fetchone()[0]
        transaction.set_rollback(True)
    assert [lead.pk for lead in claimed] == oldest
    # The claim's planner setting ends with its statement: the rest of the batch is planned as always.
    assert sorting == "on"

    # What the claim's statement reads, planned with the claim's settings.
    (sql, params), *_ = statements
    with transaction.atomic(), connection.cursor() as cursor:
        for name, value in dispatch._IN_INDEX_ORDER.items():
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        (plan,) = cursor.fetchone()[0]
        transaction.set_rollback(True)
    read = _rows_scanned(plan["Plan"])
    assert read <= 1100, f"the claim read {read} waiting leads to take 1,000"


def test_a_planner_setting_is_a_settings_name():
    with transaction.atomic(), pytest.raises(ValueError):
        rows_select_together(
            RowSelect(Lead), [RowQuery("t0.id = %s", [1], {"enable_sort = off; DROP TABLE x; --": "off"})]
        )


def test_a_batchs_statements_are_never_compiled_by_the_database(monkeypatch):
    # A batch of 1,000 leads looks up their e-mails among the open leads (1,000 index probes, a few ms). With
    # the statistics of a grown lead table the planner priced it past the JIT thresholds, and the database
    # spent ~190 ms compiling it at every batch, holding the routing lock. From the routing lock on, a batch
    # runs without JIT; the connection's own setting is back once the batch's transaction ends.
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    _receive(range(0, 300))
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        (before,) = cursor.fetchone()
    seen = []
    original = dispatch._decide_all

    def recording(*args, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SHOW jit")
            seen.append(cursor.fetchone()[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(dispatch, "_decide_all", recording)
    report = dispatch.leads_route(batch_size=100)

    assert report.leads == 300
    assert seen and set(seen) == {"off"}
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == before
