"""REST API for routing: lead intake and simulate. Reading a lead, with its receipt, first-touch clock and
escalations, is ``sla.api.LeadDetailView``."""

from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import permissions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from routing.api_leads import LIST_PARAMETERS, LeadPageSerializer, leads_list
from routing.authentication import ApiKeyAuthentication, IntakeClient, scope_required
from routing.forms import as_of_instant
from routing.intake import IDEMPOTENCY_KEY_MAX_LENGTH, LeadIntakeSerializer, Received, lead_validate, leads_receive
from routing.models import ApiKey, ApiScope
from routing.parsers import BodyTooLarge, LeadJSONParser, StrictText
from routing.selectors import lead_simulate
from territories.validators import time_zone_names


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
            "(leads:write, leads:read, receipts:read, touches:write, leads:status); a key without it gets 403 "
            "naming the scope.",
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
    """Any lead fields, as intake takes them; they are standardized exactly as at intake. ``as_of`` simulates at
    another time: working hours and time off are judged then (loads, turns and accounts are today's)."""

    lead = serializers.DictField(child=serializers.JSONField(), allow_empty=False)
    as_of = StrictText(
        required=False,
        max_length=40,
        help_text="ISO 8601: a wall-clock time read in time_zone (2026-12-07T08:30), or a time with an offset.",
    )
    time_zone = StrictText(required=False, max_length=64, help_text="IANA name; UTC when left out.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        as_of, zone = attrs.get("as_of"), attrs.get("time_zone", "")
        if zone and zone not in time_zone_names():
            raise serializers.ValidationError({"time_zone": f"{zone} is not an IANA time zone."})
        if zone and not as_of:
            raise serializers.ValidationError({"time_zone": "Give as_of too: the time to simulate at."})
        if as_of:
            try:
                attrs["now"] = as_of_instant(as_of, zone)
            except ValueError as error:
                raise serializers.ValidationError({"as_of": str(error)}) from error
        return attrs


class SimulateResultSerializer(serializers.Serializer):
    outcome = serializers.CharField()
    rep = serializers.CharField(allow_null=True, help_text="Username of the rep the lead would go to.")
    queue_id = serializers.IntegerField(allow_null=True)
    territory_id = serializers.IntegerField(allow_null=True)
    rule_id = serializers.IntegerField(allow_null=True)
    receipt = serializers.JSONField()
    as_of = serializers.DateTimeField(help_text="The instant simulated (now unless as_of was given).")


class SimulateView(APIView):
    """POST a lead; get the decision and its receipt under the live coverage model. Nothing is saved."""

    permission_classes = [CanViewRules]

    @extend_schema(request=SimulateSerializer, responses={200: SimulateResultSerializer}, tags=["routing"])
    def post(self, request: Request) -> Response:
        serializer = SimulateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        now = serializer.validated_data.get("now") or timezone.now()
        evaluation = lead_simulate(raw=serializer.validated_data["lead"], now=now)
        decision = evaluation.decision
        return Response(
            {
                "outcome": evaluation.outcome,
                "rep": decision.receipt["winner"]["username"] if decision and decision.receipt.get("winner") else None,
                "queue_id": decision.queue_id if decision else None,
                "territory_id": decision.territory_id if decision else None,
                "rule_id": decision.rule_id if decision else None,
                "receipt": evaluation.receipt(),
                "as_of": now.isoformat(),
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
    """Post one lead (a JSON object) or a batch (a JSON list); each is stored as ``received`` and routed.

    GET lists the leads the requester may read, for syncs (``routing.api_leads.leads_list``): an API key
    needs ``leads:read`` (or ``receipts:read``)."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [CanPostLeads, scope_required(ApiScope.LEADS_WRITE)]
    list_permission_classes = [
        permissions.IsAuthenticated,
        scope_required(ApiScope.LEADS_READ, ApiScope.RECEIPTS_READ),
    ]
    parser_classes = [LeadJSONParser]

    def get_permissions(self) -> list[Any]:
        request = getattr(self, "request", None)
        if request is not None and request.method in ("GET", "HEAD"):
            return [permission() for permission in self.list_permission_classes]
        return super().get_permissions()

    @extend_schema(
        operation_id="leads_list",
        tags=["leads"],
        parameters=LIST_PARAMETERS,
        responses={
            200: OpenApiResponse(LeadPageSerializer, description="One page, oldest change first."),
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="A filter or cursor that is not valid, named.",
                examples=[OpenApiExample("Bad time", value={"updated_since": ["Send an ISO 8601 time …"]})],
            ),
            401: OpenApiResponse(OpenApiTypes.OBJECT, description="Not signed in and no API key."),
            403: OpenApiResponse(OpenApiTypes.OBJECT, description="The API key lacks the scope leads:read."),
        },
    )
    def get(self, request: Request) -> Response:
        return leads_list(request)

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
            return Response(_received_body(received[0]), status=code)
        return Response(_received_batch_body(received), status=code)


def _api_key(request: Request) -> ApiKey | None:
    return request.user.api_key if isinstance(request.user, IntakeClient) else None


def _received_body(received: Received) -> dict[str, Any]:
    """``ReceivedSerializer``'s body for one lead, built directly: its field machinery cost more than the rest of
    the response (the serializers stay, for the schema)."""
    return {
        "id": received.lead_id,
        "status": str(received.status),
        "external_id": received.external_id,
        "created": received.created,
    }


def _received_batch_body(received: list[Received]) -> dict[str, Any]:
    """``ReceivedBatchSerializer``'s body, built directly (see ``_received_body``)."""
    return {"leads": [_received_body(r) for r in received]}


def _validated(data: dict[str, Any]) -> dict[str, Any]:
    payload, errors = lead_validate(data)
    if errors is not None:
        raise serializers.ValidationError(errors)
    return payload


def _validated_batch(data: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The batch's leads, validated, and the errors of the invalid ones by index (any error refuses the batch)."""
    most = settings.LEADROUTER_INTAKE_MAX_BATCH
    if not data:
        raise ParseError("The batch is empty; send at least one lead.")
    if len(data) > most:
        raise ParseError(f"A batch holds at most {most} leads; this one has {len(data)}.")
    payloads, errors = [], []
    for index, item in enumerate(data):
        payload, problems = lead_validate(item)
        if problems is None:
            payloads.append(payload)
        else:
            errors.append({"index": index, "errors": problems})
    return payloads, errors
