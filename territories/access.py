"""Who may see what, for people and teams: who is RevOps and which reps a user manages.

This is the lower half of the one access definition; ``routing.access`` builds the lead, queue and report
scopes on it (its docstring states every rule), and ``sla.selectors`` the escalation scope on those. It
imports no other app, so the coverage pages of this app can use it too.

- **RevOps** are active staff who hold the model permission ``routing.view_lead`` (the *RevOps* group of
  ``territories.roles`` grants it), and superusers. It is the same permission that opens every lead in
  admin, so admin and the pages agree on who sees everything. A regional RevOps user (staff with
  django-guardian grants on some territories, queues or rules, see ``territories.permissions``) holds no
  model permission: the grants work in admin only, and on the pages they are whatever else they are.
- **The reps a user manages**: the reps of the teams they manage (``Team.managers``) and the reps whose
  direct manager they are (``Rep.manager``). Both count, everywhere.
"""

from typing import Any

from django.db.models import Q, QuerySet

from territories.models import Rep, Team
from territories.roles import REVOPS_PERMISSION


def is_revops(user: Any) -> bool:
    """Whether ``user`` sees and acts on everything: a superuser, or active staff with ``REVOPS_PERMISSION``."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return bool(user.is_superuser or (user.is_staff and user.has_perm(REVOPS_PERMISSION)))


def managed_reps(*, user: Any) -> QuerySet[Rep]:
    """The reps ``user`` manages: of the teams they manage, and their direct reports. None for anyone else.

    Meant as a subquery (``owner__in=managed_reps(user=user).values("pk")``): it runs no query of its own.
    RevOps are not special here; callers give them everything before asking.
    """
    if user is None or not user.is_authenticated:
        return Rep.objects.none()
    return Rep.objects.filter(Q(team__managers=user) | Q(manager=user))


def managed_teams(*, user: Any) -> QuerySet[Team]:
    """The teams ``user`` acts on as a manager: every team for RevOps, else the teams they manage."""
    if is_revops(user):
        return Team.objects.order_by("name")
    if user is None or not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(managers=user).order_by("name")
