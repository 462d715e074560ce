"""Queues that distribute leads, the leads themselves, and their assignment history."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator, URLValidator
from django.db import models
from django.db.models.deletion import ProtectedError
from django.db.models.functions import Lower
from django.utils import timezone
from simple_history.models import HistoricalRecords

from routing.conditions import ConditionError, parse_condition
from routing.fields import CompactJSONField
from territories.models import Account, Rep, Skill, Territory
from territories.picklists import INDUSTRIES, SIZE_BAND_CHOICES
from territories.validators import validate_country_code, validate_domain

# Why a lead was closed or sent back: the forms, the services and the API all hold reasons to this length.
CLOSE_REASON_MAX_CHARS = 500
# The note of the assignment a rep starts with "take next".
TAKEN_FROM_QUEUE_NOTE = "taken from the queue"


class QueueQuerySet(models.QuerySet["Queue"]):
    def delete(self) -> tuple[int, dict[str, int]]:
        catch_all = self.filter(is_catch_all=True).first()
        if catch_all is not None:
            raise ProtectedError("The catch-all queue cannot be deleted.", {catch_all})
        return super().delete()

    def catch_all(self) -> Queue:
        return self.get(is_catch_all=True)


class Queue(models.Model):
    """A pool of reps that shares leads by a distribution method.

    Exactly one queue is the catch-all: the last stop of every routing path, so
    no lead falls through. It cannot be deactivated or deleted.
    """

    class Method(models.TextChoices):
        ROUND_ROBIN = "round_robin", "Round robin"
        WEIGHTED = "weighted", "Weighted round robin"
        LOAD_BALANCED = "load_balanced", "Load-balanced (fewest open leads for capacity)"

    class WhenNobodyEligible(models.TextChoices):
        HOLD = "hold", "Hold the lead in this queue until a rep is eligible"
        OVERFLOW = "overflow", "Overflow to the fallback queue"
        HOLD_OFF_HOURS = (
            "hold_off_hours",
            "Hold for the first member's working hours when nobody is working; otherwise overflow",
        )

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    method = models.CharField(max_length=20, choices=Method.choices, default=Method.ROUND_ROBIN)
    active = models.BooleanField(default=True)
    is_catch_all = models.BooleanField(
        default=False, editable=False, help_text="The queue that takes every lead no rule placed."
    )
    required_skills = models.ManyToManyField(
        Skill,
        blank=True,
        related_name="queues",
        help_text="A rep must have every one of these to get a lead here.",
    )
    skip_off_hours_reps = models.BooleanField(
        default=True, help_text="Skip reps outside their working hours. Off: any active rep who is not away."
    )
    when_nobody_eligible = models.CharField(
        max_length=20,
        choices=WhenNobodyEligible.choices,
        default=WhenNobodyEligible.HOLD,
        help_text=(
            "Holding off hours keeps a lead for this queue's own people (their region, their language) until the "
            "first of them starts work, instead of sending it round the world; leads still overflow when everyone "
            "is at capacity or away."
        ),
    )
    inherit_skills = models.BooleanField(
        "keep skills of overflowing leads",
        default=True,
        help_text=(
            "A lead overflowing into this queue still needs the skills the queues before it required (a German "
            "lead stays with German speakers). Untick to apply only this queue's own required skills."
        ),
    )
    fallback = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="overflow_from",
        help_text="Where leads go when nobody here is eligible and the queue overflows.",
    )
    # Round-robin position; advanced only by an atomic UPDATE in the routing service.
    slack_webhook_url = models.URLField(
        blank=True, help_text="Optional Slack incoming webhook: every lead assigned through this queue is posted there."
    )
    rr_pointer = models.BigIntegerField(default=0, editable=False)
    members: models.ManyToManyField[Rep, QueueMembership] = models.ManyToManyField(
        Rep, through="QueueMembership", related_name="queues"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(m2m_fields=[required_skills], excluded_fields=["rr_pointer"])
    objects = QueueQuerySet.as_manager()

    class Meta:
        ordering = ["-is_catch_all", "name"]
        # Granted per queue (django-guardian): a manager's deputy acts on the queue's leads as the manager would.
        permissions = [("deputize_queue", "Can act as a manager for this queue's leads")]
        constraints = [
            models.UniqueConstraint(
                fields=["is_catch_all"],
                condition=models.Q(is_catch_all=True),
                name="queue_single_catch_all",
                violation_error_message="There is already a catch-all queue.",
            ),
            models.CheckConstraint(
                condition=models.Q(is_catch_all=False) | models.Q(active=True),
                name="queue_catch_all_active",
                violation_error_message="The catch-all queue cannot be deactivated.",
            ),
            models.CheckConstraint(
                condition=models.Q(is_catch_all=False) | models.Q(fallback__isnull=True),
                name="queue_catch_all_no_fallback",
                violation_error_message="The catch-all queue is the last stop; it has no fallback.",
            ),
            models.CheckConstraint(condition=~models.Q(fallback=models.F("id")), name="queue_not_own_fallback"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.is_catch_all and not self.active:
            errors["active"] = "The catch-all queue cannot be deactivated: every unmatched lead goes there."
        if self.is_catch_all and self.fallback_id:
            errors["fallback"] = "The catch-all queue is the last stop; clear its fallback."
        if (
            self.when_nobody_eligible in (self.WhenNobodyEligible.OVERFLOW, self.WhenNobodyEligible.HOLD_OFF_HOURS)
            and not self.fallback_id
            and not self.is_catch_all
        ):
            errors["fallback"] = "Choose a fallback queue, or hold leads when nobody is eligible."
        # Following fallbacks from here must end, not come back to this queue.
        seen: set[int] = set()
        node = self.fallback
        while node is not None and "fallback" not in errors:
            if self.pk is not None and node.pk == self.pk:
                errors["fallback"] = "This fallback leads back to this queue; the chain must end."
            if node.pk in seen:
                break
            seen.add(node.pk)
            node = node.fallback
        if errors:
            raise ValidationError(errors)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if self.is_catch_all:
            raise ProtectedError("The catch-all queue cannot be deleted.", {self})
        return super().delete(*args, **kwargs)


class QueueMembership(models.Model):
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="memberships")
    rep = models.ForeignKey(Rep, on_delete=models.CASCADE, related_name="memberships")
    weight = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="Weighted queues give a rep of weight 2 twice the leads.",
    )
    active = models.BooleanField(default=True, help_text="Off: the rep stays listed but gets no leads from this queue.")
    position = models.PositiveIntegerField(default=0, help_text="Order in the round-robin rotation.")

    history = HistoricalRecords()

    class Meta:
        ordering = ["queue", "position", "rep_id"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "rep"], name="membership_unique_rep"),
            models.CheckConstraint(condition=models.Q(weight__gte=1), name="membership_weight_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.rep} in {self.queue}"


class Lead(models.Model):
    """An inbound lead. The row is its own outbox: it is stored as ``received``
    before anything else can fail, and routing picks it up from there."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        ROUTING = "routing", "Routing"
        QUEUED = "queued", "Waiting in queue"
        ASSIGNED = "assigned", "Assigned"
        ACCEPTED = "accepted", "Accepted"
        WORKING = "working", "Working"
        NURTURE = "nurture", "Nurture"
        DISQUALIFIED = "disqualified", "Disqualified"
        DISCARDED = "discarded", "Discarded"
        DUPLICATE = "duplicate", "Duplicate"
        CONVERTED = "converted", "Converted (won)"
        CLOSED = "closed", "Closed"

    OPEN_STATUSES = (Status.ASSIGNED, Status.ACCEPTED, Status.WORKING)
    # The ways a rep (or their manager) closes an open lead; each may be reopened for a while
    # (``LEADROUTER_REOPEN_DAYS``).
    CLOSE_STATUSES = (Status.DISQUALIFIED, Status.NURTURE, Status.CONVERTED, Status.CLOSED)

    class Lane(models.TextChoices):
        """How the lead travels to routing: live leads never wait behind bulk work (docs/routing.md)."""

        LIVE = "live", "Live"
        BULK = "bulk", "Bulk"

    # Raw input, kept as received.
    raw_payload = models.JSONField(default=dict)
    external_id = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=100, blank=True)
    campaign = models.CharField(max_length=200, blank=True)
    intake_source = models.ForeignKey(
        "ApiKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="leads",
        db_index=False,  # lead_intake_source_idx, below.
        help_text="The API key the lead was posted with. Empty: CSV import or admin.",
    )
    idempotency_key = models.CharField(
        max_length=200, blank=True, help_text="The Idempotency-Key header the lead was posted with."
    )
    lead_import = models.ForeignKey(
        "LeadImport",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="leads",
        help_text="The CSV import the lead came in with.",
    )

    # Standardized contact and company fields.
    email = models.EmailField(max_length=254, blank=True)
    email_domain = models.CharField(max_length=253, blank=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    title = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=32, blank=True, help_text="E.164")
    company = models.CharField(max_length=200, blank=True)
    website = models.CharField(max_length=253, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    subdivision = models.CharField(max_length=6, blank=True, help_text="ISO 3166-2")
    city = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    industry = models.CharField(max_length=30, choices=INDUSTRIES, blank=True)
    employees = models.PositiveIntegerField(null=True, blank=True)
    size_band = models.CharField(max_length=10, choices=SIZE_BAND_CHOICES, blank=True)
    annual_revenue = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    product_interest = models.CharField(max_length=50, blank=True)
    is_free_email = models.BooleanField(default=False)
    company_key = models.CharField(max_length=200, blank=True, help_text="The company name as matching compares it.")
    # Values standardization could not map, by field, so nothing is silently dropped.
    flags = models.JSONField(default=dict, blank=True)
    # Enrichment: field → provider that filled it, and provider → why it failed.
    enrichment_sources = models.JSONField(default=dict, blank=True)
    enrichment_failures = models.JSONField(default=dict, blank=True)

    # Scoring (empty when no scoring rules exist).
    fit_score = models.IntegerField(null=True, blank=True)
    intent_score = models.IntegerField(null=True, blank=True)
    score = models.IntegerField(null=True, blank=True)

    # Account match: how, how sure, and whether RevOps should review it.
    account_match_method = models.CharField(max_length=20, blank=True)
    account_match_confidence = models.FloatField(null=True, blank=True)
    account_match_weak = models.BooleanField(
        default=False,
        help_text="A fuzzy match below the trusted confidence: shown for review, never used for ownership.",
    )

    # Routing outcome.
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED)
    lane = models.CharField(
        max_length=4,
        choices=Lane.choices,
        default=Lane.LIVE,
        editable=False,
        help_text="Live: a single post or a small batch. Bulk: a big batch or a CSV import.",
    )
    owner = models.ForeignKey(Rep, null=True, blank=True, on_delete=models.PROTECT, related_name="leads")
    queue = models.ForeignKey(Queue, null=True, blank=True, on_delete=models.PROTECT, related_name="leads")
    territory = models.ForeignKey(Territory, null=True, blank=True, on_delete=models.SET_NULL, related_name="leads")
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="leads")
    rule = models.ForeignKey(
        "Rule", null=True, blank=True, on_delete=models.SET_NULL, related_name="leads", help_text="The rule that won."
    )
    duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="duplicates",
        help_text="The open lead with the same e-mail this one was attached to.",
    )
    # Why the lead went where it went: every step of the pipeline, for the lead's page, the API and admin.
    # Stored packed (about 200 bytes instead of 2 KB of JSON) and read back as the full dict.
    receipt = CompactJSONField(default=dict, blank=True)
    routing_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    routing_error = models.TextField(blank=True, help_text="Set when routing failed and the catch-all queue took it.")

    received_at = models.DateTimeField(auto_now_add=True)
    routed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Who closed the lead, when and why (routing.ownership.leads_close); cleared when it is reopened, the
    # close then kept in the reopening assignment's note.
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    close_reason = models.CharField(max_length=CLOSE_REASON_MAX_CHARS, blank=True)
    # The API key an integration closed the lead with (POST /api/v1/leads/{id}/status/); ``closed_by`` is then
    # empty. Cleared with the rest of the close record when the lead is reopened.
    closed_via = models.ForeignKey(
        "ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            # The outbox sweep asks for leads still in "received" after N seconds, and a routing task takes
            # the oldest waiting leads in (received_at, id) order: both read them in this index's order, so a
            # batch reads its own rows, whatever the backlog behind them (``routing.dispatch._claim``).
            models.Index(
                fields=["received_at", "id"], condition=models.Q(status="received"), name="lead_received_outbox_idx"
            ),
            # A routing task fills its batch with the oldest waiting leads of its own lane: without the lane
            # first, a live task would walk past a whole bulk backlog to find the live leads.
            models.Index(
                fields=["lane", "received_at", "id"],
                condition=models.Q(status="received"),
                name="lead_received_lane_idx",
            ),
            # "My queue": a rep's open leads.
            models.Index(fields=["owner", "status"], name="lead_owner_status_idx"),
            # Duplicate detection looks up open leads by e-mail.
            # (case-insensitive: mailboxes are, in practice)
            models.Index(Lower("email"), name="lead_email_lower_idx"),
            # Syncs list leads changed since a time, paged by (updated_at, id) (GET /api/v1/leads/).
            models.Index(fields=["updated_at", "id"], name="lead_updated_idx"),
            # An API key's leads (the API's scoping; the leads to update when a key is deleted). Only leads posted
            # with a key: intake looks up a CSV import's external ids among the leads without one
            # (``intake._stored_with``), key by key through the unique constraints' indexes; with statistics
            # taken while every lead had a key, the planner read an index of every lead's key instead, believed
            # that few had none, and walked all of them for each key (17 s for a 1,000-row chunk of an import
            # among 12,000 leads, measured).
            models.Index(
                fields=["intake_source"], name="lead_intake_source_idx", condition=models.Q(intake_source__isnull=False)
            ),
        ]
        constraints = [
            # A repeated external id from one source, posted with one API key, is the same lead. Ids are scoped
            # to the key: another key's lead with the same ids is another lead, never revealed to this one.
            models.UniqueConstraint(
                fields=["intake_source", "source", "external_id"],
                condition=~models.Q(external_id="") & models.Q(intake_source__isnull=False),
                name="lead_unique_external_id",
            ),
            # Without a key (CSV imports, people posting signed in) the ids share one space; NULL would not
            # collide in the constraint above, so it has its own.
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~models.Q(external_id="") & models.Q(intake_source__isnull=True),
                name="lead_unique_external_id_without_key",
            ),
            # A repeated Idempotency-Key from one API key is the same request.
            models.UniqueConstraint(
                fields=["intake_source", "idempotency_key"],
                condition=~models.Q(idempotency_key="") & models.Q(intake_source__isnull=False),
                name="lead_unique_idempotency_key",
            ),
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=~models.Q(idempotency_key="") & models.Q(intake_source__isnull=True),
                name="lead_unique_idempotency_key_without_key",
            ),
        ]

    def __str__(self) -> str:
        who = " ".join(part for part in (self.first_name, self.last_name) if part) or self.email or f"Lead {self.pk}"
        return f"{who} ({self.company})" if self.company else who

    # The form's answers and the pages visited, as posted: read from the raw payload rather than copied
    # beside it.
    @property
    def form_answers(self) -> dict[str, Any]:
        value = self.raw_payload.get("form_answers") if isinstance(self.raw_payload, dict) else None
        return value if isinstance(value, dict) else {}

    @form_answers.setter
    def form_answers(self, value: dict[str, Any]) -> None:
        self.raw_payload = {**(self.raw_payload if isinstance(self.raw_payload, dict) else {}), "form_answers": value}

    @property
    def page_history(self) -> list[Any]:
        value = self.raw_payload.get("page_history") if isinstance(self.raw_payload, dict) else None
        return value if isinstance(value, list) else []

    @page_history.setter
    def page_history(self, value: list[Any]) -> None:
        self.raw_payload = {**(self.raw_payload if isinstance(self.raw_payload, dict) else {}), "page_history": value}


