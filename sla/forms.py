"""Forms of the SLA pages: the escalations filter and the acknowledge/resolve comment."""

from __future__ import annotations

from typing import Any

from django import forms

from routing.models import Queue
from sla.models import Escalation, EscalationStep
from sla.selectors import escalation_queues_for_user, escalation_teams_for_user
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
