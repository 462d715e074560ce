"""Validation that stops RevOps mistakes before they reach routing."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from territories.models import Account, AccountDomain, Opportunity, TerritoryCriterion
from territories.picklists import size_band_for
from territories.validators import normalize_domain
from tests.factories import (
    AccountDomainFactory,
    AccountFactory,
    OpportunityFactory,
    OutOfOfficeFactory,
    ProductLineFactory,
    QueueFactory,
    RepFactory,
    TerritoryFactory,
    WorkingHoursFactory,
)

pytestmark = pytest.mark.django_db


def messages_for(error: ValidationError, field: str) -> str:
    return " ".join(error.message_dict[field])


def test_rep_time_zone_must_be_an_iana_name():
    rep = RepFactory.build(user=RepFactory().user, time_zone="CET+1")
    with pytest.raises(ValidationError) as error:
        rep.full_clean(exclude=["user", "team"])
    assert "IANA time zone" in messages_for(error.value, "time_zone")


def test_rep_capacity_must_be_positive():
    rep = RepFactory()
    rep.max_open_leads = 0
    with pytest.raises(ValidationError) as error:
        rep.full_clean()
    assert "max_open_leads" in error.value.message_dict


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        ("country", "de", "DE"),
        ("subdivision", "us-ca", "US-CA"),
        ("postal_prefix", "sw1 a", "SW1A"),
        ("industry", "software", "software"),
        ("size_band", "201-1000", "201-1000"),
    ],
)
def test_valid_criteria_are_normalized(kind, value, stored):
    criterion = TerritoryCriterion(territory=TerritoryFactory(), kind=kind, value=value)
    criterion.full_clean()
    assert criterion.value == stored


@pytest.mark.parametrize(
    ("kind", "value", "hint"),
    [
        ("country", "XX", "ISO 3166-1"),
        ("country", "Germany", "ISO 3166-1"),
        ("subdivision", "US-ZZ", "ISO 3166-2"),
        ("postal_prefix", "94-1", "postal-code prefix"),
        ("industry", "rocketry", "not an industry"),
        ("size_band", "huge", "employee-size band"),
        ("product_line", "unknown-line", "not a product line"),
    ],
)
def test_invalid_criteria_say_what_to_fix(kind, value, hint):
    criterion = TerritoryCriterion(territory=TerritoryFactory(), kind=kind, value=value)
    with pytest.raises(ValidationError) as error:
        criterion.full_clean()
    assert hint in messages_for(error.value, "value")


def test_product_line_criterion_accepts_a_known_product_line():
    ProductLineFactory(code="analytics")
    criterion = TerritoryCriterion(territory=TerritoryFactory(), kind="product_line", value="analytics")
    criterion.full_clean()


def test_territory_is_covered_by_a_queue_or_a_rep_not_both():
    territory = TerritoryFactory.build(name="DACH", queue=QueueFactory(), rep=RepFactory())
    with pytest.raises(ValidationError, match="not both"):
        territory.full_clean()
    # The database refuses it too, whatever path the write takes.
    with pytest.raises(IntegrityError), transaction.atomic():
        territory.save()


def test_territory_cannot_sit_below_its_own_descendant():
    emea = TerritoryFactory(name="EMEA")
    dach = TerritoryFactory(name="DACH", parent=emea)
    germany = TerritoryFactory(name="Germany", parent=dach)
    emea.parent = germany
    with pytest.raises(ValidationError) as error:
        emea.full_clean()
    assert "below itself" in messages_for(error.value, "parent")


def test_working_hours_window_cannot_be_empty():
    window = WorkingHoursFactory.build(rep=RepFactory(), start=dt.time(9), end=dt.time(9))
    with pytest.raises(ValidationError) as error:
        window.full_clean()
    assert "empty" in messages_for(error.value, "end")


def test_night_shift_window_runs_past_midnight():
    window = WorkingHoursFactory.build(rep=RepFactory(), start=dt.time(22), end=dt.time(6))
    window.full_clean()


def test_out_of_office_must_end_after_it_starts():
    now = timezone.now()
    period = OutOfOfficeFactory.build(rep=RepFactory(), starts_at=now, ends_at=now - dt.timedelta(hours=1))
    with pytest.raises(ValidationError) as error:
        period.full_clean()
    assert "end after it starts" in messages_for(error.value, "ends_at")


def test_account_domain_pasted_as_url_is_rejected_with_the_bare_domain_suggested():
    domain = AccountDomain(account=AccountFactory(), domain="https://www.Nordwind-Logistik.de/kontakt")
    with pytest.raises(ValidationError) as error:
        domain.full_clean()
    assert "Did you mean nordwind-logistik.de?" in messages_for(error.value, "domain")


def test_account_domain_that_is_not_a_domain_is_rejected():
    domain = AccountDomain(account=AccountFactory(), domain="not a domain")
    with pytest.raises(ValidationError) as error:
        domain.full_clean()
    assert "bare domain" in messages_for(error.value, "domain")


def test_a_domain_belongs_to_one_account_only():
    AccountDomainFactory(domain="bluepeak.com")
    duplicate = AccountDomain(account=AccountFactory(), domain="bluepeak.com")
    with pytest.raises(ValidationError) as error:
        duplicate.full_clean()
    assert "domain" in error.value.message_dict


def test_account_names_are_unique_ignoring_case():
    AccountFactory(name="Bluepeak Analytics Inc.")
    with pytest.raises(ValidationError, match="account with this name exists"):
        Account(name="BLUEPEAK analytics inc.").full_clean()


def test_open_opportunity_has_no_close_date():
    opportunity = OpportunityFactory.build(account=AccountFactory(), closed_at=timezone.now())
    with pytest.raises(ValidationError) as error:
        opportunity.full_clean()
    assert "closed_at" in error.value.message_dict
    opportunity.stage = Opportunity.Stage.WON
    opportunity.full_clean()


@pytest.mark.parametrize(
    ("pasted", "domain"),
    [
        ("Acme.com", "acme.com"),
        ("https://www.acme.com/about?x=1", "acme.com"),
        ("sales@acme.co.uk", "acme.co.uk"),
        ("acme.de:443", "acme.de"),
        ("  WWW.ACME.FR.  ", "acme.fr"),
    ],
)
def test_normalize_domain_accepts_what_people_paste(pasted, domain):
    assert normalize_domain(pasted) == domain


@pytest.mark.parametrize(
    ("employees", "band"),
    [(None, ""), (0, ""), (1, "1-10"), (10, "1-10"), (11, "11-50"), (1000, "201-1000"), (5001, "5001+")],
)
def test_employee_counts_fall_in_one_size_band(employees, band):
    assert size_band_for(employees) == band
