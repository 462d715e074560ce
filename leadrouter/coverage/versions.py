"""Numbered versions of the coverage model, drafts, and publishing them.

A *version* (``territories.models.CoverageRevision``) is the whole exported document with a number, an author,
a time and a message. One is recorded for every change RevOps make to the model:

- an admin save, delete, action or CSV import (``leadrouter.coverage.middleware.CoverageRevisionMiddleware``, once per
  request, after the request's writes have committed);
- ``coverage import`` (``coverage_import``), a publish (``draft_publish``) and a rollback (``version_rollback``),
  in the same transaction as their writes.

The pages reps and managers use (availability, time off) and routing itself record none: they change the
day-to-day state, not the design of the model, and the next version's diff shows what they changed. When the
document equals the latest version's, no version is recorded (publish and rollback always record one).

A *draft* (``territories.models.CoverageDraft``) is a whole coverage document that routing never uses until it
is published. Publishing imports it with ``--prune`` semantics (the model becomes exactly the draft), so its
validation messages are those of ``coverage import --prune``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from leadrouter.coverage.errors import CoverageError
from leadrouter.coverage.exporter import export_coverage
from leadrouter.coverage.importer import apply_import, plan_import
from leadrouter.coverage.plan import CoveragePlan, FieldChange
from leadrouter.coverage.state import (
    FIELDS,
    KEY_FIELDS,
    KIND_NAMES,
    MEMBER_DEFAULTS,
    OPPORTUNITY_DEFAULTS,
    Entry,
    entity_key,
    normalize_entry,
)
from leadrouter.coverage.validation import show
from leadrouter.coverage.yamlio import SECTION_ORDER, dump_yaml, load_yaml
from territories.coverage_version import VERSION_ROW
from territories.models import CoverageDraft, CoverageRevision, CoverageVersion

Kind = CoverageRevision.Kind
ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"


def document_digest(document: dict[str, Any]) -> str:
    """A hash that is equal exactly when two exported documents are."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _lock_versions() -> None:
    """Serialize version numbering and publishing: take the coverage version row's lock until the transaction
    ends (the lock every coverage-writing transaction takes first, so the order stays the same)."""
    list(CoverageVersion.objects.select_for_update().filter(pk=VERSION_ROW).values_list("pk"))


def version_latest() -> CoverageRevision | None:
    return CoverageRevision.objects.order_by("-number").first()


def version_get(number: int) -> CoverageRevision:
    """The version numbered ``number``; CoverageError when there is none."""
    version = CoverageRevision.objects.filter(number=number).first()
    if version is None:
        raise CoverageError([("version", f"there is no version {number}")])
    return version


def version_create(
    *,
    kind: str,
    author: Any = None,
    message: str = "",
    scheduled_by: Any = None,
    document: dict[str, Any] | None = None,
    force: bool = False,
) -> CoverageRevision | None:
    """Record the coverage model as it is now (or ``document``) as the next numbered version.

    Returns None, recording nothing, when the document equals the latest version's, unless ``force``.
    """
    with transaction.atomic():
        _lock_versions()
        if document is None:
            document = export_coverage()
        digest = document_digest(document)
        latest = CoverageRevision.objects.order_by("-number").values_list("number", "digest").first()
        if latest is not None and latest[1] == digest and not force:
            return None
        return CoverageRevision.objects.create(
            number=(latest[0] if latest else 0) + 1,
            kind=kind,
            author=author,
            scheduled_by=scheduled_by,
            message=message[:500],
            document=document,
            digest=digest,
        )


def version_current(*, author: Any = None) -> CoverageRevision:
    """The version that matches the live model, recording a baseline version first when the model changed
    outside versions (or none was recorded yet)."""
    first = not CoverageRevision.objects.exists()
    message = "The first version: the model as it was" if first else "The model as it was (changed outside versions)"
    version = version_create(kind=Kind.BASELINE, author=author, message=message)
    if version is not None:
        return version
    latest = version_latest()
    assert latest is not None, "version_create records one when none exists"
    return latest


def version_document(number: int) -> dict[str, Any]:
    """The whole coverage document of version ``number``."""
    return version_get(number).document


# --- Comparing two documents ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryChange:
    """One entry added, removed or changed between two documents; ``fields`` say how a changed one changed."""

    action: str
    section: str
    key: str
    fields: tuple[FieldChange, ...] = ()

    @property
    def kind(self) -> str:
        return KIND_NAMES[self.section]

    def lines(self) -> list[str]:
        title = f"{self.kind} {show(self.key)}"
        if self.action == ADDED:
            return [f"+ {title}"]
        if self.action == REMOVED:
            return [f"- {title}"]
        return [f"~ {title}: {_field_line(change)}" for change in self.fields]


def _field_line(change: FieldChange) -> str:
    """``field old → new``; an item of a keyed list that came or went says so."""
    if change.field.endswith("]") and change.old is None:
        return f"{change.field} added: {show(change.new)}"
    if change.field.endswith("]") and change.new is None:
        return f"{change.field} removed: {show(change.old)}"
    return f"{change.field} {show(change.old)} → {show(change.new)}"