class Assignment(models.Model):
    """One owner period of a lead: who got it, through which queue, and why."""

    class Reason(models.TextChoices):
        ROUTED = "routed", "Routed by rules"
        MANUAL = "manual", "Reassigned by hand"
        NOT_MINE = "not_mine", "Sent back by the rep"
        ESCALATION = "escalation", "Reassigned by SLA escalation"
        DEPARTURE = "departure", "Rep departure"
        REOPENED = "reopened", "Reopened after closing"

    # No constraints in the database: the history is appended only by the ownership layer
    # (routing/ownership.py), from lead, rep, queue and user rows it holds in the same transaction, and its
    # four checks per row at every routing batch's commit were about half of the commit. Deleting a lead still
    # deletes its history, and a rep or queue with history still cannot be deleted (Django's on_delete).
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="assignments", db_constraint=False)
    rep = models.ForeignKey(
        Rep, null=True, blank=True, on_delete=models.PROTECT, related_name="assignments", db_constraint=False
    )
    queue = models.ForeignKey(
        Queue, null=True, blank=True, on_delete=models.PROTECT, related_name="assignments", db_constraint=False
    )
    reason = models.CharField(max_length=20, choices=Reason.choices, default=Reason.ROUTED)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    note = models.TextField(blank=True)
    # The routing receipt: rules evaluated, territory, candidates and why each was skipped.
    receipt = models.JSONField(default=dict, blank=True)
    assigned_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["lead", "-assigned_at"]
        indexes = [
            # A lead's history, newest first.
            models.Index(fields=["lead", "-assigned_at"], name="assignment_lead_idx"),
            # A rep's new leads since their midnight (daily caps).
            models.Index(fields=["rep", "assigned_at"], name="assignment_rep_day_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lead} → {self.rep or self.queue}"

    @property
    def taken_from_queue(self) -> bool:
        """The rep took the lead from a shared queue ("take next") rather than routing giving it to them."""
        return self.reason == self.Reason.ROUTED and self.note == TAKEN_FROM_QUEUE_NOTE


class LeadImport(models.Model):
    """One CSV file of leads, imported in admin or with ``manage.py import_leads``, and its row-numbered report."""

    file_name = models.CharField(max_length=255)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    total_rows = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0, help_text="New leads stored.")
    existing = models.PositiveIntegerField(default=0, help_text="Rows whose external id was already stored.")
    rejected = models.PositiveIntegerField(default=0, help_text="Rows with errors, listed in the report.")
    # [{"row": 7, "errors": {"email": ["Enter a valid e-mail address."]}}, ...]
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.file_name} ({timezone.localtime(self.created_at):%Y-%m-%d %H:%M %Z})"


