"""REST API for routing: lead intake, reading a lead and its receipt, and simulate."""

from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.http import Http404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import permissions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from routing.access import lead_for_requester
from routing.authentication import ApiKeyAuthentication, IntakeClient, scope_required
from routing.intake import IDEMPOTENCY_KEY_MAX_LENGTH, LeadIntakeSerializer, leads_receive
from routing.models import ApiKey, ApiScope, Lead
from routing.parsers import BodyTooLarge, LeadJSONParser
from routing.selectors import lead_simulate


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents ``Authorization: Token <key>`` in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "An intake source's key, sent as `Token <key>`. Each endpoint needs a scope of the key "
            "(leads:write, leads:read, receipts:read, touches:write); a key without it gets 403 naming the scope.",
        }


class CanViewRules(permissions.BasePermission):
    """Simulate shows the whole routing matrix at work, so it is for those who may read the rules."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.has_perm("routing.view_rule"))


class CanPostLeads(permissions.BasePermission):
    """An intake source's API key (its scope is checked next), or a signed-in user who may add leads."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if isinstance(user, IntakeClient):
            return True
        return bool(user and user.is_authenticated and user.has_perm("routing.add_lead"))


class SimulateSerializer(serializers.Serializer):
    """Any lead fields, as intake takes them; they are standardized exactly as at intake."""

    lead = serializers.DictField(child=serializers.JSONField(), allow_empty=False)


class SimulateResultSerializer(serializers.Serializer):
    outcome = serializers.CharField()
    rep = serializers.CharField(allow_null=True, help_text="Username of the rep the lead would go to.")
    queue_id = serializers.IntegerField(allow_null=True)
    territory_id = serializers.IntegerField(allow_null=True)
    rule_id = serializers.IntegerField(allow_null=True)
    receipt = serializers.JSONField()


class SimulateView(APIView):
    """POST a lead; get the decision and its receipt under the live coverage model. Nothing is saved."""

    permission_classes = [CanViewRules]

    @extend_schema(request=SimulateSerializer, responses={200: SimulateResultSerializer}, tags=["routing"])
    def post(self, request: Request) -> Response:
        serializer = SimulateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        evaluation = lead_simulate(raw=serializer.validated_data["lead"])
        decision = evaluation.decision
        return Response(
            {
                "outcome": evaluation.outcome,
                "rep": decision.receipt["winner"]["username"] if decision and decision.receipt.get("winner") else None,
                "queue_id": decision.queue_id if decision else None,
                "territory_id": decision.territory_id if decision else None,
                "rule_id": decision.rule_id if decision else None,
                "receipt": evaluation.receipt(),
            }
        )


# --- Intake -------------------------------------------------------------------------------------------


class ReceivedSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="lead_id")
    status = serializers.CharField()
    external_id = serializers.CharField()
    created = serializers.BooleanField(help_text="False when the lead was already stored (same external id or key).")


class ReceivedBatchSerializer(serializers.Serializer):
    leads = ReceivedSerializer(many=True, help_text="One entry per posted lead, in the order posted.")


