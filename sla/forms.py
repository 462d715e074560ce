"""Forms of the SLA pages: the escalations filter and the acknowledge/resolve comment."""

from __future__ import annotations

from typing import Any

from django import forms

from routing.models import Queue
from sla.models import Escalation, EscalationStep
from sla.selectors import escalation_queues_for_user, escalation_teams_for_user, escalations_for_user
from territories.models import Team

STATUS_ALL = "all"


class EscalationFilterForm(forms.Form):
    """The GET filter above the escalations list. Team and queue choices are scoped to the user,
    so nobody can list (or probe with) a team they do not see."""

    status = forms.ChoiceField(
        choices=[*Escalation.Status.choices, (STATUS_ALL, "Any status")],
        required=False,
        initial=Escalation.Status.OPEN,
    )
    team: forms.ModelChoiceField[Team] = forms.ModelChoiceField(
        queryset=Team.objects.none(), required=False, empty_label="All teams"
    )
    queue: forms.ModelChoiceField[Queue] = forms.ModelChoiceField(
        queryset=Queue.objects.none(), required=False, empty_label="All queues"
    )
    action = forms.ChoiceField(
        label="Step action", choices=[("", "All steps"), *EscalationStep.Action.choices], required=False
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = escalation_teams_for_user(user=user)  # type: ignore[attr-defined]
        self.fields["queue"].queryset = escalation_queues_for_user(user=user)  # type: ignore[attr-defined]


class EscalationHandleForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=10_000)

    def __init__(self, *args: Any, comment_required: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["comment"].required = comment_required


# The longest range the reports compute at once: a year of days.
REPORT_MAX_DAYS = 366


class ReportPeriodForm(forms.Form):
    """The reports' own dates, instead of the last 7, 30 or 90 days: both or neither, first before last, at
    most ``REPORT_MAX_DAYS``. Invalid dates are reported on the page and the preset period is shown."""

    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if (start is None) != (end is None):
            raise forms.ValidationError("Give both dates, from and to, or neither.")
        if start is not None and end is not None:
            if start > end:
                raise forms.ValidationError("The first day comes after the last one.")
            if (end - start).days + 1 > REPORT_MAX_DAYS:
                raise forms.ValidationError(f"Choose at most {REPORT_MAX_DAYS} days.")
        return data


class EscalationBulkForm(forms.Form):
    """Acknowledge or resolve the ticked escalations at once. The choices are the escalations the user sees,
    so an id outside them is an invalid choice, never a row someone else handles."""

    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"

    escalation: forms.ModelMultipleChoiceField[Escalation] = forms.ModelMultipleChoiceField(
        queryset=Escalation.objects.none(),
        error_messages={"required": "Tick the escalations to handle first."},
    )
    action = forms.ChoiceField(choices=[(ACKNOWLEDGE, "Acknowledge"), (RESOLVE, "Resolve")])
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 1}), required=False, max_length=10_000)

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["escalation"].queryset = escalations_for_user(user=user).select_related(None).only("pk")  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("action") == self.RESOLVE and not cleaned.get("comment", "").strip():
            self.add_error("comment", "Say how they were resolved: a comment is required.")
        return cleaned

    def unseen(self) -> bool:
        """Whether an escalation that was asked for is not one the user sees."""
        return self.has_error("escalation", "invalid_choice") or self.has_error("escalation", "invalid_pk_value")
