"""Bulk work refreshes the planner statistics of the tables routing reads, so that an import does not leave
routing's queries planned for a table a hundred times smaller (routing/planner.py)."""

import time

import pytest
from django.db import connection, transaction

from routing import planner
from routing.bulk import objects_insert
from routing.models import Lead

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
