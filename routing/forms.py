import json
from datetime import datetime
from typing import Any

from django import forms
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from routing.conditions import (
    FIELDS,
    OPERATOR_LABELS,
    ConditionError,
    condition_from_text,
    parse_condition,
    value_as_text,
)
from territories.picklists import INDUSTRIES
from territories.time_zones import local_instant
from territories.validators import time_zone_names


def as_of_instant(text: str, zone: str = "") -> datetime:
    """The instant a simulation runs "as of". ``text`` is an ISO 8601 date and time: a wall-clock time
    ("2026-12-07 08:30") is read in ``zone`` (UTC when blank); a time with an offset ("2026-12-07T08:30+01:00")
    stands alone. ValueError says what to fix."""
    if zone and zone not in time_zone_names():
        raise ValueError(f"{zone} is not an IANA time zone; use a name such as Europe/Berlin.")
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise ValueError("Give a date and time such as 2026-12-07 08:30.") from error
    if not AS_OF_YEARS[0] <= parsed.year <= AS_OF_YEARS[1]:
        raise ValueError(f"Give a time between the years {AS_OF_YEARS[0]} and {AS_OF_YEARS[1]}.")
    if parsed.tzinfo is not None:
        if zone:
            raise ValueError("Give a wall-clock time with a time zone, or a time with an offset alone.")
        return parsed
    return local_instant(parsed, zone or "UTC")


AS_OF_YEARS = (2000, 2100)


