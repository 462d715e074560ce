"""What the SLA app does when a lead gets a new owner or is closed: the ownership layer (routing/ownership.py)
calls ``clocks_on_new_owner`` and ``clocks_stop`` through the hooks this app registers at start-up, in the
same transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from routing.bulk import rows_update
from routing.models import Lead
from sla.models import Escalation, LeadSla
from sla.services import sla_clocks_start_due


def clocks_on_new_owner(
    *, leads: list[Lead], previous_owners: Mapping[int, int], now: dt.datetime, first: frozenset[int] = frozenset()
) -> dict[int, dt.datetime | None]:
    """Remember each changed lead's previous owner on its clock (SLA reassignment never hands a lead back to
    someone who had it), then start or restart the first-touch clock of each lead given to a rep (``first``:
    the ids of leads given an owner for the first time, which have no clock to look for). Returns each
    started clock's due time by lead id."""
    if previous_owners:
        clocks = list(LeadSla.objects.filter(lead_id__in=list(previous_owners)))
        changed = []
        for clock in clocks:
            owner_id = previous_owners[clock.lead_id]
            if owner_id not in clock.previous_owner_ids:
                clock.previous_owner_ids = [*clock.previous_owner_ids, owner_id]
                changed.append(clock)
        rows_update(LeadSla, changed, ["previous_owner_ids"])
    return sla_clocks_start_due(leads=leads, now=now, first=first)


def clocks_stop(*, lead_ids: list[int], by_id: int | None, comment: str, now: dt.datetime) -> None:
    """The leads were closed or handed back: each untouched clock stops (state ``stopped``, no further ladder
    step), so a closed lead never reads "breached" nor escalates again; a touched clock keeps its result.
    Every open or acknowledged escalation of the leads is resolved by ``by_id`` with ``comment``."""
    LeadSla.objects.filter(lead_id__in=lead_ids, touched_at__isnull=True).update(
        state=LeadSla.State.STOPPED, next_step=None, next_step_at=None
    )
    Escalation.objects.filter(
        lead_id__in=lead_ids, status__in=[Escalation.Status.OPEN, Escalation.Status.ACKNOWLEDGED]
    ).update(status=Escalation.Status.RESOLVED, handled_by_id=by_id, handled_at=now, comment=comment)