@dataclass
class DocumentDiff:
    """What changed from one coverage document to another, entry by entry, keyed by natural keys."""

    changes: list[EntryChange] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        return {action: sum(change.action == action for change in self.changes) for action in (ADDED, CHANGED, REMOVED)}

    def render(self) -> str:
        if self.is_empty:
            return "No differences."
        lines = [line for change in self.changes for line in change.lines()]
        summary = ", ".join(f"{count} {action}" for action, count in self.counts().items() if count)
        total = len(self.changes)
        lines.append(f"{total} {'difference' if total == 1 else 'differences'}: {summary}.")
        return "\n".join(lines)

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {
                "action": change.action,
                "kind": change.kind,
                "section": change.section,
                "key": change.key,
                "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in change.fields],
            }
            for change in self.changes
        ]


def _entries(document: dict[str, Any], section: str) -> dict[str, Entry]:
    """A section of an exported (valid) document as full entries by key."""
    entries = {}
    for raw in document.get(section) or []:
        entry = normalize_entry(section, raw)
        entries[entity_key(section, entry[KEY_FIELDS[section]])] = entry
    return entries


# Fields holding a list of entries with a key of their own: their diff names the item and the item's field.
_KEYED_LISTS: dict[str, tuple[str, Entry]] = {
    "opportunities": ("name", OPPORTUNITY_DEFAULTS),
    "members": ("rep", MEMBER_DEFAULTS),
}


def _field_changes(name: str, old: Any, new: Any) -> list[FieldChange]:
    """One field's change; for a keyed list (an account's opportunities, a queue's members), one change per
    item added or removed and per field of an item changed, named ``opportunities["Pilot"].stage``."""
    if name not in _KEYED_LISTS or not isinstance(old, list) or not isinstance(new, list):
        return [FieldChange(name, old, new)]
    key_field, defaults = _KEYED_LISTS[name]
    before = {item[key_field]: item for item in old}
    after = {item[key_field]: item for item in new}
    if len(before) != len(old) or len(after) != len(new):
        return [FieldChange(name, old, new)]

    def compact(item: Entry) -> Entry:
        return {k: v for k, v in item.items() if k == key_field or defaults.get(k, object()) != v}

    changes = []
    for item_key in [*before, *(k for k in after if k not in before)]:
        label = f"{name}[{show(item_key)}]"
        if item_key not in after:
            changes.append(FieldChange(label, compact(before[item_key]), None))
        elif item_key not in before:
            changes.append(FieldChange(label, None, compact(after[item_key])))
        else:
            changes.extend(
                FieldChange(f"{label}.{field_name}", before[item_key].get(field_name), value)
                for field_name, value in after[item_key].items()
                if before[item_key].get(field_name) != value
            )
    kept = [item_key for item_key in before if item_key in after]
    if kept != [item_key for item_key in after if item_key in before]:
        changes.append(FieldChange(f"{name} order", list(before), list(after)))
    return changes


def documents_diff(old: dict[str, Any], new: dict[str, Any]) -> DocumentDiff:
    """Compare two exported documents: entries added, removed and changed, field by field, in document order."""
    diff = DocumentDiff()
    for section in SECTION_ORDER:
        before, after = _entries(old, section), _entries(new, section)
        for key in sorted(set(before) | set(after)):
            if key not in before:
                diff.changes.append(EntryChange(ADDED, section, after[key][KEY_FIELDS[section]]))
            elif key not in after:
                diff.changes.append(EntryChange(REMOVED, section, before[key][KEY_FIELDS[section]]))
            else:
                fields = tuple(
                    change
                    for name in FIELDS[section]
                    if before[key][name] != after[key][name]
                    for change in _field_changes(name, before[key][name], after[key][name])
                )
                if fields:
                    diff.changes.append(EntryChange(CHANGED, section, after[key][KEY_FIELDS[section]], fields))
    return diff


def versions_diff(old: int, new: int) -> DocumentDiff:
    """What changed from version ``old`` to version ``new``."""
    return documents_diff(version_document(old), version_document(new))


# --- Imports and rollbacks --------------------------------------------------------------------------------------


def coverage_import(
    document: dict[str, Any],
    *,
    prune: bool = False,
    user: Any = None,
    dry_run: bool = False,
    message: str = "",
) -> tuple[CoveragePlan, CoverageRevision | None]:
    """``apply_import`` that records the result as a version in the same transaction (none for a dry run or
    an import that changed nothing)."""
    with transaction.atomic():
        if not dry_run:
            # Changes made outside versions since the latest one stay restorable.
            version_current()
        plan = apply_import(document, prune=prune, user=user, dry_run=dry_run)
        version = None
        if not dry_run and not plan.is_empty:
            version = version_create(kind=Kind.IMPORT, author=user, message=message or "coverage import")
    return plan, version


def rollback_plan(number: int) -> CoveragePlan:
    """What rolling back to version ``number`` would change (validated; nothing written)."""
    return plan_import(version_document(number), prune=True)


