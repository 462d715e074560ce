"""The routing admin: queues (part of the coverage model), and read-only views of leads and workers."""

import csv
import logging
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Model, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.template_utils import HistoricalRecordContextHelper

from routing import (
    admin_forms,  # noqa: F401  (registers the website form sources)
    admin_integrations,  # noqa: F401  (registers the integrations' models)
    lanes,
    services,
)
from routing.conditions import summarize_stored
from routing.forms import ConditionEditor, SimulateLeadForm
from routing.lead_import import MAX_ROWS, LeadImportError, error_lines, leads_import_csv
from routing.models import (
    ApiKey,
    ApiScope,
    Assignment,
    Firmographic,
    Lead,
    LeadImport,
    Notification,
    Queue,
    QueueMembership,
    Rule,
    ScoringRule,
    ScoringThresholds,
    WorkerHeartbeat,
    api_key_default_scopes,
)
from routing.notify import notifications_resend, undelivered
from routing.pipeline import Evaluation
from routing.reassign import ReassignError, ReassignResult, leads_reassign, leads_reroute
from routing.render import json_text, safe_text
from routing.resources import FirmographicResource
from routing.selectors import HEARTBEAT_STALE_AFTER, RULE_MATCHES_SCANNED, lead_simulate, rule_matches
from territories import admin as territories_admin
from territories.access import is_revops
from territories.admin import (
    COVERAGE_MODELS,
    CoverageAdmin,
    CsvImportExportMixin,
    GrantedObjectsAdminMixin,
    ParentGrantedInlineMixin,
    ReadOnlyAdminMixin,
)
from territories.export_formats import escape_formula
from territories.forms import QueueMembershipFormSet
from territories.models import Rep
from territories.permissions import request_granted_ids
from territories.selectors import change_log_display, change_log_inline

logger = logging.getLogger(__name__)


def pretty_json(value: Any) -> str:
    """JSON as an indented, escaped block for a read-only admin field, cut to ``routing.render``'s limits:
    a stored lead may hold anything, and its page must still open."""
    if not value:
        return "—"
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', json_text(value))


# Long lists (leads, queues) get the whole width of the screen: the app list beside them is hidden, as the
# breadcrumbs lead back to it.
WIDE_LIST = {"is_nav_sidebar_enabled": False}


def short_time(value: Any) -> str:
    """A time for a list column: month, day and minute in the current time zone."""
    return timezone.localtime(value).strftime("%m-%d %H:%M") if value else "—"


# --- Queues ------------------------------------------------------------------------------------------------------


def granted_queues_only(request: HttpRequest, kwargs: dict[str, Any]) -> None:
    """Limit a form field that points at a queue to the queues the user may change (all of them for RevOps)."""
    ids = request_granted_ids(request, Queue, "change")
    if ids is not None:
        kwargs["queryset"] = Queue.objects.filter(pk__in=ids)


def keep_current_choice(form: Any, name: str, current_id: int | None) -> None:
    """Let a form keep the row its object already points at, even outside the user's grant (a queue's
    fallback to the catch-all, say), so saving other fields never forces a new choice."""
    field = form.base_fields.get(name)
    if field is not None and current_id is not None and not field.queryset.filter(pk=current_id).exists():
        field.queryset = field.queryset.model.objects.filter(Q(pk__in=field.queryset.values("pk")) | Q(pk=current_id))


def without_rep_autocomplete(admin_site: admin.AdminSite, request: HttpRequest, fields: list[str]) -> list[str]:
    """The rep autocomplete asks the rep admin, which a regional RevOps user may not open: they get a plain list."""
    if admin_site.get_model_admin(Rep).has_view_permission(request):
        return fields
    return [name for name in fields if name != "rep"]


class QueueMembershipInline(ParentGrantedInlineMixin, admin.TabularInline):
    model = QueueMembership
    parent_model_for_grants = Queue
    formset = QueueMembershipFormSet
    extra = 1
    fields = ["rep", "weight", "active", "position"]
    autocomplete_fields = ["rep"]
    ordering = ["position", "rep__user__username"]

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        return without_rep_autocomplete(self.admin_site, request, list(super().get_autocomplete_fields(request)))


