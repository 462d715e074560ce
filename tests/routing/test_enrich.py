"""Enrichment fills what a lead left blank, from the firmographic table, and never stops routing."""

import pytest

from routing.enrich import CompanyFacts, FirmographicTableProvider, enrich
from routing.models import Firmographic
from tests.helpers import import_csv

pytestmark = pytest.mark.django_db


class Broken:
    name = "vendor-api"

    def lookup(self, *, domain):
        raise TimeoutError("vendor did not answer in 2 s")


class Fixed:
    def __init__(self, name, facts):
        self.name, self.facts = name, facts

    def lookup(self, *, domain):
        return self.facts


@pytest.fixture
def nordwind():
    return Firmographic.objects.create(
        domain="nordwind-logistik.de",
        company="Nordwind Logistik GmbH",
        employees=1200,
        industry="logistics",
        country="DE",
    )


def test_blank_fields_are_filled_from_the_firmographic_table(nordwind):
    result = enrich(lead={"email_domain": "nordwind-logistik.de", "company": "", "country": ""})

    assert result.values == {
        "company": "Nordwind Logistik GmbH",
        "employees": 1200,
        "industry": "logistics",
        "country": "DE",
    }
    assert set(result.sources.values()) == {"firmographics"}
    assert result.failures == {}


def test_a_batchs_domains_are_read_at_once_and_answer_as_lookups_one_by_one(nordwind, django_assert_num_queries):
    Firmographic.objects.create(domain="bluepeak.io", company="Bluepeak", employees=None, industry="", country="")
    provider = FirmographicTableProvider()

    provider.prefetch(domains=["nordwind-logistik.de", "bluepeak.io", "unknown.example", ""])
    with django_assert_num_queries(0):
        facts = [
            provider.lookup(domain=domain) for domain in ("nordwind-logistik.de", "bluepeak.io", "unknown.example")
        ]

    assert facts == [
        CompanyFacts(company="Nordwind Logistik GmbH", employees=1200, industry="logistics", country="DE"),
        CompanyFacts(company="Bluepeak", employees=None, industry="", country=""),
        None,
    ]


def test_what_the_lead_said_is_never_overwritten(nordwind):
    result = enrich(lead={"email_domain": "nordwind-logistik.de", "company": "Nordwind", "country": "AT"})

    assert "company" not in result.values
    assert "country" not in result.values
    assert result.values["employees"] == 1200


def test_free_mail_leads_are_looked_up_by_their_website(nordwind):
    result = enrich(
        lead={"email_domain": "gmail.com", "is_free_email": True, "website": "nordwind-logistik.de"},
        providers=[FirmographicTableProvider()],
    )
    assert result.domain == "nordwind-logistik.de"
    assert result.values["company"] == "Nordwind Logistik GmbH"


def test_a_lead_without_a_company_domain_is_not_looked_up():
    result = enrich(lead={"email_domain": "gmail.com", "is_free_email": True, "website": ""})
    assert result.domain == ""
    assert result.values == {}


def test_a_failing_provider_is_recorded_and_the_next_one_still_answers():
    result = enrich(
        lead={"email_domain": "bluepeak.com"},
        providers=[Broken(), Fixed("table", CompanyFacts(company="Bluepeak Analytics Inc.", employees=80))],
    )
    assert result.failures == {"vendor-api": "TimeoutError: vendor did not answer in 2 s"}
    assert result.values == {"company": "Bluepeak Analytics Inc.", "employees": 80}
    assert result.as_receipt()["filled"] == {"company": "table", "employees": "table"}


def test_the_first_provider_to_know_a_field_wins():
    result = enrich(
        lead={"email_domain": "bluepeak.com"},
        providers=[
            Fixed("first", CompanyFacts(company="Bluepeak")),
            Fixed("second", CompanyFacts(company="Bluepeak Analytics Inc.", industry="software")),
        ],
    )
    assert result.values == {"company": "Bluepeak", "industry": "software"}
    assert result.sources == {"company": "first", "industry": "second"}


def test_revops_import_the_firmographic_table_from_csv(client, revops):
    client.force_login(revops)
    _, done = import_csv(
        client,
        Firmographic,
        "domain,company,employees,industry,country\n"
        "https://www.Bluepeak.com/about,Bluepeak Analytics Inc.,80,Software & Internet,us\n"
        "nordwind-logistik.de,Nordwind Logistik GmbH,1200,logistics,DE\n",
    )
    assert done is not None and done.status_code in (200, 302)
    bluepeak = Firmographic.objects.get(domain="bluepeak.com")
    assert (bluepeak.industry, bluepeak.country, bluepeak.employees) == ("software", "US", 80)
    assert Firmographic.objects.count() == 2


def test_a_firmographic_csv_with_bad_rows_reports_them_by_row_and_imports_nothing(client, revops):
    client.force_login(revops)
    dry_run, done = import_csv(
        client,
        Firmographic,
        "domain,company,employees,industry,country\n"
        "bluepeak.com,Bluepeak Analytics Inc.,eighty,software,US\n"
        "nordwind-logistik.de,Nordwind Logistik GmbH,1200,shipping,DE\n",
    )
    assert done is None
    result = dry_run.context["result"]
    errors = {row.number: row.error_dict for row in result.invalid_rows}
    assert sorted(errors) == [1, 2]
    assert "“eighty” is not a whole number" in " ".join(map(str, errors[1]["employees"]))
    assert "“shipping” is not an industry" in " ".join(map(str, errors[2]["industry"]))
    assert "Some rows failed to validate" in dry_run.content.decode()
    assert not Firmographic.objects.exists()
