"""Server-rendered pages of the routing app: health for load balancers, and the rep's actions on leads (take
next from a shared queue; accept, close as disqualified, nurtured or converted, reopen, not mine). Each view
checks access, calls a service and redirects; who may see a lead is decided in routing.access. The pages that
show a lead with its first-touch clock (my leads, the lead page, logging a touch) are in ``sla.lead_views``."""

import logging
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from routing.access import lead_for_requester, may_reopen
from routing.models import Lead, Queue
from routing.selectors import broker_status, heartbeat_status
from routing.services import (
    LeadActionError,
    lead_accept,
    lead_convert,
    lead_disqualify,
    lead_not_mine,
    lead_nurture,
    lead_reopen,
    lead_take_next,
)
from territories.models import Rep

logger = logging.getLogger(__name__)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and operators: the database answers, the broker accepts a connection
    (within ``LEADROUTER_BROKER_CHECK_TIMEOUT_SECONDS``), and whether a worker has run the periodic heartbeat
    recently. 503 when the database or the broker is down; a stale heartbeat alone still answers 200, since
    this web process can take leads without workers (they wait, and are routed once workers return).
    Reveals no data, not even the error."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database_ok = True
    except DatabaseError:
        logger.warning("Health check: the database does not answer.", exc_info=True)
        database_ok = False
    broker_ok = broker_status()["ok"]
    worker = heartbeat_status() if database_ok else {"ok": False, "age_seconds": None}
    return JsonResponse(
        {
            "database": "ok" if database_ok else "down",
            "broker": "ok" if broker_ok else "down",
            "worker": {"ok": worker["ok"], "age_seconds": worker["age_seconds"]},
        },
        status=200 if database_ok and broker_ok else 503,
    )


# --- The rep's actions: take next, and the lead's status -----------------------------------------------


def rep_of(request: HttpRequest) -> Rep | None:
    """The signed-in user's rep, or None for anyone who is not a rep."""
    user = request.user
    if not user.is_authenticated:
        return None
    return Rep.objects.select_related("user").filter(user=user).first()


@require_POST
@login_required
def take_next(request: HttpRequest, queue_id: int) -> HttpResponse:
    """Take the oldest lead waiting in one of the rep's shared queues."""
    rep = rep_of(request)
    queue = Queue.objects.filter(pk=queue_id, memberships__rep=rep).first() if rep is not None else None
    if rep is None or queue is None:
        raise Http404("No such queue.")
    try:
        lead = lead_take_next(rep=rep, queue=queue)
    except LeadActionError as error:
        messages.error(request, str(error))
        return HttpResponseRedirect(reverse("my-leads"))
    if lead is None:
        messages.info(request, f"Nothing is waiting in {queue}.")
        return HttpResponseRedirect(reverse("my-leads"))
    messages.success(request, f"{lead} is yours now.")
    return HttpResponseRedirect(reverse("lead-page", args=[lead.pk]))


def lead_or_404(request: HttpRequest, lead_id: int) -> Lead:
    """The lead if the user may see it; a 404 otherwise, so a page does not reveal what exists."""
    lead = lead_for_requester(requester=request.user, lead_id=lead_id)
    if lead is None:
        raise Http404("No such lead.")
    return lead


def to_lead_page(lead: Lead) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("lead-page", args=[lead.pk]))


def _status_action(request: HttpRequest, lead_id: int, action: Any, done: str, **fields: Any) -> HttpResponse:
    """Run one of the rep's status services on a lead they may act on, and say what happened."""
    lead = lead_or_404(request, lead_id)
    try:
        changed = action(lead=lead, by=request.user, **fields)
    except LeadActionError as error:
        messages.error(request, str(error))
    else:
        if changed:
            messages.success(request, done)
        else:
            messages.info(request, f"Nothing changed: the lead is {lead.get_status_display().lower()}.")
    return to_lead_page(lead)


@require_POST
@login_required
def lead_accept_view(request: HttpRequest, lead_id: int) -> HttpResponse:
    return _status_action(request, lead_id, lead_accept, "Accepted.")


@require_POST
@login_required
def lead_disqualify_view(request: HttpRequest, lead_id: int) -> HttpResponse:
    return _status_action(request, lead_id, lead_disqualify, "Disqualified.", reason=request.POST.get("reason", ""))


@require_POST
@login_required
def lead_nurture_view(request: HttpRequest, lead_id: int) -> HttpResponse:
    return _status_action(
        request, lead_id, lead_nurture, "Sent back to nurture.", reason=request.POST.get("reason", "")
    )


@require_POST
@login_required
def lead_convert_view(request: HttpRequest, lead_id: int) -> HttpResponse:
    return _status_action(
        request, lead_id, lead_convert, "Marked converted (won).", reason=request.POST.get("reason", "")
    )


@require_POST
@login_required
def lead_reopen_view(request: HttpRequest, lead_id: int) -> HttpResponse:
    """Reopen a closed lead for its owner: the owner or their manager, within the reopen window."""
    lead = lead_or_404(request, lead_id)
    if not may_reopen(user=request.user, lead=lead):
        raise Http404("No such lead.")
    try:
        changed = lead_reopen(lead=lead, by=request.user)  # type: ignore[arg-type]
    except LeadActionError as error:
        messages.error(request, str(error))
    else:
        if changed:
            messages.success(request, f"Reopened: {lead} is open again for {lead.owner}.")
        else:
            messages.info(request, "Nothing changed: the lead was already reopened.")
    return to_lead_page(lead)


@require_POST
@login_required
def lead_not_mine_view(request: HttpRequest, lead_id: int) -> HttpResponse:
    lead = lead_or_404(request, lead_id)
    try:
        changed = lead_not_mine(lead=lead, by=request.user, reason=request.POST.get("reason", ""))  # type: ignore[arg-type]
    except LeadActionError as error:
        messages.error(request, str(error))
        return to_lead_page(lead)
    if not changed:
        messages.info(request, "Nothing changed: the lead was already sent back or closed.")
        return to_lead_page(lead)
    messages.success(request, f"{lead} was sent back to routing. Thank you for saying why.")
    # Routing ran after commit; the lead page stays open to its managers and RevOps, not to the rep who sent it.
    if lead_for_requester(requester=request.user, lead_id=lead.pk) is not None:
        return to_lead_page(lead)
    return HttpResponseRedirect(reverse("my-leads"))
