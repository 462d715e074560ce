"""Set-based writes: many rows in one statement.

A routing batch writes a thousand leads and their history at once. Written one statement per row, the
round trips and Django's per-row work cost more than routing itself; written as one ``UPDATE … FROM
unnest(…)`` or ``INSERT … SELECT … FROM unnest(…)`` per table, PostgreSQL does the work in one pass.
Each column travels as one typed array, so a batch is a handful of statements whatever its size.

SQLite (the zero-dependency default for a small team and for ``make run``) has no arrays: there the same
functions run one prepared statement for every row (``executemany``), which is fast enough for its scale.

Values are prepared as ``save()`` would prepare them. On PostgreSQL only JSON and decimal columns need
it (psycopg adapts strings, numbers, dates and ids itself), which keeps the Python cost per row to a few
microseconds. The arrays are sent as parameters beside the statement (server-side binding) rather than
quoted into its text as Django's cursors do: quoting a thousand values per column costs more than the
statement itself.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any, cast

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models.expressions import RawSQL
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types.json import Jsonb

from routing import turns
from routing.fields import json_bytes

Field = models.Field


def _fields(model: type[models.Model], names: Iterable[str]) -> list[Field]:
    return [cast(Field, model._meta.get_field(name)) for name in names]


@lru_cache(maxsize=256)
def _pg_column_parts(
    model: type[models.Model], names: tuple[str, ...], *, with_pk: bool
) -> tuple[list[Field], list[str], list[str]]:
    """The fields of ``names`` (the primary key first ``with_pk``), their quoted column names and their array
    casts (``%b::bigint[]``): worked out once per statement shape, not on every batch, since they cost a call
    into each field's type machinery per column."""
    fields = _fields(model, names)
    if with_pk:
        fields = [cast(Field, model._meta.pk), *fields]
    quote = connection.ops.quote_name
    return (
        fields,
        [quote(field.column) for field in fields],
        [f"%b::{_array_type(field)}[]" for field in fields],
    )


def _constant(values: Sequence[Any]) -> bool:
    """Whether a column of two or more rows holds one value throughout (equal, and of one type): it is then
    sent once, as ``(%b::type[])[1]``, rather than once a row. A batch's leads share their routing time,
    attempts, error and most blank optional columns."""
    if len(values) < 2:
        return False
    try:
        if values.count(values[0]) != len(values):
            return False
    except Exception:  # A value that cannot be compared is sent row by row.
        return False
    return len(set(map(type, values))) == 1


def _folded(
    fields: Sequence[Field], columns: Sequence[Sequence[Any]], *, keep: int
) -> tuple[list[Any], list[Any], list[int]]:
    """Each column's parameter: the constant columns' (all but the first ``keep``) as one-element arrays
    (``constants``), the others as whole arrays (``arrays``, in column order), and the positions of the
    columns sent whole. With no column left whole (identical rows), every column goes whole."""
    constant = [index >= keep and _constant(column) for index, column in enumerate(columns)]
    if all(constant):
        constant = [False] * len(columns)
    constants = [_column_values(fields[i], columns[i][:1]) for i, folded in enumerate(constant) if folded]
    whole = [i for i, folded in enumerate(constant) if not folded]
    arrays = [_column_values(fields[i], columns[i]) for i in whole]
    return constants, arrays, whole


def _needs_prep(field: Field) -> bool:
    """Whether psycopg cannot take the Python value of ``field`` as it is."""
    return (
        isinstance(field, models.JSONField | models.DecimalField | models.BinaryField)
        or connection.vendor != "postgresql"
    )


def _column_values(field: Field, values: Sequence[Any]) -> Any:
    """``values`` of ``field``'s column as one parameter: on PostgreSQL, as the binary array itself for the
    common column types (``_array_encode``), else a list that psycopg turns into one."""
    if connection.vendor == "postgresql":
        encoded = _array_encode(_array_type(field), field, values)
        if encoded is not None:
            return encoded
    return _column_values_as_list(field, values)