class SimulateLeadForm(forms.Form):
    """A lead as a form or a CRM would send it; values are standardized exactly as at intake. "As of" runs the
    simulation at another time (working hours and time off judged then; loads, turns and accounts as now)."""

    as_of = forms.CharField(
        required=False,
        max_length=40,
        label="As of",
        help_text="Simulate at this time instead of now: 2026-12-07 08:30, read in the time zone below.",
    )
    time_zone = forms.CharField(
        required=False, max_length=64, label="Time zone", help_text="Europe/Berlin, America/New_York…; UTC if blank."
    )

    email = forms.CharField(required=False)
    first_name = forms.CharField(required=False)
    last_name = forms.CharField(required=False)
    title = forms.CharField(required=False)
    company = forms.CharField(required=False)
    website = forms.CharField(required=False)
    country = forms.CharField(required=False, help_text="A code or a name: DE, Germany, Deutschland.")
    state = forms.CharField(required=False, label="State / region", help_text="US-CA, California, Bayern…")
    postal_code = forms.CharField(required=False)
    employees = forms.CharField(required=False, help_text="A number or a range: 250, 51-200.")
    industry = forms.ChoiceField(required=False, choices=[("", "—"), *INDUSTRIES])
    product_interest = forms.CharField(required=False)
    source = forms.CharField(required=False, help_text="demo request, webinar, partner…")
    campaign = forms.CharField(required=False)

    def raw_lead(self) -> dict[str, str]:
        return {
            name: value for name, value in self.cleaned_data.items() if value and name not in ("as_of", "time_zone")
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        as_of, zone = cleaned.get("as_of", ""), cleaned.get("time_zone", "")
        cleaned["now"] = None
        if zone and not as_of:
            self.add_error("as_of", "Give the time to simulate at, or leave the time zone blank.")
        elif as_of:
            try:
                cleaned["now"] = as_of_instant(as_of, zone)
            except ValueError as error:
                self.add_error("time_zone" if zone and zone not in time_zone_names() else "as_of", str(error))
        return cleaned


# --- The rule condition editor -----------------------------------------------------------------------------------

# How deep the editor offers a new nested group; deeper stored conditions are still shown and kept.
EDITOR_MAX_DEPTH = 3
EDITOR_BLANK_ROWS = 2


def _field_label(name: str) -> str:
    return name.replace("account.", "account ").replace("_", " ")


class ConditionEditor(forms.Widget):
    """A rule's condition as rows of field, operator and value inside "all" / "any" groups, in plain HTML.

    The form posts one input per box (``condition__g-mode``, ``condition__g-0-field``, ``condition__g-1-0-op``,
    …); ``value_from_datadict`` builds the same JSON a person would have typed, so the model field, its
    validation and its stored form are unchanged. Every group has a few blank rows and, up to
    ``EDITOR_MAX_DEPTH``, a folded blank sub-group: "Save and continue editing" brings fresh ones. A row whose
    field is cleared is dropped, and so is a group left without rows. A post that carries the condition as
    JSON text under the field's own name (an older form, a script) is still accepted as it is.
    """

    template_name = "admin/routing/rule/condition_editor.html"

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        prefix = f"{name}__g"
        if f"{prefix}-mode" not in data:
            return data.get(name)
        group = _read_group(data, prefix)
        return json.dumps(group) if group else ""

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return f"{name}__g-mode" not in data and name not in data

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        stored = value
        if isinstance(value, str):
            try:
                stored = json.loads(value) if value.strip() else None
            except ValueError:
                stored = None
        context = {
            "name": name,
            "group": _editor_group(stored, f"{name}__g", depth=0, errors=_row_errors(stored)),
            "fields": [(field, _field_label(field)) for field in FIELDS],
            "operators": OPERATOR_LABELS,
        }
        return render_to_string(self.template_name, context)


def _read_group(data: Any, prefix: str) -> dict[str, list[Any]] | None:
    mode = data.get(f"{prefix}-mode")
    mode = mode if mode in ("all", "any") else "all"
    items: list[Any] = []
    index = 0
    while True:
        child = f"{prefix}-{index}"
        if f"{child}-mode" in data:
            group = _read_group(data, child)
            if group:
                items.append(group)
        elif f"{child}-field" in data or f"{child}-op" in data:
            field = (data.get(f"{child}-field") or "").strip()
            if field:
                op = (data.get(f"{child}-op") or "").strip()
                items.append(condition_from_text(field, op, data.get(f"{child}-value") or ""))
        else:
            break
        index += 1
    return {mode: items} if items else None


def _row_errors(stored: Any) -> list[tuple[str, str]]:
    """What is wrong with a condition, by path (``all[1].any[0].value``), so each row can show its own problem
    beside it; the form lists them all above the editor as well."""
    try:
        parse_condition(stored)
    except ConditionError as error:
        return error.errors
    return []


def _editor_group(
    stored: Any,
    prefix: str,
    *,
    depth: int,
    blank: bool = False,
    path: str = "",
    errors: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """What the template draws for one group: its rows and sub-groups as stored, then blank ones. ``path`` is
    the group's place as ``parse_condition`` names it, to find the ``errors`` of each row."""
    errors = errors or []
    mode, items = "all", []
    if isinstance(stored, dict) and len(stored) == 1:
        key = next(iter(stored))
        if key in ("all", "any") and isinstance(stored[key], list):
            mode, items = key, stored[key]
    group_path = f"{path}.{mode}" if path else mode
    children: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        child = f"{prefix}-{len(children)}"
        item_path = f"{group_path}[{index}]"
        if isinstance(item, dict) and "field" not in item and len(item) == 1:
            children.append({"group": _editor_group(item, child, depth=depth + 1, path=item_path, errors=errors)})
        elif isinstance(item, dict):
            children.append(
                {
                    "row": {
                        "prefix": child,
                        "field": item.get("field", ""),
                        "op": item.get("op", ""),
                        "value": value_as_text(item.get("value")),
                        "errors": [
                            message if where == item_path else f"{where[len(item_path) + 1 :]}: {message}"
                            for where, message in errors
                            if where == item_path or where.startswith(f"{item_path}.")
                        ],
                    }
                }
            )
    for _ in range(EDITOR_BLANK_ROWS):
        children.append({"row": {"prefix": f"{prefix}-{len(children)}", "field": "", "op": "", "value": ""}})
    new_group = None
    if not blank and depth + 1 < EDITOR_MAX_DEPTH:
        new_group = _editor_group({"any": []}, f"{prefix}-{len(children)}", depth=depth + 1, blank=True)
        new_group["mode"] = "any" if mode == "all" else "all"
    return {"prefix": prefix, "mode": mode, "children": children, "new_group": new_group, "depth": depth}
