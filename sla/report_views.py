"""The reports page: speed-to-lead, SLA adherence, workload across a queue's reps and conversion by rule, each
table also as CSV.

Here rather than beside the routing health page (``routing.report_views``) because it shows the SLA figures of
``sla.reports``; the routing figures come from ``routing.reports``. Only RevOps and people who manage may see it;
anyone else gets a 404. For RevOps each row opens the leads behind it in the admin's lead list.
"""

import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from routing import access, charts, reports
from routing.models import Lead
from routing.pages import duration_label, shell
from routing.report_views import check_report_access
from sla import reports as sla_reports
from sla.forms import ReportPeriodForm
from territories.export_formats import escape_formula


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def _duration(seconds: float | None) -> str:
    return "—" if seconds is None else duration_label(seconds)


@dataclass
class Report:
    """Everything the page and the CSV downloads show, read once per request."""

    period: reports.Period
    speed: sla_reports.SpeedReport
    adherence: sla_reports.AdherenceReport
    adherence_reps: list[sla_reports.AdherenceRow]
    adherence_teams: list[sla_reports.AdherenceRow]
    workload: reports.WorkloadReport | None
    conversion: list[reports.ConversionRow]


def _period(request: HttpRequest) -> tuple[reports.Period, ReportPeriodForm]:
    form = ReportPeriodForm(request.GET)
    first = last = None
    if form.is_valid():
        first, last = form.cleaned_data.get("start"), form.cleaned_data.get("end")
    return reports.period_for(request.GET.get("days"), first=first, last=last), form


def _queue_id(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _report(request: HttpRequest, period: reports.Period) -> Report:
    user = request.user
    adherence_reps, adherence_teams = sla_reports.sla_adherence_by_owner(user=user, period=period)
    return Report(
        period=period,
        speed=sla_reports.speed_to_lead(user=user, period=period),
        adherence=sla_reports.sla_adherence(user=user, period=period),
        adherence_reps=adherence_reps,
        adherence_teams=adherence_teams,
        workload=reports.queue_workload(user=user, queue_id=_queue_id(request.GET.get("queue")), period=period),
        conversion=reports.conversion_by_rule(user=user, period=period),
    )


# -- The leads behind a row -----------------------------------------------------------------------------------------


class LeadLinks:
    """Links from a report row to the admin's lead list, filtered to the leads the row counts (routed in the
    period, or on the row's day). Only for RevOps, who work in the admin; everyone else gets empty links."""

    def __init__(self, *, user: Any, period: reports.Period) -> None:
        self.enabled = access.is_revops(user)
        self.period = period

    def _url(self, params: dict[str, Any], *, start: datetime | None = None, end: datetime | None = None) -> str:
        if not self.enabled:
            return ""
        dates = {
            "routed_at__gte": (start or self.period.start).isoformat(),
            "routed_at__lt": (end or self.period.end).isoformat(),
        }
        return reverse("admin:routing_lead_changelist") + "?" + urlencode({**params, **dates})

    def day(self, index: int) -> str:
        start = self.period.start + timedelta(days=index)
        return self._url({}, start=start, end=start + timedelta(days=1))

    def source(self, source: str) -> str:
        return self._url({"source__exact": "" if source == "(no source)" else source})

    def rule(self, rule_id: int | None) -> str:
        return self._url({"rule__id__exact": rule_id}) if rule_id is not None else ""

    def rep(self, rep_id: int | None) -> str:
        return self._url({"owner__id__exact": rep_id}) if rep_id is not None else ""

    def team(self, team_id: int | None) -> str:
        return self._url({"owner__team__id__exact": team_id}) if team_id is not None else ""

    def open_leads(self, queue_id: int, rep_id: int) -> str:
        if not self.enabled:
            return ""
        params = {"queue__id__exact": queue_id, "owner__id__exact": rep_id, "status__in": ",".join(Lead.OPEN_STATUSES)}
        return reverse("admin:routing_lead_changelist") + "?" + urlencode(params)


def _speed_rows(rows: list[sla_reports.SpeedRow], links: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "label": row.label,
            "count": row.count,
            "wall_p50": _duration(row.wall_p50),
            "wall_p90": _duration(row.wall_p90),
            "business_p50": _duration(row.business_p50),
            "business_p90": _duration(row.business_p90),
            "url": link,
        }
        for row, link in zip(rows, links, strict=True)
    ]