class Notification(models.Model):
    """The notification outbox: one notice about one assignment (the new owner's e-mail and Slack post) or
    one SLA escalation (the ladder's reminders and manager alerts). At most one per assignment or
    escalation and kind, whoever sends it; ``routing.notify`` sends them, and renders each kind with what
    its app registered there."""

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        SLACK = "slack", "Slack"
        # The SLA ladder's notices: planned by the escalation sweep, rendered by the sla app.
        SLA_REMINDER_EMAIL = "sla_reminder_email", "SLA reminder e-mail"
        SLA_REMINDER_SLACK = "sla_reminder_slack", "SLA reminder on Slack"
        SLA_ALERT_EMAIL = "sla_alert_email", "SLA manager alert e-mail"
        SLA_ALERT_SLACK = "sla_alert_slack", "SLA manager alert on Slack"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        # The worker sending it stopped before recording the outcome, and the channel is not retried
        # automatically (see routing.notify.RETRY_WHEN_STUCK): a person decides whether to resend.
        UNKNOWN = "unknown", "Delivery unknown"

    # No index of its own: the unique (assignment, kind) index starts with it. SLA notices have none. No
    # constraint either (see ``lead``): routing writes it with the assignment it inserted in the same batch.
    assignment = models.ForeignKey(
        Assignment,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        db_index=False,
        db_constraint=False,
    )
    # An id, not a foreign key: routing sits below sla and never imports it.
    escalation_id = models.BigIntegerField(
        null=True, blank=True, help_text="The SLA escalation (sla.Escalation) a ladder notice is about."
    )
    # Lead and rep have no constraint in the database: a notice is an append-only row written only by the
    # application, with the lead and rep of an assignment it just made or of a clock it holds, and checking
    # them at commit cost more than writing the row (the lead's check also locks the lead's row, dirtying a
    # page of the lead table per SLA reminder). Reps are deactivated, not deleted; deleting a lead or a rep
    # goes through the ORM, which deletes their notices first.
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="notifications", db_constraint=False)
    # The rep the notice is about: its recipient, except for a manager alert, which goes to ``recipients``.
    rep = models.ForeignKey(Rep, on_delete=models.CASCADE, related_name="notifications", db_constraint=False)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    recipients = models.JSONField(
        null=True, blank=True, help_text="E-mail addresses it goes to instead of the rep's own (a manager alert)."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sending_since = models.DateTimeField(
        null=True, blank=True, help_text="When the latest attempt to send it began (its claim)."
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "kind"], name="notification_once_per_kind"),
            models.UniqueConstraint(
                fields=["escalation_id", "kind"],
                condition=models.Q(escalation_id__isnull=False),
                name="notification_once_per_escalation_kind",
            ),
            models.CheckConstraint(
                condition=models.Q(assignment__isnull=False) | models.Q(escalation_id__isnull=False),
                name="notification_about_assignment_or_escalation",
            ),
        ]
        indexes = [
            models.Index(fields=["created_at"], condition=models.Q(status="pending"), name="notification_pending_idx"),
            # The sweep's "left sending since before the cutoff" (a worker died while sending).
            models.Index(
                fields=["sending_since"], condition=models.Q(status="sending"), name="notification_sending_idx"
            ),
            # The routing health page: notices whose delivery is unknown or that failed for good, newest first.
            models.Index(
                fields=["created_at"],
                condition=models.Q(status__in=["unknown", "failed"]),
                name="notification_undelivered_idx",
            ),
        ]

    def __str__(self) -> str:
        if self.kind in (self.Kind.SLA_ALERT_EMAIL, self.Kind.SLA_ALERT_SLACK):
            return f"{self.get_kind_display()} about {self.rep}'s lead {self.lead}"
        return f"{self.get_kind_display()} to {self.rep} about {self.lead}"


