"""REST API for integrations that keep another system in step with the router: closing a lead from outside
(``POST /api/v1/leads/{id}/status/``) and listing leads changed since a time, page by page
(``GET /api/v1/leads/``, served by ``routing.api.LeadIntakeView``, whose POST is intake).

Both answer only about the leads the requester may read (``routing.access``): an API key the leads posted with
it, a person the leads their role shows them. Any other lead is a 404 (status) or absent (list).
"""

from __future__ import annotations

import binascii
import datetime as dt
import re
from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import permissions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from routing.access import IntakeClient, lead_for_requester, leads_for_requester
from routing.authentication import ApiKeyAuthentication, scope_required
from routing.models import CLOSE_REASON_MAX_CHARS, ApiScope, Lead
from routing.parsers import SafeJSONParser, StrictText
from routing.services import STATUSES_FROM_OUTSIDE, LeadActionError, LeadStatusConflict, lead_status_set

# Leads per page of GET /api/v1/leads/: the default, and the most a client may ask for with page_size.
LEADS_PAGE_SIZE = 100
LEADS_PAGE_SIZE_MAX = 500
# An id in a filter or cursor: ASCII digits that fit a 64-bit column ("¹" is a digit to str.isdigit, not to int).
_ID = re.compile(r"[0-9]{1,18}")
# How many statuses, owners or queues one filter may name (comma-separated).
FILTER_VALUES_MAX = 20


class LeadClosedSerializer(serializers.Serializer):
    """Who closed the lead (a person's username, or the API key's name), when and why."""

    at = serializers.DateTimeField(source="closed_at", read_only=True)
    by = serializers.CharField(source="closed_by.username", allow_null=True, read_only=True)
    via = serializers.CharField(
        source="closed_via.name", allow_null=True, read_only=True, help_text="The API key that closed it, if any."
    )
    reason = serializers.CharField(source="close_reason", read_only=True)


def closed_record(lead: Lead) -> dict[str, Any] | None:
    """The lead's close record as the API shows it; None while it is open."""
    return LeadClosedSerializer(lead).data if lead.closed_at else None


# --- Closing a lead from outside ----------------------------------------------------------------------------


class LeadStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=STATUSES_FROM_OUTSIDE,
        help_text="converted (won), disqualified, nurture (back to marketing) or closed.",
    )
    reason = StrictText(
        required=False,
        # The close endpoint's own wording since it was published.
        error_messages={"invalid": "Send this as text (a JSON string)."},
        allow_blank=True,
        default="",
        max_length=CLOSE_REASON_MAX_CHARS,
        help_text="Why; required for disqualified and closed. At most 500 characters.",
    )


class LeadStatusResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Lead.Status.choices)
    changed = serializers.BooleanField(help_text="False when the lead was already closed so (nothing changed).")
    closed = LeadClosedSerializer(allow_null=True)


