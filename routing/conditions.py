"""Rule conditions as RevOps write them (JSON in admin, YAML in the coverage file) ⇄ the engine's types.

The stored form is a group, nestable::

    {"all": [
        {"field": "country", "op": "in", "value": ["DE", "AT", "CH"]},
        {"any": [{"field": "employees", "op": "gte", "value": 1000},
                 {"field": "account.tier", "op": "equals", "value": "tier_1"}]}
    ]}

``parse_condition`` checks the whole structure and reports every problem with its
path (``all[1].any[0].op``), so an admin form or an import can say exactly what
to fix.
"""

from decimal import Decimal, InvalidOperation
from typing import Any

from routing.engine import Condition, ConditionGroup
from routing.engine.conditions import describe
from routing.engine.facts import ACCOUNT_FIELDS, LEAD_FIELDS, OPERATORS

FIELDS = (*LEAD_FIELDS, *(f"account.{name}" for name in ACCOUNT_FIELDS))
LIST_OPERATORS = frozenset({"in", "not_in"})
NUMBER_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})
NO_VALUE_OPERATORS = frozenset({"is_blank", "is_not_blank"})


class ConditionError(ValueError):
    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(self.messages))

    @property
    def messages(self) -> list[str]:
        """Each problem as "path: message", as a form shows it."""
        return [f"{path}: {message}" if path else message for path, message in self.errors]


def parse_condition(data: Any) -> ConditionGroup | None:
    """The engine's ConditionGroup for stored ``data`` (None or {} = always). Raises ConditionError."""
    if data in (None, {}):
        return None
    errors: list[tuple[str, str]] = []
    group = _group(data, "", errors)
    if errors or group is None:
        raise ConditionError(errors or [("", "the condition is empty")])
    return group


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path and not part.startswith("[") else f"{path}{part}"


def _group(data: Any, path: str, errors: list[tuple[str, str]]) -> ConditionGroup | None:
    if not isinstance(data, dict) or len(data) != 1 or next(iter(data)) not in ("all", "any"):
        errors.append((path, 'a group is {"all": [...]} or {"any": [...]}'))
        return None
    mode = next(iter(data))
    items = data[mode]
    path = _join(path, mode)
    if not isinstance(items, list) or not items:
        errors.append((path, "list at least one condition"))
        return None
    parsed: list[Condition | ConditionGroup] = []
    for index, item in enumerate(items):
        item_path = f"{path}[{index}]"
        child: Condition | ConditionGroup | None
        if isinstance(item, dict) and "field" not in item and len(item) == 1:
            child = _group(item, item_path, errors)
        else:
            child = _condition(item, item_path, errors)
        if child is not None:
            parsed.append(child)
    return ConditionGroup(mode, tuple(parsed)) if len(parsed) == len(items) else None


def _condition(data: Any, path: str, errors: list[tuple[str, str]]) -> Condition | None:
    if not isinstance(data, dict) or not {"field", "op"} <= set(data) or set(data) - {"field", "op", "value"}:
        errors.append((path, 'a condition is {"field": ..., "op": ..., "value": ...}'))
        return None
    field, op, value = data["field"], data["op"], data.get("value")
    before = len(errors)
    if field not in FIELDS:
        errors.append((_join(path, "field"), f"unknown field {field!r}; use one of: {', '.join(FIELDS)}"))
    if op not in OPERATORS:
        errors.append((_join(path, "op"), f"unknown operator {op!r}; use one of: {', '.join(sorted(OPERATORS))}"))
    elif op in NO_VALUE_OPERATORS:
        if value not in (None, ""):
            errors.append((_join(path, "value"), f"{op} takes no value; remove it"))
    elif value is None or value == "" or value == []:
        errors.append((_join(path, "value"), f"{op} needs a value"))
    elif op in LIST_OPERATORS and not isinstance(value, list):
        errors.append((_join(path, "value"), f"{op} takes a list, such as [DE, AT]"))
    elif op == "between" and not (isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))):
        errors.append((_join(path, "value"), "between takes two numbers, low and high, such as [200, 1000]"))
    elif op in NUMBER_OPERATORS and not _is_number(value):
        errors.append((_join(path, "value"), f"{op} compares numbers; {value!r} is not one"))
    if len(errors) > before:
        return None
    return Condition(field, op, tuple(value) if isinstance(value, list) else value)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float | Decimal):
        return True
    try:
        Decimal(str(value).replace(",", ""))
    except InvalidOperation:
        return False
    return True


