"""Reads for the coverage admin: the territory tree and the coverage change log.

Both load what a page shows in a fixed number of queries and return plain dataclasses;
``territories.admin`` renders them.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db import models
from django.db.models import OuterRef, Q, QuerySet, Subquery, Value
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from simple_history.utils import get_history_model_for_model, get_m2m_reverse_field_name

from territories.forms import user_label
from territories.models import AccountDomain, OutOfOffice, Rep, Territory, TerritoryCriterion, WorkingHours

User = get_user_model()

# --- Territory tree ----------------------------------------------------------------------------------------------

_CRITERION_SHORT_LABELS: dict[str, str] = {
    TerritoryCriterion.Kind.COUNTRY: "Country",
    TerritoryCriterion.Kind.SUBDIVISION: "Region",
    TerritoryCriterion.Kind.POSTAL_PREFIX: "Postal prefix",
    TerritoryCriterion.Kind.INDUSTRY: "Industry",
    TerritoryCriterion.Kind.SIZE_BAND: "Size band",
    TerritoryCriterion.Kind.PRODUCT_LINE: "Product line",
}


@dataclass
class TerritoryNode:
    """A territory with what the tree says about it: its path, coverage and criteria."""

    territory: Territory
    path: str = ""
    coverage: str = ""
    inherited: bool = False
    criteria: str = ""
    url: str = ""
    children: list["TerritoryNode"] = field(default_factory=list)


def _own_coverage(territory: Territory) -> str:
    if territory.queue_id:
        return f"Queue: {territory.queue}"
    if territory.rep_id:
        return f"Rep: {territory.rep}"
    return ""


def territory_tree() -> dict[int, TerritoryNode]:
    """Every territory as a node, by id, in two queries. The tree is small; loading it whole
    is cheaper than a query per row and lets each node see its ancestors."""
    territories = Territory.objects.select_related("queue", "rep__user").prefetch_related("criteria")
    nodes = {territory.pk: TerritoryNode(territory=territory) for territory in territories}
    for node in nodes.values():
        territory = node.territory
        ancestors: list[Territory] = []
        parent_id = territory.parent_id
        # A cycle cannot be saved through the forms, but a broken tree must still render.
        while parent_id is not None and parent_id in nodes and parent_id != territory.pk and len(ancestors) < 50:
            ancestors.append(nodes[parent_id].territory)
            parent_id = nodes[parent_id].territory.parent_id
        node.path = " › ".join([ancestor.name for ancestor in reversed(ancestors)] + [territory.name])
        node.coverage = _own_coverage(territory)
        if not node.coverage:
            node.inherited = True
            covering = next((ancestor for ancestor in ancestors if _own_coverage(ancestor)), None)
            node.coverage = (
                f"inherits {_own_coverage(covering)} (from {covering.name})"
                if covering
                else "no coverage: leads go to the catch-all queue"
            )
        by_kind: dict[str, list[str]] = defaultdict(list)
        for criterion in territory.criteria.all():
            by_kind[criterion.kind].append(criterion.value)
        node.criteria = "; ".join(
            f"{_CRITERION_SHORT_LABELS.get(kind, kind)}: {', '.join(values)}" for kind, values in by_kind.items()
        )
        node.url = reverse("admin:territories_territory_change", args=[territory.pk])
        if territory.parent_id in nodes and territory.parent_id != territory.pk:
            nodes[territory.parent_id].children.append(node)
    return nodes


def territory_roots(nodes: dict[int, TerritoryNode]) -> list[TerritoryNode]:
    """The top of the tree: territories without a (known) parent, each with its children sorted by name."""
    for node in nodes.values():
        node.children.sort(key=lambda child: child.territory.name.lower())
    roots = [node for node in nodes.values() if node.territory.parent_id not in nodes]
    return sorted(roots, key=lambda node: node.territory.name.lower())


# --- Coverage change log -----------------------------------------------------------------------------------------

# Rows edited inline are listed under the object whose page edits them: model -> the field naming that object.
_INLINE_PARENTS: dict[type[models.Model], str] = {
    TerritoryCriterion: "territory",
    WorkingHours: "rep",
    OutOfOffice: "rep",
    AccountDomain: "account",
}
# How the log names a row of such a model when its own ``str()`` would need a query: (record, labels) -> name.
RowLabel = Callable[[Any, dict[tuple[type[models.Model], Any], str]], str]
_ROW_LABELS: dict[type[models.Model], RowLabel] = {}


def change_log_inline(model: type[models.Model], *, parent: str, label: RowLabel | None = None) -> None:
    """List ``model``'s rows under the object whose admin page edits them inline (the row's ``parent`` field),
    named by ``label`` when given.

    An extension point: this app may not import the apps above it, so each registers its own inline coverage
    models from its admin module (routing: queue memberships), beside adding its models to
    ``territories.admin.COVERAGE_MODELS``.
    """
    _INLINE_PARENTS[model] = parent
    if label is not None:
        _ROW_LABELS[model] = label


# How the log shows one field of a model whose stored value means nothing to a reader (a rule's condition as
# JSON): (model, field name) -> the value in words.
_FIELD_DISPLAYS: dict[tuple[type[models.Model], str], Callable[[Any], str]] = {}


def change_log_display(model: type[models.Model], field_name: str, show: Callable[[Any], str]) -> None:
    """Show ``model``'s ``field_name`` in the change log as ``show(value)`` says. An extension point like
    ``change_log_inline``: routing registers its rules' conditions, which this app cannot read."""
    _FIELD_DISPLAYS[(model, field_name)] = show


