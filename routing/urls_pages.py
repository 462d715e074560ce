"""The rep's pages: my leads, take next from a shared queue, the lead page and its actions.
Included by the project at the root."""

from django.urls import path

from routing import views

urlpatterns = [
    path("leads/", views.my_leads, name="my-leads"),
    path("queues/<int:queue_id>/take-next/", views.take_next, name="take-next"),
    path("leads/<int:lead_id>/", views.lead_page, name="lead-page"),
    path("leads/<int:lead_id>/accept/", views.lead_accept_view, name="lead-accept"),
    path("leads/<int:lead_id>/touch/", views.lead_touch_view, name="lead-touch"),
    path("leads/<int:lead_id>/disqualify/", views.lead_disqualify_view, name="lead-disqualify"),
    path("leads/<int:lead_id>/nurture/", views.lead_nurture_view, name="lead-nurture"),
    path("leads/<int:lead_id>/not-mine/", views.lead_not_mine_view, name="lead-not-mine"),
]