_LEAD_OR_BATCH = PolymorphicProxySerializer(
    component_name="LeadOrBatch",
    serializers=[LeadIntakeSerializer, LeadIntakeSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)
_RECEIVED_OR_BATCH = PolymorphicProxySerializer(
    component_name="ReceivedOrBatch",
    serializers=[ReceivedSerializer, ReceivedBatchSerializer],
    resource_type_field_name=None,
)


class LeadIntakeView(APIView):
    """Post one lead (a JSON object) or a batch (a JSON list); each is stored as ``received`` and routed."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [CanPostLeads, scope_required(ApiScope.LEADS_WRITE)]
    parser_classes = [LeadJSONParser]

    @extend_schema(
        operation_id="leads_create",
        tags=["leads"],
        request=_LEAD_OR_BATCH,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="Retrying with the same key returns the lead(s) of the first request instead of new ones. "
                "At most 200 characters.",
            )
        ],
        responses={
            201: OpenApiResponse(_RECEIVED_OR_BATCH, description="Stored; at least one lead is new."),
            200: OpenApiResponse(_RECEIVED_OR_BATCH, description="Every lead was already stored."),
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="Invalid; nothing was stored. One lead: field errors. A batch: errors by index. "
                "A body that is not JSON, not UTF-8, or nested over 32 levels: a detail naming where.",
                examples=[
                    OpenApiExample(
                        "Batch",
                        value={"errors": [{"index": 3, "errors": {"email": ["Enter a valid e-mail address."]}}]},
                    ),
                    OpenApiExample("One lead", value={"country": ['Unknown country "Narnia".']}),
                ],
            ),
            401: OpenApiResponse(OpenApiTypes.OBJECT, description="No API key, or an unknown or revoked one."),
            403: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="The API key lacks the scope leads:write, or the signed-in user may not add leads.",
            ),
            413: OpenApiResponse(OpenApiTypes.OBJECT, description="The body is over DATA_UPLOAD_MAX_MEMORY_SIZE."),
            415: OpenApiResponse(OpenApiTypes.OBJECT, description="The body is not application/json."),
        },
        examples=[
            OpenApiExample(
                "One lead",
                request_only=True,
                value={"email": "max@prospect.de", "company": "Prospect GmbH", "country": "DE", "external_id": "f-1"},
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        # DRF reads the body as a stream, past Django's own size check: refuse an oversized body before parsing it.
        if int(request.META.get("CONTENT_LENGTH") or 0) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise BodyTooLarge
        idempotency_key = request.headers.get("Idempotency-Key", "").strip()
        if len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH:
            raise ParseError(f"The Idempotency-Key header is at most {IDEMPOTENCY_KEY_MAX_LENGTH} characters.")
        data = request.data
        if isinstance(data, dict):
            payloads = [_validated(data)]
        elif isinstance(data, list):
            payloads, errors = _validated_batch(data)
            if errors:
                return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        else:
            raise ParseError("Send one lead as a JSON object, or a batch as a JSON list of objects.")

        received = leads_receive(payloads=payloads, intake_source=_api_key(request), idempotency_key=idempotency_key)
        code = status.HTTP_201_CREATED if any(r.created for r in received) else status.HTTP_200_OK
        if isinstance(data, dict):
            return Response(ReceivedSerializer(received[0]).data, status=code)
        return Response(ReceivedBatchSerializer({"leads": received}).data, status=code)


def _api_key(request: Request) -> ApiKey | None:
    return request.user.api_key if isinstance(request.user, IntakeClient) else None


def _validated(data: dict[str, Any]) -> dict[str, Any]:
    serializer = LeadIntakeSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _validated_batch(data: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The batch's leads, validated, and the errors of the invalid ones by index (any error refuses the batch)."""
    most = settings.LEADROUTER_INTAKE_MAX_BATCH
    if not data:
        raise ParseError("The batch is empty; send at least one lead.")
    if len(data) > most:
        raise ParseError(f"A batch holds at most {most} leads; this one has {len(data)}.")
    payloads, errors = [], []
    for index, item in enumerate(data):
        serializer = LeadIntakeSerializer(data=item)
        if serializer.is_valid():
            payloads.append(serializer.validated_data)
        else:
            errors.append({"index": index, "errors": serializer.errors})
    return payloads, errors


# --- Reading a lead -------------------------------------------------------------------------------------


class AccountMatchSerializer(serializers.Serializer):
    method = serializers.CharField(source="account_match_method", help_text="How the account was found; blank: none.")
    confidence = serializers.FloatField(source="account_match_confidence", allow_null=True)
    weak = serializers.BooleanField(
        source="account_match_weak", help_text="A fuzzy match shown for review, never used for ownership."
    )


class LeadClockSerializer(serializers.Serializer):
    """The lead's first-touch clock. ``state`` is as of the request: on_track, at_risk, breached, met,
    missed (touched late) or none."""

    policy = serializers.CharField(source="policy.name", allow_null=True, read_only=True)
    state = serializers.SerializerMethodField()
    due_at = serializers.DateTimeField(allow_null=True, read_only=True)
    touched_at = serializers.DateTimeField(allow_null=True, read_only=True)
    breach_business_seconds = serializers.IntegerField(allow_null=True, read_only=True)
    speed_wall_seconds = serializers.IntegerField(allow_null=True, read_only=True)
    speed_business_seconds = serializers.IntegerField(allow_null=True, read_only=True)
    reassignments = serializers.IntegerField(read_only=True)

    @extend_schema_field(OpenApiTypes.STR)
    def get_state(self, lead_sla: Any) -> str:
        from django.utils import timezone

        from sla.services import sla_state

        return sla_state(lead_sla=lead_sla, now=timezone.now())


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
        # The clock lives in the sla app (which routing does not import): read it through the reverse relation.
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
    "sla",
    "escalations",
]


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
    sla = LeadClockSerializer(read_only=True, allow_null=True)
    escalations = EscalationSummarySerializer(many=True, read_only=True)

    class Meta:
        model = Lead
        fields = _LEAD_DETAIL_FIELDS
        read_only_fields = fields
        extra_kwargs = {name: {"allow_null": True} for name in _OPTIONAL_TEXT}

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
        return Response(LeadDetailSerializer(lead).data)
