"""The coverage model as plain data, read from the database or from a document.

Export, validation and the import diff all work on one shape, the *state*: for
each section a mapping from an entity's key to its *full entry*, a dict with
every key of the format filled in (defaults included) and every set-like list
sorted. Two entries are equal exactly when the database would not change, so
the diff is a plain comparison, and the exported document is the state with
default values left out.
"""

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Prefetch

from leadrouter.coverage.yamlio import SECTION_ORDER
from routing.conditions import canonical_condition
from routing.models import Queue, QueueMembership, Rule
from sla.models import BusinessCalendar, EscalationStep, SlaPolicy
from territories.models import Account, Opportunity, ProductLine, Rep, Skill, Team, Territory, TerritoryCriterion

Entry = dict[str, Any]
State = dict[str, dict[str, Entry]]

VERSION = 1
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Document key under ``criteria`` → TerritoryCriterion.Kind value, in document order.
CRITERIA_KINDS: dict[str, str] = {
    "countries": TerritoryCriterion.Kind.COUNTRY,
    "subdivisions": TerritoryCriterion.Kind.SUBDIVISION,
    "postal_prefixes": TerritoryCriterion.Kind.POSTAL_PREFIX,
    "industries": TerritoryCriterion.Kind.INDUSTRY,
    "size_bands": TerritoryCriterion.Kind.SIZE_BAND,
    "product_lines": TerritoryCriterion.Kind.PRODUCT_LINE,
}
CRITERIA_KEYS = {kind: key for key, kind in CRITERIA_KINDS.items()}

KEY_FIELDS = {
    "skills": "code",
    "product_lines": "code",
    "teams": "name",
    "reps": "username",
    "queues": "name",
    "territories": "name",
    "accounts": "name",
    "rules": "name",
    "calendars": "name",
    "sla_policies": "name",
}

# How a change to each section is named in a plan.
KIND_NAMES = {
    "skills": "skill",
    "product_lines": "product line",
    "teams": "team",
    "reps": "rep",
    "queues": "queue",
    "territories": "territory",
    "accounts": "account",
    "rules": "rule",
    "calendars": "calendar",
    "sla_policies": "SLA policy",
}

# Every key of each section in document order; the key field comes first.
FIELDS: dict[str, tuple[str, ...]] = {
    "skills": ("code", "name", "kind"),
    "product_lines": ("code", "name"),
    "teams": ("name", "description", "managers"),
    "reps": (
        "username",
        "email",
        "first_name",
        "last_name",
        "team",
        "manager",
        "active",
        "time_zone",
        "max_open_leads",
        "daily_cap",
        "skills",
        "working_hours",
        "out_of_office",
    ),
    "queues": (
        "name",
        "description",
        "method",
        "active",
        "catch_all",
        "required_skills",
        "skip_off_hours_reps",
        "when_nobody_eligible",
        "inherit_skills",
        "fallback",
        "members",
    ),
    "territories": ("name", "parent", "description", "queue", "rep", "criteria"),
    "accounts": (
        "name",
        "domains",
        "owner",
        "territory",
        "is_customer",
        "tier",
        "industry",
        "country",
        "opportunities",
    ),
    "rules": ("name", "description", "position", "active", "when", "action", "queue", "rep"),
    "calendars": ("name", "time_zone", "holidays", "owner", "hours", "closed"),
    "sla_policies": (
        "name",
        "description",
        "position",
        "active",
        "default",
        "condition",
        "territory",
        "queue",
        "no_sla",
        "first_touch_minutes",
        "max_reassignments",
        "notify_outside_business_hours",
        "steps",
    ),
}

