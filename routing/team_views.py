"""The manager's actions from the team board: reassigning leads, setting a rep's out-of-office period, handling a
rep's departure and handing a queue to a deputy. The board itself, which also shows each lead's first-touch
clock, is ``leadrouter.views.team_board``.

Each view checks access, calls a service and redirects (the departure page renders its plan). Scope lives in
``routing.access``: a manager acts on the reps of the teams they manage and their direct reports, a deputy also
on the members of the queues delegated to them, RevOps on all; anything outside that answers 404, never 403, so
a page does not reveal what exists.
"""

from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from routing.access import acting_reps, delegable_queues, managed_open_leads
from routing.models import Queue
from routing.pages import shell
from routing.reassign import ReassignError, departure_plan, leads_reassign, rep_departure_apply
from routing.services import DelegationError, queue_delegate, queue_deputies, queue_undelegate
from territories.models import Rep
from territories.services import reps_set_out_of_office

# The aging filter: untouched leads older than this many hours; "all" lists every open lead.
AGING_CHOICES = [
    ("4", "Untouched, older than 4 h"),
    ("24", "Untouched, older than 24 h"),
    ("72", "Untouched, older than 3 days"),
    ("all", "All open leads"),
]
DEFAULT_AGING = "24"


class LeadIdsField(forms.Field):
    """The ids the lead checkboxes post. Any ids pass the form: the view checks them against the user's scope
    and answers 404 outside it."""

    widget = forms.SelectMultiple

    def to_python(self, value: Any) -> list[int]:
        if not value:
            return []
        try:
            return [int(item) for item in value]
        except (TypeError, ValueError) as error:
            raise ValidationError("Select leads from the list.") from error


class ReassignForm(forms.Form):
    leads = LeadIdsField(error_messages={"required": "Select at least one lead."})
    to_rep = forms.IntegerField(error_messages={"required": "Choose the rep who takes the leads."})
    note = forms.CharField(required=False, max_length=1000)


class OutOfOfficeForm(forms.Form):
    start = forms.DateTimeField(label="From")
    end = forms.DateTimeField(label="Until")
    reason = forms.CharField(required=False, max_length=200)


def _rep_in_scope(request: HttpRequest, rep_id: int) -> Rep:
    rep = acting_reps(user=request.user).filter(pk=rep_id).first()
    if rep is None:
        raise Http404("No such rep.")
    return rep


def _board_url(request: HttpRequest) -> str:
    aging = request.POST.get("aging", "")
    url = reverse("team-board")
    return f"{url}?aging={aging}" if aging in dict(AGING_CHOICES) else url


@require_POST
@login_required
def team_reassign(request: HttpRequest) -> HttpResponse:
    """Give the selected leads to the chosen rep. A lead or rep outside the user's scope: 404."""
    form = ReassignForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return HttpResponseRedirect(_board_url(request))
    to_rep = _rep_in_scope(request, form.cleaned_data["to_rep"])
    lead_ids = set(form.cleaned_data["leads"])
    leads = list(managed_open_leads(user=request.user).filter(pk__in=lead_ids))
    if len(leads) != len(lead_ids):
        raise Http404("Some of these leads are not open leads of your team.")
    try:
        result = leads_reassign(leads=leads, to_rep=to_rep, by=request.user, note=form.cleaned_data["note"])
    except ReassignError as error:
        messages.error(request, str(error))
        return HttpResponseRedirect(_board_url(request))
    if result.moved:
        count = len(result.moved)
        messages.success(request, f"{count} lead{'s' if count != 1 else ''} reassigned to {to_rep}.")
    for lead, why in result.skipped:
        messages.warning(request, f"{lead} was not reassigned: {why}.")
    for warning in result.warnings:
        messages.warning(request, warning)
    return HttpResponseRedirect(_board_url(request))


