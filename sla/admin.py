"""The SLA admin: RevOps maintain business calendars and SLA policies; clocks, touches and escalations are read-only,
and the lead admin shows each lead's clock and escalations.

Calendars and policies are coverage models like territories and rules: each keeps its change history and shows
on the coverage change log. The coverage document (``manage.py coverage``) edits the same rows.
"""

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html_join

from routing import admin as routing_admin
from routing.conditions import summarize_stored
from routing.models import Lead
from sla.calendar import CalendarSpec, WeeklyWindow
from sla.models import (
    WEEKDAYS,
    BusinessCalendar,
    CalendarHours,
    ClosedDate,
    Escalation,
    EscalationStep,
    LeadSla,
    SlaPolicy,
    Touch,
)
from sla.services import sla_state
from territories.admin import COVERAGE_MODELS, CoverageAdmin, ReadOnlyAdminMixin
from territories.forms import WorkingHoursFormSet

DAY_NAMES = [name[:3] for _number, name in WEEKDAYS]

# The change log lists the SLA models beside the rest of the coverage model (the list is read per request).
COVERAGE_MODELS.extend(model for model in (BusinessCalendar, SlaPolicy) if model not in COVERAGE_MODELS)


def weekly_summary(windows: list[tuple[int, str]]) -> str:
    """``[(0, "09:00–18:00"), …, (4, "09:00–18:00")]`` → ``Mon–Fri 09:00–18:00``; days with the same hours join."""
    if not windows:
        return "Around the clock"
    by_hours: dict[str, list[int]] = {}
    for weekday, hours in sorted(windows):
        by_hours.setdefault(hours, []).append(weekday)
    parts = []
    for hours, days in sorted(by_hours.items(), key=lambda item: (item[1][0], item[0])):
        runs: list[list[int]] = []
        for day in days:
            if runs and runs[-1][-1] == day - 1:
                runs[-1].append(day)
            else:
                runs.append([day])
        names = ", ".join(
            DAY_NAMES[run[0]] if len(run) == 1 else f"{DAY_NAMES[run[0]]}–{DAY_NAMES[run[-1]]}" for run in runs
        )
        parts.append(f"{names} {hours}")
    return "; ".join(parts)


# --- Calendars ---------------------------------------------------------------------------------------------------


