"""The rep's actions: take next from a shared queue, and the lead's status (accept, disqualify, nurture,
convert, reopen, not mine); and website forms posting leads (``routing.form_posts``). The pages the rep's
actions start from (my leads, the lead page) are in ``sla.urls_pages``. Included by the project at the root."""

from django.urls import path

from routing import form_posts, views

urlpatterns = [
    path("queues/<int:queue_id>/take-next/", views.take_next, name="take-next"),
    path("leads/<int:lead_id>/accept/", views.lead_accept_view, name="lead-accept"),
    path("leads/<int:lead_id>/disqualify/", views.lead_disqualify_view, name="lead-disqualify"),
    path("leads/<int:lead_id>/nurture/", views.lead_nurture_view, name="lead-nurture"),
    path("leads/<int:lead_id>/convert/", views.lead_convert_view, name="lead-convert"),
    path("leads/<int:lead_id>/reopen/", views.lead_reopen_view, name="lead-reopen"),
    path("leads/<int:lead_id>/not-mine/", views.lead_not_mine_view, name="lead-not-mine"),
    # A website form's post, CSRF-exempt (routing.form_posts).
    path("forms/<str:token>/", form_posts.form_post, name="form-post"),
]
