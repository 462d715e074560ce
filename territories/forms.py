"""Forms for the coverage admin.

They check what a person typed and say what to fix; saving goes through
``territories.services``.
"""

from typing import Any

from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from territories import services, validators
from territories.models import AccountDomain, Rep, WorkingHours

User = get_user_model()

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY


def active_users() -> QuerySet[Any]:
    return User.objects.filter(is_active=True).order_by("username")


def user_label(user: Any) -> str:
    full_name = user.get_full_name()
    return f"{full_name} ({user.get_username()})" if full_name else user.get_username()


class UserChoiceField(forms.ModelChoiceField):
    """A plain select of users, labelled with their names, for people without access to the user admin."""

    def label_from_instance(self, obj: AbstractBaseUser) -> str:
        return user_label(obj)


class UserMultipleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: AbstractBaseUser) -> str:
        return user_label(obj)


# --- Reps --------------------------------------------------------------------------------------------------------


class RepFormBase(forms.ModelForm):
    email = forms.EmailField(help_text="Lead notifications go here.")
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)

    class Meta:
        model = Rep
        fields = ["team", "manager", "active", "time_zone", "max_open_leads", "daily_cap", "skills"]

    def add_identity_errors(self, error: ValidationError) -> None:
        for field, messages in error.message_dict.items():
            self.add_error(field if field in self.fields else None, messages)


class RepAddForm(RepFormBase):
    """A new rep and the user behind them. The user is created by ``services.rep_create``."""

    username = forms.CharField(max_length=150, help_text="What the rep signs in with; also their key in imports.")

    field_order = ["username", "email", "first_name", "last_name"]

    def clean(self) -> dict[str, Any]:
        cleaned_data = super().clean() or {}
        if "username" in cleaned_data and "email" in cleaned_data:
            try:
                services.rep_user_validate(
                    username=cleaned_data["username"],
                    email=cleaned_data["email"],
                    first_name=cleaned_data.get("first_name", ""),
                    last_name=cleaned_data.get("last_name", ""),
                )
            except ValidationError as error:
                self.add_identity_errors(error)
        return cleaned_data


class RepChangeForm(RepFormBase):
    """An existing rep: the username stays; e-mail and name are saved by ``services.rep_update``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        user = self.instance.user
        self.fields["email"].initial = user.email
        self.fields["first_name"].initial = user.first_name
        self.fields["last_name"].initial = user.last_name

    def clean(self) -> dict[str, Any]:
        cleaned_data = super().clean() or {}
        if "email" in cleaned_data:
            user = self.instance.user
            try:
                services.rep_user_validate(
                    username=user.username,
                    email=cleaned_data["email"],
                    first_name=cleaned_data.get("first_name", ""),
                    last_name=cleaned_data.get("last_name", ""),
                    user=user,
                )
            except ValidationError as error:
                self.add_identity_errors(error)
        return cleaned_data


class OutOfOfficeForm(forms.Form):
    """The intermediate page of the "Set out of office" action."""

    starts_at = forms.SplitDateTimeField(widget=AdminSplitDateTime, help_text="In each rep's own time zone.")
    ends_at = forms.SplitDateTimeField(widget=AdminSplitDateTime, help_text="In each rep's own time zone.")
    reason = forms.CharField(max_length=200, required=False, help_text="Vacation, parental leave, training…")

    def clean(self) -> dict[str, Any]:
        cleaned_data = super().clean() or {}
        starts_at, ends_at = cleaned_data.get("starts_at"), cleaned_data.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", "The period must end after it starts: pick a later end.")
        return cleaned_data


# --- Inline formsets --------------------------------------------------------------------------------------------


def _kept_forms(formset: forms.BaseFormSet) -> list[Any]:
    """The forms that will be saved: valid, filled in and not marked for deletion."""
    return [
        form for form in formset.forms if form.is_valid() and form.cleaned_data and not form.cleaned_data.get("DELETE")
    ]


class WorkingHoursFormSet(forms.BaseInlineFormSet):
    """Refuses two windows that cover the same minute, so a rep's week reads one way."""

    def clean(self) -> None:
        windows = []
        for form in _kept_forms(self):
            weekday, start, end = (form.cleaned_data.get(name) for name in ("weekday", "start", "end"))
            if weekday is None or start is None or end is None or start == end:
                continue
            begins = int(weekday) * MINUTES_PER_DAY + start.hour * 60 + start.minute
            length = (end.hour * 60 + end.minute - start.hour * 60 - start.minute) % MINUTES_PER_DAY
            label = f"{WorkingHours.Weekday(int(weekday)).label} {start:%H:%M}–{end:%H:%M}"
            windows.append((begins, begins + length, label))
        problems = []
        for index, (begins, ends, label) in enumerate(windows):
            for other_begins, other_ends, other_label in windows[index + 1 :]:
                # Compare on a weekly clock, so a Sunday night shift meets Monday morning.
                for shift in (-MINUTES_PER_WEEK, 0, MINUTES_PER_WEEK):
                    if begins < other_ends + shift and other_begins + shift < ends:
                        problems.append(
                            f"{label} overlaps {other_label}; merge them into one window or change the times."
                        )
                        break
        if problems:
            raise ValidationError(problems)
        super().clean()


class TerritoryCriterionFormSet(forms.BaseInlineFormSet):
    """Names a repeated criterion instead of the generic "duplicate data" message."""

    def clean(self) -> None:
        seen: set[tuple[str, str]] = set()
        problems = []
        for form in _kept_forms(self):
            # The model's clean() has already normalized the value (DE, US-CA, SW1).
            key = (form.instance.kind, form.instance.value)
            if key in seen:
                problems.append(f"{form.instance} is listed twice; remove one of the rows.")
            seen.add(key)
        if problems:
            raise ValidationError(problems)
        super().clean()


class QueueMembershipFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        seen: set[int] = set()
        problems = []
        for form in _kept_forms(self):
            rep = form.cleaned_data.get("rep")
            if rep is None:
                continue
            if rep.pk in seen:
                problems.append(f"{rep} is a member twice; remove one of the rows.")
            seen.add(rep.pk)
        if problems:
            raise ValidationError(problems)
        super().clean()


class AccountDomainForm(forms.ModelForm):
    class Meta:
        model = AccountDomain
        fields = ["domain"]

    def clean_domain(self) -> str:
        typed = self.cleaned_data["domain"].strip()
        domain = validators.normalize_domain(typed)
        if domain != typed:
            raise ValidationError(
                "“%(typed)s” is a web address or e-mail, not a domain; enter just the domain: %(domain)s",
                code="not_bare_domain",
                params={"typed": typed, "domain": domain or "acme.com"},
            )
        return domain


class AccountDomainFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        seen: set[str] = set()
        problems = []
        for form in _kept_forms(self):
            domain = form.cleaned_data.get("domain")
            if domain in seen:
                problems.append(f"{domain} is listed twice; remove one of the rows.")
            if domain:
                seen.add(domain)
        if problems:
            raise ValidationError(problems)
        super().clean()