class BusinessCalendarForm(forms.ModelForm):
    class Meta:
        model = BusinessCalendar
        fields = ["name", "time_zone", "holiday_country", "holiday_subdivision", "rep", "team", "queue", "is_default"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        # Said on the field, so the page does not show the database constraint's name instead.
        owners = [name for name in ("rep", "team", "queue") if cleaned.get(name)]
        for name in owners[1:]:
            self.add_error(name, f"Clear this or the {owners[0]}: a calendar has one owner.")
        if cleaned.get("is_default"):
            other = BusinessCalendar.objects.filter(is_default=True).exclude(pk=self.instance.pk).first()
            if other is not None:
                self.add_error(
                    "is_default",
                    f"“{other}” is the default calendar already; untick it there first, only one can be the default.",
                )
        return cleaned


class CalendarHoursFormSet(WorkingHoursFormSet):
    """Refuses overlapping windows (as a rep's working hours do) and checks the week builds a calendar spec."""

    def clean(self) -> None:
        super().clean()
        windows = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or None in (data.get("weekday"), data.get("start"), data.get("end")):
                continue
            windows.append(WeeklyWindow(int(data["weekday"]), data["start"], data["end"]))
        try:
            # The zone and holidays are the calendar's own fields, checked (and reported) on the form above.
            CalendarSpec("UTC", tuple(windows))
        except ValueError as error:
            raise ValidationError(str(error)) from error


class CalendarHoursInline(admin.TabularInline):
    model = CalendarHours
    formset = CalendarHoursFormSet
    extra = 1
    fields = ["weekday", "start", "end"]


class ClosedDateInline(admin.TabularInline):
    model = ClosedDate
    extra = 0
    fields = ["date", "reason"]


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(CoverageAdmin):
    form = BusinessCalendarForm
    list_display = ["name", "owner", "time_zone", "holidays", "weekly_hours"]
    list_filter = ["is_default", "holiday_country"]
    search_fields = ["name", "team__name", "queue__name", "rep__user__username"]
    list_select_related = ["rep__user", "team", "queue"]
    autocomplete_fields = ["rep", "team", "queue"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "time_zone"]}),
        ("Public holidays", {"fields": ["holiday_country", "holiday_subdivision"]}),
        (
            "Whose calendar",
            {
                "fields": ["rep", "team", "queue", "is_default"],
                "description": "One rep, one team or one queue. For a lead the rep's calendar wins, then the "
                "team's, then the queue's, then the default one.",
            },
        ),
        ("Audit", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [CalendarHoursInline, ClosedDateInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BusinessCalendar]:
        return super().get_queryset(request).prefetch_related("hours")

    @admin.display(description="owner")
    def owner(self, calendar: BusinessCalendar) -> str:
        owners = [
            f"{label} {value}"
            for label, value in (("Rep", calendar.rep), ("Team", calendar.team), ("Queue", calendar.queue))
            if value is not None
        ]
        if calendar.is_default:
            owners.append("Default")
        return ", ".join(owners) or "—"

    @admin.display(description="holidays", ordering="holiday_country")
    def holidays(self, calendar: BusinessCalendar) -> str:
        return "-".join(code for code in (calendar.holiday_country, calendar.holiday_subdivision) if code) or "—"

    @admin.display(description="opening hours")
    def weekly_hours(self, calendar: BusinessCalendar) -> str:
        return weekly_summary([(row.weekday, f"{row.start:%H:%M}–{row.end:%H:%M}") for row in calendar.hours.all()])


# --- SLA policies ------------------------------------------------------------------------------------------------


class SlaPolicyForm(forms.ModelForm):
    class Meta:
        model = SlaPolicy
        fields = [
            "name",
            "description",
            "position",
            "active",
            "is_default",
            "condition",
            "territory",
            "queue",
            "no_sla",
            "first_touch_minutes",
            "max_reassignments",
            "notify_outside_business_hours",
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("is_default"):
            other = SlaPolicy.objects.filter(is_default=True).exclude(pk=self.instance.pk).first()
            if other is not None:
                self.add_error(
                    "is_default",
                    f"“{other}” is the default policy already; untick it there first, only one policy can apply "
                    "when no other matches.",
                )
        return cleaned


class EscalationStepInline(admin.TabularInline):
    model = EscalationStep
    extra = 0
    fields = ["position", "when", "percent", "minutes_after_due", "action", "queue"]
    autocomplete_fields = ["queue"]
    ordering = ["position"]


@admin.register(SlaPolicy)
class SlaPolicyAdmin(CoverageAdmin):
    """First-touch targets: policies are tried by position, the first that matches applies, else the default."""

    form = SlaPolicyForm
    list_display = ["position", "name", "active", "is_default", "when", "target", "ladder"]
    list_display_links = ["name"]
    list_filter = ["active", "is_default", "no_sla"]
    search_fields = ["name", "description"]
    list_select_related = ["territory", "queue"]
    autocomplete_fields = ["territory", "queue"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "description", "position", "active", "is_default"]}),
        ("Which leads", {"fields": ["condition", "territory", "queue"]}),
        (
            "Target",
            {"fields": ["no_sla", "first_touch_minutes", "max_reassignments", "notify_outside_business_hours"]},
        ),
        ("Audit", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [EscalationStepInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SlaPolicy]:
        return super().get_queryset(request).prefetch_related("steps")

    @admin.display(description="when")
    def when(self, policy: SlaPolicy) -> str:
        return summarize_stored(policy.condition)

    @admin.display(description="target", ordering="first_touch_minutes")
    def target(self, policy: SlaPolicy) -> str:
        if policy.no_sla:
            return "No SLA"
        return f"{policy.first_touch_minutes} business min"

    @admin.display(description="ladder")
    def ladder(self, policy: SlaPolicy) -> str:
        return "; ".join(str(step) for step in policy.steps.all()) or "—"


# --- Clocks, touches and escalations (written by the system) -----------------------------------------------------


@admin.register(LeadSla)
class LeadSlaAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each lead's first-touch clock. Written by routing, the sweep and touches."""

    list_display = ["lead", "policy", "state", "started_at", "due_at", "touched_at", "next_step_at", "reassignments"]
    list_filter = ["state", "policy"]
    search_fields = ["lead__email"]
    list_select_related = ["lead", "policy"]
    date_hierarchy = "started_at"


@admin.register(Touch)
class TouchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Touches logged by reps or posted by other systems."""

    list_display = ["lead", "kind", "at", "by", "intake_source", "created_at", "logged_late"]
    list_filter = ["kind", "logged_late"]
    search_fields = ["lead__email"]
    list_select_related = ["lead", "by", "intake_source"]
    date_hierarchy = "at"


@admin.register(Escalation)
class EscalationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Ladder steps that fired; filter by status to see the open ones."""

    list_display = ["fired_at", "lead", "action", "status", "rep", "to_rep", "to_queue", "notified"]
    list_filter = ["status", "action"]
    search_fields = ["lead__email"]
    list_select_related = ["lead", "rep__user", "to_rep__user", "to_queue", "notified"]
    date_hierarchy = "fired_at"


# --- Leads: their first-touch clock and escalations -------------------------------------------------------------


class EscalationInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Every escalation step that fired for the lead: part of its receipt."""

    model = Escalation
    extra = 0
    fields = ("fired_at", "action", "rep", "to_rep", "to_queue", "reason", "status", "handled_by", "comment")
    readonly_fields = fields
    ordering = ["fired_at"]
    verbose_name_plural = "escalations"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Escalation]:
        return super().get_queryset(request).select_related("rep__user", "to_rep__user", "to_queue", "handled_by")


class LeadAdmin(routing_admin.LeadAdmin):
    """Routing's lead admin with what the sla app knows of the lead: its first-touch clock (after the routing
    fields) and every escalation that fired for it (after the assignments). Registered in place of routing's."""

    inlines = [*routing_admin.LeadAdmin.inlines, EscalationInline]
    readonly_fields = ["sla_summary", *routing_admin.LeadAdmin.readonly_fields]
    fieldsets = [
        routing_admin.LeadAdmin.fieldsets[0],
        ("First-touch SLA", {"fields": ["sla_summary"]}),
        *routing_admin.LeadAdmin.fieldsets[1:],
    ]

    @admin.display(description="SLA")
    def sla_summary(self, lead: Lead) -> str:
        clock = LeadSla.objects.filter(lead=lead).select_related("policy").first()
        if clock is None:
            return "No first-touch clock: the lead has not been assigned to a rep."
        if clock.state == LeadSla.State.NONE:
            return f"No SLA ({clock.policy or 'no policy matched'})."
        now = timezone.now()
        lines = [
            f"Policy: {clock.policy or '—'}",
            f"State now: {LeadSla.State(sla_state(lead_sla=clock, now=now)).label}",
            f"Clock started {_local(clock.started_at)}, due {_local(clock.due_at)}"
            if clock.due_at
            else f"Clock started {_local(clock.started_at)}",
        ]
        if clock.touched_at:
            lines.append(f"First touch {_local(clock.touched_at)}")
        if clock.breach_business_seconds:
            lines.append(f"Late by {clock.breach_business_seconds // 60} business minutes")
        if clock.speed_wall_seconds is not None:
            lines.append(
                f"Speed to lead: {clock.speed_wall_seconds // 60} min wall time, "
                f"{(clock.speed_business_seconds or 0) // 60} business minutes"
            )
        if clock.reassignments:
            lines.append(f"Reassigned by the ladder {clock.reassignments} time(s)")
        return format_html_join("", "<div>{}</div>", ((line,) for line in lines))


admin.site.unregister(Lead)
admin.site.register(Lead, LeadAdmin)


def _local(moment: datetime) -> str:
    """A time in the zone the reader sees times in, labelled."""
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z}"