class RepTask(models.Model):
    """The in-app to-do an assignment creates: work this lead by ``due_at``."""

    # The assignment, and its lead and rep copied for the rep's task list. Only the ownership layer writes a
    # task, from its assignment in the same statement batch, so the database need not check these again at
    # every commit (``db_constraint=False``); deleting an assignment, a lead or a rep still deletes their tasks.
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="task", db_constraint=False)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="tasks", db_constraint=False)
    rep = models.ForeignKey(Rep, on_delete=models.CASCADE, related_name="tasks", db_constraint=False)
    title = models.CharField(max_length=300)
    due_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at"]
        indexes = [
            models.Index(fields=["rep", "due_at"], condition=models.Q(done_at__isnull=True), name="reptask_open_idx"),
        ]

    def __str__(self) -> str:
        return self.title


class WorkerHeartbeat(models.Model):
    """The last time a Celery worker ran the periodic heartbeat: proof that beat,
    broker and worker are all moving."""

    name = models.CharField(max_length=50, primary_key=True)
    last_seen_at = models.DateTimeField()
    hostname = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.last_seen_at:%Y-%m-%d %H:%M:%S}"


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def usable(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiScope(models.TextChoices):
    """What an API key may do. Each API endpoint names the scope it needs; people signing in are not scoped."""

    LEADS_WRITE = "leads:write", "leads:write: post leads"
    LEADS_READ = "leads:read", "leads:read: read status, owner, queue and SLA due of the leads it posted"
    RECEIPTS_READ = "receipts:read", "receipts:read: read the full lead with its routing receipt"
    TOUCHES_WRITE = "touches:write", "touches:write: log touches on the leads it posted"
    LEADS_STATUS = "leads:status", "leads:status: convert, disqualify, nurture or close the leads it posted"


def api_key_default_scopes() -> list[str]:
    """A new key may post leads and nothing else until RevOps grant more."""
    return [ApiScope.LEADS_WRITE.value]


def validate_api_scopes(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(scope, str) for scope in value):
        raise ValidationError("Scopes are a list of scope names.")
    unknown = sorted(set(value) - set(ApiScope.values))
    if unknown:
        raise ValidationError(f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(ApiScope.values)}.")


class ApiKey(models.Model):
    """A secret an intake source (web form, marketing tool, partner system) sends as
    ``Authorization: Token <key>``.

    Only a SHA-256 hash of the key is stored: keys are long random strings, so a
    fast hash is enough, and a stolen database does not reveal them. The first
    characters are kept in clear so RevOps can tell keys apart.
    """

    name = models.CharField(max_length=100, unique=True, help_text="The intake source, such as Website demo form.")
    # A JSON list rather than an array column, so it works the same on SQLite and PostgreSQL.
    scopes = models.JSONField(
        default=api_key_default_scopes,
        blank=True,
        validators=[validate_api_scopes],
        help_text="What the key may do; each API endpoint needs one scope.",
    )
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])


