"""Server-rendered pages for managers and reps: the escalations list and its acknowledge/resolve forms.

Each view checks access, calls a selector or a service and renders; scoping lives in ``sla.selectors``, on top of
``routing.access``.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from routing.access import roles_of
from routing.pages import duration_label, shell
from sla.forms import STATUS_ALL, EscalationBulkForm, EscalationFilterForm, EscalationHandleForm
from sla.models import Escalation, LeadSla
from sla.selectors import (
    escalation_for_handling,
    escalation_ids_user_may_handle,
    escalation_status_counts,
    escalations_for_user,
)
from sla.services_pages import EscalationHandleError, escalation_handle, escalations_handle

PAGE_SIZE = 50


class LoginView(auth_views.LoginView):
    """Django's login with the site shell. Without a ``next``: staff (RevOps) land in the admin,
    managers on their team's board, reps on their own leads, anyone else on the escalations page."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        user = self.request.user
        if user.is_staff:
            return reverse("admin:index")
        if roles_of(user).manages:
            return reverse("team-board")
        if hasattr(user, "rep"):
            return reverse("my-leads")
        return reverse("escalations")


@dataclass
class SlaView:
    state: str
    label: str
    timing: str


def sla_view(lead_sla: LeadSla | None, *, now: datetime) -> SlaView:
    """The lead's clock as the page shows it. An untouched lead past its due time is breached
    even if the sweep has not stored that yet."""
    if lead_sla is None:
        return SlaView(state=LeadSla.State.NONE, label=LeadSla.State.NONE.label, timing="")
    state = LeadSla.State(lead_sla.state)
    timing = ""
    if lead_sla.touched_at is None and lead_sla.due_at is not None:
        if now >= lead_sla.due_at:
            state = LeadSla.State.BREACHED
            timing = f"breached {duration_label((now - lead_sla.due_at).total_seconds())} ago"
        else:
            timing = f"due in {duration_label((lead_sla.due_at - now).total_seconds())}"
    elif lead_sla.touched_at is not None:
        timing = f"touched {timezone.localtime(lead_sla.touched_at):%Y-%m-%d %H:%M %Z}"
    return SlaView(state=state.value, label=state.label, timing=timing)


@dataclass
class EscalationRow:
    escalation: Escalation
    lead_name: str
    lead_url: str
    step: str
    age: str
    sla: SlaView
    may_handle: bool


def _row(escalation: Escalation, *, now: datetime, may_handle: bool) -> EscalationRow:
    lead = escalation.lead
    # A lead that never had a clock has no LeadSla row; the reverse accessor then raises an AttributeError.
    lead_sla: LeadSla | None = getattr(lead, "sla", None)
    return EscalationRow(
        escalation=escalation,
        lead_name=f"{lead.first_name} {lead.last_name}".strip() or lead.email or f"Lead {lead.pk}",
        # Whoever sees the escalation sees its lead: the lead's page has its contact, clock and history.
        lead_url=reverse("lead-page", args=[lead.pk]),
        step=str(escalation.step) if escalation.step else escalation.get_action_display(),
        age=duration_label((now - escalation.fired_at).total_seconds()),
        sla=sla_view(lead_sla, now=now),
        may_handle=may_handle,
    )


