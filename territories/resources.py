"""CSV import and export of reps, territories and accounts (django-import-export).

Rows name related rows by their human key (team name, username, territory name)
rather than database ids, so a sheet exported from one installation imports into
another. Every row is validated like an admin form (``clean_model_instances``),
and a bad value is reported with its row number and what to write instead; the
admin import shows such a report and imports nothing until the file is clean.
Writes that create users, criteria or domains go through ``territories.services``.
"""

from collections.abc import Callable, Iterable
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from import_export import resources, widgets
from import_export.fields import Field

from territories import services
from territories.models import Account, Rep, Skill, Team, Territory
from territories.picklists import INDUSTRIES

User = get_user_model()

LIST_SEPARATOR = ";"


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _split(value: Any) -> list[str]:
    return [part.strip() for part in _text(value).split(LIST_SEPARATOR) if part.strip()]


# --- Widgets: turn a cell into a value, or say what to write instead -------------------------------------------


class YesNoWidget(widgets.Widget):
    TRUE_VALUES = frozenset({"yes", "y", "true", "1"})
    FALSE_VALUES = frozenset({"no", "n", "false", "0"})

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> bool | None:
        text = _text(value).lower()
        if not text:
            return None
        if text in self.TRUE_VALUES:
            return True
        if text in self.FALSE_VALUES:
            return False
        raise ValueError(f"“{_text(value)}” is not yes or no; write yes or no (true/false and 1/0 work too).")

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return "yes" if value else "no"


class WholeNumberWidget(widgets.Widget):
    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> int | None:
        text = _text(value)
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"“{text}” is not a whole number; write digits only, such as 50.") from None

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return "" if value is None else str(value)


class UpperCaseWidget(widgets.CharWidget):
    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> str:
        return _text(value).upper()


class ChoiceWidget(widgets.CharWidget):
    """A picklist cell: the code or the label, in any case."""

    def __init__(self, choices: Iterable[tuple[str, Any]], *, noun: str) -> None:
        self.choices = [(code, str(label)) for code, label in choices if code]
        self.noun = noun
        super().__init__()

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> str:
        text = _text(value)
        if not text:
            return ""
        for code, label in self.choices:
            if text.lower() in (code.lower(), label.lower()):
                return code
        codes = ", ".join(code for code, _ in self.choices)
        article = "an" if self.noun[:1].lower() in "aeiou" else "a"
        raise ValueError(f"“{text}” is not {article} {self.noun}; use one of: {codes}.")


class NamedForeignKeyWidget(widgets.ForeignKeyWidget):
    """A related row named by its key (a name or username), matched exactly, else ignoring case."""

    def __init__(self, model: type[Model], field: str, *, missing: str) -> None:
        super().__init__(model, field)
        self.missing = missing

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Any:
        name = _text(value)
        if not name:
            return None
        queryset = self.get_queryset(name, row, **kwargs)
        match = (
            queryset.filter(**{self.field: name}).first() or queryset.filter(**{f"{self.field}__iexact": name}).first()
        )
        if match is None:
            raise ValueError(self.missing.format(value=name))
        return match


class CodeListWidget(widgets.ManyToManyWidget):
    """Semicolon-separated codes of existing rows, such as ``german;enterprise``."""

    def __init__(self, model: type[Model], *, field: str, noun: str, where: str) -> None:
        super().__init__(model, separator=LIST_SEPARATOR, field=field)
        self.noun = noun
        self.where = where

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> QuerySet[Any]:
        codes = _split(value)
        found = self.model.objects.filter(**{f"{self.field}__in": codes})
        missing = sorted(set(codes) - {getattr(item, self.field) for item in found})
        if missing:
            raise ValueError(
                f"No {self.noun} with code {', '.join(missing)}; add it under {self.where} first or fix the spelling."
            )
        return found


# --- Resources --------------------------------------------------------------------------------------------------


class CoverageResource(resources.ModelResource):
    """Validates a row's many-to-many cells with its other cells, so one report lists every problem of the row."""

    def import_instance(self, instance: Any, row: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, list[Any]] = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        # Many-to-many cells are only saved after the row itself, too late for the row's report; check them now.
        for field in self.get_import_fields():
            if isinstance(field.widget, widgets.ManyToManyWidget) and field.column_name in row:
                try:
                    field.clean(row)
                except ValueError as error:
                    errors.setdefault(field.attribute, []).append(str(error))
        self.check_extra_columns(instance, row, errors)
        if errors:
            raise ValidationError(errors)

    def check_extra_columns(self, instance: Any, row: dict[str, Any], errors: dict[str, list[Any]]) -> None:
        """Add errors for columns that are not model fields (criteria, domains, user details)."""


