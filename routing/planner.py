"""Fresh planner statistics for the tables routing reads, after bulk changes.

PostgreSQL plans each query from statistics gathered by ``ANALYZE``; autovacuum gathers them again once
a table has changed enough, but it runs on its own schedule (or not at all, where it is turned off). A
bulk import changes the lead table by tens of thousands of rows at once. Until the next ``ANALYZE`` the
planner believes the table is as small as it was, and picks plans that read every open lead: measured
during a 100,000-lead import, the duplicate check of a routing batch (a lookup by e-mail among the open
leads, run under the routing lock) took 100–150 ms instead of 2–5 ms, batch after batch.

So bulk work checks the statistics before it routes (``statistics_freshen``: one query on
``pg_stat_user_tables``) and analyzes the tables that changed by more than half since they were last
analyzed, as PostgreSQL's documentation advises after a bulk load. Only one process analyzes at a time;
the others go on with the statistics they have. On SQLite there is nothing to do.
"""

from __future__ import annotations

import logging

from django.db import connection

from routing.models import Assignment, Lead, Notification, RepTask

logger = logging.getLogger(__name__)

# The tables whose plans matter to routing's batches and their notices.
TABLES = (Lead._meta.db_table, Assignment._meta.db_table, Notification._meta.db_table, RepTask._meta.db_table)
# Analyze a table once this share of its rows changed since its last analysis. Autovacuum's default is 0.1;
# this is the fallback for gross staleness (an import a hundred times the table's size), and an ANALYZE of a
# big lead table takes a second on a busy machine, so half the table must have changed...
CHANGED_SHARE = 0.5
# ... and at least this many rows: small tables plan well whatever their statistics say.
MIN_CHANGED_ROWS = 5_000
# Held while one process analyzes, so that several workers starting bulk tasks together do it once.
ANALYZE_LOCK_KEY = 327_579_419_731


def statistics_freshen(tables: tuple[str, ...] = TABLES) -> list[str]:
    """Analyze those of ``tables`` that changed by more than ``CHANGED_SHARE`` of their rows (and at least
    ``MIN_CHANGED_ROWS``) since their statistics were last gathered; returns the tables analyzed. Call outside
    a transaction. Never raises: stale statistics make plans slower, not wrong."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return []
    try:
        return _freshen(tables)
    except Exception:
        logger.warning("Could not refresh the planner statistics of %s.", ", ".join(tables), exc_info=True)
        return []


def _freshen(tables: tuple[str, ...]) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.relname, s.n_mod_since_analyze, c.reltuples FROM pg_stat_user_tables s "
            "JOIN pg_class c ON c.oid = s.relid WHERE s.schemaname = current_schema() AND s.relname = ANY(%s)",
            [list(tables)],
        )
        stale = [
            name
            for name, changed, rows in cursor.fetchall()
            if changed >= max(MIN_CHANGED_ROWS, CHANGED_SHARE * max(rows, 0))
        ]
        if not stale:
            return []
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ANALYZE_LOCK_KEY])
        if not cursor.fetchone()[0]:
            return []  # Another process is analyzing them now.
        try:
            for name in stale:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(name)}")
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [ANALYZE_LOCK_KEY])
    logger.info("Refreshed the planner statistics of %s after bulk changes.", ", ".join(stale))
    return stale
