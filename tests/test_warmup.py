"""A process warms up before it serves (leadrouter/warmup.py): the first lead after a start or a deploy must not
wait for imports, tables and the coverage model to load, and a failure there must never keep a process from
starting."""

import gc
import logging

import pytest

from leadrouter import warmup
from routing import dispatch
from routing.models import ScoringThresholds
from sla import calendar
from tests.factories import dach_coverage

pytestmark = pytest.mark.django_db


def test_the_shared_warm_up_reads_no_database_and_loads_the_holiday_regions(django_assert_num_queries):
    # It runs in the worker's main process before the pool forks: a connection opened there would be shared.
    calendar._supported_regions.cache_clear()
    with django_assert_num_queries(0):
        warmup.static_load()
    assert calendar._supported_regions.cache_info().currsize == 1


def test_a_worker_process_reads_its_coverage_copy_before_its_first_batch(monkeypatch):
    dach_coverage()
    ScoringThresholds.current()  # Made on first read, which changes the coverage: not the warm-up's concern.
    monkeypatch.setattr(dispatch, "coverage", dispatch.CoverageCache())

    warmup.coverage_load()
    loaded = dispatch.coverage.loads

    # The first batch finds the copy there: checking the version loads nothing more.
    assert loaded >= 3  # The snapshot, the account index and the scoring rules.
    dispatch.coverage.refresh().snapshot(now=dispatch.timezone.now())
    dispatch.coverage.accounts()
    dispatch.coverage.scoring()
    assert dispatch.coverage.loads == loaded


def test_a_failed_warm_up_is_logged_and_the_process_starts_cold(monkeypatch, caplog):
    def database_down(*args, **kwargs):
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(dispatch, "coverage", dispatch.CoverageCache())
    monkeypatch.setattr(dispatch.CoverageCache, "refresh", database_down)

    with caplog.at_level(logging.WARNING, logger="leadrouter.warmup"):
        warmup.coverage_load()  # Does not raise.

    assert "the first batch loads it" in caplog.text


def test_what_was_loaded_is_frozen_out_of_the_collectors_walks():
    try:
        warmup.long_lived_freeze()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