def form_token_new() -> str:
    """A new form token: random, URL-safe, and told apart from API keys by its prefix."""
    return "lf_" + secrets.token_urlsafe(18)


class FormSource(models.Model):
    """A website form that posts straight to intake (``POST /forms/<token>/``), without code or an API key.

    The token is in the page's HTML, so it is not a secret: it names the form, so the lead gets this
    source, and RevOps can rotate it (the old one stops working at once) or switch the form off. Where the
    visitor lands afterwards is set here, never taken from the request, so the endpoint is no open redirect.
    """

    name = models.CharField(max_length=100, unique=True, help_text="The form, such as Website demo request.")
    source = models.CharField(
        max_length=100, help_text="The lead source its leads get (what routing rules and reports see as source)."
    )
    token = models.CharField(max_length=40, unique=True, default=form_token_new, editable=False)
    thank_you_url = models.URLField(
        "thank-you URL",
        max_length=500,
        validators=[URLValidator(schemes=["https", "http"])],
        help_text="Where the visitor lands after posting (303 See Other).",
    )
    honeypot_field = models.CharField(
        max_length=50,
        default="homepage",
        validators=[RegexValidator(r"^[A-Za-z][A-Za-z0-9_-]*$", "Letters, digits, - and _, starting with a letter.")],
        help_text="A field the form hides from people: a post with it filled is a bot's, answered as usual and "
        "not stored.",
    )
    active = models.BooleanField(default=True, help_text="Off: posts with its token are refused (404).")
    created_at = models.DateTimeField(auto_now_add=True)
    token_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "form source"

    def __str__(self) -> str:
        return self.name


