"""The coverage version: one database row that changes with every change to the coverage model.

Workers keep a copy of the coverage model (territories, rules, queues, reps' availability, accounts, scoring
rules) and read this row once per routing batch; they reload their copy only when it changed. So an edit in
admin, an import or a service applies to the very next batch, and an idle worker never reloads.

The row is bumped in the same transaction as the change (``UPDATE … SET version = version + 1``), so a worker
never sees the new version before the change it stands for. It lives in the database, not in Django's cache,
because every web and worker process must agree on it, and the default cache is a per-machine file cache.

What bumps it. Coverage rows are written from many places: admin pages and inlines, the coverage import,
CSV imports, services (a rep out of office, a new rep, a departure), manager pages, the demo loader. Rather
than ask each of them to remember, every model the cached copy reads is registered here with
``coverage_model_track`` (each app registers its own models in ``AppConfig.ready``), and model signals bump
the version on every save, delete and many-to-many change of those models. This is infrastructure, like an
index, not business logic, which is why it is one of the few places the project uses signals.
``QuerySet.update``, ``bulk_create`` and ``bulk_update`` send no signals: code that writes coverage models
that way calls ``coverage_version_bump()`` itself, and ``tests/test_coverage_version.py`` fails
when such a call is missing or when the cached copy starts reading a model nobody registered.

Inside a transaction the bump runs just before the row is written, so every coverage-writing transaction
takes the version row's lock first and two of them queue up on it instead of deadlocking on each other's
rows. Outside a transaction (autocommit) it runs just after the write has committed, so a worker can never
load the old rows under the new version. A transaction that locks coverage rows (``select_for_update``)
before writing them calls ``coverage_version_bump()`` before it locks them, keeping the same order (see
``routing/reassign.py:rep_departure_apply``). Moving a round-robin pointer is not a coverage change, so
routing itself never takes this lock.

Rows changed by hand in the database, outside the application, are not seen until something bumps the
version: run ``UPDATE territories_coverageversion SET version = version + 1, stamp = NULL`` after such a change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.utils import timezone

from territories.models import CoverageVersion

VERSION_ROW = 1
# Registered model -> the fields whose saves alone do not change the cached copy (read fresh, or never read).
TRACKED: dict[type[models.Model], frozenset[str]] = {}
# The bump counter of the innermost ``coverage_changes_counted`` block, if any.
_COUNTER: ContextVar[list[int] | None] = ContextVar("coverage_changes_counter", default=None)
# The version ``coverage_version_pinned`` holds for its block, if any.
_PINNED: ContextVar[str | None] = ContextVar("coverage_version_pinned", default=None)


@contextmanager
def coverage_changes_counted() -> Iterator[list[int]]:
    """Count the coverage version bumps made inside the block: ``counter[0]`` after it. The admin's version
    middleware (``leadrouter.coverage.middleware.CoverageRevisionMiddleware``) uses it to record a numbered version
    only for requests that changed the coverage model."""
    counter = [0]
    token = _COUNTER.set(counter)
    try:
        yield counter
    finally:
        _COUNTER.reset(token)


def coverage_version_bump(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Record that the coverage model changed, in the caller's transaction (takes the version row's lock
    until it ends). Call after ``QuerySet.update``, ``bulk_create`` or ``bulk_update`` on a coverage model;
    saves, deletes and many-to-many changes bump it by themselves."""
    counter = _COUNTER.get()
    if counter is not None:
        counter[0] += 1
    changes = {"version": models.F("version") + 1, "stamp": uuid.uuid4(), "changed_at": timezone.now()}
    rows = CoverageVersion.objects.using(using)
    if not rows.filter(pk=VERSION_ROW).update(**changes):
        # The row is missing (a database emptied by a test flush): create it, then bump it as usual.
        rows.bulk_create([CoverageVersion(pk=VERSION_ROW)], ignore_conflicts=True)
        rows.filter(pk=VERSION_ROW).update(**changes)