@admin.register(Queue)
class QueueAdmin(GrantedObjectsAdminMixin, CoverageAdmin):  # type: ignore[misc]
    """Queues; a regional RevOps user sees and changes only the queues granted to them."""

    list_display = [
        "name",
        "method",
        "active",
        "member_counts",
        "fallback",
        "when_nobody_eligible",
        "is_catch_all",
        "skill_codes",
    ]
    list_filter = ["method", "active", "when_nobody_eligible"]
    search_fields = ["name"]
    # Explicit, because the member counts below group the rows and a grouped query drops Meta.ordering.
    ordering = ["-is_catch_all", "name"]
    list_select_related = ["fallback"]
    autocomplete_fields = ["fallback"]
    filter_horizontal = ["required_skills"]
    readonly_fields = ["is_catch_all", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "description", "active", "is_catch_all"]}),
        ("Distribution", {"fields": ["method", "required_skills", "skip_off_hours_reps"]}),
        ("When nobody is eligible", {"fields": ["when_nobody_eligible", "fallback", "inherit_skills"]}),
        ("Audit", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [QueueMembershipInline]
    actions = ["delete_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Queue]:
        return (
            super()
            .get_queryset(request)
            .select_related("fallback")
            .prefetch_related("required_skills")
            .annotate(
                member_count=Count("memberships", distinct=True),
                active_member_count=Count(
                    "memberships",
                    filter=Q(memberships__active=True, memberships__rep__active=True),
                    distinct=True,
                ),
            )
        )

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "fallback":
            # A regional user may only overflow into queues granted to them.
            granted_queues_only(request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request: HttpRequest, obj: Queue | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        keep_current_choice(form, "fallback", obj.fallback_id if obj else None)
        return form

    def has_delete_permission(self, request: HttpRequest, obj: Queue | None = None) -> bool:
        # The catch-all is the last stop of every routing path; without it a lead could fall through.
        if obj is not None and obj.is_catch_all:
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(description="Delete selected queues", permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: QuerySet[Queue]) -> TemplateResponse | None:
        catch_all = queryset.filter(is_catch_all=True).first()
        if catch_all is not None:
            self.message_user(
                request,
                f"“{catch_all}” is the catch-all queue and cannot be deleted: every lead no rule places goes there. "
                "Nothing was deleted; select the other queues only.",
                messages.ERROR,
            )
            return None
        return django_delete_selected(self, request, queryset)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**WIDE_LIST, **(extra_context or {})})

    @admin.display(description="active members / total", ordering="active_member_count")
    def member_counts(self, queue: Any) -> str:
        return f"{queue.active_member_count} / {queue.member_count}"

    @admin.display(description="required skills")
    def skill_codes(self, queue: Queue) -> str:
        return ", ".join(skill.code for skill in queue.required_skills.all()) or "—"


# --- Leads -------------------------------------------------------------------------------------------------------


class AssignmentInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The lead's owners over time, newest first, with each routing receipt."""

    model = Assignment
    extra = 0
    fields = ["assigned_at", "ended_at", "rep", "queue", "reason", "assigned_by", "note", "receipt_pretty"]
    readonly_fields = ["assigned_at", "ended_at", "rep", "queue", "reason", "assigned_by", "note", "receipt_pretty"]
    ordering = ["-assigned_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Assignment]:
        return super().get_queryset(request).select_related("rep__user", "queue", "assigned_by")

    @admin.display(description="receipt")
    def receipt_pretty(self, assignment: Assignment) -> str:
        if not assignment.receipt:
            return "—"
        return format_html("<details><summary>Show receipt</summary>{}</details>", pretty_json(assignment.receipt))


class HasRoutingErrorFilter(admin.SimpleListFilter):
    title = "routing error"
    parameter_name = "routing_error"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Failed: sent to the catch-all"), ("no", "No error")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Lead]) -> QuerySet[Lead]:
        if self.value() == "yes":
            return queryset.exclude(routing_error="")
        if self.value() == "no":
            return queryset.filter(routing_error="")
        return queryset


class HasEnrichmentFailuresFilter(admin.SimpleListFilter):
    title = "enrichment failures"
    parameter_name = "enrichment_failed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "A provider failed"), ("no", "None")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Lead]) -> QuerySet[Lead]:
        if self.value() == "yes":
            return queryset.exclude(enrichment_failures={})
        if self.value() == "no":
            return queryset.filter(enrichment_failures={})
        return queryset


class LeadReassignForm(forms.Form):
    """The second step of the "Reassign" action: who takes the selected leads, and why."""

    rep = forms.ModelChoiceField(
        queryset=Rep.objects.filter(active=True).select_related("user").order_by("user__username"),
        label="Give them to",
    )
    note = forms.CharField(
        required=False,
        max_length=500,
        label="Why (kept with each lead's history)",
        widget=forms.TextInput(attrs={"size": 60}),
    )


# The columns of "Export to CSV": what a spreadsheet or the CRM needs to find and follow the leads up.
LEAD_CSV_COLUMNS = (
    ("id", lambda lead: lead.pk),
    ("first_name", lambda lead: lead.first_name),
    ("last_name", lambda lead: lead.last_name),
    ("email", lambda lead: lead.email),
    ("company", lambda lead: lead.company),
    ("country", lambda lead: lead.country),
    ("source", lambda lead: lead.source),
    ("status", lambda lead: lead.get_status_display()),
    ("owner", lambda lead: lead.owner.username if lead.owner else ""),
    ("queue", lambda lead: lead.queue.name if lead.queue else ""),
    ("territory", lambda lead: lead.territory.name if lead.territory else ""),
    ("rule", lambda lead: lead.rule.name if lead.rule else ""),
    ("received_at", lambda lead: lead.received_at.isoformat() if lead.received_at else ""),
    ("routed_at", lambda lead: lead.routed_at.isoformat() if lead.routed_at else ""),
)


def _reassign_message(result: ReassignResult, done: str) -> tuple[str, int]:
    parts = [f"{done} {len(result.moved)} lead(s)."]
    if result.skipped:
        reasons = "; ".join(f"{lead}: {why}" for lead, why in result.skipped[:5])
        more = f" and {len(result.skipped) - 5} more" if len(result.skipped) > 5 else ""
        parts.append(f"Left alone {len(result.skipped)}: {reasons}{more}.")
    parts.extend(result.warnings)
    return " ".join(parts), messages.SUCCESS if result.moved else messages.WARNING


class LeadImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8, a header row with the API's field names (email, first_name, company, country, …); "
        "form:<question> columns become form answers; other columns are kept in the raw payload.",
    )
    skip_invalid = forms.BooleanField(
        required=False,
        label="Skip invalid rows",
        help_text="Store the good rows and report the bad ones. Off: any bad row stores nothing.",
    )


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    """Leads as they arrived and where routing put them. Read-only here: leads arrive through the
    API or a CSV upload, and owners change through routing and reassignment, which keep receipts.

    The sla app registers a subclass in its place (``sla.admin.LeadAdmin``) that adds the lead's first-touch
    clock and the escalations that fired for it."""

    change_list_template = "admin/routing/lead/change_list.html"
    # Fits a 1440 px screen beside the filters: the lead's name carries its company, the owner is their
    # username, times are short; the lead's page has the rest.
    list_display = [
        "__str__",
        "email",
        "status",
        "owner_name",
        "queue",
        "territory",
        "received",
        "routed",
    ]
    list_filter = [
        "status",
        "queue",
        # The reports open a team's leads through this filter (``owner__team__id__exact``).
        ("owner__team", admin.RelatedOnlyFieldListFilter),
        "source",
        "account_match_weak",
        HasRoutingErrorFilter,
        HasEnrichmentFailuresFilter,
        "received_at",
        "routed_at",
    ]
    search_fields = ["email", "company", "external_id"]
    list_select_related = ["owner__user", "queue", "territory", "account"]
    date_hierarchy = "received_at"
    inlines = [AssignmentInline]
    actions = ["reroute", "reassign", "export_csv"]
    readonly_fields = [
        "closed_at",
        "closed_by",
        "closed_via",
        "close_reason",
        "receipt_rendered",
        "raw_payload_pretty",
        "form_answers_pretty",
        "page_history_pretty",
        "flags_pretty",
        "enrichment_sources_pretty",
        "enrichment_failures_pretty",
    ]
    fieldsets = [
        (
            "Routing",
            {
                "fields": [
                    "status",
                    "owner",
                    "queue",
                    "territory",
                    "account",
                    "rule",
                    "duplicate_of",
                    "received_at",
                    "routed_at",
                    "routing_error",
                    "closed_at",
                    "closed_by",
                    "closed_via",
                    "close_reason",
                ]
            },
        ),
        ("Why this lead went here", {"fields": ["receipt_rendered"]}),
        ("Contact", {"fields": ["first_name", "last_name", "email", "phone", "title"]}),
        (
            "Company",
            {
                "fields": [
                    "company",
                    "website",
                    "email_domain",
                    "country",
                    "subdivision",
                    "city",
                    "postal_code",
                    "industry",
                    "employees",
                    "size_band",
                    "annual_revenue",
                ]
            },
        ),
        ("Score", {"fields": ["score", "fit_score", "intent_score"]}),
        (
            "Account match and enrichment",
            {
                "fields": [
                    "account_match_method",
                    "account_match_confidence",
                    "account_match_weak",
                    "enrichment_sources_pretty",
                    "enrichment_failures_pretty",
                ]
            },
        ),
        (
            "Source",
            {"fields": ["source", "campaign", "external_id", "product_interest", "intake_source", "lead_import"]},
        ),
        (
            "As received",
            {"fields": ["raw_payload_pretty", "form_answers_pretty", "page_history_pretty", "flags_pretty"]},
        ),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**WIDE_LIST, **(extra_context or {})})

    @admin.display(description="owner", ordering="owner__user__username")
    def owner_name(self, lead: Lead) -> str:
        return lead.owner.username if lead.owner else "—"

    @admin.display(description="received", ordering="received_at")
    def received(self, lead: Lead) -> str:
        return short_time(lead.received_at)

    @admin.display(description="routed", ordering="routed_at")
    def routed(self, lead: Lead) -> str:
        return short_time(lead.routed_at)

    def has_route_permission(self, request: HttpRequest) -> bool:
        # The lead form stays closed (owners change through routing and reassignment, which keep receipts);
        # the actions below are those paths, open to whoever holds the model's change permission.
        return request.user.has_perm("routing.change_lead")

    @admin.action(description="Route again through the rules", permissions=["route"])
    def reroute(self, request: HttpRequest, queryset: QuerySet[Lead]) -> None:
        """Leads still waiting for routing are sent to it again; leads in a queue or with a rep go through
        today's rules now (``routing.reassign.leads_reroute``)."""
        chosen = list(queryset.order_by("pk"))
        waiting = [lead for lead in chosen if lead.status == Lead.Status.RECEIVED]
        for lane in {lead.lane for lead in waiting}:
            transaction.on_commit(
                partial(_route_leads_enqueue, [lead.pk for lead in waiting if lead.lane == lane], lane=lane),
                robust=True,
            )
        others = [lead for lead in chosen if lead.status != Lead.Status.RECEIVED]
        parts, level = [], messages.SUCCESS
        if others:
            text, level = _reassign_message(leads_reroute(leads=others, by=request.user), "Routed again")
            parts.append(text)
        if waiting:
            parts.append(f"Sent {len(waiting)} lead(s) still waiting for routing to the router.")
            level = messages.SUCCESS
        self.message_user(request, " ".join(parts), level)

    @admin.action(description="Reassign to a rep…", permissions=["route"])
    def reassign(self, request: HttpRequest, queryset: QuerySet[Lead]) -> TemplateResponse | None:
        """Two steps: choose the rep (and a note), then ``routing.reassign.leads_reassign`` moves the leads."""
        form = LeadReassignForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            try:
                result = leads_reassign(
                    leads=list(queryset.order_by("pk")),
                    to_rep=form.cleaned_data["rep"],
                    by=request.user,
                    note=form.cleaned_data["note"],
                )
            except ReassignError as error:
                self.message_user(request, str(error), messages.ERROR)
                return None
            text, level = _reassign_message(result, f"Reassigned to {form.cleaned_data['rep'].username}")
            self.message_user(request, text, level)
            return None
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Reassign leads",
            "opts": self.model._meta,
            "form": form,
            "leads": list(queryset.select_related("owner__user", "queue").order_by("pk")[:200]),
            "count": queryset.count(),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action": "reassign",
        }
        return TemplateResponse(request, "admin/routing/lead/reassign.html", context)

    @admin.action(description="Export to CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Lead]) -> HttpResponse:
        """The selected leads as CSV; a cell a spreadsheet would run as a formula is written as text."""
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="leads-{timezone.now():%Y%m%d-%H%M}.csv"'
        writer = csv.writer(response)
        writer.writerow([name for name, _ in LEAD_CSV_COLUMNS])
        rows = queryset.select_related("owner__user", "queue", "territory", "rule").order_by("pk")
        for lead in rows.iterator(chunk_size=2000):
            writer.writerow([escape_formula(value(lead)) for _, value in LEAD_CSV_COLUMNS])
        return response

    def get_urls(self) -> list[URLPattern]:
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="routing_lead_import"),
            *super().get_urls(),
        ]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a CSV of leads; the import runs now and the report page follows."""
        # The add form is closed (leads are not typed in by hand), so the permission is checked directly.
        if not request.user.has_perm("routing.add_lead"):
            raise PermissionDenied
        form = LeadImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                lead_import = leads_import_csv(
                    file=upload,
                    file_name=upload.name,
                    created_by=request.user,  # type: ignore[arg-type]
                    skip_invalid=form.cleaned_data["skip_invalid"],
                )
            except LeadImportError as error:
                form.add_error("file", str(error))
            else:
                if lead_import.rejected and not form.cleaned_data["skip_invalid"]:
                    self.message_user(
                        request,
                        f"Nothing was stored: {lead_import.rejected:,} row(s) have errors, listed below.",
                        messages.ERROR,
                    )
                else:
                    self.message_user(request, f"Imported {lead_import.imported:,} new lead(s).", messages.SUCCESS)
                return redirect("admin:routing_leadimport_change", lead_import.pk)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Import leads from CSV",
            "opts": self.model._meta,
            "form": form,
            "max_rows": MAX_ROWS,
        }
        return TemplateResponse(request, "admin/routing/lead/import.html", context)

    @admin.display(description="receipt")
    def receipt_rendered(self, lead: Lead) -> str:
        if not lead.receipt:
            return "No receipt yet: the lead has not been routed."
        return render_to_string(
            "admin/routing/_receipt.html",
            {
                "receipt": lead.receipt,
                "receipt_json": json_text(lead.receipt),
            },
        )

    @admin.display(description="raw payload")
    def raw_payload_pretty(self, lead: Lead) -> str:
        return pretty_json(lead.raw_payload)

    @admin.display(description="form answers")
    def form_answers_pretty(self, lead: Lead) -> str:
        return pretty_json(lead.form_answers)

    @admin.display(description="page history")
    def page_history_pretty(self, lead: Lead) -> str:
        return pretty_json(lead.page_history)

    @admin.display(description="unmapped values")
    def flags_pretty(self, lead: Lead) -> str:
        return pretty_json(lead.flags)

    @admin.display(description="enriched fields (field: provider)")
    def enrichment_sources_pretty(self, lead: Lead) -> str:
        return pretty_json(lead.enrichment_sources)

    @admin.display(description="enrichment failures (provider: why)")
    def enrichment_failures_pretty(self, lead: Lead) -> str:
        return pretty_json(lead.enrichment_failures)


def _route_leads_enqueue(lead_ids: list[int], *, lane: str) -> None:
    try:
        lanes.route_leads_send(lead_ids, lane=lane)
    except Exception:
        # The leads stay received; the periodic sweep routes them once the broker is back.
        logger.exception("Could not enqueue route_leads for %d leads; the sweep will route them.", len(lead_ids))


@admin.register(LeadImport)
class LeadImportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Past CSV imports. Each one's page is its report: counts, every bad row, and how far routing has got."""

    list_display = ["__str__", "created_by", "total_rows", "imported", "existing", "rejected"]
    list_select_related = ["created_by"]
    search_fields = ["file_name"]
    date_hierarchy = "created_at"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        lead_import = self.get_object(request, object_id)
        if lead_import is None:
            raise Http404("No such import.")
        if not self.has_view_permission(request, lead_import):
            raise PermissionDenied
        counts = lead_import.leads.aggregate(
            leads=Count("id"), waiting=Count("id", filter=Q(status=Lead.Status.RECEIVED))
        )
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": f"Import of {lead_import.file_name}",
            "opts": self.model._meta,
            "original": lead_import,
            "lead_import": lead_import,
            "leads": counts["leads"],
            "routed": counts["leads"] - counts["waiting"],
            "waiting": counts["waiting"],
            "errors": [{"row": entry["row"], "lines": error_lines(entry)} for entry in lead_import.errors],
            "errors_left_out": lead_import.rejected - len(lead_import.errors),
            "leads_url": reverse("admin:routing_lead_changelist") + f"?lead_import={lead_import.pk}",
        }
        return TemplateResponse(request, "admin/routing/leadimport/report.html", context)


