"""The reports page: speed-to-lead, SLA adherence, workload across a queue's reps and conversion by rule.

Here rather than beside the routing health page (``routing.report_views``) because it shows the SLA figures of
``sla.reports``; the routing figures come from ``routing.reports``. Only RevOps and people who manage may see it;
anyone else gets a 404.
"""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from routing import access, charts, reports
from routing.pages import duration_label, shell
from routing.report_views import check_report_access
from sla import reports as sla_reports


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def _duration(seconds: float | None) -> str:
    return "—" if seconds is None else duration_label(seconds)


def _speed_table(rows: list[sla_reports.SpeedRow]) -> list[dict[str, Any]]:
    return [
        {
            "label": row.label,
            "count": row.count,
            "wall_p50": _duration(row.wall_p50),
            "wall_p90": _duration(row.wall_p90),
            "business_p50": _duration(row.business_p50),
            "business_p90": _duration(row.business_p90),
        }
        for row in rows
    ]


def _queue_id(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@require_GET
@login_required
def reports_page(request: HttpRequest) -> HttpResponse:
    """Speed-to-lead, SLA adherence, workload across a queue's reps and conversion by rule."""
    check_report_access(request)
    user = request.user
    period = reports.period_for(request.GET.get("days"))
    speed = sla_reports.speed_to_lead(user=user, period=period)
    adherence = sla_reports.sla_adherence(user=user, period=period)
    workload = reports.queue_workload(user=user, queue_id=_queue_id(request.GET.get("queue")), period=period)
    conversion = reports.conversion_by_rule(user=user, period=period)

    speed_chart = charts.line_chart(
        period.labels,
        [
            ("Median, wall clock", [_minutes(row.wall_p50) for row in speed.by_day]),
            ("p90, wall clock", [_minutes(row.wall_p90) for row in speed.by_day]),
            ("Median, business", [_minutes(row.business_p50) for row in speed.by_day]),
        ],
        title="Speed-to-lead per day",
        unit="minutes",
    )
    adherence_chart = charts.bar_chart(
        [(label, row.percent_met or 0.0) for label, row in zip(period.labels, adherence.by_day, strict=True)],
        title="First-touch SLA met per day",
        unit="%",
    )
    workload_chart = (
        charts.bar_chart(
            [(row.rep.username, row.open_leads) for row in workload.rows],
            title=f"Open leads per rep in {workload.queue}",
            unit="leads",
        )
        if workload
        else None
    )
    conversion_chart = charts.bar_chart(
        [(row.rule, row.percent_reached or 0.0) for row in conversion],
        title="Routed leads reaching a rep per rule",
        unit="%",
    )
    return render(
        request,
        "routing/reports/reports.html",
        {
            "period": period,
            "period_choices": reports.PERIOD_CHOICES,
            "speed": speed,
            "speed_overall": _speed_table([speed.overall])[0],
            "speed_by_day": _speed_table(speed.by_day),
            "speed_by_segment": _speed_table(speed.by_segment),
            "speed_by_rule": _speed_table(speed.by_rule),
            "speed_chart": speed_chart,
            "adherence": adherence,
            "adherence_chart": adherence_chart,
            "queues": list(access.report_queues(user=user)),
            "workload": workload,
            "workload_chart": workload_chart,
            "conversion": conversion,
            "conversion_chart": conversion_chart,
            **shell(request, current="reports"),
        },
    )
