"""Coverage as code: export, import, plan, prune and their guarantees."""

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import transaction

from leadrouter.coverage import (
    CoverageError,
    CoveragePlan,
    apply_import,
    dump_yaml,
    export_coverage,
    load_yaml,
    plan_import,
)
from routing.models import Queue, QueueMembership
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
from territories.picklists import INDUSTRY_CODES, SIZE_BAND_CODES
from tests.factories import (
    PASSWORD,
    AccountDomainFactory,
    AccountFactory,
    LeadFactory,
    OpportunityFactory,
    OutOfOfficeFactory,
    ProductLineFactory,
    QueueFactory,
    QueueMembershipFactory,
    RepFactory,
    SkillFactory,
    TeamFactory,
    TerritoryCriterionFactory,
    TerritoryFactory,
    UserFactory,
    WorkingHoursFactory,
)

User = get_user_model()

# A document in the format's own words, close to the example in docs/coverage.md.
SPEC_DOCUMENT = """
version: 1
skills:
  - {code: german, name: German, kind: language}
  - {code: enterprise, name: Enterprise, kind: segment}
product_lines:
  - {code: analytics, name: Analytics Cloud}
teams:
  - name: DACH
    description: German-speaking markets
    managers: [lena.vogel]
reps:
  - username: anna.schmidt
    email: anna.schmidt@example.com
    first_name: Anna
    last_name: Schmidt
    team: DACH
    manager: lena.vogel
    time_zone: Europe/Berlin
    max_open_leads: 40
    daily_cap: 15
    skills: [german, enterprise]
    working_hours:
      mon: ["09:00-12:30", "13:30-17:30"]
      tue: ["09:00-17:30"]
    out_of_office:
      - {starts_at: "2026-12-23T00:00:00+00:00", ends_at: "2027-01-04T00:00:00+00:00", reason: Holidays}
  - username: ben.keller
    team: DACH
    time_zone: Europe/Zurich
queues:
  - name: Catch-all
    catch_all: true
  - name: DACH Inbound
    method: weighted
    required_skills: [german]
    when_nobody_eligible: overflow
    fallback: Catch-all
    members:
      - {rep: anna.schmidt, weight: 2}
      - {rep: ben.keller, active: false}
territories:
  - name: DACH
    parent: EMEA
    queue: DACH Inbound
    criteria:
      countries: [DE, AT, CH]
      product_lines: [analytics]
  - name: EMEA
    description: Europe, Middle East and Africa
accounts:
  - name: Siemens AG
    domains: [siemens.com, siemens.de]
    owner: anna.schmidt
    territory: DACH
    is_customer: true
    tier: tier_1
    industry: manufacturing
    country: DE
"""


class _Rollback(Exception):
    """Raised to undo a block inside a test's transaction."""


def history_counts() -> dict[str, int]:
    """Change-history rows by model, including the snapshots of many-to-many fields."""
    return {
        model.__name__: model._default_manager.count()
        for model in apps.get_models()
        if model.__name__.startswith("Historical") and model._meta.app_label in ("territories", "routing")
    }


def history_rows() -> int:
    return sum(history_counts().values())


def coverage_counts() -> dict[str, int]:
    models = (
        User,
        Skill,
        ProductLine,
        Team,
        Rep,
        WorkingHours,
        OutOfOffice,
        Queue,
        QueueMembership,
        Territory,
        TerritoryCriterion,
        Account,
        AccountDomain,
    )
    return {model.__name__: model._default_manager.count() for model in models}


def export_text() -> str:
    return dump_yaml(export_coverage())


