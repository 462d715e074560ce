"""Admin for coverage versions and drafts (leadrouter/coverage/versions.py).

The models live in ``territories`` (so the RevOps group holds their permissions), but these pages export,
compare, import and publish the whole model, which spans all three apps, so they are registered here.

- **Versions**: the numbered history, newest first; each version shows its document and what changed from the
  version before; *Compare* shows any two side by side as a list of added, removed and changed entries; *Roll
  back* shows the plan first and applies it on confirmation (a new version).
- **Drafts**: a whole coverage document as YAML, validated like an import; *Publish* shows the plan and what
  changed in the live model since the draft's version, then publishes; a time in *publish at* schedules it.

Everything needs the model permissions (RevOps); rolling back needs ``add_coveragerevision``, publishing
``change_coveragedraft``. Regional RevOps, who hold object grants only, see none of it.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from leadrouter.coverage import CoverageError, dump_yaml, versions
from leadrouter.coverage.validation import show
from leadrouter.replay import draft_latest_replay
from territories.models import CoverageDraft, CoverageRevision

MAX_UPLOAD_BYTES = 5_000_000


_SYMBOLS = {
    "added": "+",
    "create": "+",
    "changed": "~",
    "update": "~",
    "removed": "−",
    "delete": "−",
    "deactivate": "−",
}


def change_rows(changes: list[Any]) -> list[dict[str, Any]]:
    """Entries of a diff or a plan as table rows: what happened, to which entry, and each field's old and new
    value as the plan writes them."""
    return [
        {
            "symbol": _SYMBOLS.get(change.action, "~"),
            "action": change.action,
            "kind": change.kind,
            "key": change.key,
            "fields": [(item.field, show(item.old), show(item.new)) for item in change.fields],
        }
        for change in changes
    ]


def _error_lines(error: CoverageError) -> list[str]:
    """The import's messages, one per problem, as the command prints them."""
    return [f"{path}: {message}" if path else message for path, message in error.errors]


