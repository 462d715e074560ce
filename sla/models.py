"""Business calendars, first-touch SLA policies with their escalation ladders, and each lead's SLA clock."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from routing.conditions import ConditionError, parse_condition
from routing.models import ApiKey, Lead, Queue
from sla.calendar import CalendarSpec, WeeklyWindow
from territories.models import Rep, Team, Territory
from territories.validators import validate_time_zone

WEEKDAYS = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]


class BusinessCalendar(models.Model):
    """Opening hours in one time zone, public holidays and closed dates.

    A calendar belongs to a rep, a team or a queue; for a lead the most specific
    one wins (the rep's, then the rep's team's, then the queue's), else the
    default calendar, else the clock runs around the clock in UTC.
    """

    name = models.CharField(max_length=100, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    holiday_country = models.CharField(
        max_length=2, blank=True, help_text="ISO country whose public holidays close the calendar, such as DE."
    )
    holiday_subdivision = models.CharField(
        max_length=6, blank=True, help_text="Region for regional holidays, such as BY (Bavaria) or CA (California)."
    )
    rep = models.OneToOneField(Rep, null=True, blank=True, on_delete=models.CASCADE, related_name="calendar")
    team = models.OneToOneField(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="calendar")
    queue = models.OneToOneField(Queue, null=True, blank=True, on_delete=models.CASCADE, related_name="calendar")
    is_default = models.BooleanField(default=False, help_text="Used when neither rep, team nor queue has one.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(rep__isnull=True, team__isnull=True)
                    | models.Q(rep__isnull=True, queue__isnull=True)
                    | models.Q(team__isnull=True, queue__isnull=True)
                ),
                name="calendar_belongs_to_one_owner",
            ),
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_calendar"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        owners = [name for name in ("rep", "team", "queue") if getattr(self, f"{name}_id")]
        if len(owners) > 1:
            raise ValidationError("A calendar belongs to one rep, one team or one queue, not several.")
        try:
            self.spec()
        except ValueError as error:
            raise ValidationError(str(error)) from error

    def spec(self) -> CalendarSpec:
        """The pure calendar the SLA arithmetic reads (queries hours and closed dates unless prefetched)."""
        saved = self.pk is not None  # An unsaved calendar has no hours or closed dates yet.
        return CalendarSpec(
            time_zone=self.time_zone,
            windows=tuple(WeeklyWindow(hours.weekday, hours.start, hours.end) for hours in self.hours.all())
            if saved
            else (),
            holiday_country=self.holiday_country,
            holiday_subdivision=self.holiday_subdivision,
            closed_dates=frozenset(closed.date for closed in self.closed_dates.all()) if saved else frozenset(),
        )


class CalendarHours(models.Model):
    """One opening window; an end at or before the start runs past midnight."""

    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="hours")
    weekday = models.PositiveSmallIntegerField(choices=WEEKDAYS)
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ["calendar", "weekday", "start"]
        verbose_name_plural = "calendar hours"

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start:%H:%M}–{self.end:%H:%M}"


class ClosedDate(models.Model):
    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="closed_dates")
    date = models.DateField()
    reason = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["calendar", "date"]
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="closed_date_once")]

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.reason}".strip()


class SlaPolicy(models.Model):
    """Which leads get which first-touch target, in business minutes. Policies are tried by position;
    the first that matches applies, else the default one. "No SLA" is a policy too, chosen on purpose."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=100, help_text="Lower is tried first.")
    active = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False, help_text="Applies when no other policy matches.")
    # What the lead must be: a rule-style condition over lead and account fields (source, score,
    # account.tier, account.is_customer …) and, optionally, where routing put it.
    condition = models.JSONField(null=True, blank=True, help_text="Same form as a routing rule's condition.")
    territory = models.ForeignKey(
        Territory, null=True, blank=True, on_delete=models.PROTECT, help_text="Only leads in this territory or below."
    )
    queue = models.ForeignKey(
        Queue, null=True, blank=True, on_delete=models.PROTECT, help_text="Only leads routed through this queue."
    )
    no_sla = models.BooleanField(default=False, help_text="Matching leads get no first-touch clock at all.")
    first_touch_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Target for the first touch, in business minutes.",
    )
    max_reassignments = models.PositiveSmallIntegerField(
        default=2, help_text="The ladder reassigns a lead at most this often."
    )
    notify_outside_business_hours = models.BooleanField(
        default=False, help_text="Off: reminders and alerts wait for the recipient's business hours."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["position", "id"]
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_sla_policy"
            ),
            models.CheckConstraint(
                condition=models.Q(no_sla=True) | models.Q(first_touch_minutes__isnull=False),
                name="sla_policy_has_a_target_or_none_on_purpose",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not self.no_sla and not self.first_touch_minutes:
            raise ValidationError(
                {"first_touch_minutes": "Set a target, or tick “No SLA” to say these leads have none."}
            )
        if self.condition:
            try:
                parse_condition(self.condition)
            except ConditionError as error:
                raise ValidationError({"condition": error.messages}) from error


class EscalationStep(models.Model):
    """One rung of a policy's ladder: when (a share of the target, or minutes after the due time) and what."""

    class When(models.TextChoices):
        PERCENT_OF_TARGET = "percent", "At a share of the target"
        AFTER_DUE = "after_due", "Business minutes after the due time"

    class Action(models.TextChoices):
        REMIND_REP = "remind_rep", "Remind the rep"
        ALERT_MANAGER = "alert_manager", "Alert the manager"
        REASSIGN = "reassign", "Reassign to the next eligible rep in the queue"
        MOVE_TO_QUEUE = "move_to_queue", "Move to a queue"

    policy = models.ForeignKey(SlaPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=1)
    when = models.CharField(max_length=10, choices=When.choices)
    percent = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="For “share of the target”: 80 means at 80%.",
    )
    minutes_after_due = models.PositiveIntegerField(
        null=True, blank=True, help_text="For “after the due time”: 0 means at the breach."
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    queue = models.ForeignKey(
        Queue,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="For “move to a queue”. Empty: the queue's fallback, else the catch-all.",
    )

    class Meta:
        ordering = ["policy", "position"]
        constraints = [models.UniqueConstraint(fields=["policy", "position"], name="escalation_step_position_once")]

    def __str__(self) -> str:
        when = (
            f"at {self.percent}%" if self.when == self.When.PERCENT_OF_TARGET else f"due + {self.minutes_after_due} min"
        )
        return f"{self.position}. {when}: {self.get_action_display()}"

    def clean(self) -> None:
        if self.when == self.When.PERCENT_OF_TARGET and not self.percent:
            raise ValidationError({"percent": "Give the share of the target, such as 80."})
        if self.when == self.When.AFTER_DUE and self.minutes_after_due is None:
            raise ValidationError(
                {"minutes_after_due": "Give the business minutes after the due time (0: at the breach)."}
            )


class LeadSla(models.Model):
    """A lead's first-touch clock: due time, state, the next ladder step and speed-to-lead."""

    class State(models.TextChoices):
        ON_TRACK = "on_track", "On track"
        AT_RISK = "at_risk", "At risk"
        BREACHED = "breached", "Breached"
        MET = "met", "Met"
        MISSED = "missed", "Touched late"
        NONE = "none", "No SLA"
        # Closed or handed back before the first touch (sla.clocks.clocks_stop); a new owner's clock starts afresh.
        STOPPED = "stopped", "Stopped: lead closed"

    # No constraints in the database on the clock's references: clocks are written only by the ownership layer's
    # clock hook (sla/clocks.py) and the sweep, from rows they read in the same transaction, and the checks at
    # every routing batch's commit cost more than the clocks' own writes. Deleting a lead still deletes its
    # clock, and deleting a policy, a calendar or a step still clears it from the clocks (Django's on_delete).
    lead = models.OneToOneField(Lead, on_delete=models.CASCADE, related_name="sla", db_constraint=False)
    # No index on the policy, the calendar or the next step: nothing looks clocks up by them, and every clock
    # started and every step the sweep fires writes a new version of the clock, which adds an entry to each
    # index of the table (the due-step index keeps its updates from being HOT). Deleting a policy, a calendar or
    # a step reads the clocks once instead.
    policy = models.ForeignKey(
        SlaPolicy,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    calendar = models.ForeignKey(
        BusinessCalendar,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.ON_TRACK)
    started_at = models.DateTimeField(help_text="When the clock started: the assignment.")
    due_at = models.DateTimeField(null=True, blank=True)
    touched_at = models.DateTimeField(null=True, blank=True)
    # The ladder: the next step to fire and when. Cleared once touched or the ladder is done.
    next_step = models.ForeignKey(
        EscalationStep,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    next_step_at = models.DateTimeField(null=True, blank=True)
    reassignments = models.PositiveSmallIntegerField(default=0)
    previous_owner_ids = models.JSONField(
        default=list, blank=True, help_text="Reps the ladder must never give it back to."
    )
    breach_business_seconds = models.PositiveIntegerField(null=True, blank=True)
    # Speed-to-lead: routed → first touch.
    speed_wall_seconds = models.PositiveIntegerField(null=True, blank=True)
    speed_business_seconds = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "lead SLA"
        indexes = [
            # The sweep: untouched leads whose next ladder step is due. Only those rows are in the index.
            models.Index(
                fields=["next_step_at"],
                condition=models.Q(touched_at__isnull=True, next_step_at__isnull=False),
                name="leadsla_due_step_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"SLA of {self.lead}"


# A touch's note: the lead page's form, the touches endpoint and ``touch_log`` all hold it to this length.
TOUCH_NOTE_MAX_CHARS = 1_000


class Touch(models.Model):
    """A first (or later) touch of a lead: logged by the rep or posted by another system."""

    class Kind(models.TextChoices):
        CALL = "call", "Call"
        EMAIL = "email", "E-mail"
        MEETING = "meeting", "Meeting"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="touches")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    at = models.DateTimeField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    intake_source = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.TextField(blank=True)
    # When the touch was recorded; ``at`` is when it happened.
    created_at = models.DateTimeField(auto_now_add=True)
    # Recorded well after it happened (an integration catching up): the history says so next to the time.
    logged_late = models.BooleanField(default=False)

    class Meta:
        ordering = ["lead", "at"]
        indexes = [models.Index(fields=["lead", "at"], name="touch_lead_idx")]
        verbose_name_plural = "touches"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.lead} at {timezone.localtime(self.at):%Y-%m-%d %H:%M %Z}"


class Escalation(models.Model):
    """One ladder step that fired for one lead: who, what, when and why. At most one per lead and step."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    # No index of its own: the unique (lead, step) index starts with it. No constraint in the database either:
    # checking it locks the lead's row, and the sweep writes thousands of escalations for leads it does not
    # otherwise write, so the check dirtied a page of the lead table per escalation (about half the sweep's
    # time). Only the sweep writes it, from a clock whose own lead constraint holds; deleting a lead goes
    # through the ORM, which deletes its escalations first.
    lead = models.ForeignKey(
        Lead, on_delete=models.CASCADE, related_name="escalations", db_index=False, db_constraint=False
    )
    # The step and the rep, likewise unchecked: the sweep writes them from the ladder and the owner it read in
    # the same transaction, and a check per escalation was most of the cost of its commit. Reps are
    # deactivated, not deleted; a step deleted while a sweep fires it leaves the step unknown (shown as none).
    step = models.ForeignKey(
        EscalationStep, null=True, on_delete=models.SET_NULL, related_name="escalations", db_constraint=False
    )
    action = models.CharField(max_length=20, choices=EscalationStep.Action.choices)
    rep = models.ForeignKey(
        Rep,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="escalations",
        help_text="Who held the lead.",
        db_constraint=False,
    )
    # These three are empty on most rows (a reminder or an alert names no target and waits for a handler):
    # their indexes (see Meta) hold only the rows that name one. Unchecked too, as only the sweep writes them
    # (an empty one still costs a deferred check per row at commit).
    to_rep = models.ForeignKey(
        Rep, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False, db_constraint=False
    )
    to_queue = models.ForeignKey(
        Queue, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False, db_constraint=False
    )
    notified = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    reason = models.TextField()
    fired_at = models.DateTimeField()
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.OPEN)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-fired_at"]
        constraints = [
            # Each step fires at most once per lead, whichever sweep gets there first.
            models.UniqueConstraint(fields=["lead", "step"], name="escalation_once_per_step"),
        ]
        indexes = [
            # The managers' page: open escalations, newest first.
            models.Index(fields=["status", "-fired_at"], name="escalation_status_idx"),
            # Deleting a rep, a queue or a user clears these columns where they are set; the sweep writes
            # thousands of reminders and alerts a minute with them empty, and adds nothing to these indexes.
            models.Index(fields=["to_rep"], condition=models.Q(to_rep__isnull=False), name="escalation_to_rep_idx"),
            models.Index(
                fields=["to_queue"], condition=models.Q(to_queue__isnull=False), name="escalation_to_queue_idx"
            ),
            models.Index(
                fields=["handled_by"], condition=models.Q(handled_by__isnull=False), name="escalation_handled_by_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} for {self.lead}"