# The value an omitted key stands for; these match the model defaults.
DEFAULTS: dict[str, Entry] = {
    "skills": {"kind": Skill.Kind.OTHER.value},
    "product_lines": {},
    "teams": {"description": "", "managers": []},
    "reps": {
        "email": "",
        "first_name": "",
        "last_name": "",
        "team": None,
        "manager": None,
        "active": True,
        "time_zone": "UTC",
        "max_open_leads": 50,
        "daily_cap": None,
        "skills": [],
        "working_hours": {},
        "out_of_office": [],
    },
    "queues": {
        "description": "",
        "method": Queue.Method.ROUND_ROBIN.value,
        "active": True,
        "catch_all": False,
        "required_skills": [],
        "skip_off_hours_reps": True,
        "when_nobody_eligible": Queue.WhenNobodyEligible.HOLD.value,
        "inherit_skills": True,
        "fallback": None,
        "members": [],
    },
    "territories": {"parent": None, "description": "", "queue": None, "rep": None, "criteria": {}},
    "accounts": {
        "domains": [],
        "owner": None,
        "territory": None,
        "is_customer": False,
        "tier": Account.Tier.NONE.value,
        "industry": "",
        "country": "",
        "opportunities": [],
    },
    "rules": {"description": "", "position": 100, "active": True, "when": None, "queue": None, "rep": None},
    "calendars": {"time_zone": "UTC", "holidays": None, "owner": None, "hours": [], "closed": []},
    "sla_policies": {
        "description": "",
        "position": 100,
        "active": True,
        "default": False,
        "condition": None,
        "territory": None,
        "queue": None,
        "no_sla": False,
        "first_touch_minutes": None,
        "max_reassignments": 2,
        "notify_outside_business_hours": False,
        "steps": [],
    },
}
MEMBER_DEFAULTS: Entry = {"weight": 1, "active": True}
OUT_OF_OFFICE_DEFAULTS: Entry = {"reason": ""}
CLOSED_DEFAULTS: Entry = {"reason": ""}
HOLIDAY_DEFAULTS: Entry = {"subdivision": ""}
STEP_DEFAULTS: Entry = {"queue": None}
OPPORTUNITY_DEFAULTS: Entry = {"owner": None, "stage": Opportunity.Stage.OPEN.value, "amount": None, "closed_at": None}
# An opportunity's keys in document order.
OPPORTUNITY_FIELDS = ("name", "owner", "stage", "amount", "closed_at")
# The keys of a calendar's owner that name a row; ``default: true`` may stand beside one of them.
OWNER_KINDS = ("rep", "team", "queue")


def entity_key(section: str, value: str) -> str:
    """The key an entity is matched by. Account names match regardless of case."""
    return value.lower() if section == "accounts" else value


def format_datetime(value: dt.datetime) -> str:
    """An instant as the document writes it: UTC, to the second."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def parse_datetime(value: str) -> dt.datetime | None:
    """Parse an ISO 8601 date-time; None when it is not one or has no offset."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def format_window(start: dt.time, end: dt.time) -> str:
    return f"{start:%H:%M}-{end:%H:%M}"


def parse_window(window: str) -> tuple[dt.time, dt.time]:
    start, end = window.split("-")
    return dt.time.fromisoformat(start), dt.time.fromisoformat(end)


def parse_days(days: str) -> list[int] | None:
    """``"mon-fri"`` or ``"mon,wed,fri"`` or ``"mon-wed,sat"`` → weekday numbers; None when a range runs backwards."""
    found: list[int] = []
    for part in days.split(","):
        first, _, last = part.partition("-")
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if end < start:
            return None
        found.extend(range(start, end + 1))
    return found


def format_days(weekdays: set[int]) -> str:
    """Weekday numbers → ``"mon-fri"``, ``"mon,wed"``, ``"mon-wed,sat-sun"`` (runs of two or more as ranges)."""
    parts = []
    ordered = sorted(weekdays)
    index = 0
    while index < len(ordered):
        end = index
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        first, last = WEEKDAYS[ordered[index]], WEEKDAYS[ordered[end]]
        parts.append(first if index == end else f"{first}-{last}")
        index = end + 1
    return ",".join(parts)


def group_hours(windows: set[tuple[int, str, str]]) -> list[Entry]:
    """Opening windows ``(weekday, "HH:MM", "HH:MM")`` as the fewest ``{days, start, end}`` entries, in week order."""
    by_times: dict[tuple[str, str], set[int]] = {}
    for weekday, start, end in windows:
        by_times.setdefault((start, end), set()).add(weekday)
    entries = [{"days": format_days(days), "start": start, "end": end} for (start, end), days in by_times.items()]
    return sorted(entries, key=lambda entry: (WEEKDAYS.index(entry["days"][:3]), entry["start"], entry["end"]))


