"""Leads find their account by domain first, then by name; a doubtful name match is flagged, not trusted."""

import pytest

from routing.matching import AccountIndex
from tests.factories import AccountDomainFactory, AccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def index():
    nordwind = AccountFactory(name="Nordwind Logistik GmbH")
    AccountDomainFactory(account=nordwind, domain="nordwind-logistik.de")
    for name in ("IBM", "Bluepeak Analytics Inc.", "Blueprint Software Ltd", "Siemens AG"):
        AccountFactory(name=name)
    return AccountIndex.load()


def account_name(index, match):
    return next(name for account_id, name in index.names.values() if account_id == match.account_id)


def test_a_corporate_email_domain_is_a_certain_match_including_subdomains(index):
    for domain in ("nordwind-logistik.de", "hamburg.nordwind-logistik.de"):
        match = index.match(email_domain=domain, company="Something else entirely")
        assert (match.method, match.confidence, match.weak) == ("email_domain", 100.0, False)
        assert account_name(index, match) == "Nordwind Logistik GmbH"


def test_free_mail_is_never_matched_by_domain_but_the_website_is(index):
    match = index.match(email_domain="gmail.com", is_free_email=True, website="www.nordwind-logistik.de")
    assert match.method == "website"


@pytest.mark.parametrize(
    ("company", "account", "weak"),
    [
        ("Nordwind Logistik", "Nordwind Logistik GmbH", False),  # legal suffix aside, the same name
        ("NORDWIND LOGISTIK G.m.b.H.", "Nordwind Logistik GmbH", False),
        ("Nordwnd Logistik", "Nordwind Logistik GmbH", False),  # a typo
        ("Blue Peak Analytics", "Bluepeak Analytics Inc.", False),
        ("Bluepeak", "Bluepeak Analytics Inc.", True),  # plausible, but RevOps should look
        ("Siemens Healthineers", "Siemens AG", True),
        ("IBM India Pvt. Ltd.", "IBM", True),  # the classic: a subsidiary of a named account
    ],
)
def test_company_names_match_with_a_confidence(index, company, account, weak):
    match = index.match(company=company)
    assert match.method == "company_name"
    assert account_name(index, match) == account
    assert match.weak is weak
    assert match.as_receipt()["weak"] is weak


@pytest.mark.parametrize("company", ["IBX", "Acme Robotics", "", "Bank"])
def test_unrelated_or_short_names_do_not_match(index, company):
    assert index.match(company=company).account_id is None
    assert index.match(company=company).as_receipt() == {"result": "no account matched"}
