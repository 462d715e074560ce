"""Lead intake: validate what a form or system posts, then store it as ``received``.

The API (``routing.api``) and the CSV import share both halves:

- ``LeadIntakeSerializer`` checks ONE lead and hands it back as posted, because
  the raw payload is stored exactly as received; standardization happens when
  the lead is routed.
- ``leads_receive`` stores a batch of already-validated leads in one transaction,
  recognising repeats, and enqueues routing after commit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from drf_spectacular.utils import extend_schema_field
from email_validator import EmailNotValidError, validate_email
from rest_framework import serializers

from routing import lanes
from routing.bulk import objects_insert
from routing.models import ApiKey, EventType, Lead, LeadImport
from routing.outbound import Event, events_record
from routing.parsers import StrictText, deeper_than, json_path, json_problems, needs_text_walk, text_problem
from routing.standardize import standardize

logger = logging.getLogger(__name__)

# Limits on one lead, in bytes of compact UTF-8 JSON.
LEAD_MAX_BYTES = 64 * 1024
FORM_ANSWERS_MAX_BYTES = 16 * 1024
PAGE_HISTORY_MAX_BYTES = 16 * 1024
PAGE_HISTORY_MAX_ENTRIES = 200
# Any value in a lead (form_answers, page_history, a key we do not know): at most this many levels of objects and
# lists, the value's own counting as the first, and at most this many characters in any one key or string.
LEAD_VALUE_MAX_DEPTH = 8
LEAD_TEXT_MAX_LENGTH = 5000
# Problems reported per field: enough to fix a payload, not a wall of text.
_MAX_PROBLEMS_PER_FIELD = 3
# Leads per route_leads message, in either lane: small enough for one worker run, few enough messages for a big
# batch. Bulk messages of 1,000 (two batches, routed by two threads taking turns, routing/turns.py) were tried:
# with as many busy worker processes as cores, the threads had no wait left to fill, and 10,000 leads through the
# bulk API went 4,799 leads/s against 5,172 with messages of 500 (six alternating runs; 500 faster in five).
ROUTE_CHUNK_SIZE = 500
IDEMPOTENCY_KEY_MAX_LENGTH = 200

NO_CONTACT = "A lead needs an email, a phone, or a company together with a first or last name."


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: what the limits above measure."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode())


def _present(value: Any) -> bool:
    return value is not None and str(value).strip() != ""


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": {}}]})
class _PageVisitField(serializers.Field):
    """One page_history entry: a URL string, or an object such as {"url": ..., "at": ...}."""

    default_error_messages = {"invalid": "Each page_history entry must be a string or an object."}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str | dict):
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


# Blank text means "no value", as null does.
_DIGITS = r"^\s*([0-9]+\s*)?$"
_AMOUNT = r"^\s*([0-9]+(\.[0-9]{1,2})?\s*)?$"


@extend_schema_field({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": _DIGITS}]})
class _WholeNumber(serializers.IntegerField):
    """A count sent as a JSON integer or a string of digits ("250"); 250.0, "2.5e2" and true are refused."""

    default_error_messages = {"invalid": 'Send a whole number, such as 250 or "250".'}

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if isinstance(data, str) and not data.strip():
            return True, None  # Blank text is no value, as null is (a form's empty field, a CSV's blank cell).
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool | float) or (isinstance(data, str) and not re.match(_DIGITS, data)):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"oneOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": _AMOUNT}]})
class _Amount(serializers.DecimalField):
    """An amount sent as a JSON number or a string such as "1000000.50"; "1e6" and true are refused."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or (isinstance(data, str) and not re.match(_AMOUNT, data)):
            self.fail("invalid")
        return super().to_internal_value(data)


def _text(max_length: int) -> serializers.CharField:
    return StrictText(max_length=max_length, required=False, allow_blank=True, allow_null=True)


