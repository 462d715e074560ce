"""The coverage services that admin actions, forms and imports call."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone

from territories import services
from territories.models import AccountDomain, OutOfOffice, Rep, TerritoryCriterion
from tests.factories import (
    AccountDomainFactory,
    AccountFactory,
    ProductLineFactory,
    RepFactory,
    SkillFactory,
    TeamFactory,
    TerritoryCriterionFactory,
    TerritoryFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
User = get_user_model()


def test_rep_create_makes_a_user_who_cannot_open_the_admin():
    team = TeamFactory(name="Inside Sales")
    german = SkillFactory(code="german")

    rep = services.rep_create(
        username="anna",
        email=" anna@example.com ",
        first_name="Anna",
        last_name="Schmidt",
        rep=Rep(team=team, time_zone="Europe/Berlin", max_open_leads=30),
        skills=[german],
    )

    rep.refresh_from_db()
    assert rep.user.username == "anna"
    assert rep.user.email == "anna@example.com"
    assert str(rep) == "Anna Schmidt (anna)"
    assert not rep.user.has_usable_password()
    assert not rep.user.is_staff and not rep.user.is_superuser
    assert (rep.team, rep.time_zone, rep.max_open_leads) == (team, "Europe/Berlin", 30)
    assert list(rep.skills.all()) == [german]


def test_rep_create_with_defaults_only_needs_username_and_email():
    rep = services.rep_create(username="ben", email="ben@example.com")

    assert rep.pk and rep.active and rep.time_zone == "UTC"


def test_rep_create_refuses_a_username_taken_in_another_case_and_writes_nothing():
    UserFactory(username="Anna")

    with pytest.raises(ValidationError) as error:
        services.rep_create(username="anna", email="anna@example.com")

    assert "exists already" in " ".join(error.value.message_dict["username"])
    assert not Rep.objects.exists()
    assert User.objects.count() == 1


def test_rep_create_requires_an_email_and_a_valid_profile():
    with pytest.raises(ValidationError) as error:
        services.rep_create(username="carl", email="", rep=Rep(time_zone="Mars/Olympus"))

    assert "e-mail" in " ".join(error.value.message_dict["email"])
    assert not User.objects.filter(username="carl").exists()

    with pytest.raises(ValidationError) as error:
        services.rep_create(username="carl", email="carl@example.com", rep=Rep(time_zone="Mars/Olympus"))

    assert "IANA time zone" in " ".join(error.value.message_dict["time_zone"])
    assert not User.objects.filter(username="carl").exists()


def test_rep_update_saves_profile_and_user_details():
    rep = RepFactory(user=UserFactory(username="dora", email="old@example.com"))
    rep.max_open_leads = 5

    services.rep_update(rep=rep, email="dora@example.com", first_name="Dora", last_name="Diaz")

    rep.refresh_from_db()
    assert rep.max_open_leads == 5
    assert (rep.user.email, rep.user.get_full_name()) == ("dora@example.com", "Dora Diaz")


def test_rep_update_refuses_to_change_an_admin_users_email():
    # Changing it would route that account's password reset to someone else.
    rep = RepFactory(user=UserFactory(username="boss", email="boss@example.com", is_staff=True))

    with pytest.raises(ValidationError) as error:
        services.rep_update(rep=rep, email="attacker@example.com", first_name="", last_name="")

    assert "only an administrator" in " ".join(error.value.message_dict["email"])
    rep.user.refresh_from_db()
    assert rep.user.email == "boss@example.com"


def test_deactivate_and_activate_count_only_reps_that_change_and_keep_history():
    active, inactive = RepFactory(active=True), RepFactory(active=False)

    assert services.reps_deactivate(reps=Rep.objects.all()) == 1
    assert not Rep.objects.filter(active=True).exists()
    assert active.history.first().active is False

    assert services.reps_activate(reps=Rep.objects.filter(pk__in=[active.pk, inactive.pk])) == 2
    assert Rep.objects.filter(active=True).count() == 2


def test_set_out_of_office_records_one_period_per_rep():
    reps = [RepFactory(), RepFactory()]
    starts = timezone.now()

    periods = services.reps_set_out_of_office(
        reps=reps, starts_at=starts, ends_at=starts + dt.timedelta(days=3), reason=" Offsite "
    )

    assert len(periods) == 2
    assert set(OutOfOffice.objects.values_list("rep", "reason")) == {(reps[0].pk, "Offsite"), (reps[1].pk, "Offsite")}


def test_set_out_of_office_refuses_a_period_that_ends_before_it_starts():
    starts = timezone.now()

    with pytest.raises(ValidationError) as error:
        services.reps_set_out_of_office(reps=[RepFactory()], starts_at=starts, ends_at=starts)

    assert "end after it starts" in " ".join(error.value.message_dict["ends_at"])
    assert not OutOfOffice.objects.exists()


def test_set_criteria_replaces_given_kinds_and_leaves_the_others():
    territory = TerritoryFactory(name="DACH")
    TerritoryCriterionFactory(territory=territory, kind="country", value="DE")
    TerritoryCriterionFactory(territory=territory, kind="country", value="FR")
    TerritoryCriterionFactory(territory=territory, kind="size_band", value="51-200")

    services.territory_set_criteria(territory=territory, criteria={"country": ["de", " at ", "CH", "AT"]})

    assert sorted(territory.criteria.values_list("kind", "value")) == [
        ("country", "AT"),
        ("country", "CH"),
        ("country", "DE"),
        ("size_band", "51-200"),
    ]


def test_set_criteria_with_an_invalid_value_writes_nothing():
    territory = TerritoryFactory()
    TerritoryCriterionFactory(territory=territory, kind="country", value="DE")
    ProductLineFactory(code="analytics")

    with pytest.raises(ValidationError) as error:
        services.territory_set_criteria(
            territory=territory, criteria={"country": ["AT", "XX"], "product_line": ["analytics", "crm"]}
        )

    assert "XX is not an ISO 3166-1" in " ".join(error.value.message_dict["country"])
    assert "crm is not a product line" in " ".join(error.value.message_dict["product_line"])
    assert list(territory.criteria.values_list("value", flat=True)) == ["DE"]
    assert TerritoryCriterion.objects.count() == 1


def test_set_domains_normalizes_what_people_paste():
    account = AccountFactory(name="Acme")
    AccountDomainFactory(account=account, domain="old-acme.com")

    kept = services.account_set_domains(account=account, domains=["https://www.Acme.com/about", "acme.de", "ACME.de"])

    assert sorted(kept) == ["acme.com", "acme.de"]
    assert not AccountDomain.objects.filter(domain="old-acme.com").exists()


def test_set_domains_refuses_a_domain_of_another_account():
    AccountDomainFactory(account=AccountFactory(name="Globex"), domain="globex.com")
    account = AccountFactory(name="Acme")

    with pytest.raises(ValidationError) as error:
        services.account_set_domains(account=account, domains=["acme.com", "globex.com", "not a domain"])

    message = " ".join(error.value.messages)
    assert "globex.com belongs to the account “Globex”" in message
    assert "“not a domain”" in message
    assert not account.domains.exists()
