"""Validation of a whole coverage document before anything is written.

Every problem is collected with its path in the document, so one run tells
RevOps everything to fix. The checks come in two layers:

1. The JSON Schema (``schema.json``): shapes, types, known keys, enums and
   patterns.
2. Rules that need more than one entry or the database: unique keys,
   references, the single catch-all queue, cycles of fallbacks and parents,
   ISO codes, time zones, domains, working-hour windows, time off,
   routing rules' conditions (``parse_condition``) and action targets,
   business calendars (``CalendarSpec``: zone and holiday region; one owner;
   one calendar per owner) and SLA policies (condition, target, ladder steps,
   a single default).

Keys with a schema error are left out of the second layer (whole entries when
their key is wrong), so one typo does not come back as a cascade of follow-on
errors.
"""

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from leadrouter.coverage.errors import CoverageError
from leadrouter.coverage.state import (
    KEY_FIELDS,
    OWNER_KINDS,
    WEEKDAYS,
    Entry,
    State,
    entity_key,
    existing_usernames,
    normalize_entry,
    parse_amount,
    parse_datetime,
    parse_days,
    parse_percent,
    parse_window,
    rename_catch_all,
)
from leadrouter.coverage.yamlio import SECTION_ORDER
from routing.conditions import ConditionError, parse_condition
from sla.calendar import CalendarSpec
from territories import validators
from territories.models import AccountDomain

SCHEMA_PATH = Path(__file__).with_name("schema.json")

# Which validator checks each kind of territory criterion; product lines are references instead.
_CRITERION_VALIDATORS = {
    "countries": validators.validate_country_code,
    "subdivisions": validators.validate_subdivision_code,
    "postal_prefixes": validators.validate_postal_prefix,
    "industries": validators.validate_industry,
    "size_bands": validators.validate_size_band,
}

_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "empty (null)",
}


@cache
def load_schema() -> dict[str, Any]:
    """The JSON Schema of the document, read once."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@dataclass
class Desired:
    """A validated document as full entries, with where each entry came from.

    ``state`` has only the sections present in the document. ``paths`` and
    ``raw`` map ``(section, key)`` to the entry's path (``reps[3]``) and its
    entry as written, so a model-level error found while applying can still
    point at the right line.
    """

    state: State
    paths: dict[tuple[str, str], str] = field(default_factory=dict)
    raw: dict[tuple[str, str], Entry] = field(default_factory=dict)


def format_path(parts: Iterable[str | int]) -> str:
    """``["reps", 3, "time_zone"]`` → ``reps[3].time_zone``."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "document"


def show(value: Any) -> str:
    """A value as it would appear in a message: strings quoted, the rest as YAML/JSON reads it."""
    return json.dumps(value, ensure_ascii=False, default=str)


def messages(error: ValidationError) -> str:
    return " ".join(error.messages)


def _type_message(expected: Any, instance: Any) -> str:
    expected = expected if isinstance(expected, list) else [expected]
    message = "must be " + " or ".join(_TYPE_WORDS.get(str(name), str(name)) for name in expected)
    if "string" in expected and isinstance(instance, int | float | bool):
        message += f"; put {show(instance)} in quotes so it is read as text"
    return message


