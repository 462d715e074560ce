"""A JSON value stored compactly: the routing receipt.

Every routed lead keeps its receipt (rules evaluated, territory, candidates and why each was skipped),
about 2 KB of JSON, much of it the same keys and phrases on every lead. Stored as ``jsonb`` it is most
of the lead row and of what a routing batch writes. ``CompactJSONField`` stores it compressed with a
preset dictionary of those keys and phrases, about 150 bytes, and gives back the same dict on read, so
every reader (the lead page, admin, the API, mail) sees the full receipt.

Each stored value starts with a format byte naming how it was packed:

- 1: DEFLATE (zlib) with the hand-written dictionary ``routing/data/receipt_dictionary_v1.json``, ~400–500
  bytes a receipt, ~20 µs to pack. Still read, no longer written.
- 2: Zstandard with the dictionary ``routing/data/receipt_dictionary_v2.zstd``, ~150 bytes, ~4 µs. The
  dictionary (16 KB) was trained with ``zstandard.train_dictionary(16384, samples, level=19)`` over the JSON
  of the receipts of the 600 leads the demo organisation routes (``manage.py load_demo``); receipts of
  other leads (the bench's, which it never saw) pack as small.

A dictionary file never changes once released: packed values depend on it byte for byte. A better
dictionary is a new file and a new format byte; values packed with older ones stay readable.

Nothing queries inside receipts (no ``receipt__…`` lookups); a value that must be searched belongs in
its own column.
"""

from __future__ import annotations

import json
import threading
import zlib
from pathlib import Path
from typing import Any

import orjson
import zstandard
from django.db import models

_DATA = Path(__file__).resolve().parent / "data"
# Format 1's dictionary. Never edit a released file (see the module docstring).
DICTIONARIES = {1: (_DATA / "receipt_dictionary_v1.json").read_bytes()}
# Format 1's window: any level and memory level unpack with this window and the dictionary.
WINDOW_BITS = 12
# Format 2's dictionary, and its level: any level unpacks with the same dictionary.
ZSTD_DICTIONARIES = {2: zstandard.ZstdCompressionDict((_DATA / "receipt_dictionary_v2.zstd").read_bytes())}
ZSTD_LEVEL = 3
CURRENT_FORMAT = 2
# orjson as json.dumps would write it: datetimes are refused (json.dumps refuses them too) rather than quietly
# written as text. Tried first without ``OPT_NON_STR_KEYS``, which doubles the time of a receipt (1.5 → 3.3 µs)
# and which only a dict with keys that are numbers, booleans or None needs; such a dict is written again with
# it, and those keys become strings, as json.dumps writes them.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME
_ORJSON_OPTIONS_ANY_KEYS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


class _Codecs(threading.local):
    """This thread's Zstandard packer and unpackers, each with its dictionary loaded once: a Zstandard
    context serves one thread at a time (web servers read receipts from several)."""

    def __init__(self) -> None:
        dictionary = ZSTD_DICTIONARIES[CURRENT_FORMAT]
        self.packer = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL, dict_data=dictionary, write_checksum=False, write_content_size=True, write_dict_id=False
        )
        self.unpackers = {
            format_byte: zstandard.ZstdDecompressor(dict_data=loaded)
            for format_byte, loaded in ZSTD_DICTIONARIES.items()
        }


_codecs = _Codecs()


def json_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON, as ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``
    gives it, over ten times faster (orjson: a 2 KB receipt in about 1.7 µs, against 29). Values orjson refuses
    (integers beyond 64 bits, unknown types) go through ``json.dumps``, which writes or refuses them as it always
    did."""
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError: a key that is not text, or a value orjson refuses.
        pass
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS_ANY_KEYS)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def json_value(text: str | bytes) -> Any:
    """The value of JSON ``text``, as ``json.loads`` reads it, about three times faster (orjson); text with a
    number of 19 digits or more, and text json reads but orjson does not (``NaN``), go through ``json.loads``.

    orjson reads an integer beyond 64 bits as the nearest float, without a word (-2**63 - 1 comes back as
    -9.223372036854776e+18), where json reads the integer itself. Such an integer has at least 19 digits in a
    row; so has an ordinary long number (or a digit string in text), which json reads as orjson would, only
    slower. Looking for the run costs ~1 µs a KB."""
    try:
        data = text.encode() if isinstance(text, str) else text
    except UnicodeEncodeError:  # A lone surrogate, which orjson refuses too.
        return json.loads(text)
    if _LONG_DIGIT_RUN in data.translate(_DIGITS_AS_ZERO):
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


# 2**63 has 19 digits: a shorter integer is within orjson's 64 bits.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19


def pack(value: Any) -> bytes:
    """``value`` as compact bytes: format byte, then its JSON compressed with the format's dictionary."""
    return bytes([CURRENT_FORMAT]) + _codecs.packer.compress(json_bytes(value))


def unpack(data: bytes) -> Any:
    """The value ``pack`` was given, in any format ever written."""
    format_byte = data[0]
    if format_byte in ZSTD_DICTIONARIES:
        return json_value(_codecs.unpackers[format_byte].decompress(data[1:]))
    unpacker = zlib.decompressobj(WINDOW_BITS, DICTIONARIES[format_byte])
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
