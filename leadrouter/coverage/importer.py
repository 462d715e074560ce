"""Planning and applying a coverage import."""

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, models, transaction

from leadrouter.coverage.errors import CoverageError
from leadrouter.coverage.plan import CREATE, DEACTIVATE, DELETE, Change, CoveragePlan, build_plan
from leadrouter.coverage.state import (
    CRITERIA_KINDS,
    DEFAULTS,
    FIELDS,
    KEY_FIELDS,
    Entry,
    entity_key,
    expand_hours,
    format_datetime,
    format_window,
    parse_amount,
    parse_datetime,
    parse_percent,
    parse_window,
    read_state,
    step_entry,
    weekday_number,
)
from leadrouter.coverage.validation import Desired, show, validate_document
from routing.models import Queue, QueueMembership, Rule
from sla.models import BusinessCalendar, CalendarHours, ClosedDate, EscalationStep, SlaPolicy
from territories.coverage_version import coverage_version_bump
from territories.models import (
    Account,
    AccountDomain,
    Opportunity,
    OutOfOffice,
    ProductLine,
    Rep,
    Skill,
    Team,
    Territory,
    TerritoryCriterion,
    WorkingHours,
)

CHANGE_REASON = "coverage import"

# Fields stored on the entity's own row; the other fields are related rows
# (skills, members, windows, ...) replaced on their own.
_OWN_FIELDS = {
    "skills": {"name", "kind"},
    "product_lines": {"name"},
    "teams": {"description"},
    "reps": {"team", "manager", "active", "time_zone", "max_open_leads", "daily_cap"},
    "queues": {
        *("name", "description", "method", "active", "skip_off_hours_reps"),
        *("when_nobody_eligible", "inherit_skills", "fallback"),
    },
    "territories": {"parent", "description", "queue", "rep"},
    "accounts": {"name", "owner", "territory", "is_customer", "tier", "industry", "country"},
    "rules": {"description", "position", "active", "when", "action", "queue", "rep"},
    "calendars": {"time_zone", "holidays", "owner"},
    "sla_policies": {
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
    },
}
_USER_FIELDS = ("email", "first_name", "last_name")


def plan_import(document: dict[str, Any], *, prune: bool = False) -> CoveragePlan:
    """Validate ``document`` and compute what importing it would change. Writes nothing.

    Raises CoverageError with every problem found.
    """
    current = read_state()
    desired = validate_document(document, prune=prune, current=current)
    return build_plan(desired, current, prune=prune)


def apply_import(
    document: dict[str, Any], *, prune: bool = False, user: AbstractBaseUser | None = None, dry_run: bool = False
) -> CoveragePlan:
    """Validate ``document`` and make the database match it, all in one transaction.

    Only entities the plan names are written, so importing an unchanged
    document writes nothing at all. Every saved row runs ``full_clean()``
    first and is recorded in its change history with ``user`` and the reason
    "coverage import". Any error rolls the whole import back and is raised as
    CoverageError.

    With ``dry_run`` every write is made exactly as in a real import and the
    transaction is then rolled back, so a dry run that passes means the
    import passes (the database's own constraints included).
    """
    with transaction.atomic():
        plan = plan_import(document, prune=prune)
        if not plan.is_empty:
            _Applier(plan, user=user).run()
        if dry_run:
            transaction.set_rollback(True)
    return plan


def _dependency_order(entries: dict[str, Entry], link: str) -> list[str]:
    """Keys ordered so that the entry ``link`` names (a fallback, a parent) comes first.

    Validation has ruled out cycles, so saving in this order never points a row
    at one that is still to change.
    """
    order: list[str] = []
    placed: set[str] = set()
    for start in sorted(entries):
        chain = []
        node: str | None = start
        while node is not None and node in entries and node not in placed and node not in chain:
            chain.append(node)
            node = entries[node][link]
        for key in reversed(chain):
            placed.add(key)
            order.append(key)
    return order


