"""The manager's pages: team board, reassignment, out of office and departures. Included at the site root."""

from django.urls import path

from territories import views

urlpatterns = [
    path("team/", views.team_board, name="team-board"),
    path("team/reassign/", views.team_reassign, name="team-reassign"),
    path("team/reps/<int:rep_id>/out-of-office/", views.rep_out_of_office, name="rep-out-of-office"),
    path("team/reps/<int:rep_id>/departure/", views.rep_departure, name="rep-departure"),
    path("team/queues/<int:queue_id>/deputies/", views.queue_deputy_add, name="queue-deputy-add"),
    path(
        "team/queues/<int:queue_id>/deputies/<int:user_id>/remove/",
        views.queue_deputy_remove,
        name="queue-deputy-remove",
    ),
]