def lead_value_problems(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Problems in a posted lead's values that would break storing or showing it, by top-level key.

    Every key and string, however deep, must be valid text without NUL characters and at most
    ``LEAD_TEXT_MAX_LENGTH`` characters; every value at most ``LEAD_VALUE_MAX_DEPTH`` levels deep. Each message
    names its path, such as ``form_answers.q1[3]``. The walk is iterative, so no payload can exhaust the stack.
    """
    errors: dict[str, list[str]] = {}
    # Most leads are plain: their ASCII-escaped JSON shows no NUL or surrogate escape, no string can be over the
    # limit when the whole is not, and the nesting is counted at C speed. Only the others are walked.
    escaped = json.dumps(data, ensure_ascii=True, default=str)
    if (
        len(escaped) <= LEAD_TEXT_MAX_LENGTH
        and not needs_text_walk(escaped)
        and not deeper_than(escaped, LEAD_VALUE_MAX_DEPTH + 1)
    ):
        return errors
    for key, value in data.items():
        name = key if isinstance(key, str) and not text_problem(key, max_length=LEAD_TEXT_MAX_LENGTH) else None
        if name is None:
            errors[json_path([str(key)])] = [
                f"This key {text_problem(str(key), max_length=LEAD_TEXT_MAX_LENGTH)}; rename it."
            ]
            continue
        problems = list(
            islice(
                json_problems(value, path=[key], max_depth=LEAD_VALUE_MAX_DEPTH, max_length=LEAD_TEXT_MAX_LENGTH),
                _MAX_PROBLEMS_PER_FIELD,
            )
        )
        if problems:
            errors[json_path([key])] = problems
    return errors


class LeadIntakeSerializer(serializers.Serializer):
    """One lead as a form or system posts it. Every field is optional, but a lead
    needs someone to contact: an email, a phone, or a company and a name.

    Text limits are the Lead model's columns. Coded fields (country, state,
    industry) take names as well as codes, so they allow longer text; the country
    must be one standardization recognises ("DE", "Germany", "Deutschland").
    Keys not listed here are kept and stored in the raw payload.

    ``validated_data`` is the lead as posted (not the cleaned values), so the
    raw payload is stored as received.
    """

    email = _text(254)
    first_name = _text(100)
    last_name = _text(100)
    company = _text(200)
    title = _text(200)
    phone = _text(32)
    website = _text(253)
    country = _text(100)
    # A subdivision by any of its usual names.
    state = _text(100)
    region = _text(100)
    subdivision = _text(100)
    city = _text(100)
    postal_code = _text(20)
    industry = _text(100)
    employees = _WholeNumber(required=False, allow_null=True, min_value=0)
    annual_revenue = _Amount(max_digits=16, decimal_places=2, min_value=0, required=False, allow_null=True)
    product_interest = _text(50)
    source = _text(100)
    campaign = _text(200)
    form_answers = serializers.DictField(required=False, allow_null=True)
    page_history = serializers.ListField(
        child=_PageVisitField(), max_length=PAGE_HISTORY_MAX_ENTRIES, required=False, allow_null=True
    )
    external_id = _text(200)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        oversize = serializers.ValidationError(
            {
                serializers.api_settings.NON_FIELD_ERRORS_KEY: [
                    f"A lead is at most {LEAD_MAX_BYTES // 1024} KB of JSON (oversize)."
                ]
            }
        )
        # First, text and nesting: the field checks and the size check below encode the values as UTF-8 JSON.
        if isinstance(data, Mapping):
            # An escaped character is at most 6 ASCII characters per UTF-8 byte: past that, no need to look closer.
            if len(json.dumps(data, ensure_ascii=True, default=str)) > 6 * LEAD_MAX_BYTES:
                raise oversize
            problems = lead_value_problems(data)
            if problems:
                raise serializers.ValidationError(problems)
        super().to_internal_value(data)  # Raises with field errors; the cleaned values are not kept.
        if json_size(data) > LEAD_MAX_BYTES:
            raise oversize
        return dict(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        named = _present(attrs.get("first_name")) or _present(attrs.get("last_name"))
        if not (
            _present(attrs.get("email")) or _present(attrs.get("phone")) or (_present(attrs.get("company")) and named)
        ):
            raise serializers.ValidationError(NO_CONTACT)
        return attrs

    def validate_email(self, value: str | None) -> str | None:
        if _present(value):
            try:
                validate_email(str(value).strip(), check_deliverability=False)
            except EmailNotValidError as error:
                raise serializers.ValidationError("Enter a valid e-mail address.") from error
        return value

    def validate_country(self, value: str | None) -> str | None:
        if _present(value) and not standardize({"country": value}).country:
            raise serializers.ValidationError(f'Unknown country "{value}": send an ISO code or the country\'s name.')
        return value

    def validate_form_answers(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and json_size(value) > FORM_ANSWERS_MAX_BYTES:
            raise serializers.ValidationError(
                f"form_answers is at most {FORM_ANSWERS_MAX_BYTES // 1024} KB of JSON (oversize)."
            )
        return value

    def validate_page_history(self, value: list[Any] | None) -> list[Any] | None:
        if value is not None and json_size(value) > PAGE_HISTORY_MAX_BYTES:
            raise serializers.ValidationError(
                f"page_history is at most {PAGE_HISTORY_MAX_BYTES // 1024} KB of JSON (oversize)."
            )
        return value


# --- The plain lead's shortcut -----------------------------------------------------------------------------

# Building the serializer costs far more than storing the lead (its fields are deep-copied, the lead is encoded to
# JSON three times), so a batch checks most leads here instead. Within this many characters of ASCII-escaped JSON,
# a lead is under every size limit at once: no string or key is longer, and its UTF-8 JSON (and that of any value
# in it) is no bigger, as an escape is never shorter than the character's bytes.
_PLAIN_MAX_CHARS = min(LEAD_TEXT_MAX_LENGTH, LEAD_MAX_BYTES, FORM_ANSWERS_MAX_BYTES, PAGE_HISTORY_MAX_BYTES)
# Counts and amounts in their plainest spelling; any other spelling is left to the serializer.
_PLAIN_WHOLE_NUMBER = re.compile(r"[0-9]{1,15}")
_PLAIN_AMOUNT = re.compile(r"[0-9]{1,14}(?:\.[0-9]{1,2})?")
_PLAIN_NUMBER_LIMIT = 10**14


@lru_cache(maxsize=4096)
def _email_valid(email: str) -> bool:
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


@lru_cache(maxsize=1024)
def _country_known(country: str) -> bool:
    return bool(standardize({"country": country}).country)


def _plain_text(max_length: int) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return value is None or (type(value) is str and len(value) <= max_length)

    return check


def _plain_whole_number(value: Any) -> bool:
    if type(value) is int:
        return 0 <= value < _PLAIN_NUMBER_LIMIT
    return value is None or (type(value) is str and _PLAIN_WHOLE_NUMBER.fullmatch(value) is not None)


def _plain_amount(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return 0 <= value < _PLAIN_NUMBER_LIMIT
    if kind is float:
        # DecimalField reads a float by its repr: "1500000.5" fits, "1e+20" and "0.30000000000000004" do not.
        return _PLAIN_AMOUNT.fullmatch(repr(value)) is not None
    return value is None or (kind is str and (_PLAIN_AMOUNT.fullmatch(value) is not None or not value.strip()))


def _plain_page_history(value: Any) -> bool:
    if value is None:
        return True
    return (
        type(value) is list
        and len(value) <= PAGE_HISTORY_MAX_ENTRIES
        and all(type(entry) is str or type(entry) is dict for entry in value)
    )


def _plain_checks() -> dict[str, Callable[[Any], bool]]:
    """A check per field of ``LeadIntakeSerializer``, each as strict as the field or stricter (the text fields'
    limits are read from the serializer); a field added there without its check here is refused."""
    checks: dict[str, Callable[[Any], bool]] = {}
    for name, field in LeadIntakeSerializer().fields.items():
        if type(field) is StrictText and field.max_length is not None:
            checks[name] = _plain_text(field.max_length)
        elif type(field) is _WholeNumber:
            checks[name] = _plain_whole_number
        elif type(field) is _Amount:
            checks[name] = _plain_amount
        elif name == "form_answers":
            checks[name] = lambda value: value is None or type(value) is dict
        elif name == "page_history":
            checks[name] = _plain_page_history
        else:
            checks[name] = lambda value: False
    return checks


_PLAIN_CHECKS = _plain_checks()


def lead_validate(data: Any) -> tuple[dict[str, Any], Any]:
    """(the lead to store, None) when ``data`` is a valid lead, else (``data``, the serializer's errors). A plain
    lead is answered by ``lead_plainly_valid``; any other by ``LeadIntakeSerializer``, which words the errors.
    Every intake path (the API, CSV imports, form posts) validates through here."""
    if lead_plainly_valid(data):
        return dict(data), None
    serializer = LeadIntakeSerializer(data=data)
    if serializer.is_valid():
        return serializer.validated_data, None
    return data, serializer.errors


def lead_plainly_valid(data: Any) -> bool:
    """Whether ``LeadIntakeSerializer(data=data)`` is certainly valid, at a fraction of its cost.

    True only for a plain lead: a dict encoded to JSON once (no NaN, nothing but JSON types) whose escaped text is
    short, shows no NUL or surrogate escape and is not nested too deep, whose known fields hold values of the
    plainest kind within their limits, whose e-mail and country pass the serializer's own checks, and which names
    someone to contact. False means "not certain": the caller asks the serializer, which also words the errors.
    """
    if type(data) is not dict:
        return False
    try:
        escaped = json.dumps(data, ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    # The same quick test as lead_value_problems', on the same text: a lead passing it has no value problems.
    if len(escaped) > _PLAIN_MAX_CHARS or needs_text_walk(escaped) or deeper_than(escaped, LEAD_VALUE_MAX_DEPTH + 1):
        return False
    for key, value in data.items():
        check = _PLAIN_CHECKS.get(key)
        if check is not None and not check(value):
            return False
    # The values that matter below are now None or strings; blank ones count as absent, as the fields see them.
    email = (data.get("email") or "").strip()
    if email and not _email_valid(email):
        return False
    country = (data.get("country") or "").strip()
    if country and not _country_known(country):
        return False
    if email or (data.get("phone") or "").strip():
        return True
    named = (data.get("first_name") or "").strip() or (data.get("last_name") or "").strip()
    return bool(named and (data.get("company") or "").strip())


# --- Storing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """What became of one posted lead: its row, and whether this call created it."""

    lead_id: int
    status: str
    external_id: str
    created: bool


def _key_text(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    return str(value).strip() if value is not None else ""


def lead_idempotency_key(key: str, *, index: int, batch: bool) -> str:
    """The key stored on lead ``index``: the header itself for one lead, ``"{key}:{index}"`` in a batch.

    A batch key that would not fit the column uses a hash of the header instead, still one per lead.
    """
    if not key or not batch:
        return key
    stored = f"{key}:{index}"
    if len(stored) > IDEMPOTENCY_KEY_MAX_LENGTH:
        stored = f"sha256-{hashlib.sha256(key.encode()).hexdigest()}:{index}"
    return stored


def leads_receive(
    *,
    payloads: list[dict[str, Any]],
    intake_source: ApiKey | None,
    idempotency_key: str = "",
    lead_import: LeadImport | None = None,
) -> list[Received]:
    """Store validated leads as ``received`` and return one ``Received`` per payload, in order.

    1. Key each payload by (source, external_id) and by its idempotency key (see
       ``lead_idempotency_key``), both within ``intake_source``: another key's
       lead with the same ids is another lead.
    2. In one transaction, find leads already stored under either key; a repeat
       inside the batch maps to its first occurrence.
    3. Create the rest with one bulk insert. When a concurrent request inserts the
       same key first, the unique constraints refuse ours: roll back to a savepoint
       and start again from 2, which now finds that request's lead.

    Side effects: inserts Lead rows (and their ``lead.received`` events for webhooks); after commit,
    enqueues ``route_leads`` for the new leads in chunks of 500, in the leads' lane (``intake_lane``). A broker failure
    there is logged and swallowed: the lead is stored as ``received`` and the periodic
    sweep routes it.
    """
    batch = len(payloads) > 1
    lane = intake_lane(count=len(payloads), lead_import=lead_import)
    keys = [
        (
            _key_text(payload, "source"),
            _key_text(payload, "external_id"),
            lead_idempotency_key(idempotency_key, index=index, batch=batch),
        )
        for index, payload in enumerate(payloads)
    ]
    with transaction.atomic():
        for attempt in range(3):
            try:
                with transaction.atomic():
                    received, new_ids = _receive(
                        payloads, keys, intake_source=intake_source, lead_import=lead_import, lane=lane
                    )
                break
            except IntegrityError:
                if attempt == 2:
                    raise
                logger.info("Intake raced a concurrent request for the same lead; reading its lead instead.")
        for start in range(0, len(new_ids), ROUTE_CHUNK_SIZE):
            transaction.on_commit(
                _route_leads_enqueuer(new_ids[start : start + ROUTE_CHUNK_SIZE], lane=lane), robust=True
            )
    return received


def intake_lane(*, count: int, lead_import: LeadImport | None) -> str:
    """The lane leads posted together travel in: bulk for a CSV import or a batch of more than
    ``LEADROUTER_BULK_THRESHOLD`` leads, live otherwise (a form's single post, a small batch)."""
    if lead_import is not None or count > settings.LEADROUTER_BULK_THRESHOLD:
        return Lead.Lane.BULK
    return Lead.Lane.LIVE


# What intake reads of a stored lead with the same keys.
_STORED_FIELDS = ("id", "status", "source", "external_id", "idempotency_key")


@functools.cache
def _stored_columns() -> list[str]:
    """``_STORED_FIELDS`` in the model's order of columns, the order ``Model.from_db`` takes a few values in."""
    return [field.attname for field in Lead._meta.concrete_fields if field.attname in _STORED_FIELDS]


def _stored_with(intake_source: ApiKey | None, columns: tuple[str, ...], keys: Sequence[tuple[str, ...]]) -> list[Lead]:
    """The leads of ``intake_source`` whose ``columns`` hold one of ``keys`` (the columns of a unique constraint
    on leads, the last one never blank).

    On PostgreSQL each key is looked up on its own (LATERAL, its LIMIT keeps it from being flattened into a
    join), a probe of the constraint's index whatever the planner's statistics say. Asked as one ``IN``, the
    planner decides from them, and while they are stale (after a bulk import, before the next ANALYZE) it
    reads every lead of the source instead: measured, 44 ms for a batch of 1,000 among 28,000 leads."""
    if not keys:
        return []
    if connection.vendor != "postgresql":
        last_by_rest: dict[tuple[str, ...], list[str]] = {}
        for key in keys:
            last_by_rest.setdefault(key[:-1], []).append(key[-1])
        same = Q()
        for rest, last in last_by_rest.items():  # One IN per source: a few ORs, however many keys.
            same |= Q(**dict(zip(columns[:-1], rest, strict=True)), **{f"{columns[-1]}__in": last})
        return list(
            Lead.objects.filter(same, intake_source=intake_source).exclude(**{columns[-1]: ""}).only(*_STORED_FIELDS)
        )
    quote = connection.ops.quote_name
    names = ", ".join(quote(column) for column in columns)
    arrays = ", ".join(["%s::text[]"] * len(columns))
    equal = " AND ".join(f"{quote(column)} = k.{quote(column)}" for column in columns)
    source = "intake_source_id IS NULL" if intake_source is None else "intake_source_id = %s"
    sql = (
        f"SELECT stored.* FROM unnest({arrays}) AS k({names}) CROSS JOIN LATERAL ("
        f"SELECT {', '.join(quote(name) for name in _stored_columns())} FROM {quote(Lead._meta.db_table)} "
        f"WHERE {equal} AND NOT {quote(columns[-1])} = '' AND {source} LIMIT 1) AS stored"
    )
    params: list[Any] = [list(column) for column in zip(*keys, strict=True)]
    if intake_source is not None:
        params.append(intake_source.pk)
    # A plain cursor: for a single POST, which finds nothing, a raw queryset's setup cost more than the query.
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [Lead.from_db(connection.alias, _stored_columns(), row) for row in cursor.fetchall()]


def _receive(
    payloads: list[dict[str, Any]],
    keys: list[tuple[str, str, str]],
    *,
    intake_source: ApiKey | None,
    lead_import: LeadImport | None,
    lane: str,
) -> tuple[list[Received], list[int]]:
    """One attempt at steps 2 and 3 of ``leads_receive``."""
    external_ids = sorted({(source, external_id) for source, external_id, _ in keys if external_id})
    idempotency_keys = sorted({(idem,) for _, _, idem in keys if idem})
    # Both keys are scoped to the API key (None: CSV imports and people share one space), as the constraints are.
    by_external_id = {
        (lead.source, lead.external_id): lead
        for lead in _stored_with(intake_source, ("source", "external_id"), external_ids)
    }
    by_idempotency_key = {
        lead.idempotency_key: lead for lead in _stored_with(intake_source, ("idempotency_key",), idempotency_keys)
    }

    # Each payload is an existing lead, a new lead, or a repeat of an earlier payload in this batch.
    existing: dict[int, Lead] = {}
    first_of: dict[int, int] = {}
    new: dict[int, Lead] = {}
    first_with_external_id: dict[tuple[str, str], int] = {}
    for index, (payload, (source, external_id, idem)) in enumerate(zip(payloads, keys, strict=True)):
        found = by_idempotency_key.get(idem) if idem else None
        if found is None and external_id:
            found = by_external_id.get((source, external_id))
        if found is not None:
            existing[index] = found
        elif external_id and (source, external_id) in first_with_external_id:
            first_of[index] = first_with_external_id[(source, external_id)]
        else:
            if external_id:
                first_with_external_id[(source, external_id)] = index
            new[index] = Lead(
                raw_payload=payload,
                external_id=external_id,
                source=source,
                campaign=_key_text(payload, "campaign"),
                intake_source=intake_source,
                idempotency_key=idem,
                lead_import=lead_import,
                status=Lead.Status.RECEIVED,
                lane=lane,
            )
    objects_insert(Lead, list(new.values()))
    events_record([Event(EventType.LEAD_RECEIVED, lead.pk, lead=lead) for lead in new.values()])

    received: list[Received] = []
    for index in range(len(payloads)):
        if index in new:
            lead, created = new[index], True
        elif index in existing:
            lead, created = existing[index], False
        else:
            lead, created = new[first_of[index]], False
        received.append(Received(lead_id=lead.pk, status=lead.status, external_id=lead.external_id, created=created))
    return received, [lead.pk for lead in new.values()]


def _route_leads_enqueuer(lead_ids: list[int], *, lane: str) -> Callable[[], None]:
    def enqueue() -> None:
        try:
            lanes.route_leads_send(lead_ids, lane=lane)
        except Exception:
            # The leads are stored as received; the periodic sweep routes them once the broker is back.
            logger.exception("Could not enqueue route_leads for %d leads; the sweep will route them.", len(lead_ids))

    return enqueue