def _model_errors(error: ValidationError, path: str, field_paths: dict[str, str]) -> list[tuple[str, str]]:
    if not hasattr(error, "error_dict"):
        return [(path, message) for message in error.messages]
    found: list[tuple[str, str]] = []
    for name, messages in error.message_dict.items():
        target = path if name == NON_FIELD_ERRORS else field_paths.get(name, f"{path}.{name}")
        found.extend((target, message) for message in messages)
    return found


class _Applier:
    """Writes one plan. Runs inside the transaction ``apply_import`` opened."""

    def __init__(self, plan: CoveragePlan, *, user: AbstractBaseUser | None) -> None:
        assert plan.desired is not None, "a plan built by build_plan"
        self.plan = plan
        self.desired: Desired = plan.desired
        self.state = self.desired.state
        self.user = user
        User = get_user_model()
        usernames = {change.key for change in plan.changes if change.section == "users"}
        usernames |= set(self.state.get("reps", {}))
        usernames |= {rep["manager"] for rep in self.state.get("reps", {}).values() if rep["manager"]}
        for team in self.state.get("teams", {}).values():
            usernames |= set(team["managers"])
        self.users: dict[str, Any] = {
            user.get_username(): user
            for user in User._default_manager.filter(**{f"{User.USERNAME_FIELD}__in": usernames})
        }
        self.skills = {skill.code: skill for skill in Skill.objects.all()}
        self.product_lines = {line.code: line for line in ProductLine.objects.all()}
        self.teams = {team.name: team for team in Team.objects.all()}
        self.reps = {rep.user.get_username(): rep for rep in Rep.objects.select_related("user")}
        self.queues = {queue.name: queue for queue in Queue.objects.all()}
        self.territories = {territory.name: territory for territory in Territory.objects.all()}
        self.accounts = {entity_key("accounts", account.name): account for account in Account.objects.all()}
        self.rules = {rule.name: rule for rule in Rule.objects.all()}
        self.calendars = {calendar.name: calendar for calendar in BusinessCalendar.objects.all()}
        self.policies = {policy.name: policy for policy in SlaPolicy.objects.all()}
        # The document's catch-all is the existing catch-all row, whatever either is called.
        catch_all = next((queue for queue in self.queues.values() if queue.is_catch_all), None)
        wanted = next((key for key, entry in self.state.get("queues", {}).items() if entry["catch_all"]), None)
        if catch_all is not None and wanted is not None and wanted != catch_all.name:
            del self.queues[catch_all.name]
            self.queues[wanted] = catch_all
        self.catch_all = wanted

    # --- Writing rows ----------------------------------------------------------------------------

    def stamp(self, row: models.Model) -> None:
        """Attribute the history row simple-history writes for ``row`` to this import."""
        row._change_reason = CHANGE_REASON  # type: ignore[attr-defined]
        if self.user is not None:
            row._history_user = self.user  # type: ignore[attr-defined]

    def save(self, row: models.Model, path: str, field_paths: dict[str, str] | None = None) -> None:
        """Check ``row`` like a form would (``full_clean``), then save it; errors point at ``path``."""
        self.stamp(row)
        try:
            row.full_clean()
        except ValidationError as error:
            raise CoverageError(_model_errors(error, path, field_paths or {})) from error
        try:
            row.save()
        except IntegrityError as error:
            raise CoverageError([(path, f"the database refused it: {error}")]) from error

    def delete(self, row: models.Model, path: str, title: str) -> None:
        self.stamp(row)
        try:
            row.delete()
        except (models.ProtectedError, models.RestrictedError) as error:
            blockers = sorted({str(obj._meta.verbose_name_plural) for obj in error.args[1]})
            raise CoverageError(
                [(path, f"{title} cannot be deleted: {', '.join(blockers)} point at it; keep it in the document")]
            ) from error

    def path(self, section: str, key: str) -> str:
        return self.desired.paths[(section, key)]

    def raw(self, section: str, key: str) -> Entry:
        return self.desired.raw[(section, key)]

    def to_write(self, section: str) -> Iterable[tuple[str, Entry, Change]]:
        """Entries of ``section`` the plan creates or updates, with their change."""
        changes = self.plan.changes_for(section)
        entries = self.state.get(section, {})
        for key, entry in entries.items():
            change = changes.get(entry[KEY_FIELDS[section]])
            if change is not None and change.action not in (DELETE, DEACTIVATE):
                yield key, entry, change

    # --- Sections, in dependency order ------------------------------------------------------------

    def run(self) -> None:
        self.release_claims()
        self.create_users()
        self.write_codes("skills", Skill, self.skills)
        self.write_codes("product_lines", ProductLine, self.product_lines)
        self.write_teams()
        self.write_reps()
        self.write_queues()
        self.write_territories()
        self.write_accounts()
        self.write_rules()
        self.write_calendars()
        self.write_policies()
        self.prune()

    def release_claims(self) -> None:
        """Clear the single-holder claims that move to another row before any row takes them.

        The default SLA policy, the default calendar and a rep's, team's or queue's calendar are held by
        one row at a time (database constraints). When the document moves one from row A to row B, or drops
        A, writing B first would meet A still holding it, so whether the import passed would depend on the
        order of entries in the file. Every such claim is cleared on the rows giving it up first; the
        sections then write the final values in any order. The rows are saved again (or deleted) later in
        the same transaction, which records the change in their history.
        """
        policies = self.state.get("sla_policies", {})
        policies_changed = self.plan.changes_for("sla_policies")
        releasing = [
            policy.pk
            for name, policy in self.policies.items()
            if policy.is_default
            and name in policies_changed
            and (policies_changed[name].action == DELETE or not policies.get(name, {}).get("default"))
        ]
        SlaPolicy.objects.filter(pk__in=releasing).update(is_default=False)
        # Policies and calendars are cached by the coverage version (sla.services._sla_setup) and updates send
        # no signals; the rows are saved again below anyway, but the bump must not depend on that.
        coverage_version_bump()
        calendars = self.state.get("calendars", {})
        calendars_changed = self.plan.changes_for("calendars")
        for name, calendar in self.calendars.items():
            change = calendars_changed.get(name)
            if change is None:
                continue
            owner = {} if change.action == DELETE else (calendars.get(name, {}).get("owner") or {})
            released: dict[str, Any] = {}
            if calendar.is_default and not owner.get("default"):
                released["is_default"] = False
            for kind, rows in (("rep", self.reps), ("team", self.teams), ("queue", self.queues)):
                holder = getattr(calendar, f"{kind}_id")
                wanted = rows.get(owner[kind]) if owner.get(kind) else None
                if holder is not None and (wanted is None or wanted.pk != holder):
                    released[kind] = None
            if released:
                BusinessCalendar.objects.filter(pk=calendar.pk).update(**released)

    def create_users(self) -> None:
        User = get_user_model()
        for change in self.plan.changes_for("users").values():
            rep = self.state.get("reps", {}).get(change.key)
            user = User(**{User.USERNAME_FIELD: change.key})
            if rep is not None:
                for name in _USER_FIELDS:
                    setattr(user, name, rep[name])
            user.set_unusable_password()
            path = self.user_path(change.key)
            # A rep's user fields are keys of the rep entry; a team manager is one item of a list.
            self.save(user, path, {} if rep is not None else {"username": path})
            self.users[change.key] = user

    def user_path(self, username: str) -> str:
        if ("reps", username) in self.desired.paths:
            return self.path("reps", username)
        for key, team in self.state.get("teams", {}).items():
            if username in team["managers"]:
                position = self.raw("teams", key)["managers"].index(username)
                return f"{self.path('teams', key)}.managers[{position}]"
        return "users"

    def write_codes(self, section: str, model: Any, rows: dict[str, Any]) -> None:
        for key, entry, _change in self.to_write(section):
            row = rows.get(key) or model(code=key)
            row.name = entry["name"]
            if section == "skills":
                row.kind = entry["kind"]
            self.save(row, self.path(section, key))
            rows[key] = row

    def write_teams(self) -> None:
        for key, entry, change in self.to_write("teams"):
            changed = _changed("teams", entry, change)
            team = self.teams.get(key) or Team(name=key)
            if team.pk is None or changed & _OWN_FIELDS["teams"]:
                team.description = entry["description"]
                self.save(team, self.path("teams", key))
                self.teams[key] = team
            if "managers" in changed:
                self.stamp(team)
                team.managers.set([self.users[name] for name in entry["managers"]])

    def write_reps(self) -> None:
        for key, entry, change in self.to_write("reps"):
            changed = _changed("reps", entry, change)
            path = self.path("reps", key)
            user = self.users[key]
            if any(getattr(user, name) != entry[name] for name in _USER_FIELDS):
                for name in _USER_FIELDS:
                    setattr(user, name, entry[name])
                self.save(user, path)
            rep = self.reps.get(key) or Rep(user=user)
            if rep.pk is None or changed & _OWN_FIELDS["reps"]:
                rep.team = self.teams[entry["team"]] if entry["team"] else None
                rep.manager = self.users[entry["manager"]] if entry["manager"] else None
                rep.active = entry["active"]
                rep.time_zone = entry["time_zone"]
                rep.max_open_leads = entry["max_open_leads"]
                rep.daily_cap = entry["daily_cap"]
                self.save(rep, path, {"user": f"{path}.username"})
                self.reps[key] = rep
            if "skills" in changed:
                self.stamp(rep)
                rep.skills.set([self.skills[code] for code in entry["skills"]])
            if "working_hours" in changed:
                self.replace_working_hours(rep, key, entry)
            if "out_of_office" in changed:
                self.replace_out_of_office(rep, key, entry)

    def replace_working_hours(self, rep: Rep, key: str, entry: Entry) -> None:
        wanted = [(day, window) for day, windows in entry["working_hours"].items() for window in windows]
        for row in rep.working_hours.all():
            item = (_weekday_key(row.weekday), format_window(row.start, row.end))
            if item in wanted:
                wanted.remove(item)
            else:
                self.delete(row, self.path("reps", key), f"working hours {row}")
        raw = self.raw("reps", key).get("working_hours", {})
        for day, window in wanted:
            path = f"{self.path('reps', key)}.working_hours.{day}[{raw[day].index(window)}]"
            start, end = parse_window(window)
            row = WorkingHours(rep=rep, weekday=weekday_number(day), start=start, end=end)
            self.save(row, path, {"start": path, "end": path, "weekday": path})

    def replace_out_of_office(self, rep: Rep, key: str, entry: Entry) -> None:
        wanted = [(period["starts_at"], period["ends_at"], period["reason"]) for period in entry["out_of_office"]]
        for row in rep.out_of_office.all():
            item = (format_datetime(row.starts_at), format_datetime(row.ends_at), row.reason)
            if item in wanted:
                wanted.remove(item)
            else:
                self.delete(row, self.path("reps", key), f"out-of-office period {row}")
        raw = self.raw("reps", key).get("out_of_office", [])
        for starts_at, ends_at, reason in wanted:
            position = next(
                index
                for index, period in enumerate(raw)
                if _same_instant(period["starts_at"], starts_at)
                and _same_instant(period["ends_at"], ends_at)
                and period.get("reason", "") == reason
            )
            path = f"{self.path('reps', key)}.out_of_office[{position}]"
            row = OutOfOffice(rep=rep, starts_at=_instant(starts_at), ends_at=_instant(ends_at), reason=reason)
            self.save(row, path)

    def write_queues(self) -> None:
        writes = {key: (entry, change) for key, entry, change in self.to_write("queues")}
        # The catch-all goes first (it has no fallback): a rename frees its old name for a new queue.
        order = sorted(
            _dependency_order(self.state.get("queues", {}), "fallback"), key=lambda key: key != self.catch_all
        )
        for key in order:
            if key not in writes:
                continue
            entry, change = writes[key]
            changed = _changed("queues", entry, change)
            path = self.path("queues", key)
            queue = self.queues.get(key) or Queue(name=key, is_catch_all=entry["catch_all"])
            if queue.pk is None or changed & _OWN_FIELDS["queues"]:
                queue.name = entry["name"]
                queue.description = entry["description"]
                queue.method = entry["method"]
                queue.active = entry["active"]
                queue.skip_off_hours_reps = entry["skip_off_hours_reps"]
                queue.when_nobody_eligible = entry["when_nobody_eligible"]
                queue.inherit_skills = entry["inherit_skills"]
                queue.fallback = self.queues[entry["fallback"]] if entry["fallback"] else None
                self.save(queue, path, {"is_catch_all": f"{path}.catch_all"})
                self.queues[key] = queue
            if "required_skills" in changed:
                self.stamp(queue)
                queue.required_skills.set([self.skills[code] for code in entry["required_skills"]])
            if "members" in changed:
                self.replace_members(queue, path, entry)

    def replace_members(self, queue: Queue, path: str, entry: Entry) -> None:
        """Make the members match the document; the list order is the round-robin position."""
        current = {row.rep_id: row for row in queue.memberships.all()}
        for position, member in enumerate(entry["members"]):
            rep = self.reps[member["rep"]]
            row = current.pop(rep.pk, None) or QueueMembership(queue=queue, rep=rep)
            wanted = (member["weight"], member["active"], position)
            if row.pk is not None and (row.weight, row.active, row.position) == wanted:
                continue
            row.weight, row.active, row.position = wanted
            self.save(row, f"{path}.members[{position}]")
        for row in current.values():
            self.delete(row, path, f"membership {row}")

    def write_territories(self) -> None:
        writes = {key: (entry, change) for key, entry, change in self.to_write("territories")}
        for key in _dependency_order(self.state.get("territories", {}), "parent"):
            if key not in writes:
                continue
            entry, change = writes[key]
            changed = _changed("territories", entry, change)
            path = self.path("territories", key)
            territory = self.territories.get(key) or Territory(name=key)
            if territory.pk is None or changed & _OWN_FIELDS["territories"]:
                territory.parent = self.territories[entry["parent"]] if entry["parent"] else None
                territory.description = entry["description"]
                territory.queue = self.queues[entry["queue"]] if entry["queue"] else None
                territory.rep = self.reps[entry["rep"]] if entry["rep"] else None
                self.save(territory, path)
                self.territories[key] = territory
            if "criteria" in changed:
                self.replace_criteria(territory, key, entry)

    def replace_criteria(self, territory: Territory, key: str, entry: Entry) -> None:
        wanted = [(CRITERIA_KINDS[name], value) for name, values in entry["criteria"].items() for value in values]
        for row in territory.criteria.all():
            if (row.kind, row.value) in wanted:
                wanted.remove((row.kind, row.value))
            else:
                self.delete(row, self.path("territories", key), f"criterion {row}")
        raw = self.raw("territories", key).get("criteria", {})
        names = {kind: name for name, kind in CRITERIA_KINDS.items()}
        for kind, value in wanted:
            name = names[kind]
            path = f"{self.path('territories', key)}.criteria.{name}[{raw[name].index(value)}]"
            row = TerritoryCriterion(territory=territory, kind=kind, value=value)
            self.save(row, path, {"value": path, "kind": path})

    def write_accounts(self) -> None:
        domain_changes = []
        for key, entry, change in self.to_write("accounts"):
            changed = _changed("accounts", entry, change)
            account = self.accounts.get(key) or Account(name=entry["name"])
            if account.pk is None or changed & _OWN_FIELDS["accounts"]:
                account.name = entry["name"]
                account.owner = self.reps[entry["owner"]] if entry["owner"] else None
                account.territory = self.territories[entry["territory"]] if entry["territory"] else None
                account.is_customer = entry["is_customer"]
                account.tier = entry["tier"]
                account.industry = entry["industry"]
                account.country = entry["country"]
                self.save(account, self.path("accounts", key))
                self.accounts[key] = account
            if "domains" in changed:
                domain_changes.append((key, entry, account))
            if "opportunities" in changed:
                self.replace_opportunities(account, key, entry)
        self.replace_domains(domain_changes)

    def replace_opportunities(self, account: Account, key: str, entry: Entry) -> None:
        """Make the account's opportunities match the document, by name: changed ones are rewritten in place
        (keeping their creation time, which orders open opportunities for routing), new ones created, the
        rest deleted (a name held by two rows keeps the older row)."""
        path = self.path("accounts", key)
        raw_names = [item["name"] for item in self.raw("accounts", key).get("opportunities", [])]
        rows: dict[str, Opportunity] = {}
        for row in account.opportunities.select_related("owner__user").order_by("created_at", "pk"):
            if row.name in rows:
                self.delete(row, path, f"opportunity {show(row.name)}")
            else:
                rows[row.name] = row
        wanted = {item["name"]: item for item in entry["opportunities"]}
        for name, row in rows.items():
            if name not in wanted:
                self.delete(row, path, f"opportunity {show(name)}")
        for name, item in wanted.items():
            row = rows.get(name) or Opportunity(account=account, name=name)
            owner = self.reps[item["owner"]] if item["owner"] else None
            closed_at = _instant(item["closed_at"]) if item["closed_at"] else None
            amount = parse_amount(item["amount"])
            if row.pk is not None and (row.owner_id, row.stage, row.amount, row.closed_at) == (
                owner.pk if owner else None,
                item["stage"],
                amount,
                closed_at,
            ):
                continue
            row.owner, row.stage, row.amount, row.closed_at = owner, item["stage"], amount, closed_at
            item_path = f"{path}.opportunities[{raw_names.index(name)}]"
            self.save(row, item_path, {"name": f"{item_path}.name", "closed_at": f"{item_path}.closed_at"})

    def replace_domains(self, domain_changes: list[tuple[str, Entry, Account]]) -> None:
        """Add, move and remove domains; a domain moving between accounts keeps its row."""
        wanted = [domain for _key, entry, _account in domain_changes for domain in entry["domains"]]
        rows = {row.domain: row for row in AccountDomain.objects.filter(domain__in=wanted)}
        for key, entry, account in domain_changes:
            raw = self.raw("accounts", key)["domains"]
            for domain in entry["domains"]:
                row = rows.get(domain) or AccountDomain(domain=domain)
                if row.pk is not None and row.account_id == account.pk:
                    continue
                row.account = account
                path = f"{self.path('accounts', key)}.domains[{raw.index(domain)}]"
                self.save(row, path, {"domain": path, "account": path})
        for key, entry, account in domain_changes:
            for row in account.domains.exclude(domain__in=entry["domains"]):
                self.delete(row, self.path("accounts", key), f"domain {row.domain}")

    def write_rules(self) -> None:
        """Rules come after queues and reps, which they route to."""
        for key, entry, _change in self.to_write("rules"):
            path = self.path("rules", key)
            rule = self.rules.get(key) or Rule(name=key)
            rule.description = entry["description"]
            rule.position = entry["position"]
            rule.active = entry["active"]
            rule.condition = entry["when"]
            rule.action = entry["action"]
            rule.queue = self.queues[entry["queue"]] if entry["queue"] else None
            rule.rep = self.reps[entry["rep"]] if entry["rep"] else None
            self.save(rule, path, {"condition": f"{path}.when"})
            self.rules[key] = rule

    def write_calendars(self) -> None:
        """Calendars come after the reps, teams and queues that own them."""
        for key, entry, change in self.to_write("calendars"):
            changed = _changed("calendars", entry, change)
            path = self.path("calendars", key)
            calendar = self.calendars.get(key) or BusinessCalendar(name=key)
            if calendar.pk is None or changed & _OWN_FIELDS["calendars"]:
                holidays = entry["holidays"] or {"country": "", "subdivision": ""}
                owner = entry["owner"] or {}
                calendar.time_zone = entry["time_zone"]
                calendar.holiday_country = holidays["country"]
                calendar.holiday_subdivision = holidays["subdivision"]
                calendar.rep = self.reps[owner["rep"]] if owner.get("rep") else None
                calendar.team = self.teams[owner["team"]] if owner.get("team") else None
                calendar.queue = self.queues[owner["queue"]] if owner.get("queue") else None
                calendar.is_default = bool(owner.get("default"))
                self.save(
                    calendar,
                    path,
                    {
                        "time_zone": f"{path}.time_zone",
                        "holiday_country": f"{path}.holidays",
                        "holiday_subdivision": f"{path}.holidays",
                        "rep": f"{path}.owner",
                        "team": f"{path}.owner",
                        "queue": f"{path}.owner",
                        "is_default": f"{path}.owner",
                    },
                )
                self.calendars[key] = calendar
            if "hours" in changed:
                self.replace_calendar_hours(calendar, path, entry)
            if "closed" in changed:
                self.replace_closed_dates(calendar, path, entry)

    def replace_calendar_hours(self, calendar: BusinessCalendar, path: str, entry: Entry) -> None:
        wanted = expand_hours(entry["hours"])
        for row in calendar.hours.all():
            item = (row.weekday, f"{row.start:%H:%M}", f"{row.end:%H:%M}")
            if item in wanted:
                wanted.remove(item)
            else:
                self.delete(row, path, f"opening hours {row}")
        for weekday, start, end in sorted(wanted):
            row = CalendarHours(
                calendar=calendar,
                weekday=weekday,
                start=dt.time.fromisoformat(start),
                end=dt.time.fromisoformat(end),
            )
            self.save(row, f"{path}.hours")

    def replace_closed_dates(self, calendar: BusinessCalendar, path: str, entry: Entry) -> None:
        wanted = {item["date"]: item["reason"] for item in entry["closed"]}
        for row in calendar.closed_dates.all():
            day = row.date.isoformat()
            if day not in wanted:
                self.delete(row, path, f"closed date {row}")
                continue
            reason = wanted.pop(day)
            if row.reason != reason:
                row.reason = reason
                self.save(row, f"{path}.closed")
        for day, reason in sorted(wanted.items()):
            self.save(ClosedDate(calendar=calendar, date=dt.date.fromisoformat(day), reason=reason), f"{path}.closed")

    def write_policies(self) -> None:
        """SLA policies come after the territories and queues they name."""
        for key, entry, change in self.to_write("sla_policies"):
            changed = _changed("sla_policies", entry, change)
            path = self.path("sla_policies", key)
            policy = self.policies.get(key) or SlaPolicy(name=key)
            if policy.pk is None or changed & _OWN_FIELDS["sla_policies"]:
                policy.description = entry["description"]
                policy.position = entry["position"]
                policy.active = entry["active"]
                policy.is_default = entry["default"]
                policy.condition = entry["condition"]
                policy.territory = self.territories[entry["territory"]] if entry["territory"] else None
                policy.queue = self.queues[entry["queue"]] if entry["queue"] else None
                policy.no_sla = entry["no_sla"]
                policy.first_touch_minutes = entry["first_touch_minutes"]
                policy.max_reassignments = entry["max_reassignments"]
                policy.notify_outside_business_hours = entry["notify_outside_business_hours"]
                self.save(policy, path, {"is_default": f"{path}.default"})
                self.policies[key] = policy
            if "steps" in changed:
                self.replace_steps(policy, path, entry)

    def replace_steps(self, policy: SlaPolicy, path: str, entry: Entry) -> None:
        """Make the ladder match the document, step by step in place.

        Existing rows are kept and rewritten by position rather than replaced, so
        a lead whose clock points at its next step keeps pointing at that rung.
        """
        rows = list(policy.steps.select_related("queue").order_by("position"))
        for row in rows[len(entry["steps"]) :]:
            self.delete(row, path, f"escalation step {row}")
        kept = rows[: len(entry["steps"])]
        # Positions are unique per policy: park the renumbered rows out of the way first.
        moving = [row.pk for position, row in enumerate(kept, start=1) if row.position != position]
        EscalationStep.objects.filter(pk__in=moving).update(position=models.F("position") + 10_000)
        coverage_version_bump()  # Updates send no signals; ladders are cached by the coverage version.
        for position, step in enumerate(entry["steps"], start=1):
            row = kept[position - 1] if position <= len(kept) else EscalationStep(policy=policy)
            if row.pk is not None and row.pk not in moving and step_entry(row) == step:
                continue
            if "at" in step:
                row.when = EscalationStep.When.PERCENT_OF_TARGET
                row.percent, row.minutes_after_due = parse_percent(step["at"]), None
            else:
                row.when = EscalationStep.When.AFTER_DUE
                row.percent, row.minutes_after_due = None, step["after_due"]
            row.position = position
            row.action = step["action"]
            row.queue = self.queues[step["queue"]] if step["queue"] else None
            step_path = f"{path}.steps[{position - 1}]"
            self.save(row, step_path, {"percent": f"{step_path}.at", "minutes_after_due": f"{step_path}.after_due"})

    # --- Pruning -----------------------------------------------------------------------------------

    def prune(self) -> None:
        """Deactivate and delete what the document leaves out; children and referrers go first."""
        for change in self.plan.changes:
            if change.action == DEACTIVATE:
                rep = self.reps[change.key]
                rep.active = False
                self.save(rep, "reps")
        deleted = {
            section: [
                change.key for change in self.plan.changes if change.section == section and change.action == DELETE
            ]
            for section in (
                "sla_policies",
                "calendars",
                "rules",
                "accounts",
                "territories",
                "queues",
                "teams",
                "product_lines",
                "skills",
            )
        }
        # SLA policies and calendars name queues, territories, teams and reps; they go first.
        for name in deleted["sla_policies"]:
            self.delete(self.policies[name], "sla_policies", f"SLA policy {show(name)}")
        for name in deleted["calendars"]:
            self.delete(self.calendars[name], "calendars", f"calendar {show(name)}")
        # Rules point at queues and reps, so they go before anything they could name.
        for name in deleted["rules"]:
            self.delete(self.rules[name], "rules", f"rule {show(name)}")
        for name in deleted["accounts"]:
            account = self.accounts[entity_key("accounts", name)]
            for domain in account.domains.all():
                self.delete(domain, "accounts", f"domain {domain.domain}")
            self.delete(account, "accounts", f"account {show(name)}")
        for territory in _deepest_first([self.territories[name] for name in deleted["territories"]], "parent"):
            for criterion in territory.criteria.all():
                self.delete(criterion, "territories", f"criterion {criterion}")
            self.delete(territory, "territories", f"territory {show(territory.name)}")
        for queue in _deepest_first([self.queues[name] for name in deleted["queues"]], "fallback"):
            for membership in queue.memberships.all():
                self.delete(membership, "queues", f"membership {membership}")
            self.delete(queue, "queues", f"queue {show(queue.name)}")
        for name in deleted["teams"]:
            self.delete(self.teams[name], "teams", f"team {show(name)}")
        for code in deleted["product_lines"]:
            self.delete(self.product_lines[code], "product_lines", f"product line {show(code)}")
        for code in deleted["skills"]:
            self.delete(self.skills[code], "skills", f"skill {show(code)}")


def _changed(section: str, entry: Entry, change: Change) -> set[str]:
    """The fields a change writes: those that differ, or for a new entity those not at their default."""
    if change.action == CREATE:
        defaults = DEFAULTS[section]
        return {name for name in FIELDS[section] if name not in defaults or entry[name] != defaults[name]}
    return {field_change.field for field_change in change.fields}


def _weekday_key(weekday: int) -> str:
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[weekday]


def _instant(value: str) -> dt.datetime:
    parsed = parse_datetime(value)
    assert parsed is not None, "validated before applying"
    return parsed


def _same_instant(written: str, normalized: str) -> bool:
    parsed = parse_datetime(written)
    return parsed is not None and format_datetime(parsed) == normalized


def _deepest_first(rows: list[Any], link: str) -> list[Any]:
    """Rows ordered so that a row another one points at through ``link`` comes after it."""

    def depth(row: Any) -> int:
        steps, node, seen = 0, getattr(row, link), set()
        while node is not None and node.pk not in seen:
            seen.add(node.pk)
            steps += 1
            node = getattr(node, link)
        return steps

    return sorted(rows, key=depth, reverse=True)
