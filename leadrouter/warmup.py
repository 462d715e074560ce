"""Warm a process before it serves, so that the first leads after a start or a deploy are as fast as the rest.

Much of what a lead needs is loaded on first use: the modules a task runs (imported by the task
itself, see routing/tasks.py), phone-number metadata per country, the country and holiday
tables, the URL configuration of the web process, and the worker's copy of the coverage model
(routing/dispatch.py, ``CoverageCache``). Measured cold, the first routing batch of a worker
process took 0.5–1 s and held every lead that arrived behind it.

- ``static_load`` imports and reads what is the same for every process; the Celery worker calls
  it once in its main process before the pool forks (the children share it), the web process at
  start (leadrouter/wsgi.py).
- ``coverage_load`` reads this process's copy of the coverage model; each worker process calls it
  once it is forked (it needs a database connection of its own).

Neither may stop a process from starting: a failure is logged and the process serves cold.

``long_lived_freeze`` follows them: what a process has loaded by then lives as long as the process, and
Python's cycle collector would otherwise walk all of it again and again. Measured on a routing batch of
1,000 leads, those walks cost about a quarter of its CPU (288–318 ms → 220–249 ms per batch once frozen).
"""

import gc
import logging

from django.utils import timezone

logger = logging.getLogger(__name__)

# Leads as forms send them, over the countries whose metadata the demo organisation's coverage reads.
SAMPLE_LEADS = [
    {
        "email": f"warm.up@example-{country.lower()}.com",
        "first_name": "Warm",
        "last_name": "Up",
        "company": "Example GmbH",
        "country": country,
        "phone": phone,
        "employees": "51-200",
        "industry": "Software",
        "title": "Head of Sales",
    }
    for country, phone in (
        ("DE", "+49 30 1234567"),
        ("AT", "+43 1 234567"),
        ("CH", "+41 44 123 45 67"),
        ("GB", "+44 20 7946 0018"),
        ("FR", "+33 1 23 45 67 89"),
        ("US", "+1 415 555 0100"),
        ("CA", "+1 416 555 0100"),
    )
]


def static_load() -> None:
    """Import the modules the routing, notification and SLA paths run, and load the tables they read on first
    use. Reads no database."""
    try:
        from routing import dispatch, notify, outbound  # noqa: F401 - imported for their import-time work
        from routing.standardize import standardize
        from sla import calendar, sweep  # noqa: F401

        for lead in SAMPLE_LEADS:
            standardize(lead)
        calendar.holiday_regions_load()
    except Exception:
        logger.warning("Warming up this process's modules and tables failed; it starts cold.", exc_info=True)


def urls_load() -> None:
    """Build the URL configuration, which imports every view (a web process does it at its first request)."""
    try:
        from django.urls import get_resolver

        get_resolver().url_patterns  # noqa: B018 - building the patterns is the point
    except Exception:
        logger.warning("Building the URL configuration at start failed; the first request builds it.", exc_info=True)


def long_lived_freeze() -> None:
    """Move every object alive now out of the cycle collector's reach (``gc.freeze``): the modules, tables and
    coverage copy loaded above are never garbage, and walking them made each full collection slow. Objects
    made later are collected as usual; frozen ones are still freed when nothing refers to them. Called in
    the Celery main process before the pool forks (the children then also keep more pages shared), again
    in each child after ``coverage_load``, and in the web process after its warm-up."""
    gc.freeze()


def coverage_load() -> None:
    """Read this worker process's copy of the coverage model, account index and scoring rules, and prepare the
    sample leads against them (which builds the per-batch memos' first entries). Side effect: opens this
    process's database connection."""
    try:
        from routing.dispatch import coverage
        from routing.pipeline import prepare_leads
        from routing.selectors import accounts_facts

        coverage.refresh().snapshot(now=timezone.now())
        prepare_leads(
            SAMPLE_LEADS, accounts=coverage.accounts(), accounts_facts=accounts_facts, scoring=coverage.scoring()
        )
    except Exception:
        logger.warning("Loading the coverage model at start failed; the first batch loads it.", exc_info=True)