class RepResource(CoverageResource):
    """One row per rep. A new username creates the rep's user through ``services.rep_create``."""

    username = Field(attribute="user__username", column_name="username", readonly=True)
    email = Field(attribute="user__email", column_name="email", readonly=True)
    first_name = Field(attribute="user__first_name", column_name="first_name", readonly=True)
    last_name = Field(attribute="user__last_name", column_name="last_name", readonly=True)
    team = Field(
        attribute="team",
        column_name="team",
        widget=NamedForeignKeyWidget(
            Team, "name", missing="No team named “{value}”; add it under Teams first or fix the spelling."
        ),
    )
    manager = Field(
        attribute="manager",
        column_name="manager",
        widget=NamedForeignKeyWidget(
            User, "username", missing="No user with username “{value}”; write the manager's username."
        ),
    )
    active = Field(attribute="active", column_name="active", widget=YesNoWidget(), default=True)
    time_zone = Field(attribute="time_zone", column_name="time_zone", widget=widgets.CharWidget(), default="UTC")
    max_open_leads = Field(
        attribute="max_open_leads", column_name="max_open_leads", widget=WholeNumberWidget(), default=50
    )
    daily_cap = Field(attribute="daily_cap", column_name="daily_cap", widget=WholeNumberWidget())
    skills = Field(
        attribute="skills",
        column_name="skills",
        widget=CodeListWidget(Skill, field="code", noun="skill", where="Skills"),
    )

    class Meta:
        model = Rep
        fields = (
            "username",
            "email",
            "first_name",
            "last_name",
            "team",
            "manager",
            "active",
            "time_zone",
            "max_open_leads",
            "daily_cap",
            "skills",
        )
        import_id_fields = ("username",)
        clean_model_instances = True

    def filter_export(self, queryset: QuerySet[Rep], **kwargs: Any) -> QuerySet[Rep]:
        return queryset.select_related("user", "team", "manager").prefetch_related("skills")

    def identity(self, instance: Rep, row: dict[str, Any]) -> dict[str, str]:
        """E-mail and name from the row; a column left out of the file keeps the current value."""
        user = instance.user if instance.pk else None
        return {
            name: _text(row[name]) if name in row else (getattr(user, name) if user else "")
            for name in ("email", "first_name", "last_name")
        }

    def check_extra_columns(self, instance: Rep, row: dict[str, Any], errors: dict[str, list[Any]]) -> None:
        try:
            services.rep_user_validate(
                username=_text(row.get("username")),
                user=instance.user if instance.pk else None,
                **self.identity(instance, row),
            )
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                errors.setdefault(field, []).extend(messages)

    def validate_instance(
        self, instance: Rep, import_validation_errors: dict[str, Any] | None = None, validate_unique: bool = True
    ) -> None:
        errors = dict(import_validation_errors or {})
        # A new rep's user only exists once the row is saved; its columns were checked in check_extra_columns.
        try:
            instance.full_clean(exclude=[*errors, "user"], validate_unique=validate_unique)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def save_instance(self, instance: Rep, is_create: bool, row: dict[str, Any], **kwargs: Any) -> None:
        if kwargs.get("dry_run") and not kwargs.get("using_transactions"):
            # Without a transaction to roll back, a dry run must not write.
            return
        identity = self.identity(instance, row)
        email, first_name, last_name = identity["email"], identity["first_name"], identity["last_name"]
        if is_create:
            username = _text(row.get("username"))
            services.rep_create(
                rep=instance, username=username, email=email, first_name=first_name, last_name=last_name
            )
        else:
            services.rep_update(rep=instance, email=email, first_name=first_name, last_name=last_name)


def _criteria_cell(kind: str) -> Callable[[Territory], str]:
    def render(territory: Territory) -> str:
        if territory.pk is None:
            return ""
        return LIST_SEPARATOR.join(criterion.value for criterion in territory.criteria.all() if criterion.kind == kind)

    return render


# The queue model is routing's, which this app may not import: the territory's own foreign key names it.
_QUEUE_MODEL = cast(type[Model], Territory.queue.field.related_model)


