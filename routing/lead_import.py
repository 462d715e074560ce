"""CSV import of leads, for admin's upload page and ``manage.py import_leads``.

A file is checked row by row exactly as the API checks a posted lead
(``LeadIntakeSerializer``), and the good rows are stored through the same
intake service (``leads_receive``) in bulk inserts of ``chunk_size`` rows.
Every bad row is reported with its line number, so nothing is lost silently.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from django.contrib.auth.models import User
from django.core.files import File
from django.db import transaction

from routing.intake import LeadIntakeSerializer, lead_validate, leads_receive
from routing.models import LeadImport

# Far above any real export, and low enough that one import cannot fill the disk or run for hours.
MAX_ROWS = 1_000_000
# The report keeps this many bad rows in detail; the rejected count is always exact.
MAX_REPORTED_ERRORS = 10_000
FORM_PREFIX = "form:"
# Temporary copies stay in memory up to this size, then go to disk.
SPOOL_MEMORY = 32 * 1024 * 1024
# Columns whose cell holds JSON, because the API field is an object or a list.
JSON_FIELDS = {"form_answers": dict, "page_history": list}

Progress = Callable[[int, int], None]
# (line where the row starts, its payload, errors found while reading it)
Row = tuple[int, dict[str, Any], dict[str, list[str]]]


class LeadImportError(ValueError):
    """The file cannot be imported at all (empty, not CSV, no lead columns, too big). The message says why."""


def leads_import_csv(
    *,
    file: IO[str] | IO[bytes],
    file_name: str,
    created_by: User | None,
    skip_invalid: bool,
    chunk_size: int = 1000,
    progress: Progress | None = None,
) -> LeadImport:
    """Import the leads in a CSV file and return the ``LeadImport`` with its report.

    1. Read the header: names are matched to the API's fields ignoring case and
       spaces; ``form:<question>`` columns become ``form_answers``; other columns
       are kept in the raw payload. Count the rows (at most ``MAX_ROWS``).
    2. Check every row with ``LeadIntakeSerializer``; a bad row is reported as
       ``{"row": <line in the file, header = 1>, "errors": {field: [messages]}}``.
    3. With ``skip_invalid``, each chunk of good rows is stored as soon as it is
       checked (and the import's counts are saved with it). Without it, nothing is
       stored when any row is bad; when all are good, they are stored in one
       transaction, so the import is all-or-nothing even if it fails half-way.
    4. Repeated (source, external_id) pairs, in the file or already stored, are
       counted as existing rather than stored twice (``leads_receive`` decides).

    ``progress(done_rows, total_rows)`` is called after each chunk is checked.

    Side effects: creates the ``LeadImport`` row and the leads; after commit,
    ``leads_receive`` enqueues their routing. Raises ``LeadImportError`` (nothing
    saved) when the file cannot be read as a lead CSV.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive.")
    with _text_stream(file) as text:
        columns = _columns(text)
        total = _count_rows(text)
        lead_import = LeadImport.objects.create(file_name=file_name[:255], created_by=created_by, total_rows=total)
        rows = _rows(text, columns)
        if skip_invalid:
            _import_skipping_invalid(lead_import, rows, chunk_size=chunk_size, total=total, progress=progress)
        else:
            _import_all_or_nothing(lead_import, rows, chunk_size=chunk_size, total=total, progress=progress)
    return lead_import


def error_lines(entry: dict[str, Any]) -> list[str]:
    """One report entry as readable lines without the row number: ``email: Enter a valid e-mail address.``"""
    lines: list[str] = []
    for field, messages in entry.get("errors", {}).items():
        prefix = "" if field == "non_field_errors" else f"{field}: "
        lines.extend(f"{prefix}{message}" for message in _flatten(messages))
    return lines


# --- Storing ------------------------------------------------------------------------------------------


def _import_skipping_invalid(
    lead_import: LeadImport, rows: Iterator[Row], *, chunk_size: int, total: int, progress: Progress | None
) -> None:
    for done, valid in _checked_chunks(lead_import, rows, chunk_size):
        _store(lead_import, valid)
        lead_import.save(update_fields=["imported", "existing", "rejected", "errors"])
        if progress is not None:
            progress(done, total)


def _import_all_or_nothing(
    lead_import: LeadImport, rows: Iterator[Row], *, chunk_size: int, total: int, progress: Progress | None
) -> None:
    # Good rows wait in a temporary file (memory first, disk when large) until the whole file is checked,
    # so a big import neither holds every lead in memory nor a write transaction while it validates.
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, mode="w+", encoding="utf-8") as waiting:
        for done, valid in _checked_chunks(lead_import, rows, chunk_size):
            if not lead_import.rejected:
                waiting.writelines(json.dumps(payload, ensure_ascii=False) + "\n" for payload in valid)
            if progress is not None:
                progress(done, total)
        if not lead_import.rejected:
            waiting.seek(0)
            with transaction.atomic():
                chunk: list[dict[str, Any]] = []
                for line in waiting:
                    chunk.append(json.loads(line))
                    if len(chunk) == chunk_size:
                        _store(lead_import, chunk)
                        chunk = []
                _store(lead_import, chunk)
    lead_import.save(update_fields=["imported", "existing", "rejected", "errors"])