def build_rich_coverage() -> None:
    """A coverage model that uses every key of the format, built with the factories."""
    german = SkillFactory(code="german", name="German", kind=Skill.Kind.LANGUAGE)
    enterprise = SkillFactory(code="enterprise", name="Enterprise", kind=Skill.Kind.SEGMENT)
    SkillFactory(code="smb", name="Small business")
    analytics = ProductLineFactory(code="analytics", name="Analytics Cloud")
    ProductLineFactory(code="platform", name="Platform")

    lena = UserFactory(username="lena.vogel")
    dach = TeamFactory(name="DACH", description="German-speaking markets\nand Liechtenstein")
    dach.managers.add(lena)
    uk = TeamFactory(name="UK & Ireland")

    anna = RepFactory(
        user=UserFactory(username="anna.schmidt", email="anna.schmidt@example.com"),
        team=dach,
        manager=lena,
        time_zone="Europe/Berlin",
        max_open_leads=40,
        daily_cap=15,
        skills=[german, enterprise],
    )
    WorkingHoursFactory(rep=anna, weekday=0, start=dt.time(9), end=dt.time(12, 30))
    WorkingHoursFactory(rep=anna, weekday=0, start=dt.time(13, 30), end=dt.time(17, 30))
    WorkingHoursFactory(rep=anna, weekday=6, start=dt.time(22), end=dt.time(6))
    # The factory's period starts "now", with microseconds the document does not carry.
    OutOfOfficeFactory(rep=anna, reason="Holidays")
    OutOfOfficeFactory(
        rep=anna,
        starts_at=dt.datetime(2027, 3, 1, 8, tzinfo=dt.UTC),
        ends_at=dt.datetime(2027, 3, 2, 8, tzinfo=dt.UTC),
        reason="",
    )
    ben = RepFactory(user=UserFactory(username="ben.keller", first_name="", last_name="", email=""), team=None)
    ben.active = False
    ben.time_zone = "UTC"
    ben.max_open_leads = 50
    ben.save()
    chloe = RepFactory(
        user=UserFactory(username="chloe.price"), team=uk, time_zone="Europe/London", skills=[enterprise]
    )

    catch_all = Queue.objects.catch_all()
    overflow = QueueFactory(name="EMEA Overflow", description="Everything in EMEA", method=Queue.Method.LOAD_BALANCED)
    overflow.fallback = catch_all
    overflow.when_nobody_eligible = Queue.WhenNobodyEligible.OVERFLOW
    overflow.save()
    inbound = QueueFactory(name="DACH Inbound", method=Queue.Method.WEIGHTED, skip_off_hours_reps=False)
    inbound.fallback = overflow
    inbound.save()
    inbound.required_skills.set([german])
    QueueMembershipFactory(queue=inbound, rep=anna, weight=3, position=10)
    QueueMembershipFactory(queue=inbound, rep=ben, active=False, position=20)
    QueueMembershipFactory(queue=overflow, rep=chloe, position=5)
    QueueFactory(name="Paused", active=False)

    emea = TerritoryFactory(name="EMEA", queue=overflow, description="Europe, Middle East and Africa")
    dach_territory = TerritoryFactory(name="DACH", parent=emea, queue=inbound)
    for value in ("DE", "AT", "CH"):
        TerritoryCriterionFactory(territory=dach_territory, kind=TerritoryCriterion.Kind.COUNTRY, value=value)
    TerritoryCriterionFactory(territory=dach_territory, kind=TerritoryCriterion.Kind.SIZE_BAND, value="201-1000")
    TerritoryCriterionFactory(territory=dach_territory, kind=TerritoryCriterion.Kind.INDUSTRY, value="software")
    TerritoryCriterionFactory(territory=dach_territory, kind=TerritoryCriterion.Kind.PRODUCT_LINE, value=analytics.code)
    london = TerritoryFactory(name="London", parent=emea, rep=chloe)
    TerritoryCriterionFactory(territory=london, kind=TerritoryCriterion.Kind.POSTAL_PREFIX, value="EC")
    TerritoryCriterionFactory(territory=london, kind=TerritoryCriterion.Kind.SUBDIVISION, value="GB-LND")

    siemens = AccountFactory(
        name="Siemens AG",
        owner=anna,
        territory=dach_territory,
        is_customer=True,
        tier=Account.Tier.TIER_1,
        industry="manufacturing",
        country="DE",
    )
    AccountDomainFactory(account=siemens, domain="siemens.de")
    AccountDomainFactory(account=siemens, domain="siemens.com")
    OpportunityFactory(account=siemens, name="Siemens expansion", owner=anna, amount=Decimal("120000.50"))
    OpportunityFactory(
        account=siemens,
        name="Siemens pilot",
        stage=Opportunity.Stage.WON,
        closed_at=dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC),
    )
    AccountFactory(name="acme ltd", country="")