def summarize_stored(data: Any) -> str:
    """A stored condition in plain words, for admin lists; a broken one says so instead of failing the page."""
    try:
        return summarize(parse_condition(data))
    except ConditionError:
        return "(invalid condition: open the rule to fix it)"


def summarize(group: ConditionGroup | None) -> str:
    """One line for lists and receipts: ``country in 'DE', 'AT' and employees ≥ 1000``."""
    if group is None:
        return "always"
    joiner = " and " if group.mode == "all" else " or "
    parts = [describe(item) if isinstance(item, Condition) else f"({summarize(item)})" for item in group.items]
    return joiner.join(parts)


def canonical_condition(data: Any) -> Any:
    """``data`` with its keys in the written order (field, op, value; groups as they are).

    PostgreSQL's jsonb stores object keys in its own order, so a condition read
    back from the database is put in this order before it is shown or compared.
    """
    if isinstance(data, list):
        return [canonical_condition(item) for item in data]
    if not isinstance(data, dict):
        return data
    order = {"field": 0, "op": 1, "value": 2}
    return {key: canonical_condition(data[key]) for key in sorted(data, key=lambda key: (order.get(key, 3), key))}


# -- The admin's condition editor ---------------------------------------------------------------------------------

# Operators in the order the editor offers them, each as a reader says it.
OPERATOR_LABELS = (
    ("equals", "is"),
    ("not_equals", "is not"),
    ("in", "is one of"),
    ("not_in", "is none of"),
    ("contains", "contains"),
    ("starts_with", "starts with"),
    ("gt", "is more than"),
    ("gte", "is at least"),
    ("lt", "is less than"),
    ("lte", "is at most"),
    ("between", "is between"),
    ("is_blank", "is blank"),
    ("is_not_blank", "is not blank"),
)
# Fields whose values are numbers or yes/no: the editor stores what it reads there as such, as JSON would.
NUMBER_FIELDS = frozenset(
    {
        "employees",
        "annual_revenue",
        "score",
        "account.id",
        "account.owner_rep_id",
        "account.open_opportunity_owner_rep_id",
        "account.territory_id",
    }
)
BOOLEAN_FIELDS = frozenset({"is_free_email", "account.is_customer"})


def _number_or_text(text: str) -> Any:
    try:
        number = Decimal(text.replace(",", "") if "," in text and "." not in text else text)
    except InvalidOperation:
        return text
    if not number.is_finite():
        return text
    return int(number) if number == number.to_integral_value() else float(number)


def _scalar(field: str, text: str) -> Any:
    if field in NUMBER_FIELDS:
        return _number_or_text(text)
    if field in BOOLEAN_FIELDS and text.lower() in ("true", "yes", "false", "no"):
        return text.lower() in ("true", "yes")
    return text


def condition_from_text(field: str, op: str, text: str) -> dict[str, Any]:
    """One condition as the editor's row gives it (field, operator and the value as typed) in its stored
    form: lists split at commas, numbers and yes/no where the field or operator wants them. Only shape
    changes here; ``parse_condition`` judges the result and says what is wrong."""
    text = text.strip()
    condition: dict[str, Any] = {"field": field, "op": op}
    if op in NO_VALUE_OPERATORS and not text:
        return condition
    if op in LIST_OPERATORS or op == "between":
        items = [item.strip() for item in text.split(",") if item.strip()]
        if op == "between":
            condition["value"] = [_number_or_text(item) for item in items]
        else:
            condition["value"] = [_scalar(field, item) for item in items]
    elif op in NUMBER_OPERATORS:
        condition["value"] = _number_or_text(text)
    else:
        condition["value"] = _scalar(field, text)
    return condition


def value_as_text(value: Any) -> str:
    """A stored value as the editor shows it in its text box: the inverse of ``condition_from_text``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(value_as_text(item) for item in value)
    return str(value)
