"""A routing batch is prepared in one call: each lead gets what preparing it alone gives, the work the batch
shares is done once, and a lead whose preparation fails is handed back with its error, not lost."""

import datetime as dt

import pytest

from routing.enrich import CompanyFacts, FirmographicTableProvider
from routing.matching import AccountIndex
from routing.models import Firmographic, ScoringRule
from routing.pipeline import Prepared, prepare_lead, prepare_leads
from routing.selectors import account_facts, accounts_facts, scoring_snapshot
from territories.models import Account, Opportunity
from tests.factories import AccountDomainFactory, AccountFactory, OpportunityFactory, RepFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def coverage():
    owner = RepFactory()
    nordwind = AccountFactory(name="Nordwind Logistik GmbH", owner=owner)
    AccountDomainFactory(account=nordwind, domain="nordwind-logistik.de")
    AccountFactory(name="Bluepeak Analytics Inc.", owner=owner)
    AccountFactory(name="Siemens AG")
    # Enrichment names the company behind a domain the lead left blank.
    Firmographic.objects.create(domain="bluepeak.io", company="Bluepeak Analytics", employees=800, industry="software")
    ScoringRule.objects.create(
        name="Enterprise", kind="fit", condition={"all": [{"field": "employees", "op": "gte", "value": 500}]}, points=40
    )
    ScoringRule.objects.create(
        name="Demo request",
        kind="intent",
        condition={"all": [{"field": "source", "op": "equals", "value": "Demo"}]},
        points=30,
    )


BATCH = [
    {"email": "kai@nordwind-logistik.de", "company": "Someone else", "source": "Demo"},  # by domain
    {"email": "eva@bluepeak.io", "country": "Deutschland"},  # the company comes from enrichment
    {"email": "max@gmail.com", "company": "Siemens Healthineers", "employees": "5,000"},  # a weak name match
    {"email": "ann@gmail.com", "company": "Nordwnd Logistik", "source": "Demo"},  # a typo
    {"email": "not an address", "company": "Prospect 17 GmbH", "state": "Bavaria"},  # nothing matches
    {"email": "max@gmail.com", "company": "Siemens Healthineers"},  # the same company again
]


def test_each_lead_of_a_batch_is_prepared_as_it_would_be_alone(coverage):
    scoring = scoring_snapshot()
    alone = [
        prepare_lead(raw, accounts=AccountIndex.load(), account_facts=account_facts, scoring=scoring) for raw in BATCH
    ]
    together = prepare_leads(BATCH, accounts=AccountIndex.load(), accounts_facts=accounts_facts, scoring=scoring)

    assert together == alone
    assert [prepared.account.method for prepared in together] == [
        "email_domain",
        "company_name",
        "company_name",
        "company_name",
        "",
        "company_name",
    ]
    assert together[1].facts.company == "Bluepeak Analytics"
    assert together[2].account.weak and together[2].facts.account.weak_match
    assert together[0].score.total == 30 and together[2].score.total == 40


class CountingProvider:
    """A data vendor's API stand-in that can look many domains up at once."""

    name = "vendor"

    def __init__(self, *, failing_prefetch: bool = False) -> None:
        self.prefetched: list[set[str]] = []
        self.failing_prefetch = failing_prefetch

    def prefetch(self, *, domains):
        if self.failing_prefetch:
            raise ConnectionError("vendor unreachable")
        self.prefetched.append(set(domains))

    def lookup(self, *, domain):
        return CompanyFacts(industry="retail") if domain == "shop.example" else None


def test_the_work_a_batch_shares_is_done_once(coverage):
    vendor = CountingProvider()
    facts_read = []

    def counted_facts(account_ids):
        facts_read.append(sorted(account_ids))
        return accounts_facts(account_ids)

    batch = [*BATCH, {"email": "lu@shop.example"}]
    prepared = prepare_leads(
        batch,
        accounts=AccountIndex.load(),
        accounts_facts=counted_facts,
        scoring=scoring_snapshot(),
        providers=[FirmographicTableProvider(), vendor],
    )

    # One look-up of every company domain (free mail says nothing), and each matched account read once.
    assert vendor.prefetched == [{"nordwind-logistik.de", "bluepeak.io", "shop.example"}]
    # The three matched accounts' facts in one read.
    assert len(facts_read) == 1 and len(facts_read[0]) == 3
    assert prepared[-1].facts.industry == "retail"


def test_a_lead_that_cannot_be_prepared_comes_back_as_its_error_and_the_others_are_prepared(coverage):
    siemens = AccountFactory(name="Siemens AG")

    def facts_failing_for_siemens(account_ids):
        if siemens.pk in account_ids:
            raise RuntimeError("account row unreadable")
        return accounts_facts(account_ids)

    batch = [BATCH[0], ["not", "an", "object"], BATCH[2], BATCH[3]]
    prepared = prepare_leads(
        batch,
        accounts=AccountIndex.load(),
        accounts_facts=facts_failing_for_siemens,
        scoring=scoring_snapshot(),
        providers=[CountingProvider(failing_prefetch=True)],
    )

    assert isinstance(prepared[0], Prepared) and isinstance(prepared[3], Prepared)
    assert isinstance(prepared[1], AttributeError)
    assert isinstance(prepared[2], RuntimeError)
    assert prepared[2].__traceback__ is not None  # The caller can log where it failed.


def test_an_empty_batch_prepares_nothing():
    assert (
        prepare_leads([], accounts=AccountIndex.load(), accounts_facts=accounts_facts, scoring=scoring_snapshot()) == []
    )


def test_the_facts_of_many_accounts_read_together_are_each_accounts_own(coverage):
    """One statement for the batch's accounts gives what reading each alone gives: the newest open
    opportunity's owner (never a closed one's, nor one without an owner), and nothing for a deleted account."""
    anna, ben = RepFactory(), RepFactory()
    acme, beta, gamma = AccountFactory(name="Acme", owner=anna), AccountFactory(name="Beta"), AccountFactory()
    older = OpportunityFactory(account=acme, owner=anna)
    OpportunityFactory(account=acme, owner=ben)  # the newest open one with an owner
    OpportunityFactory(account=acme, owner=None)
    OpportunityFactory(account=beta, owner=ben, stage=Opportunity.Stage.WON)
    Opportunity.objects.filter(pk=older.pk).update(created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    gone = AccountFactory()
    gone_id = gone.pk
    Account.objects.filter(pk=gone_id).delete()

    together = accounts_facts([acme.pk, beta.pk, gamma.pk, gone_id])

    assert together == {pk: account_facts(pk) for pk in (acme.pk, beta.pk, gamma.pk)}
    assert together[acme.pk].open_opportunity_owner_rep_id == ben.pk
    assert together[acme.pk].owner_rep_id == anna.pk
    assert together[beta.pk].open_opportunity_owner_rep_id is None
    assert account_facts(gone_id) is None
    assert accounts_facts([]) == {}
