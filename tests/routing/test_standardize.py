"""Standardization of inbound leads: what people type, mapped onto what routing compares.

Pure tests: no database. Each table row names the behaviour it pins down.
"""

import dataclasses
import unicodedata
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.standardize import StandardizedLead, company_key, standardize

DERIVED = {"email_domain", "is_free_email", "company_key", "size_band"}
INPUT_FIELDS = [f.name for f in dataclasses.fields(StandardizedLead) if f.name not in DERIVED | {"flags"}]


def values_of(lead: StandardizedLead) -> dict:
    values = dataclasses.asdict(lead)
    del values["flags"]
    return values


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            {"email": "  Pat.Doe@Example.COM "},
            {"email": "Pat.Doe@example.com", "email_domain": "example.com", "is_free_email": False},
            id="email_trimmed_domain_lowercased_local_part_kept",
        ),
        pytest.param(
            {"email": "someone@GMAIL.com"},
            {"email": "someone@gmail.com", "email_domain": "gmail.com", "is_free_email": True},
            id="free_mail_domain_is_recognised",
        ),
        pytest.param(
            {"email_domain": "Acme.com"},
            {"email_domain": "acme.com", "is_free_email": False},
            id="email_domain_taken_from_raw_when_no_email",
        ),
        pytest.param(
            {"company": "  IBM India Pvt. Ltd. "},
            {"company": "IBM India Pvt. Ltd.", "company_key": "ibm india"},
            id="company_key_strips_pvt_ltd",
        ),
        pytest.param({"company": "Siemens AG"}, {"company_key": "siemens"}, id="company_key_strips_ag"),
        pytest.param({"company": "SIEMENS"}, {"company_key": "siemens"}, id="company_key_ignores_case"),
        pytest.param(
            {"company": "Société Générale S.A."},
            {"company_key": "societe generale"},
            id="company_key_ignores_diacritics",
        ),
        pytest.param({"company": "AT&T Inc."}, {"company_key": "att"}, id="company_key_drops_inner_ampersand"),
        pytest.param(
            {"company": "Procter & Gamble Co."},
            {"company_key": "procter and gamble"},
            id="company_key_reads_ampersand_as_and",
        ),
        pytest.param({"company": "I.B.M. Corp."}, {"company_key": "ibm"}, id="company_key_drops_dots"),
        pytest.param(
            {"website": "https://www.Acme.com/about?x=1"}, {"website": "acme.com"}, id="website_becomes_bare_domain"
        ),
        pytest.param(
            {"website": "münchen.de"}, {"website": "xn--mnchen-3ya.de"}, id="website_international_domain_in_ascii"
        ),
        pytest.param({"country": "DE"}, {"country": "DE"}, id="country_alpha_2"),
        pytest.param({"country": "deu"}, {"country": "DE"}, id="country_alpha_3_any_case"),
        pytest.param({"country": "Germany"}, {"country": "DE"}, id="country_name"),
        pytest.param({"country": "Federal Republic of Germany"}, {"country": "DE"}, id="country_official_name"),
        pytest.param({"country": "USA"}, {"country": "US"}, id="country_usa"),
        pytest.param({"country": "U.S."}, {"country": "US"}, id="country_dotted_abbreviation"),
        pytest.param({"country": "united states of america"}, {"country": "US"}, id="country_long_name_lower_case"),
        pytest.param({"country": "UK"}, {"country": "GB"}, id="country_uk"),
        pytest.param({"country": "Great Britain"}, {"country": "GB"}, id="country_great_britain"),
        pytest.param(
            {"country": "England"},
            {"country": "GB", "subdivision": "GB-ENG"},
            id="country_england_is_gb_and_its_nation",
        ),
        pytest.param({"country": "Deutschland"}, {"country": "DE"}, id="country_german_name"),
        pytest.param({"country": "Schweiz"}, {"country": "CH"}, id="country_schweiz"),
        pytest.param({"country": "Suisse"}, {"country": "CH"}, id="country_suisse"),
        pytest.param({"country": "Österreich"}, {"country": "AT"}, id="country_with_diacritic"),
        pytest.param({"country": "OSTERREICH"}, {"country": "AT"}, id="country_without_diacritic"),
        pytest.param({"country": "Holland"}, {"country": "NL"}, id="country_holland"),
        pytest.param({"country": "Brasil"}, {"country": "BR"}, id="country_brasil"),
        pytest.param({"country": "España"}, {"country": "ES"}, id="country_espana"),
        pytest.param({"country": "Korea"}, {"country": "KR"}, id="country_korea_is_south_korea"),
        pytest.param({"country": "Republic of Korea"}, {"country": "KR"}, id="country_inverted_pycountry_name"),
        pytest.param({"country": "Czechia"}, {"country": "CZ"}, id="country_common_name"),
        pytest.param({"country": "US", "subdivision": "CA"}, {"subdivision": "US-CA"}, id="subdivision_code_suffix"),
        pytest.param({"country": "US", "subdivision": "us-ca"}, {"subdivision": "US-CA"}, id="subdivision_full_code"),
        pytest.param({"country": "US", "subdivision": "California"}, {"subdivision": "US-CA"}, id="subdivision_name"),
        pytest.param({"country": "US", "subdivision": "Calif."}, {"subdivision": "US-CA"}, id="subdivision_calif"),
        pytest.param({"country": "USA", "subdivision": "Mass."}, {"subdivision": "US-MA"}, id="subdivision_mass"),
        pytest.param({"country": "US", "subdivision": "N.Y."}, {"subdivision": "US-NY"}, id="subdivision_dotted_code"),
        pytest.param({"country": "DE", "subdivision": "Bayern"}, {"subdivision": "DE-BY"}, id="subdivision_local_name"),
        pytest.param(
            {"country": "DE", "subdivision": "Bavaria"}, {"subdivision": "DE-BY"}, id="subdivision_english_name"
        ),
        pytest.param(
            {"country": "DE", "subdivision": "thueringen"},
            {"subdivision": "DE-TH"},
            id="subdivision_umlaut_spelled_out",
        ),
        pytest.param(
            {"country": "CA", "subdivision": "QUEBEC"}, {"subdivision": "CA-QC"}, id="subdivision_without_accent"
        ),
        pytest.param(
            {"subdivision": "US-CA"}, {"country": "US", "subdivision": "US-CA"}, id="subdivision_code_sets_country"
        ),
        pytest.param(
            {"country": "US", "subdivision": "Washington"}, {"subdivision": "US-WA"}, id="subdivision_washington_state"
        ),
        pytest.param(
            {"subdivision": "Washington, D.C."},
            {"country": "US", "subdivision": "US-DC"},
            id="subdivision_washington_dc",
        ),
        pytest.param(
            {"subdivision": "Bavaria"},
            {"country": "DE", "subdivision": "DE-BY"},
            id="subdivision_unique_name_sets_country",
        ),
        pytest.param({"state": "NY", "country": "US"}, {"subdivision": "US-NY"}, id="state_key_is_subdivision"),
        pytest.param(
            {"country": "DE", "phone": "089 1234567"},
            {"phone": "+49891234567"},
            id="phone_national_format_uses_country",
        ),
        pytest.param({"country": "US", "phone": "(415) 555-0100"}, {"phone": "+14155550100"}, id="phone_us_format"),
        pytest.param(
            {"phone": "+44 20 7946 0958"}, {"phone": "+442079460958"}, id="phone_international_needs_no_country"
        ),
        pytest.param(
            {"subdivision": "US-NY", "phone": "212 555 0100"},
            {"phone": "+12125550100"},
            id="phone_uses_country_implied_by_subdivision",
        ),
        pytest.param({"employees": 250}, {"employees": 250, "size_band": "201-1000"}, id="employees_int"),
        pytest.param(
            {"employees": "1,200"}, {"employees": 1200, "size_band": "1001-5000"}, id="employees_thousands_comma"
        ),
        pytest.param(
            {"employees": "1.200"}, {"employees": 1200, "size_band": "1001-5000"}, id="employees_thousands_dot"
        ),
        pytest.param({"employees": "500+"}, {"employees": 500, "size_band": "201-1000"}, id="employees_open_ended"),
        pytest.param(
            {"employees": "51-200"}, {"employees": 51, "size_band": "51-200"}, id="employees_range_takes_lower_bound"
        ),
        pytest.param(
            {"employees": "201 – 500 employees"},
            {"employees": 201, "size_band": "201-1000"},
            id="employees_range_with_words",
        ),
        pytest.param({"employees": "1.5k"}, {"employees": 1500}, id="employees_thousands_unit"),
        pytest.param(
            {"size_band": "51-200"}, {"employees": None, "size_band": "51-200"}, id="size_band_taken_when_no_employees"
        ),
        pytest.param({"employees": 30, "size_band": "5001+"}, {"size_band": "11-50"}, id="size_band_follows_employees"),
        pytest.param({"industry": "software"}, {"industry": "software"}, id="industry_code"),
        pytest.param({"industry": "Real Estate"}, {"industry": "real_estate"}, id="industry_label"),
        pytest.param(
            {"industry": "Consulting & Professional Services"}, {"industry": "consulting"}, id="industry_full_label"
        ),
        pytest.param({"industry": "Life Sciences"}, {"industry": "pharma"}, id="industry_label_part"),
        pytest.param({"industry": "SaaS"}, {"industry": "software"}, id="industry_saas"),
        pytest.param({"industry": "IT"}, {"industry": "software"}, id="industry_it"),
        pytest.param({"industry": "Bank"}, {"industry": "banking"}, id="industry_bank"),
        pytest.param({"industry": "Pharmaceuticals"}, {"industry": "pharma"}, id="industry_pharmaceuticals"),
        pytest.param(
            {"industry": "Insurance industry"}, {"industry": "insurance"}, id="industry_word_industry_ignored"
        ),
        pytest.param(
            {"annual_revenue": "$1.5M"}, {"annual_revenue": Decimal("1500000.00")}, id="revenue_dollars_millions"
        ),
        pytest.param(
            {"annual_revenue": "2,000,000"}, {"annual_revenue": Decimal("2000000")}, id="revenue_thousands_separators"
        ),
        pytest.param({"annual_revenue": "3 Mio"}, {"annual_revenue": Decimal("3000000")}, id="revenue_mio"),
        pytest.param(
            {"annual_revenue": "1,5 Mio €"}, {"annual_revenue": Decimal("1500000")}, id="revenue_decimal_comma"
        ),
        pytest.param({"annual_revenue": "EUR 2.5bn"}, {"annual_revenue": Decimal("2500000000")}, id="revenue_billions"),
        pytest.param({"annual_revenue": 1234.5}, {"annual_revenue": Decimal("1234.50")}, id="revenue_float"),
        pytest.param(
            {"annual_revenue": "$1M-$5M"}, {"annual_revenue": Decimal("1000000")}, id="revenue_range_takes_lower_bound"
        ),
        pytest.param(
            {"postal_code": "  sw1a  1aa "}, {"postal_code": "SW1A  1AA"}, id="postal_code_upper_case_inner_space_kept"
        ),
        pytest.param({"zip": 94105}, {"postal_code": "94105"}, id="postal_code_from_number_and_alias"),
        pytest.param(
            {"first_name": "  Mary   Ann ", "last_name": "van  der Berg"},
            {"first_name": "Mary Ann", "last_name": "van der Berg"},
            id="names_trimmed_and_whitespace_collapsed",
        ),
        pytest.param({"title": "VP\tSales\n"}, {"title": "VP Sales"}, id="title_tabs_and_newlines_collapsed"),
        pytest.param(
            {"product_interest": " Data Platform & Analytics "},
            {"product_interest": "data-platform-and-analytics"},
            id="product_interest_slug",
        ),
        pytest.param(
            {"source": " Web   form", "campaign": "Q3 Launch "},
            {"source": "Web form", "campaign": "Q3 Launch"},
            id="source_and_campaign_cleaned",
        ),
        pytest.param({"Company Name": "Acme"}, {"company": "Acme"}, id="raw_keys_matched_loosely"),
        pytest.param({"company": "Own", "organization": "Alias"}, {"company": "Own"}, id="field_name_wins_over_alias"),
        pytest.param(
            {"email": "   ", "country": None, "utm": {"a": 1}},
            {"email": "", "country": ""},
            id="blank_values_stay_blank_unflagged",
        ),
    ],
)
def test_standardizes(raw, expected):
    lead = standardize(raw)
    assert {name: getattr(lead, name) for name in expected} == expected
    assert lead.flags == {}


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        pytest.param({"email": "pat@@acme"}, "email", "invalid email 'pat@@acme'", id="invalid_email"),
        pytest.param({"country": "Atlantis"}, "country", "unknown country 'Atlantis'", id="unknown_country"),
        pytest.param(
            {"country": "US", "subdivision": "Narnia"},
            "subdivision",
            "unknown subdivision 'Narnia' in country US",
            id="unknown_subdivision",
        ),
        pytest.param(
            {"country": "DE", "subdivision": "US-CA"},
            "subdivision",
            "subdivision 'US-CA' is not in country DE",
            id="subdivision_of_other_country",
        ),
        pytest.param(
            {"country": "Atlantis", "subdivision": "Bavaria"},
            "subdivision",
            "unknown subdivision 'Bavaria' (country unknown)",
            id="subdivision_with_unknown_country",
        ),
        pytest.param(
            {"subdivision": "CA"},
            "subdivision",
            "unknown subdivision 'CA'",
            id="bare_code_without_country_is_ambiguous",
        ),
        pytest.param({"phone": "call me maybe"}, "phone", "unparseable phone number 'call me maybe'", id="phone_words"),
        pytest.param({"phone": "12345"}, "phone", "unparseable phone number '12345'", id="phone_without_country"),
        pytest.param({"country": "DE", "phone": "12"}, "phone", "unparseable phone number '12'", id="phone_too_short"),
        pytest.param({"website": "n/a"}, "website", "not a website domain 'n/a'", id="website_not_a_domain"),
        pytest.param({"employees": "lots"}, "employees", "unreadable employee count 'lots'", id="employees_words"),
        pytest.param({"employees": 0}, "employees", "unreadable employee count '0'", id="employees_zero"),
        pytest.param({"employees": -5}, "employees", "unreadable employee count '-5'", id="employees_negative"),
        pytest.param(
            {"employees": 2**31}, "employees", "unreadable employee count '2147483648'", id="employees_beyond_column"
        ),
        pytest.param(
            {"employees": "200-51"}, "employees", "unreadable employee count '200-51'", id="employees_range_backwards"
        ),
        pytest.param({"employees": True}, "employees", "unreadable employee count 'True'", id="employees_bool"),
        pytest.param({"size_band": "huge"}, "size_band", "unknown size band 'huge'", id="size_band_unknown"),
        pytest.param({"industry": "Widgets"}, "industry", "unknown industry 'Widgets'", id="unknown_industry"),
        pytest.param(
            {"annual_revenue": "a lot"}, "annual_revenue", "unreadable annual revenue 'a lot'", id="revenue_words"
        ),
        pytest.param({"annual_revenue": -5}, "annual_revenue", "unreadable annual revenue '-5'", id="revenue_negative"),
        pytest.param(
            {"annual_revenue": "10 zillion"},
            "annual_revenue",
            "unreadable annual revenue '10 zillion'",
            id="revenue_unknown_unit",
        ),
        pytest.param(
            {"product_interest": "!!!"},
            "product_interest",
            "no product interest slug in '!!!'",
            id="product_interest_punctuation_only",
        ),
        pytest.param(
            {"first_name": ["Pat"]}, "first_name", "first_name is not text: \"['Pat']\"", id="list_is_not_text"
        ),
        pytest.param(
            {"postal_code": "1" * 21},
            "postal_code",
            f"postal_code longer than 20 characters: '{'1' * 21}'",
            id="too_long",
        ),
    ],
)
def test_flags_what_it_cannot_map(raw, field, message):
    lead = standardize(raw)
    assert lead.flags[field] == message
    # Only fields that were sent can be flagged.
    assert set(lead.flags) <= set(raw)
    assert getattr(lead, field) in ("", None)


