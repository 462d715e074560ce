"""The server-rendered pages of reps and managers, and the login they share. Included by the project at the root."""

from django.contrib.auth import views as auth_views
from django.urls import path

from sla import lead_views, report_views, views

urlpatterns = [
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("leads/", lead_views.my_leads, name="my-leads"),
    path("leads/<int:lead_id>/", lead_views.lead_page, name="lead-page"),
    path("leads/<int:lead_id>/touch/", lead_views.lead_touch_view, name="lead-touch"),
    path("escalations/", views.escalation_list, name="escalations"),
    path("escalations/handle/", views.escalations_bulk, name="escalations-bulk"),
    path("escalations/<int:escalation_id>/acknowledge/", views.escalation_acknowledge, name="escalation-acknowledge"),
    path("escalations/<int:escalation_id>/resolve/", views.escalation_resolve, name="escalation-resolve"),
    path("reports/", report_views.reports_page, name="reports"),
    path("reports/<slug:table>.csv", report_views.report_csv, name="report-csv"),
]