def _speed_chart(report: Report, clock: str) -> Any:
    """Median and p90 per day on a logarithmic time axis: minutes and days on one chart, both readable."""
    median = [getattr(row, f"{clock}_p50") for row in report.speed.by_day]
    p90 = [getattr(row, f"{clock}_p90") for row in report.speed.by_day]
    name = "wall clock" if clock == "wall" else "business hours"
    return charts.line_chart(
        report.period.labels,
        [(f"Median, {name}", median), (f"p90, {name}", p90)],
        title=f"Speed-to-lead per day, {name}",
        ticks=charts.duration_ticks([*median, *p90]),
        log=True,
        value_label=duration_label,
    )


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:g} %"


@require_GET
@login_required
def reports_page(request: HttpRequest) -> HttpResponse:
    """Speed-to-lead, SLA adherence (per day, rep and team), workload across a queue's reps and conversion by
    rule, each with a chart on a readable scale, a table and a CSV download."""
    check_report_access(request)
    period, period_form = _period(request)
    report = _report(request, period)
    links = LeadLinks(user=request.user, period=period)
    speed, adherence, workload, conversion = report.speed, report.adherence, report.workload, report.conversion

    adherence_links = [links.day(index) for index in range(len(adherence.by_day))]
    rep_links = [links.rep(row.key) for row in report.adherence_reps]
    team_links = [links.team(row.key) for row in report.adherence_teams]
    workload_links = [links.open_leads(workload.queue.pk, row.rep.pk) for row in workload.rows] if workload else []
    conversion_links = [links.rule(row.rule_id) for row in conversion]
    query = request.GET.copy()
    query.pop("table", None)
    return render(
        request,
        "routing/reports/reports.html",
        {
            "period": period,
            "period_form": period_form,
            "custom_period": bool(period_form.is_valid() and period_form.cleaned_data.get("start")),
            "period_choices": reports.PERIOD_CHOICES,
            "query": query.urlencode(),
            "speed": speed,
            "speed_overall": _speed_rows([speed.overall], [""])[0],
            "speed_by_day": _speed_rows(speed.by_day, [links.day(index) for index in range(len(speed.by_day))]),
            "speed_by_segment": _speed_rows(speed.by_segment, [links.source(row.label) for row in speed.by_segment]),
            "speed_by_rule": _speed_rows(
                speed.by_rule, [links.rule(speed.rule_ids.get(row.label)) for row in speed.by_rule]
            ),
            "speed_wall_chart": _speed_chart(report, "wall"),
            "speed_business_chart": _speed_chart(report, "business"),
            "adherence": adherence,
            "adherence_days": list(zip(adherence.by_day, adherence_links, strict=True)),
            "adherence_chart": charts.bar_chart(
                [(label, row.percent_met or 0.0) for label, row in zip(period.labels, adherence.by_day, strict=True)],
                title="First-touch SLA met per day",
                unit="% met",
                fixed_top=100,
                links=adherence_links,
            ),
            "adherence_reps": list(zip(report.adherence_reps, rep_links, strict=True)),
            "adherence_teams": list(zip(report.adherence_teams, team_links, strict=True)),
            "adherence_rep_chart": charts.hbar_chart(
                [(row.label, row.percent_met or 0.0) for row in report.adherence_reps],
                title="First-touch SLA met per rep",
                unit="% met",
                fixed_top=100,
                value_labels=[_percent(row.percent_met) for row in report.adherence_reps],
                links=rep_links,
            )
            if report.adherence_reps
            else None,
            "queues": list(access.report_queues(user=request.user)),
            "workload": workload,
            "workload_rows": list(zip(workload.rows, workload_links, strict=True)) if workload else [],
            "workload_chart": charts.hbar_chart(
                [(row.rep.username, row.open_leads) for row in workload.rows],
                title=f"Open leads per rep in {workload.queue}",
                unit="open leads",
                links=workload_links,
            )
            if workload and workload.rows
            else None,
            "conversion": list(zip(conversion, conversion_links, strict=True)),
            "conversion_chart": charts.hbar_chart(
                [(row.rule, row.percent_reached or 0.0) for row in conversion],
                title="Routed leads reaching a rep per rule",
                unit="% reached",
                fixed_top=100,
                value_labels=[_percent(row.percent_reached) for row in conversion],
                links=conversion_links,
            )
            if conversion
            else None,
            "csv_tables": CSV_TABLES,
            **shell(request, current="reports"),
        },
    )


