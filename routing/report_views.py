"""The routing health page: check access, call the selectors in ``routing.reports``, render. The reports page,
which adds the SLA figures, is ``sla.report_views``.

Only RevOps and people who manage (``routing.access.may_see_reports``) may see it; anyone else gets a 404, so
the page does not even admit it exists.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from routing import access, charts, reports
from routing.notify import notifications_resend
from routing.pages import shell


def check_report_access(request: HttpRequest) -> None:
    """A 404 for anyone who may not see the reports (``routing.access.may_see_reports``)."""
    if not access.may_see_reports(user=request.user):
        raise Http404("No such page.")


@require_GET
@login_required
def routing_health(request: HttpRequest) -> HttpResponse:
    """The exceptions to audit, per day over the period, each with a sparkline and its latest rows."""
    check_report_access(request)
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
    check_report_access(request)
    notification = reports.undelivered_notifications(user=request.user).filter(pk=notification_id).first()
    if notification is None:
        raise Http404("No such notification.")
    if notifications_resend(notification_ids=[notification.pk], by=request.user):
        messages.success(request, f"Resending the {notification.get_kind_display()} notice about {notification.lead}.")
    else:
        messages.info(request, "Nothing to resend: it is already on its way.")
    return HttpResponseRedirect(reverse("routing-health") + "#notifications")