def _column_values_as_list(field: Field, values: Sequence[Any]) -> list[Any]:
    """``values`` as psycopg's list dumper takes them (and SQLite's ``executemany`` rows)."""
    if type(field) is models.JSONField and field.encoder is None and connection.vendor == "postgresql":
        # As ``get_db_prep_save`` adapts it, with a faster writer of the same JSON (``json_bytes``).
        return [
            value if value is None or hasattr(value, "resolve_expression") else Jsonb(value, dumps=json_bytes)
            for value in values
        ]
    if _needs_prep(field):
        # The connection itself rather than Django's proxy to it, which looks it up again on every use.
        wrapper = connections[DEFAULT_DB_ALIAS]
        return [field.get_db_prep_save(value, wrapper) for value in values]
    return list(values)


class EncodedArray(bytes):
    """A column's values already in PostgreSQL's binary array format. Sent as a parameter of unknown type,
    which the statement's cast (``%b::bigint[]``) gives its type."""


class _EncodedArrayDumper(Dumper):
    format = Format.BINARY
    oid = 0  # Unknown: the server takes the type of the cast around the parameter.

    def dump(self, obj: Any) -> bytes:
        return bytes(obj)


_HEAD = struct.Struct(">iiIii")  # dimensions, has nulls, element type, length, lower bound
_EMPTY = struct.Struct(">iiI")
_LENGTH = struct.Struct(">i")
_NULL = _LENGTH.pack(-1)
_EMPTY_TEXT = _LENGTH.pack(0)
_INT8, _INT4, _INT2 = struct.Struct(">iq"), struct.Struct(">ii"), struct.Struct(">ih")
_FLOAT8 = struct.Struct(">id")
_BOOLEANS = {True: b"\x00\x00\x00\x01\x01", False: b"\x00\x00\x00\x01\x00", None: _NULL}
_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Element type ids (pg_type.oid) of the array types encoded here.
_OIDS = {"bigint": 20, "integer": 23, "smallint": 21, "boolean": 16, "double precision": 701, "text": 25}
_OIDS.update({"varchar": 1043, "timestamp with time zone": 1184, "jsonb": 3802, "bytea": 17})


def typed_array(sql_type: str, values: Sequence[Any]) -> Any:
    """``values`` as one ``%b::{sql_type}[]`` parameter of ``pg_execute``: a binary array for the types
    ``_array_encode`` knows (JSON and bytes excepted), else the list, for psycopg."""
    encoded = _array_encode(sql_type, None, values)
    return encoded if encoded is not None else list(values)


def _array_encode(sql_type: str, field: Field | None, values: Sequence[Any]) -> EncodedArray | None:
    """``values`` as a binary array of ``sql_type``, or None when that type (numeric, date, uuid…) or a value
    (an expression, a naive datetime, a number out of range) is left to psycopg. psycopg's own list dumper
    costs ~0.2 µs a value (0.75 for JSON) in Python; a routing batch sends ~100 values a lead."""
    base = "varchar" if sql_type.startswith("varchar") else sql_type
    oid = _OIDS.get(base)
    if oid is None:
        return None
    if not values:
        return EncodedArray(_EMPTY.pack(0, 0, oid))
    try:
        elements = _ELEMENT_ENCODERS[base](field, values)
    except (TypeError, ValueError, AttributeError, OverflowError, struct.error):
        return None
    if elements is None:
        return None
    has_null = 1 if None in values else 0
    return EncodedArray(_HEAD.pack(1, has_null, oid, len(values), 1) + elements)


def _fixed(packer: struct.Struct, size: int) -> Callable[[Field | None, Sequence[Any]], bytes | None]:
    element = packer.format[-1]

    def encode(field: Field | None, values: Sequence[Any]) -> bytes | None:
        if None not in values and bool not in set(map(type, values)):
            # No NULL nor boolean (the common column of ids or counts): every element, length first, in one
            # ``pack`` of a format for that many, which refuses what a single element's would.
            interleaved = [size] * (2 * len(values))
            interleaved[1::2] = values
            return _fixed_struct(element, len(values)).pack(*interleaved)
        pack = packer.pack
        parts: list[bytes] = []
        add = parts.append
        for value in values:
            if value is None:
                add(_NULL)
            elif type(value) is bool:
                return None  # A boolean in a number column: psycopg says what it says about it.
            else:
                add(pack(size, value))
        return b"".join(parts)

    return encode


@lru_cache(maxsize=256)
def _fixed_struct(element: str, count: int) -> struct.Struct:
    """The format of ``count`` elements of one fixed-size type, each after its length: ``>iqiq…``."""
    return struct.Struct(">" + ("i" + element) * count)


