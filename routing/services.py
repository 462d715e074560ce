"""Writes for the routing app. Routing itself arrives with the routing engine."""

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from guardian.shortcuts import assign_perm, get_users_with_perms, remove_perm

from routing import lanes
from routing.access import may_delegate
from routing.models import (
    CLOSE_REASON_MAX_CHARS,
    TAKEN_FROM_QUEUE_NOTE,
    ApiKey,
    Assignment,
    Lead,
    Queue,
    QueueMembership,
    WorkerHeartbeat,
    api_key_default_scopes,
)
from routing.ownership import Handover, lead_send_back, leads_close, owners_change, rep_loads, routing_lock
from routing.render import closed_as
from routing.rows import RowSelect, rows_select
from territories.models import Rep


def heartbeat_record(*, name: str, hostname: str = "", now: datetime | None = None) -> WorkerHeartbeat:
    """Stamp the named heartbeat with the current time. Safe to run twice."""
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        name=name, defaults={"last_seen_at": now or timezone.now(), "hostname": hostname}
    )
    return heartbeat


# --- API keys ---------------------------------------------------------------------------------------

API_KEY_PREFIX_LENGTH = 12
# last_used_at is an operator hint, not an audit log: write it at most this often per key.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


def _api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def apikey_create(
    *,
    name: str,
    scopes: Iterable[str] | None = None,
    by: User | None = None,
    raw_key: str | None = None,
) -> tuple[ApiKey, str]:
    """Create an API key for an intake source and return it with the raw key.

    The raw key is shown once and never stored; only its hash is. ``scopes``
    default to ``leads:write`` (posting leads only). Raises ValidationError when
    the name is taken or empty, or a scope is unknown. ``raw_key`` is for the demo
    organisation's published key only; real keys are always generated.
    """
    raw_key = raw_key or "lr_" + secrets.token_urlsafe(32)
    api_key = ApiKey(
        name=name.strip(),
        scopes=list(dict.fromkeys(scopes)) if scopes is not None else api_key_default_scopes(),
        prefix=raw_key[:API_KEY_PREFIX_LENGTH],
        key_hash=_api_key_hash(raw_key),
        created_by=by if by is not None and by.pk else None,
    )
    api_key.full_clean()
    api_key.save()
    return api_key, raw_key


