"""Replay for RevOps: the page (choose a draft, a version or a file, a period and filters; see who gains and who
loses leads, with charts and a CSV of the leads that change hands) and ``POST /api/v1/routing/replay/``.

Replay reads every lead of the period and the whole coverage model, so only RevOps (``territories.access.
is_revops``) may run or read one; anyone else gets a 404 on the page and a 403 from the API. API keys have no
replay scope: integrations post and read their own leads, never the routing of everyone's.
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadrouter.replay import (
    Replayed,
    ReplayError,
    ReplayFilters,
    replay_draft,
    replay_run,
    replay_text,
    replay_version,
)
from routing.charts import hbar_chart
from routing.models import Queue
from routing.parsers import StrictText
from territories.access import is_revops
from territories.export_formats import escape_formula
from territories.models import CoverageDraft, CoverageRevision, ReplayRun

# The longest period a replay may cover, and the largest document it takes.
MAX_DAYS = 366
MAX_DOCUMENT_BYTES = 5_000_000
RECENT_RUNS = 20


def _check_revops(request: HttpRequest) -> None:
    if not is_revops(request.user):
        raise Http404("No such page.")


# --- The page --------------------------------------------------------------------------------------------------


class ReplayForm(forms.Form):
    replayed = forms.ChoiceField(label="Replay", help_text="A draft, a numbered version, the live model or a file.")
    document = forms.FileField(required=False, label="YAML file", help_text="When replaying a file.")
    days = forms.IntegerField(min_value=1, max_value=MAX_DAYS, initial=30, label="Last days")
    source = forms.CharField(required=False, max_length=100, label="Lead source", help_text="All when blank.")
    queue = forms.ModelChoiceField(
        Queue.objects.order_by("name"), required=False, label="Queue", help_text="Leads routing placed there then."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        drafts = [
            (f"draft:{pk}", f"Draft {name}")
            for pk, name in CoverageDraft.objects.filter(published__isnull=True).values_list("pk", "name")
        ]
        versions = [
            (f"version:{number}", f"Version {number}: {message}"[:120])
            for number, message in CoverageRevision.objects.order_by("-number").values_list("number", "message")[:50]
        ]
        replayed = self.fields["replayed"]
        assert isinstance(replayed, forms.ChoiceField)
        replayed.choices = [
            *drafts,
            ("live", "The live model (over its own history)"),
            ("file", "A YAML file"),
            *versions,
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("replayed") == "file":
            upload = cleaned.get("document")
            if upload is None:
                self.add_error("document", "Choose the YAML file to replay.")
            elif upload.size > MAX_DOCUMENT_BYTES:
                self.add_error("document", f"The file is larger than {MAX_DOCUMENT_BYTES // 1_000_000} MB.")
        return cleaned

    def replayed_choice(self) -> Replayed:
        """What was chosen, as the replay service takes it (ReplayError when it does not read)."""
        choice = self.cleaned_data["replayed"]
        if choice == "live":
            return Replayed(None, "live coverage")
        if choice == "file":
            upload = self.cleaned_data["document"]
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError as error:
                raise ReplayError([("", "The file is not UTF-8 text.")]) from error
            return replay_text(text, label=f"file {upload.name}"[:200])
        kind, _, key = choice.partition(":")
        if kind == "draft":
            return replay_draft(CoverageDraft.objects.get(pk=int(key)))
        return replay_version(int(key))

    def filters(self, now: datetime) -> ReplayFilters:
        queue = self.cleaned_data.get("queue")
        return ReplayFilters(
            since=now - timedelta(days=self.cleaned_data["days"]),
            until=now,
            source=self.cleaned_data.get("source") or "",
            queue_id=queue.pk if queue else None,
        )


@require_http_methods(["GET", "POST"])
@login_required
def replay_page(request: HttpRequest) -> HttpResponse:
    """The form and the latest replays; a valid form replays and opens the result."""
    _check_revops(request)
    initial = {"replayed": request.GET.get("replayed", "")}
    form = ReplayForm(request.POST or None, request.FILES or None, initial=initial)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        try:
            run = replay_run(replayed=form.replayed_choice(), filters=form.filters(timezone.now()), user=request.user)
        except ReplayError as error:
            errors = [f"{path}: {message}" if path else message for path, message in error.errors]
        else:
            return HttpResponseRedirect(reverse("replay-result", args=[run.pk]))
    runs = ReplayRun.objects.select_related("created_by").order_by("-created_at", "-id")[:RECENT_RUNS]
    return render(
        request,
        "routing/reports/replay.html",
        {"form": form, "errors": errors, "runs": runs},
        status=400 if request.method == "POST" else 200,
    )


@require_GET
@login_required
def replay_result(request: HttpRequest, run_id: int) -> HttpResponse:
    _check_revops(request)
    run = get_object_or_404(ReplayRun.objects.select_related("created_by", "draft"), pk=run_id)
    report = run.report
    reps = report.get("by_rep", [])
    moved = [line for line in reps if line["gains"] or line["losses"]]
    return render(
        request,
        "routing/reports/replay_result.html",
        {
            "run": run,
            "report": report,
            "moved": moved,
            "before_chart": hbar_chart(
                [(line["rep"], line["before"]) for line in reps], title="Leads per rep as routed then", unit="leads"
            ),
            "after_chart": hbar_chart(
                [(line["rep"], line["after"]) for line in reps],
                title=f"Leads per rep under {run.label}",
                unit="leads",
                value_labels=[f"{line['after']} ({line['change']:+d})" for line in reps],
            ),
            "queue_chart": hbar_chart(
                [(line["queue"], line["after"]) for line in report.get("by_queue", [])],
                title=f"Leads per queue under {run.label}",
                unit="leads",
                value_labels=[f"{line['after']} ({line['change']:+d})" for line in report.get("by_queue", [])],
            ),
            "listed": len(report.get("changed", [])),
            "explained": report.get("changed_count", 0) - report.get("unexplained", 0),
        },
    )


CSV_HEADERS = [
    "lead",
    "routed_at",
    "outcome_then",
    "rep_then",
    "queue_then",
    "rule_then",
    "outcome_now",
    "rep_now",
    "queue_now",
    "rule_now",
    "decided_by",
    "why_then",
]


@require_GET
@login_required
def replay_csv(request: HttpRequest, run_id: int) -> HttpResponse:
    """The leads that change hands as CSV; a cell a spreadsheet would run as a formula is written as text."""
    _check_revops(request)
    run = get_object_or_404(ReplayRun, pk=run_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="replay-{run.pk}-changed.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_HEADERS)
    for line in run.report.get("changed", []):
        before, after = line["before"], line["after"]
        row = [
            line["lead"],
            line["routed_at"],
            before["outcome"],
            before["rep"],
            before["queue"],
            before["rule"],
            after["outcome"],
            after["rep"],
            after["queue"],
            after["rule"],
            line["decided_by"],
            line["why"],
        ]
        writer.writerow(["" if value is None else escape_formula(value) for value in row])
    return response


# --- The API ----------------------------------------------------------------------------------------------------


class IsRevOps(permissions.BasePermission):
    message = "Replay is for RevOps."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_revops(request.user)


class ReplayRequestSerializer(serializers.Serializer):
    """What to replay (one of ``draft``, ``version``, ``document``; none: the live model) over which leads."""

    draft = StrictText(required=False, max_length=100, help_text="A draft's name.")
    version = serializers.IntegerField(required=False, min_value=1, help_text="A numbered version.")
    document = StrictText(
        required=False, max_length=MAX_DOCUMENT_BYTES, trim_whitespace=False, help_text="A whole coverage YAML."
    )
    days = serializers.IntegerField(required=False, min_value=1, max_value=MAX_DAYS, default=30)
    source = StrictText(required=False, allow_blank=True, max_length=100, default="")
    queue = StrictText(required=False, max_length=100, help_text="A queue's name: leads routed there then.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ("draft", "version", "document") if name in attrs]
        if len(given) > 1:
            raise serializers.ValidationError({name: "Give one of draft, version or document." for name in given})
        if "draft" in attrs:
            draft = CoverageDraft.objects.filter(name=attrs["draft"]).first()
            if draft is None:
                raise serializers.ValidationError({"draft": f"There is no draft {attrs['draft']!r}."})
            attrs["draft"] = draft
        if "version" in attrs and not CoverageRevision.objects.filter(number=attrs["version"]).exists():
            raise serializers.ValidationError({"version": f"There is no version {attrs['version']}."})
        if "queue" in attrs:
            queue_id = Queue.objects.filter(name=attrs["queue"]).values_list("pk", flat=True).first()
            if queue_id is None:
                raise serializers.ValidationError({"queue": f"There is no queue {attrs['queue']!r}."})
            attrs["queue_id"] = queue_id
        return attrs


class ReplayView(APIView):
    """POST what to replay; get the report (and the id of the stored run). Nothing but the run is written."""

    authentication_classes = [SessionAuthentication]
    permission_classes = [IsRevOps]

    @extend_schema(request=ReplayRequestSerializer, responses={200: OpenApiTypes.OBJECT}, tags=["routing"])
    def post(self, request: Request) -> Response:
        serializer = ReplayRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        now = timezone.now()
        filters = ReplayFilters(
            since=now - timedelta(days=data["days"]), until=now, source=data["source"], queue_id=data.get("queue_id")
        )
        try:
            if "draft" in data:
                replayed = replay_draft(data["draft"])
            elif "version" in data:
                replayed = replay_version(data["version"])
            elif "document" in data:
                replayed = replay_text(data["document"], label="posted document")
            else:
                replayed = Replayed(None, "live coverage")
            run = replay_run(replayed=replayed, filters=filters, user=request.user)
        except ReplayError as error:
            field = "draft" if "draft" in data else "version" if "version" in data else "document"
            return Response(
                {field: [f"{path}: {message}" if path else message for path, message in error.errors]}, status=400
            )
        return Response({"id": run.pk, "replayed": run.label, **run.report})