class LeadStatusView(APIView):
    """Close an open lead as converted, disqualified, nurture or closed, as its rep's page does: the rep's
    capacity is freed, their task done, the first-touch clock stopped and open escalations resolved with
    the reason.

    An API key needs ``leads:status`` and acts on the leads posted with it; a person on the leads they may
    see (the owner rep, their managers and the queue's deputies, RevOps). Repeating a close changes nothing
    (200, ``changed: false``); a lead closed otherwise, or not open, is a 409."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [permissions.IsAuthenticated, scope_required(ApiScope.LEADS_STATUS)]
    parser_classes = [SafeJSONParser]

    @extend_schema(
        operation_id="leads_status_create",
        tags=["leads"],
        request=LeadStatusSerializer,
        responses={
            200: OpenApiResponse(LeadStatusResultSerializer, description="Closed now, or already closed so."),
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="Invalid; nothing changed.",
                examples=[
                    OpenApiExample("Bad status", value={"status": ['"won" is not a valid choice.']}),
                    OpenApiExample("No reason", value={"reason": ["Say why the lead is disqualified (a reason)."]}),
                ],
            ),
            401: OpenApiResponse(OpenApiTypes.OBJECT, description="Not signed in and no API key."),
            403: OpenApiResponse(OpenApiTypes.OBJECT, description="The API key lacks the scope leads:status."),
            404: OpenApiResponse(OpenApiTypes.OBJECT, description="No such lead, or not one you may act on."),
            409: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="The lead is closed otherwise, or not open (being routed, waiting in a queue, "
                "discarded, a duplicate); ``status`` is its status now.",
                examples=[
                    OpenApiExample(
                        "Closed otherwise",
                        value={
                            "detail": "The lead is already disqualified: only an open lead can be closed (a person "
                            "may reopen it on its page).",
                            "status": "disqualified",
                        },
                    )
                ],
            ),
        },
        examples=[
            OpenApiExample("Converted", request_only=True, value={"status": "converted", "reason": "Opportunity 0061"})
        ],
    )
    def post(self, request: Request, lead_id: int) -> Response:
        lead = lead_for_requester(requester=request.user, lead_id=lead_id)
        if lead is None:
            raise Http404
        serializer = LeadStatusSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        client = request.user
        is_key = isinstance(client, IntakeClient)
        try:
            changed = lead_status_set(
                lead=lead,
                to=data["status"],
                reason=data["reason"],
                by=None if is_key else client,
                via=client.api_key if is_key else None,
            )
        except LeadStatusConflict as error:
            return Response({"detail": str(error), "status": lead.status}, status=status.HTTP_409_CONFLICT)
        except LeadActionError as error:
            return Response({"reason": [str(error)]}, status=status.HTTP_400_BAD_REQUEST)
        if not changed:
            # Closed before this request: show the close record as it is (who, when, why).
            lead = lead_for_requester(requester=request.user, lead_id=lead_id) or lead
        return Response({"id": lead.pk, "status": lead.status, "changed": changed, "closed": closed_record(lead)})


# --- Listing leads for a sync ---------------------------------------------------------------------------


class LeadListItemSerializer(serializers.Serializer):
    """A lead as a sync reads it: where it stands and who has it."""

    id = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=Lead.Status.choices, read_only=True)
    external_id = serializers.CharField(read_only=True, help_text="The sender's id; blank when none was sent.")
    source = serializers.CharField(read_only=True)
    created = serializers.DateTimeField(source="received_at", read_only=True)
    routed_at = serializers.DateTimeField(allow_null=True, read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    owner = serializers.CharField(source="owner.user.username", allow_null=True, read_only=True)
    owner_id = serializers.IntegerField(allow_null=True, read_only=True, help_text="The owner rep's id.")
    owner_email = serializers.CharField(source="owner.user.email", allow_null=True, read_only=True)
    queue = serializers.CharField(source="queue.name", allow_null=True, read_only=True)
    queue_id = serializers.IntegerField(allow_null=True, read_only=True)
    closed = serializers.SerializerMethodField()

    @extend_schema_field(LeadClosedSerializer(allow_null=True))
    def get_closed(self, lead: Lead) -> dict[str, Any] | None:
        return closed_record(lead)


class LeadPageSerializer(serializers.Serializer):
    next = serializers.URLField(
        allow_null=True, help_text="The next page; null on the last one (for now: leads changed later come after)."
    )
    results = LeadListItemSerializer(many=True)


def _cursor_encode(lead: Lead) -> str:
    return urlsafe_b64encode(f"{lead.updated_at.isoformat()}|{lead.pk}".encode()).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[dt.datetime, int]:
    """The (updated_at, id) a cursor points past; a ValidationError (400) for anything not made by us."""
    try:
        text = urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, pk = text.partition("|")
        position = (_in_utc(dt.datetime.fromisoformat(when)), int(pk) if _ID.fullmatch(pk) else -1)
    except (ValueError, UnicodeError, binascii.Error):
        position = None
    if position is None or position[0] is None or position[1] < 0:
        raise ValidationError({"cursor": ["Invalid cursor: use the next link as given."]})
    return position[0], position[1]


def _in_utc(when: dt.datetime | None) -> dt.datetime | None:
    """``when`` in UTC; None when it has no offset or is out of range once in UTC (year 1 at -18:00)."""
    if when is None or when.tzinfo is None:
        return None
    try:
        return when.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return None


def leads_page(leads: QuerySet[Lead], request: Request) -> tuple[list[Lead], str | None]:
    """One page of ``leads`` in the order they last changed, then by id, after the request's cursor, and the
    next page's URL (None on the last page).

    The cursor is the (updated_at, id) of the last lead read, so a page starts exactly past it: leads changed
    in one batch share a time and are still neither skipped nor read twice, and a lead changed while a sync
    pages moves past the cursor and is read again on a later page, never lost. (An offset into ties, as DRF's
    CursorPagination keeps, would skip a lead when another leaves the tie.)"""
    size = LEADS_PAGE_SIZE
    asked = request.query_params.get("page_size")
    if asked is not None:
        if not re.fullmatch(r"[0-9]{1,4}", asked) or not 1 <= int(asked) <= LEADS_PAGE_SIZE_MAX:
            raise ValidationError({"page_size": [f"Send a whole number from 1 to {LEADS_PAGE_SIZE_MAX}."]})
        size = int(asked)
    cursor = request.query_params.get("cursor")
    if cursor is not None:
        when, pk = _cursor_decode(cursor.strip())
        leads = leads.filter(Q(updated_at__gt=when) | Q(updated_at=when, pk__gt=pk))
    rows = list(leads.order_by("updated_at", "pk")[: size + 1])
    if len(rows) <= size:
        return rows, None
    rows = rows[:size]
    url = replace_query_param(request.build_absolute_uri(), "cursor", _cursor_encode(rows[-1]))
    return rows, url


def _values(request: Request, name: str) -> list[str]:
    """The comma-separated values of one filter (repeating it adds more), blanks left out."""
    values = [part.strip() for raw in request.query_params.getlist(name) for part in raw.split(",")]
    values = [value for value in values if value]
    if len(values) > FILTER_VALUES_MAX:
        raise ValidationError({name: [f"Name at most {FILTER_VALUES_MAX} values."]})
    for value in values:
        if "\x00" in value or len(value) > 254:
            raise ValidationError({name: [f"Not a valid value: {value[:40]!r}."]})
    return values


def _id_or_name(values: list[str], *, by_id: str, by_names: tuple[str, ...]) -> Q:
    """A filter matching any of ``values``: digits as an id, anything else by each of the name lookups."""
    query = Q(pk__in=[])
    for value in values:
        if _ID.fullmatch(value):
            query |= Q(**{by_id: int(value)})
        else:
            for lookup in by_names:
                query |= Q(**{lookup: value})
    return query


def leads_filtered(leads: QuerySet[Lead], request: Request) -> QuerySet[Lead]:
    """``leads`` narrowed by the list's filters; a ValidationError (400) names a bad one."""
    statuses = _values(request, "status")
    unknown = sorted(set(statuses) - set(Lead.Status.values))
    if unknown:
        raise ValidationError(
            {"status": [f"Unknown status {', '.join(unknown)}. Known: {', '.join(Lead.Status.values)}."]}
        )
    if statuses:
        leads = leads.filter(status__in=statuses)
    if owners := _values(request, "owner"):
        leads = leads.filter(
            _id_or_name(owners, by_id="owner_id", by_names=("owner__user__email__iexact", "owner__user__username"))
        )
    if queues := _values(request, "queue"):
        leads = leads.filter(_id_or_name(queues, by_id="queue_id", by_names=("queue__name",)))
    since = request.query_params.get("updated_since")
    if since is not None:
        try:
            when = _in_utc(parse_datetime(since.strip()))
        except ValueError:
            when = None
        if when is None:
            raise ValidationError(
                {
                    "updated_since": [
                        "Send an ISO 8601 time with its offset, such as 2026-12-01T09:30:00Z or "
                        "2026-12-01T10:30:00+01:00 (in a URL, + is %2B)."
                    ]
                }
            )
        leads = leads.filter(updated_at__gte=when)
    return leads


