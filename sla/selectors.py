"""Reads for the SLA pages: which escalations a user may see or handle, the filter options they may pick from, and
what the lead page shows of a lead's clock and history.

Escalations follow their lead (``routing.access``): whoever sees the lead now sees its escalations, and its
managers (of its owner, or deputies of its queue) and RevOps handle them. A rep who no longer owns the lead,
or a manager alerted about a rep who no longer holds it, sees neither.
"""

from typing import Any

from django.db.models import Count, Q, QuerySet

from routing.access import is_revops, lead_scope, managed_lead_scope
from routing.models import Assignment, Lead, Queue
from sla.models import Escalation, LeadSla, Touch
from territories.access import managed_reps
from territories.models import Team


def escalations_for_user(*, user: Any) -> QuerySet[Escalation]:
    """The escalations of the leads ``user`` sees, newest first, with what the page shows about each."""
    return (
        Escalation.objects.select_related(
            "lead__sla",
            "lead__queue",
            "lead__owner__user",
            "step",
            "rep__user",
            "to_rep__user",
            "to_queue",
            "handled_by",
        )
        .filter(lead_scope(user, "lead__"))
        .order_by("-fired_at", "-pk")
    )


def escalation_status_counts(*, escalations: QuerySet[Escalation]) -> dict[str, int]:
    """How many of ``escalations`` (a user's, from ``escalations_for_user``, maybe filtered) are in each status,
    every status present (zero when none): one grouped query."""
    counts = dict.fromkeys(Escalation.Status.values, 0)
    for row in escalations.order_by().values("status").annotate(count=Count("pk")):
        counts[row["status"]] = row["count"]
    return counts


def escalation_for_handling(*, user: Any, escalation_id: int) -> tuple[Escalation | None, bool]:
    """The escalation if ``user`` may see it (else None), and whether they may acknowledge or resolve it:
    RevOps and the lead's managers may; its owner sees it read-only."""
    escalation = escalations_for_user(user=user).filter(pk=escalation_id).first()
    if escalation is None:
        return None, False
    return escalation, bool(escalation_ids_user_may_handle(user=user, escalation_ids=[escalation.pk]))


def escalation_ids_user_may_handle(*, user: Any, escalation_ids: list[int]) -> set[int]:
    """Which of these escalations ``user`` may acknowledge or resolve (one query; none for a rep)."""
    if is_revops(user):
        return set(escalation_ids)
    if not user.is_authenticated:
        return set()
    handled = Escalation.objects.filter(managed_lead_scope(user, "lead__"), pk__in=escalation_ids)
    return set(handled.values_list("pk", flat=True))


def escalation_teams_for_user(*, user: Any) -> QuerySet[Team]:
    """The teams a user may filter escalations by: all for RevOps, else the teams they manage, the teams of the
    reps they manage, and their own."""
    if is_revops(user):
        return Team.objects.order_by("name")
    if not user.is_authenticated:
        return Team.objects.none()
    return (
        Team.objects.filter(Q(managers=user) | Q(reps__in=managed_reps(user=user).values("pk")) | Q(reps__user=user))
        .distinct()
        .order_by("name")
    )


def escalation_queues_for_user(*, user: Any) -> QuerySet[Queue]:
    """The queues a user may filter escalations by: all for RevOps, else the queues of the leads they see."""
    if is_revops(user):
        return Queue.objects.order_by("name")
    lead_queues = escalations_for_user(user=user).filter(lead__queue__isnull=False).values("lead__queue_id")
    return Queue.objects.filter(pk__in=lead_queues).order_by("name")


def lead_history(*, lead: Lead) -> dict[str, Any]:
    """What the lead's page shows beyond the lead row: its clock, assignments, touches and escalations."""
    return {
        "lead_sla": LeadSla.objects.select_related("policy", "calendar")
        .prefetch_related("policy__steps", "calendar__hours", "calendar__closed_dates")
        .filter(lead=lead)
        .first(),
        "assignments": list(
            Assignment.objects.select_related("rep__user", "queue", "assigned_by")
            .filter(lead=lead)
            .order_by("-assigned_at", "-pk")
        ),
        "touches": list(Touch.objects.select_related("by").filter(lead=lead).order_by("-at", "-pk")),
        "escalations": list(
            Escalation.objects.select_related("step", "rep__user", "to_rep__user", "to_queue")
            .filter(lead=lead)
            .order_by("-fired_at", "-pk")
        ),
    }
