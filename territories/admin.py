"""The coverage admin: RevOps' workplace for teams, reps, territories and accounts.

Every coverage model keeps its change history, shown on each object's History
page and, across all models, on the "Coverage change log" page. Actions and the
rep forms call ``territories.services``; the tree and the change log read through
``territories.selectors``; CSV import and export use ``territories.resources``.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.forms import Field as FormField
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html
from guardian.admin import GuardedModelAdminMixin
from import_export.admin import ImportExportMixin
from import_export.formats import base_formats
from simple_history.admin import SimpleHistoryAdmin

from territories import services
from territories.export_formats import FormulaSafeCSV
from territories.forms import (
    AccountDomainForm,
    AccountDomainFormSet,
    OutOfOfficeForm,
    RepAddForm,
    RepChangeForm,
    TerritoryCriterionFormSet,
    UserChoiceField,
    UserMultipleChoiceField,
    WorkingHoursFormSet,
    active_users,
    user_label,
)
from territories.models import (
    Account,
    AccountDomain,
    Opportunity,
    OutOfOffice,
    ProductLine,
    Profile,
    Rep,
    Skill,
    Team,
    Territory,
    TerritoryCriterion,
    WorkingHours,
)
from territories.permissions import request_granted_ids
from territories.resources import AccountResource, RepResource, TerritoryResource
from territories.selectors import TerritoryNode, change_log_page, change_log_users, territory_roots, territory_tree
from territories.time_zones import zone_info

# --- Shared ------------------------------------------------------------------------------------------------------


class ReadOnlyAdminMixin:
    """For rows that only the system writes (out-of-office lists, heartbeats, assignment history)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CoverageAdmin(SimpleHistoryAdmin):
    """Base for coverage models: a History page per object and a link to the change log.

    History is an audit trail here, not an undo button: a revert would skip the
    inline rows and the services, so it is turned off.
    """

    change_list_template = "admin/coverage_change_list.html"
    list_per_page = 50

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        # The old-version page still accepts a POST that saves the old values; refuse it, not only hide the button.
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