@contextmanager
def coverage_version_pinned(version: str | None) -> Iterator[None]:
    """Within the block, ``coverage_version()`` answers ``version`` without asking the database (None pins
    nothing). For a routing batch, which reads the version once at its start and decides with the model of
    that version: whatever else it consults in the same transaction (the SLA policies its clocks start with)
    is then of the same version, and costs no second query."""
    token = _PINNED.set(version)
    try:
        yield
    finally:
        _PINNED.reset(token)


def coverage_version(*, using: str = DEFAULT_DB_ALIAS) -> str | None:
    """The current version (one indexed query), or None while no version row exists, which means "unknown":
    a cached copy must then not be trusted. Inside ``coverage_version_pinned``, the pinned version."""
    pinned = _PINNED.get()
    if pinned is not None and using == DEFAULT_DB_ALIAS:
        return pinned
    # Every routing batch asks: one plain statement, as building and compiling the queryset cost several times
    # the statement itself (about 1 ms of a small batch's 12).
    meta, db = CoverageVersion._meta, connections[using]
    quote = db.ops.quote_name
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote(meta.get_field('version').column)}, {quote(meta.get_field('stamp').column)} "
            f"FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s",
            [VERSION_ROW],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    version, stamp = row
    if stamp is not None and not isinstance(stamp, uuid.UUID):
        stamp = uuid.UUID(stamp)  # SQLite keeps the hex digits; the ORM reads them as this UUID.
    return f"{version}:{stamp}"


def coverage_model_track(model: type[models.Model], *, ignore_fields: Iterable[str] = ()) -> None:
    """Bump the coverage version on every save, delete and many-to-many change of ``model``.

    ``ignore_fields``: a save limited to these fields (``save(update_fields=…)``) does not bump it, for
    columns the cached copy never uses (a queue's round-robin pointer is read fresh; a user's last login).
    """
    TRACKED[model] = frozenset(ignore_fields)
    uid = f"coverage-version:{model._meta.label}"
    pre_save.connect(_before_save, sender=model, weak=False, dispatch_uid=uid)
    post_save.connect(_after_save, sender=model, weak=False, dispatch_uid=uid)
    # Connecting delete receivers also stops Django from deleting these rows without sending signals.
    pre_delete.connect(_before_delete, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(_after_delete, sender=model, weak=False, dispatch_uid=uid)
    for field in model._meta.local_many_to_many:
        through = field.remote_field.through
        m2m_changed.connect(_m2m_changed, sender=through, weak=False, dispatch_uid=f"{uid}:{field.name}")


def _bump_now(using: str, *, before_write: bool) -> None:
    # In a transaction: before the write, so the version row's lock is taken first. In autocommit: after it.
    if connections[using].in_atomic_block == before_write:
        coverage_version_bump(using=using)


def _relevant(sender: type[models.Model], update_fields: Iterable[str] | None) -> bool:
    return update_fields is None or not set(update_fields) <= TRACKED.get(sender, frozenset())


def _before_save(sender: type[models.Model], using: str, update_fields: Any = None, **kwargs: Any) -> None:
    if _relevant(sender, update_fields):
        _bump_now(using, before_write=True)


def _after_save(sender: type[models.Model], using: str, update_fields: Any = None, **kwargs: Any) -> None:
    if _relevant(sender, update_fields):
        _bump_now(using, before_write=False)


def _before_delete(sender: type[models.Model], using: str, **kwargs: Any) -> None:
    _bump_now(using, before_write=True)


def _after_delete(sender: type[models.Model], using: str, **kwargs: Any) -> None:
    _bump_now(using, before_write=False)


def _m2m_changed(sender: type[models.Model], action: str, using: str, **kwargs: Any) -> None:
    if action.startswith("pre_"):
        _bump_now(using, before_write=True)
    elif action.startswith("post_"):
        _bump_now(using, before_write=False)
