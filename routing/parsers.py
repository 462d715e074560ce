"""The API's JSON parser, and the walk that checks the text inside a parsed body.

Python's ``json`` parser recurses once per level of nesting, so a body nested a
thousand levels deep raises RecursionError (a 500) instead of a parse error;
``json.dumps`` and PostgreSQL then fail on what the parser let through: a lone
surrogate ("\\udfff" is a valid JSON escape but not encodable as UTF-8), a NUL
character (jsonb and text columns refuse it) and non-finite numbers (``1e999``
parses as infinity, which is not JSON). ``SafeJSONParser`` refuses all of those
with a 400 naming where in the body the problem is, before any view sees the data.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.fields import empty
from rest_framework.parsers import JSONParser

# Any API body: at most this many levels of objects and lists (an intake batch uses 2 plus the lead's own values).
API_JSON_MAX_DEPTH = 32

# For locating a too-deep spot: strings (a key when a colon follows), brackets and commas.
_TOKEN = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"(\s*:)?|[\[\]{},]', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")
_RISKY_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
# A JSON string literal, unrolled so a long string is matched without backtracking.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,39}")
_PATH_MAX_SEGMENTS = 12


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large; send the leads in smaller batches."
    default_code = "too_large"


def json_path(segments: list[str | int]) -> str:
    """``["form_answers", "q1", 3]`` as ``form_answers.q1[3]``; a batch index leads as ``[3].email``.

    Keys that are not plain names are quoted with ASCII escapes, so a path can always be shown and sent back.
    """
    path = ""
    for segment in segments[:_PATH_MAX_SEGMENTS]:
        if isinstance(segment, int):
            path += f"[{segment}]"
        elif _PLAIN_KEY.fullmatch(segment):
            path += f".{segment}" if path else segment
        else:
            quoted = segment if len(segment) <= 40 else segment[:40] + "…"
            path += f"[{json.dumps(quoted)}]"
    if len(segments) > _PATH_MAX_SEGMENTS:
        path += "…"
    return path or "the body"


def text_problem(text: str, *, max_length: int | None = None) -> str | None:
    """Why ``text`` cannot be stored or sent back as UTF-8 text, or None when it can."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which is not allowed in text"
    surrogate = _SURROGATE.search(text)
    if surrogate:
        return f"contains a lone surrogate (\\u{ord(surrogate.group()):04x}), which is not valid Unicode"
    if max_length is not None and len(text) > max_length:
        return f"is {len(text)} characters long; text is at most {max_length} characters"
    return None


def _segments(link: tuple[Any, str | int] | None) -> list[str | int]:
    segments: list[str | int] = []
    while link is not None:
        link, segment = link
        segments.append(segment)
    return segments[::-1]


def json_problems(
    value: Any,
    *,
    path: list[str | int] | None = None,
    max_depth: int | None = None,
    max_length: int | None = None,
    check_text: bool = True,
) -> Iterator[str]:
    """Each problem in a parsed JSON value, as ``"<path> <what is wrong>"``.

    Walks with an explicit stack (no recursion), checking every key and string for NUL characters and lone
    surrogates (and, when given, ``max_length``) unless ``check_text`` is off, every number for being finite,
    and the nesting against ``max_depth``, where the value's own object or list is level 1. Paths are kept as
    links to the parent and spelled out only for a problem, so a body of many small values walks quickly.
    """
    link: tuple[Any, str | int] | None = None
    for segment in path or []:
        link = (link, segment)
    stack: list[tuple[Any, tuple[Any, str | int] | None, int]] = [(value, link, 0)]
    while stack:
        item, link, depth = stack.pop()
        kind = type(item)
        if kind is str:
            problem = text_problem(item, max_length=max_length) if check_text else None
            if problem:
                yield f"{json_path(_segments(link))} {problem}."
        elif kind is float:
            if not math.isfinite(item):
                yield f"{json_path(_segments(link))} is not a finite number."
        elif kind is dict or kind is list:
            if max_depth is not None and depth >= max_depth:
                yield f"{json_path(_segments(link))} is nested more than {max_depth} levels deep."
                continue
            pairs = item.items() if kind is dict else enumerate(item)
            for key, child in pairs:
                if check_text and kind is dict:
                    key_problem = text_problem(str(key), max_length=max_length)
                    if key_problem:
                        yield f"{json_path(_segments(link))} has a key that {key_problem}."
                        continue
                child_kind = type(child)
                if (
                    child_kind is dict
                    or child_kind is list
                    or child_kind is float
                    or (check_text and child_kind is str)
                ):
                    stack.append((child, (link, key), depth + 1))