# --- Export ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_fresh_database_exports_only_the_catch_all_queue():
    document = export_coverage()

    assert list(document) == ["version", "queues"]
    assert document["queues"] == [
        {"name": "Catch-all", "description": Queue.objects.catch_all().description, "catch_all": True}
    ]


@pytest.mark.django_db
def test_export_is_compact_and_sorted_by_key():
    build_rich_coverage()

    document = export_coverage()

    assert list(document) == [
        "version",
        "skills",
        "product_lines",
        "teams",
        "reps",
        "queues",
        "territories",
        "accounts",
    ]
    assert [skill["code"] for skill in document["skills"]] == ["enterprise", "german", "smb"]
    # Default values are left out: smb is kind "other", ben works in UTC with the default capacity.
    assert document["skills"][2] == {"code": "smb", "name": "Small business"}
    ben = next(rep for rep in document["reps"] if rep["username"] == "ben.keller")
    assert ben == {"username": "ben.keller", "active": False}
    # Queue members keep their round-robin order; windows are sorted within the day.
    inbound = next(queue for queue in document["queues"] if queue["name"] == "DACH Inbound")
    assert inbound["members"] == [{"rep": "anna.schmidt", "weight": 3}, {"rep": "ben.keller", "active": False}]
    anna = next(rep for rep in document["reps"] if rep["username"] == "anna.schmidt")
    assert anna["working_hours"] == {"mon": ["09:00-12:30", "13:30-17:30"], "sun": ["22:00-06:00"]}
    assert anna["out_of_office"][1] == {
        "starts_at": "2027-03-01T08:00:00+00:00",
        "ends_at": "2027-03-02T08:00:00+00:00",
    }
    # The catch-all sorts by its name like any other queue.
    assert [queue["name"] for queue in document["queues"]] == ["Catch-all", "DACH Inbound", "EMEA Overflow", "Paused"]


@pytest.mark.django_db
def test_round_trip_into_an_empty_database_is_byte_identical():
    # Build a rich model, export it, and undo everything so only the catch-all is left.
    with pytest.raises(_Rollback), transaction.atomic():
        build_rich_coverage()
        exported = export_text()
        raise _Rollback
    assert not Rep.objects.exists()

    apply_import(load_yaml(exported))

    assert export_text() == exported


@pytest.mark.django_db
def test_round_trip_on_a_populated_model_plans_nothing_and_exports_identically():
    build_rich_coverage()
    exported = export_text()

    plan = apply_import(load_yaml(exported))

    assert plan.is_empty
    assert plan.render() == "No changes."
    assert export_text() == exported


# --- Import -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_import_into_an_empty_database_creates_everything():
    plan = apply_import(load_yaml(SPEC_DOCUMENT))

    assert ("create", "territory", "DACH") in {(change.action, change.kind, change.key) for change in plan.changes}
    anna = Rep.objects.select_related("user", "team", "manager").get(user__username="anna.schmidt")
    assert (anna.user.email, anna.user.first_name, anna.user.last_name) == (
        "anna.schmidt@example.com",
        "Anna",
        "Schmidt",
    )
    assert not anna.user.has_usable_password()
    assert anna.team.name == "DACH"
    assert anna.manager.username == "lena.vogel"
    assert (anna.time_zone, anna.max_open_leads, anna.daily_cap) == ("Europe/Berlin", 40, 15)
    assert sorted(anna.skills.values_list("code", flat=True)) == ["enterprise", "german"]
    assert sorted((w.weekday, w.start, w.end) for w in anna.working_hours.all()) == [
        (0, dt.time(9), dt.time(12, 30)),
        (0, dt.time(13, 30), dt.time(17, 30)),
        (1, dt.time(9), dt.time(17, 30)),
    ]
    period = anna.out_of_office.get()
    assert period.starts_at == dt.datetime(2026, 12, 23, tzinfo=dt.UTC)
    assert Team.objects.get(name="DACH").managers.get().username == "lena.vogel"

    inbound = Queue.objects.get(name="DACH Inbound")
    assert inbound.method == Queue.Method.WEIGHTED
    assert inbound.fallback == Queue.objects.catch_all()
    assert list(inbound.required_skills.values_list("code", flat=True)) == ["german"]
    members = list(inbound.memberships.order_by("position").values_list("rep__user__username", "weight", "active"))
    assert members == [("anna.schmidt", 2, True), ("ben.keller", 1, False)]

    dach = Territory.objects.get(name="DACH")
    assert dach.parent is not None and dach.parent.name == "EMEA"
    assert dach.queue == inbound
    assert sorted(dach.criteria.values_list("kind", "value")) == [
        ("country", "AT"),
        ("country", "CH"),
        ("country", "DE"),
        ("product_line", "analytics"),
    ]
    siemens = Account.objects.get(name="Siemens AG")
    assert sorted(siemens.domains.values_list("domain", flat=True)) == ["siemens.com", "siemens.de"]
    assert (siemens.owner, siemens.territory, siemens.tier, siemens.industry) == (anna, dach, "tier_1", "manufacturing")
    # The document's catch-all entry is the existing row, not a second catch-all.
    assert Queue.objects.filter(is_catch_all=True).count() == 1