@admin.register(CoverageRevision)
class CoverageRevisionAdmin(admin.ModelAdmin):
    list_display = ["number", "created_at", "kind", "author", "scheduled_by", "message", "compare_link"]
    list_filter = ["kind"]
    search_fields = ["message"]
    list_select_related = ["author", "scheduled_by"]
    fields = ["number", "created_at", "kind", "author", "scheduled_by", "message", "changes", "document_yaml"]
    readonly_fields = ["number", "created_at", "kind", "author", "scheduled_by", "message", "changes", "document_yaml"]
    change_form_template = "admin/territories/coveragerevision/change_form.html"
    change_list_template = "admin/territories/coveragerevision/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[CoverageRevision]:
        # The list shows no documents (about 90 kB each on the demo organisation); a version's page loads its own.
        rows = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "territories_coveragerevision_changelist":
            return rows.defer("document")
        return rows

    def may_roll_back(self, request: HttpRequest) -> bool:
        return request.user.has_perm("territories.add_coveragerevision")

    @admin.display(description="compare")
    def compare_link(self, version: CoverageRevision) -> str:
        if version.number <= 1:
            return "—"
        url = reverse("admin:territories_coveragerevision_compare")
        return format_html(
            '<a href="{}?a={}&amp;b={}">with {}</a>', url, version.number - 1, version.number, version.number - 1
        )

    @admin.display(description="changes from the version before")
    def changes(self, version: CoverageRevision) -> str:
        before = CoverageRevision.objects.filter(number__lt=version.number).order_by("-number").first()
        if before is None:
            return "The first version."
        return format_html("<pre>{}</pre>", versions.documents_diff(before.document, version.document).render())

    @admin.display(description="document")
    def document_yaml(self, version: CoverageRevision) -> str:
        return format_html('<pre class="coverage-document">{}</pre>', dump_yaml(version.document))

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "compare/", self.admin_site.admin_view(self.compare_view), name="territories_coveragerevision_compare"
            ),
            path(
                "<int:number>/rollback/",
                self.admin_site.admin_view(self.rollback_view),
                name="territories_coveragerevision_rollback",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {
            **(extra_context or {}),
            "may_roll_back": self.may_roll_back(request),
            "may_draft": request.user.has_perm("territories.add_coveragedraft"),
        }
        return super().change_view(request, object_id, form_url, extra)

    def compare_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        numbers = list(CoverageRevision.objects.order_by("-number").values_list("number", flat=True)[:500])
        chosen = {}
        for side in ("a", "b"):
            value = request.GET.get(side, "")
            chosen[side] = int(value) if value.isdigit() and len(value) < 10 else None
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Compare coverage versions",
            "opts": self.opts,
            "numbers": numbers,
            "a": chosen["a"],
            "b": chosen["b"],
        }
        if chosen["a"] is not None and chosen["b"] is not None:
            try:
                diff = versions.versions_diff(chosen["a"], chosen["b"])
                context.update(diff=diff, rows=change_rows(diff.changes), counts=diff.counts())
            except CoverageError as error:
                context["errors"] = _error_lines(error)
        return TemplateResponse(request, "admin/territories/coveragerevision/compare.html", context)

    def rollback_view(self, request: HttpRequest, number: int) -> HttpResponse:
        if not self.may_roll_back(request):
            raise PermissionDenied
        version = get_object_or_404(CoverageRevision, number=number)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": f"Roll back to version {number}",
            "opts": self.opts,
            "version": version,
        }
        try:
            if request.method == "POST":
                _plan, made = versions.version_rollback(number, user=request.user)
                assert made is not None
                self.message_user(request, f"Rolled back to version {number} as version {made.number}.")
                return HttpResponseRedirect(reverse("admin:territories_coveragerevision_change", args=[made.pk]))
            plan = versions.rollback_plan(number)
            context.update(plan=plan, rows=change_rows(plan.changes))
        except CoverageError as error:
            context["errors"] = _error_lines(error)
        return TemplateResponse(request, "admin/territories/coveragerevision/rollback.html", context)


