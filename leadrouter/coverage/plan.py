"""The difference between a validated document and the database, as a plan.

A plan lists what an import would create, update, delete or deactivate, field
by field. ``--dry-run`` prints it; the import applies exactly it. Computing a
plan writes nothing.
"""

from dataclasses import dataclass, field
from typing import Any

from django.db import models

from leadrouter.coverage.errors import CoverageError
from leadrouter.coverage.state import (
    FIELDS,
    KEY_FIELDS,
    KIND_NAMES,
    MEMBER_DEFAULTS,
    OPPORTUNITY_DEFAULTS,
    OUT_OF_OFFICE_DEFAULTS,
    STEP_DEFAULTS,
    State,
    existing_usernames,
    rename_catch_all,
)
from leadrouter.coverage.validation import Desired, show
from leadrouter.coverage.yamlio import SECTION_ORDER
from routing.models import Queue, QueueMembership, Rule
from sla.models import BusinessCalendar, CalendarHours, ClosedDate, EscalationStep, SlaPolicy
from territories.models import (
    Account,
    AccountDomain,
    Opportunity,
    OutOfOffice,
    ProductLine,
    Rep,
    Skill,
    Team,
    Territory,
    TerritoryCriterion,
    WorkingHours,
)

CREATE = "create"
UPDATE = "update"
DELETE = "delete"
DEACTIVATE = "deactivate"

# Rows the document describes. References from any other model (leads,
# assignments, SLA rows) can block a deletion that --prune asks for.
_COVERAGE_MODELS: frozenset[type[models.Model]] = frozenset(
    {
        Skill,
        ProductLine,
        Team,
        Rep,
        WorkingHours,
        OutOfOffice,
        Queue,
        QueueMembership,
        Territory,
        TerritoryCriterion,
        Account,
        AccountDomain,
        Opportunity,
        Rule,
        BusinessCalendar,
        CalendarHours,
        ClosedDate,
        SlaPolicy,
        EscalationStep,
    }
)
_DELETABLE: dict[str, tuple[type[models.Model], str]] = {
    "skills": (Skill, "code"),
    "product_lines": (ProductLine, "code"),
    "teams": (Team, "name"),
    "queues": (Queue, "name"),
    "territories": (Territory, "name"),
    "accounts": (Account, "name"),
    "rules": (Rule, "name"),
    "calendars": (BusinessCalendar, "name"),
    "sla_policies": (SlaPolicy, "name"),
}


