"""Rule conditions: does a lead meet them, and if not, which test failed and on what value.

Strings compare case-insensitively and ignore surrounding spaces. Order
comparisons (gt, gte, lt, lte, between) are numeric; a blank or non-numeric
lead value fails them. ``in``/``not_in`` take a collection; ``contains`` and
``starts_with`` take a string or a collection of alternatives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import Any

from routing.engine.facts import LEAD_FIELDS, Condition, ConditionGroup, LeadFacts

_SYMBOLS = {
    "equals": "=",
    "not_equals": "≠",
    "in": "in",
    "not_in": "not in",
    "contains": "contains",
    "starts_with": "starts with",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "between": "between",
    "is_blank": "is blank",
    "is_not_blank": "is not blank",
}


def evaluate(group: ConditionGroup | None, lead: LeadFacts) -> tuple[bool, str]:
    """Whether the lead meets ``group``, and a sentence saying why not (empty when it does)."""
    if group is None:
        return True, ""
    return _evaluate_item(group, lead)


# How many answers a ConditionMemo keeps before it starts again.
ANSWERS_REMEMBERED = 50_000


class ConditionMemo:
    """``evaluate`` with its answers remembered: a condition's answer, reason included, depends only on the
    values of the fields it reads, so leads alike in those values share one evaluation. A snapshot keeps one
    for its rules (``Snapshot.condition_memo``), so a batch or a replay evaluates each rule once per distinct
    set of values rather than once per lead."""

    def __init__(self) -> None:
        self._readers: dict[int, Callable[[LeadFacts], Any]] = {}
        # Holding the groups keeps their ids from being reused by other objects while they are keys.
        self._groups: dict[int, ConditionGroup] = {}
        self._answers: dict[tuple[Any, ...], tuple[bool, str]] = {}

    def evaluate(self, group: ConditionGroup | None, lead: LeadFacts) -> tuple[bool, str]:
        if group is None:
            return True, ""
        read = self._readers.get(id(group))
        if read is None:
            read = _reader(tuple(sorted(_fields_read(group))))
            self._readers[id(group)] = read
            self._groups[id(group)] = group
        key = (id(group), read(lead))
        try:
            answer = self._answers.get(key)
        except TypeError:  # A value that cannot be a key: evaluate without remembering.
            return _evaluate_item(group, lead)
        if answer is None:
            answer = _evaluate_item(group, lead)
            if len(self._answers) >= ANSWERS_REMEMBERED:
                self._answers.clear()
            self._answers[key] = answer
        return answer


def _reader(fields: tuple[str, ...]) -> Callable[[LeadFacts], Any]:
    """A function giving the values of ``fields`` for a lead, as ``LeadFacts.value`` reads them: plain lead
    fields straight from the attributes, account fields through ``value``."""
    if fields and all(name in LEAD_FIELDS for name in fields):
        return attrgetter(*fields)
    return lambda lead: tuple(lead.value(name) for name in fields)


def _fields_read(item: Condition | ConditionGroup) -> set[str]:
    if isinstance(item, Condition):
        return {item.field}
    return set().union(*(_fields_read(child) for child in item.items)) if item.items else set()


def _evaluate_item(item: Condition | ConditionGroup, lead: LeadFacts) -> tuple[bool, str]:
    if isinstance(item, Condition):
        lead_value = lead.value(item.field)
        if _holds(item.op, lead_value, item.value):
            return True, ""
        return False, f"{describe(item)}, but {item.field} is {_show(lead_value)}"
    failures: list[str] = []
    for child in item.items:
        held, why = _evaluate_item(child, lead)
        if item.mode == "all" and not held:
            return False, why
        if item.mode == "any":
            if held:
                return True, ""
            failures.append(why)
    if item.mode == "all":
        return True, ""
    return False, "none held: " + "; ".join(failures) if failures else "an empty 'any' group never holds"


def describe(condition: Condition) -> str:
    """The condition as a reader would say it: ``country in DE, AT``."""
    symbol = _SYMBOLS[condition.op]
    if condition.op in ("is_blank", "is_not_blank"):
        return f"{condition.field} {symbol}"
    if condition.op == "between":
        low, high = condition.value
        return f"{condition.field} between {_show(low)} and {_show(high)}"
    return f"{condition.field} {symbol} {_show(condition.value)}"


def _show(value: Any) -> str:
    if value is None:
        return "blank"
    if isinstance(value, str):
        return f"'{value}'" if value.strip() else "blank"
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return ", ".join(_show(item) for item in items)
    return str(value)


def _holds(op: str, lead_value: Any, expected: Any) -> bool:
    if op == "is_blank":
        return _is_blank(lead_value)
    if op == "is_not_blank":
        return not _is_blank(lead_value)
    if op == "equals":
        return _equal(lead_value, expected)
    if op == "not_equals":
        return not _equal(lead_value, expected)
    if op == "in":
        return any(_equal(lead_value, option) for option in _options(expected))
    if op == "not_in":
        return not any(_equal(lead_value, option) for option in _options(expected))
    if op in ("contains", "starts_with"):
        if _is_blank(lead_value):
            return False
        text = _fold(lead_value)
        if op == "contains":
            return any(_fold(option) in text for option in _options(expected))
        return any(text.startswith(_fold(option)) for option in _options(expected))
    number = _number(lead_value)
    if number is None:
        return False
    if op == "between":
        low, high = (_number(bound) for bound in expected)
        return low is not None and high is not None and low <= number <= high
    bound = _number(expected)
    if bound is None:
        return False
    return {
        "gt": number > bound,
        "gte": number >= bound,
        "lt": number < bound,
        "lte": number <= bound,
    }[op]


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _fold(value: Any) -> str:
    return str(value).strip().casefold()


def _options(expected: Any) -> Iterable[Any]:
    if isinstance(expected, list | tuple | set | frozenset):
        return expected
    return (expected,)


_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0", ""})


def _equal(lead_value: Any, expected: Any) -> bool:
    if type(lead_value) is str and type(expected) is str:
        # The common case, and what the general rules below come to for two texts: blank equals blank only.
        return _fold(lead_value) == _fold(expected)
    if isinstance(lead_value, bool) or isinstance(expected, bool):
        return _boolean(lead_value) is not None and _boolean(lead_value) == _boolean(expected)
    if _is_blank(lead_value) or _is_blank(expected):
        return _is_blank(lead_value) and _is_blank(expected)
    if isinstance(lead_value, str) or isinstance(expected, str):
        if not isinstance(lead_value, str):
            lead_number, expected_number = _number(lead_value), _number(expected)
            if lead_number is not None and expected_number is not None:
                # A numeric field compared with a number typed as text: 500 equals "500".
                return lead_number == expected_number
        return _fold(lead_value) == _fold(expected)
    return bool(lead_value == expected)


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    folded = _fold(value)
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    return None


def _number(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int | float):
        number = Decimal(str(value))
        return number if number.is_finite() else None
    if isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None
