from django.urls import path

from routing.api import LeadIntakeView, SimulateView
from routing.api_leads import LeadStatusView

urlpatterns = [
    path("leads/", LeadIntakeView.as_view(), name="lead-intake"),
    path("leads/<int:lead_id>/status/", LeadStatusView.as_view(), name="lead-status"),
    path("routing/simulate/", SimulateView.as_view(), name="routing-simulate"),
]
