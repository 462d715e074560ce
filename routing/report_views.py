"""The routing health page and the reports: check access, call the selectors in ``routing.reports``, render.

Only RevOps and people who manage (``routing.access.may_see_reports``) may see them; anyone else gets a 404, so
the pages do not even admit they exist.
"""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from routing import access, charts, reports
from routing.notify import notifications_resend
from routing.pages import duration_label, shell


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def _duration(seconds: float | None) -> str:
    return "—" if seconds is None else duration_label(seconds)


def _check_access(request: HttpRequest) -> None:
    if not access.may_see_reports(user=request.user):
        raise Http404("No such page.")


@require_GET
@login_required
def routing_health(request: HttpRequest) -> HttpResponse:
    """The exceptions to audit, per day over the period, each with a sparkline and its latest rows."""
    _check_access(request)
    period = reports.period_for(request.GET.get("days"))
    sections = reports.routing_health(user=request.user, period=period)
    blocks = [
        {
            "section": section,
            "sparkline": charts.sparkline(section.daily, title=f"{section.title} per day"),
            "days": list(zip(period.labels, section.daily, strict=True)),
        }
        for section in sections
    ]
    return render(
        request,
        "routing/reports/health.html",
        {
            "period": period,
            "period_choices": reports.PERIOD_CHOICES,
            "blocks": blocks,
            **shell(request, current="routing-health"),
        },
    )


@require_POST
@login_required
def notification_resend(request: HttpRequest, notification_id: int) -> HttpResponse:
    """Send a notification whose delivery is unknown (or that failed for good) again, from the health page.
    Only a notice about a lead the user sees on that page; anything else is a 404."""
    _check_access(request)
    notification = reports.undelivered_notifications(user=request.user).filter(pk=notification_id).first()
    if notification is None:
        raise Http404("No such notification.")
    if notifications_resend(notification_ids=[notification.pk], by=request.user):
        messages.success(request, f"Resending the {notification.get_kind_display()} notice about {notification.lead}.")
    else:
        messages.info(request, "Nothing to resend: it is already on its way.")
    return HttpResponseRedirect(reverse("routing-health") + "#notifications")


def _speed_table(rows: list[reports.SpeedRow]) -> list[dict[str, Any]]:
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
    _check_access(request)
    user = request.user
    period = reports.period_for(request.GET.get("days"))
    speed = reports.speed_to_lead(user=user, period=period)
    adherence = reports.sla_adherence(user=user, period=period)
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