# -- CSV downloads --------------------------------------------------------------------------------------------------

SPEED_HEADERS = [
    "touched_leads",
    "median_wall_minutes",
    "p90_wall_minutes",
    "median_business_minutes",
    "p90_business_minutes",
]
ADHERENCE_HEADERS = ["met", "touched_late", "breached_untouched", "percent_met"]


def _speed_csv(heading: str, rows: list[sla_reports.SpeedRow]) -> tuple[list[str], list[list[Any]]]:
    return [heading, *SPEED_HEADERS], [
        [
            row.label,
            row.count,
            _minutes(row.wall_p50),
            _minutes(row.wall_p90),
            _minutes(row.business_p50),
            _minutes(row.business_p90),
        ]
        for row in rows
    ]


def _adherence_csv(heading: str, rows: list[sla_reports.AdherenceRow]) -> tuple[list[str], list[list[Any]]]:
    return [heading, *ADHERENCE_HEADERS], [
        [row.label, row.met, row.missed, row.breached, row.percent_met] for row in rows
    ]


def _workload_csv(report: Report) -> tuple[list[str], list[list[Any]]]:
    rows = report.workload.rows if report.workload else []
    queue = report.workload.queue.name if report.workload else ""
    return ["queue", "rep", "taking_leads", "weight", "open_leads", "new_leads_in_period"], [
        [queue, row.rep.username, "yes" if row.active else "no", row.weight, row.open_leads, row.new_leads]
        for row in rows
    ]


def _conversion_csv(report: Report) -> tuple[list[str], list[list[Any]]]:
    return ["rule", "routed", "accepted_or_working", "touched", "reached_a_rep", "percent_reached", "won"], [
        [row.rule, row.routed, row.accepted, row.touched, row.reached, row.percent_reached, row.won]
        for row in report.conversion
    ]


# Each table of the page by the name its download carries: (title, the table's header and rows).
CSV_TABLES: dict[str, tuple[str, Callable[[Report], tuple[list[str], list[list[Any]]]]]] = {
    "speed-by-day": ("Speed-to-lead by day", lambda report: _speed_csv("day", report.speed.by_day)),
    "speed-by-source": ("Speed-to-lead by source", lambda report: _speed_csv("source", report.speed.by_segment)),
    "speed-by-rule": ("Speed-to-lead by rule", lambda report: _speed_csv("rule", report.speed.by_rule)),
    "sla-by-day": ("SLA adherence by day", lambda report: _adherence_csv("day", report.adherence.by_day)),
    "sla-by-rep": ("SLA adherence by rep", lambda report: _adherence_csv("rep", report.adherence_reps)),
    "sla-by-team": ("SLA adherence by team", lambda report: _adherence_csv("team", report.adherence_teams)),
    "workload": ("Workload per rep", _workload_csv),
    "conversion": ("Conversion by rule", _conversion_csv),
}


@require_GET
@login_required
def report_csv(request: HttpRequest, table: str) -> HttpResponse:
    """One table of the reports page as CSV, for the same period and queue as the page; a cell a spreadsheet
    would run as a formula is written as text."""
    check_report_access(request)
    if table not in CSV_TABLES:
        raise Http404("No such table.")
    period, _ = _period(request)
    headers, rows = CSV_TABLES[table][1](_report(request, period))
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{table}-{period.first_day:%Y%m%d}-{period.day_list[-1]:%Y%m%d}.csv"'
    )
    writer = csv.writer(response)
    writer.writerow(headers)
    for row in rows:
        writer.writerow(["" if value is None else escape_formula(value) for value in row])
    return response
