"""The project's own pages, which combine the three apps: the manager's team board shows reps (territories), their
load, open leads and queue deputies (routing) and each lead's first-touch clock (sla).

The actions the board posts to (reassign, out of office, departure, deputies) need only routing and territories
and live in ``routing.team_views``. Each view checks access, calls a selector and renders.
"""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from leadrouter import selectors
from routing.access import delegable_queues, roles_of
from routing.pages import duration_label, shell
from routing.services import queue_deputies
from routing.team_views import AGING_CHOICES, DEFAULT_AGING
from sla.views import sla_view


@require_GET
@login_required
def team_board(request: HttpRequest) -> HttpResponse:
    """Each rep in scope with load, caps and availability; the team's aging leads with a reassign form."""
    roles = roles_of(request.user)
    if not (roles.is_revops or roles.manages):
        raise Http404("You manage no team.")
    aging = request.GET.get("aging", DEFAULT_AGING)
    if aging not in dict(AGING_CHOICES):
        aging = DEFAULT_AGING
    now = timezone.now()
    older_than = None if aging == "all" else timedelta(hours=int(aging))
    # The "aging" count follows the chosen age, or the default one when every open lead is listed.
    aging_hours = int(DEFAULT_AGING if aging == "all" else aging)
    board = selectors.team_board(
        user=request.user, now=now, older_than=older_than, aging_after=timedelta(hours=aging_hours)
    )
    queues = list(delegable_queues(user=request.user))
    return render(
        request,
        "territories/pages/team_board.html",
        {
            "board": board,
            "aging": aging,
            "aging_choices": AGING_CHOICES,
            "aging_hours": aging_hours,
            "aging_label": f"{aging_hours} h" if aging_hours < 48 else f"{aging_hours // 24} days",
            "lead_rows": [
                {
                    "item": item,
                    "age": duration_label(item.age.total_seconds()),
                    "sla": sla_view(item.lead_sla, now=now),
                }
                for item in board.leads
            ],
            "delegations": [{"queue": queue, "deputies": queue_deputies(queue=queue)} for queue in queues],
            "deputy_choices": [rep.user for rep in board.targets],
            **shell(request, current="team"),
        },
    )