class Firmographic(models.Model):
    """One row of the built-in enrichment table: what we know about a company by its domain.

    RevOps import it from CSV (a data vendor's export, or their own research).
    Enrichment fills a lead's blank fields from here before the rules fire.
    """

    domain = models.CharField(max_length=253, unique=True, validators=[validate_domain])
    company = models.CharField(max_length=200, blank=True)
    employees = models.PositiveIntegerField(null=True, blank=True)
    industry = models.CharField(max_length=30, choices=INDUSTRIES, blank=True)
    country = models.CharField(max_length=2, blank=True, validators=[validate_country_code])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["domain"]
        verbose_name = "firmographic record"

    def __str__(self) -> str:
        return f"{self.domain}: {self.company}" if self.company else self.domain


class Rule(models.Model):
    """One line of the routing matrix. Active rules run in position order; the
    first whose condition holds and whose action can be carried out wins, and
    the catch-all queue always closes the list."""

    class Action(models.TextChoices):
        QUEUE = "queue", "Route to a queue"
        TERRITORY = "territory", "Route to the matching territory's queue or rep"
        ACCOUNT_OWNER = "account_owner", "Route to the account owner"
        REP = "rep", "Route to a named rep"
        NURTURE = "nurture", "Send to nurture"
        DISCARD = "discard", "Discard"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, help_text="Why the rule exists: the segment and who agreed it.")
    position = models.PositiveIntegerField(default=100, help_text="Lower runs first.")
    active = models.BooleanField(default=True)
    condition = models.JSONField(
        null=True,
        blank=True,
        help_text='Empty: always holds. Otherwise {"all": [...]} or {"any": [...]} of '
        '{"field": "country", "op": "in", "value": ["DE", "AT"]}; groups nest.',
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    queue = models.ForeignKey(
        Queue,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rules",
        help_text="For 'Route to a queue'.",
    )
    rep = models.ForeignKey(
        Rep,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rules",
        help_text="For 'Route to a named rep'.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(action="queue") | models.Q(queue__isnull=False),
                name="rule_queue_action_has_queue",
                violation_error_message="Choose the queue this rule routes to.",
            ),
            models.CheckConstraint(
                condition=~models.Q(action="rep") | models.Q(rep__isnull=False),
                name="rule_rep_action_has_rep",
                violation_error_message="Choose the rep this rule routes to.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        try:
            parse_condition(self.condition)
        except ConditionError as error:
            errors["condition"] = error.messages
        if self.action == self.Action.QUEUE and not self.queue_id:
            errors["queue"] = ["Choose the queue this rule routes to."]
        if self.action != self.Action.QUEUE and self.queue_id:
            errors["queue"] = ["Only 'Route to a queue' uses a queue; clear it or change the action."]
        if self.action == self.Action.REP and not self.rep_id:
            errors["rep"] = ["Choose the rep this rule routes to."]
        if self.action != self.Action.REP and self.rep_id:
            errors["rep"] = ["Only 'Route to a named rep' uses a rep; clear it or change the action."]
        if errors:
            raise ValidationError(errors)


class ScoringRule(models.Model):
    """Points a lead earns when it meets a condition. Fit says who they are
    (size, industry, title); intent says what they did (demo request, pricing page)."""

    class Kind(models.TextChoices):
        FIT = "fit", "Fit"
        INTENT = "intent", "Intent"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    condition = models.JSONField(
        help_text='{"all": [...]} or {"any": [...]} of {"field": "employees", "op": "gte", "value": 200}; groups nest.'
    )
    points = models.IntegerField(help_text="Negative points take a lead down, for example for a free-mail address.")
    active = models.BooleanField(default=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["kind", "-points", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.points:+d})"

    def clean(self) -> None:
        try:
            if parse_condition(self.condition) is None:
                raise ConditionError([("", "a scoring rule needs a condition; points for every lead change nothing")])
        except ConditionError as error:
            raise ValidationError({"condition": error.messages}) from error


class ScoringThresholds(models.Model):
    """Where a lead's total score sends it: sales routing, nurture, or disqualified. One row."""

    sales_min = models.IntegerField(default=40, help_text="A total at or above this goes to sales routing.")
    nurture_min = models.IntegerField(
        default=10, help_text="At or above this (and below sales): nurture. Below: disqualified."
    )
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = "scoring thresholds"
        verbose_name_plural = "scoring thresholds"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="scoring_thresholds_single_row"),
            models.CheckConstraint(
                condition=models.Q(nurture_min__lte=models.F("sales_min")),
                name="scoring_thresholds_ordered",
                violation_error_message="The nurture threshold must not be above the sales threshold.",
            ),
        ]

    def __str__(self) -> str:
        return f"sales ≥ {self.sales_min}, nurture ≥ {self.nurture_min}"

    @classmethod
    def current(cls) -> ScoringThresholds:
        thresholds, _ = cls.objects.get_or_create(pk=1)
        return thresholds


