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

from django.db import models

_DATA = Path(__file__).resolve().parent / "data"
# Format byte → preset dictionary. Never edit a released entry (see the module docstring).
DICTIONARIES = {1: (_DATA / "receipt_dictionary_v1.json").read_bytes()}
CURRENT_FORMAT = 1
# A small window (4 KB) is plenty for a 2 KB value and makes packing cheap (~20 µs).
WINDOW_BITS = 12
LEVEL = 3


def pack(value: Any) -> bytes:
    """``value`` as compact bytes: format byte, then DEFLATE of its JSON with the preset dictionary."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    packer = zlib.compressobj(
        LEVEL, zlib.DEFLATED, WINDOW_BITS, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARIES[CURRENT_FORMAT]
    )
    return bytes([CURRENT_FORMAT]) + packer.compress(text) + packer.flush()


def unpack(data: bytes) -> Any:
    """The value ``pack`` was given."""
    unpacker = zlib.decompressobj(WINDOW_BITS, DICTIONARIES[data[0]])
    return json.loads(unpacker.decompress(data[1:]) + unpacker.flush())


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
