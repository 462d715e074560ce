"""REST API for SLAs: logging a touch of a lead, which stops its first-touch clock."""

from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from routing.access import lead_for_requester
from routing.authentication import ApiKeyAuthentication, IntakeClient, scope_required
from routing.models import ApiScope
from routing.parsers import SafeJSONParser
from sla.models import LeadSla, Touch
from sla.services import TouchTimeError, sla_state, touch_log


class TouchCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Touch.Kind.choices)
    at = serializers.DateTimeField(
        required=False,
        help_text="When the touch happened; default now. Not before the lead's current assignment started, "
        "nor more than LEADROUTER_TOUCH_FUTURE_ALLOWANCE_SECONDS (2 minutes) in the future.",
    )
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)


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
