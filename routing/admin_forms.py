"""Admin for website form sources (``routing.models.FormSource``): the token a form posts with, shown with the
HTML to paste into the page, rotated by an action, and where visitors land afterwards."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from routing.form_posts import FORM_LEAD_FIELDS, IGNORED_FIELDS
from routing.models import FormSource, form_token_new


class FormSourceForm(forms.ModelForm):
    thank_you_url = forms.URLField(
        label="Thank-you URL",
        max_length=500,
        assume_scheme="https",
        help_text="Where the visitor lands after posting (303 See Other); http or https.",
    )

    class Meta:
        model = FormSource
        fields = ["name", "source", "thank_you_url", "honeypot_field", "active"]

    def clean_honeypot_field(self) -> str:
        name = self.cleaned_data["honeypot_field"]
        if name in FORM_LEAD_FIELDS or name in IGNORED_FIELDS or name in ("source", "external_id"):
            raise forms.ValidationError(f'"{name}" is a lead field; name the honeypot something people never fill in.')
        return name


def form_post_url(form_source: FormSource) -> str:
    """The absolute URL the form posts to."""
    return str(settings.LEADROUTER_BASE_URL).rstrip("/") + reverse("form-post", args=[form_source.token])


@admin.register(FormSource)
class FormSourceAdmin(admin.ModelAdmin):
    form = FormSourceForm
    list_display = ["name", "source", "active", "token", "thank_you_url"]
    list_filter = ["active"]
    search_fields = ["name", "source"]
    readonly_fields = ["token", "token_rotated_at", "created_at", "html_snippet"]
    fieldsets = [
        (None, {"fields": ["name", "source", "thank_you_url", "honeypot_field", "active"]}),
        ("Posting", {"fields": ["token", "token_rotated_at", "created_at", "html_snippet"]}),
    ]
    actions = ["rotate_tokens"]

    @admin.display(description="HTML for the page")
    def html_snippet(self, form_source: FormSource) -> str:
        if not form_source.pk:
            return "Shown once the form source is saved."
        return format_html(
            "<pre>{}</pre>",
            f'<form method="post" action="{form_post_url(form_source)}">\n'
            '  <input name="first_name" placeholder="First name">\n'
            '  <input name="last_name" placeholder="Last name">\n'
            '  <input name="email" type="email" required placeholder="Work e-mail">\n'
            '  <input name="company" placeholder="Company">\n'
            '  <textarea name="message"></textarea>\n'
            f'  <input name="{form_source.honeypot_field}" tabindex="-1" autocomplete="off" hidden>\n'
            '  <button type="submit">Send</button>\n'
            "</form>",
        )

    @admin.action(description="Rotate the token of the selected form sources (the old token stops working)")
    def rotate_tokens(self, request: HttpRequest, queryset: QuerySet[FormSource]) -> None:
        now = timezone.now()
        rotated = []
        for form_source in queryset:
            form_source.token = form_token_new()
            form_source.token_rotated_at = now
            form_source.save(update_fields=["token", "token_rotated_at"])
            rotated.append(f"{form_source.name}: {form_source.token}")
        self.message_user(
            request,
            f"New tokens (update the forms' action URLs): {'; '.join(rotated)}.",
            messages.SUCCESS,
        )
