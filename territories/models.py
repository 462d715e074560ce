"""The coverage model: who sells to whom.

RevOps maintain these rows in admin or as one YAML document (``manage.py
coverage``). Every model keeps a change history (django-simple-history), so the
admin can say who changed what and when.
"""

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from simple_history.models import HistoricalRecords

from territories import validators
from territories.picklists import INDUSTRIES


class Skill(models.Model):
    """Something a queue can require of a rep: a language, a product, a segment."""

    class Kind(models.TextChoices):
        LANGUAGE = "language", "Language"
        PRODUCT = "product", "Product"
        SEGMENT = "segment", "Segment"
        OTHER = "other", "Other"

    code = models.SlugField(max_length=50, unique=True, help_text="Short stable code, such as german or enterprise.")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.OTHER)

    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class ProductLine(models.Model):
    """A product line a lead can be interested in and a territory can cover."""

    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)

    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    managers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="managed_teams",
        help_text="Managers see the team's leads, load and escalations.",
    )

    history = HistoricalRecords(m2m_fields=[managers])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RepQuerySet(models.QuerySet["Rep"]):
    def active(self) -> "RepQuerySet":
        return self.filter(active=True)


class Rep(models.Model):
    """A seller who can own leads. One per user."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rep")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="reps")
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="direct_reports",
        help_text="Who is alerted about this rep's escalations. Empty: the team's managers.",
    )
    active = models.BooleanField(
        default=True, help_text="Inactive reps get no new leads; their open leads stay until reassigned."
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validators.validate_time_zone],
        help_text="IANA name, such as Europe/Berlin. Working hours are read in this zone.",
    )
    max_open_leads = models.PositiveIntegerField(
        default=50,
        validators=[MinValueValidator(1)],
        help_text="Capacity: the most open leads this rep may hold at once.",
    )
    daily_cap = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="The most new leads per day in the rep's time zone. Empty: no daily cap.",
    )
    skills = models.ManyToManyField(Skill, blank=True, related_name="reps")
    slack_webhook_url = models.URLField(
        blank=True, help_text="Optional Slack incoming webhook: this rep's new leads are posted there too."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(m2m_fields=[skills])
    objects = RepQuerySet.as_manager()

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        full_name = self.user.get_full_name()
        return f"{full_name} ({self.user.username})" if full_name else self.user.username

    @property
    def username(self) -> str:
        return self.user.get_username()


class Profile(models.Model):
    """What a user who is not a rep sets for themselves: the time zone their pages show times in.

    A rep's pages use the rep's own zone (``Rep.time_zone``), in which their working hours are read; anyone
    without a zone here, or without a profile, sees the site default (``LEADROUTER_DEFAULT_TIME_ZONE``).
    ``territories.time_zones.user_time_zone`` decides.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validators.validate_time_zone],
        help_text="IANA name, such as America/New_York. Pages show this user times in it. Empty: the site "
        "default. A rep's own time zone (on the rep) comes first.",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"Profile of {self.user.get_username()}"

    def clean(self) -> None:
        rep = Rep.objects.filter(user_id=self.user_id).first() if self.user_id else None
        if self.time_zone and rep is not None:
            raise ValidationError(
                {
                    "time_zone": f"{rep.username} is a rep: their pages use the rep's own time zone "
                    f"({rep.time_zone}). Change it on the rep, and leave this empty."
                }
            )