@require_GET
@login_required
def escalation_list(request: HttpRequest) -> HttpResponse:
    """Escalations the user may see, open ones by default, filtered by status, team, queue and step action."""
    user = request.user
    form = EscalationFilterForm(request.GET or None, user=user)
    escalations = escalations_for_user(user=user)
    filters: dict[str, Any] = {}
    if form.is_bound:
        # An invalid choice (a team the user does not see) is reported on the page and left out of the filter.
        form.is_valid()
        filters = form.cleaned_data
    status = filters.get("status") or Escalation.Status.OPEN
    if team := filters.get("team"):
        escalations = escalations.filter(Q(lead__owner__team=team) | Q(rep__team=team))
    if queue := filters.get("queue"):
        escalations = escalations.filter(lead__queue=queue)
    if action := filters.get("action"):
        escalations = escalations.filter(action=action)
    # The counts by status follow every filter but the status one, so each count is what its link lists.
    counts = escalation_status_counts(escalations=escalations)
    if status != STATUS_ALL:
        escalations = escalations.filter(status=status)

    page = Paginator(escalations, PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    handleable = escalation_ids_user_may_handle(user=user, escalation_ids=[e.pk for e in page.object_list])
    rows = [_row(escalation, now=now, may_handle=escalation.pk in handleable) for escalation in page.object_list]
    query = request.GET.copy()
    query.pop("page", None)
    status_links = []
    for value, label in Escalation.Status.choices:
        query["status"] = value
        status_links.append(
            {
                "status": value,
                "label": label,
                "count": counts[value],
                "url": f"?{query.urlencode()}",
                "current": value == status,
            }
        )
    return render(
        request,
        "sla/escalation_list.html",
        {
            "form": form,
            "page": page,
            "rows": rows,
            "status": status,
            "status_links": status_links,
            "bulk": any(row.may_handle and row.escalation.status != Escalation.Status.RESOLVED for row in rows),
            **shell(request, current="escalations"),
        },
    )


def _handle(request: HttpRequest, escalation_id: int, *, status: str) -> HttpResponse:
    escalation, may_handle = escalation_for_handling(user=request.user, escalation_id=escalation_id)
    if escalation is None:
        raise Http404("No such escalation.")
    if not may_handle:
        raise PermissionDenied("Reps see their escalations; their managers handle them.")
    form = EscalationHandleForm(request.POST, comment_required=status == Escalation.Status.RESOLVED)
    if not form.is_valid():
        messages.error(request, "Say how it was resolved: a comment is required.")
    else:
        try:
            escalation_handle(
                escalation=escalation, user=request.user, status=status, comment=form.cleaned_data["comment"]
            )
        except EscalationHandleError as error:
            messages.error(request, str(error))
        else:
            verb = "acknowledged" if status == Escalation.Status.ACKNOWLEDGED else "resolved"
            messages.success(request, f"Escalation for {escalation.lead} {verb}.")
    return HttpResponseRedirect(_back(request))


def _back(request: HttpRequest) -> str:
    """Where the form came from (the filtered list page), if it is on this site; else the list."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("escalations")


@require_POST
@login_required
def escalation_acknowledge(request: HttpRequest, escalation_id: int) -> HttpResponse:
    return _handle(request, escalation_id, status=Escalation.Status.ACKNOWLEDGED)


@require_POST
@login_required
def escalation_resolve(request: HttpRequest, escalation_id: int) -> HttpResponse:
    return _handle(request, escalation_id, status=Escalation.Status.RESOLVED)


@require_POST
@login_required
def escalations_bulk(request: HttpRequest) -> HttpResponse:
    """Acknowledge or resolve the ticked escalations. Escalations the user does not see are a 404 (nothing is
    changed); seeing them without handling them (a rep) is a 403; of the rest, those already handled are left
    as they are and the message says so."""
    user = request.user
    form = EscalationBulkForm(request.POST, user=user)
    if not form.is_valid():
        if form.unseen():
            raise Http404("No such escalation.")
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return HttpResponseRedirect(_back(request))
    chosen = [escalation.pk for escalation in form.cleaned_data["escalation"]]
    handleable = escalation_ids_user_may_handle(user=user, escalation_ids=chosen)
    if not handleable:
        raise PermissionDenied("Reps see their escalations; their managers handle them.")
    resolve = form.cleaned_data["action"] == EscalationBulkForm.RESOLVE
    status = Escalation.Status.RESOLVED if resolve else Escalation.Status.ACKNOWLEDGED
    try:
        changed = escalations_handle(
            escalation_ids=sorted(handleable), user=user, status=status, comment=form.cleaned_data["comment"]
        )
    except EscalationHandleError as error:
        messages.error(request, str(error))
        return HttpResponseRedirect(_back(request))
    verb = "resolved" if resolve else "acknowledged"
    messages.success(request, f"{changed} escalation{'' if changed == 1 else 's'} {verb}.")
    left = len(chosen) - changed
    if left:
        messages.info(
            request, f"{left} {'was' if left == 1 else 'were'} already {verb} or resolved, or not yours to handle."
        )
    return HttpResponseRedirect(_back(request))
