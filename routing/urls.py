from django.urls import path

from routing.api import SimulateView

urlpatterns = [
    path("routing/simulate/", SimulateView.as_view(), name="routing-simulate"),
]
