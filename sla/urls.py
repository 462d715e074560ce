"""SLA endpoints, included by the project under ``api/v1/``: reading a lead (with its clock and escalations) and
logging a touch."""

from django.urls import path

from sla.api import LeadDetailView, TouchCreateView

urlpatterns = [
    path("leads/<int:lead_id>/", LeadDetailView.as_view(), name="lead-detail"),
    path("leads/<int:lead_id>/touches/", TouchCreateView.as_view(), name="lead-touches"),
]