def _checked_chunks(
    lead_import: LeadImport, rows: Iterator[Row], chunk_size: int
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(rows checked so far, the good payloads of the next chunk); bad rows are added to the import's report."""
    done = 0
    valid: list[dict[str, Any]] = []
    for line, payload, errors in _checked(rows):
        done += 1
        if errors:
            lead_import.rejected += 1
            if len(lead_import.errors) < MAX_REPORTED_ERRORS:
                lead_import.errors.append({"row": line, "errors": errors})
        else:
            valid.append(payload)
        if done % chunk_size == 0:
            yield done, valid
            valid = []
    if valid or done % chunk_size:
        yield done, valid


def _checked(rows: Iterator[Row]) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(line, payload, errors): intake's errors (``lead_validate``) joined to those found while reading the row."""
    for line, payload, errors in rows:
        lead, problems = lead_validate(payload)
        if problems is None:
            yield line, lead, errors
        else:
            yield line, payload, {**_plain(problems), **errors}


def _store(lead_import: LeadImport, payloads: list[dict[str, Any]]) -> None:
    if not payloads:
        return
    received = leads_receive(payloads=payloads, intake_source=None, lead_import=lead_import)
    created = sum(1 for lead in received if lead.created)
    lead_import.imported += created
    lead_import.existing += len(received) - created


# --- Reading ------------------------------------------------------------------------------------------


class _Column:
    """Where a header cell's values go: an API field, a form answer, or the raw payload as is."""

    def __init__(self, header: str, position: int, field_names: set[str]) -> None:
        cleaned = header.strip()
        normalized = "_".join(cleaned.lower().split())
        self.header = header
        self.form_question = ""
        self.field = ""
        if cleaned.lower().startswith(FORM_PREFIX):
            self.form_question = cleaned[len(FORM_PREFIX) :].strip()
            self.key = f"{FORM_PREFIX}{self.form_question}"
        elif normalized in field_names:
            self.field = self.key = normalized
        else:
            self.key = cleaned or f"column {position}"

    @property
    def recognised(self) -> bool:
        return bool(self.field or self.form_question)


@contextmanager
def _text_stream(file: IO[str] | IO[bytes]) -> Iterator[IO[str]]:
    """The file as seekable text; bytes are read as UTF-8 with or without a byte order mark.

    The caller's file is left open: a wrapper around it is detached, not closed.
    """
    raw: Any = file.file if isinstance(file, File) else file
    if raw.seekable():
        raw.seek(0)
    is_bytes = isinstance(raw.read(0), bytes)
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") if is_bytes else raw
    try:
        if text.seekable():
            yield text
            return
        # A pipe is read once into a temporary copy, because the rows are counted before they are read.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, mode="w+", encoding="utf-8", newline="") as copy:
            try:
                copy.write(text.read())
            except UnicodeDecodeError as error:
                raise _unreadable(error, 1) from error
            copy.seek(0)
            yield copy
    finally:
        if is_bytes:
            text.detach()


def _columns(text: IO[str]) -> list[_Column]:
    text.seek(0)
    try:
        header = next(csv.reader(text), None)
    except (UnicodeDecodeError, csv.Error) as error:
        raise _unreadable(error, 1) from error
    if header is None:
        raise LeadImportError("The file is empty: it needs a header row naming the columns, then one lead per row.")
    if header:
        header[0] = header[0].removeprefix("\ufeff")
    if not any(cell.strip() for cell in header):
        raise LeadImportError("The first row is empty: it must be the header naming the columns (email, company, …).")
    field_names = set(LeadIntakeSerializer().fields)
    columns = [_Column(cell, position, field_names) for position, cell in enumerate(header, start=1)]
    seen: dict[str, str] = {}
    for column in columns:
        if column.key in seen:
            raise LeadImportError(f"The columns “{seen[column.key]}” and “{column.header}” name the same field.")
        seen[column.key] = column.header
    if not any(column.recognised for column in columns):
        raise LeadImportError(
            "No column is a lead field. The header needs names such as email, first_name, last_name, company, "
            f"country or form:<question>; it has: {', '.join(cell.strip() for cell in header)}."
        )
    return columns


def _count_rows(text: IO[str]) -> int:
    """Data rows after the header, not counting blank lines; refuses files above ``MAX_ROWS``."""
    text.seek(0)
    reader = csv.reader(text)
    count = 0
    try:
        next(reader, None)
        for row in reader:
            if any(cell.strip() for cell in row):
                count += 1
                if count > MAX_ROWS:
                    raise LeadImportError(
                        f"The file has more than {MAX_ROWS:,} rows. Split it into files of at most {MAX_ROWS:,} rows."
                    )
    except (UnicodeDecodeError, csv.Error) as error:
        raise _unreadable(error, reader.line_num) from error
    if count == 0:
        raise LeadImportError("The file has a header but no rows of leads.")
    return count


def _unreadable(error: Exception, line: int) -> LeadImportError:
    if isinstance(error, UnicodeDecodeError):
        return LeadImportError(
            f"The file is not UTF-8 text (near line {line}). "
            "Save it from the spreadsheet as “CSV UTF-8” and upload it again."
        )
    return LeadImportError(f"The file is not readable as CSV at line {line}: {error}.")


def _rows(text: IO[str], columns: list[_Column]) -> Iterator[Row]:
    """Each non-blank row after the header, with the errors found while reading it (JSON that does not
    parse, more cells than the header has columns)."""
    text.seek(0)
    reader = csv.DictReader(text, fieldnames=[str(index) for index in range(len(columns))], restkey="\0extra")
    next(reader, None)  # The header, read by _columns.
    by_index = {str(index): column for index, column in enumerate(columns)}
    try:
        for row in reader:
            extra: list[str] = row.pop("\0extra", [])  # type: ignore[assignment]
            cells = {key: value.strip() for key, value in row.items() if value}
            if not any(cells.values()) and not any(str(value).strip() for value in extra):
                continue
            # A quoted cell may span lines; the row starts where its first cell does.
            line = reader.line_num - sum(value.count("\n") for value in [*row.values(), *extra] if value)
            yield (line, *_payload(cells, by_index, extra))
    except csv.Error as error:
        raise _unreadable(error, reader.line_num) from error


def _payload(
    cells: dict[str, str], by_index: dict[str, _Column], extra: list[str]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    payload: dict[str, Any] = {}
    form_answers: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for index, value in cells.items():
        if not value:
            continue
        column = by_index[index]
        if column.form_question:
            form_answers[column.form_question] = value
        elif column.field in JSON_FIELDS:
            try:
                payload[column.field] = json.loads(value)
            except ValueError:
                if column.field == "page_history":
                    # A plain list of URLs, one per line or separated by spaces, is what a spreadsheet holds.
                    payload[column.field] = value.split()
                else:
                    errors[column.field] = ['Must be a JSON object, such as {"Team size": "50"}.']
        else:
            payload[column.key] = value
    if form_answers:
        if isinstance(payload.get("form_answers"), dict):
            payload["form_answers"] = {**payload["form_answers"], **form_answers}
        elif "form_answers" not in payload:
            payload["form_answers"] = form_answers
    if any(str(value).strip() for value in extra):
        errors["non_field_errors"] = [
            f"The row has {len(extra)} more cell(s) than the header has columns; check for a stray comma."
        ]
    return payload, errors


def _plain(errors: Any) -> Any:
    """DRF's error details as plain JSON: lists of strings, nested by field."""
    if isinstance(errors, dict):
        return {str(key): _plain(value) for key, value in errors.items()}
    if isinstance(errors, list):
        return [_plain(value) for value in errors]
    return str(errors)


def _flatten(messages: Any) -> Iterator[str]:
    if isinstance(messages, dict):
        for key, value in messages.items():
            for message in _flatten(value):
                yield f"{key}: {message}"
    elif isinstance(messages, list):
        for value in messages:
            yield from _flatten(value)
    else:
        yield str(messages)
