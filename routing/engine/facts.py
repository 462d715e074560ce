"""The plain data the engine reads and the decision it returns.

Every type is a frozen dataclass of built-in values, so a caller can build one
from database rows, from a simulation form or from a historical snapshot, and
the engine can never change what it was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from routing.records import quick_init

if TYPE_CHECKING:
    from routing.engine.conditions import ConditionMemo
    from routing.engine.territories import TerritoryIndex

Outcome = Literal["assigned", "queued", "nurture", "discarded"]
RuleAction = Literal["queue", "territory", "account_owner", "rep", "nurture", "discard"]
Method = Literal["round_robin", "weighted", "load_balanced"]

CRITERION_KINDS = frozenset({"country", "subdivision", "postal_prefix", "industry", "size_band", "product_line"})
RULE_ACTIONS = frozenset({"queue", "territory", "account_owner", "rep", "nurture", "discard"})
METHODS = frozenset({"round_robin", "weighted", "load_balanced"})
OPERATORS = frozenset(
    {
        "equals",
        "not_equals",
        "in",
        "not_in",
        "contains",
        "starts_with",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "is_blank",
        "is_not_blank",
    }
)


@dataclass(frozen=True)
class AccountFacts:
    """The account a lead was matched to. A weak (fuzzy) match is never trusted for ownership."""

    id: int
    name: str = ""
    tier: str = ""
    is_customer: bool = False
    owner_rep_id: int | None = None
    open_opportunity_owner_rep_id: int | None = None
    territory_id: int | None = None
    weak_match: bool = False


LEAD_FIELDS = (
    "email",
    "email_domain",
    "is_free_email",
    "company",
    "title",
    "country",
    "subdivision",
    "postal_code",
    "industry",
    "employees",
    "size_band",
    "annual_revenue",
    "product_interest",
    "source",
    "campaign",
    "score",
)
ACCOUNT_FIELDS = ("id", "name", "tier", "is_customer", "owner_rep_id", "open_opportunity_owner_rep_id", "territory_id")


@dataclass(frozen=True)
class LeadFacts:
    """A standardized, enriched and scored lead."""

    email: str = ""
    email_domain: str = ""
    is_free_email: bool = False
    company: str = ""
    title: str = ""
    country: str = ""
    subdivision: str = ""
    postal_code: str = ""
    industry: str = ""
    employees: int | None = None
    size_band: str = ""
    annual_revenue: Decimal | None = None
    product_interest: str = ""
    source: str = ""
    campaign: str = ""
    score: int = 0
    account: AccountFacts | None = None
    # Reps who sent this lead back ("not mine"): routing never gives it to them again.
    excluded_rep_ids: frozenset[int] = frozenset()

    def value(self, field_name: str) -> Any:
        """The value a rule condition reads: a lead field, or ``account.<field>`` (None without an account)."""
        if field_name.startswith("account."):
            account_field = field_name.removeprefix("account.")
            if account_field not in ACCOUNT_FIELDS:
                raise ValueError(f"Unknown account field {account_field!r}.")
            return None if self.account is None else getattr(self.account, account_field)
        if field_name not in LEAD_FIELDS:
            raise ValueError(f"Unknown lead field {field_name!r}.")
        return getattr(self, field_name)


@dataclass(frozen=True)
class TerritoryInfo:
    """A territory node: criteria by kind (values of one kind are alternatives) and its coverage."""

    id: int
    name: str
    parent_id: int | None = None
    criteria: Mapping[str, frozenset[str]] = field(default_factory=dict)
    queue_id: int | None = None
    rep_id: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.criteria) - CRITERION_KINDS
        if unknown:
            raise ValueError(f"Territory {self.name}: unknown criterion kinds {sorted(unknown)}.")


@dataclass(frozen=True)
class Condition:
    """One test of one lead field, such as ``Condition("country", "in", ("DE", "AT"))``."""

    field: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"Unknown condition operator {self.op!r}.")
        if self.op == "between" and (not isinstance(self.value, list | tuple) or len(self.value) != 2):
            raise ValueError("A between condition needs a (low, high) pair.")


@dataclass(frozen=True)
class ConditionGroup:
    """Conditions joined by ``all`` (and) or ``any`` (or); groups nest."""

    mode: Literal["all", "any"]
    items: tuple[Condition | ConditionGroup, ...]

    def __post_init__(self) -> None:
        if self.mode not in ("all", "any"):
            raise ValueError(f"A condition group is 'all' or 'any', not {self.mode!r}.")


@dataclass(frozen=True)
class RuleInfo:
    """A routing rule. ``condition`` None always holds."""

    id: int
    name: str
    position: int
    action: RuleAction
    condition: ConditionGroup | None = None
    queue_id: int | None = None
    rep_id: int | None = None

    def __post_init__(self) -> None:
        if self.action not in RULE_ACTIONS:
            raise ValueError(f"Rule {self.name}: unknown action {self.action!r}.")
        if self.action == "queue" and self.queue_id is None:
            raise ValueError(f"Rule {self.name}: a queue action needs a queue.")
        if self.action == "rep" and self.rep_id is None:
            raise ValueError(f"Rule {self.name}: a rep action needs a rep.")


@dataclass(frozen=True)
class MemberInfo:
    """One rep's membership of one queue."""

    rep_id: int
    weight: int = 1
    active: bool = True
    position: int = 0

    def __post_init__(self) -> None:
        if self.weight < 1:
            raise ValueError("A membership weight is at least 1.")