def _schema_messages(error: SchemaError) -> Iterator[tuple[list[str | int], str]]:
    """Turn one jsonschema error into (path, message) pairs worded for RevOps."""
    path: list[str | int] = list(error.absolute_path)
    instance: Any = error.instance
    expected: Any = error.validator_value
    schema: Any = error.schema
    if error.validator == "required":
        for name in expected:
            if isinstance(instance, dict) and name not in instance:
                yield [*path, name], "is required"
    elif error.validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        for name in instance:
            if name not in allowed:
                yield [*path, str(name)], "is not a known key; use one of: " + ", ".join(allowed)
    elif error.validator == "type" and path and path[-1] in ("start", "end") and isinstance(instance, int):
        # YAML 1.1 reads an unquoted 10:00 as the number 600.
        yield path, 'write the time in quotes, such as "09:00"'
    elif error.validator == "type":
        yield path, _type_message(expected, instance)
    elif error.validator == "enum":
        choices = ", ".join(show(choice) if choice == "" else str(choice) for choice in expected)
        yield path, f"{show(instance)} is not allowed; use one of: {choices}"
    elif error.validator == "const":
        yield path, f"must be {show(expected)}"
    elif error.validator == "pattern":
        wanted = schema.get("description", f"in the form {expected}")
        yield path, f"{show(instance)} is not {wanted}"
    elif error.validator == "minimum":
        yield path, f"must be at least {expected}"
    elif error.validator == "maximum":
        yield path, f"must be at most {expected}"
    elif error.validator == "minLength":
        yield path, "must not be empty"
    elif error.validator == "uniqueItems":
        seen: list[Any] = []
        for item in instance:
            if item in seen:
                yield path, f"lists {show(item)} more than once"
                break
            seen.append(item)
    else:
        yield path, error.message