LIST_PARAMETERS = [
    OpenApiParameter(
        "status",
        OpenApiTypes.STR,
        description="Only leads in these statuses, comma-separated (received, queued, assigned, converted, …).",
    ),
    OpenApiParameter(
        "owner", OpenApiTypes.STR, description="Only leads owned by these reps: rep ids, e-mails or usernames."
    ),
    OpenApiParameter("queue", OpenApiTypes.STR, description="Only leads in these queues: ids or names."),
    OpenApiParameter(
        "updated_since",
        OpenApiTypes.DATETIME,
        description="Only leads changed at or after this time (ISO 8601 with an offset). A sync passes the "
        "updated_at of the last lead it read, less a minute: a change committed late can carry an earlier time.",
    ),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="From a page's next link."),
    OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": LEADS_PAGE_SIZE_MAX},
        description=f"Leads per page, {LEADS_PAGE_SIZE} unless asked; at most {LEADS_PAGE_SIZE_MAX}.",
    ),
]


def leads_list(request: Request) -> Response:
    """One page of the leads the requester may read, filtered, in the order they last changed."""
    leads = leads_filtered(leads_for_requester(requester=request.user), request).select_related(
        "owner__user", "queue", "closed_by", "closed_via"
    )
    rows, next_url = leads_page(leads, request)
    return Response({"next": next_url, "results": LeadListItemSerializer(rows, many=True).data})