class TerritoryResource(CoverageResource):
    """One row per territory; parents must come before their children. Criteria cells replace the
    territory's criteria of that kind (a column left out of the file leaves its kind alone)."""

    name = Field(attribute="name", column_name="name", widget=widgets.CharWidget())
    parent = Field(
        attribute="parent",
        column_name="parent",
        widget=NamedForeignKeyWidget(
            Territory,
            "name",
            missing="No territory named “{value}”; put the parent's row above its children or add it first.",
        ),
    )
    queue = Field(
        attribute="queue",
        column_name="queue",
        widget=NamedForeignKeyWidget(
            _QUEUE_MODEL,
            "name",
            missing="No queue named “{value}”; add it under Queues first or fix the spelling.",
        ),
    )
    rep = Field(
        attribute="rep",
        column_name="rep",
        widget=NamedForeignKeyWidget(
            Rep, "user__username", missing="No rep with username “{value}”; add the rep first or fix the spelling."
        ),
    )
    countries = Field(column_name="countries", dehydrate_method=_criteria_cell("country"))
    subdivisions = Field(column_name="subdivisions", dehydrate_method=_criteria_cell("subdivision"))
    postal_prefixes = Field(column_name="postal_prefixes", dehydrate_method=_criteria_cell("postal_prefix"))
    industries = Field(column_name="industries", dehydrate_method=_criteria_cell("industry"))
    size_bands = Field(column_name="size_bands", dehydrate_method=_criteria_cell("size_band"))
    product_lines = Field(column_name="product_lines", dehydrate_method=_criteria_cell("product_line"))

    class Meta:
        model = Territory
        fields = ("name", "parent", "queue", "rep", *services.CRITERION_COLUMNS)
        import_id_fields = ("name",)
        clean_model_instances = True

    def filter_export(self, queryset: QuerySet[Territory], **kwargs: Any) -> QuerySet[Territory]:
        return queryset.select_related("parent", "queue", "rep__user").prefetch_related("criteria")

    def criteria(self, row: dict[str, Any]) -> dict[str, list[str]]:
        return {kind: _split(row[column]) for column, kind in services.CRITERION_COLUMNS.items() if column in row}

    def check_extra_columns(self, instance: Territory, row: dict[str, Any], errors: dict[str, list[Any]]) -> None:
        try:
            services.territory_criteria_clean(criteria=self.criteria(row))
        except ValidationError as error:
            columns = {kind: column for column, kind in services.CRITERION_COLUMNS.items()}
            for kind, messages in error.message_dict.items():
                errors.setdefault(columns.get(kind, kind), []).extend(messages)

    def after_save_instance(self, instance: Territory, row: dict[str, Any], **kwargs: Any) -> None:
        if instance.pk is not None:
            services.territory_set_criteria(territory=instance, criteria=self.criteria(row))


class AccountResource(CoverageResource):
    """One row per account, found by name ignoring case. The domains cell replaces the account's domains."""

    name = Field(attribute="name", column_name="name", widget=widgets.CharWidget())
    domains = Field(column_name="domains")
    owner = Field(
        attribute="owner",
        column_name="owner",
        widget=NamedForeignKeyWidget(
            Rep, "user__username", missing="No rep with username “{value}”; add the rep first or fix the spelling."
        ),
    )
    territory = Field(
        attribute="territory",
        column_name="territory",
        widget=NamedForeignKeyWidget(
            Territory,
            "name",
            missing="No territory named “{value}”; add it under Territories first or fix the spelling.",
        ),
    )
    is_customer = Field(attribute="is_customer", column_name="is_customer", widget=YesNoWidget(), default=False)
    tier = Field(attribute="tier", column_name="tier", widget=ChoiceWidget(Account.Tier.choices, noun="tier"))
    industry = Field(attribute="industry", column_name="industry", widget=ChoiceWidget(INDUSTRIES, noun="industry"))
    country = Field(attribute="country", column_name="country", widget=UpperCaseWidget())

    class Meta:
        model = Account
        fields = ("name", "domains", "owner", "territory", "is_customer", "tier", "industry", "country")
        import_id_fields = ("name",)
        clean_model_instances = True

    def get_instance(self, instance_loader: Any, row: dict[str, Any]) -> Account | None:
        # Account names are unique ignoring case, so "ACME" in a sheet updates "Acme" (and spells it ACME).
        name = _text(row.get("name"))
        return Account.objects.filter(name__iexact=name).first() if name else None

    def filter_export(self, queryset: QuerySet[Account], **kwargs: Any) -> QuerySet[Account]:
        return queryset.select_related("owner__user", "territory").prefetch_related("domains")

    def dehydrate_domains(self, account: Account) -> str:
        if account.pk is None:
            return ""
        return LIST_SEPARATOR.join(domain.domain for domain in account.domains.all())

    def check_extra_columns(self, instance: Account, row: dict[str, Any], errors: dict[str, list[Any]]) -> None:
        if "domains" not in row:
            return
        try:
            services.account_domains_clean(account=instance, domains=_split(row["domains"]))
        except ValidationError as error:
            errors.setdefault("domains", []).extend(error.messages)

    def after_save_instance(self, instance: Account, row: dict[str, Any], **kwargs: Any) -> None:
        if instance.pk is not None and "domains" in row:
            services.account_set_domains(account=instance, domains=_split(row["domains"]))
