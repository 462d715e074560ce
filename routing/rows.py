"""Model rows read with one plain statement, for hot paths where building and compiling the ORM's queryset
cost more than running it (measured: a six-way ``select_related`` for a notice, about 2 ms of CPU per call; the
API key read on every request, ten times its statement).

``rows_select`` gives the same model instances the ORM would: every column, converted as the ORM converts it
(JSON, SQLite's datetimes), with the related rows of ``RowSelect.related`` LEFT JOINed and cached on each
instance as ``select_related`` caches them. Each shape's SQL and converters are built once per connection.
Callers write the WHERE (and any ORDER BY) in SQL on alias ``t0``.

Instances are built as ``Model.from_db`` builds them, without running ``Model.__init__`` for each row
(``instances_build``): for a routing batch's thousand leads of fifty columns, ``__init__`` and its
descriptors cost about twice the statement. A model with ``pre_init`` or ``post_init`` receivers is built
through ``from_db``, so its receivers still run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import psycopg
from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import JSONField, Model, signals
from django.db.models.base import ModelState

from routing import turns
from routing.fields import json_value


@dataclass(frozen=True)
class RowSelect:
    """A model's rows by id, each with the rows of ``related`` (forward foreign keys, or a reverse one-to-one
    such as ``task``) LEFT JOINed and cached on it, as ``select_related`` would."""

    model: type[Model]
    related: tuple[str, ...] = ()
    # Fields of ``model`` not read: deferred, as ``QuerySet.defer`` leaves them (read on first access).
    omit: tuple[str, ...] = ()


class _Table(NamedTuple):
    model: type[Model]
    # The fields' attnames, in the order their columns are selected.
    names: list[str]
    start: int
    end: int
    pk: int
    # The columns the ORM converts when reading (JSON, SQLite's datetimes), with their converters.
    converters: list[tuple[int, Any, list[Callable[..., Any]]]]
    # How the row is cached on the first table's instance: the relation's ``set_cached_value``s.
    relation: Any


@functools.lru_cache(maxsize=64)
def _compiled(select: RowSelect, db: BaseDatabaseWrapper) -> tuple[str, list[_Table]]:
    """``SELECT … FROM … LEFT JOIN …`` for ``select`` (without WHERE), and how each table's columns are read.
    Built once per database connection object: the converters are bound to it."""
    quote = db.ops.quote_name
    tables: list[_Table] = []
    sources = [f"{quote(select.model._meta.db_table)} t0"]
    models: list[tuple[type[Model], Any]] = [(select.model, None)]
    for n, name in enumerate(select.related, start=1):
        relation: Any = select.model._meta.get_field(name)
        model: type[Model] = relation.related_model
        if relation.concrete:  # A foreign key of the first table: its row's primary key is the key's value.
            on = f"t{n}.{quote(model._meta.pk.column)} = t0.{quote(relation.column)}"
        else:  # A reverse one-to-one: the other table's key points at the first table's row.
            on = f"t{n}.{quote(relation.field.column)} = t0.{quote(select.model._meta.pk.column)}"
        sources.append(f"LEFT JOIN {quote(model._meta.db_table)} t{n} ON {on}")
        models.append((model, relation))
    columns: list[str] = []
    for n, (model, relation) in enumerate(models):
        fields = [field for field in model._meta.concrete_fields if n or field.name not in select.omit]
        converters = []
        for index, model_field in enumerate(fields):
            column = model_field.get_col(model._meta.db_table)
            found = db.ops.get_db_converters(column) + column.get_db_converters(db)
            if type(model_field) is JSONField and model_field.decoder is None and len(found) == 1:
                found = [_json_read]
            if found:
                converters.append((index, column, found))
        start = len(columns)
        columns.extend(f"t{n}.{quote(model_field.column)}" for model_field in fields)
        pk = [model_field.primary_key for model_field in fields].index(True)
        tables.append(_Table(model, [f.attname for f in fields], start, len(columns), pk, converters, relation))
    return f"SELECT {', '.join(columns)} FROM {' '.join(sources)}", tables


class RowQuery(NamedTuple):
    """One statement of ``rows_select_together``: ``where`` and its ``params``, and ``planner``: PostgreSQL
    planner settings (``{"enable_sort": "off"}``) for this statement alone, set before it and reset after it in
    the caller's transaction, in the same round trip (ignored outside a transaction and on other databases)."""

    where: str
    params: Sequence[Any]
    planner: Mapping[str, str] | None = None


def rows_select(select: RowSelect, where: str, params: Sequence[Any]) -> list[Any]:
    """The first table's instances of ``select``'s rows that match ``where`` (SQL on alias ``t0``, with an
    ORDER BY if wanted), their related rows cached on them (None where there is none)."""
    return rows_select_together(select, [RowQuery(where, params)])[0]


