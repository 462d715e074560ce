"""CSV import and export of reps, territories and accounts through the admin."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model

from territories.models import Account, Rep, Territory
from territories.resources import AccountResource, RepResource, TerritoryResource
from tests.factories import (
    AccountDomainFactory,
    AccountFactory,
    ProductLineFactory,
    QueueFactory,
    RepFactory,
    SkillFactory,
    TeamFactory,
    TerritoryCriterionFactory,
    TerritoryFactory,
    UserFactory,
)
from tests.helpers import export_csv, import_csv, messages_text

pytestmark = pytest.mark.django_db
User = get_user_model()


REP_HEADER = "username,email,first_name,last_name,team,manager,active,time_zone,max_open_leads,daily_cap,skills\n"


def test_importing_reps_creates_their_users(client, revops, team, manager):
    SkillFactory(code="german")
    SkillFactory(code="enterprise")
    client.force_login(revops)

    _, done = import_csv(
        client,
        Rep,
        REP_HEADER
        + "anna,anna@example.com,Anna,Schmidt,Inside Sales,manager,yes,Europe/Berlin,30,5,german;enterprise\n"
        + "ben,ben@example.com,Ben,Berg,inside sales,,no,UTC,,,\n",
    )

    assert done is not None and done.status_code == 302
    assert "Import finished: 2 new" in messages_text(done)
    anna = Rep.objects.get(user__username="anna")
    assert (anna.user.email, anna.user.get_full_name(), anna.team, anna.manager) == (
        "anna@example.com",
        "Anna Schmidt",
        team,
        manager,
    )
    assert (anna.time_zone, anna.max_open_leads, anna.daily_cap) == ("Europe/Berlin", 30, 5)
    assert sorted(anna.skills.values_list("code", flat=True)) == ["enterprise", "german"]
    assert not anna.user.is_staff and not anna.user.has_usable_password()
    ben = Rep.objects.get(user__username="ben")
    assert (ben.active, ben.max_open_leads, ben.team) == (False, 50, team)


def test_importing_an_existing_username_updates_the_rep(client, revops, rep):
    client.force_login(revops)

    _, done = import_csv(
        client, Rep, REP_HEADER + "rep,rep.new@example.com,Rita,Rep,Inside Sales,manager,yes,Europe/Paris,7,,\n"
    )

    assert "1 updated" in messages_text(done)
    rep.refresh_from_db()
    assert (rep.user.email, rep.user.first_name, rep.time_zone, rep.max_open_leads) == (
        "rep.new@example.com",
        "Rita",
        "Europe/Paris",
        7,
    )
    assert Rep.objects.count() == 1


def test_a_rep_file_with_bad_rows_shows_row_numbered_errors_and_imports_nothing(client, revops, team):
    client.force_login(revops)

    dry_run, done = import_csv(
        client,
        Rep,
        REP_HEADER
        + "good,good@example.com,Good,Row,Inside Sales,,yes,UTC,10,,\n"
        + "bad,,Bad,Row,Nowhere,ghost,maybe,Mars/Base,lots,0,klingon\n",
    )

    assert done is None
    result = dry_run.context["result"]
    [invalid] = result.invalid_rows
    assert invalid.number == 2
    errors = {field: " ".join(str(message) for message in messages) for field, messages in invalid.error_dict.items()}
    assert "No team named “Nowhere”; add it under Teams first" in errors["team"]
    assert "No user with username “ghost”" in errors["manager"]
    assert "“maybe” is not yes or no" in errors["active"]
    assert "“lots” is not a whole number" in errors["max_open_leads"]
    assert "No skill with code klingon; add it under Skills first" in errors["skills"]
    assert "Mars/Base is not an IANA time zone" in errors["time_zone"]
    assert "Enter the rep's e-mail address" in errors["email"]
    html = dry_run.content.decode()
    assert "Some rows failed to validate" in html
    assert not Rep.objects.exists()
    assert not User.objects.filter(username__in=["good", "bad"]).exists()


def test_rep_export_has_the_documented_columns(client, revops, rep):
    rep.skills.add(SkillFactory(code="german"))
    client.force_login(revops)

    [row] = export_csv(client, Rep)

    assert list(row) == REP_HEADER.strip().split(",")
    assert row["username"] == "rep"
    assert row["email"] == "rep@example.com"
    assert (row["team"], row["manager"], row["active"], row["skills"]) == ("Inside Sales", "manager", "yes", "german")


TERRITORY_HEADER = "name,parent,queue,rep,countries,subdivisions,postal_prefixes,industries,size_bands,product_lines\n"


def test_importing_territories_builds_the_tree_and_its_criteria(client, revops, rep):
    QueueFactory(name="EMEA Inbound")
    ProductLineFactory(code="analytics")
    client.force_login(revops)

    _, done = import_csv(
        client,
        Territory,
        TERRITORY_HEADER
        + "EMEA,,EMEA Inbound,,,,,,,\n"
        + "DACH,EMEA,,,de;at;ch,,,,,\n"
        + "Germany Enterprise,DACH,,rep,DE,DE-BY,8;9,software,1001-5000;5001+,analytics\n",
    )

    assert "3 new" in messages_text(done)
    germany = Territory.objects.get(name="Germany Enterprise")
    assert germany.parent.parent.name == "EMEA"
    assert germany.rep == rep
    assert sorted(germany.criteria.values_list("kind", "value")) == [
        ("country", "DE"),
        ("industry", "software"),
        ("postal_prefix", "8"),
        ("postal_prefix", "9"),
        ("product_line", "analytics"),
        ("size_band", "1001-5000"),
        ("size_band", "5001+"),
        ("subdivision", "DE-BY"),
    ]
    assert sorted(Territory.objects.get(name="DACH").criteria.values_list("value", flat=True)) == ["AT", "CH", "DE"]


def test_reimporting_a_territory_replaces_its_criteria(client, revops):
    dach = TerritoryFactory(name="DACH")
    TerritoryCriterionFactory(territory=dach, kind="country", value="FR")
    TerritoryCriterionFactory(territory=dach, kind="size_band", value="51-200")
    client.force_login(revops)

    _, done = import_csv(client, Territory, "name,countries,size_bands\nDACH,DE;AT,\n")

    assert "1 updated" in messages_text(done)
    assert sorted(dach.criteria.values_list("kind", "value")) == [("country", "AT"), ("country", "DE")]


def test_a_territory_file_with_bad_rows_shows_row_numbered_errors_and_imports_nothing(client, revops, rep):
    QueueFactory(name="EMEA Inbound")
    client.force_login(revops)

    dry_run, done = import_csv(
        client,
        Territory,
        TERRITORY_HEADER
        + "EMEA,,EMEA Inbound,,,,,,,\n"
        + "Nordics,Scandinavia,,,SE;XX,,,mining,huge,\n"
        + "Both,EMEA,EMEA Inbound,rep,,,,,,\n",
    )

    assert done is None
    invalid = {row.number: row for row in dry_run.context["result"].invalid_rows}
    assert sorted(invalid) == [2, 3]
    nordics = {field: " ".join(str(m) for m in messages) for field, messages in invalid[2].error_dict.items()}
    assert "No territory named “Scandinavia”; put the parent's row above its children" in nordics["parent"]
    assert "XX is not an ISO 3166-1 alpha-2 country code" in nordics["countries"]
    assert "mining is not an industry in the picklist" in nordics["industries"]
    assert "huge is not an employee-size band" in nordics["size_bands"]
    assert "covered by a queue or by a rep, not both" in " ".join(invalid[3].non_field_specific_errors)
    assert not Territory.objects.exists()


def test_territory_export_has_the_documented_columns(client, revops):
    emea = TerritoryFactory(name="EMEA", queue=QueueFactory(name="EMEA Inbound"))
    dach = TerritoryFactory(name="DACH", parent=emea)
    TerritoryCriterionFactory(territory=dach, kind="country", value="DE")
    TerritoryCriterionFactory(territory=dach, kind="country", value="AT")
    client.force_login(revops)

    rows = {row["name"]: row for row in export_csv(client, Territory)}

    assert list(rows["DACH"]) == TERRITORY_HEADER.strip().split(",")
    assert rows["DACH"]["parent"] == "EMEA"
    assert rows["DACH"]["countries"] == "AT;DE"
    assert rows["EMEA"]["queue"] == "EMEA Inbound"


ACCOUNT_HEADER = "name,domains,owner,territory,is_customer,tier,industry,country\n"


def test_importing_accounts_sets_domains_owner_and_segment(client, revops, rep):
    TerritoryFactory(name="DACH")
    existing = AccountFactory(name="Globex")
    AccountDomainFactory(account=existing, domain="old-globex.com")
    client.force_login(revops)

    _, done = import_csv(
        client,
        Account,
        ACCOUNT_HEADER
        + "Acme,https://www.acme.com/about;acme.de,rep,DACH,yes,Tier 1 (ABM),Software & Internet,de\n"
        + "GLOBEX,globex.com,,,no,tier_3,,US\n",
    )

    assert "1 new, 1 updated" in messages_text(done)
    acme = Account.objects.get(name="Acme")
    assert sorted(acme.domains.values_list("domain", flat=True)) == ["acme.com", "acme.de"]
    assert (acme.owner, acme.territory.name, acme.is_customer, acme.tier, acme.industry, acme.country) == (
        rep,
        "DACH",
        True,
        "tier_1",
        "software",
        "DE",
    )
    # The name matched ignoring case; the file's spelling is kept.
    existing.refresh_from_db()
    assert (existing.name, existing.tier, existing.country) == ("GLOBEX", "tier_3", "US")
    assert list(existing.domains.values_list("domain", flat=True)) == ["globex.com"]


def test_an_account_file_with_bad_rows_shows_row_numbered_errors_and_imports_nothing(client, revops):
    AccountDomainFactory(account=AccountFactory(name="Initech"), domain="initech.com")
    client.force_login(revops)

    dry_run, done = import_csv(
        client,
        Account,
        ACCOUNT_HEADER
        + "Acme,acme.com,,,yes,,,DE\n"
        + "Hooli,initech.com;not a domain,nobody,Mars,sure,gold,mining,Germany\n",
    )

    assert done is None
    [invalid] = dry_run.context["result"].invalid_rows
    assert invalid.number == 2
    errors = {field: " ".join(str(m) for m in messages) for field, messages in invalid.error_dict.items()}
    assert "initech.com belongs to the account “Initech”; remove it there first" in errors["domains"]
    assert "No rep with username “nobody”" in errors["owner"]
    assert "No territory named “Mars”" in errors["territory"]
    assert "“sure” is not yes or no" in errors["is_customer"]
    assert "“gold” is not a tier; use one of: tier_1, tier_2, tier_3" in errors["tier"]
    assert "“mining” is not an industry" in errors["industry"]
    assert "GERMANY is not an ISO 3166-1 alpha-2 country code" in errors["country"]
    assert not Account.objects.filter(name__in=["Acme", "Hooli"]).exists()


def test_account_export_has_the_documented_columns(client, revops, rep):
    account = AccountFactory(name="Acme", owner=rep, territory=TerritoryFactory(name="DACH"), tier="tier_2")
    AccountDomainFactory(account=account, domain="acme.com")
    client.force_login(revops)

    [row] = export_csv(client, Account)

    assert list(row) == ACCOUNT_HEADER.strip().split(",")
    assert (row["name"], row["domains"], row["owner"], row["territory"], row["tier"], row["is_customer"]) == (
        "Acme",
        "acme.com",
        "rep",
        "DACH",
        "tier_2",
        "no",
    )


def test_an_exported_file_imports_back_without_changes(client, revops, rep):
    TeamFactory(name="Field Sales")
    RepFactory(user=UserFactory(username="zoe"), skills=[SkillFactory(code="german")])
    client.force_login(revops)
    rows = export_csv(client, Rep)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)

    _, done = import_csv(client, Rep, buffer.getvalue())

    assert "0 new, 2 updated" in messages_text(done)
    assert list(Rep.objects.get(user__username="zoe").skills.values_list("code", flat=True)) == ["german"]


def test_resources_run_model_validation():
    # The row-level report relies on full_clean() running for every row.
    for resource in (RepResource, TerritoryResource, AccountResource):
        assert resource._meta.clean_model_instances
