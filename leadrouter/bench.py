"""What the benchmark commands share: a scratch PostgreSQL database next to the configured one, set-based
filling from a template row, percentiles, and the write ceiling.

The write ceiling answers "how fast could routing go if Python cost nothing?": it writes the rows a
routed lead writes, set-based, in bare SQL, into copies of the real tables, so routing's own figure can
be read as a share of what the database allows on the same machine in the same run.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management.base import OutputWrapper
from django.db import connection, models, transaction

from routing.models import Assignment, Lead, Notification, RepTask
from sla.models import LeadSla


class DiscardingEmailBackend(BaseEmailBackend):
    """Mail as a benchmark's worker sends it: each message built into the bytes an SMTP server would receive
    (as Django's SMTP backend builds them), then dropped. Django's locmem backend would keep every message in
    the worker's memory for the whole run, and its dummy backend does not build them."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for message in email_messages:
            message.message().as_bytes(linesep="\r\n")
        return len(email_messages)


# The scratch schema holding the ceiling's copies of the tables.
CEILING_SCHEMA = "bench_ceiling"
# Lead columns intake writes and routing leaves alone; the ceiling's UPDATE sets every other column.
INTAKE_COLUMNS = frozenset(
    {
        "id",
        "raw_payload",
        "external_id",
        "source",
        "campaign",
        "intake_source_id",
        "idempotency_key",
        "lead_import_id",
        "lane",
        "received_at",
    }
)
# Notifications per routed lead in the ceiling: an e-mail and a Slack message.
CEILING_NOTIFICATION_KINDS = (Notification.Kind.EMAIL, Notification.Kind.SLACK)
# COPY's text format: NULL, and the characters escaped inside a value.
COPY_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@contextlib.contextmanager
def scratch_database(name: str, *, keep: bool, stdout: OutputWrapper) -> Iterator[None]:
    """Create database ``name`` (dropping an old one), point Django's default connection at it for the
    block, then drop it unless ``keep``. The caller migrates and fills it."""
    db = settings.DATABASES["default"]
    admin = psycopg.connect(
        dbname="postgres",
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        autocommit=True,
    )
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
        original = db["NAME"]
        connection.close()
        db["NAME"] = name
        try:
            yield
        finally:
            connection.close()
            db["NAME"] = original
            if keep:
                stdout.write(f"Kept database {name}.")
            else:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``share`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def insert_from_template(
    model: type[models.Model], *, source: str, values: dict[str, str], params: dict[str, Any] | None = None
) -> int:
    """``INSERT INTO <model> (every column but the key) SELECT … <source>``; returns the rows inserted.

    ``source`` is the rest of the SELECT (``FROM …``) and must name a row of the same table ``t`` (a
    template, typically a temporary copy of a real row); ``values`` gives SQL per column, and every other
    column is the template's. So the rows are as wide as real ones, and a column added to the model later
    needs no change here.
    """
    quote = connection.ops.quote_name
    columns = [field.column for field in model._meta.concrete_fields if not field.primary_key]
    expressions = [values.get(column, f"t.{quote(column)}") for column in columns]
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(column) for column in columns)}) "
        f"SELECT {', '.join(expressions)} {source}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return int(cursor.rowcount)


# --- The write ceiling ------------------------------------------------------------------------------------


@dataclass
class CeilingReport:
    """What the ceiling wrote, and how long the batches took (COPY, statements and commit)."""

    leads: int
    batches: list[float]
    rows_per_lead: dict[str, int]
    templates: int

    @property
    def seconds(self) -> float:
        return sum(self.batches)

    @property
    def leads_per_s(self) -> float:
        return self.leads / self.seconds if self.seconds else 0.0


# The tables a routed lead writes, with the columns that point at the lead and at its assignment.
_CEILING_TABLES: tuple[tuple[type[models.Model], str | None, str | None], ...] = (
    (Lead, None, None),
    (Assignment, "lead_id", None),
    (LeadSla, "lead_id", None),
    (Notification, "lead_id", "assignment_id"),
    (RepTask, "lead_id", "assignment_id"),
)


class WriteCeiling:
    """Write ``leads`` routed leads' rows set-based into copies of the real tables, a batch at a time, and time
    each batch; a context manager, so that its batches can be interleaved with other work (routing's own
    batches, in ``bench_routing``) and both are measured in the same moments of the machine.

    On entering:

    1. Create the schema ``schema`` with a copy of each table a routed lead writes
       (``CREATE TABLE … (LIKE … INCLUDING ALL)``: columns, defaults, indexes and checks), with the real
       tables' foreign keys unless ``foreign_keys`` is False (those between copied tables point at the
       copies, the others at the real rows, deferred as Django declares them), and a temporary staging
       table per table (emptied at each commit, shared by every ceiling of the connection).
    2. Templates: the rows routing wrote for ``template_lead_ids`` (the lead with its receipt, its
       assignment, clock, notification and task), read with ``COPY … TO STDOUT``.
    3. Fill the lead copy with ``leads`` leads as intake stores them (``received``, routing's columns at
       their defaults), then ``VACUUM ANALYZE``.
    4. Prepare each batch's COPY data from the templates, with new ids (not timed).

    Then each ``batch()``, timed: COPY into the staging tables, one ``UPDATE … FROM`` for the leads, one
    ``INSERT … SELECT`` per other table, commit. On leaving, after every batch was written, the copies are
    checked to hold every row; the schema is dropped in any case.
    """

    def __init__(
        self,
        *,
        template_lead_ids: list[int],
        leads: int,
        batch_size: int = 1000,
        foreign_keys: bool = True,
        schema: str = CEILING_SCHEMA,
    ) -> None:
        self.template_lead_ids = template_lead_ids
        self.leads = leads
        self.batch_size = batch_size
        self.foreign_keys = foreign_keys
        self.schema = schema
        self.times: list[float] = []
        self.templates = 0
        self._payloads: list[dict[type[models.Model], str]] = []
        self._sizes: list[int] = []
        self._statements: list[str] = []

    @property
    def done(self) -> bool:
        return len(self.times) == len(self._payloads)

    def __enter__(self) -> WriteCeiling:
        quote = connection.ops.quote_name
        columns = {model: _columns(model) for model, _, _ in _CEILING_TABLES}
        templates = _ceiling_templates(self.template_lead_ids, columns)
        if not templates:
            raise ValueError("No routed lead has an assignment, a clock, a notification and a task to copy.")
        self.templates = len(templates)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
            cursor.execute(f"CREATE SCHEMA {self.schema}")
            for model, _, _ in _CEILING_TABLES:
                table = quote(model._meta.db_table)
                cursor.execute(f"CREATE TABLE {self.schema}.{table} (LIKE public.{table} INCLUDING ALL)")
                cursor.execute(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_stage(model)} (LIKE public.{table}) ON COMMIT DELETE ROWS"
                )
            if self.foreign_keys:
                _ceiling_foreign_keys(cursor, self.schema)
        try:
            _ceiling_fill(self.schema, self.leads, templates, columns)
            numbers = [
                range(start, min(start + self.batch_size, self.leads))
                for start in range(0, self.leads, self.batch_size)
            ]
            self._sizes = [len(batch) for batch in numbers]
            self._payloads = [_ceiling_batch(batch, templates, columns) for batch in numbers]
        except BaseException:
            self._drop()
            raise
        lead_table = f"{self.schema}.{quote(Lead._meta.db_table)}"
        routed = [column for column in columns[Lead] if column not in INTAKE_COLUMNS]
        self._statements = [
            f"UPDATE {lead_table} AS l SET {', '.join(f'{quote(c)} = s.{quote(c)}' for c in routed)} "
            f"FROM {_stage(Lead)} AS s WHERE l.id = s.id",
            *(
                f"INSERT INTO {self.schema}.{quote(model._meta.db_table)} SELECT * FROM {_stage(model)}"
                for model, _, _ in _CEILING_TABLES[1:]
            ),
        ]
        return self

    def batch(self) -> float:
        """Write the next batch in a transaction of its own; returns its seconds."""
        payload = self._payloads[len(self.times)]
        clock = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            for model, data in payload.items():
                with cursor.copy(f"COPY {_stage(model)} FROM STDIN") as copy:
                    copy.write(data)
            for statement in self._statements:
                cursor.execute(statement)
        self.times.append(time.perf_counter() - clock)
        return self.times[-1]

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        try:
            if error is None and self.done:
                _ceiling_check(self.schema, self.leads)
        finally:
            self._drop()

    def _drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    @property
    def report(self) -> CeilingReport:
        return CeilingReport(
            leads=sum(self._sizes[: len(self.times)]),
            batches=list(self.times),
            rows_per_lead={
                "lead row update": 1,
                "assignment": 1,
                "SLA clock": 1,
                "notification": len(CEILING_NOTIFICATION_KINDS),
                "rep task": 1,
            },
            templates=self.templates,
        )


def _ceiling_foreign_keys(cursor: Any, schema: str) -> None:
    """Give the copies the real tables' foreign keys: a reference to a copied table points at its copy."""
    copied = [model._meta.db_table for model, _, _ in _CEILING_TABLES]
    for table in copied:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
            [f"public.{table}"],
        )
        for name, definition in cursor.fetchall():
            for target in copied:
                definition = definition.replace(f"REFERENCES {target}(", f"REFERENCES {schema}.{target}(")
            quote = connection.ops.quote_name
            cursor.execute(f"ALTER TABLE {schema}.{quote(table)} ADD CONSTRAINT {quote(name)} {definition}")


def _ceiling_check(schema: str, leads: int) -> None:
    """The copies hold what the batches claim to have written: every lead routed, every row there."""
    quote = connection.ops.quote_name
    expected = {model: leads for model, _, _ in _CEILING_TABLES}
    expected[Notification] = leads * len(CEILING_NOTIFICATION_KINDS)
    with connection.cursor() as cursor:
        for model, count in expected.items():
            table = f"{schema}.{quote(model._meta.db_table)}"
            where = " WHERE status <> 'received'" if model is Lead else ""
            cursor.execute(f"SELECT count(*) FROM {table}{where}")
            (found,) = cursor.fetchone()
            if found != count:
                raise RuntimeError(f"The write ceiling wrote {found} rows to {table}, not {count}.")


def _columns(model: type[models.Model]) -> list[str]:
    """The table's columns in their order, as ``SELECT *`` and ``COPY`` give them."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(model._meta.db_table)} LIMIT 0")
        return [column.name for column in cursor.description]


def _stage(model: type[models.Model]) -> str:
    return f"bench_stage_{model._meta.db_table}"


Row = dict[str, str | None]


def _ceiling_templates(lead_ids: list[int], columns: dict[type[models.Model], list[str]]) -> list[dict[Any, Row]]:
    """For each lead that has every row, {model: its first row as COPY text values by column}."""
    ids = "{" + ",".join(str(int(pk)) for pk in lead_ids) + "}"
    rows: dict[type[models.Model], dict[str, Row]] = {}
    for model, lead_column, _ in _CEILING_TABLES:
        table = connection.ops.quote_name(model._meta.db_table)
        key = lead_column or "id"
        query = f"SELECT DISTINCT ON ({key}) * FROM {table} WHERE {key} = ANY('{ids}'::bigint[]) ORDER BY {key}, id"
        rows[model] = {row[key] or "": row for row in _copy_out(query, columns[model])}
    return [
        {model: rows[model][lead_id] for model, _, _ in _CEILING_TABLES}
        for lead_id in rows[Lead]
        if all(lead_id in rows[model] for model, _, _ in _CEILING_TABLES)
    ]


def _copy_out(query: str, columns: list[str]) -> list[Row]:
    """The rows of ``query`` as COPY text values (None for NULL), by column."""
    data = bytearray()
    with connection.cursor() as cursor, cursor.copy(f"COPY ({query}) TO STDOUT") as copy:
        for chunk in copy:
            data += chunk
    return [
        dict(zip(columns, (None if value == COPY_NULL else value for value in line.split("\t")), strict=True))
        for line in data.decode().splitlines()
        if line
    ]


def _copy_line(columns: list[str], row: Mapping[str, str | None]) -> str:
    return "\t".join(COPY_NULL if row[column] is None else str(row[column]) for column in columns) + "\n"


def _copy_value(field: models.Field[Any, Any], value: Any) -> str | None:
    """A model default as COPY text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dict | list):
        return json.dumps(value).translate(_COPY_ESCAPES)
    return str(field.get_db_prep_save(value, connection)).translate(_COPY_ESCAPES)


def _ceiling_fill(
    schema: str, leads: int, templates: list[dict[Any, Row]], columns: dict[type[models.Model], list[str]]
) -> None:
    """``leads`` received leads in the lead copy: intake's columns from the templates, the rest at the
    model's defaults (what ``leads_receive`` leaves them at)."""
    defaults: Row = {}
    for field in Lead._meta.concrete_fields:
        default = field.get_default()
        # Columns without a default (the automatic timestamps) keep the template's value.
        if field.column not in INTAKE_COLUMNS and (default is not None or field.null):
            defaults[field.column] = _copy_value(field, default)
    lines = [
        _copy_line(columns[Lead], {**templates[n % len(templates)][Lead], **defaults, **_lead_keys(n)})
        for n in range(leads)
    ]
    table = f"{schema}.{connection.ops.quote_name(Lead._meta.db_table)}"
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} FROM STDIN") as copy:
            copy.write("".join(lines))
        for model, _, _ in _CEILING_TABLES:
            cursor.execute(f"VACUUM ANALYZE {schema}.{connection.ops.quote_name(model._meta.db_table)}")


def _lead_keys(n: int) -> Row:
    """Lead ``n``'s id and keys: unique, so the copied unique indexes accept every row."""
    return {"id": str(n + 1), "external_id": f"ceiling-{n}", "idempotency_key": "", "duplicate_of_id": None}


def _ceiling_batch(
    numbers: range, templates: list[dict[Any, Row]], columns: dict[type[models.Model], list[str]]
) -> dict[type[models.Model], str]:
    """One batch's COPY text per table: each lead's rows copied from its template with new ids."""
    lines: dict[type[models.Model], list[str]] = {model: [] for model, _, _ in _CEILING_TABLES}
    kinds = len(CEILING_NOTIFICATION_KINDS)
    for n in numbers:
        template = templates[n % len(templates)]
        lead_id = str(n + 1)
        lines[Lead].append(_copy_line(columns[Lead], {**template[Lead], **_lead_keys(n)}))
        for model, lead_column, assignment_column in _CEILING_TABLES[1:]:
            ids: Row = {lead_column: lead_id} if lead_column else {}
            if assignment_column:
                ids[assignment_column] = lead_id
            if model is Notification:
                for index, kind in enumerate(CEILING_NOTIFICATION_KINDS):
                    row = {**template[model], **ids, "id": str(n * kinds + index + 1), "kind": str(kind)}
                    lines[model].append(_copy_line(columns[model], row))
            else:
                lines[model].append(_copy_line(columns[model], {**template[model], **ids, "id": lead_id}))
    return {model: "".join(model_lines) for model, model_lines in lines.items()}