def needs_text_walk(text: str) -> bool:
    """Whether the raw JSON can hold a NUL or a lone surrogate: only as a ``\\u`` escape (the parser refuses raw
    control characters, and a raw surrogate is not valid UTF-8). Most bodies have neither, and skip the walk."""
    return _RISKY_ESCAPE.search(text) is not None


def deeper_than(text: str, max_depth: int) -> bool:
    """Whether the JSON text nests objects and lists more than ``max_depth`` levels, at C speed.

    Strings are removed, then each pass deletes the innermost pairs (one level per pass): brackets left after
    ``max_depth`` passes are nested deeper.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(max_depth):
        if not brackets:
            return False
        brackets = brackets.replace("[]", "0").replace("{}", "0").replace("0", "")
    return bool(brackets)


def _too_deep_at(text: str, max_depth: int) -> list[str | int]:
    """The path of the first object or list nested deeper than ``max_depth``, read from the text (for a body too
    deep to parse at all). It stops there, so it costs at most one pass over the text."""
    stack: list[list[Any]] = []  # [bracket, the key or index inside it]
    for token in _TOKEN.finditer(text):
        literal, colon = token.group(1), token.group(2)
        if literal is not None:
            if colon and stack and stack[-1][0] == "{":
                try:
                    stack[-1][1] = json.loads(f'"{literal}"')
                except ValueError:
                    stack[-1][1] = literal
            continue
        bracket = token.group()
        if bracket in "[{":
            if len(stack) >= max_depth:
                break
            stack.append([bracket, 0 if bracket == "[" else ""])
        elif bracket in "]}":
            if stack:
                stack.pop()
        elif stack and stack[-1][0] == "[":
            stack[-1][1] += 1
    return [where for _, where in stack]


def _refuse_constant(literal: str) -> Any:
    raise ValueError(f"{literal} is not a valid JSON value")


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(f"The number {literal[:40]} is out of range")
    return number


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, refusing with a 400 what would otherwise fail later as a 500.

    1. A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is a 413 (DRF reads the stream past Django's own check).
    2. Bytes that are not valid text in the request's charset (UTF-8 by default) are a 400.
    3. Numbers too large for a float (``1e999``) and NaN/Infinity are a 400.
    4. Nesting deeper than ``API_JSON_MAX_DEPTH`` is a 400 naming where: found by an iterative walk after
       parsing, or, when the body is too deep for the parser itself (its RecursionError, raised cleanly
       a few hundred levels down), by scanning the text for the spot.
    5. With ``check_text`` (the default), a key or string holding a lone surrogate or a NUL character is a
       400 naming its path. A view whose serializer reports text problems per field turns it off.
    """

    check_text = True

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        parser_context = parser_context or {}
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        # One byte past the limit tells an oversized body apart without reading all of it.
        raw = b"" if stream is None else stream.read(-1 if limit is None else limit + 1)
        if limit is not None and len(raw) > limit:
            raise BodyTooLarge
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as error:
            raise ParseError(f"The body is not valid {encoding} text: {error.reason}.") from error
        except LookupError as error:
            raise ParseError(f"Unknown charset {encoding!r} in the Content-Type header.") from error
        try:
            data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except RecursionError as error:
            where = json_path(_too_deep_at(text, API_JSON_MAX_DEPTH))
            raise ParseError(f"The JSON at {where} is nested more than {API_JSON_MAX_DEPTH} levels deep.") from error
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from error
        deep = deeper_than(text, API_JSON_MAX_DEPTH)
        if deep or (self.check_text and needs_text_walk(text)):
            for problem in json_problems(data, max_depth=API_JSON_MAX_DEPTH, check_text=self.check_text):
                raise ParseError(f"The JSON at {problem}")
        return data


class LeadJSONParser(SafeJSONParser):
    """For lead intake: ``LeadIntakeSerializer`` checks the text itself and reports it by field and batch index."""

    check_text = False


class StrictText(serializers.CharField):
    """Text sent as a JSON string (or null), for every text field the API takes. DRF's CharField would turn 42
    or 1.0 into "42" and "1.0"; a number here is a sign of a mapping mistake (an id column, a phone or postal
    code that lost its leading zero or plus), so it is refused rather than stored as something the sender did
    not mean.

    ``max_length`` counts the text as sent, as the published schema's ``maxLength`` says: DRF's CharField counts
    it after trimming, so 501 characters of which the first is a space (or a control character Python counts
    as one, such as U+001F) passed a limit of 500."""

    default_error_messages = {"invalid": "Send this as text (a JSON string), not a number or true/false."}

    def run_validation(self, data: Any = empty) -> Any:
        if isinstance(data, str) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().run_validation(data)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
