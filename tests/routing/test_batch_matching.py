"""A routing batch matches its companies together, and gets exactly what matching each lead against every
account name gives."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz, process

from routing.matching import SHORT_KEY, AccountIndex, AccountMatch
from routing.standardize import company_key
from tests.factories import AccountDomainFactory, AccountFactory

ACCOUNT_NAMES = [
    "Nordwind Logistik GmbH",
    "IBM",
    "SAP SE",
    "Bluepeak Analytics Inc.",
    "Blueprint Software Ltd",
    "Siemens AG",
    "Siemens Healthineers AG",
    "Acme Robotics LLC",
    "Acme Acme Holdings",  # a repeated word
    "Müller & Söhne KG",
    "Alpenwerk Finanz AG",
    "Akanehana Logistics Co., Ltd.",
    "Amberbrook Software Pty Ltd",
]


def index_of(names):
    keyed = {}
    for account_id, name in enumerate(names, 1):
        key = company_key(name)
        if key:
            keyed.setdefault(key, (account_id, name))
    return AccountIndex(domains={"nordwind-logistik.de": 1}, names=keyed)


def every_name_match(index, company):
    """Name matching as it was written before batches: WRatio against every account key."""
    key = company_key(company) if company else ""
    if not key or not index.names:
        return AccountMatch()
    if key in index.names:
        account_id, name = index.names[key]
        return AccountMatch(account_id, "company_name", 100.0, matched_on=name)
    first_word = key.split(" ", 1)[0]
    if len(first_word) < SHORT_KEY and first_word in index.names:
        account_id, name = index.names[first_word]
        return AccountMatch(account_id, "company_name", index.weak, weak=True, matched_on=name)
    if len(key) < SHORT_KEY:
        return AccountMatch()
    best = process.extractOne(key, index.names.keys(), scorer=fuzz.WRatio, score_cutoff=index.weak)
    if best is None or len(best[0]) < SHORT_KEY:
        return AccountMatch()
    account_id, name = index.names[best[0]]
    return AccountMatch(account_id, "company_name", float(best[1]), weak=best[1] < index.strong, matched_on=name)


COMPANIES = [
    "Nordwind Logistik",
    "NORDWIND LOGISTIK G.m.b.H.",
    "Nordwnd Logistik",
    "Logistik Nordwind",
    "Blue Peak Analytics",
    "Bluepeak",
    "Siemens Healthineers",
    "Siemns",
    "IBM India Pvt. Ltd.",
    "IBX",
    "Acme",
    "Acme Acme",
    "Mueller und Soehne",
    "Muller & Sohne",
    "Alpenwerk",
    "Akanehana Logistic",
    "Amberbrok Software",
    "Prospect 17 GmbH",
    "",
    "Bank",
]


def test_a_batch_matches_each_company_as_matching_it_alone_against_every_name_does():
    index = index_of(ACCOUNT_NAMES)
    leads = [{"company": company} for company in COMPANIES]
    assert index.match_many(leads) == [every_name_match(index_of(ACCOUNT_NAMES), c) for c in COMPANIES]
    # And one lead at a time, on a fresh index, gives the same.
    fresh = index_of(ACCOUNT_NAMES)
    assert [fresh.match(company=company) for company in COMPANIES] == index.match_many(leads)


def test_a_domain_match_wins_over_the_name_in_a_batch_too():
    index = index_of(ACCOUNT_NAMES)
    matches = index.match_many(
        [
            {"email_domain": "eu.nordwind-logistik.de", "company": "Siemens AG"},
            {"email_domain": "gmail.com", "is_free_email": True, "website": "nordwind-logistik.de"},
            {"email_domain": "gmail.com", "is_free_email": True, "company": "Siemens"},
        ]
    )
    assert [match.method for match in matches] == ["email_domain", "website", "company_name"]


def test_no_accounts_match_nothing():
    index = AccountIndex(domains={}, names={})
    assert index.match_many([{"company": "Siemens"}, {"company": ""}]) == [AccountMatch(), AccountMatch()]


WORDS = ["nord", "wind", "logistik", "blue", "peak", "analytics", "siemens", "acme", "software", "capital", "ab"]
LETTERS = "abcdeiklmnorstuwäöß"


@st.composite
def names_and_companies(draw):
    word = st.sampled_from(WORDS) | st.text(LETTERS, min_size=1, max_size=9)
    names = draw(st.lists(st.lists(word, min_size=1, max_size=4).map(" ".join), min_size=1, max_size=12))

    @st.composite
    def variant(draw):
        # A company written like an account's name, with typos, words moved, dropped or added.
        text = list(draw(st.sampled_from(names)))
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(text)))
            edit = draw(st.sampled_from(("insert", "delete", "replace")))
            if edit == "insert":
                text.insert(at, draw(st.sampled_from(LETTERS + " ")))
            elif text:
                at = min(at, len(text) - 1)
                if edit == "delete":
                    del text[at]
                else:
                    text[at] = draw(st.sampled_from(LETTERS))
        words = "".join(text).split()
        if draw(st.booleans()):
            words = list(reversed(words))
        if draw(st.booleans()):
            words.append(draw(word))
        return " ".join(words)

    companies = draw(st.lists(variant() | st.lists(word, max_size=3).map(" ".join), min_size=1, max_size=15))
    return names, companies


@settings(max_examples=300, deadline=None)
@given(names_and_companies())
def test_batch_name_matching_equals_scoring_every_name(names_and_companies):
    names, companies = names_and_companies
    index = index_of(names)
    expected = [every_name_match(index, company) for company in companies]
    assert index.match_many([{"company": company} for company in companies]) == expected


@pytest.mark.django_db
def test_a_batch_of_bench_like_leads_matches_as_each_lead_alone_does():
    # Accounts named like the leads' companies, some with a domain the leads write from.
    for number in range(40):
        account = AccountFactory(name=f"Prospect {number * 7} Holding GmbH" if number % 4 == 0 else f"Firm {number}")
        if number % 5 == 0:
            AccountDomainFactory(account=account, domain=f"prospect{number}.example")
    leads = [{"email_domain": f"prospect{n % 60}.example", "company": f"Prospect {n % 90} GmbH"} for n in range(300)]
    reference = AccountIndex.load()
    expected = [
        reference.match(email_domain=lead["email_domain"])
        if reference._by_domain(lead["email_domain"])
        else every_name_match(reference, lead["company"])
        for lead in leads
    ]
    assert AccountIndex.load().match_many(leads) == expected
    one_by_one = AccountIndex.load()
    assert [one_by_one.match(**lead) for lead in leads] == expected
    assert {match.method for match in expected} == {"email_domain", "company_name"}
