"""``frozen_build`` makes what the frozen dataclass's constructor makes, for the records a routing batch builds
for every lead (``StandardizedLead``, ``LeadFacts``)."""

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.engine.facts import AccountFacts, LeadFacts, TerritoryInfo
from routing.records import frozen_build, quick_init
from routing.standardize import StandardizedLead

TEXT = st.text(max_size=12)
STANDARDIZED = st.fixed_dictionaries(
    {},
    optional={
        "email": TEXT,
        "company": TEXT,
        "country": st.sampled_from(["DE", "US", ""]),
        "is_free_email": st.booleans(),
        "employees": st.none() | st.integers(0, 10**6),
        "annual_revenue": st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=2),
        "flags": st.dictionaries(TEXT, TEXT, max_size=2),
    },
)


@given(STANDARDIZED)
def test_a_standardized_lead_built_without_its_constructor_is_the_same_record(values):
    built = frozen_build(StandardizedLead, dict(values))

    assert built == StandardizedLead(**values)
    assert dataclasses.asdict(built) == dataclasses.asdict(StandardizedLead(**values))
    assert built.as_values() == StandardizedLead(**values).as_values()


def test_lead_facts_built_without_the_constructor_are_the_same_and_still_frozen():
    account = AccountFacts(id=7, name="Acme", tier="Enterprise")
    values = {"email": "pat@acme.example", "country": "DE", "employees": 80, "account": account}

    built = frozen_build(LeadFacts, values)

    assert built == LeadFacts(**values)
    assert hash(built.account) == hash(account)
    assert built.excluded_rep_ids == frozenset()
    assert built.annual_revenue is None and built.score == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.email = "other@acme.example"


def test_each_record_gets_its_own_default_from_a_factory():
    first = frozen_build(StandardizedLead, {})
    second = frozen_build(StandardizedLead, {"annual_revenue": Decimal("1.50")})

    first.flags["email"] = "changed"

    assert second.flags == {}
    assert StandardizedLead().flags == {}


def test_a_name_that_is_not_a_field_is_refused_as_the_constructor_refuses_it():
    with pytest.raises(TypeError, match="no field"):
        frozen_build(LeadFacts, {"emial": "pat@acme.example"})
    with pytest.raises(TypeError):
        LeadFacts(emial="pat@acme.example")


def test_records_that_check_themselves_or_need_values_are_not_built_this_way():
    # TerritoryInfo checks its criteria in __post_init__, which this would skip; AccountFacts needs its id.
    with pytest.raises(TypeError, match="__post_init__"):
        frozen_build(TerritoryInfo, {"id": 1, "name": "DACH"})
    with pytest.raises(TypeError, match="without a default"):
        frozen_build(AccountFacts, {"id": 1})


@dataclasses.dataclass(frozen=True)
class _Plain:
    outcome: str
    via: str = "queue"
    path: list[int] = dataclasses.field(default_factory=list)
    note: str = dataclasses.field(default="", kw_only=True)


_Quick: type[_Plain] = quick_init(dataclasses.make_dataclass("_Quick", [], bases=(_Plain,), frozen=True))


def test_a_quick_init_record_is_made_as_its_dataclass_makes_it_and_stays_frozen():
    for args, kwargs in [(("assigned",), {}), (("queued", "rule", [1, 2]), {"note": "held"}), ((), {"outcome": "x"})]:
        quick, plain = _Quick(*args, **kwargs), _Plain(*args, **kwargs)
        assert dataclasses.asdict(quick) == dataclasses.asdict(plain)
        assert quick == _Quick(*args, **kwargs)
    first, second = _Quick("a"), _Quick("b")
    assert first.path == [] and first.path is not second.path  # A fresh default from the factory each time.
    assert dataclasses.replace(first, via="rule") == _Quick("a", "rule")
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.via = "rule"
    with pytest.raises(TypeError):
        _Quick()  # The field without a default is still required.
    with pytest.raises(TypeError):
        _Quick("a", "rule", [], "held")  # A keyword-only field stays keyword-only.


def test_records_that_check_themselves_keep_their_own_constructor():
    with pytest.raises(TypeError, match="__post_init__"):
        quick_init(TerritoryInfo)