def version_rollback(
    number: int, *, user: Any = None, dry_run: bool = False
) -> tuple[CoveragePlan, CoverageRevision | None]:
    """Make the model match version ``number`` again (``--prune``: what it did not have is deleted, reps are
    deactivated) and record that as a new version. With ``dry_run`` nothing is written."""
    document = version_document(number)
    with transaction.atomic():
        _lock_versions()
        if not dry_run:
            version_current()
        plan = apply_import(document, prune=True, user=user, dry_run=dry_run)
        if dry_run:
            return plan, None
        version = version_create(kind=Kind.ROLLBACK, author=user, message=f"Rollback to version {number}", force=True)
    return plan, version


# --- Drafts -----------------------------------------------------------------------------------------------------


def draft_document(draft: CoverageDraft) -> dict[str, Any]:
    """The draft's whole coverage document (CoverageError when its YAML does not read)."""
    return load_yaml(draft.text)


def draft_validate_text(text: str) -> CoveragePlan:
    """Validate a draft's YAML as ``coverage import --prune`` would and return the plan against the live model;
    CoverageError with the import's own messages when it does not validate."""
    return plan_import(load_yaml(text), prune=True)


def draft_plan(draft: CoverageDraft) -> CoveragePlan:
    return draft_validate_text(draft.text)


def draft_create(
    name: str,
    *,
    user: Any = None,
    text: str | None = None,
    from_version: int | None = None,
) -> CoverageDraft:
    """A new draft from the live model (default), from version ``from_version``, or from YAML ``text``
    (validated first; CoverageError with the import's messages)."""
    if text is not None:
        draft_validate_text(text)
        base = version_current(author=user)
    elif from_version is not None:
        base = version_get(from_version)
        text = dump_yaml(base.document)
    else:
        base = version_current(author=user)
        text = dump_yaml(base.document)
    return CoverageDraft.objects.create(name=name, text=text, base=base, created_by=user)


def draft_save_text(draft: CoverageDraft, text: str) -> CoverageDraft:
    """Replace the draft's document (validated first; CoverageError with the import's messages)."""
    if draft.is_published:
        raise CoverageError([("draft", f"draft {show(draft.name)} is already published; make a new draft")])
    draft_validate_text(text)
    draft.text = text
    draft.save()
    return draft


def draft_behind(draft: CoverageDraft) -> DocumentDiff | None:
    """What changed in the live model since the version the draft was made from (later versions, and changes
    made outside versions); None when the live model is still that version (or the draft names none)."""
    if draft.base is None:
        return None
    live = export_coverage()
    if document_digest(live) == draft.base.digest:
        return None
    return documents_diff(draft.base.document, live)


def draft_schedule(draft: CoverageDraft, at: dt.datetime | None, *, user: Any) -> CoverageDraft:
    """Publish the draft at ``at`` (beat's ``publish_due_drafts`` does it); None cancels the schedule."""
    if draft.is_published:
        raise CoverageError([("draft", f"draft {show(draft.name)} is already published")])
    if at is not None and at <= timezone.now():
        raise CoverageError([("publish_at", "choose a time in the future, or publish the draft now")])
    if at is not None:
        draft_plan(draft)
    draft.publish_at = at
    draft.scheduled_by = user if at is not None else None
    draft.publish_error = ""
    draft.save(update_fields=["publish_at", "scheduled_by", "publish_error", "updated_at"])
    return draft


def draft_publish(
    draft: CoverageDraft, *, user: Any = None, scheduled_by: Any = None
) -> tuple[CoveragePlan, CoverageRevision]:
    """Make the live model exactly the draft and record the version, in one transaction.

    One publish at a time: the transaction holds the version lock, and a draft published meanwhile by someone
    else is refused. ``user`` is who pressed Publish (None for beat); ``scheduled_by`` who scheduled it.
    """
    with transaction.atomic():
        _lock_versions()
        draft = CoverageDraft.objects.select_for_update().get(pk=draft.pk)
        if draft.is_published:
            raise CoverageError([("draft", f"draft {show(draft.name)} is already published")])
        version_current()
        plan = apply_import(draft_document(draft), prune=True, user=user or scheduled_by)
        version = version_create(
            kind=Kind.PUBLISH,
            author=user,
            scheduled_by=scheduled_by,
            message=f"Published draft {show(draft.name)}",
            force=True,
        )
        assert version is not None, "forced"
        draft.published = version
        draft.publish_at = None
        draft.publish_error = ""
        draft.save(update_fields=["published", "publish_at", "publish_error", "updated_at"])
    return plan, version


def publish_due_drafts(*, now: dt.datetime | None = None) -> list[CoverageRevision]:
    """Publish every draft whose time has come, oldest schedule first (beat runs this every minute).

    A draft that no longer validates is not published: its schedule is cleared and the reason kept on it.
    """
    now = now or timezone.now()
    published = []
    due = CoverageDraft.objects.filter(published__isnull=True, publish_at__lte=now).order_by("publish_at", "pk")
    for draft in due.select_related("scheduled_by"):
        try:
            _plan, version = draft_publish(draft, scheduled_by=draft.scheduled_by)
        except CoverageError as error:
            CoverageDraft.objects.filter(pk=draft.pk, published__isnull=True).update(
                publish_at=None, publish_error=str(error)
            )
            continue
        published.append(version)
    return published
