from django.urls import path

from routing.api import LeadIntakeView, SimulateView

urlpatterns = [
    path("leads/", LeadIntakeView.as_view(), name="lead-intake"),
    path("routing/simulate/", SimulateView.as_view(), name="routing-simulate"),
]
