"""SLA endpoints, included by the project under ``api/v1/``."""

from django.urls import path

from sla.api import TouchCreateView

urlpatterns = [
    path("leads/<int:lead_id>/touches/", TouchCreateView.as_view(), name="lead-touches"),
]
