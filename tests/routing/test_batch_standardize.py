"""Standardization's fast paths give exactly what the libraries they stand in for give."""

import re
import unicodedata

from cleanco import basename as cleanco_basename
from cleanco.clean import prepare_default_terms
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from routing.standardize import _key, company_key, standardize
from routing.standardize.companies import basename
from routing.standardize.emails import email_and_domain

LEGAL_TERMS = sorted({" ".join(term) for _, term in prepare_default_terms()})
NAME_WORDS = [
    "Nordwind",
    "Logistik",
    "Müller",
    "&",
    "Söhne",
    "Co.",
    "AG",
    "GmbH",
    "S.A.",
    "de",
    "Ltd.",
    "Pty",
    "Ölwerk",
]


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.sampled_from(NAME_WORDS + LEGAL_TERMS) | st.text(max_size=6), min_size=1, max_size=6),
    st.sampled_from(["", ".", ",", " ", "!", " - "]),
)
@example(["Nordwind Logistik", "GmbH & Co. KG"], "")
@example(["s de rl", "s de rl"], ".")
def test_a_company_name_loses_its_legal_form_as_cleanco_says(words, tail):
    name = " ".join(words) + tail
    assert basename(name) == cleanco_basename(name)


def validated_whole(text):
    """What standardization made of an address before: email_validator over the whole address."""
    try:
        validated = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    return f"{text.rsplit('@', 1)[0]}@{validated.domain}", validated.ascii_domain


DOMAINS = [
    "example.com",
    "Example.COM",
    "sub.prospect7.example",
    "xn--mller-kva.de",
    "müller.de",
    "localhost",
    "ex_ample.com",
    "-bad.com",
    "bad-.com",
    "a..b.com",
    ".a.com",
    "1.2.3.4",
    "[1.2.3.4]",
    "com",
    ("a" * 63 + ".") * 3 + "com",
    ("b" * 60 + ".") * 4 + "de",
]


@settings(max_examples=1500, deadline=None)
@given(
    st.text(alphabet="abcXYZ019.+_-!#$%&'*/=?^`{|}~ \"@<>()ü\u0301", min_size=0, max_size=12)
    | st.integers(1, 80).map(lambda n: "x" * n),
    st.sampled_from(DOMAINS) | st.text(alphabet="abc.-_ü", min_size=1, max_size=12),
)
@example("buyer1", "prospect1.example")
@example("x" * 64, ("a" * 63 + ".") * 3 + "com")
@example("postmaster", "Example.COM")
def test_an_email_is_read_as_email_validator_reads_it(local, domain):
    text = f"{local}@{domain}"
    assert email_and_domain(text) == validated_whole(text)


ODD_LABELS = ["xn--mller-kva", "ab--cd", "a-", "-a", "Local", "onion", "arpa", "test", "invalid", "123"]
LABELS = (
    st.sampled_from(ODD_LABELS)
    | st.text(alphabet="aZ09-", min_size=1, max_size=8)
    | st.integers(60, 66).map(lambda n: "q" * n)
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(LABELS, min_size=1, max_size=5).map(".".join))
@example("Prospect42.Example")
@example("mail.localhost")
@example("a.b.onion")
@example("x.123")
@example(("c" * 63 + ".") * 3 + "co")
def test_a_new_plain_domain_is_read_as_email_validator_reads_it(domain):
    """Domains of ASCII letters, digits and hyphens (the ones checked without email_validator the first time
    they are seen): the same answer as email_validator, accepted or not."""
    text = f"buyer@{domain}"
    assert email_and_domain(text) == validated_whole(text)


def test_standardizing_again_gives_the_same_lead():
    raw = {
        "email": "Buyer@Prospect7.EXAMPLE",
        "company": "Prospect 7 GmbH",
        "country": "Deutschland",
        "state": "Bavaria",
        "phone": "+49 89 1234567",
        "employees": "51-200",
        "industry": "IT services",
        "website": "https://www.prospect7.example/about",
    }
    first = standardize(raw)
    assert standardize(dict(raw)) == first
    assert (first.email, first.email_domain, first.company_key) == (
        "Buyer@prospect7.example",
        "prospect7.example",
        company_key("Prospect 7"),
    )


def _key_decomposing_everything(text):
    """``_key`` as it was before its ASCII fast path: every text decomposed and stripped of combining marks."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"\s&\s", " and ", f" {text} ")
    text = re.sub(r"[.'’&]", "", text)
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(NAME_WORDS) | st.text(max_size=8), min_size=1, max_size=5))
@example(["Crème", "Brûlée", "&", "Co."])
@example(["IBM", "India", "Pvt.", "Ltd."])
def test_a_lookup_key_is_the_same_with_or_without_the_ascii_fast_path(words):
    text = " ".join(words)
    assert _key(text) == _key_decomposing_everything(text)
