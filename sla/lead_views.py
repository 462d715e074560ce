"""The rep's lead pages with their first-touch clock: my leads (the most urgent clock first), the lead page
(its clock, assignments, touches and escalations) and logging a touch on it.

Here rather than in routing because they show and log SLA state, which the sla app owns; the lead's status
actions (accept, disqualify, nurture, not mine) and "take next" stay in ``routing.views``. Who may see a lead is
decided in ``routing.access``.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from routing.access import lead_for_requester, may_reopen
from routing.models import CLOSE_REASON_MAX_CHARS, Lead, Queue
from routing.pages import shell
from routing.render import (
    closed_as,
    form_answer_pairs,
    how_it_became_theirs,
    json_text,
    page_history_lines,
    receipt_for_people,
)
from routing.selectors import CLOSED_VIEW_MAX, closed_leads_for_rep, leads_for_rep, queues_for_rep
from routing.services import reopen_problem
from routing.views import lead_or_404, rep_of, to_lead_page
from sla.models import TOUCH_NOTE_MAX_CHARS, LeadSla, Touch
from sla.selectors import lead_history
from sla.services import TouchTimeError, sla_state, touch_log

# Characters of a search on my leads; longer searches are refused with a message.
SEARCH_MAX_CHARS = 100
OPEN_STATUS_CHOICES = [("", "All open")] + [(status.value, status.label) for status in Lead.OPEN_STATUSES]


class MyLeadsFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=SEARCH_MAX_CHARS,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Name, company or e-mail"}),
    )
    status = forms.ChoiceField(choices=OPEN_STATUS_CHOICES, required=False)
    queue = forms.ModelChoiceField(queryset=Queue.objects.none(), required=False, empty_label="All queues")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The queues of the rep's own leads and the queues they belong to: nothing else is worth filtering by.
        queue_field = self.fields["queue"]
        assert isinstance(queue_field, forms.ModelChoiceField)
        queue_field.queryset = (
            Queue.objects.filter(Q(leads__owner__user=user) | Q(memberships__rep__user=user))
            .distinct()
            .order_by("name")
        )


def countdown_label(seconds: float) -> str:
    """What the live clock shows: "due in 12:30", "due in 2:05:30", "overdue 3:10" past the due time, and
    whole days and hours beyond a day ("overdue 3 d 4 h": seconds no longer matter). The inline script on the
    page formats the same way every second."""
    whole = int(abs(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    clock = f"{days} d {hours} h" if days else clock
    return f"due in {clock}" if seconds >= 0 else f"overdue {clock}"


@dataclass
class Clock:
    """A lead's SLA clock as the rep's pages show it."""

    state: str
    label: str
    due_at: datetime | None
    countdown: str
    touched_at: datetime | None

    @property
    def ticking(self) -> bool:
        return self.due_at is not None and self.touched_at is None and self.state != LeadSla.State.STOPPED


def clock_for(lead_sla: LeadSla | None, *, now: datetime) -> Clock:
    if lead_sla is None:
        return Clock(state=LeadSla.State.NONE, label="No SLA", due_at=None, countdown="", touched_at=None)
    state = LeadSla.State(sla_state(lead_sla=lead_sla, now=now))
    ticking = lead_sla.due_at is not None and lead_sla.touched_at is None and state != LeadSla.State.STOPPED
    countdown = countdown_label((lead_sla.due_at - now).total_seconds()) if ticking and lead_sla.due_at else ""
    return Clock(
        state=state.value,
        label=state.label,
        due_at=lead_sla.due_at,
        countdown=countdown,
        touched_at=lead_sla.touched_at,
    )


@dataclass
class LeadRow:
    lead: Lead
    name: str
    clock: Clock


def lead_name(lead: Lead) -> str:
    return " ".join(part for part in (lead.first_name, lead.last_name) if part) or lead.email or f"Lead {lead.pk}"


@dataclass
class ClosedRow:
    lead: Lead
    name: str
    reopenable: bool


@require_GET
@login_required
def my_leads(request: HttpRequest) -> HttpResponse:
    """The signed-in rep's open leads, the most urgent SLA first, and the shared queues they can take from;
    with ``?view=closed`` their closed leads instead, the most recently closed first, each with a reopen
    button while it may be reopened. ``q`` searches names, companies and e-mails in either view."""
    closed_view = request.GET.get("view") == "closed"
    form = MyLeadsFilterForm(request.GET or None, user=request.user)
    filters: dict[str, Any] = {}
    if form.is_bound:
        form.is_valid()
        filters = form.cleaned_data
    queue = filters.get("queue")
    search = filters.get("q") or ""
    now = timezone.now()
    rows: list[Any]
    if closed_view:
        leads = closed_leads_for_rep(user=request.user, queue_id=queue.pk if queue else None, search=search)
        rows = [
            ClosedRow(lead=lead, name=lead_name(lead), reopenable=not reopen_problem(lead=lead, now=now))
            for lead in leads
        ]
    else:
        leads = leads_for_rep(
            user=request.user, status=filters.get("status") or "", queue_id=queue.pk if queue else None, search=search
        )
        rows = [
            LeadRow(lead=lead, name=lead_name(lead), clock=clock_for(getattr(lead, "sla", None), now=now))
            for lead in leads
        ]
    return render(
        request,
        "routing/pages/my_leads.html",
        {
            "form": form,
            "rows": rows,
            "closed_view": closed_view,
            "closed_max": CLOSED_VIEW_MAX,
            "filtered": bool(search or queue or filters.get("status")),
            "reopen_days": settings.LEADROUTER_REOPEN_DAYS,
            "queues": queues_for_rep(user=request.user),
            "is_rep": rep_of(request) is not None,
            **shell(request, current="my-leads"),
        },
    )


@require_GET
@login_required
def lead_page(request: HttpRequest, lead_id: int) -> HttpResponse:
    """Everything about one lead on one page: contact, account, answers, why it is yours, the clock, history."""
    lead = lead_for_requester(requester=request.user, lead_id=lead_id)
    if lead is None:
        raise Http404("No such lead.")
    history = lead_history(lead=lead)
    now = timezone.now()
    current = next((a for a in history["assignments"] if a.ended_at is None and a.rep_id), None)
    how_theirs = ""
    if current is not None and lead.owner is not None and current.rep_id == lead.owner_id:
        how_theirs = how_it_became_theirs(
            reason=current.reason,
            note=current.note,
            owner=lead.owner.user.get_full_name() or lead.owner.user.get_username(),
            by=(current.assigned_by.get_full_name() or current.assigned_by.get_username())
            if current.assigned_by
            else "",
            queue=current.queue.name if current.queue else "",
        )
    return render(
        request,
        "routing/pages/lead_detail.html",
        {
            "lead": lead,
            "name": lead_name(lead),
            "clock": clock_for(history["lead_sla"], now=now),
            "receipt": lead.receipt,
            "why": receipt_for_people(
                lead.receipt,
                method_labels=dict(Queue.Method.choices),
                account_name=lead.account.name if lead.account else "",
            ),
            "how_theirs": how_theirs,
            "receipt_json": json_text(lead.receipt),
            "is_open": lead.status in Lead.OPEN_STATUSES,
            "closed_as": closed_as(lead.status) if lead.closed_at else "",
            "reopen_problem": reopen_problem(lead=lead, now=now) if lead.closed_at else "",
            "may_reopen": bool(lead.closed_at) and may_reopen(user=request.user, lead=lead),
            "reopen_days": settings.LEADROUTER_REOPEN_DAYS,
            "reason_max": CLOSE_REASON_MAX_CHARS,
            "note_max": TOUCH_NOTE_MAX_CHARS,
            "touch_kinds": Touch.Kind.choices,
            "form_answers": form_answer_pairs(lead.form_answers),
            "page_history": page_history_lines(lead.page_history),
            "sent_back": [a for a in history["assignments"] if a.reason == a.Reason.NOT_MINE],
            **history,
            **shell(request, current="my-leads"),
        },
    )


CHOOSE_KIND = "Choose call, e-mail or meeting."


class TouchForm(forms.Form):
    """A touch logged on the lead page: its kind, when it happened if not just now, and a note."""

    kind = forms.ChoiceField(
        choices=Touch.Kind.choices,
        error_messages={"required": CHOOSE_KIND, "invalid_choice": CHOOSE_KIND},
    )
    at = forms.DateTimeField(required=False, label="When")
    note = forms.CharField(required=False, max_length=TOUCH_NOTE_MAX_CHARS, label="Note", strip=True)


@require_POST
@login_required
def lead_touch_view(request: HttpRequest, lead_id: int) -> HttpResponse:
    lead = lead_or_404(request, lead_id)
    form = TouchForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(error) for errors in form.errors.values() for error in errors))
    elif lead.status not in Lead.OPEN_STATUSES:
        messages.error(request, f"The lead is {lead.get_status_display().lower()}; touches are for open leads.")
    else:
        kind = form.cleaned_data["kind"]
        try:
            touch_log(
                lead=lead,
                kind=kind,
                at=form.cleaned_data["at"],
                by=request.user,  # type: ignore[arg-type]
                note=form.cleaned_data["note"],
            )
        except TouchTimeError as error:
            messages.error(request, f"Not logged: {error}")
        else:
            messages.success(request, f"{Touch.Kind(kind).label} logged.")
    return to_lead_page(lead)