class WorkingHours(models.Model):
    """One working window on one weekday, in the rep's time zone.

    A window whose end is not after its start runs past midnight into the next
    day (22:00–06:00 is a night shift).
    """

    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    rep = models.ForeignKey(Rep, on_delete=models.CASCADE, related_name="working_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start = models.TimeField()
    end = models.TimeField()

    history = HistoricalRecords()

    class Meta:
        ordering = ["rep", "weekday", "start"]
        verbose_name_plural = "working hours"
        constraints = [
            models.UniqueConstraint(fields=["rep", "weekday", "start"], name="workinghours_unique_start"),
            models.CheckConstraint(condition=~models.Q(start=models.F("end")), name="workinghours_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start:%H:%M}–{self.end:%H:%M}"

    def clean(self) -> None:
        if self.start is not None and self.start == self.end:
            raise ValidationError({"end": "The window is empty: the end must differ from the start."})


class OutOfOffice(models.Model):
    """A period in which the rep gets no new leads (vacation, leave, training)."""

    rep = models.ForeignKey(Rep, on_delete=models.CASCADE, related_name="out_of_office")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["rep", "starts_at"]
        verbose_name = "out-of-office period"
        constraints = [
            models.CheckConstraint(condition=models.Q(ends_at__gt=models.F("starts_at")), name="ooo_ends_after_start")
        ]
        indexes = [
            # Availability checks ask "which of these reps are away at instant t".
            models.Index(fields=["rep", "ends_at"], name="ooo_rep_ends_idx"),
        ]

    def __str__(self) -> str:
        if self.starts_at is None or self.ends_at is None:
            return f"{self.rep}: out of office"
        # In the zone the page shows times in (the rep's own on the rep's admin page).
        starts_at, ends_at = timezone.localtime(self.starts_at), timezone.localtime(self.ends_at)
        return f"{self.rep}: {starts_at:%Y-%m-%d %H:%M} → {ends_at:%Y-%m-%d %H:%M %Z}"

    def clean(self) -> None:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The period must end after it starts."})


class Territory(models.Model):
    """A node in the territory tree.

    A lead falls in a territory when it meets the territory's criteria and those
    of all its ancestors; the most specific (deepest) matching territory wins. A
    territory covered by neither a queue nor a rep passes its leads to the
    nearest ancestor that has coverage.
    """

    name = models.CharField(max_length=100, unique=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    description = models.TextField(blank=True)
    queue = models.ForeignKey(
        "routing.Queue",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="territories",
        help_text="The queue that distributes this territory's leads.",
    )
    rep = models.ForeignKey(
        Rep,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="territories",
        help_text="Or a single rep who takes every lead of this territory.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "territories"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(queue__isnull=True) | models.Q(rep__isnull=True),
                name="territory_one_owner",
                violation_error_message="A territory is covered by a queue or by a rep, not both.",
            ),
            models.CheckConstraint(condition=~models.Q(parent=models.F("id")), name="territory_not_own_parent"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.queue_id and self.rep_id:
            raise ValidationError("A territory is covered by a queue or by a rep, not both: clear one of them.")
        # Walk up from the new parent; meeting ourselves means a cycle.
        seen: set[int] = set()
        node = self.parent
        while node is not None:
            if self.pk is not None and node.pk == self.pk:
                raise ValidationError({"parent": "A territory cannot sit below itself or one of its children."})
            if node.pk in seen:
                break
            seen.add(node.pk)
            node = node.parent


class TerritoryCriterion(models.Model):
    """One accepted value for one lead field.

    Values of the same kind are alternatives (country DE or AT); different kinds
    must all hold (country DE and size band 201-1000).
    """

    class Kind(models.TextChoices):
        COUNTRY = "country", "Country (ISO 3166-1)"
        SUBDIVISION = "subdivision", "State / region (ISO 3166-2)"
        POSTAL_PREFIX = "postal_prefix", "Postal-code prefix"
        INDUSTRY = "industry", "Industry"
        SIZE_BAND = "size_band", "Employee-size band"
        PRODUCT_LINE = "product_line", "Product line"

    territory = models.ForeignKey(Territory, on_delete=models.CASCADE, related_name="criteria")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    value = models.CharField(
        max_length=50,
        help_text="Country DE, subdivision US-CA, postal prefix 94, an industry, size-band or product line code.",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["territory", "kind", "value"]
        verbose_name_plural = "territory criteria"
        constraints = [
            models.UniqueConstraint(fields=["territory", "kind", "value"], name="criterion_unique_value"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} = {self.value}"

    def clean(self) -> None:
        self.value = (self.value or "").strip()
        if self.kind in (self.Kind.COUNTRY, self.Kind.SUBDIVISION, self.Kind.POSTAL_PREFIX):
            self.value = self.value.upper().replace(" ", "")
        try:
            validate_criterion(self.kind, self.value)
        except ValidationError as error:
            raise ValidationError({"value": error.messages}) from error


def validate_criterion(kind: str, value: str) -> None:
    """Raise ValidationError when ``value`` is not a valid ``kind`` criterion."""
    kind_validators: dict[str, Callable[[str], None]] = {
        TerritoryCriterion.Kind.COUNTRY: validators.validate_country_code,
        TerritoryCriterion.Kind.SUBDIVISION: validators.validate_subdivision_code,
        TerritoryCriterion.Kind.POSTAL_PREFIX: validators.validate_postal_prefix,
        TerritoryCriterion.Kind.INDUSTRY: validators.validate_industry,
        TerritoryCriterion.Kind.SIZE_BAND: validators.validate_size_band,
    }
    if kind == TerritoryCriterion.Kind.PRODUCT_LINE:
        if not ProductLine.objects.filter(code=value).exists():
            raise ValidationError(
                "%(value)s is not a product line; add it under Product lines first.",
                code="invalid_product_line",
                params={"value": value},
            )
        return
    if kind not in kind_validators:
        raise ValidationError("Unknown criterion kind %(kind)s.", params={"kind": kind})
    kind_validators[kind](value)


class Account(models.Model):
    """A company we sell to. Leads are matched to accounts by domain and name."""

    class Tier(models.TextChoices):
        NONE = "", "No target tier"
        TIER_1 = "tier_1", "Tier 1 (ABM)"
        TIER_2 = "tier_2", "Tier 2"
        TIER_3 = "tier_3", "Tier 3"

    name = models.CharField(max_length=200)
    owner = models.ForeignKey(Rep, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_accounts")
    territory = models.ForeignKey(Territory, null=True, blank=True, on_delete=models.SET_NULL, related_name="accounts")
    is_customer = models.BooleanField(default=False)
    tier = models.CharField(max_length=10, choices=Tier.choices, blank=True, default=Tier.NONE)
    industry = models.CharField(max_length=30, choices=INDUSTRIES, blank=True)
    country = models.CharField(
        max_length=2,
        blank=True,
        validators=[validators.validate_country_code],
        help_text="ISO 3166-1 alpha-2.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            # Account names are the key RevOps use in imports and the coverage file.
            models.UniqueConstraint(
                Lower("name"),
                name="account_name_unique_ci",
                violation_error_message="An account with this name exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class AccountDomain(models.Model):
    """A web or e-mail domain that belongs to an account. Each domain maps to one account."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="domains")
    domain = models.CharField(max_length=253, unique=True, validators=[validators.validate_domain])

    history = HistoricalRecords()

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain


class Opportunity(models.Model):
    class Stage(models.TextChoices):
        OPEN = "open", "Open"
        WON = "won", "Closed won"
        LOST = "lost", "Closed lost"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="opportunities")
    name = models.CharField(max_length=200)
    owner = models.ForeignKey(Rep, null=True, blank=True, on_delete=models.SET_NULL, related_name="opportunities")
    stage = models.CharField(max_length=10, choices=Stage.choices, default=Stage.OPEN)
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "opportunities"
        indexes = [
            # Account matching asks for the open opportunities of one account.
            models.Index(fields=["account", "stage"], name="opp_account_stage_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_open(self) -> bool:
        return self.stage == self.Stage.OPEN

    def clean(self) -> None:
        if self.stage == self.Stage.OPEN and self.closed_at:
            raise ValidationError({"closed_at": "An open opportunity has no close date; clear it or close the stage."})


class CoverageVersion(models.Model):
    """One row that changes with every change to the coverage model, so a worker reloads its copy only then.

    ``version`` counts changes for people reading it; ``stamp`` is new at every change, so a change that was
    rolled back can never come back under the same value as a later, different change.
    See ``territories/coverage_version.py``.
    """

    version = models.PositiveBigIntegerField(default=0)
    stamp = models.UUIDField(null=True, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Coverage version {self.version}"


class CoverageRevision(models.Model):
    """A numbered version of the whole coverage model: who made it, when, why, and the full document.

    Every change RevOps make to the model (an admin save, an import, a publish, a rollback) records one, so
    RevOps can list versions, compare any two and roll back (``leadrouter/coverage/versions.py``). Unlike
    ``CoverageVersion`` (a counter workers poll), these are for people. ``document`` is the export
    (``leadrouter.coverage.export_coverage``); ``digest`` is its hash, so an unchanged model records no version.
    """

    class Kind(models.TextChoices):
        ADMIN = "admin", "Admin"
        IMPORT = "import", "Import"
        PUBLISH = "publish", "Draft published"
        ROLLBACK = "rollback", "Rollback"
        BASELINE = "baseline", "Baseline"

    number = models.PositiveIntegerField(unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A scheduled publish runs as beat, so the version names who scheduled it.
    scheduled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    message = models.CharField(max_length=500, blank=True)
    document = models.JSONField()
    digest = models.CharField(max_length=64)

    class Meta:
        ordering = ["-number"]
        verbose_name = "coverage version"

    def __str__(self) -> str:
        return f"Version {self.number}"


class CoverageDraft(models.Model):
    """A whole coverage document that routing never uses until it is published.

    ``text`` is the YAML as RevOps wrote it (comments and order kept); ``base`` is the version it was made
    from, so a draft made before a newer live version can say what changed underneath it. ``publish_at``
    schedules the publish (beat runs ``leadrouter.tasks.publish_due_drafts``); ``published`` points at the
    version the publish made.
    """

    name = models.CharField(max_length=100, unique=True)
    text = models.TextField(help_text="The whole coverage document, as YAML.")
    base = models.ForeignKey(CoverageRevision, null=True, blank=True, on_delete=models.SET_NULL, related_name="drafts")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    publish_at = models.DateTimeField(null=True, blank=True, help_text="Publish at this time (beat publishes it).")
    scheduled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published = models.ForeignKey(
        CoverageRevision, null=True, blank=True, on_delete=models.SET_NULL, related_name="published_drafts"
    )
    # Why the last scheduled publish failed (validation or the database refused it); cleared on success.
    publish_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["publish_at"], name="draft_publish_at_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_published(self) -> bool:
        return self.published_id is not None


class ReplayRun(models.Model):
    """One replay of a coverage document over past leads (``leadrouter/replay.py``): what was replayed, over
    which leads, by whom, and the report. Kept so that publishing a draft shows its latest replay, and a
    report can be read and downloaded again without replaying."""

    label = models.CharField(max_length=200, help_text="What was replayed: live coverage, version N, draft NAME.")
    draft = models.ForeignKey(CoverageDraft, null=True, blank=True, on_delete=models.SET_NULL, related_name="replays")
    version = models.ForeignKey(
        CoverageRevision, null=True, blank=True, on_delete=models.SET_NULL, related_name="replays"
    )
    filters = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # A draft's latest replay, beside its publish button.
            models.Index(fields=["draft", "-created_at"], name="replay_draft_latest_idx"),
        ]

    def __str__(self) -> str:
        return f"Replay of {self.label} ({self.created_at:%Y-%m-%d %H:%M})"