class _Checker:
    """Collects every problem of one document; see the module docstring for the order of checks."""

    def __init__(self, document: Any, *, prune: bool, current: State) -> None:
        self.document = document
        self.prune = prune
        self.current = current
        self.errors: list[tuple[str, str]] = []
        # The keys of each entry (section, index) with a schema error ("*" for the entry itself),
        # and the sections that are not lists at all.
        self.bad_fields: dict[tuple[str, int], set[str]] = {}
        self.bad_sections: set[str] = set()
        self.final_keys: dict[str, set[str]] = {}
        self.known_users: set[str] = set()
        self.current_catch_all = next((key for key, entry in current["queues"].items() if entry["catch_all"]), None)
        self.catch_all_name: str | None = self.current_catch_all

    def error(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    # --- Layer 1 -------------------------------------------------------------------------------

    def check_schema(self) -> bool:
        """Run the JSON Schema; False when the document is too broken to check further."""
        found: list[tuple[list[str | int], str]] = []
        for error in Draft202012Validator(load_schema()).iter_errors(self.document):
            found.extend(_schema_messages(error))
        order = {name: index for index, name in enumerate(["version", *SECTION_ORDER])}
        found.sort(key=lambda item: (order.get(str(item[0][0]), 99) if item[0] else -1, _sort_key(item[0][1:])))
        for parts, message in found:
            self.error(format_path(parts), message)
            if len(parts) >= 2 and isinstance(parts[1], int):
                bad = self.bad_fields.setdefault((str(parts[0]), parts[1]), set())
                bad.add(str(parts[2]) if len(parts) >= 3 else "*")
            elif len(parts) == 1 and parts[0] in SECTION_ORDER:
                self.bad_sections.add(str(parts[0]))
        return isinstance(self.document, dict)

    # --- Layer 2 -------------------------------------------------------------------------------

    def sections(self) -> list[str]:
        return [name for name in SECTION_ORDER if name in self.document and name not in self.bad_sections]

    def entries(self, section: str, *, good_only: bool = True) -> Iterator[tuple[int, Entry]]:
        """The mappings of a section; with ``good_only``, without the keys that failed the schema."""
        if section not in self.sections():
            return
        for index, entry in enumerate(self.document[section]):
            if not isinstance(entry, dict):
                continue
            if good_only:
                entry = self.checked_part(section, index, entry)
                if entry is None:
                    continue
            yield index, entry

    def checked_part(self, section: str, index: int, entry: Entry) -> Entry | None:
        """The keys of an entry that passed the schema; None when its key did not.

        Leaving out only the keys with schema errors lets the other keys of the
        entry be checked too, without a follow-on error for a value already
        reported.
        """
        bad = self.bad_fields.get((section, index), set())
        if "*" in bad or KEY_FIELDS[section] in bad:
            return None
        return {name: value for name, value in entry.items() if name not in bad}

    def check_keys(self) -> dict[str, dict[str, int]]:
        """Report keys listed twice; return each section's keys with the index of their first entry."""
        doc_keys: dict[str, dict[str, int]] = {}
        for section in self.sections():
            key_field = KEY_FIELDS[section]
            keys: dict[str, int] = {}
            for index, entry in self.entries(section, good_only=False):
                value = entry.get(key_field)
                if not isinstance(value, str):
                    continue
                key = entity_key(section, value)
                if key in keys:
                    first = f"{section}[{keys[key]}]"
                    same = "the same name, ignoring case, as" if section == "accounts" else "the same as"
                    self.error(f"{section}[{index}].{key_field}", f"{show(value)} is listed twice: {same} {first}")
                else:
                    keys[key] = index
            doc_keys[section] = keys
        return doc_keys

    def check_catch_all(self) -> None:
        """Exactly one catch-all in the queue section; it maps onto the existing catch-all row."""
        if "queues" not in self.sections():
            return
        catch_alls = [
            (index, entry) for index, entry in self.entries("queues", good_only=False) if entry.get("catch_all") is True
        ]
        if not catch_alls:
            self.error("queues", "one queue must have catch_all: true; it takes every lead no rule placed")
            return
        first_index, first = catch_alls[0]
        for index, _entry in catch_alls[1:]:
            self.error(f"queues[{index}].catch_all", f"only one queue can be the catch-all; queues[{first_index}] is")
        if not isinstance(first.get("name"), str):
            return
        name = first["name"]
        self.catch_all_name = name
        if name != self.current_catch_all and name in self.current["queues"]:
            self.error(
                f"queues[{first_index}].name",
                f"{show(name)} is the name of another queue; rename or remove that queue before the catch-all "
                "takes its name",
            )
        checked = self.checked_part("queues", first_index, first)
        if checked is None:
            return
        if checked.get("active") is False:
            self.error(f"queues[{first_index}].active", "the catch-all queue cannot be deactivated")
        if checked.get("fallback"):
            self.error(f"queues[{first_index}].fallback", "the catch-all queue is the last stop; it has no fallback")

    def collect_final_keys(self, doc_keys: dict[str, dict[str, int]]) -> None:
        """What each section will hold after the import, which is what references may name."""
        for section in SECTION_ORDER:
            keys = set(doc_keys.get(section, {}))
            if not self.prune:
                keys |= set(self.current[section])
            self.final_keys[section] = keys
        # The catch-all is never pruned, so it can always be named.
        if self.catch_all_name is not None:
            self.final_keys["queues"].add(self.catch_all_name)

        mentioned = set(doc_keys.get("reps", {}))
        for _index, team in self.entries("teams", good_only=False):
            managers = team.get("managers")
            if isinstance(managers, list):
                mentioned |= {name for name in managers if isinstance(name, str)}
        wanted = {entry["manager"] for _index, entry in self.entries("reps") if isinstance(entry.get("manager"), str)}
        self.known_users = mentioned | existing_usernames(wanted - mentioned)

    def reference(self, path: str, value: Any, section: str, what: str) -> None:
        if not isinstance(value, str) or section in self.bad_sections:
            return
        if entity_key(section, value) in self.final_keys[section]:
            return
        message = f"there is no {what} {show(value)}"
        if self.prune and entity_key(section, value) in self.current[section]:
            fate = "deactivate" if section == "reps" else "delete"
            message += f"; it is not in this document, so --prune would {fate} it"
        self.error(path, message)

    def check_reps(self) -> None:
        for index, rep in self.entries("reps"):
            path = f"reps[{index}]"
            try:
                validators.validate_time_zone(rep.get("time_zone", "UTC"))
            except ValidationError as error:
                self.error(f"{path}.time_zone", messages(error))
            self.check_username(f"{path}.username", rep["username"])
            email = rep.get("email")
            if email:
                try:
                    validate_email(email)
                except ValidationError:
                    self.error(f"{path}.email", f"{show(email)} is not a valid e-mail address")
                else:
                    # Django lower-cases the domain of a user's e-mail when saving; say so instead of drifting.
                    local, domain = email.rsplit("@", 1)
                    if domain != domain.lower():
                        self.error(f"{path}.email", f"write the domain in lower case: {local}@{domain.lower()}")
            self.reference(f"{path}.team", rep.get("team"), "teams", "team")
            manager = rep.get("manager")
            if isinstance(manager, str) and manager not in self.known_users:
                self.error(f"{path}.manager", f"there is no user {show(manager)}; add them as a rep or team manager")
            for position, code in enumerate(rep.get("skills", [])):
                self.reference(f"{path}.skills[{position}]", code, "skills", "skill")
            for day, windows in rep.get("working_hours", {}).items():
                self.check_windows(f"{path}.working_hours.{day}", windows)
            for position, period in enumerate(rep.get("out_of_office", [])):
                self.check_period(f"{path}.out_of_office[{position}]", period)

    def check_team_managers(self) -> None:
        for index, team in self.entries("teams"):
            for position, username in enumerate(team.get("managers", [])):
                self.check_username(f"teams[{index}].managers[{position}]", username)

    def check_username(self, path: str, username: str) -> None:
        # Django stores user names in Unicode normal form NFKC; a name in another form would never match again.
        if unicodedata.normalize("NFKC", username) != username:
            self.error(path, f"{show(username)} is not in Unicode normal form NFKC; retype it")

    def check_windows(self, path: str, windows: list[str]) -> None:
        """Windows of one day must be non-empty and must not overlap; one past midnight ends the next day."""
        spans: list[tuple[int, int, int]] = []
        for position, window in enumerate(windows):
            start, end = parse_window(window)
            start_minute, end_minute = start.hour * 60 + start.minute, end.hour * 60 + end.minute
            if start_minute == end_minute:
                self.error(f"{path}[{position}]", f"{show(window)} is empty: the end must differ from the start")
                continue
            if end_minute < start_minute:
                end_minute += 24 * 60
            for other_start, other_end, other_position in spans:
                if start_minute < other_end and other_start < end_minute:
                    self.error(f"{path}[{position}]", f"{show(window)} overlaps {show(windows[other_position])}")
                    break
            spans.append((start_minute, end_minute, position))

    def check_period(self, path: str, period: Entry) -> None:
        starts_at = parse_datetime(period["starts_at"])
        ends_at = parse_datetime(period["ends_at"])
        for name, parsed in (("starts_at", starts_at), ("ends_at", ends_at)):
            if parsed is None:
                self.error(
                    f"{path}.{name}",
                    f"{show(period[name])} is not an ISO 8601 date-time with offset, such as 2026-12-23T00:00:00+00:00",
                )
        if starts_at and ends_at and ends_at <= starts_at:
            self.error(f"{path}.ends_at", "must be after starts_at")

    def check_queues(self) -> None:
        for index, queue in self.entries("queues"):
            path = f"queues[{index}]"
            for position, code in enumerate(queue.get("required_skills", [])):
                self.reference(f"{path}.required_skills[{position}]", code, "skills", "skill")
            fallback = queue.get("fallback")
            if fallback is not None and fallback == queue["name"]:
                self.error(f"{path}.fallback", "a queue cannot be its own fallback")
            else:
                self.reference(f"{path}.fallback", fallback, "queues", "queue")
            rule = queue.get("when_nobody_eligible")
            if rule in ("overflow", "hold_off_hours") and not fallback and not queue.get("catch_all"):
                self.error(
                    f"{path}.fallback", f"is required when when_nobody_eligible is {rule}; or hold leads instead"
                )
            seen: dict[str, int] = {}
            for position, member in enumerate(queue.get("members", [])):
                rep = member["rep"]
                if rep in seen:
                    self.error(f"{path}.members[{position}].rep", f"{show(rep)} is already in members[{seen[rep]}]")
                    continue
                seen[rep] = position
                self.reference(f"{path}.members[{position}].rep", rep, "reps", "rep")

    def check_territories(self) -> None:
        for index, territory in self.entries("territories"):
            path = f"territories[{index}]"
            parent = territory.get("parent")
            if parent is not None and parent == territory["name"]:
                self.error(f"{path}.parent", "a territory cannot be its own parent")
            else:
                self.reference(f"{path}.parent", parent, "territories", "territory")
            self.reference(f"{path}.queue", territory.get("queue"), "queues", "queue")
            self.reference(f"{path}.rep", territory.get("rep"), "reps", "rep")
            if territory.get("queue") and territory.get("rep"):
                self.error(f"{path}.rep", "a territory is covered by a queue or by a rep, not both; remove one")
            for key, values in territory.get("criteria", {}).items():
                for position, value in enumerate(values):
                    item_path = f"{path}.criteria.{key}[{position}]"
                    if key == "product_lines":
                        self.reference(item_path, value, "product_lines", "product line")
                        continue
                    try:
                        _CRITERION_VALIDATORS[key](value)
                    except ValidationError as error:
                        self.error(item_path, messages(error))

    def check_accounts(self) -> None:
        listed: dict[str, tuple[str, str]] = {}
        for index, account in self.entries("accounts"):
            path = f"accounts[{index}]"
            for position, domain in enumerate(account.get("domains", [])):
                item_path = f"{path}.domains[{position}]"
                try:
                    validators.validate_domain(domain)
                except ValidationError as error:
                    self.error(item_path, messages(error))
                    continue
                if domain in listed:
                    other_path, other_name = listed[domain]
                    self.error(
                        item_path,
                        f"{show(domain)} is also listed under {other_path} ({show(other_name)}); "
                        "a domain belongs to one account",
                    )
                    continue
                listed[domain] = (item_path, account["name"])
            self.reference(f"{path}.owner", account.get("owner"), "reps", "rep")
            self.reference(f"{path}.territory", account.get("territory"), "territories", "territory")
            self.check_opportunities(path, account.get("opportunities", []))
            if account.get("country"):
                try:
                    validators.validate_country_code(account["country"])
                except ValidationError as error:
                    self.error(f"{path}.country", messages(error))
        if self.prune or not listed:
            return
        # A domain kept by an account this document leaves alone cannot move silently.
        doc_accounts = {
            entity_key("accounts", entry["name"])
            for _index, entry in self.entries("accounts", good_only=False)
            if isinstance(entry.get("name"), str)
        }
        for row in AccountDomain.objects.filter(domain__in=listed).select_related("account"):
            if entity_key("accounts", row.account.name) not in doc_accounts:
                item_path, _name = listed[row.domain]
                self.error(
                    item_path,
                    f"{show(row.domain)} belongs to the account {show(row.account.name)}, which this document does "
                    "not list; remove the domain there first",
                )

    def check_opportunities(self, path: str, opportunities: list[Entry]) -> None:
        names: dict[str, int] = {}
        for position, opportunity in enumerate(opportunities):
            item_path = f"{path}.opportunities[{position}]"
            name = opportunity["name"]
            if name in names:
                self.error(
                    f"{item_path}.name",
                    f"{show(name)} is listed twice: the same as {path}.opportunities[{names[name]}]; "
                    "an opportunity's name is unique within its account",
                )
            else:
                names[name] = position
            if len(name) > 200:
                self.error(f"{item_path}.name", "at most 200 characters")
            self.reference(f"{item_path}.owner", opportunity.get("owner"), "reps", "rep")
            amount = opportunity.get("amount")
            if amount is not None and parse_amount(amount) is None:
                self.error(
                    f"{item_path}.amount",
                    f"{show(amount)} is not an amount with at most 12 digits before the point and 2 after, "
                    'such as "120000.00"',
                )
            closed_at = opportunity.get("closed_at")
            if closed_at is not None and parse_datetime(closed_at) is None:
                self.error(
                    f"{item_path}.closed_at",
                    f"{show(closed_at)} is not an ISO 8601 date-time with offset, such as 2026-12-23T00:00:00+00:00",
                )
            elif closed_at is not None and opportunity.get("stage", "open") == "open":
                self.error(
                    f"{item_path}.closed_at", "an open opportunity has no close date; clear it or close the stage"
                )

    def check_rules(self) -> None:
        for index, rule in self.entries("rules"):
            path = f"rules[{index}]"
            if "when" in rule:
                try:
                    parse_condition(rule["when"])
                except ConditionError as error:
                    for part, message in error.errors:
                        self.error(f"{path}.when.{part}" if part else f"{path}.when", message)
            action = rule.get("action")
            queue, rep = rule.get("queue"), rule.get("rep")
            if action == "queue" and not queue:
                self.error(f"{path}.queue", "is required with action: queue; choose the queue this rule routes to")
            elif action is not None and action != "queue" and queue:
                self.error(f"{path}.queue", "only action: queue uses a queue; remove it or change the action")
            else:
                self.reference(f"{path}.queue", queue, "queues", "queue")
            if action == "rep" and not rep:
                self.error(f"{path}.rep", "is required with action: rep; choose the rep this rule routes to")
            elif action is not None and action != "rep" and rep:
                self.error(f"{path}.rep", "only action: rep uses a rep; remove it or change the action")
            else:
                self.reference(f"{path}.rep", rep, "reps", "rep")

    def check_calendars(self) -> None:
        for index, calendar in self.entries("calendars"):
            path = f"calendars[{index}]"
            time_zone = calendar.get("time_zone", "UTC")
            try:
                validators.validate_time_zone(time_zone)
            except ValidationError as error:
                self.error(f"{path}.time_zone", messages(error))
            holidays = calendar.get("holidays") or {}
            try:
                CalendarSpec("UTC", (), holidays.get("country", ""), holidays.get("subdivision", ""))
            except ValueError as error:
                self.error(f"{path}.holidays", str(error))
            self.check_owner(path, calendar)
            windows: list[tuple[int, int, int, str]] = []
            for position, hours in enumerate(calendar.get("hours", [])):
                item_path = f"{path}.hours[{position}]"
                days = parse_days(hours["days"])
                if days is None:
                    self.error(f"{item_path}.days", f"{show(hours['days'])} runs backwards; write days in week order")
                    continue
                start, end = dt.time.fromisoformat(hours["start"]), dt.time.fromisoformat(hours["end"])
                begins = start.hour * 60 + start.minute
                # An end at or before the start runs past midnight; an equal one lasts 24 hours.
                length = (end.hour * 60 + end.minute - begins) % (24 * 60) or 24 * 60
                for weekday in days:
                    windows.append((weekday * 24 * 60 + begins, length, position, WEEKDAYS[weekday]))
            self.check_overlaps(path, windows)
            seen: dict[str, int] = {}
            for position, closed in enumerate(calendar.get("closed", [])):
                item_path = f"{path}.closed[{position}].date"
                try:
                    dt.date.fromisoformat(closed["date"])
                except ValueError:
                    self.error(item_path, f"{show(closed['date'])} is not a date such as 2026-12-24")
                    continue
                if closed["date"] in seen:
                    self.error(item_path, f"{show(closed['date'])} is already in closed[{seen[closed['date']]}]")
                seen.setdefault(closed["date"], position)
        self.check_unique_claims(
            "calendars", "owner", lambda entry: _owner_claims(entry.get("owner")), _owner_claim_message
        )

    def check_owner(self, path: str, calendar: Entry) -> None:
        owner = calendar.get("owner")
        if owner is None:
            return
        kinds = [kind for kind in OWNER_KINDS if kind in owner]
        if len(kinds) > 1:
            self.error(f"{path}.owner", "a calendar belongs to one rep, one team or one queue, not several; keep one")
        elif not kinds and not owner.get("default"):
            self.error(f"{path}.owner", "name a rep, a team or a queue, or write default: true; or leave owner out")
        self.reference(f"{path}.owner.rep", owner.get("rep"), "reps", "rep")
        self.reference(f"{path}.owner.team", owner.get("team"), "teams", "team")
        self.reference(f"{path}.owner.queue", owner.get("queue"), "queues", "queue")

    def check_overlaps(self, path: str, windows: list[tuple[int, int, int, str]]) -> None:
        """Opening windows must not overlap on the weekly clock, so a calendar's week reads one way."""
        week = 7 * 24 * 60
        reported: set[int] = set()
        for number, (begins, length, position, day) in enumerate(windows):
            for other_begins, other_length, other_position, _other_day in windows[:number]:
                overlaps = any(
                    begins < other_begins + other_length + shift and other_begins + shift < begins + length
                    for shift in (-week, 0, week)
                )
                if overlaps and position not in reported:
                    where = "another day of this entry" if other_position == position else f"hours[{other_position}]"
                    self.error(f"{path}.hours[{position}]", f"the {day} window overlaps {where}")
                    reported.add(position)

    def check_sla_policies(self) -> None:
        for index, policy in self.entries("sla_policies"):
            path = f"sla_policies[{index}]"
            if "condition" in policy:
                try:
                    parse_condition(policy["condition"])
                except ConditionError as error:
                    for part, message in error.errors:
                        self.error(f"{path}.condition.{part}" if part else f"{path}.condition", message)
            # A target with a schema error was reported already and is missing from ``policy``.
            target_reported = "first_touch_minutes" in self.bad_fields.get(("sla_policies", index), set())
            if not policy.get("no_sla") and not policy.get("first_touch_minutes") and not target_reported:
                self.error(
                    f"{path}.first_touch_minutes",
                    "set a target in business minutes, or write no_sla: true to say these leads have none",
                )
            self.reference(f"{path}.territory", policy.get("territory"), "territories", "territory")
            self.reference(f"{path}.queue", policy.get("queue"), "queues", "queue")
            for position, step in enumerate(policy.get("steps", [])):
                self.check_step(f"{path}.steps[{position}]", step)
        self.check_unique_claims(
            "sla_policies",
            "default",
            lambda entry: [("default",)] if entry.get("default") else [],
            lambda claim, other: f"{show(other)} is already the default policy; only one can be",
        )

    def check_step(self, path: str, step: Entry) -> None:
        if ("at" in step) == ("after_due" in step):
            self.error(
                path,
                "give either at: 80% (a share of the target) or after_due: 15 (business minutes after the due time)",
            )
        elif "at" in step and not 1 <= parse_percent(step["at"]) <= 100:
            self.error(f"{path}.at", f"{show(step['at'])} is not a share from 1% to 100%")
        queue = step.get("queue")
        if queue and step["action"] != "move_to_queue":
            self.error(f"{path}.queue", "only action: move_to_queue uses a queue; remove it or change the action")
        else:
            self.reference(f"{path}.queue", queue, "queues", "queue")

    def check_unique_claims(self, section: str, field_name: str, claims: Any, message: Any) -> None:
        """Report a document entry that claims what another calendar or policy already holds after the import.

        ``claims(entry)`` lists what an entry holds (an owner, the default); the result of the import is the
        database (unless pruning) with the document's entries on top.
        """
        if section not in self.sections():
            return
        holders: dict[Any, str] = {}
        doc_names: set[str] = set()
        for _index, entry in self.entries(section):
            doc_names.add(entry["name"])
        if not self.prune:
            for name, entry in self.current[section].items():
                if name in doc_names:
                    continue
                for claim in claims(entry):
                    holders.setdefault(claim, name)
        for index, entry in self.entries(section):
            if field_name in self.bad_fields.get((section, index), set()):
                continue
            for claim in claims(entry):
                other = holders.setdefault(claim, entry["name"])
                if other != entry["name"]:
                    self.error(f"{section}[{index}].{field_name}", message(claim, other))

    def check_cycles(self) -> None:
        """Fallback chains and territory parents must end; checked on the combined result of the import."""
        current_queues = {} if self.prune else self.current["queues"]
        current_territories = {} if self.prune else self.current["territories"]
        for section, link, current, noun in (
            ("queues", "fallback", current_queues, "fallbacks"),
            ("territories", "parent", current_territories, "parents"),
        ):
            edges = {key: entry[link] for key, entry in current.items()}
            doc_entries = list(self.entries(section))
            # A name listed twice is already an error; its first entry stands for it here.
            doc_edges: dict[str, str | None] = {}
            for _index, entry in doc_entries:
                doc_edges.setdefault(entry["name"], entry.get(link))
            edges.update(doc_edges)
            reported: set[str] = set()
            for index, entry in doc_entries:
                name = entry["name"]
                if name in reported or edges.get(name) == name:
                    continue
                chain = [name]
                node = edges.get(name)
                while node is not None and node not in chain:
                    chain.append(node)
                    node = edges.get(node)
                if node == name:
                    reported |= set(chain)
                    circle = " → ".join([*chain, name])
                    self.error(f"{section}[{index}].{link}", f"the {noun} run in a circle: {circle}")

    def check_prune_sections(self) -> None:
        """With --prune, a section missing from the document would empty that part of the model.

        That is almost always a partial file imported by mistake, so it must be
        said explicitly: ``teams: []`` deletes every team.
        """
        if not self.prune:
            return
        for section in SECTION_ORDER:
            if section in self.document:
                continue
            prunable = [key for key, entry in self.current[section].items() if not entry.get("catch_all")]
            if prunable:
                self.error(
                    section,
                    f"the section is missing, and --prune would remove the {len(prunable)} already in the "
                    f"database; write `{section}: []` to remove them, or import without --prune",
                )

    def run(self) -> Desired:
        if not self.check_schema():
            raise CoverageError(self.errors)
        self.check_prune_sections()
        doc_keys = self.check_keys()
        self.check_catch_all()
        if "queues" in self.sections():
            self.current = rename_catch_all(self.current, self.catch_all_name)
        self.collect_final_keys(doc_keys)
        self.check_team_managers()
        self.check_reps()
        self.check_queues()
        self.check_territories()
        self.check_accounts()
        self.check_rules()
        self.check_calendars()
        self.check_sla_policies()
        self.check_cycles()
        if self.errors:
            raise CoverageError(sorted(self.errors, key=lambda error: _document_order(error[0])))

        desired = Desired(state={})
        for section in self.sections():
            entries: dict[str, Entry] = {}
            for index, raw in self.entries(section):
                key = entity_key(section, raw[KEY_FIELDS[section]])
                entries[key] = normalize_entry(section, raw)
                desired.paths[(section, key)] = f"{section}[{index}]"
                desired.raw[(section, key)] = raw
            desired.state[section] = entries
        return desired


def _owner_claims(owner: Any) -> list[tuple[str, ...]]:
    if not isinstance(owner, dict):
        return []
    claims: list[tuple[str, ...]] = [(kind, owner[kind]) for kind in OWNER_KINDS if isinstance(owner.get(kind), str)]
    if owner.get("default") is True:
        claims.append(("default",))
    return claims


def _owner_claim_message(claim: tuple[str, ...], other: str) -> str:
    if claim == ("default",):
        return f"the calendar {show(other)} is already the default; only one can be"
    kind, name = claim
    return f"the {kind} {show(name)} already has the calendar {show(other)}; a {kind} has one calendar"


def _document_order(path: str) -> tuple[int, int]:
    """Sort errors by section and entry, keeping the order of checks within one entry."""
    match = re.match(r"(\w+)(?:\[(\d+)\])?", path)
    if match is None:
        return (-1, -1)
    order = ["version", *SECTION_ORDER]
    section = order.index(match[1]) if match[1] in order else -1
    return (section, int(match[2]) if match[2] else -1)


def _sort_key(parts: list[str | int]) -> tuple[tuple[int, str | int], ...]:
    return tuple((0, part) if isinstance(part, int) else (1, part) for part in parts)


def validate_document(document: Any, *, prune: bool, current: State) -> Desired:
    """Check the whole document against the schema, itself and the database.

    Raises CoverageError listing every problem; returns the document as full
    entries when there is none.
    """
    return _Checker(document, prune=prune, current=current).run()
