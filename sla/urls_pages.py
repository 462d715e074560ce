"""The server-rendered pages of reps and managers, and the login they share. Included by the project at the root."""

from django.contrib.auth import views as auth_views
from django.urls import path

from sla import views

urlpatterns = [
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("escalations/", views.escalation_list, name="escalations"),
    path("escalations/<int:escalation_id>/acknowledge/", views.escalation_acknowledge, name="escalation-acknowledge"),
    path("escalations/<int:escalation_id>/resolve/", views.escalation_resolve, name="escalation-resolve"),
]