@pytest.mark.django_db
def test_an_existing_user_becomes_a_rep_and_keeps_their_password():
    user = UserFactory(username="anna.schmidt", email="old@example.com")

    apply_import({"version": 1, "reps": [{"username": "anna.schmidt", "email": "anna@example.com"}]})

    user.refresh_from_db()
    assert user.rep.time_zone == "UTC"
    assert (user.email, user.first_name, user.last_name) == ("anna@example.com", "", "")
    assert user.check_password(PASSWORD)


@pytest.mark.django_db
def test_a_team_manager_that_does_not_exist_is_created_without_a_password():
    plan = apply_import({"version": 1, "teams": [{"name": "DACH", "managers": ["lena.vogel"]}]})

    assert plan.render().splitlines()[:2] == ['+ user "lena.vogel"', '+ team "DACH"']
    lena = User.objects.get(username="lena.vogel")
    assert not lena.has_usable_password()
    assert list(lena.managed_teams.values_list("name", flat=True)) == ["DACH"]


@pytest.mark.django_db
def test_importing_the_same_document_twice_plans_nothing_and_writes_no_history():
    document = load_yaml(SPEC_DOCUMENT)
    apply_import(document)
    rows_before = history_rows()

    second = apply_import(document)

    assert second.is_empty
    assert history_rows() == rows_before


@pytest.mark.django_db
def test_history_rows_record_the_user_and_the_reason():
    revops = UserFactory(username="revops")

    apply_import(load_yaml(SPEC_DOCUMENT), user=revops)

    record = Territory.history.get(name="DACH")
    assert record.history_user == revops
    assert record.history_change_reason == "coverage import"
    assert {row.history_change_reason for row in Rep.history.all()} == {"coverage import"}


@pytest.mark.django_db
def test_only_the_changed_entity_is_saved():
    apply_import(load_yaml(SPEC_DOCUMENT))
    before = history_counts()
    document = load_yaml(SPEC_DOCUMENT.replace("max_open_leads: 40", "max_open_leads: 45"))

    plan = apply_import(document)

    assert plan.render().splitlines() == [
        '~ rep "anna.schmidt": max_open_leads 40 → 45',
        "1 change: 1 to update.",
    ]
    change = plan.changes[0]
    assert (change.action, change.kind, change.key) == ("update", "rep", "anna.schmidt")
    assert [(field.field, field.old, field.new) for field in change.fields] == [("max_open_leads", 40, 45)]
    # One history row for the rep (with its snapshot of two skills), nothing for anything else.
    grown = {name: count - before[name] for name, count in history_counts().items() if count != before[name]}
    assert grown == {"HistoricalRep": 1, "HistoricalRep_skills": 2}
    assert Rep.objects.get(user__username="anna.schmidt").max_open_leads == 45


