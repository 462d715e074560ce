"""Writes behind the SLA pages: a manager acknowledges or resolves an escalation.

Kept apart from ``sla.services`` (the clock and the ladder) so the pages and the sweep do not share a file.
"""

from typing import Any

from django.db import transaction
from django.utils import timezone

from sla.models import Escalation

# Which status each handling may start from. Acknowledging twice or reopening a resolved escalation
# would overwrite who handled it, so both are refused.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    Escalation.Status.ACKNOWLEDGED: (Escalation.Status.OPEN,),
    Escalation.Status.RESOLVED: (Escalation.Status.OPEN, Escalation.Status.ACKNOWLEDGED),
}


class EscalationHandleError(Exception):
    """The escalation cannot be handled that way; the message says why, in words for the page."""


@transaction.atomic
def escalation_handle(*, escalation: Escalation, user: Any, status: str, comment: str) -> Escalation:
    """Acknowledge or resolve ``escalation`` as ``user``: records the status, who, when and the comment.

    The caller has checked that ``user`` may handle it. A resolution needs a comment. The update is
    conditional on the stored status, so two managers clicking at once cannot both win: the second gets
    ``EscalationHandleError``, as does resolving a resolved escalation. Writes one row; sends nothing.
    """
    if status not in ALLOWED_FROM:
        raise EscalationHandleError(f"Unknown status {status!r}.")
    comment = comment.strip()
    if status == Escalation.Status.RESOLVED and not comment:
        raise EscalationHandleError("Say how it was resolved: a comment is required.")
    now = timezone.now()
    updated = Escalation.objects.filter(pk=escalation.pk, status__in=ALLOWED_FROM[status]).update(
        status=status, handled_by=user, handled_at=now, comment=comment
    )
    if not updated:
        current = Escalation.objects.filter(pk=escalation.pk).values_list("status", flat=True).first()
        label = Escalation.Status(current).label.lower() if current else "gone"
        raise EscalationHandleError(f"This escalation is already {label}; nothing was changed.")
    escalation.refresh_from_db()
    return escalation


@transaction.atomic
def escalations_handle(*, escalation_ids: list[int], user: Any, status: str, comment: str) -> int:
    """Acknowledge or resolve many escalations at once as ``user``, with one comment; returns how many changed.

    The caller has checked that ``user`` may handle each of them. A resolution needs a comment. One conditional
    update: escalations already in the target status (or resolved) are left as they are and not counted.
    Writes the rows; sends nothing.
    """
    if status not in ALLOWED_FROM:
        raise EscalationHandleError(f"Unknown status {status!r}.")
    comment = comment.strip()
    if status == Escalation.Status.RESOLVED and not comment:
        raise EscalationHandleError("Say how they were resolved: a comment is required.")
    return Escalation.objects.filter(pk__in=escalation_ids, status__in=ALLOWED_FROM[status]).update(
        status=status, handled_by=user, handled_at=timezone.now(), comment=comment
    )
