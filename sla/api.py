"""REST API for SLAs: reading a lead with its receipt, first-touch clock and escalations, and logging a touch of a
lead, which stops its clock.

Reading a lead is here rather than in ``routing.api`` (intake, simulate) because what it returns includes the
clock's state as of the request and the escalations, which the sla app owns.
"""

from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import permissions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from routing.access import lead_for_requester
from routing.api_leads import LeadClosedSerializer, closed_record
from routing.authentication import ApiKeyAuthentication, IntakeClient, scope_required
from routing.models import ApiScope, Assignment, Lead
from routing.parsers import SafeJSONParser, StrictText
from routing.selectors import assignment_history
from sla.models import TOUCH_NOTE_MAX_CHARS, LeadSla, Touch
from sla.services import TouchTimeError, sla_state, touch_log


class TouchCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Touch.Kind.choices)
    at = serializers.DateTimeField(
        required=False,
        help_text="When the touch happened; default now. Not before the lead's current assignment started, "
        "nor more than LEADROUTER_TOUCH_FUTURE_ALLOWANCE_SECONDS (2 minutes) in the future.",
    )
    note = StrictText(required=False, allow_blank=True, default="", max_length=TOUCH_NOTE_MAX_CHARS)


class TouchSerializer(serializers.ModelSerializer):
    by = serializers.CharField(source="by.username", allow_null=True, read_only=True)
    intake_source = serializers.CharField(source="intake_source.name", allow_null=True, read_only=True)

    class Meta:
        model = Touch
        fields = ["id", "kind", "at", "note", "by", "intake_source", "created_at", "logged_late"]
        read_only_fields = fields
        extra_kwargs = {
            "created_at": {"help_text": "When the touch was recorded."},
            "logged_late": {"help_text": "Recorded well after it happened (an integration catching up)."},
        }


class LeadSlaSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=LeadSla.State.choices)
    due_at = serializers.DateTimeField(allow_null=True)
    touched_at = serializers.DateTimeField(allow_null=True)
    breach_business_seconds = serializers.IntegerField(allow_null=True)
    speed_wall_seconds = serializers.IntegerField(allow_null=True)
    speed_business_seconds = serializers.IntegerField(allow_null=True)


class TouchCreatedSerializer(serializers.Serializer):
    touch = TouchSerializer()
    sla = LeadSlaSerializer(allow_null=True, help_text="The lead's first-touch clock; null when it never had one.")