def rows_select_together(select: RowSelect, queries: Sequence[RowQuery]) -> list[list[Any]]:
    """``rows_select`` for each of ``queries``, in order, each seeing what the ones before it did (rows they
    locked); on PostgreSQL inside a transaction, in one round trip (pipeline mode)."""
    db = transaction.get_connection()
    sql, tables = _compiled(select, db)
    for query in queries:
        if query.planner and not all(_SETTING_NAME.fullmatch(name) for name in query.planner):
            raise ValueError(f"Not a setting's name: {sorted(query.planner)}")
    loader = _fast_timestamptz_loader(db)
    together = db.vendor == "postgresql" and db.in_atomic_block and psycopg.Pipeline.is_supported()
    found: list[list[Any]] = []
    with contextlib.ExitStack() as stack:
        cursors = [stack.enter_context(db.cursor()) for _ in queries]
        if loader is not None:
            for cursor in cursors:
                cursor.cursor.adapters.register_loader(_TIMESTAMPTZ_OID, loader)
        if together and (len(queries) > 1 or any(query.planner for query in queries)):
            raw = db.connection
            try:
                with db.wrap_database_errors, raw.pipeline():
                    for cursor, query in zip(cursors, queries, strict=True):
                        for name, value in (query.planner or {}).items():
                            raw.execute("SELECT set_config(%s, %s, true)", [name, value])
                        cursor.execute(f"{sql} WHERE {query.where}", query.params)
                        for name in query.planner or {}:
                            raw.execute(f"RESET {name}")
                    # The block's end waits for the rows (``routing.turns``).
                    turns.let_go()
            finally:
                turns.take()
        else:
            with turns.handed_over():  # Waiting for the rows.
                for cursor, query in zip(cursors, queries, strict=True):
                    cursor.execute(f"{sql} WHERE {query.where}", query.params)
        for cursor in cursors:
            found.append(_instances(cursor.fetchall(), tables, db))
    return found


def _instances(rows: Sequence[Sequence[Any]], tables: list[_Table], db: BaseDatabaseWrapper) -> list[Any]:
    """The first table's instances of one statement's ``rows``, their related rows cached on them."""
    if len(tables) == 1:
        # No related rows: the instances are built together (``instances_build`` checks the model's signals
        # once, not once a row).
        (table,) = tables
        return instances_build(table.model, table.names, [_converted(table, row, db) for row in rows], db.alias)
    found = []
    for row in rows:
        instance = None
        for table in tables:
            if row[table.start + table.pk] is None:
                related = None
            else:
                related = instances_build(table.model, table.names, [_converted(table, row, db)], db.alias)[0]
            if instance is None:
                instance = related
                continue
            table.relation.set_cached_value(instance, related)
            if not table.relation.concrete and related is not None:
                # The task's own assignment is the one it was read with.
                table.relation.field.set_cached_value(related, instance)
        found.append(instance)
    return found


def _converted(table: _Table, row: Sequence[Any], db: BaseDatabaseWrapper) -> list[Any]:
    """``table``'s values of ``row``, converted as the ORM converts them."""
    values = list(row[table.start : table.end])
    for index, column, converters in table.converters:
        value = values[index]
        for convert in converters:
            value = convert(value, column, db)
        values[index] = value
    return values


_TIMESTAMPTZ_OID = 1184
# A PostgreSQL setting's name, as ``RESET`` takes it (it takes no parameter).
_SETTING_NAME = re.compile(r"[a-z_]+")


def _fast_timestamptz_loader(db: BaseDatabaseWrapper) -> Any:
    """psycopg's own ``timestamptz`` loader (compiled, where psycopg's C extension is installed) when it reads
    what Django's reads, else None. Django installs a Python subclass of it on every connection, which puts
    the connection's time zone on each value: ~3 µs a value, and a routing batch's leads carry several. In a
    session in UTC (Django's own, unless ``DATABASES["TIME_ZONE"]`` says otherwise) psycopg's loader already
    gives UTC datetimes."""
    if db.vendor != "postgresql" or db.timezone_name != "UTC" or db.timezone is not dt.UTC:
        return None
    return _psycopg_timestamptz_loader()


@functools.cache
def _psycopg_timestamptz_loader() -> Any:
    return psycopg.adapters.get_loader(_TIMESTAMPTZ_OID, psycopg.pq.Format.TEXT)


def sql_ids_in(column: str, ids: Iterable[int]) -> tuple[str, list[Any]]:
    """``column IN ids`` as SQL and its parameters, for Django's cursors, for a column of ids (``bigint``). On
    PostgreSQL one array parameter (``column = ANY(%s::bigint[])``): psycopg splits a statement's text at each
    of its parameters, ~3 µs an id for a list of a thousand (2.4–3.6 ms a statement against 0.6 for the array,
    in one run). The cast matters: psycopg sends small ids as ``int4[]``, and ``bigint = ANY(int4[])`` is
    tested element by element on each row, where one type is hashed once (a claim of 1,000 leads: 10.7 ms
    against 1.0). An ORM filter's ``__in`` takes ``routing.bulk.ids_in``."""
    ids = list(ids)
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::bigint[])", [ids]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", ids


def rows_by_pk(select: RowSelect, pks: set[int]) -> dict[int, Any]:
    if not pks:
        return {}
    where, params = sql_ids_in("t0.id", sorted(pks))
    return {row.pk: row for row in rows_select(select, where, params)}


def instances_build(
    model: type[Model], names: Sequence[str], rows: Sequence[Sequence[Any]], db_alias: str
) -> list[Any]:
    """Instances of ``model`` from rows of already converted values for the fields ``names`` (attnames): what
    ``model.from_db`` gives (fields left out are deferred; the instance is saved, in ``db_alias``), without a
    call to ``Model.__init__`` per row unless the model has ``pre_init`` or ``post_init`` receivers."""
    if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
        return [model.from_db(db_alias, list(names), list(row)) for row in rows]
    new = model.__new__
    found = []
    for row in rows:
        instance = new(model)
        state = ModelState()
        state.adding = False
        state.db = db_alias
        values = dict(zip(names, row, strict=True))
        values["_state"] = state
        instance.__dict__ = values
        found.append(instance)
    return found


def _json_read(value: Any, expression: Any, connection: Any) -> Any:
    """``JSONField.from_db_value`` for a plain column without a custom decoder, with the faster reader."""
    if value is None or not isinstance(value, str | bytes):
        return value
    try:
        return json_value(value)
    except ValueError:  # As JSONField does: text that is not JSON comes back as it is.
        return value
