"""A JSON value stored compactly: the routing receipt.

Every routed lead keeps its receipt (rules evaluated, territory, candidates and why each was skipped),
about 2 KB of JSON, much of it the same keys and phrases on every lead. Stored as ``jsonb`` it is most
of the lead row and of what a routing batch writes. ``CompactJSONField`` stores it as DEFLATE with a
preset dictionary of those keys and phrases (``routing/data/receipt_dictionary_v1.json``), about
200 bytes, and gives back the same dict on read, so every reader (the lead page, admin, the API, mail)
sees the full receipt.

Each stored value starts with a format byte naming the dictionary it was packed with. A dictionary file
never changes once released: packed values depend on it byte for byte. A better dictionary is a new
file and a new format byte; values packed with older ones stay readable.

Nothing queries inside receipts (no ``receipt__…`` lookups); a value that must be searched belongs in
its own column.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import orjson
from django.db import models

_DATA = Path(__file__).resolve().parent / "data"
# Format byte → preset dictionary. Never edit a released entry (see the module docstring).
DICTIONARIES = {1: (_DATA / "receipt_dictionary_v1.json").read_bytes()}
CURRENT_FORMAT = 1
# A small window (4 KB) is plenty for a 2 KB value and makes packing cheap. Level and memory level are the
# packer's choice alone: any of them unpacks with the same window and dictionary.
WINDOW_BITS = 12
LEVEL = 3
MEMORY_LEVEL = 4
# A packer with the current dictionary loaded; each value is packed by a copy of it, which costs less than
# loading the dictionary again.
_PRIMED = zlib.compressobj(
    LEVEL, zlib.DEFLATED, WINDOW_BITS, MEMORY_LEVEL, zlib.Z_DEFAULT_STRATEGY, DICTIONARIES[CURRENT_FORMAT]
)
# orjson as json.dumps would write it: dict keys that are numbers, booleans or None become strings, and
# datetimes are refused (json.dumps refuses them too) rather than quietly written as text.
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def json_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON, as ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``
    gives it, five times faster (orjson; a 2 KB receipt in about 5 µs). Values orjson refuses (integers
    beyond 64 bits, unknown types) go through ``json.dumps``, which writes or refuses them as it always did."""
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError.
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def json_value(text: str | bytes) -> Any:
    """The value of JSON ``text``, as ``json.loads`` reads it, about three times faster (orjson); an integer
    beyond 64 bits, and text json reads but orjson does not (``NaN``), go through ``json.loads``."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def pack(value: Any) -> bytes:
    """``value`` as compact bytes: format byte, then DEFLATE of its JSON with the preset dictionary."""
    packer = _PRIMED.copy()
    return bytes([CURRENT_FORMAT]) + packer.compress(json_bytes(value)) + packer.flush()


def unpack(data: bytes) -> Any:
    """The value ``pack`` was given."""
    unpacker = zlib.decompressobj(WINDOW_BITS, DICTIONARIES[data[0]])
    return json_value(unpacker.decompress(data[1:]) + unpacker.flush())


class CompactJSONField(models.BinaryField):
    """A JSON value (dicts, lists, strings, numbers) stored packed (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return value
        return unpack(bytes(value))

    def to_python(self, value: Any) -> Any:
        if isinstance(value, bytes | memoryview):
            return unpack(bytes(value))
        return value

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        return pack(value)

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        return connection.Database.Binary(value) if value is not None else None

    def value_to_string(self, obj: models.Model) -> str:
        return json.dumps(self.value_from_object(obj))