class TouchCreateView(APIView):
    """Log a call, e-mail or meeting with a lead. The first touch stops the lead's SLA clock.

    An intake source may touch the leads it posted; a person the leads they may see (the owner rep,
    their managers, RevOps). Any other lead is a 404."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [permissions.IsAuthenticated, scope_required(ApiScope.TOUCHES_WRITE)]
    parser_classes = [SafeJSONParser]

    @extend_schema(
        operation_id="leads_touches_create",
        tags=["leads"],
        request=TouchCreateSerializer,
        responses={
            201: OpenApiResponse(TouchCreatedSerializer, description="Logged (a repeat returns the same touch)."),
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="Invalid; nothing was stored.",
                examples=[
                    OpenApiExample("Bad kind", value={"kind": ['"fax" is not a valid choice.']}),
                    OpenApiExample(
                        "Backdated",
                        value={
                            "at": ["A touch cannot be before the lead's current assignment started (2026-11-23 …)."]
                        },
                    ),
                ],
            ),
            401: OpenApiResponse(OpenApiTypes.OBJECT, description="Not signed in and no API key."),
            403: OpenApiResponse(OpenApiTypes.OBJECT, description="The API key lacks the scope touches:write."),
            404: OpenApiResponse(OpenApiTypes.OBJECT, description="No such lead, or not one you may see."),
        },
        examples=[
            OpenApiExample(
                "A call", request_only=True, value={"kind": "call", "at": "2026-11-23T09:12:00Z", "note": "Left a VM"}
            )
        ],
    )
    def post(self, request: Request, lead_id: int) -> Response:
        lead = lead_for_requester(requester=request.user, lead_id=lead_id)
        if lead is None:
            raise Http404
        serializer = TouchCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        is_system = isinstance(request.user, IntakeClient)
        try:
            touch = touch_log(
                lead=lead,
                kind=data["kind"],
                at=data.get("at"),
                by=None if is_system else request.user,
                intake_source=request.user.api_key if isinstance(request.user, IntakeClient) else None,
                note=data["note"],
            )
        except TouchTimeError as error:
            return Response({"at": [str(error)]}, status=status.HTTP_400_BAD_REQUEST)
        clock = LeadSla.objects.select_related("policy", "calendar").filter(lead=lead).first()
        sla = None
        if clock is not None:
            sla = {
                "state": sla_state(lead_sla=clock, now=timezone.now()),
                "due_at": clock.due_at,
                "touched_at": clock.touched_at,
                "breach_business_seconds": clock.breach_business_seconds,
                "speed_wall_seconds": clock.speed_wall_seconds,
                "speed_business_seconds": clock.speed_business_seconds,
            }
        return Response(TouchCreatedSerializer({"touch": touch, "sla": sla}).data, status=status.HTTP_201_CREATED)


# --- Reading a lead -------------------------------------------------------------------------------------


class AccountMatchSerializer(serializers.Serializer):
    method = serializers.CharField(source="account_match_method", help_text="How the account was found; blank: none.")
    confidence = serializers.FloatField(source="account_match_confidence", allow_null=True)
    weak = serializers.BooleanField(
        source="account_match_weak", help_text="A fuzzy match shown for review, never used for ownership."
    )


class LeadClockSerializer(serializers.Serializer):
    """The lead's first-touch clock. ``state`` is as of the request: on_track, at_risk, breached, met,
    missed (touched late), none, or stopped (the lead was closed or handed back before its first touch)."""

    policy = serializers.CharField(source="policy.name", allow_null=True, read_only=True)
    state = serializers.SerializerMethodField()
    due_at = serializers.DateTimeField(allow_null=True, read_only=True)
    touched_at = serializers.DateTimeField(allow_null=True, read_only=True)
    breach_business_seconds = serializers.IntegerField(allow_null=True, read_only=True)
    speed_wall_seconds = serializers.IntegerField(allow_null=True, read_only=True)
    speed_business_seconds = serializers.IntegerField(allow_null=True, read_only=True)
    reassignments = serializers.IntegerField(read_only=True)

    @extend_schema_field(OpenApiTypes.STR)
    def get_state(self, lead_sla: LeadSla) -> str:
        return sla_state(lead_sla=lead_sla, now=timezone.now())


class AssignmentHistorySerializer(serializers.Serializer):
    """One owner period of the lead: from when, who had it (a rep, or only a queue while it waited), who
    handed it over and why."""

    at = serializers.DateTimeField(source="assigned_at", read_only=True)
    ended_at = serializers.DateTimeField(allow_null=True, read_only=True)
    owner = serializers.CharField(source="rep.user.username", allow_null=True, read_only=True)
    queue = serializers.CharField(source="queue.name", allow_null=True, read_only=True)
    actor = serializers.CharField(
        source="assigned_by.username",
        allow_null=True,
        read_only=True,
        help_text="The person who made the change; null when routing or the SLA ladder did.",
    )
    reason = serializers.ChoiceField(choices=Assignment.Reason.choices, read_only=True)
    note = serializers.CharField(read_only=True)
    summary = serializers.SerializerMethodField()

    @extend_schema_field({"type": "string", "nullable": True})
    def get_summary(self, assignment: Assignment) -> str | None:
        receipt = assignment.receipt if isinstance(assignment.receipt, dict) else {}
        summary = receipt.get("summary")
        return summary if isinstance(summary, str) else None


class EscalationSummarySerializer(serializers.Serializer):
    """One escalation step that fired for the lead."""

    step = serializers.CharField(allow_null=True, read_only=True)
    action = serializers.CharField(read_only=True)
    rep = serializers.CharField(source="rep.user.username", allow_null=True, read_only=True)
    to_rep = serializers.CharField(source="to_rep.user.username", allow_null=True, read_only=True)
    reason = serializers.CharField(read_only=True)
    fired_at = serializers.DateTimeField(read_only=True)
    status = serializers.CharField(read_only=True)


class LeadSummarySerializer(serializers.Serializer):
    """What an API key with ``leads:read`` (and not ``receipts:read``) sees of a lead it posted: enough for a
    web form to say who will call back and by when."""

    id = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=Lead.Status.choices, read_only=True)
    created = serializers.DateTimeField(source="received_at", read_only=True)
    routed_at = serializers.DateTimeField(allow_null=True, read_only=True)
    external_id = serializers.SerializerMethodField()
    owner = serializers.CharField(source="owner.user.username", allow_null=True, read_only=True)
    owner_name = serializers.SerializerMethodField(help_text="The owner's full name, for a message to the lead.")
    queue = serializers.CharField(source="queue.name", allow_null=True, read_only=True)
    sla_due_at = serializers.SerializerMethodField(help_text="When the first touch is due; null without a clock.")

    @extend_schema_field({"type": "string", "nullable": True})
    def get_external_id(self, lead: Lead) -> str | None:
        return lead.external_id or None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_owner_name(self, lead: Lead) -> str | None:
        if lead.owner is None:
            return None
        return lead.owner.user.get_full_name() or lead.owner.user.username

    @extend_schema_field({"type": "string", "format": "date-time", "nullable": True})
    def get_sla_due_at(self, lead: Lead) -> str | None:
        # A lead that never had a clock has no LeadSla row; the reverse accessor then raises an AttributeError.
        clock = getattr(lead, "sla", None)
        due_at = getattr(clock, "due_at", None)
        return serializers.DateTimeField().to_representation(due_at) if due_at else None


# What GET /api/v1/leads/{id}/ shows of a lead, in this order.
_LEAD_DETAIL_FIELDS = [
    "id",
    "status",
    "created",
    "routed_at",
    "owner",
    "queue",
    "territory",
    "account",
    "rule",
    "duplicate_of",
    "score",
    "fit_score",
    "intent_score",
    "flags",
    "enrichment_failures",
    "account_match",
    "external_id",
    "source",
    "campaign",
    "email",
    "first_name",
    "last_name",
    "title",
    "phone",
    "company",
    "website",
    "country",
    "subdivision",
    "city",
    "postal_code",
    "industry",
    "employees",
    "size_band",
    "annual_revenue",
    "product_interest",
    "form_answers",
    "page_history",
    "receipt",
    "closed",
    "sla",
    "escalations",
    "assignments",
    "assignments_omitted",
]

# The owner periods GET /api/v1/leads/{id}/ shows: the latest ones, oldest first.
ASSIGNMENT_HISTORY_MAX = 50


def _blank_text(name: str) -> bool:
    try:
        field = Lead._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return isinstance(field, models.CharField) and field.blank


# Text fields the lead may not have: null when empty, so a blank never has to pass an enum or a format.
_OPTIONAL_TEXT = tuple(name for name in _LEAD_DETAIL_FIELDS if _blank_text(name))


class LeadDetailSerializer(serializers.ModelSerializer):
    created = serializers.DateTimeField(source="received_at", read_only=True)
    owner = serializers.CharField(source="owner.user.username", allow_null=True, read_only=True)
    queue = serializers.CharField(source="queue.name", allow_null=True, read_only=True)
    territory = serializers.CharField(source="territory.name", allow_null=True, read_only=True)
    account = serializers.CharField(source="account.name", allow_null=True, read_only=True)
    rule = serializers.CharField(source="rule.name", allow_null=True, read_only=True)
    account_match = AccountMatchSerializer(source="*", read_only=True)
    closed = serializers.SerializerMethodField()
    sla = LeadClockSerializer(read_only=True, allow_null=True)
    escalations = EscalationSummarySerializer(many=True, read_only=True)
    form_answers = serializers.JSONField(read_only=True)
    page_history = serializers.JSONField(read_only=True)
    receipt = serializers.JSONField(read_only=True)
    assignments = serializers.SerializerMethodField(
        help_text=f"The lead's owner periods, oldest first: the latest {ASSIGNMENT_HISTORY_MAX}."
    )
    assignments_omitted = serializers.SerializerMethodField(help_text="Older owner periods left out.")

    class Meta:
        model = Lead
        fields = _LEAD_DETAIL_FIELDS
        read_only_fields = fields
        extra_kwargs = {name: {"allow_null": True} for name in _OPTIONAL_TEXT}

    @extend_schema_field(LeadClosedSerializer(allow_null=True))
    def get_closed(self, lead: Lead) -> dict[str, Any] | None:
        return closed_record(lead)

    def _history(self, lead: Lead) -> tuple[list[Assignment], int]:
        """The history the view read (``context["history"]``), else read here."""
        history = self.context.get("history")
        return history if history is not None else assignment_history(lead=lead, limit=ASSIGNMENT_HISTORY_MAX)

    @extend_schema_field(AssignmentHistorySerializer(many=True))
    def get_assignments(self, lead: Lead) -> list[dict[str, Any]]:
        return AssignmentHistorySerializer(self._history(lead)[0], many=True).data

    @extend_schema_field(OpenApiTypes.INT)
    def get_assignments_omitted(self, lead: Lead) -> int:
        return self._history(lead)[1]

    def to_representation(self, instance: Lead) -> dict[str, Any]:
        data = super().to_representation(instance)
        for name in _OPTIONAL_TEXT:
            if data.get(name) == "":
                data[name] = None
        return data


_LEAD_OR_SUMMARY = PolymorphicProxySerializer(
    component_name="LeadOrSummary",
    serializers=[LeadDetailSerializer, LeadSummarySerializer],
    resource_type_field_name=None,
)


class LeadDetailView(APIView):
    """A lead, where it went and why. Intake sources see the leads they posted; people see the leads
    they may see (``routing.access``: RevOps all, a rep their own, its managers and deputies). Any other
    lead is a 404.

    An API key needs ``receipts:read`` for the whole lead with its receipt; with ``leads:read`` alone it gets
    the summary (status, owner, queue, SLA due)."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [permissions.IsAuthenticated, scope_required(ApiScope.LEADS_READ, ApiScope.RECEIPTS_READ)]

    @extend_schema(
        operation_id="leads_retrieve",
        tags=["leads"],
        responses={
            200: OpenApiResponse(
                _LEAD_OR_SUMMARY,
                description="The whole lead (people, and keys with receipts:read) or its summary (keys with "
                "leads:read only).",
            ),
            401: OpenApiResponse(OpenApiTypes.OBJECT, description="Not signed in and no API key."),
            403: OpenApiResponse(OpenApiTypes.OBJECT, description="The API key lacks the scope leads:read."),
            404: OpenApiResponse(OpenApiTypes.OBJECT, description="No such lead, or not one you may see."),
        },
    )
    def get(self, request: Request, lead_id: int) -> Response:
        lead = lead_for_requester(requester=request.user, lead_id=lead_id)
        if lead is None:
            raise Http404
        client = request.user
        if isinstance(client, IntakeClient) and not client.api_key.has_scope(ApiScope.RECEIPTS_READ):
            return Response(LeadSummarySerializer(lead).data)
        history = assignment_history(lead=lead, limit=ASSIGNMENT_HISTORY_MAX)
        return Response(LeadDetailSerializer(lead, context={"history": history}).data)
