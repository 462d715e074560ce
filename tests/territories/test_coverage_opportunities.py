"""Opportunities in the coverage document: they decide routing step 2 (the open opportunity's owner)."""

import datetime as dt
from decimal import Decimal

import pytest

from leadrouter.coverage import CoverageError, apply_import, dump_yaml, export_coverage, load_yaml, versions
from routing.selectors import account_facts
from territories.models import Account, CoverageRevision, Opportunity
from tests.factories import AccountFactory, OpportunityFactory, RepFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme():
    anna = RepFactory(user=UserFactory(username="anna"))
    RepFactory(user=UserFactory(username="ben"))
    account = AccountFactory(name="Acme", owner=anna)
    OpportunityFactory(account=account, name="Expansion", owner=anna, amount=Decimal("120000"))
    OpportunityFactory(
        account=account,
        name="Pilot",
        stage=Opportunity.Stage.WON,
        closed_at=dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC),
    )
    return account


def account_entry(document: dict, name: str) -> dict:
    return next(entry for entry in document["accounts"] if entry["name"] == name)


def test_export_lists_an_accounts_opportunities_by_name_without_defaults(acme):
    entry = account_entry(export_coverage(), "Acme")

    assert entry["opportunities"] == [
        {"name": "Expansion", "owner": "anna", "amount": "120000.00"},
        {"name": "Pilot", "stage": "won", "closed_at": "2026-11-02T09:30:00+00:00"},
    ]
    assert "opportunities: [" not in dump_yaml(export_coverage())  # one entry per line, readable in review


def test_import_creates_updates_and_deletes_opportunities_and_routing_follows(acme):
    expansion = Opportunity.objects.get(name="Expansion")
    document = export_coverage()
    account_entry(document, "Acme")["opportunities"] = [
        {"name": "Expansion", "owner": "ben", "amount": 99.5},
        {"name": "Renewal 2027", "owner": "anna", "stage": "lost", "closed_at": "2026-12-01T10:00:00+01:00"},
    ]

    plan = apply_import(document)

    assert plan.render().splitlines()[0].startswith('~ account "Acme": opportunities [')
    rows = {row.name: row for row in Opportunity.objects.filter(account=acme)}
    assert set(rows) == {"Expansion", "Renewal 2027"}
    # Rewritten in place: its creation time, which orders open opportunities for routing, is kept.
    assert (rows["Expansion"].pk, rows["Expansion"].amount) == (expansion.pk, Decimal("99.50"))
    assert rows["Renewal 2027"].closed_at == dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    facts = account_facts(acme.pk)
    assert facts is not None and facts.open_opportunity_owner_rep_id == rows["Expansion"].owner_id
    # Importing its own export changes nothing.
    assert apply_import(load_yaml(dump_yaml(export_coverage()))).is_empty


def test_opportunity_problems_are_reported_with_their_paths(acme):
    document = load_yaml(
        """
version: 1
accounts:
  - name: Acme
    opportunities:
      - {name: Expansion, owner: nobody}
      - {name: Expansion, amount: "12.345"}
      - {name: Open, closed_at: "2026-11-02T09:30:00+00:00"}
  - name: Beta
    opportunities:
      - {name: Odd, stage: maybe}
      - {name: Late, stage: won, closed_at: yesterday}
"""
    )

    with pytest.raises(CoverageError) as caught:
        apply_import(document)

    messages = [f"{path}: {message}" for path, message in caught.value.errors]
    # A schema error leaves the rest of that list unchecked, as everywhere in the document.
    assert 'accounts[1].opportunities[0].stage: "maybe" is not allowed; use one of: open, won, lost' in messages
    assert 'accounts[0].opportunities[0].owner: there is no rep "nobody"' in messages
    assert any(line.startswith('accounts[0].opportunities[1].name: "Expansion" is listed twice') for line in messages)
    assert any(line.startswith('accounts[0].opportunities[1].amount: "12.345" is not an amount') for line in messages)
    assert (
        "accounts[0].opportunities[2].closed_at: an open opportunity has no close date; clear it or close the stage"
        in messages
    )
    assert Opportunity.objects.filter(account=acme).count() == 2


def test_a_version_diff_and_a_rollback_cover_opportunities(acme):
    first = versions.version_current()
    Opportunity.objects.filter(name="Expansion").update(stage=Opportunity.Stage.LOST)
    Opportunity.objects.filter(name="Pilot").delete()
    second = versions.version_create(kind=CoverageRevision.Kind.ADMIN)
    assert second is not None

    rendered = versions.versions_diff(first.number, second.number).render()
    versions.version_rollback(first.number)

    assert rendered.splitlines() == [
        '~ account "Acme": opportunities["Expansion"].stage "open" → "lost"',
        '~ account "Acme": opportunities["Pilot"] removed: {"name": "Pilot", "stage": "won", '
        '"closed_at": "2026-11-02T09:30:00+00:00"}',
        "1 difference: 1 changed.",
    ]
    assert account_entry(export_coverage(), "Acme") == account_entry(first.document, "Acme")
    assert Account.objects.get(name="Acme").opportunities.count() == 2