def apikey_revoke(*, keys: QuerySet[ApiKey], now: datetime | None = None) -> int:
    """Revoke the given keys at once; requests with them fail from now on. Returns how many were revoked."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=now or timezone.now())


_API_KEYS = RowSelect(ApiKey)


def apikey_authenticate(*, raw_key: str, now: datetime | None = None) -> ApiKey | None:
    """The usable key matching ``raw_key``, or None. Side effect: stamps last_used_at (at most once a minute).

    Every call reads the key's row, so a revoked, deleted or re-scoped key takes effect on the very next
    request in every process. It is read with one plain statement rather than a queryset: on every API
    request, building and compiling the ORM's query cost ten times the statement itself.
    """
    now = now or timezone.now()
    found = rows_select(_API_KEYS, "t0.prefix = %s", [raw_key[:API_KEY_PREFIX_LENGTH]])
    if not found:
        return None
    candidate = found[0]
    if not hmac.compare_digest(candidate.key_hash, _api_key_hash(raw_key)):
        return None
    if candidate.is_revoked:
        return candidate
    if candidate.last_used_at is None or now - candidate.last_used_at >= API_KEY_TOUCH_INTERVAL:
        ApiKey.objects.filter(pk=candidate.pk).update(last_used_at=now)
        candidate.last_used_at = now
    return candidate


# --- The rep's actions on a lead ----------------------------------------------------------------------


class LeadActionError(Exception):
    """The action cannot be done as asked; the message says why, for the page."""


def _rep_capacity_problem(*, rep: Rep, now: datetime) -> str:
    """Why ``rep`` may not take another lead now (at capacity, daily cap), or "" when they may."""
    open_leads, assigned_today = rep_loads(now=now, rep_ids=[rep.pk])
    if open_leads.get(rep.pk, 0) >= rep.max_open_leads:
        return f"You are at capacity ({rep.max_open_leads} open leads). Work or close one first."
    if rep.daily_cap is not None and assigned_today.get(rep.pk, 0) >= rep.daily_cap:
        return f"You have reached your daily cap of {rep.daily_cap} new leads."
    return ""


def lead_take_next(*, rep: Rep, queue: Queue, now: datetime | None = None) -> Lead | None:
    """Give ``rep`` the oldest lead waiting in ``queue``; None when nothing waits.

    1. Take the routing lock (``routing.dispatch.routing_lock``): ownership and loads change only under it.
    2. Check the rep is active, an active member of the queue, and under capacity and daily cap;
       else raise LeadActionError.
    3. Claim the oldest queued lead with ``SELECT … FOR UPDATE SKIP LOCKED``, so a lead the sweep is
       releasing is skipped rather than waited for.
    4. The lead becomes the rep's (``assigned``); the held (queue-only) assignment ends and a new one
       starts, reason ``routed``, note "taken from the queue".
    5. Notifications, the rep's task and the first-touch clock are written as routing writes them.

    Atomic. Side effects: updates Lead and Assignment rows, inserts Assignment, Notification, RepTask,
    LeadSla rows; enqueues ``notify_assignments`` after commit.
    """
    with transaction.atomic():
        routing_lock()
        now = now or timezone.now()
        if not rep.active or not QueueMembership.objects.filter(queue=queue, rep=rep, active=True).exists():
            raise LeadActionError(f"You are not an active member of {queue}.")
        if problem := _rep_capacity_problem(rep=rep, now=now):
            raise LeadActionError(problem)
        lead = (
            Lead.objects.filter(queue=queue, status=Lead.Status.QUEUED)
            .select_for_update(skip_locked=True)
            .order_by("received_at", "pk")
            .first()
        )
        if lead is None:
            return None
        summary = f"Taken from the queue {queue} by {rep}."
        taken = {"at": now.isoformat(), "rep_id": rep.pk, "queue_id": queue.pk, "summary": summary}
        lead.receipt = {**lead.receipt, "routing": {**lead.receipt.get("routing", {}), "taken": taken}}
        owners_change(
            [
                Handover(
                    lead=lead,
                    rep_id=rep.pk,
                    queue_id=queue.pk,
                    status=Lead.Status.ASSIGNED,
                    reason=Assignment.Reason.ROUTED,
                    summary=summary,
                    assigned_by_id=rep.user_id,
                    note=TAKEN_FROM_QUEUE_NOTE,
                )
            ],
            now=now,
            lead_fields=["receipt"],
        )
    lead.owner = rep
    return lead


def _reason_checked(reason: str, *, required: str = "") -> str:
    """``reason`` without surrounding blanks; LeadActionError when it is longer than the forms allow, or
    empty and ``required`` (the message to show) is given."""
    reason = reason.strip()
    if len(reason) > CLOSE_REASON_MAX_CHARS:
        raise LeadActionError(f"Keep the reason to {CLOSE_REASON_MAX_CHARS} characters (it has {len(reason):,}).")
    if required and not reason:
        raise LeadActionError(required)
    return reason


def _lead_close(
    *, lead: Lead, to: str, by: User | None, reason: str, now: datetime | None = None, via: ApiKey | None = None
) -> bool:
    """Close ``lead`` as ``to`` if it is still open; False when it was not (``lead`` then holds the status and
    close time the lead has).

    The row lock makes a double submit (or two people at once) close the lead once. ``leads_close`` records
    who closed it (a person ``by``, or an integration's API key ``via``), when and why, ends the owner's task
    and counter, stops the clock and resolves the lead's open escalations with the reason.
    """
    now = now or timezone.now()
    with transaction.atomic():
        current = Lead.objects.select_for_update().filter(pk=lead.pk).first()
        if current is None or current.status not in Lead.OPEN_STATUSES:
            if current is not None:
                lead.status, lead.closed_at = current.status, current.closed_at
            return False
        current.closed_via = via
        leads_close([current], to=to, now=now, by_id=by.pk if by else None, reason=reason, extra_fields=["closed_via"])
    lead.status, lead.closed_at, lead.closed_by, lead.close_reason = to, now, by, reason
    lead.closed_via = via
    return True


def lead_accept(*, lead: Lead, by: User) -> bool:
    """The rep accepts a lead routed to them: ``assigned`` → ``accepted``. False when it was not ``assigned``
    (already accepted, worked or closed). Atomic; updates Lead."""
    with transaction.atomic():
        changed = Lead.objects.filter(pk=lead.pk, status=Lead.Status.ASSIGNED).update(
            status=Lead.Status.ACCEPTED, updated_at=timezone.now()
        )
    if changed:
        lead.status = Lead.Status.ACCEPTED
    return bool(changed)


def lead_disqualify(*, lead: Lead, by: User, reason: str, now: datetime | None = None) -> bool:
    """Disqualify an open lead; ``reason`` is required. False when the lead was no longer open.
    Atomic; see ``_lead_close`` for the writes."""
    reason = _reason_checked(reason, required="Say why the lead is disqualified.")
    return _lead_close(lead=lead, to=Lead.Status.DISQUALIFIED, by=by, reason=reason, now=now)


def lead_nurture(*, lead: Lead, by: User, reason: str = "", now: datetime | None = None) -> bool:
    """Send an open lead back to marketing nurture, with an optional reason. False when the lead was no
    longer open. Atomic; see ``_lead_close`` for the writes."""
    reason = _reason_checked(reason)
    return _lead_close(lead=lead, to=Lead.Status.NURTURE, by=by, reason=reason, now=now)


def lead_convert(*, lead: Lead, by: User, reason: str = "", now: datetime | None = None) -> bool:
    """The lead converted (an opportunity won or opened), with an optional note. False when the lead was no
    longer open. Atomic; see ``_lead_close`` for the writes."""
    reason = _reason_checked(reason)
    return _lead_close(lead=lead, to=Lead.Status.CONVERTED, by=by, reason=reason, now=now)


class LeadStatusConflict(LeadActionError):
    """The lead is not open, and not already closed as asked: closed otherwise, or not yet (or never) a rep's."""


# What an integration may set a lead to (POST /api/v1/leads/{id}/status/): the ways a rep closes a lead.
STATUSES_FROM_OUTSIDE = tuple(status.value for status in Lead.CLOSE_STATUSES)
# Closing as these says nothing by itself: a reason is required, as on the rep's page for disqualifying.
STATUSES_NEEDING_REASON = (Lead.Status.DISQUALIFIED.value, Lead.Status.CLOSED.value)


def lead_status_set(
    *,
    lead: Lead,
    to: str,
    reason: str = "",
    by: User | None = None,
    via: ApiKey | None = None,
    now: datetime | None = None,
) -> bool:
    """Close an open lead as ``to`` (converted, disqualified, nurture or closed) for an integration (``via``,
    its API key) or a person (``by``), exactly as the rep's page closes it (``_lead_close``: capacity freed,
    task done, clock stopped, open escalations resolved with the reason).

    Returns True when the lead was closed now, False when it was already closed as ``to`` (a repeat changes
    nothing, not even the reason). Raises LeadActionError for an unknown status or a bad reason (too long;
    missing for disqualified and closed), and LeadStatusConflict when the lead is closed as something else,
    or is not open (still being routed, waiting in a queue, discarded, a duplicate): reopening is a person's
    call on the lead's page. Who may do this is the caller's check (``routing.access.lead_for_requester``).
    """
    if to not in STATUSES_FROM_OUTSIDE:
        raise LeadActionError(f'Unknown status "{to}": send one of {", ".join(STATUSES_FROM_OUTSIDE)}.')
    required = f"Say why the lead is {closed_as(to)} (a reason)." if to in STATUSES_NEEDING_REASON else ""
    reason = _reason_checked(reason, required=required)
    if _lead_close(lead=lead, to=to, by=by, reason=reason, now=now, via=via):
        return True
    if lead.status == to:
        return False
    if lead.status in Lead.CLOSE_STATUSES:
        raise LeadStatusConflict(
            f"The lead is already {closed_as(lead.status)}: only an open lead can be closed (a person may reopen "
            "it on its page)."
        )
    raise LeadStatusConflict(
        f"The lead is not open (it is {lead.get_status_display().lower()}): only an open lead can be closed."
    )


def reopen_problem(*, lead: Lead, now: datetime) -> str:
    """Why ``lead`` cannot be reopened now, or "" when it can: it must be closed (not discarded or a
    duplicate), have an owner, and have been closed within ``LEADROUTER_REOPEN_DAYS``. Who may reopen it is
    the caller's check (``routing.access.may_reopen``)."""
    if lead.status not in Lead.CLOSE_STATUSES or lead.closed_at is None:
        return "Only a closed lead can be reopened."
    if lead.owner_id is None:
        return "The lead has no owner to reopen it for."
    if now - lead.closed_at > timedelta(days=settings.LEADROUTER_REOPEN_DAYS):
        return f"Leads can be reopened for {settings.LEADROUTER_REOPEN_DAYS} days after closing; this one is older."
    return ""


def lead_reopen(*, lead: Lead, by: User, now: datetime | None = None) -> bool:
    """Reopen a closed lead for its owner: it becomes ``accepted`` again, theirs.

    1. Under the routing lock, with the lead locked, and only while it is still closed as ``lead`` says
       (a double submit reopens it once): LeadActionError when ``reopen_problem`` objects, or the owner is
       inactive, at capacity or at their daily cap.
    2. ``owners_change`` hands the lead to the same owner: their load counters go up, the closed period of
       the history ends and a new one starts with reason ``reopened``, its note keeping the close (who,
       when, as what and why); the owner gets a task and notices, and the first-touch clock restarts
       unless the lead was touched before.
    3. The lead's close record (who, when, why) is cleared.

    Returns False when the lead was no longer closed. Side effects: those of ``owners_change``.
    """
    with transaction.atomic():
        routing_lock()
        now = now or timezone.now()
        current = (
            Lead.objects.select_for_update(of=("self",))
            .select_related("owner", "closed_by", "closed_via")
            .filter(pk=lead.pk, status=lead.status, closed_at=lead.closed_at)
            .first()
        )
        if current is None:
            return False
        if problem := reopen_problem(lead=current, now=now):
            raise LeadActionError(problem)
        owner = current.owner
        assert owner is not None
        if not owner.active:
            raise LeadActionError(f"{owner} is no longer active; a manager can reassign the lead instead.")
        if problem := _rep_capacity_problem(rep=owner, now=now):
            raise LeadActionError(problem)
        assert current.closed_at is not None
        closer = (
            current.closed_by.get_username()
            if current.closed_by
            else f"the API key {current.closed_via.name}"
            if current.closed_via
            else "someone"
        )
        closed = f"{closed_as(current.status).capitalize()} by {closer} on {current.closed_at:%Y-%m-%d %H:%M} UTC"
        note = f"{closed}: {current.close_reason}" if current.close_reason else f"{closed}."
        current.closed_at, current.closed_by, current.close_reason, current.closed_via = None, None, "", None
        owners_change(
            [
                Handover(
                    lead=current,
                    rep_id=owner.pk,
                    queue_id=current.queue_id,
                    status=Lead.Status.ACCEPTED,
                    reason=Assignment.Reason.REOPENED,
                    summary=f"Reopened by {by.get_username()}.",
                    assigned_by_id=by.pk,
                    note=note,
                )
            ],
            now=now,
            lead_fields=["closed_at", "closed_by", "close_reason", "closed_via"],
        )
    lead.status, lead.closed_at, lead.closed_by, lead.close_reason = Lead.Status.ACCEPTED, None, None, ""
    lead.closed_via = None
    return True


def lead_not_mine(*, lead: Lead, by: User, reason: str, now: datetime | None = None) -> bool:
    """The owner (or their manager) says the lead was misrouted: it goes back to routing.

    1. Under the routing lock, and only if the lead is still open and still owned by the same rep
       (a double submit changes nothing the second time): the lead becomes ``received`` with no owner.
    2. The rep's open assignment ends with reason ``not_mine`` and ``reason`` as its note; the lead's
       receipt and the assignment's receipt record who sent it back and why.
    3. The rep joins the clock's ``previous_owner_ids`` (when the lead has a clock), so SLA reassignment
       never hands it back to them; their open task is closed.
    4. After commit, ``routing.dispatch.leads_route`` routes the lead again.

    Returns False when nothing changed. Side effects: updates Lead, Assignment, LeadSla and RepTask; after
    commit routes the lead (writes and notifications as routing does).
    """
    reason = _reason_checked(reason, required="Say why the lead is not yours, so RevOps can fix the rule.")
    with transaction.atomic():
        routing_lock()
        now = now or timezone.now()
        current = (
            Lead.objects.select_for_update()
            .filter(pk=lead.pk, status__in=Lead.OPEN_STATUSES, owner__isnull=False)
            .first()
        )
        owner_id = current.owner_id if current is not None else None
        if current is None or owner_id is None or owner_id != lead.owner_id:
            return False
        sent_back = {
            "at": now.isoformat(),
            "rep_id": owner_id,
            "by": by.get_username(),
            "reason": reason,
            "summary": f"Sent back by {by.get_username()} as not theirs: {reason}",
        }
        receipt = {**current.receipt, "sent_back": [*current.receipt.get("sent_back", []), sent_back]}
        lead_send_back(current, now=now, by_id=by.pk, reason=reason, sent_back=sent_back, receipt=receipt)
        lead_id = lead.pk
        # Routed again by a worker in the live lane, not in this request.
        transaction.on_commit(lambda: lanes.route_leads_send([lead_id], lane=Lead.Lane.LIVE), robust=True)
    lead.status, lead.owner_id, lead.receipt = Lead.Status.RECEIVED, None, receipt
    return True


# --- Deputies ---------------------------------------------------------------------------------------------------


class DelegationError(Exception):
    """A delegation the user may not make; the message says why."""


def queue_delegate(*, queue: Queue, deputy: Any, by: Any) -> None:
    """Let ``deputy`` act as a manager for ``queue``'s leads (board, reassignment, escalations), until undone.

    ``by`` is RevOps or a manager with reps in the queue; a deputy cannot delegate further.
    Side effect: a django-guardian object permission ``routing.deputize_queue`` on the queue.
    """
    _may_delegate(queue=queue, by=by)
    if not deputy.is_active:
        raise DelegationError("An inactive user cannot be a deputy.")
    assign_perm("routing.deputize_queue", deputy, queue)


def queue_undelegate(*, queue: Queue, deputy: Any, by: Any) -> None:
    """Take ``queue`` back from ``deputy``. Side effect: removes the object permission."""
    _may_delegate(queue=queue, by=by)
    remove_perm("routing.deputize_queue", deputy, queue)


def queue_deputies(*, queue: Queue) -> list[Any]:
    """The users ``queue`` is delegated to."""
    return list(get_users_with_perms(queue, only_with_perms_in=["deputize_queue"], with_superusers=False))


def _may_delegate(*, queue: Queue, by: Any) -> None:
    if not may_delegate(user=by, queue=queue):
        raise DelegationError("Only a manager of the queue's reps (or RevOps) can delegate it.")