class RepLoad(models.Model):
    """A rep's open leads and new leads today, kept by the ownership layer (routing/ownership.py) in the same
    transaction as every change that moves them, so routing reads loads in O(reps) whatever the backlog.

    ``assigned_today`` counts new assignments since midnight of ``day`` in the rep's time zone; a row whose
    ``day`` is not the rep's today counts zero. ``manage.py loads_check`` recounts both from the leads and
    the assignment history and reports (or fixes) any drift.
    """

    rep = models.OneToOneField(Rep, primary_key=True, on_delete=models.CASCADE, related_name="load_counter")
    open_leads = models.IntegerField(default=0)
    day = models.DateField(null=True, blank=True)
    assigned_today = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.rep}: {self.open_leads} open, {self.assigned_today} on {self.day}"


# --- Integrations: signed webhooks out and CRM owner write-back (routing/outbound.py) ----------------------


class EventType(models.TextChoices):
    """What a webhook subscription can listen to (docs/integrations.md)."""

    LEAD_RECEIVED = "lead.received", "lead.received: a lead was stored"
    LEAD_ASSIGNED = "lead.assigned", "lead.assigned: a lead got an owner"
    LEAD_REASSIGNED = "lead.reassigned", "lead.reassigned: a lead's owner changed"
    LEAD_TOUCHED = "lead.touched", "lead.touched: a call, e-mail or meeting was logged"
    LEAD_CLOSED = "lead.closed", "lead.closed: converted, disqualified, nurtured or closed"
    SLA_BREACHED = "sla.breached", "sla.breached: no first touch by the due time"
    ESCALATION_FIRED = "escalation.fired", "escalation.fired: an SLA ladder step fired"


def validate_event_types(value: Any) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise ValidationError("Choose at least one event.")
    unknown = sorted(set(value) - set(EventType.values))
    if unknown:
        raise ValidationError(f"Unknown event(s): {', '.join(unknown)}. Known: {', '.join(EventType.values)}.")