def _texts(field: Field | None, values: Sequence[Any]) -> bytes | None:
    # One pass, and blanks (most of a lead's optional columns) without encoding: 2.5× psycopg's list dumper.
    pack = _LENGTH.pack
    parts: list[bytes] = []
    add = parts.append
    for value in values:
        if value is None:
            add(_NULL)
        elif not isinstance(value, str):
            return None
        elif not value:
            add(_EMPTY_TEXT)
        else:
            encoded = value.encode()
            add(pack(len(encoded)))
            add(encoded)
    return b"".join(parts)


def _variable(encoded: Sequence[bytes | None]) -> bytes:
    pack = _LENGTH.pack
    return b"".join(chain.from_iterable((_NULL,) if item is None else (pack(len(item)), item) for item in encoded))


def _booleans(field: Field | None, values: Sequence[Any]) -> bytes | None:
    if not all(value is None or type(value) is bool for value in values):
        return None
    return b"".join([_BOOLEANS[value] for value in values])


def _timestamps(field: Field | None, values: Sequence[Any]) -> bytes | None:
    # A batch's rows mostly share one instant (its ``now``): each distinct one is worked out once.
    distinct: dict[Any, bytes] = {None: _NULL}
    for value in values:
        if value not in distinct:
            if not isinstance(value, datetime) or value.utcoffset() is None:
                return None  # Naive: psycopg and the server's time zone decide, as before.
            distinct[value] = _INT8.pack(8, (value - _POSTGRES_EPOCH) // _MICROSECOND)
    return b"".join([distinct[value] for value in values])


def _jsons(field: Field | None, values: Sequence[Any]) -> bytes | None:
    if type(field) is not models.JSONField or field.encoder is not None:
        return None  # A field with its own encoder adapts its values itself.
    if any(hasattr(value, "resolve_expression") for value in values):
        return None
    # jsonb's binary form: a version byte (1), then the JSON text. A Python None is SQL NULL, as in save().
    return _variable([None if value is None else b"\x01" + json_bytes(value) for value in values])


def _bytes(field: Field | None, values: Sequence[Any]) -> bytes | None:
    if field is None:
        return None
    prepared = [None if value is None else field.get_prep_value(value) for value in values]
    if not all(value is None or isinstance(value, bytes | bytearray | memoryview) for value in prepared):
        return None
    return _variable([None if value is None else bytes(value) for value in prepared])


_ELEMENT_ENCODERS: dict[str, Callable[[Field | None, Sequence[Any]], bytes | None]] = {
    "bigint": _fixed(_INT8, 8),
    "integer": _fixed(_INT4, 4),
    "smallint": _fixed(_INT2, 2),
    "double precision": _fixed(_FLOAT8, 8),
    "boolean": _booleans,
    "text": _texts,
    "varchar": _texts,
    "timestamp with time zone": _timestamps,
    "jsonb": _jsons,
    "bytea": _bytes,
}


@lru_cache(maxsize=1024)
def _array_type(field: Field) -> str:
    """The SQL type of ``field``'s column, as the element type of an array cast."""
    if isinstance(field, models.ForeignKey):
        # A foreign key's column has its target's type (``ForeignKey.db_type`` says so, through the target).
        field = cast(Field, field.target_field)
    return field.db_type(connection) or "bigint"


def ids_in(ids: list[int]) -> Any:
    """``ids`` as the right-hand side of an ``__in`` filter. On PostgreSQL they travel as one array
    (``IN (SELECT unnest(…))``): for a batch of a thousand ids that costs about a tenth of a thousand
    parameters, each prepared by Django and bound one by one. Plain SQL has its own twin,
    ``routing.rows.sql_ids_in``."""
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", [ids])
    return ids


def pg_execute(sql: str, params: Sequence[Any], *, fetch: bool = False) -> list[tuple[Any, ...]]:
    """Run one set-based statement on Django's PostgreSQL connection (so in its transaction) with
    server-side binding: ``%b`` parameters travel in binary, so a column of a thousand values costs next to
    nothing to send, where Django's cursor would spell each array out as text."""
    connection.ensure_connection()
    # Django's error classes (IntegrityError for a unique violation), as its own cursors raise them.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.adapters.register_dumper(EncodedArray, _EncodedArrayDumper)
        cursor.execute(sql, params)
        return cursor.fetchall() if fetch else []


@contextlib.contextmanager
def pipelined() -> Iterator[None]:
    """On PostgreSQL, send the statements run inside without waiting for each one's result (psycopg's pipeline
    mode): the server works on them while this process goes on, and a statement whose result is read waits
    for those before it. The block's end waits for all of them and raises the first error. Elsewhere (and
    with a libpq too old for pipelines), nothing changes. For a caller that alternates Python work with
    set-based writes it does not read back."""
    if connection.vendor != "postgresql" or not psycopg.Pipeline.is_supported():  # libpq before 14 has none
        yield
        return
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.pipeline():
        yield


def reads_together(statements: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
    """The rows of each of these statements (plain SQL with ``%s`` parameters, as Django's cursors take it, and
    on PostgreSQL ``%b`` ones, as ``pg_execute`` takes them), in order; no rows for a statement that returns
    none (``SET …``). They run in order, each seeing what the ones before it did (a lock taken, a setting).
    On PostgreSQL they travel in one round trip (psycopg's pipeline mode): a small batch asks several such
    questions before its writes, and waited for each in turn."""
    if connection.vendor != "postgresql" or len(statements) < 2 or not psycopg.Pipeline.is_supported():
        found = []
        for sql, params in statements:
            if "%b" in sql:
                found.append(pg_execute(sql, params, fetch=True))
                continue
            with connection.cursor() as django_cursor:
                django_cursor.execute(sql, params)
                found.append(django_cursor.fetchall() if django_cursor.description is not None else [])
        return found
    connection.ensure_connection()
    raw = connection.connection
    with connection.wrap_database_errors:
        # A statement with binary parameters (``%b``) binds them on the server, as ``pg_execute`` does; the
        # others as Django's cursors bind theirs.
        cursors = [psycopg.Cursor(raw) if "%b" in sql else raw.cursor() for sql, _ in statements]
        try:
            with raw.pipeline():
                for cursor, (sql, params) in zip(cursors, statements, strict=True):
                    cursor.adapters.register_dumper(EncodedArray, _EncodedArrayDumper)
                    cursor.execute(sql, params)
                # The block's end waits for the answers, and for whatever lock the first statements take
                # (``routing.turns``).
                turns.let_go()
            return [cursor.fetchall() if cursor.description is not None else [] for cursor in cursors]
        finally:
            turns.take()
            for cursor in cursors:
                cursor.close()


def rows_update(model: type[models.Model], objects: Sequence[Any], field_names: Sequence[str]) -> None:
    """Write these fields of these rows: one ``UPDATE … FROM unnest(…)`` on PostgreSQL, one prepared
    ``UPDATE`` per row elsewhere. Values are taken from each object's attributes (``attname``)."""
    if not objects:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk = cast(Field, model._meta.pk)
    pk_column = quote(pk.column)
    if connection.vendor == "postgresql":
        fields, names, casts = _pg_column_parts(model, tuple(field_names), with_pk=True)
        values = _attribute_columns(objects, [field.attname for field in fields])
        constants, arrays, whole = _folded(fields, values, keep=1)  # the key always goes whole
        sent = set(whole)
        sets = ", ".join(
            f"{names[i]} = v.{names[i]}" if i in sent else f"{names[i]} = ({casts[i]})[1]"
            for i in range(1, len(fields))
        )
        pg_execute(
            f"UPDATE {table} SET {sets} FROM unnest({', '.join(casts[i] for i in whole)}) "
            f"AS v({', '.join(names[i] for i in whole)}) WHERE {table}.{pk_column} = v.{pk_column}",
            [*constants, *arrays],
        )
        return
    fields = _fields(model, field_names)
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    rows = [
        [field.get_db_prep_save(getattr(obj, field.attname), connection) for field in fields] + [obj.pk]
        for obj in objects
    ]
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {assignments} WHERE {pk_column} = %s", rows)


def _attribute_columns(objects: Sequence[Any], attnames: list[str]) -> list[Sequence[Any]]:
    """Each attribute's values across ``objects``, as ``getattr`` gives them. Where every object holds them
    all in its own dict (a model instance's loaded fields), they are read from there: Django's field
    descriptors give the same value through a Python call, ~0.1 µs each, and a routing batch reads 36 columns
    of a thousand rows. Read a row at a time by ``itemgetter`` and turned into columns by ``zip``, both in C
    (0.6 ms for 1,000 rows of 40 columns, against 1.2 to check each dict for every name and read column by
    column); a dict without one of the names (a deferred field) sends the whole read through ``getattr``."""
    try:
        rows = map(itemgetter(*attnames), [obj.__dict__ for obj in objects])
        if len(attnames) == 1:  # ``itemgetter`` of one name gives the value, not a row of one.
            return [list(rows)]
        return list(zip(*rows))  # noqa: B905 - every row has every name
    except (AttributeError, KeyError):  # An object without a dict, or a field not loaded (deferred).
        return [[getattr(obj, name) for obj in objects] for name in attnames]


def rows_insert(
    model: type[models.Model],
    rows: Sequence[Sequence[Any]],
    field_names: Sequence[str],
    *,
    returning_pk: bool = False,
    on_conflict_ignore: bool = False,
) -> list[int]:
    """Insert ``rows`` (values in the order of ``field_names``): one ``INSERT … SELECT … FROM unnest(…)``
    on PostgreSQL, one prepared ``INSERT`` per row elsewhere. Returns the new primary keys in the order of
    ``rows`` when ``returning_pk`` (not with ``on_conflict_ignore``, where skipped rows have none)."""
    if not rows:
        return []
    if returning_pk and on_conflict_ignore:
        raise ValueError("Ignored conflicts return no keys for their rows.")
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    conflict = " ON CONFLICT DO NOTHING" if on_conflict_ignore else ""
    pk_column = quote(cast(Field, model._meta.pk).column)
    returning = f" RETURNING {pk_column}" if returning_pk else ""
    if connection.vendor == "postgresql":
        fields, names, casts = _pg_column_parts(model, tuple(field_names), with_pk=False)
        columns = list(zip(*rows, strict=True))
        constants, arrays, whole = _folded(fields, columns, keep=0)
        sent = set(whole)
        selected = ", ".join(f"v.{names[i]}" if i in sent else f"({casts[i]})[1]" for i in range(len(fields)))
        # unnest yields rows in array order, and INSERT … SELECT keeps it: RETURNING answers in that order.
        found = pg_execute(
            f"INSERT INTO {table} ({', '.join(names)}) SELECT {selected} "
            f"FROM unnest({', '.join(casts[i] for i in whole)}) AS v({', '.join(names[i] for i in whole)})"
            f"{conflict}{returning}",
            [*constants, *arrays],
            fetch=returning_pk,
        )
        return [row[0] for row in found]
    fields = _fields(model, field_names)
    columns_sql = ", ".join(quote(field.column) for field in fields)
    with connection.cursor() as cursor:
        placeholders = ", ".join(["%s"] * len(fields))
        prepared = [
            [field.get_db_prep_save(value, connection) for field, value in zip(fields, row, strict=True)]
            for row in rows
        ]
        sql = f"INSERT INTO {table} ({columns_sql}) VALUES ({placeholders}){conflict}{returning}"
        if not returning_pk:
            cursor.executemany(sql, prepared)
            return []
        keys = []
        for row in prepared:
            cursor.execute(sql, row)
            keys.append(cursor.fetchone()[0])
        return keys


def objects_insert(model: type[models.Model], objects: Sequence[models.Model]) -> None:
    """Insert new instances of ``model`` as ``bulk_create`` does (no signals; automatic timestamps set; each
    object gets its new primary key), on PostgreSQL in one ``INSERT … SELECT … FROM unnest(…)`` with every
    column as one array. ``bulk_create`` spells a thousand rows of fifty columns out as one statement of fifty
    thousand placeholders, and building and parsing it cost several times what storing the rows does."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objects)
        return
    fields = [cast(Field, field) for field in model._meta.concrete_fields if not field.primary_key]
    stamped = {
        field.attname for field in fields if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    }
    rows = [
        [field.pre_save(obj, True) if field.attname in stamped else getattr(obj, field.attname) for field in fields]
        for obj in objects
    ]
    keys = rows_insert(model, rows, [field.name for field in fields], returning_pk=True)
    for obj, key in zip(objects, keys, strict=True):
        obj.pk = key
        obj._state.adding = False
        obj._state.db = connection.alias
