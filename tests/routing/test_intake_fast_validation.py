"""Intake's shortcut for plain leads: ``lead_plainly_valid`` says yes only where the serializer would say valid.

A batch checks most leads with the shortcut and asks ``LeadIntakeSerializer`` about the rest, so a sender sees the
serializer's answers and messages whichever way a lead went.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from leadrouter.management.commands.bench_routing import _lead
from routing.intake import LEAD_TEXT_MAX_LENGTH, LeadIntakeSerializer, lead_plainly_valid
from routing.models import Lead
from routing.services import apikey_create

LEADS_URL = "/api/v1/leads/"
FIELDS = list(LeadIntakeSerializer().fields)
TEXT_AT_LIMITS = ["x" * n for n in (0, 1, 19, 20, 21, 32, 33, 50, 51, 100, 101, 200, 201, 253, 254, 255, 5000, 5001)]
EMAILS = [
    "max@prospect.de",
    " max@prospect.de ",
    "MAX@Prospect.DE",
    "jürgen@müller.de",
    "a@b",
    "not-an-email",
    "@prospect.de",
    "max..muster@prospect.de",
    "max@prospect..de",
    "max@localhost",
    "max@prospect.de\n",
    "max@prospect.de\x00",
    "max@" + "p" * 250 + ".de",
]
COUNTRIES = ["DE", "de", " DE ", "Germany", "Deutschland", "USA", "United Kingdom", "England", "Narnia", "XX", "Z"]
NUMBER_TEXT = st.from_regex(r"\A\s?[0-9]{0,17}(\.[0-9]{0,3})?(e[0-9])?\s?\Z")
TEXT = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2028\x1c", max_size=5),
    st.sampled_from(TEXT_AT_LIMITS),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "😀 emoji", "Müller", "São Paulo", "\\u0000"]),
    st.sampled_from(EMAILS),
    st.sampled_from(COUNTRIES),
    NUMBER_TEXT,
)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.1, 100.0, 1500000.5, 1.005, 1e14, 1e20, -0.0, 5e-05]),
    TEXT,
)
NESTED = st.recursive(
    SCALAR,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
VALUE = st.one_of(SCALAR, NESTED, st.lists(st.sampled_from(["/pricing", {"url": "/demo"}]), min_size=195, max_size=205))
KEY = st.one_of(st.sampled_from(FIELDS), st.sampled_from(["utm_term", "notes", "", "Email", "k\x00", "k" * 5001]))
# Values a form could well send in each field, and some it could not, so that many generated leads are valid.
SHORT_TEXT = st.one_of(st.none(), st.text(st.characters(max_codepoint=0xFFFF), max_size=20))
LIKELY_BY_FIELD = {name: SHORT_TEXT for name in FIELDS} | {
    "email": st.sampled_from([None, *EMAILS]),
    "country": st.sampled_from([None, *COUNTRIES]),
    "employees": st.one_of(st.none(), st.integers(min_value=0, max_value=10**16), NUMBER_TEXT),
    "annual_revenue": st.one_of(
        st.none(), st.integers(min_value=0, max_value=10**16), st.floats(min_value=0, max_value=1e16), NUMBER_TEXT
    ),
    "form_answers": st.one_of(st.none(), st.dictionaries(st.text(max_size=10), NESTED, max_size=3)),
    "page_history": st.one_of(
        st.none(), st.lists(st.one_of(st.text(max_size=10), st.dictionaries(st.text(max_size=5), SCALAR)), max_size=3)
    ),
}
LIKELY = st.fixed_dictionaries({}, optional=LIKELY_BY_FIELD)
PLAIN = {"email": "max@prospect.de", "first_name": "Max", "last_name": "Muster", "company": "Prospect GmbH"}


def serializer_answer(data):
    serializer = LeadIntakeSerializer(data=data)
    valid = serializer.is_valid()
    return valid, serializer.validated_data if valid else None


# Random leads, and plain leads with a few values changed, so that both answers come up often.
PAYLOADS = st.one_of(
    st.dictionaries(KEY, VALUE, max_size=8),
    st.dictionaries(KEY, VALUE, max_size=4).map(lambda changes: {**PLAIN, **changes}),
    st.dictionaries(st.sampled_from(FIELDS), SCALAR, max_size=4).map(lambda changes: {**PLAIN, **changes}),
    LIKELY,
    LIKELY.map(lambda changes: {**PLAIN, **changes}),
    st.one_of(st.none(), st.lists(SCALAR, max_size=2), TEXT, st.integers()),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(PAYLOADS)
def test_a_lead_the_shortcut_passes_is_one_the_serializer_takes_as_posted(data):
    if lead_plainly_valid(data):
        valid, validated = serializer_answer(data)
        assert valid
        assert validated == dict(data)


# What a website form or a CRM sends: each must take the shortcut.
ORDINARY = [
    _lead(1),
    _lead(4),
    {
        "email": "max@prospect.de",
        "first_name": "Max",
        "last_name": "Muster",
        "company": "Prospect GmbH",
        "country": "Deutschland",
        "employees": "250",
        "annual_revenue": "1000000",
        "form_answers": {"budget": "Q3", "seats": 40},
        "page_history": ["/pricing", {"url": "/demo", "at": "2026-11-23T10:00:00Z"}],
        "external_id": "form-1",
        "source": "web",
        "utm_term": "lead routing",
    },
    {"email": " jana.novak@firma.cz ", "country": "CZ", "phone": "", "company": None},
    {"phone": "+49 30 1234567", "country": "DE"},
    {"company": "Acme", "last_name": "Doe", "country": "USA", "region": "CA"},
    {"company": "Société Générale", "first_name": "Amélie", "city": "Paris", "country": "France", "postal_code": "75"},
    {"email": "kenji@example.jp", "last_name": "山田", "country": "Japan", "employees": 15000, "annual_revenue": 2.5e9},
    {"email": "pat@prospect.example", "annual_revenue": 1500000.5, "employees": 0, "industry": "software"},
    {"email": "pat@prospect.example", "annual_revenue": "", "title": "  ", "website": "prospect.example"},
    {"email": "pat@prospect.example", "form_answers": None, "page_history": None, "campaign": "Q4 webinar"},
    {"email": "pat@prospect.example", "product_interest": "routing", "state": "Bayern", "subdivision": "BY"},
]


@pytest.mark.parametrize("lead", ORDINARY)
def test_an_ordinary_lead_takes_the_shortcut(lead):
    assert lead_plainly_valid(lead)
    assert serializer_answer(lead) == (True, dict(lead))


@pytest.mark.parametrize("field", FIELDS)
def test_every_field_the_serializer_knows_is_checked_by_the_shortcut(field):
    # A field added to the serializer without its check in the shortcut would refuse every lead that sends it.
    assert lead_plainly_valid({**PLAIN, field: None})


def test_the_serializer_checks_nothing_the_shortcut_does_not_know_of():
    # lead_plainly_valid repeats these checks; a new one there must be repeated in it too.
    checks = {name for name in vars(LeadIntakeSerializer) if name.startswith("validate")}
    assert checks == {
        "validate",
        "validate_email",
        "validate_country",
        "validate_form_answers",
        "validate_page_history",
    }


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        [PLAIN],
        "max@prospect.de",
        {**PLAIN, "phone": 4930123},
        {**PLAIN, "employees": True},
        {**PLAIN, "employees": 250.0},
        {**PLAIN, "first_name": "x" * 101},
        {**PLAIN, "last_name": "a\x00b"},
        {**PLAIN, "notes": "x" * (LEAD_TEXT_MAX_LENGTH + 1)},
        {**PLAIN, "email": "not-an-email"},
        {**PLAIN, "country": "Narnia"},
        {**PLAIN, "page_history": [42]},
        {"company": "Prospect GmbH"},
    ],
)
def test_an_unusual_or_invalid_lead_is_left_to_the_serializer(data):
    assert not lead_plainly_valid(data)


# --- Through the API ------------------------------------------------------------------------------------


@pytest.fixture
def client(db):
    _, raw_key = apikey_create(name="Website demo form")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return api


def test_a_batch_with_bad_leads_gets_the_serializers_errors_by_index(client):
    batch = [_lead(n) for n in range(6)]
    batch[1]["phone"] = 4930123
    batch[4]["email"] = "not-an-email"
    batch[4]["employees"] = "many"
    response = client.post(LEADS_URL, batch, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {"index": 1, "errors": {"phone": ["Send this as text (a JSON string), not a number or true/false."]}},
            {
                "index": 4,
                "errors": {
                    "email": ["Enter a valid e-mail address."],
                    "employees": ['Send a whole number, such as 250 or "250".'],
                },
            },
        ]
    }
    assert not Lead.objects.exists()


def test_a_batch_of_plain_leads_is_stored_as_posted_and_answered_in_order(client):
    batch = [_lead(n) for n in range(3)] + [ORDINARY[2]]
    response = client.post(LEADS_URL, batch, format="json")

    assert response.status_code == 201
    leads = [Lead.objects.get(pk=entry["id"]) for entry in response.json()["leads"]]
    assert [lead.raw_payload for lead in leads] == batch
    assert response.json() == {
        "leads": [
            {"id": lead.pk, "status": "received", "external_id": posted["external_id"], "created": True}
            for lead, posted in zip(leads, batch, strict=True)
        ]
    }

    # Posted again, the same leads come back, not new ones.
    again = client.post(LEADS_URL, batch, format="json")
    assert again.status_code == 200
    assert again.json() == {"leads": [{**entry, "created": False} for entry in response.json()["leads"]]}