@pytest.mark.django_db
def test_related_rows_are_replaced_to_match_the_document():
    apply_import(load_yaml(SPEC_DOCUMENT))
    document = load_yaml(SPEC_DOCUMENT)
    anna = document["reps"][0]
    anna["working_hours"] = {"mon": ["08:00-16:00"]}
    anna["out_of_office"] = []
    anna["skills"] = ["german"]
    document["queues"][1]["members"] = [{"rep": "ben.keller"}, {"rep": "anna.schmidt", "weight": 2}]
    document["territories"][0]["criteria"] = {"countries": ["DE", "LI"]}
    document["accounts"][0]["domains"] = ["siemens.com", "siemens.at"]

    apply_import(document)

    rep = Rep.objects.get(user__username="anna.schmidt")
    assert [(w.weekday, w.start, w.end) for w in rep.working_hours.all()] == [(0, dt.time(8), dt.time(16))]
    assert not rep.out_of_office.exists()
    assert list(rep.skills.values_list("code", flat=True)) == ["german"]
    inbound = Queue.objects.get(name="DACH Inbound")
    assert list(inbound.memberships.order_by("position").values_list("rep__user__username", flat=True)) == [
        "ben.keller",
        "anna.schmidt",
    ]
    assert sorted(Territory.objects.get(name="DACH").criteria.values_list("value", flat=True)) == ["DE", "LI"]
    assert sorted(AccountDomain.objects.values_list("domain", flat=True)) == ["siemens.at", "siemens.com"]
    assert apply_import(document).is_empty


@pytest.mark.django_db
def test_a_domain_moves_between_two_accounts_of_the_document():
    apply_import(load_yaml(SPEC_DOCUMENT))
    document = load_yaml(SPEC_DOCUMENT)
    document["accounts"][0]["domains"] = ["siemens.com"]
    document["accounts"].append({"name": "Siemens Deutschland", "domains": ["siemens.de"]})

    apply_import(document)

    assert AccountDomain.objects.get(domain="siemens.de").account.name == "Siemens Deutschland"


@pytest.mark.django_db
def test_entities_left_out_of_the_document_stay_without_prune():
    build_rich_coverage()
    counts = coverage_counts()

    plan = apply_import({"version": 1, "skills": [{"code": "french", "name": "French"}]})

    assert plan.render().splitlines() == ['+ skill "french"', "1 change: 1 to create."]
    assert coverage_counts() == {**counts, "Skill": counts["Skill"] + 1}


@pytest.mark.django_db
def test_account_names_match_regardless_of_case():
    AccountFactory(name="Acme Ltd")

    plan = apply_import({"version": 1, "accounts": [{"name": "ACME Ltd"}]})

    assert plan.render().splitlines()[0] == '~ account "ACME Ltd": name "Acme Ltd" → "ACME Ltd"'
    assert list(Account.objects.values_list("name", flat=True)) == ["ACME Ltd"]


# --- Dry run --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_plan_import_writes_nothing():
    counts, rows = coverage_counts(), history_rows()

    plan = plan_import(load_yaml(SPEC_DOCUMENT))

    assert isinstance(plan, CoveragePlan)
    assert not plan.is_empty
    assert '+ territory "DACH"' in plan.render().splitlines()
    assert '+ user "lena.vogel"' in plan.render().splitlines()
    assert coverage_counts() == counts
    assert history_rows() == rows


# --- Catch-all ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_catch_all_entry_renames_the_existing_catch_all():
    catch_all = Queue.objects.catch_all()
    document = load_yaml(SPEC_DOCUMENT.replace("Catch-all", "Everything else"))

    plan = apply_import(document)

    assert '~ queue "Everything else": name "Catch-all" → "Everything else"' in plan.render().splitlines()
    renamed = Queue.objects.catch_all()
    assert renamed.pk == catch_all.pk
    assert renamed.name == "Everything else"
    assert Queue.objects.get(name="DACH Inbound").fallback == renamed
    assert apply_import(document).is_empty


@pytest.mark.django_db
def test_a_new_queue_can_take_the_old_name_of_the_renamed_catch_all():
    document = {
        "version": 1,
        "queues": [{"name": "Catch-all", "description": "Now a normal queue"}, {"name": "Zz", "catch_all": True}],
    }

    apply_import(document)

    assert Queue.objects.catch_all().name == "Zz"
    assert not Queue.objects.get(name="Catch-all").is_catch_all