def expand_hours(entries: list[Entry]) -> set[tuple[int, str, str]]:
    """``{days, start, end}`` entries → opening windows ``(weekday, "HH:MM", "HH:MM")``."""
    return {(weekday, entry["start"], entry["end"]) for entry in entries for weekday in parse_days(entry["days"]) or []}


def parse_amount(value: Any) -> Decimal | None:
    """An opportunity amount (a number, or a string such as "120000.00") as a Decimal of cents; None when it is
    not a number with at most 12 digits before the point and 2 after."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")) or abs(amount) >= Decimal(10) ** 12:
        return None
    return amount.quantize(Decimal("0.01"))


def format_amount(value: Any) -> str | None:
    """An amount as the document writes it: a string with two decimals, so no float rounding creeps in."""
    amount = parse_amount(value)
    return None if amount is None else str(amount)


def opportunity_entry(raw: Entry) -> Entry:
    """A validated opportunity with every key filled in, in document order."""
    closed_at = parse_datetime(raw["closed_at"]) if raw.get("closed_at") else None
    return {
        "name": raw["name"],
        "owner": raw.get("owner"),
        "stage": raw.get("stage", OPPORTUNITY_DEFAULTS["stage"]),
        "amount": format_amount(raw.get("amount")),
        "closed_at": format_datetime(closed_at) if closed_at else None,
    }


def format_percent(percent: int) -> str:
    return f"{percent}%"


def parse_percent(value: str) -> int:
    return int(value.rstrip("%"))


# --- From a document ----------------------------------------------------------------------------


def _normalize_working_hours(value: dict[str, list[str]]) -> dict[str, list[str]]:
    return {day: sorted(value[day]) for day in WEEKDAYS if value.get(day)}


def _normalize_out_of_office(periods: list[Entry]) -> list[Entry]:
    normalized = []
    for period in periods:
        starts_at = parse_datetime(period["starts_at"])
        ends_at = parse_datetime(period["ends_at"])
        assert starts_at is not None and ends_at is not None, "validated before normalizing"
        normalized.append(
            {
                "starts_at": format_datetime(starts_at),
                "ends_at": format_datetime(ends_at),
                "reason": period.get("reason", ""),
            }
        )
    return sorted(normalized, key=lambda period: (period["starts_at"], period["ends_at"], period["reason"]))


def normalize_entry(section: str, raw: Entry) -> Entry:
    """The full entry for a validated document entry: defaults filled in, sets sorted."""
    entry: Entry = {name: raw.get(name, DEFAULTS[section].get(name)) for name in FIELDS[section]}
    for name in ("managers", "skills", "required_skills", "domains"):
        if name in entry:
            entry[name] = sorted(entry[name])
    if section == "reps":
        entry["working_hours"] = _normalize_working_hours(entry["working_hours"])
        entry["out_of_office"] = _normalize_out_of_office(entry["out_of_office"])
    elif section == "queues":
        entry["members"] = [{"rep": member["rep"], **MEMBER_DEFAULTS, **member} for member in entry["members"]]
    elif section == "accounts":
        entry["opportunities"] = sorted(
            (opportunity_entry(item) for item in entry["opportunities"]), key=lambda item: item["name"]
        )
    elif section == "territories":
        criteria = entry["criteria"]
        entry["criteria"] = {key: sorted(criteria[key]) for key in CRITERIA_KINDS if criteria.get(key)}
    elif section == "rules":
        # An empty condition always holds, like an omitted one.
        entry["when"] = canonical_condition(entry["when"]) or None
    elif section == "calendars":
        if entry["holidays"] is not None:
            entry["holidays"] = {**HOLIDAY_DEFAULTS, **entry["holidays"]}
        entry["owner"] = _normalize_owner(entry["owner"])
        entry["hours"] = group_hours(expand_hours(entry["hours"]))
        entry["closed"] = sorted(
            ({"date": item["date"], **CLOSED_DEFAULTS, **item} for item in entry["closed"]),
            key=lambda item: item["date"],
        )
    elif section == "sla_policies":
        entry["condition"] = canonical_condition(entry["condition"]) or None
        entry["steps"] = [_normalize_step(step) for step in entry["steps"]]
    return entry


def _normalize_owner(owner: Entry | None) -> Entry | None:
    if not owner:
        return None
    normalized = {kind: owner[kind] for kind in OWNER_KINDS if owner.get(kind)}
    if owner.get("default"):
        normalized["default"] = True
    return normalized or None


def _normalize_step(step: Entry) -> Entry:
    """A step with its keys in the written order: when (``at`` or ``after_due``), action, queue."""
    when = {"at": format_percent(parse_percent(step["at"]))} if "at" in step else {"after_due": step["after_due"]}
    return {**when, "action": step["action"], "queue": step.get("queue")}


# --- To a document ------------------------------------------------------------------------------


def compact_entry(section: str, entry: Entry) -> Entry:
    """The entry as the exporter writes it: every key whose value is the default left out."""
    defaults = DEFAULTS[section]
    compact: Entry = {}
    for name in FIELDS[section]:
        value = entry[name]
        if name in defaults and value == defaults[name]:
            continue
        if name == "members":
            value = [_without_defaults(member, MEMBER_DEFAULTS) for member in value]
        elif name == "out_of_office":
            value = [_without_defaults(period, OUT_OF_OFFICE_DEFAULTS) for period in value]
        elif name == "closed":
            value = [_without_defaults(item, CLOSED_DEFAULTS) for item in value]
        elif name == "holidays":
            value = _without_defaults(value, HOLIDAY_DEFAULTS)
        elif name == "steps":
            value = [_without_defaults(step, STEP_DEFAULTS) for step in value]
        elif name == "opportunities":
            value = [_without_defaults(item, OPPORTUNITY_DEFAULTS) for item in value]
        compact[name] = value
    return compact


def _without_defaults(item: Entry, defaults: Entry) -> Entry:
    return {name: value for name, value in item.items() if not (name in defaults and value == defaults[name])}


def rename_catch_all(state: State, name: str | None) -> State:
    """The state with the catch-all queue under ``name``, references included.

    The catch-all entry of a document maps onto the existing catch-all row
    whatever it is called, so before comparing, the current catch-all is filed
    under the document's name; the rename then shows as a change of its name.
    """
    old = next((key for key, entry in state["queues"].items() if entry["catch_all"]), None)
    if old is None or name is None or old == name:
        return state

    def renamed(value: str | None) -> str | None:
        return name if value == old else value

    queues = {
        (name if key == old else key): {**entry, "fallback": renamed(entry["fallback"])}
        for key, entry in state["queues"].items()
    }
    territories = {key: {**entry, "queue": renamed(entry["queue"])} for key, entry in state["territories"].items()}
    rules = {key: {**entry, "queue": renamed(entry["queue"])} for key, entry in state["rules"].items()}
    calendars = {
        key: {
            **entry,
            "owner": {kind: renamed(value) if kind == "queue" else value for kind, value in entry["owner"].items()},
        }
        if entry["owner"]
        else entry
        for key, entry in state["calendars"].items()
    }
    policies = {
        key: {
            **entry,
            "queue": renamed(entry["queue"]),
            "steps": [{**step, "queue": renamed(step["queue"])} for step in entry["steps"]],
        }
        for key, entry in state["sla_policies"].items()
    }
    return {
        **state,
        "queues": queues,
        "territories": territories,
        "rules": rules,
        "calendars": calendars,
        "sla_policies": policies,
    }


def state_to_document(state: State) -> dict[str, Any]:
    """A compact, deterministic document: sections in format order, entities sorted by key.

    Rules and SLA policies are the exception: they are written in the order they
    are tried (position, then name), so the file reads like the routing matrix.
    """
    document: dict[str, Any] = {"version": VERSION}
    for section in SECTION_ORDER:
        entries = state.get(section, {})
        if not entries:
            continue
        keys = sorted(entries)
        if section in ("rules", "sla_policies"):
            keys.sort(key=lambda key: (entries[key]["position"], key))
        document[section] = [compact_entry(section, entries[key]) for key in keys]
    return document


# --- From the database --------------------------------------------------------------------------


def read_state() -> State:
    """The coverage model currently in the database, as full entries by key."""
    state: State = {section: {} for section in SECTION_ORDER}

    for skill in Skill.objects.all():
        state["skills"][skill.code] = {"code": skill.code, "name": skill.name, "kind": skill.kind}
    for product_line in ProductLine.objects.all():
        state["product_lines"][product_line.code] = {"code": product_line.code, "name": product_line.name}

    for team in Team.objects.prefetch_related("managers"):
        state["teams"][team.name] = {
            "name": team.name,
            "description": team.description,
            "managers": sorted(user.get_username() for user in team.managers.all()),
        }

    reps = Rep.objects.select_related("user", "team", "manager").prefetch_related(
        "skills", "working_hours", "out_of_office"
    )
    for rep in reps:
        working_hours: dict[str, list[str]] = {}
        for window in sorted(rep.working_hours.all(), key=lambda row: (row.weekday, row.start, row.end)):
            working_hours.setdefault(WEEKDAYS[window.weekday], []).append(format_window(window.start, window.end))
        state["reps"][rep.user.get_username()] = {
            "username": rep.user.get_username(),
            "email": rep.user.email,
            "first_name": rep.user.first_name,
            "last_name": rep.user.last_name,
            "team": rep.team.name if rep.team else None,
            "manager": rep.manager.get_username() if rep.manager else None,
            "active": rep.active,
            "time_zone": rep.time_zone,
            "max_open_leads": rep.max_open_leads,
            "daily_cap": rep.daily_cap,
            "skills": sorted(skill.code for skill in rep.skills.all()),
            "working_hours": _normalize_working_hours(working_hours),
            "out_of_office": sorted(
                (
                    {
                        "starts_at": format_datetime(period.starts_at),
                        "ends_at": format_datetime(period.ends_at),
                        "reason": period.reason,
                    }
                    for period in rep.out_of_office.all()
                ),
                key=lambda period: (period["starts_at"], period["ends_at"], period["reason"]),
            ),
        }

    memberships = QueueMembership.objects.select_related("rep__user").order_by("position", "rep_id")
    queues = Queue.objects.select_related("fallback").prefetch_related(
        "required_skills", Prefetch("memberships", queryset=memberships)
    )
    for queue in queues:
        state["queues"][queue.name] = {
            "name": queue.name,
            "description": queue.description,
            "method": queue.method,
            "active": queue.active,
            "catch_all": queue.is_catch_all,
            "required_skills": sorted(skill.code for skill in queue.required_skills.all()),
            "skip_off_hours_reps": queue.skip_off_hours_reps,
            "when_nobody_eligible": queue.when_nobody_eligible,
            "inherit_skills": queue.inherit_skills,
            "fallback": queue.fallback.name if queue.fallback else None,
            "members": [
                {"rep": member.rep.user.get_username(), "weight": member.weight, "active": member.active}
                for member in queue.memberships.all()
            ],
        }

    for territory in Territory.objects.select_related("parent", "queue", "rep__user").prefetch_related("criteria"):
        criteria: dict[str, list[str]] = {}
        for criterion in territory.criteria.all():
            criteria.setdefault(CRITERIA_KEYS[criterion.kind], []).append(criterion.value)
        state["territories"][territory.name] = {
            "name": territory.name,
            "parent": territory.parent.name if territory.parent else None,
            "description": territory.description,
            "queue": territory.queue.name if territory.queue else None,
            "rep": territory.rep.user.get_username() if territory.rep else None,
            "criteria": {key: sorted(criteria[key]) for key in CRITERIA_KINDS if criteria.get(key)},
        }

    opportunities = Opportunity.objects.select_related("owner__user").order_by("name", "pk")
    accounts = Account.objects.select_related("owner__user", "territory").prefetch_related(
        "domains", Prefetch("opportunities", queryset=opportunities)
    )
    for account in accounts:
        state["accounts"][entity_key("accounts", account.name)] = {
            "name": account.name,
            "domains": sorted(domain.domain for domain in account.domains.all()),
            "owner": account.owner.user.get_username() if account.owner else None,
            "territory": account.territory.name if account.territory else None,
            "is_customer": account.is_customer,
            "tier": account.tier,
            "industry": account.industry,
            "country": account.country,
            "opportunities": [
                {
                    "name": opportunity.name,
                    "owner": opportunity.owner.user.get_username() if opportunity.owner else None,
                    "stage": opportunity.stage,
                    "amount": None if opportunity.amount is None else str(opportunity.amount.quantize(Decimal("0.01"))),
                    "closed_at": format_datetime(opportunity.closed_at) if opportunity.closed_at else None,
                }
                for opportunity in account.opportunities.all()
            ],
        }

    for rule in Rule.objects.select_related("queue", "rep__user"):
        state["rules"][rule.name] = {
            "name": rule.name,
            "description": rule.description,
            "position": rule.position,
            "active": rule.active,
            "when": canonical_condition(rule.condition) or None,
            "action": rule.action,
            "queue": rule.queue.name if rule.queue else None,
            "rep": rule.rep.user.get_username() if rule.rep else None,
        }

    calendars = BusinessCalendar.objects.select_related("rep__user", "team", "queue").prefetch_related(
        "hours", "closed_dates"
    )
    for calendar in calendars:
        owner: Entry = {}
        if calendar.rep:
            owner["rep"] = calendar.rep.user.get_username()
        if calendar.team:
            owner["team"] = calendar.team.name
        if calendar.queue:
            owner["queue"] = calendar.queue.name
        if calendar.is_default:
            owner["default"] = True
        state["calendars"][calendar.name] = {
            "name": calendar.name,
            "time_zone": calendar.time_zone,
            "holidays": (
                {"country": calendar.holiday_country, "subdivision": calendar.holiday_subdivision}
                if calendar.holiday_country or calendar.holiday_subdivision
                else None
            ),
            "owner": owner or None,
            "hours": group_hours(
                {(row.weekday, f"{row.start:%H:%M}", f"{row.end:%H:%M}") for row in calendar.hours.all()}
            ),
            "closed": sorted(
                ({"date": row.date.isoformat(), "reason": row.reason} for row in calendar.closed_dates.all()),
                key=lambda item: item["date"],
            ),
        }

    steps = EscalationStep.objects.select_related("queue").order_by("position")
    policies = SlaPolicy.objects.select_related("territory", "queue").prefetch_related(
        Prefetch("steps", queryset=steps)
    )
    for policy in policies:
        state["sla_policies"][policy.name] = {
            "name": policy.name,
            "description": policy.description,
            "position": policy.position,
            "active": policy.active,
            "default": policy.is_default,
            "condition": canonical_condition(policy.condition) or None,
            "territory": policy.territory.name if policy.territory else None,
            "queue": policy.queue.name if policy.queue else None,
            "no_sla": policy.no_sla,
            "first_touch_minutes": policy.first_touch_minutes,
            "max_reassignments": policy.max_reassignments,
            "notify_outside_business_hours": policy.notify_outside_business_hours,
            "steps": [step_entry(step) for step in policy.steps.all()],
        }
    return state


def step_entry(step: EscalationStep) -> Entry:
    """An escalation step as the document writes it."""
    when: Entry = (
        {"at": format_percent(step.percent or 0)}
        if step.when == EscalationStep.When.PERCENT_OF_TARGET
        else {"after_due": step.minutes_after_due}
    )
    return {**when, "action": step.action, "queue": step.queue.name if step.queue else None}


def existing_usernames(usernames: set[str]) -> set[str]:
    """Which of these user names already have a user."""
    User = get_user_model()
    field = User.USERNAME_FIELD
    return set(User._default_manager.filter(**{f"{field}__in": usernames}).values_list(field, flat=True))


def weekday_number(day: str) -> int:
    return WEEKDAYS.index(day)
