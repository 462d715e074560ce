"""Amounts as people type them: "1,200", "500+", "$1.5M", "3 Mio", "51-200 employees".

A single "," or "." followed by exactly three digits and no unit is a thousands
separator ("1,200" and "1.200" are 1200); otherwise it is the decimal separator
("1,5 Mio" is 1,500,000). A range counts as its lower bound.
"""

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_MULTIPLIERS = {
    **dict.fromkeys(["k", "tsd", "thousand"], 10**3),
    **dict.fromkeys(["m", "mm", "mn", "mio", "million", "millions"], 10**6),
    **dict.fromkeys(["b", "bn", "mrd", "billion", "billions"], 10**9),
}
_CURRENCY_RE = re.compile(r"[$€£¥]|\b(?:usd|eur|gbp|chf|cad|aud|jpy|inr)\b")
_PART_RE = re.compile(r"(\d[\d.,' \u00a0]*?)\s*([a-z]*)\.?")


def parse_amount(value: Any) -> Decimal | None:
    """A non-negative amount from a number or text such as "1,200", "500+", "$1.5M",
    "3 Mio", "51-200 employees" (a range counts as its lower bound)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            return None
        return amount if amount.is_finite() and amount >= 0 else None
    if not isinstance(value, str):
        return None
    text = _CURRENCY_RE.sub(" ", " ".join(value.split()).casefold())
    text = re.sub(r"\b(?:employees|employee|staff|people)\b", " ", text).strip().lstrip(">").rstrip("+").strip()
    parts = re.split(r"\s*(?:-|–|—|\bto\b|\bbis\b)\s*", text)
    if len(parts) > 2:
        return None
    parsed = [_PART_RE.fullmatch(part) for part in parts]
    if not all(parsed):
        return None
    units = [match[2] for match in parsed if match]
    unit = units[-1] if len(parts) == 2 and not units[0] else units[0]
    if unit and unit not in _MULTIPLIERS:
        return None
    numbers = [number for match in parsed if match and (number := _number(match[1], has_unit=bool(unit))) is not None]
    if len(numbers) != len(parts) or numbers[0] > numbers[-1]:
        return None
    return numbers[0] * _MULTIPLIERS.get(unit, 1)


def _number(text: str, *, has_unit: bool) -> Decimal | None:
    """Digits with thousands and decimal separators in either convention."""
    text = re.sub(r"['\s]", "", text)
    if "," in text and "." in text:
        decimal_sep = "," if text.rfind(",") > text.rfind(".") else "."
        text = text.replace("." if decimal_sep == "," else ",", "").replace(decimal_sep, ".")
    elif "," in text or "." in text:
        sep = "," if "," in text else "."
        head, *groups = text.split(sep)
        thousands = len(groups) > 1 or (len(groups[0]) == 3 and not has_unit)
        if thousands and all(len(group) == 3 for group in groups) and 1 <= len(head) <= 3:
            text = head + "".join(groups)
        elif not thousands:
            text = f"{head}.{groups[0]}"
        else:
            return None
    return Decimal(text) if re.fullmatch(r"\d+(\.\d+)?", text) else None