def test_flag_quotes_a_long_original_shortened():
    lead = standardize({"industry": "x" * 500})
    assert lead.flags["industry"] == f"unknown industry '{'x' * 100}…'"


def test_company_key_matches_name_variants_to_one_account():
    assert company_key("IBM") == company_key("I.B.M. Corp.") == company_key("IBM Corporation") == "ibm"
    # A subsidiary stays apart from its parent: matching it is the account matcher's call.
    assert company_key("IBM India Pvt. Ltd.") == "ibm india"


def test_standardized_lead_is_frozen():
    lead = standardize({"email": "pat@acme.com"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        lead.email = "other@acme.com"


# Property tests: arbitrary payloads of text, integers and None, mixed with realistic
# values so the mapping paths run too.
scalars = st.one_of(st.none(), st.text(max_size=40), st.integers(min_value=-(10**20), max_value=10**20))
field_values = {
    "email": st.one_of(scalars, st.emails().map(lambda e: f" {e.upper()} ")),
    "country": st.one_of(scalars, st.sampled_from(["de", "USA", "England", "Österreich", "Korea", "Atlantis"])),
    "subdivision": st.one_of(scalars, st.sampled_from(["CA", "US-CA", "Bavaria", "Calif.", "N.Y.", "Narnia"])),
    "phone": st.one_of(scalars, st.sampled_from(["089 1234567", "+1 415 555 0100", "(415) 555-0100"])),
    "employees": st.one_of(scalars, st.sampled_from(["1,200", "500+", "51-200", "1.5k", "lots"])),
    "size_band": st.one_of(scalars, st.sampled_from(["51-200", "5001+"])),
    "annual_revenue": st.one_of(scalars, st.sampled_from(["$1.5M", "3 Mio", "1,5 Mio", "2,000,000"])),
    "industry": st.one_of(scalars, st.sampled_from(["SaaS", "Bank", "Real Estate", "Widgets"])),
    "website": st.one_of(scalars, st.sampled_from(["https://www.Acme.com/x", "münchen.de", "n/a"])),
}
payloads = st.fixed_dictionaries(
    {}, optional={name: field_values.get(name, scalars) for name in [*INPUT_FIELDS, "email_domain", "size_band"]}
)


def is_blank(value) -> bool:
    """Blank as standardization reads it: nothing but whitespace and control characters."""
    if value is None:
        return True
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in str(value))
    return not text.strip()


@settings(max_examples=300, deadline=None)
@given(payloads)
def test_never_raises_and_every_value_lands_or_is_flagged(raw):
    lead = standardize(raw)
    for name in INPUT_FIELDS:
        if not is_blank(raw.get(name)):
            assert getattr(lead, name) not in ("", None) or name in lead.flags, name
    # A lead row takes these values as they are (routing copies them at once): only the numbers are ever
    # None, and the values are every field but the flags, in order.
    values = lead.as_values()
    assert [name for name, value in values.items() if value is None] in (
        [],
        ["employees"],
        ["annual_revenue"],
        ["employees", "annual_revenue"],
    )
    assert values == {name: getattr(lead, name) for name in StandardizedLead.value_fields()}
    assert list(values) == list(StandardizedLead.value_fields())
    # Derived fields taken from the payload only stand in for a missing source.
    if is_blank(raw.get("email")) and not is_blank(raw.get("email_domain")):
        assert lead.email_domain or "email_domain" in lead.flags
    if is_blank(raw.get("employees")) and not is_blank(raw.get("size_band")):
        assert lead.size_band or "size_band" in lead.flags


@settings(max_examples=300, deadline=None)
@given(payloads)
def test_standardizing_twice_changes_nothing(raw):
    once = standardize(raw)
    twice = standardize(values_of(once))
    assert values_of(twice) == values_of(once)
    assert twice.flags == {}