_HISTORY_ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}

# Timestamps that move on every save tell a reader nothing.
_UNLOGGED_FIELDS = {"id", "created_at", "updated_at"}

_CHANGE_LOG_PAGE_SIZE = 50


@dataclass
class FieldChange:
    field: str
    old: str | None
    new: str


@dataclass
class ChangeLogEntry:
    when: datetime
    who: str
    action: str
    kind: str
    label: str
    url: str = ""
    history_url: str = ""
    changes: list[FieldChange] = field(default_factory=list)


@dataclass
class ChangeLogPage:
    page: Any
    entries: list[ChangeLogEntry]


def change_log_page(
    *, coverage_models: Sequence[type[models.Model]], user_id: int | None, page_number: Any
) -> ChangeLogPage:
    """One page of recent changes across ``coverage_models``, newest first.

    1. One UNION query over the history tables lists (date, history id, model) for the page, and one counts.
    2. Per model on the page: its records with the id of each one's previous version, then those versions,
       then the many-to-many values of both.
    3. One query per related model turns foreign keys into names.
    The number of queries depends on the number of models, not of rows.
    """
    index = []
    for position, model in enumerate(coverage_models):
        # Each part must be unordered: SQL orders the union as a whole.
        records = get_history_model_for_model(model).objects.order_by()
        if user_id is not None:
            records = records.filter(history_user_id=user_id)
        index.append(
            records.annotate(model_position=Value(position)).values_list("history_date", "history_id", "model_position")
        )
    first, *rest = index
    combined = (first.union(*rest, all=True) if rest else first).order_by("-history_date", "-history_id")
    page = Paginator(combined, _CHANGE_LOG_PAGE_SIZE).get_page(page_number)
    rows = list(page.object_list)
    return ChangeLogPage(page=page, entries=_change_log_entries(coverage_models, rows))


def change_log_users(coverage_models: Sequence[type[models.Model]]) -> QuerySet[Any]:
    """The users who made any of the logged changes, for the filter."""
    ids = [
        get_history_model_for_model(model)
        .objects.order_by()
        .filter(history_user__isnull=False)
        .values_list("history_user_id")
        for model in coverage_models
    ]
    first, *rest = ids
    user_ids = {row[0] for row in (first.union(*rest) if rest else first.distinct())}
    return User.objects.filter(pk__in=user_ids).order_by("username")