class GrantedObjectsAdminMixin(GuardedModelAdminMixin, admin.ModelAdmin):  # type: ignore[misc]
    """Rows for regional RevOps: with the model permission a user works on every row; without it, on the
    rows granted to them as object permissions (a territory's grant covers its subtree), and nothing else.
    Granting (the *Object permissions* button) stays with those who hold the model permission."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        rows = super().get_queryset(request)
        ids = request_granted_ids(request, self.model, "view")
        return rows if ids is None else rows.filter(pk__in=ids)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or bool(request_granted_ids(request, self.model, "view"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or self._granted(request, "view", obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) or self._granted(request, "change", obj)

    def _granted(self, request: HttpRequest, action: str, obj: Any) -> bool:
        ids = request_granted_ids(request, self.model, action)
        if ids is None:
            return True
        return bool(ids) if obj is None else obj.pk in ids

    def _may_grant(self, request: HttpRequest) -> None:
        if request_granted_ids(request, self.model, "change") is not None:
            raise PermissionDenied

    def obj_perms_manage_view(self, request: HttpRequest, object_pk: str) -> HttpResponse:
        self._may_grant(request)
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request: HttpRequest, object_pk: str, user_id: int) -> HttpResponse:
        self._may_grant(request)
        return super().obj_perms_manage_user_view(request, object_pk, user_id)

    def obj_perms_manage_group_view(self, request: HttpRequest, object_pk: str, group_id: int) -> HttpResponse:
        self._may_grant(request)
        return super().obj_perms_manage_group_view(request, object_pk, group_id)


class ParentGrantedInlineMixin:
    """An inline edited by whoever may change its parent row (a regional RevOps user on a granted territory)."""

    parent_model_for_grants: type[models.Model]

    def _parent_granted(self, request: HttpRequest, obj: Any) -> bool:
        ids = request_granted_ids(request, self.parent_model_for_grants, "change")
        return ids is None or (obj is not None and obj.pk in ids)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or self._parent_granted(request, obj)  # type: ignore[misc]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_add_permission(request, obj) or self._parent_granted(request, obj)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) or self._parent_granted(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) or self._parent_granted(request, obj)  # type: ignore[misc]


class CsvImportExportMixin(ImportExportMixin):
    """CSV only: what RevOps exchange with the CRM and spreadsheets. Exports write would-be formulas as text."""

    import_formats = [base_formats.CSV]
    export_formats = [FormulaSafeCSV]


def _join(items: Iterable[Any]) -> str:
    return ", ".join(str(item) for item in items) or "—"


# --- Teams, skills, product lines ----------------------------------------------------------------------------------


@admin.register(Skill)
class SkillAdmin(CoverageAdmin):
    list_display = ["code", "name", "kind", "rep_count", "queue_count"]
    list_filter = ["kind"]
    search_fields = ["code", "name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Skill]:
        return (
            super()
            .get_queryset(request)
            .annotate(rep_count=Count("reps", distinct=True), queue_count=Count("queues", distinct=True))
        )

    @admin.display(description="reps", ordering="rep_count")
    def rep_count(self, skill: Any) -> int:
        return skill.rep_count

    @admin.display(description="queues requiring it", ordering="queue_count")
    def queue_count(self, skill: Any) -> int:
        return skill.queue_count


@admin.register(ProductLine)
class ProductLineAdmin(CoverageAdmin):
    list_display = ["code", "name", "territory_count"]
    search_fields = ["code", "name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProductLine]:
        # Criteria name product lines by code, not by a foreign key.
        covering = (
            TerritoryCriterion.objects.filter(kind=TerritoryCriterion.Kind.PRODUCT_LINE, value=OuterRef("code"))
            .order_by()
            .values("kind")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return super().get_queryset(request).annotate(territory_count=Subquery(covering))

    @admin.display(description="territories covering it")
    def territory_count(self, product_line: Any) -> int:
        return product_line.territory_count or 0


@admin.register(Team)
class TeamAdmin(CoverageAdmin):
    list_display = ["name", "manager_names", "rep_count", "active_rep_count"]
    search_fields = ["name"]
    filter_horizontal = ["managers"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return (
            super()
            .get_queryset(request)
            .prefetch_related("managers")
            .annotate(
                rep_count=Count("reps", distinct=True),
                active_rep_count=Count("reps", filter=Q(reps__active=True), distinct=True),
            )
        )

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> FormField | None:
        # RevOps have no access to the user admin, so managers are picked from a plain list, not an autocomplete.
        if db_field.name == "managers":
            kwargs["queryset"] = active_users()
            kwargs["form_class"] = UserMultipleChoiceField
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="managers")
    def manager_names(self, team: Team) -> str:
        return _join(user_label(user) for user in team.managers.all())

    @admin.display(description="reps", ordering="rep_count")
    def rep_count(self, team: Any) -> int:
        return team.rep_count

    @admin.display(description="active reps", ordering="active_rep_count")
    def active_rep_count(self, team: Any) -> int:
        return team.active_rep_count


# --- Reps --------------------------------------------------------------------------------------------------------


class WorkingHoursInline(admin.TabularInline):
    model = WorkingHours
    formset = WorkingHoursFormSet
    extra = 0
    fields = ["weekday", "start", "end"]
    verbose_name_plural = "working hours, in the rep's own time zone"


class OutOfOfficeInline(admin.TabularInline):
    model = OutOfOffice
    extra = 0
    verbose_name_plural = "out-of-office periods, in the rep's own time zone"
    fields = ["starts_at", "ends_at", "reason"]
    ordering = ["-starts_at"]


class AwayFilter(admin.SimpleListFilter):
    title = "out of office"
    parameter_name = "away"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("now", "Away now"), ("no", "Not away")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "now":
            return queryset.filter(away_now=True)
        if self.value() == "no":
            return queryset.filter(away_now=False)
        return queryset


@admin.register(Rep)
class RepAdmin(CsvImportExportMixin, CoverageAdmin):
    """Reps with their team, availability and caps. The routing app registers a subclass in its place
    (``routing.admin.RepAdmin``) that adds each rep's open leads against capacity."""

    resource_classes = [RepResource]
    list_display = [
        "name",
        "email",
        "team",
        "manager_name",
        "active",
        "away",
        "daily_cap",
        "time_zone",
        "skill_codes",
    ]
    list_filter = ["active", AwayFilter, "team", "skills"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "user__email"]
    list_select_related = ["user", "team", "manager"]
    filter_horizontal = ["skills"]
    inlines = [WorkingHoursInline, OutOfOfficeInline]
    actions = ["activate", "deactivate", "set_out_of_office"]
    readonly_fields = ["username", "created_at", "updated_at"]

    add_fieldsets = [
        ("Person", {"fields": ["username", "email", "first_name", "last_name"]}),
        ("Team", {"fields": ["team", "manager", "active"]}),
        ("Capacity", {"fields": ["time_zone", "max_open_leads", "daily_cap", "skills"]}),
    ]
    change_fieldsets = [
        ("Person", {"fields": ["username", "email", "first_name", "last_name"]}),
        ("Team", {"fields": ["team", "manager", "active"]}),
        ("Capacity", {"fields": ["time_zone", "max_open_leads", "daily_cap", "skills"]}),
        ("Audit", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Rep]:
        now = timezone.now()
        return (
            super()
            .get_queryset(request)
            .select_related("user", "team", "manager")
            .prefetch_related("skills")
            .annotate(
                away_now=Exists(OutOfOffice.objects.filter(rep=OuterRef("pk"), starts_at__lte=now, ends_at__gt=now)),
            )
        )

    def get_fieldsets(self, request: HttpRequest, obj: Rep | None = None) -> Any:
        return self.change_fieldsets if obj else self.add_fieldsets

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> Any:
        # A rep's time off is typed and shown in the rep's own zone, whoever edits it, like their working hours.
        rep = self.get_object(request, object_id) if object_id else None
        if rep is None:
            return super().changeform_view(request, object_id, form_url, extra_context)
        with timezone.override(zone_info(rep.time_zone)):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            # Rendered here, not after the view returns, so the page's times are in the rep's zone too.
            if hasattr(response, "render"):
                response.render()
        return response

    def get_readonly_fields(self, request: HttpRequest, obj: Rep | None = None) -> Sequence[str]:
        return self.readonly_fields if obj else []

    def get_form(self, request: HttpRequest, obj: Rep | None = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["form"] = RepChangeForm if obj else RepAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> FormField | None:
        # RevOps have no access to the user admin, so the manager is a plain select of active users.
        if db_field.name == "manager":
            kwargs["queryset"] = active_users()
            kwargs["form_class"] = UserChoiceField
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Rep, form: Any, change: bool) -> None:
        identity = {name: form.cleaned_data[name] for name in ("email", "first_name", "last_name")}
        if change:
            services.rep_update(rep=obj, **identity)
        else:
            services.rep_create(rep=obj, username=form.cleaned_data["username"], **identity)

    @admin.display(description="rep", ordering="user__username")
    def name(self, rep: Rep) -> str:
        return str(rep)

    @admin.display(description="username")
    def username(self, rep: Rep) -> str:
        return rep.user.username

    @admin.display(description="e-mail", ordering="user__email")
    def email(self, rep: Rep) -> str:
        return rep.user.email

    @admin.display(description="manager", ordering="manager__username")
    def manager_name(self, rep: Rep) -> str:
        return user_label(rep.manager) if rep.manager else "—"

    @admin.display(description="away now", boolean=True, ordering="away_now")
    def away(self, rep: Any) -> bool:
        return rep.away_now

    @admin.display(description="skills")
    def skill_codes(self, rep: Rep) -> str:
        return _join(skill.code for skill in rep.skills.all())

    @admin.action(description="Activate selected reps (they get new leads again)", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Rep]) -> None:
        changed = services.reps_activate(reps=queryset)
        self.message_user(request, f"Activated {changed} rep(s); they get new leads again.", messages.SUCCESS)

    @admin.action(description="Deactivate selected reps (no new leads)", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Rep]) -> None:
        changed = services.reps_deactivate(reps=queryset)
        self.message_user(
            request,
            f"Deactivated {changed} rep(s); they get no new leads, and their open leads stay until reassigned.",
            messages.SUCCESS,
        )

    @admin.action(description="Set out of office for selected reps…", permissions=["change"])
    def set_out_of_office(self, request: HttpRequest, queryset: QuerySet[Rep]) -> TemplateResponse | None:
        # The first POST comes from the changelist; the second ("apply") from the page below.
        form = OutOfOfficeForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            periods = []
            # The times typed mean those hours where each rep is (a holiday from 09:00 is 09:00 in Berlin for a
            # Berlin rep and 09:00 in New York for a New York rep), as on the team board.
            with transaction.atomic():
                for rep in queryset:
                    zone = zone_info(rep.time_zone)
                    starts_at, ends_at = (
                        timezone.make_aware(timezone.make_naive(form.cleaned_data[name]), zone)
                        for name in ("starts_at", "ends_at")
                    )
                    periods += services.reps_set_out_of_office(
                        reps=[rep], starts_at=starts_at, ends_at=ends_at, reason=form.cleaned_data["reason"]
                    )
            self.message_user(request, f"Out of office recorded for {len(periods)} rep(s).", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Set out of office",
            "opts": self.opts,
            "form": form,
            "reps": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/territories/rep/set_out_of_office.html", context)


class OutOfOfficeStateFilter(admin.SimpleListFilter):
    title = "when"
    parameter_name = "when"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("current", "Now"), ("upcoming", "Upcoming"), ("past", "Past")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        if self.value() == "current":
            return queryset.filter(starts_at__lte=now, ends_at__gt=now)
        if self.value() == "upcoming":
            return queryset.filter(starts_at__gt=now)
        if self.value() == "past":
            return queryset.filter(ends_at__lte=now)
        return queryset


@admin.register(OutOfOffice)
class OutOfOfficeAdmin(ReadOnlyAdminMixin, CoverageAdmin):
    """Who is away across all reps. Periods are edited on the rep's page or with the rep action."""

    list_display = ["rep", "starts_at", "ends_at", "reason"]
    list_filter = [OutOfOfficeStateFilter]
    search_fields = ["rep__user__username", "rep__user__first_name", "rep__user__last_name", "reason"]
    list_select_related = ["rep__user"]
    date_hierarchy = "starts_at"
    ordering = ["-starts_at"]


# --- Profiles ---------------------------------------------------------------------------------------------------


@admin.register(Profile)
class ProfileAdmin(SimpleHistoryAdmin):
    """The time zone a user who is not a rep (a manager, RevOps) sees times in; reps have theirs on the rep."""

    list_display = ["user_name", "time_zone"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "time_zone"]
    list_select_related = ["user"]
    fields = ["user", "time_zone"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> FormField | None:
        # RevOps have no access to the user admin, so the user is a plain select of active users.
        if db_field.name == "user":
            kwargs["queryset"] = active_users()
            kwargs["form_class"] = UserChoiceField
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="user", ordering="user__username")
    def user_name(self, profile: Profile) -> str:
        return user_label(profile.user)


# --- Territories -------------------------------------------------------------------------------------------------


class TerritoryCriterionInline(ParentGrantedInlineMixin, admin.TabularInline):
    model = TerritoryCriterion
    parent_model_for_grants = Territory
    formset = TerritoryCriterionFormSet
    extra = 1
    fields = ["kind", "value"]


class TerritoryCoverageFilter(admin.SimpleListFilter):
    title = "coverage"
    parameter_name = "coverage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("queue", "Own queue"), ("rep", "Own rep"), ("inherited", "Inherited or none")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "queue":
            return queryset.filter(queue__isnull=False)
        if self.value() == "rep":
            return queryset.filter(rep__isnull=False)
        if self.value() == "inherited":
            return queryset.filter(queue__isnull=True, rep__isnull=True)
        return queryset


@admin.register(Territory)
class TerritoryAdmin(GrantedObjectsAdminMixin, CsvImportExportMixin, CoverageAdmin):  # type: ignore[misc]
    resource_classes = [TerritoryResource]
    change_list_template = "admin/territories/territory/change_list.html"  # type: ignore[misc]
    list_display = ["name", "path", "coverage", "criteria_summary", "account_count"]
    list_filter = [TerritoryCoverageFilter, ("parent", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "criteria__value"]
    autocomplete_fields = ["parent", "queue", "rep"]
    fields = ["name", "parent", "description", "queue", "rep"]
    inlines = [TerritoryCriterionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Territory]:
        return super().get_queryset(request).annotate(account_count=Count("accounts", distinct=True))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "parent":
            # A regional user may only hang territories below ones granted to them.
            ids = request_granted_ids(request, Territory, "change")
            if ids is not None:
                kwargs["queryset"] = Territory.objects.filter(pk__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        nodes = territory_tree()
        rows: list[Any] = list(changelist.result_list)
        for row in rows:
            # Attach the row's node so the columns below read the tree loaded once for this page.
            row.tree_node = nodes.get(row.pk)
        changelist.result_list = rows
        return changelist

    def _node(self, territory: Territory) -> TerritoryNode:
        node = getattr(territory, "tree_node", None)
        return node if node is not None else territory_tree()[territory.pk]

    @admin.display(description="path")
    def path(self, territory: Territory) -> str:
        return self._node(territory).path

    @admin.display(description="coverage")
    def coverage(self, territory: Territory) -> str:
        node = self._node(territory)
        if node.inherited:
            return format_html('<span style="color: var(--body-quiet-color)">{}</span>', node.coverage)
        return node.coverage

    @admin.display(description="criteria")
    def criteria_summary(self, territory: Territory) -> str:
        return self._node(territory).criteria or "—"

    @admin.display(description="accounts", ordering="account_count")
    def account_count(self, territory: Any) -> int:
        return territory.account_count

    def get_urls(self) -> list[URLPattern]:
        return [
            path("tree/", self.admin_site.admin_view(self.tree_view), name="territories_territory_tree"),
            path("change-log/", self.admin_site.admin_view(self.change_log_view), name="coverage_change_log"),
            *super().get_urls(),
        ]

    def tree_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Territory tree",
            "opts": self.opts,
            "roots": territory_roots(territory_tree()),
        }
        return TemplateResponse(request, "admin/territories/territory/tree.html", context)

    def change_log_view(self, request: HttpRequest) -> TemplateResponse:
        visible = [
            model
            for model in COVERAGE_MODELS
            if request.user.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}")
        ]
        if not visible:
            raise PermissionDenied
        chosen_model = next((model for model in visible if model._meta.label_lower == request.GET.get("model")), None)
        chosen_user = request.GET.get("user", "")
        page = change_log_page(
            coverage_models=[chosen_model] if chosen_model else visible,
            user_id=int(chosen_user) if chosen_user.isdigit() else None,
            page_number=request.GET.get("p", 1),
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Coverage change log",
            "page": page.page,
            "entries": page.entries,
            "page_range": page.page.paginator.get_elided_page_range(page.page.number),
            "model_choices": [(model._meta.label_lower, model._meta.verbose_name) for model in visible],
            "user_choices": [(str(user.pk), user_label(user)) for user in change_log_users(visible)],
            "chosen_model": chosen_model._meta.label_lower if chosen_model else "",
            "chosen_user": chosen_user,
        }
        return TemplateResponse(request, "admin/coverage_change_log.html", context)


# --- Accounts ----------------------------------------------------------------------------------------------------


class AccountDomainInline(admin.TabularInline):
    model = AccountDomain
    form = AccountDomainForm
    formset = AccountDomainFormSet
    extra = 1


@admin.register(Account)
class AccountAdmin(CsvImportExportMixin, CoverageAdmin):
    resource_classes = [AccountResource]
    list_display = [
        "name",
        "domain_list",
        "owner",
        "territory",
        "is_customer",
        "tier",
        "industry",
        "country",
        "open_opportunities",
    ]
    list_filter = ["is_customer", "tier", "industry", ("territory", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "domains__domain"]
    list_select_related = ["owner__user", "territory"]
    autocomplete_fields = ["owner", "territory"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "owner", "territory"]}),
        ("Segment", {"fields": ["is_customer", "tier", "industry", "country"]}),
        ("Audit", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [AccountDomainInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        return (
            super()
            .get_queryset(request)
            .select_related("owner__user", "territory")
            .prefetch_related("domains")
            .annotate(
                open_opportunity_count=Count(
                    "opportunities", filter=Q(opportunities__stage=Opportunity.Stage.OPEN), distinct=True
                )
            )
        )

    @admin.display(description="domains")
    def domain_list(self, account: Account) -> str:
        return _join(domain.domain for domain in account.domains.all())

    @admin.display(description="open opportunities", ordering="open_opportunity_count")
    def open_opportunities(self, account: Any) -> int:
        return account.open_opportunity_count


@admin.register(Opportunity)
class OpportunityAdmin(CoverageAdmin):
    list_display = ["name", "account", "owner", "stage", "amount", "created_at", "closed_at"]
    list_filter = ["stage"]
    search_fields = ["name", "account__name"]
    list_select_related = ["account", "owner__user"]
    autocomplete_fields = ["account", "owner"]
    readonly_fields = ["created_at"]
    date_hierarchy = "created_at"


# --- Coverage change log -----------------------------------------------------------------------------------------

# The models the change log lists (the list is read per request). An extension point: the apps above territories
# add their own coverage models from their admin modules (routing: rules, queues and queue memberships; sla:
# calendars and SLA policies), and register rows their pages edit inline with
# ``territories.selectors.change_log_inline``.
COVERAGE_MODELS: list[type[models.Model]] = [
    Territory,
    TerritoryCriterion,
    Team,
    Rep,
    WorkingHours,
    OutOfOffice,
    Skill,
    ProductLine,
    Account,
    AccountDomain,
    Opportunity,
]