@pytest.mark.django_db
def test_catch_all_cannot_take_the_name_of_another_queue():
    QueueFactory(name="General")

    with pytest.raises(CoverageError) as caught:
        plan_import({"version": 1, "queues": [{"name": "General", "catch_all": True}]})

    assert [path for path, _message in caught.value.errors] == ["queues[0].name"]


# --- Prune ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_prune_deletes_what_the_document_leaves_out_and_deactivates_reps():
    build_rich_coverage()
    document = export_coverage()
    # Leave out one of each kind.
    document["skills"] = [skill for skill in document["skills"] if skill["code"] != "smb"]
    document["product_lines"] = [line for line in document["product_lines"] if line["code"] != "platform"]
    document["teams"] = [team for team in document["teams"] if team["name"] != "UK & Ireland"]
    document["reps"] = [rep for rep in document["reps"] if rep["username"] != "chloe.price"]
    document["queues"] = [queue for queue in document["queues"] if queue["name"] != "Paused"]
    for queue in document["queues"]:
        queue["members"] = [member for member in queue.get("members", []) if member["rep"] != "chloe.price"]
    document["territories"] = [territory for territory in document["territories"] if territory["name"] != "London"]
    document["accounts"] = [account for account in document["accounts"] if account["name"] != "acme ltd"]

    plan = apply_import(document, prune=True)

    lines = plan.render().splitlines()
    for line in (
        '- skill "smb"',
        '- product line "platform"',
        '- team "UK & Ireland"',
        '- rep "chloe.price": deactivated (not in the document)',
        '- queue "Paused"',
        '- territory "London"',
        '- account "acme ltd"',
    ):
        assert line in lines
    assert not Skill.objects.filter(code="smb").exists()
    assert not ProductLine.objects.filter(code="platform").exists()
    assert not Team.objects.filter(name="UK & Ireland").exists()
    assert not Queue.objects.filter(name="Paused").exists()
    assert not Territory.objects.filter(name="London").exists()
    assert not Account.objects.filter(name="acme ltd").exists()
    chloe = Rep.objects.get(user__username="chloe.price")
    assert not chloe.active
    assert Queue.objects.filter(is_catch_all=True).exists()
    assert apply_import(document, prune=True).is_empty


@pytest.mark.django_db
def test_prune_never_deletes_the_catch_all():
    plan = apply_import({"version": 1}, prune=True)

    assert plan.is_empty
    assert Queue.objects.filter(is_catch_all=True).count() == 1


@pytest.mark.django_db
def test_prune_cannot_delete_a_queue_that_leads_point_at():
    old = QueueFactory(name="Old")
    LeadFactory(queue=old)
    counts = coverage_counts()

    with pytest.raises(CoverageError) as caught:
        apply_import({"version": 1, "queues": [{"name": "Catch-all", "catch_all": True}]}, prune=True)

    assert caught.value.errors[0][0] == "queues"
    assert '"Old"' in caught.value.errors[0][1]
    assert "1 lead" in caught.value.errors[0][1]
    assert coverage_counts() == counts


@pytest.mark.django_db
def test_with_prune_references_must_point_into_the_document():
    TeamFactory(name="DACH")

    with pytest.raises(CoverageError) as caught:
        plan_import({"version": 1, "teams": [], "reps": [{"username": "anna", "team": "DACH"}]}, prune=True)

    assert caught.value.errors == [
        ("reps[0].team", 'there is no team "DACH"; it is not in this document, so --prune would delete it')
    ]


@pytest.mark.django_db
def test_prune_refuses_a_partial_document_that_would_empty_a_section():
    # A file with only accounts, imported with --prune by mistake, must not wipe the territories.
    TerritoryFactory(name="DACH")
    TeamFactory(name="EMEA")
    counts = coverage_counts()

    with pytest.raises(CoverageError) as caught:
        plan_import({"version": 1, "accounts": []}, prune=True)

    assert [path for path, _ in caught.value.errors] == ["teams", "territories"]
    assert "write `territories: []` to remove them" in caught.value.errors[1][1]
    assert coverage_counts() == counts
    # Said explicitly, the same prune goes through.
    plan = plan_import({"version": 1, "teams": [], "territories": [], "accounts": []}, prune=True)
    assert '- territory "DACH"' in plan.render().splitlines()