# --- Rules -------------------------------------------------------------------------------------------------------


class ConditionHistoryHelper(HistoricalRecordContextHelper):
    """A rule's History page shows its condition in words (``country in 'DE' and employees ≥ 1000``), as the
    list does, rather than as stored JSON."""

    def prepare_delta_change_value(self, change: Any, value: Any) -> Any:
        if change.field == "condition":
            return summarize_stored(value)
        return super().prepare_delta_change_value(change, value)


class ConditionEditorMixin:
    """The condition is edited in rows and groups (``routing.forms.ConditionEditor``), not typed as JSON, and
    reads as words on the History page."""

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "condition":
            kwargs["widget"] = ConditionEditor()
            kwargs["help_text"] = "When the rule applies. No conditions: always."
        return super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]

    def get_historical_record_context_helper(self, request: HttpRequest, historical_record: Any) -> Any:
        return ConditionHistoryHelper(self.model, historical_record)  # type: ignore[attr-defined]


@admin.register(Rule)
class RuleAdmin(ConditionEditorMixin, GrantedObjectsAdminMixin, CoverageAdmin):
    """The routing matrix: ordered rules, first match wins, the catch-all closes the list.

    A regional RevOps user sees and changes only the rules granted to them, points them only at queues
    granted to them, and cannot simulate: a simulation runs the whole matrix and shows every rule it tried.
    """

    change_list_template = "admin/routing/rule/change_list.html"  # type: ignore[misc]
    change_form_template = "admin/routing/rule/change_form.html"  # type: ignore[misc]
    list_display = ["position", "name", "active", "when", "action", "target"]
    list_display_links = ["name"]
    list_editable = ["position", "active"]
    list_filter = ["active", "action"]
    search_fields = ["name", "description"]
    list_select_related = ["queue", "rep__user"]
    autocomplete_fields = ["queue", "rep"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "description", "position", "active"]}),
        ("When", {"fields": ["condition"]}),
        ("Then", {"fields": ["action", "queue", "rep"]}),
        ("Audit", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="when")
    def when(self, rule: Rule) -> str:
        return summarize_stored(rule.condition)

    @admin.display(description="then")
    def target(self, rule: Rule) -> str:
        return str(rule.queue or rule.rep or "—")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "queue":
            # A regional user may only route to queues granted to them.
            granted_queues_only(request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request: HttpRequest, obj: Rule | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        keep_current_choice(form, "queue", obj.queue_id if obj else None)
        return form

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        return without_rep_autocomplete(self.admin_site, request, list(super().get_autocomplete_fields(request)))

    def may_simulate(self, request: HttpRequest) -> bool:
        """Only with the model permission, as in the API: a regional grant covers some rules, a simulation
        reads all of them."""
        return request.user.has_perm("routing.view_rule")

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and not self.may_simulate(request):
            # The plain coverage list, without the Simulate button.
            response.template_name = CoverageAdmin.change_list_template
        return response

    def get_urls(self) -> list[URLPattern]:
        return [
            path("simulate/", self.admin_site.admin_view(self.simulate_view), name="routing_rule_simulate"),
            path("<int:pk>/matches/", self.admin_site.admin_view(self.matches_view), name="routing_rule_matches"),
            *super().get_urls(),
        ]

    def may_see_matches(self, request: HttpRequest) -> bool:
        """The leads a rule would have matched are anyone's leads: RevOps only, as on the pages."""
        return is_revops(request.user)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "may_see_matches": self.may_see_matches(request)}
        return super().change_view(request, object_id, form_url, extra)

    def matches_view(self, request: HttpRequest, pk: int) -> TemplateResponse:
        """The last 100 leads the rule's condition holds for, read-only, with what routing did with them then."""
        if not self.may_see_matches(request):
            raise PermissionDenied
        rule = get_object_or_404(Rule, pk=pk)
        matches = rule_matches(rule=rule)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": f"Leads rule {rule.name} would have matched",
            "opts": self.model._meta,
            "rule": rule,
            "matches": matches,
            "won": sum(match.won for match in matches),
            "scanned": RULE_MATCHES_SCANNED,
        }
        return TemplateResponse(request, "admin/routing/rule/matches.html", context)

    def simulate_view(self, request: HttpRequest) -> TemplateResponse:
        """Try a lead against the live coverage model; nothing is saved."""
        if not self.may_simulate(request):
            raise PermissionDenied
        form = SimulateLeadForm(request.POST or None)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Simulate a lead",
            "opts": self.model._meta,
            "form": form,
        }
        if request.method == "POST" and form.is_valid():
            evaluation = lead_simulate(raw=form.raw_lead(), now=form.cleaned_data["now"])
            context.update(
                as_of=form.cleaned_data["now"],
                evaluation=evaluation,
                verdict=simulation_verdict(evaluation),
                receipt_json=json_text(evaluation.receipt()),
            )
        return TemplateResponse(request, "admin/routing/rule/simulate.html", context)