def _change_log_entries(
    coverage_models: Sequence[type[models.Model]], rows: list[tuple[Any, int, int]]
) -> list[ChangeLogEntry]:
    ids_by_position: dict[int, list[int]] = defaultdict(list)
    for _, history_id, position in rows:
        ids_by_position[position].append(history_id)

    records: dict[tuple[int, int], Any] = {}
    previous: dict[tuple[int, int], Any] = {}
    m2m_values: dict[tuple[int, int, str], set[Any]] = defaultdict(set)
    wanted: dict[type[models.Model], set[Any]] = defaultdict(set)
    for position, history_ids in ids_by_position.items():
        model = coverage_models[position]
        history_model = get_history_model_for_model(model)
        earlier = (
            history_model.objects.filter(id=OuterRef("id"))
            .filter(
                Q(history_date__lt=OuterRef("history_date"))
                | Q(history_date=OuterRef("history_date"), history_id__lt=OuterRef("history_id"))
            )
            .order_by("-history_date", "-history_id")
            .values("history_id")[:1]
        )
        page_records = list(
            history_model.objects.filter(history_id__in=history_ids)
            .select_related("history_user")
            .annotate(previous_history_id=Subquery(earlier))
        )
        for record in page_records:
            records[(position, record.history_id)] = record
        earlier_records = history_model.objects.in_bulk(
            [record.previous_history_id for record in page_records if record.previous_history_id]
        )
        for record in page_records:
            if record.previous_history_id in earlier_records:
                previous[(position, record.history_id)] = earlier_records[record.previous_history_id]
        all_versions = [*page_records, *earlier_records.values()]
        for m2m_field in history_model._history_m2m_fields:
            target = get_m2m_reverse_field_name(m2m_field)
            through_history = getattr(history_model, m2m_field.name).model
            for history_id, target_id in through_history.objects.filter(
                history_id__in=[version.history_id for version in all_versions]
            ).values_list("history_id", f"{target}_id"):
                m2m_values[(position, history_id, m2m_field.name)].add(target_id)
                wanted[m2m_field.related_model].add(target_id)
        for version in all_versions:
            for tracked in history_model.tracked_fields:
                if _is_foreign_key(tracked) and getattr(version, tracked.attname) is not None:
                    wanted[tracked.related_model].add(getattr(version, tracked.attname))
            if model not in _INLINE_PARENTS:
                wanted[model].add(version.id)
    labels = _related_labels(wanted)

    entries = []
    for _, history_id, position in rows:
        record = records.get((position, history_id))
        if record is None:
            continue
        model = coverage_models[position]
        entries.append(
            _change_log_entry(model, record, previous.get((position, history_id)), position, m2m_values, labels)
        )
    return entries


def _is_foreign_key(model_field: Any) -> bool:
    return bool(model_field.many_to_one or model_field.one_to_one)


def _parent_model(model: type[models.Model]) -> Any:
    """The model whose admin page edits ``model`` rows inline."""
    return model._meta.get_field(_INLINE_PARENTS[model]).related_model


def _related_labels(wanted: dict[type[models.Model], set[Any]]) -> dict[tuple[type[models.Model], Any], str]:
    """Names of the rows that still exist, by (model, pk); deleted rows are simply missing."""
    labels: dict[tuple[type[models.Model], Any], str] = {}
    for model, pks in wanted.items():
        queryset = model._default_manager.filter(pk__in=pks)
        if model is Rep:
            queryset = queryset.select_related("user")
        for obj in queryset:
            labels[(model, obj.pk)] = user_label(obj) if model is User else str(obj)
    return labels


