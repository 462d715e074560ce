"""The manager's actions from the team board: reassignment, out of office, departures and deputies. Included at the
site root; the board itself (``team/``) is routed by the project, ``leadrouter.urls``."""

from django.urls import path

from routing import team_views

urlpatterns = [
    path("team/reassign/", team_views.team_reassign, name="team-reassign"),
    path("team/reps/<int:rep_id>/out-of-office/", team_views.rep_out_of_office, name="rep-out-of-office"),
    path("team/reps/<int:rep_id>/departure/", team_views.rep_departure, name="rep-departure"),
    path("team/queues/<int:queue_id>/deputies/", team_views.queue_deputy_add, name="queue-deputy-add"),
    path(
        "team/queues/<int:queue_id>/deputies/<int:user_id>/remove/",
        team_views.queue_deputy_remove,
        name="queue-deputy-remove",
    ),
]
