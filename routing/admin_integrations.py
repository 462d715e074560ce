"""Admin for integrations: webhook subscriptions, CRM connectors with their reps' owner ids (inline and CSV
import), and the delivery log with its attempts and a resend action (routing/outbound.py)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from routing.models import (
    CrmConnector,
    CrmOwner,
    Delivery,
    DeliveryAttempt,
    EventType,
    WebhookSubscription,
    webhook_secret_new,
)
from routing.outbound import deliveries_resend
from routing.resources import CrmOwnerResource
from territories.admin import CsvImportExportMixin, ReadOnlyAdminMixin


class WebhookSubscriptionForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=EventType.choices, widget=forms.CheckboxSelectMultiple, help_text="The events POSTed to the URL."
    )
    url = forms.URLField(
        label="URL", max_length=500, assume_scheme="https", help_text="Where the events are POSTed (http or https)."
    )

    class Meta:
        model = WebhookSubscription
        fields = ["name", "url", "events", "active"]

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        if not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("Only http and https URLs are called.")
        return url


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    form = WebhookSubscriptionForm
    list_display = ["name", "url", "event_list", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["name", "url"]
    actions = ["secret_rotate"]

    @admin.display(description="events")
    def event_list(self, obj: WebhookSubscription) -> str:
        return ", ".join(obj.events or [])

    def save_model(self, request: HttpRequest, obj: WebhookSubscription, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            messages.warning(
                request,
                format_html(
                    "The signing secret of “{}” is <code>{}</code>. Copy it now: it is not shown again.",
                    obj.name,
                    obj.secret,
                ),
            )

    @admin.action(description="Rotate the signing secret (shown once)", permissions=["change"])
    def secret_rotate(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        for subscription in queryset:
            subscription.secret = webhook_secret_new()
            subscription.save(update_fields=["secret"])
            messages.warning(
                request,
                format_html(
                    "The new signing secret of “{}” is <code>{}</code>. Copy it now: it is not shown again.",
                    subscription.name,
                    subscription.secret,
                ),
            )


class CrmOwnerInline(admin.TabularInline):
    model = CrmOwner
    extra = 1
    autocomplete_fields = ["rep"]


@admin.register(CrmConnector)
class CrmConnectorAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "api_base", "token_env", "record_id_field", "active"]
    list_filter = ["kind", "active"]
    inlines = [CrmOwnerInline]
    # A base URL typed without its scheme is taken as https (Django 6's default; 5.2 still says http).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fields = [
        "name",
        "kind",
        "base_url",
        "token_env",
        "record_id_field",
        "hubspot_object",
        "salesforce_api_version",
        "active",
    ]


@admin.register(CrmOwner)
class CrmOwnerAdmin(CsvImportExportMixin, admin.ModelAdmin):
    """The reps' owner ids in each CRM; import a CSV ``connector,username,owner_id``."""

    resource_classes = [CrmOwnerResource]
    list_display = ["rep", "connector", "owner_id"]
    list_filter = ["connector"]
    search_fields = ["rep__user__username", "owner_id"]
    autocomplete_fields = ["rep"]


class DeliveryAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeliveryAttempt
    fields = readonly_fields = ("at", "response_code", "duration_ms", "error")
    extra = 0


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every event to every receiver: status, the last response, and each attempt. Resend puts a delivery
    back in line (a dead one gets one more attempt)."""

    list_display = [
        "id",
        "event_type",
        "receiver",
        "lead_id",
        "status",
        "attempts",
        "last_response_code",
        "created_at",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event__type", "subscription", "connector"]
    list_select_related = ["event", "subscription", "connector"]
    search_fields = ["=lead__id", "=event__id"]
    fields = readonly_fields = (
        "event_type",
        "receiver",
        "lead",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "last_response_code",
        "last_error",
        "crm_record_id",
        "crm_owner_id",
        "body",
    )
    inlines = [DeliveryAttemptInline]
    actions = ["resend"]

    @admin.display(description="event", ordering="event__type")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.type

    @admin.display(description="receiver")
    def receiver(self, obj: Delivery) -> str:
        return str(obj.subscription or obj.connector)

    @admin.display(description="body sent")
    def body(self, obj: Delivery) -> str:
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", obj.event.body)

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("routing.change_delivery")

    @admin.action(description="Resend the selected deliveries", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = deliveries_resend(list(queryset.values_list("pk", flat=True)))
        messages.success(request, f"{count} deliver{'y' if count == 1 else 'ies'} put back in line to be sent.")