# --- Invalid documents ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_invalid_document_reports_every_error_with_its_path_and_writes_nothing():
    document = load_yaml(SPEC_DOCUMENT)
    anna = document["reps"][0]
    anna["time_zone"] = "Europe/Berlim"
    anna["working_hours"]["mon"] = ["09:00-12:30", "12:00-17:30"]
    anna["out_of_office"][0]["ends_at"] = "2026-12-01T00:00:00+00:00"
    document["reps"][1]["team"] = "Nordics"
    document["queues"][1]["fallback"] = None
    document["territories"][0]["criteria"]["countries"] = ["DE", "XX"]
    document["territories"][1]["parent"] = "DACH"
    document["territories"].append({"name": "EMEA"})
    document["accounts"][0]["domains"] = ["siemens.com", "WWW.Siemens.de"]
    document["accounts"].append({"name": "siemens ag", "domains": ["siemens.com"]})
    document["accounts"].append({"name": "Bosch", "domains": ["siemens.com"], "owner": "nobody"})
    counts, rows = coverage_counts(), history_rows()

    with pytest.raises(CoverageError) as caught:
        apply_import(document)

    assert {path for path, _message in caught.value.errors} == {
        "reps[0].time_zone",
        "reps[0].working_hours.mon[1]",
        "reps[0].out_of_office[0].ends_at",
        "reps[1].team",
        "queues[1].fallback",
        "territories[0].criteria.countries[1]",
        "territories[0].parent",
        "territories[2].name",
        "accounts[0].domains[1]",
        "accounts[1].name",
        "accounts[1].domains[0]",
        "accounts[2].domains[0]",
        "accounts[2].owner",
    }
    assert coverage_counts() == counts
    assert history_rows() == rows
    # str() lists one "path: message" per line.
    assert str(caught.value).splitlines()[0].startswith("reps[0].time_zone: Europe/Berlim is not an IANA time zone")


@pytest.mark.django_db
def test_schema_errors_point_at_the_offending_key():
    document = {
        "version": 2,
        "skills": [{"code": "german", "name": "German", "kind": "spoken"}],
        "reps": [
            {"username": "anna", "working_hours": {"monday": ["09:00-17:00"], "tue": ["9-5"]}, "max_open_leads": 0},
            {"email": "x@example.com"},
        ],
        "queues": [{"name": "Catch-all", "catch_all": True, "method": "random"}],
        "territories": [{"name": "DACH", "criteria": {"countries": ["de"], "postal_prefixes": [94]}}],
        "accounts": [{"name": "Acme", "colour": "red", "tier": "gold"}],
    }

    with pytest.raises(CoverageError) as caught:
        plan_import(document)

    errors = dict(caught.value.errors)
    assert errors["version"] == "must be 1"
    assert errors["skills[0].kind"].startswith('"spoken" is not allowed; use one of: language, product')
    assert errors["reps[0].working_hours.monday"].startswith("is not a known key; use one of: mon, tue")
    assert errors["reps[0].working_hours.tue[0]"] == '"9-5" is not a window HH:MM-HH:MM such as 09:00-17:30'
    assert errors["reps[0].max_open_leads"] == "must be at least 1"
    assert errors["reps[1].username"] == "is required"
    assert "queues[0].method" in errors
    assert "territories[0].criteria.countries[0]" in errors
    assert errors["territories[0].criteria.postal_prefixes[0]"] == (
        "must be a string; put 94 in quotes so it is read as text"
    )
    assert errors["accounts[0].colour"].startswith("is not a known key")
    assert "accounts[0].tier" in errors


@pytest.mark.django_db
def test_other_keys_of_an_entry_with_a_schema_error_are_still_checked():
    document = {"version": 1, "accounts": [{"name": "Acme", "industry": "Software", "domains": ["www.acme.com"]}]}

    with pytest.raises(CoverageError) as caught:
        plan_import(document)

    assert [path for path, _message in caught.value.errors] == ["accounts[0].industry", "accounts[0].domains[0]"]


