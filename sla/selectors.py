"""Reads for the SLA pages: which escalations a user may see, and the filter options they may pick from."""

from typing import Any

from django.db.models import Q, QuerySet

from routing.models import Queue
from sla.models import Escalation
from territories.models import Rep, Team


def is_revops(user: Any) -> bool:
    """RevOps see every escalation: staff with the permission to view them, or a superuser."""
    return bool(
        user.is_authenticated and (user.is_superuser or (user.is_staff and user.has_perm("sla.view_escalation")))
    )


def _managed_reps(user: Any) -> QuerySet[Rep, Any]:
    """The reps a user manages: the reps of the teams they manage and their direct reports (ids, as a subquery)."""
    return Rep.objects.filter(Q(team__managers=user) | Q(manager=user)).values("pk")


def _manager_scope(user: Any) -> Q:
    # The rep who held the lead counts as well as its owner today, so a reassignment to another
    # team does not hide the escalation from the manager of the rep who let it age.
    managed = _managed_reps(user)
    from territories.selectors import delegated_queues

    deputy_for = delegated_queues(user=user).values("pk")
    return Q(lead__owner__in=managed) | Q(rep__in=managed) | Q(notified=user) | Q(lead__queue__in=deputy_for)


def _rep_scope(user: Any) -> Q:
    return Q(lead__owner__user=user)


def escalations_for_user(*, user: Any) -> QuerySet[Escalation]:
    """The escalations ``user`` may see, newest first, with what the page shows about each.

    RevOps see all; a manager those of leads owned by (or escalated from) the reps of the teams they
    manage or who report to them, and those they were notified of; a rep those on their own leads;
    anyone else none.
    """
    escalations = Escalation.objects.select_related(
        "lead__sla", "lead__queue", "lead__owner__user", "step", "rep__user", "to_rep__user", "to_queue", "handled_by"
    ).order_by("-fired_at", "-pk")
    if not user.is_authenticated:
        return escalations.none()
    if is_revops(user):
        return escalations
    return escalations.filter(_manager_scope(user) | _rep_scope(user))


def escalation_for_handling(*, user: Any, escalation_id: int) -> tuple[Escalation | None, bool]:
    """The escalation if ``user`` may see it (else None), and whether they may acknowledge or resolve it.

    RevOps and managers handle what they see; a rep sees the escalations on their own leads read-only.
    """
    escalation = escalations_for_user(user=user).filter(pk=escalation_id).first()
    if escalation is None:
        return None, False
    if is_revops(user):
        return escalation, True
    may_handle = Escalation.objects.filter(_manager_scope(user), pk=escalation.pk).exists()
    return escalation, may_handle


def escalation_teams_for_user(*, user: Any) -> QuerySet[Team]:
    """The teams a user may filter escalations by: all for RevOps, else the teams they manage or their reports
    (and their own) belong to."""
    if is_revops(user):
        return Team.objects.order_by("name")
    if not user.is_authenticated:
        return Team.objects.none()
    team_ids = Rep.objects.filter(Q(manager=user) | Q(user=user), team__isnull=False).values("team_id")
    return Team.objects.filter(Q(managers=user) | Q(pk__in=team_ids)).distinct().order_by("name")


def escalation_queues_for_user(*, user: Any) -> QuerySet[Queue]:
    """The queues a user may filter escalations by: all for RevOps, else the queues of the leads they see."""
    if is_revops(user):
        return Queue.objects.order_by("name")
    lead_queues = escalations_for_user(user=user).filter(lead__queue__isnull=False).values("lead__queue_id")
    return Queue.objects.filter(pk__in=lead_queues).order_by("name")


def escalation_ids_user_may_handle(*, user: Any, escalation_ids: list[int]) -> set[int]:
    """Which of these escalations ``user`` may acknowledge or resolve (one query; none for a rep)."""
    if is_revops(user):
        return set(escalation_ids)
    if not user.is_authenticated:
        return set()
    handled = Escalation.objects.filter(_manager_scope(user), pk__in=escalation_ids)
    return set(handled.values_list("pk", flat=True))


def user_manages_anyone(*, user: Any) -> bool:
    """Whether ``user`` manages a team or has direct reports: the page shell shows them the escalations link."""
    if not user.is_authenticated:
        return False
    from territories.selectors import delegated_queues

    return bool(user.managed_teams.exists() or user.direct_reports.exists() or delegated_queues(user=user).exists())