@dataclass(frozen=True)
class FieldChange:
    """One field of an updated entity: its value before and after."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    """One entity to create, update (``fields`` says how), delete or deactivate.

    ``kind`` is the entity kind as people say it ("rep", "product line",
    "user"); ``section`` is where it lives in the document ("reps", or "users"
    for users created for reps and team managers); ``key`` is its key as
    written (a code, a name or a user name).
    """

    action: str
    kind: str
    section: str
    key: str
    fields: tuple[FieldChange, ...] = ()

    def lines(self) -> list[str]:
        title = f"{self.kind} {show(self.key)}"
        if self.action == CREATE:
            return [f"+ {title}"]
        if self.action == DELETE:
            return [f"- {title}"]
        if self.action == DEACTIVATE:
            return [f"- {title}: deactivated (not in the document)"]
        return [
            f"~ {title}: {change.field} {_display(change.field, change.old)} → {_display(change.field, change.new)}"
            for change in self.fields
        ]


@dataclass
class CoveragePlan:
    """What an import changes. ``desired`` is the validated document the plan was computed from."""

    changes: list[Change] = field(default_factory=list)
    prune: bool = False
    desired: Desired | None = field(default=None, repr=False, compare=False)

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def render(self) -> str:
        """Diff lines (``+`` create, ``~`` update, ``-`` delete or deactivate) and a one-line summary."""
        if self.is_empty:
            return "No changes."
        lines = [line for change in self.changes for line in change.lines()]
        counts = {action: sum(change.action == action for change in self.changes) for action in _ACTION_WORDS}
        summary = ", ".join(f"{counts[action]} {word}" for action, word in _ACTION_WORDS.items() if counts[action])
        total = len(self.changes)
        lines.append(f"{total} {'change' if total == 1 else 'changes'}: {summary}.")
        return "\n".join(lines)

    def changes_for(self, section: str) -> dict[str, Change]:
        return {change.key: change for change in self.changes if change.section == section}


_ACTION_WORDS = {CREATE: "to create", UPDATE: "to update", DELETE: "to delete", DEACTIVATE: "to deactivate"}


def _display(name: str, value: Any) -> str:
    """A field value for a plan line; queue members, time off and ladder steps without their default keys."""
    if name == "members":
        value = [{k: v for k, v in item.items() if MEMBER_DEFAULTS.get(k, object()) != v} for item in value]
    elif name == "out_of_office":
        value = [{k: v for k, v in item.items() if OUT_OF_OFFICE_DEFAULTS.get(k, object()) != v} for item in value]
    elif name == "steps":
        value = [{k: v for k, v in item.items() if STEP_DEFAULTS.get(k, object()) != v} for item in value]
    elif name == "opportunities":
        value = [{k: v for k, v in item.items() if OPPORTUNITY_DEFAULTS.get(k, object()) != v} for item in value]
    return show(value)


def build_plan(desired: Desired, current: State, *, prune: bool) -> CoveragePlan:
    """Compare the validated document with the current state, section by section.

    1. Users that reps and team managers need and that do not exist yet.
    2. For each section in document order: entities to create and update, by
       key. Sections the document leaves out are skipped, unless pruning.
    3. When pruning, entities the document does not list: deleted, or for
       reps deactivated; the catch-all queue always stays.
    4. Deletions that other rows (such as leads) block are errors.
    """
    plan = CoveragePlan(prune=prune, desired=desired)
    wanted = desired.state
    catch_all = next((key for key, entry in wanted.get("queues", {}).items() if entry["catch_all"]), None)
    current = rename_catch_all(current, catch_all)

    usernames = set(wanted.get("reps", {}))
    for team in wanted.get("teams", {}).values():
        usernames |= set(team["managers"])
    for username in sorted(usernames - existing_usernames(usernames)):
        plan.changes.append(Change(CREATE, "user", "users", username))

    for section in SECTION_ORDER:
        if section in wanted:
            entries = wanted[section]
        elif prune:
            entries = {}
        else:
            continue
        kind = KIND_NAMES[section]
        for key in sorted(entries):
            entry, old = entries[key], current[section].get(key)
            title = entry[KEY_FIELDS[section]]
            if old is None:
                plan.changes.append(Change(CREATE, kind, section, title))
                continue
            fields = tuple(
                FieldChange(name, old[name], entry[name]) for name in FIELDS[section] if old[name] != entry[name]
            )
            if fields:
                plan.changes.append(Change(UPDATE, kind, section, title, fields))
        if not prune:
            continue
        for key in sorted(set(current[section]) - set(entries)):
            old = current[section][key]
            title = old[KEY_FIELDS[section]]
            if section == "reps":
                if old["active"]:
                    plan.changes.append(Change(DEACTIVATE, kind, section, title))
            elif not (section == "queues" and old["catch_all"]):
                plan.changes.append(Change(DELETE, kind, section, title))

    _check_deletions(plan)
    return plan


def _check_deletions(plan: CoveragePlan) -> None:
    """Raise CoverageError for deletions that rows outside the coverage model protect."""
    errors = []
    for section, (model, key_field) in _DELETABLE.items():
        keys = [change.key for change in plan.changes if change.section == section and change.action == DELETE]
        if not keys:
            continue
        for row in model._default_manager.filter(**{f"{key_field}__in": keys}).order_by(key_field):
            blockers = _blockers(row)
            if blockers:
                errors.append(
                    (
                        section,
                        f"{KIND_NAMES[section]} {show(getattr(row, key_field))} is not in the document, so --prune "
                        f"would delete it, but {' and '.join(blockers)} point at it; keep it in the document",
                    )
                )
    if errors:
        raise CoverageError(errors)


def _blockers(row: models.Model) -> list[str]:
    """Counts of rows outside the coverage model that protect ``row`` from deletion."""
    found = []
    for relation in row._meta.related_objects:
        if relation.many_to_many or relation.related_model in _COVERAGE_MODELS:
            continue
        if relation.on_delete not in (models.PROTECT, models.RESTRICT):
            continue
        related_model: Any = relation.related_model
        count = related_model._base_manager.filter(**{relation.field.name: row}).count()
        if count:
            meta = related_model._meta
            found.append(f"{count} {meta.verbose_name if count == 1 else meta.verbose_name_plural}")
    return found