def _display(model_field: Any, value: Any, labels: dict[tuple[type[models.Model], Any], str]) -> str:
    if value is None or value == "":
        return "—"
    if _is_foreign_key(model_field):
        return labels.get((model_field.related_model, value), f"deleted {model_field.related_model._meta.verbose_name}")
    if model_field.choices:
        return str(dict(model_field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M %Z")
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value)


def _object_label(model: type[models.Model], record: Any, labels: dict[tuple[type[models.Model], Any], str]) -> str:
    if model is Rep:
        own = labels.get((User, record.user_id), f"rep #{record.id}")
    elif model is OutOfOffice:
        own = f"away {_display(OutOfOffice._meta.get_field('starts_at'), record.starts_at, labels)} → " + _display(
            OutOfOffice._meta.get_field("ends_at"), record.ends_at, labels
        )
    elif model in _ROW_LABELS:
        own = _ROW_LABELS[model](record, labels)
    else:
        # Built from the record's own values: record.instance would query for fields history leaves out.
        history_model = type(record)
        own = str(
            model(**{tracked.attname: getattr(record, tracked.attname) for tracked in history_model.tracked_fields})
        )
    parent_name = _INLINE_PARENTS.get(model)
    if parent_name is None:
        return own
    parent_model = _parent_model(model)
    parent_id = getattr(record, f"{parent_name}_id")
    parent_label = labels.get((parent_model, parent_id), f"deleted {parent_model._meta.verbose_name}")
    return f"{parent_label} › {own}"


def _admin_urls(model: type[models.Model], pk: Any) -> tuple[str, str]:
    opts = model._meta
    try:
        change_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
        history_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[pk])
    except NoReverseMatch:
        return "", ""
    return change_url, history_url


def _change_log_entry(
    model: type[models.Model],
    record: Any,
    earlier: Any,
    position: int,
    m2m_values: dict[tuple[int, int, str], set[Any]],
    labels: dict[tuple[type[models.Model], Any], str],
) -> ChangeLogEntry:
    history_model = type(record)
    entry = ChangeLogEntry(
        when=record.history_date,
        who=user_label(record.history_user) if record.history_user else "system",
        action=_HISTORY_ACTIONS.get(record.history_type, record.history_type),
        kind=str(model._meta.verbose_name),
        label=_object_label(model, record, labels),
    )
    parent_name = _INLINE_PARENTS.get(model)
    if parent_name is None:
        if (model, record.id) in labels:
            entry.url, entry.history_url = _admin_urls(model, record.id)
    else:
        parent_model = _parent_model(model)
        parent_id = getattr(record, f"{parent_name}_id")
        if (parent_model, parent_id) in labels:
            entry.url, _ = _admin_urls(parent_model, parent_id)

    if record.history_type == "-":
        return entry
    for tracked in history_model.tracked_fields:
        if tracked.name in _UNLOGGED_FIELDS or not tracked.editable or tracked.name == parent_name:
            # An inline row's parent is already named in the label.
            continue
        new = getattr(record, tracked.attname)
        shown = _FIELD_DISPLAYS.get((model, tracked.name))

        def display(value: Any, tracked: Any = tracked, shown: Any = shown) -> str:
            return shown(value) if shown is not None else _display(tracked, value, labels)

        if earlier is None:
            if record.history_type == "+" and new not in (None, ""):
                entry.changes.append(FieldChange(str(tracked.verbose_name), None, display(new)))
            continue
        old = getattr(earlier, tracked.attname)
        if old != new:
            entry.changes.append(FieldChange(str(tracked.verbose_name), display(old), display(new)))
    for m2m_field in history_model._history_m2m_fields:
        new_ids = m2m_values.get((position, record.history_id, m2m_field.name), set())
        old_ids = m2m_values.get((position, earlier.history_id, m2m_field.name), set()) if earlier else set()
        if new_ids == old_ids:
            continue

        def names(ids: set[Any], related: Any = m2m_field.related_model) -> str:
            return ", ".join(sorted(labels.get((related, pk), "deleted") for pk in ids)) or "—"

        entry.changes.append(
            FieldChange(str(m2m_field.verbose_name), names(old_ids) if earlier else None, names(new_ids))
        )
    return entry
