from django.urls import path

from routing.api import LeadDetailView, LeadIntakeView, SimulateView

urlpatterns = [
    path("leads/", LeadIntakeView.as_view(), name="lead-intake"),
    path("leads/<int:lead_id>/", LeadDetailView.as_view(), name="lead-detail"),
    path("routing/simulate/", SimulateView.as_view(), name="routing-simulate"),
]