def simulation_verdict(evaluation: Evaluation) -> str:
    if evaluation.decision is not None:
        return str(evaluation.decision.receipt.get("summary", evaluation.outcome))
    assert evaluation.score is not None
    return f"{evaluation.outcome.capitalize()}: total score {evaluation.score.total} is below the sales threshold."


@admin.register(ScoringRule)
class ScoringRuleAdmin(ConditionEditorMixin, CoverageAdmin):
    """Fit and intent points; every active rule that holds adds its points."""

    list_display = ["name", "kind", "when", "points", "active"]
    list_editable = ["points", "active"]
    list_filter = ["kind", "active"]
    search_fields = ["name"]

    @admin.display(description="when")
    def when(self, rule: ScoringRule) -> str:
        return summarize_stored(rule.condition)


@admin.register(ScoringThresholds)
class ScoringThresholdsAdmin(CoverageAdmin):
    """One row: the totals that send a lead to sales routing, nurture or disqualified."""

    list_display = ["__str__", "sales_min", "nurture_min", "updated_at"]
    readonly_fields = ["updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScoringThresholds]:
        ScoringThresholds.current()  # The row exists from the first look on.
        return super().get_queryset(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ApiKeyForm(forms.ModelForm):
    """The key's scopes as checkboxes; only known scopes can be chosen."""

    scopes = forms.MultipleChoiceField(
        choices=ApiScope.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        initial=api_key_default_scopes,
        help_text="What the key may do. New keys: leads:write (post leads) unless more is ticked.",
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes"]

    def clean_scopes(self) -> list[str]:
        # Stored in the order of ApiScope, so the list reads the same however it was ticked.
        chosen = set(self.cleaned_data["scopes"])
        return [scope for scope in ApiScope.values if scope in chosen]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys for intake sources. The key is shown once, when it is created; revoking is immediate."""

    form = ApiKeyForm
    list_display = ["name", "prefix", "scope_list", "created_at", "created_by", "last_used_at", "state"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    list_select_related = ["created_by"]
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created, raw_key = services.apikey_create(
            name=obj.name,
            scopes=obj.scopes,
            by=request.user,  # type: ignore[arg-type]
        )
        obj.pk, obj.prefix, obj.created_at = created.pk, created.prefix, created.created_at
        messages.warning(
            request,
            f"Copy this key now; it is not stored and will not be shown again: {raw_key}",
        )

    @admin.display(description="scopes")
    def scope_list(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.scopes) or "none"

    @admin.display(description="state")
    def state(self, api_key: ApiKey) -> str:
        return f"revoked {timezone.localtime(api_key.revoked_at):%Y-%m-%d %H:%M %Z}" if api_key.revoked_at else "active"

    @admin.action(description="Revoke the selected keys now")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = services.apikey_revoke(keys=queryset)
        self.message_user(request, f"Revoked {revoked} key(s); requests with them are refused from now on.")


@admin.register(Firmographic)
class FirmographicAdmin(CsvImportExportMixin, admin.ModelAdmin):
    """The built-in enrichment table: company facts by domain, imported from a vendor's or RevOps' CSV."""

    resource_classes = [FirmographicResource]
    list_display = ["domain", "company", "employees", "industry", "country", "updated_at"]
    list_filter = ["industry", "country"]
    search_fields = ["domain", "company"]
    readonly_fields = ["updated_at"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """When each worker last ran the periodic heartbeat. Written only by the worker."""

    list_display = ["name", "last_seen_at", "hostname", "healthy"]

    @admin.display(description="recent", boolean=True)
    def healthy(self, heartbeat: WorkerHeartbeat) -> bool:
        return timezone.now() - heartbeat.last_seen_at <= HEARTBEAT_STALE_AFTER


class UndeliveredFilter(admin.SimpleListFilter):
    """Notices no one will send again on their own, as the routing health page counts them."""

    title = "undelivered"
    parameter_name = "undelivered"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Delivery unknown or failed for good")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Notification]) -> QuerySet[Notification]:
        return queryset.filter(undelivered()) if self.value() == "yes" else queryset


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every e-mail and Slack notice, to a rep about a new lead or from the SLA ladder, and what became of it.
    Only the senders and the sweeps write them; a person may resend one whose delivery is unknown or that
    failed."""

    list_display = [
        "__str__",
        "kind",
        "about",
        "status",
        "attempts",
        "created_at",
        "sending_since",
        "sent_at",
        "error_short",
    ]
    list_filter = [UndeliveredFilter, "status", "kind", "created_at"]
    search_fields = ["lead__email", "lead__company", "rep__user__username"]
    list_select_related = ["lead", "rep__user"]
    date_hierarchy = "created_at"
    actions = ["resend"]

    @admin.display(description="error")
    def error_short(self, notification: Notification) -> str:
        return safe_text(notification.error, 120)

    @admin.display(description="about")
    def about(self, notification: Notification) -> str:
        if notification.escalation_id is not None:
            return f"SLA escalation {notification.escalation_id}"
        return f"assignment {notification.assignment_id}"

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("routing.change_notification")

    @admin.action(description="Resend the selected notifications (delivery unknown or failed)", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        chosen = list(queryset.values_list("pk", flat=True))
        resent = notifications_resend(notification_ids=chosen, by=request.user)
        left = len(chosen) - resent
        self.message_user(
            request,
            f"Resending {resent} notification(s)."
            + (f" {left} left alone: only those whose delivery is unknown or that failed are resent." if left else ""),
            messages.SUCCESS if resent else messages.WARNING,
        )


# --- The coverage admin's routing parts: reps' open leads, and the change log ------------------------------------


class RepAdmin(territories_admin.RepAdmin):
    """The coverage admin's reps with each one's open leads against capacity (a column after "away now").
    Registered in place of territories' rep admin."""

    # The column sits just before the daily cap, where the rep list has always shown it.
    list_display = list(territories_admin.RepAdmin.list_display)
    list_display.insert(list_display.index("daily_cap"), "load")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Rep]:
        return (
            super()
            .get_queryset(request)
            .annotate(open_leads=Count("leads", filter=Q(leads__status__in=Lead.OPEN_STATUSES)))
        )

    @admin.display(description="open leads / capacity", ordering="open_leads")
    def load(self, rep: Any) -> str:
        return f"{rep.open_leads} / {rep.max_open_leads}"


admin.site.unregister(Rep)
admin.site.register(Rep, RepAdmin)


def _membership_label(record: Any, labels: dict[tuple[type[Model], Any], str]) -> str:
    return "member " + labels.get((Rep, record.rep_id), f"rep #{record.rep_id}")


# The change log lists rules, queues and memberships beside the rest of the coverage model; memberships are
# edited on their queue's page, so they are listed under it.
COVERAGE_MODELS.extend(model for model in (Rule, Queue, QueueMembership) if model not in COVERAGE_MODELS)
change_log_inline(QueueMembership, parent="queue", label=_membership_label)
# Conditions read as words in the change log, as in the rule list.
change_log_display(Rule, "condition", summarize_stored)
change_log_display(ScoringRule, "condition", summarize_stored)