@require_POST
@login_required
def rep_out_of_office(request: HttpRequest, rep_id: int) -> HttpResponse:
    """Record an out-of-office period for a rep in scope. Times are read in the rep's own time zone."""
    rep = _rep_in_scope(request, rep_id)
    # A date typed for a rep's vacation means midnight where the rep is, not where the manager is.
    with timezone.override(ZoneInfo(rep.time_zone)):
        form = OutOfOfficeForm(request.POST)
        valid = form.is_valid()
    if not valid:
        messages.error(request, f"Out of office for {rep}: give a start and an end date and time.")
        return HttpResponseRedirect(reverse("team-board"))
    try:
        reps_set_out_of_office(
            reps=[rep],
            starts_at=form.cleaned_data["start"],
            ends_at=form.cleaned_data["end"],
            reason=form.cleaned_data["reason"],
        )
    except ValidationError as error:
        messages.error(request, f"Out of office for {rep}: {' '.join(error.messages)}")
    else:
        messages.success(
            request,
            f"{rep} is out of office from {form.cleaned_data['start']:%Y-%m-%d %H:%M} "
            f"until {form.cleaned_data['end']:%Y-%m-%d %H:%M} ({rep.time_zone}); routing skips them then.",
        )
    return HttpResponseRedirect(reverse("team-board"))


@require_http_methods(["GET", "POST"])
@login_required
def rep_departure(request: HttpRequest, rep_id: int) -> HttpResponse:
    """GET: where the rep's open leads and accounts would go if they left now. POST: do it, and show what
    moved where."""
    rep = _rep_in_scope(request, rep_id)
    if request.method == "POST":
        plan = rep_departure_apply(rep=rep, by=request.user)
        messages.success(
            request,
            f"{rep} is inactive; {len(plan.leads)} open lead{'s' if len(plan.leads) != 1 else ''} and "
            f"{len(plan.accounts)} account{'s' if len(plan.accounts) != 1 else ''} handed over.",
        )
        applied = True
    else:
        plan = departure_plan(rep=rep, now=timezone.now())
        applied = False
    return render(
        request,
        "territories/pages/rep_departure.html",
        {"plan": plan, "rep": rep, "applied": applied, **shell(request, current="team")},
    )


@require_POST
@login_required
def queue_deputy_add(request: HttpRequest, queue_id: int) -> HttpResponse:
    """Hand a queue's leads to a deputy (a rep of the team, while the manager is away)."""
    queue = _delegable_queue(request, queue_id)
    deputy = _deputy_in_scope(request, request.POST.get("deputy", ""))
    try:
        queue_delegate(queue=queue, deputy=deputy, by=request.user)
    except DelegationError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{deputy.get_full_name() or deputy.username} now acts for {queue}.")
    return HttpResponseRedirect(reverse("team-board"))


@require_POST
@login_required
def queue_deputy_remove(request: HttpRequest, queue_id: int, user_id: int) -> HttpResponse:
    queue = _delegable_queue(request, queue_id)
    deputy = next((user for user in queue_deputies(queue=queue) if user.pk == user_id), None)
    if deputy is None:
        raise Http404("No such deputy.")
    queue_undelegate(queue=queue, deputy=deputy, by=request.user)
    messages.success(request, f"{deputy.get_full_name() or deputy.username} no longer acts for {queue}.")
    return HttpResponseRedirect(reverse("team-board"))


def _delegable_queue(request: HttpRequest, queue_id: int) -> Queue:
    queue = delegable_queues(user=request.user).filter(pk=queue_id).first()
    if queue is None:
        raise Http404("No such queue.")
    return queue


def _deputy_in_scope(request: HttpRequest, raw_id: str) -> Any:
    """A deputy is a rep the manager acts on; anyone else answers 404."""
    rep = acting_reps(user=request.user).filter(user_id=int(raw_id) if raw_id.isdigit() else 0).first()
    if rep is None:
        raise Http404("No such rep.")
    return rep.user