@dataclass(frozen=True)
class QueueInfo:
    id: int
    name: str
    method: Method = "round_robin"
    active: bool = True
    is_catch_all: bool = False
    required_skills: frozenset[str] = frozenset()
    skip_off_hours_reps: bool = True
    when_nobody_eligible: Literal["hold", "overflow", "hold_off_hours"] = "hold"
    # A lead overflowing into this queue still needs the skills its earlier queues required.
    inherit_skills: bool = True
    fallback_id: int | None = None
    rr_pointer: int = 0
    members: tuple[MemberInfo, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Queue {self.name}: unknown method {self.method!r}.")
        if self.when_nobody_eligible not in ("hold", "overflow", "hold_off_hours"):
            raise ValueError(f"Queue {self.name}: when nobody is eligible, hold, overflow or hold off hours.")


@dataclass(frozen=True)
class RepInfo:
    """A rep's availability and load at the moment of routing.

    ``working_hours`` holds (weekday 0=Monday, start, end) in the rep's time
    zone; a window whose end is not after its start runs past midnight. No
    windows at all means always working. ``assigned_today`` counts the rep's
    new leads of the current day in their time zone.
    """

    id: int
    username: str
    active: bool = True
    time_zone: str = "UTC"
    working_hours: tuple[tuple[int, time, time], ...] = ()
    out_of_office: tuple[tuple[datetime, datetime], ...] = ()
    skills: frozenset[str] = frozenset()
    open_leads: int = 0
    max_open_leads: int = 50
    assigned_today: int = 0
    daily_cap: int | None = None
    # Set for one lead's decision only: why this rep may not have this particular lead.
    unavailable: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """The coverage model at one moment. Rules may come in any order."""

    territories: tuple[TerritoryInfo, ...]
    rules: tuple[RuleInfo, ...]
    queues: tuple[QueueInfo, ...]
    reps: tuple[RepInfo, ...]
    catch_all_queue_id: int
    # False for a decision without the candidates' lines in its receipt (replay, which reads only the
    # decision): a queue with an eligible member then stops at the winner instead of explaining every member.
    # The decision is the same either way.
    explain: bool = True

    def __post_init__(self) -> None:
        if self.catch_all_queue_id not in self.queue_by_id:
            raise ValueError("The snapshot has no catch-all queue.")

    @cached_property
    def territory_by_id(self) -> dict[int, TerritoryInfo]:
        return {territory.id: territory for territory in self.territories}

    @cached_property
    def queue_by_id(self) -> dict[int, QueueInfo]:
        return {queue.id: queue for queue in self.queues}

    @cached_property
    def rep_by_id(self) -> dict[int, RepInfo]:
        return {rep.id: rep for rep in self.reps}

    @cached_property
    def rules_in_order(self) -> tuple[RuleInfo, ...]:
        """The rules as they are tried: by position, then id."""
        return tuple(sorted(self.rules, key=lambda rule: (rule.position, rule.id)))

    @cached_property
    def territory_index(self) -> TerritoryIndex:
        """The territories compiled for matching, once per snapshot (``apply_decision`` passes it on)."""
        from routing.engine.territories import TerritoryIndex  # That module builds on this one.

        return TerritoryIndex(self.territory_by_id)

    @cached_property
    def condition_memo(self) -> ConditionMemo:
        """The rules' conditions evaluated once per distinct set of the values they read (kept across a batch
        like the other indexes)."""
        from routing.engine.conditions import ConditionMemo  # That module builds on this one.

        return ConditionMemo()

    @cached_property
    def skip_reason_memo(self) -> dict[tuple[int, int, frozenset[str] | None], tuple[Any, ...]]:
        """Each queue member's skip reasons as last worked out, with what they were worked out from (kept
        across a batch like the other indexes; ``routing.engine.distribution.pick_member`` checks them)."""
        return {}

    @cached_property
    def member_order(self) -> dict[int, tuple[tuple[MemberInfo, ...], list[MemberInfo]]]:
        """Each queue's members in distribution order, with the members they were sorted from (kept across a
        batch like the other indexes; ``routing.engine.distribution.ordered_members`` checks them)."""
        return {}

    @cached_property
    def rep_position(self) -> dict[int, int]:
        """Where each rep sits in ``reps``, so that one rep can be replaced without a scan."""
        return {rep.id: position for position, rep in enumerate(self.reps)}

    @cached_property
    def queue_position(self) -> dict[int, int]:
        return {queue.id: position for position, queue in enumerate(self.queues)}


@quick_init  # Made for every routed lead (routing/records.py).
@dataclass(frozen=True)
class Decision:
    """Where a lead goes and why.

    ``via`` names the step that decided: ``account``, ``rule`` (a rep or a
    territory's rep), ``queue`` (distribution inside a queue), ``nurture`` or
    ``discard``. ``pointer_advance`` maps queue id to the new round-robin
    pointer the caller must persist together with the assignment.
    """

    outcome: Outcome
    via: str
    rep_id: int | None = None
    queue_id: int | None = None
    territory_id: int | None = None
    rule_id: int | None = None
    pointer_advance: dict[int, int] = field(default_factory=dict)
    receipt: dict[str, Any] = field(default_factory=dict)