def webhook_secret_new() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookSubscription(models.Model):
    """A receiver of signed event POSTs. The secret signs every request (``X-LeadRouter-Signature``); it is shown
    once when the subscription is created (admin or ``manage.py webhook create``)."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500, help_text="Where the events are POSTed (http or https).")
    events = models.JSONField(
        default=list, validators=[validate_event_types], help_text="The event types sent, e.g. lead.assigned."
    )
    secret = models.CharField(max_length=100, default=webhook_secret_new, editable=False)
    active = models.BooleanField(default=True, help_text="Off: no new events are queued for it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CrmConnector(models.Model):
    """Writes a lead's new owner back to the CRM record the lead came from, through the same outbox, retries and
    log as webhooks. The API token is read from the environment variable named here, never stored."""

    class Kind(models.TextChoices):
        HUBSPOT = "hubspot", "HubSpot"
        SALESFORCE = "salesforce", "Salesforce"

    HUBSPOT_BASE_URL = "https://api.hubapi.com"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    base_url = models.URLField(
        max_length=300,
        blank=True,
        help_text="HubSpot: blank for https://api.hubapi.com. Salesforce: your instance, "
        "e.g. https://acme.my.salesforce.com.",
    )
    token_env = models.CharField(
        "token environment variable",
        max_length=100,
        validators=[RegexValidator(r"^[A-Z_][A-Z0-9_]*$", "An environment variable name, such as HUBSPOT_TOKEN.")],
        help_text="The name of the environment variable holding the API token (sent as a Bearer token).",
    )
    hubspot_object = models.CharField(
        max_length=40, default="contacts", help_text="HubSpot: the CRM object the record id names (contacts, leads)."
    )
    salesforce_api_version = models.CharField(
        max_length=10,
        default="v61.0",
        validators=[RegexValidator(r"^v[0-9]+\.[0-9]$", "Such as v61.0.")],
        help_text="Salesforce: the REST API version.",
    )
    record_id_field = models.CharField(
        max_length=100,
        default="external_id",
        help_text="Where the CRM record id is: external_id (the lead's external id), or a key of the posted lead.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "CRM connector"

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self) -> None:
        if self.kind == self.Kind.SALESFORCE and not self.base_url:
            raise ValidationError({"base_url": "Salesforce needs your instance URL."})

    @property
    def api_base(self) -> str:
        return (self.base_url or (self.HUBSPOT_BASE_URL if self.kind == self.Kind.HUBSPOT else "")).rstrip("/")


class CrmOwner(models.Model):
    """A rep's owner id in one CRM (HubSpot owner id, Salesforce User Id). Leads of a rep without one are not
    written back."""

    connector = models.ForeignKey(CrmConnector, on_delete=models.CASCADE, related_name="owners")
    rep = models.ForeignKey(Rep, on_delete=models.CASCADE, related_name="crm_owners")
    owner_id = models.CharField("CRM owner id", max_length=100)

    class Meta:
        ordering = ["connector", "rep_id"]
        verbose_name = "CRM owner"
        constraints = [models.UniqueConstraint(fields=["connector", "rep"], name="crmowner_once_per_rep")]

    def __str__(self) -> str:
        return f"{self.rep} = {self.owner_id} in {self.connector.name}"


class OutboundEvent(models.Model):
    """One event about a lead, recorded in the transaction of the change. ``body`` is the exact JSON sent."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=30, choices=EventType.choices)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="events", db_constraint=False)
    body = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "event"
        # Retention finds old events by age (``routing.outbound.deliveries_prune``).
        indexes = [models.Index(fields=["created_at"], name="outboundevent_created_idx")]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class Delivery(models.Model):
    """One event to one receiver (a webhook subscription or a CRM connector): the outbox row the sender claims.
    A lead's deliveries to one receiver go out in order: a later one waits until the earlier is delivered or
    dead."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        DELIVERED = "delivered", "Delivered"
        DEAD = "dead", "Dead (gave up)"

    UNDONE = ("pending", "retrying")

    event = models.ForeignKey(OutboundEvent, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(
        WebhookSubscription, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    connector = models.ForeignKey(
        CrmConnector, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    # "w<id>" or "c<id>": the receiver, for per-lead order in one indexed comparison.
    target = models.CharField(max_length=24, editable=False)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False)
    crm_record_id = models.CharField(max_length=200, blank=True)
    crm_owner_id = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["pending", "retrying"]),
                name="delivery_due_idx",
            ),
            models.Index(
                fields=["target", "lead", "id"],
                condition=models.Q(status__in=["pending", "retrying"]),
                name="delivery_lead_order_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(subscription__isnull=True, connector__isnull=False)
                | models.Q(subscription__isnull=False, connector__isnull=True),
                name="delivery_one_receiver",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event.type} to {self.subscription or self.connector}"


class DeliveryAttempt(models.Model):
    """One try at a delivery: when, how long, and what came back."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts_log")
    at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.response_code or self.error[:40]}"
