"""The routing health page, for RevOps and team managers (the reports page is in ``sla.urls_pages``)."""

from django.urls import URLPattern, path

from routing import report_views

urlpatterns: list[URLPattern] = [
    path("health/", report_views.routing_health, name="routing-health"),
    path(
        "health/notifications/<int:notification_id>/resend/",
        report_views.notification_resend,
        name="notification-resend",
    ),
]