@pytest.mark.django_db
def test_queue_rules_are_checked():
    document = {
        "version": 1,
        "queues": [
            {"name": "Catch-all", "catch_all": True, "active": False, "fallback": "A"},
            {"name": "A", "fallback": "B"},
            {"name": "B", "fallback": "A", "members": [{"rep": "ghost"}]},
            {"name": "C", "when_nobody_eligible": "overflow"},
            {"name": "D", "catch_all": True},
        ],
        "territories": [{"name": "T", "queue": "A", "rep": "ghost"}],
    }

    with pytest.raises(CoverageError) as caught:
        plan_import(document)

    errors = dict(caught.value.errors)
    assert errors["queues[0].active"] == "the catch-all queue cannot be deactivated"
    assert errors["queues[0].fallback"] == "the catch-all queue is the last stop; it has no fallback"
    assert errors["queues[1].fallback"] == "the fallbacks run in a circle: A → B → A"
    assert errors["queues[2].members[0].rep"] == 'there is no rep "ghost"'
    assert errors["queues[3].fallback"].startswith("is required when when_nobody_eligible is overflow")
    assert errors["queues[4].catch_all"] == "only one queue can be the catch-all; queues[0] is"
    assert ("territories[0].rep", 'there is no rep "ghost"') in caught.value.errors
    assert ("territories[0].rep", "a territory is covered by a queue or by a rep, not both; remove one") in (
        caught.value.errors
    )


@pytest.mark.django_db
def test_a_queue_section_needs_its_catch_all():
    with pytest.raises(CoverageError) as caught:
        plan_import({"version": 1, "queues": [{"name": "A"}]})

    assert caught.value.errors == [
        ("queues", "one queue must have catch_all: true; it takes every lead no rule placed")
    ]


@pytest.mark.django_db
def test_cycles_through_rows_already_in_the_database_are_found():
    # In the database EMEA sits below DACH; the document puts DACH below EMEA.
    TerritoryFactory(name="EMEA", parent=TerritoryFactory(name="DACH"))

    with pytest.raises(CoverageError) as caught:
        plan_import({"version": 1, "territories": [{"name": "DACH", "parent": "EMEA"}]})

    assert caught.value.errors == [("territories[0].parent", "the parents run in a circle: DACH → EMEA → DACH")]


@pytest.mark.django_db
def test_a_domain_kept_by_an_account_outside_the_document_is_an_error():
    AccountDomainFactory(account=AccountFactory(name="Acme Old"), domain="acme.com")

    with pytest.raises(CoverageError) as caught:
        plan_import({"version": 1, "accounts": [{"name": "Acme", "domains": ["acme.com"]}]})

    assert caught.value.errors[0][0] == "accounts[0].domains[0]"
    assert '"Acme Old"' in caught.value.errors[0][1]


@pytest.mark.django_db
def test_model_level_error_in_the_last_entity_rolls_everything_back():
    # The name is too long for the database column: only the model's full_clean() can tell.
    document = load_yaml(SPEC_DOCUMENT)
    document["accounts"].append({"name": "A" * 201})
    counts, rows = coverage_counts(), history_rows()

    with pytest.raises(CoverageError) as caught:
        apply_import(document)

    assert caught.value.errors == [("accounts[1].name", "Ensure this value has at most 200 characters (it has 201).")]
    assert coverage_counts() == counts
    assert history_rows() == rows


# --- Schema file ----------------------------------------------------------------------------------------


def test_schema_enums_follow_the_picklists():
    schema = json.loads(Path("leadrouter/coverage/schema.json").read_text())
    criteria = schema["$defs"]["territory"]["properties"]["criteria"]["properties"]

    assert set(criteria["industries"]["items"]["enum"]) == INDUSTRY_CODES
    assert set(criteria["size_bands"]["items"]["enum"]) == SIZE_BAND_CODES
    assert set(schema["$defs"]["account"]["properties"]["industry"]["enum"]) == INDUSTRY_CODES | {""}
    assert set(schema["$defs"]["skill"]["properties"]["kind"]["enum"]) == set(Skill.Kind.values)
    assert set(schema["$defs"]["queue"]["properties"]["method"]["enum"]) == set(Queue.Method.values)
    assert set(schema["$defs"]["account"]["properties"]["tier"]["enum"]) == set(Account.Tier.values)