class CoverageDraftForm(forms.ModelForm):
    from_version = forms.IntegerField(required=False, widget=forms.HiddenInput)
    upload = forms.FileField(
        required=False,
        help_text="A coverage YAML file; it replaces the document above.",
    )

    class Meta:
        model = CoverageDraft
        fields = ["name", "text", "publish_at"]
        widgets = {
            "text": forms.Textarea(attrs={"rows": 30, "cols": 120, "class": "coverage-yaml", "spellcheck": "false"})
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "text" in self.fields:
            # An upload may stand in for the text.
            self.fields["text"].required = False

    def clean_upload(self) -> str | None:
        upload = self.cleaned_data.get("upload")
        if upload is None:
            return None
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_UPLOAD_BYTES // 1_000_000} MB.")
        try:
            return upload.read().decode("utf-8")
        except UnicodeDecodeError as error:
            raise forms.ValidationError("The file is not UTF-8 text.") from error

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if "text" not in self.fields:
            return cleaned
        publish_at = cleaned.get("publish_at")
        if "publish_at" in self.changed_data and publish_at is not None and publish_at <= timezone.now():
            self.add_error("publish_at", "Choose a time in the future, or use Publish… to publish now.")
        if cleaned.get("upload"):
            cleaned["text"] = cleaned["upload"]
        text = cleaned.get("text")
        if text is not None and "\x00" in text:
            self.add_error("text", "The document holds a NUL character.")
        elif not text:
            self.add_error("text", "Write the document here or upload a YAML file.")
        else:
            try:
                versions.draft_validate_text(text)
            except CoverageError as error:
                self.add_error("text", _error_lines(error))
        return cleaned


@admin.register(CoverageDraft)
class CoverageDraftAdmin(admin.ModelAdmin):
    form = CoverageDraftForm
    list_display = ["name", "state", "base", "publish_at", "scheduled_by", "created_by", "updated_at"]
    list_select_related = ["base", "published", "scheduled_by", "created_by"]
    search_fields = ["name"]
    change_form_template = "admin/territories/coveragedraft/change_form.html"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.is_published:
            return ["name", "published", "base", "text"]
        if obj is None:
            return ["name", "text", "upload", "publish_at", "from_version"]
        return ["name", "text", "upload", "publish_at", "base", "scheduled_by", "publish_error"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is not None and obj.is_published:
            return ["name", "published", "base", "text"]
        return ["base", "scheduled_by", "publish_error"]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # A new draft starts as the live model, or as the version named by ?from_version=N.
        number = request.GET.get("from_version", "")
        if number.isdigit() and len(number) < 10:
            version = CoverageRevision.objects.filter(number=int(number)).first()
            if version is not None:
                return {"text": dump_yaml(version.document), "from_version": version.number}
        return {"text": dump_yaml(versions.export_coverage())}

    def get_queryset(self, request: HttpRequest) -> QuerySet[CoverageDraft]:
        return super().get_queryset(request).select_related("base", "published")

    @admin.display(description="state")
    def state(self, draft: CoverageDraft) -> str:
        if draft.published:
            return f"published as version {draft.published.number}"
        if draft.publish_error:
            return "scheduled publish failed"
        if draft.publish_at:
            return "scheduled"
        return "draft"

    def save_model(self, request: HttpRequest, obj: CoverageDraft, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
            number = form.cleaned_data.get("from_version")
            base = CoverageRevision.objects.filter(number=number).first() if number else None
            obj.base = base or versions.version_current(author=request.user)
        if "publish_at" in form.changed_data:
            obj.scheduled_by = request.user if obj.publish_at else None  # type: ignore[assignment]
            obj.publish_error = ""
        super().save_model(request, obj, form, change)

    def may_publish(self, request: HttpRequest) -> bool:
        return request.user.has_perm("territories.change_coveragedraft")

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:pk>/publish/",
                self.admin_site.admin_view(self.publish_view),
                name="territories_coveragedraft_publish",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra: dict[str, Any] = dict(extra_context or {})
        draft = self.get_object(request, object_id)
        if draft is not None:
            extra.update(self.draft_context(draft))
            extra["may_publish"] = self.may_publish(request) and not draft.is_published
        return super().change_view(request, object_id, form_url, extra)

    def draft_context(self, draft: CoverageDraft) -> dict[str, Any]:
        """What the draft's pages show beside it: how far behind the live model it is, and what publishing
        it would change."""
        context: dict[str, Any] = {"draft": draft, "latest": versions.version_latest()}
        if draft.is_published:
            return context
        context["latest_replay"] = draft_latest_replay(draft)
        behind = versions.draft_behind(draft)
        if behind is not None:
            context.update(behind=behind, behind_rows=change_rows(behind.changes))
        try:
            plan = versions.draft_plan(draft)
            context.update(plan=plan, rows=change_rows(plan.changes))
        except CoverageError as error:
            context["errors"] = _error_lines(error)
        return context

    def publish_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.may_publish(request):
            raise PermissionDenied
        draft = get_object_or_404(CoverageDraft.objects.select_related("base", "published"), pk=pk)
        if request.method == "POST" and not draft.is_published:
            try:
                _plan, version = versions.draft_publish(draft, user=request.user)
            except CoverageError as error:
                for line in _error_lines(error):
                    self.message_user(request, line, level=messages.ERROR)
            else:
                self.message_user(request, f"Published draft {draft.name!r} as version {version.number}.")
                return HttpResponseRedirect(reverse("admin:territories_coveragerevision_change", args=[version.pk]))
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": f"Publish draft {draft.name}",
            "opts": self.opts,
            **self.draft_context(draft),
        }
        return TemplateResponse(request, "admin/territories/coveragedraft/publish.html", context)
