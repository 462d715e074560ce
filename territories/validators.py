"""Validators for codes RevOps type by hand. Messages say what to fix."""

import re
import zoneinfo
from functools import cache

import pycountry
from django.core.exceptions import ValidationError

from territories.picklists import INDUSTRY_CODES, SIZE_BAND_CODES

_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")


@cache
def time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    if value not in time_zone_names():
        raise ValidationError(
            "%(value)s is not an IANA time zone; use a name such as Europe/Berlin or America/New_York.",
            code="invalid_time_zone",
            params={"value": value},
        )


def validate_country_code(value: str) -> None:
    if pycountry.countries.get(alpha_2=value) is None or value != value.upper():
        raise ValidationError(
            "%(value)s is not an ISO 3166-1 alpha-2 country code; use two capital letters such as DE or US.",
            code="invalid_country",
            params={"value": value},
        )


def validate_subdivision_code(value: str) -> None:
    if value != value.upper() or pycountry.subdivisions.get(code=value) is None:
        raise ValidationError(
            "%(value)s is not an ISO 3166-2 subdivision code; use the country and region, such as US-CA or DE-BY.",
            code="invalid_subdivision",
            params={"value": value},
        )


def validate_industry(value: str) -> None:
    if value not in INDUSTRY_CODES:
        raise ValidationError(
            "%(value)s is not an industry in the picklist; choose one of: %(choices)s.",
            code="invalid_industry",
            params={"value": value, "choices": ", ".join(sorted(INDUSTRY_CODES))},
        )


def validate_size_band(value: str) -> None:
    if value not in SIZE_BAND_CODES:
        raise ValidationError(
            "%(value)s is not an employee-size band; choose one of: %(choices)s.",
            code="invalid_size_band",
            params={"value": value, "choices": ", ".join(sorted(SIZE_BAND_CODES))},
        )


def validate_postal_prefix(value: str) -> None:
    if not re.fullmatch(r"[A-Z0-9]{1,10}", value):
        raise ValidationError(
            "%(value)s is not a postal-code prefix; use 1–10 capitals or digits, no spaces, such as 94 or SW1.",
            code="invalid_postal_prefix",
            params={"value": value},
        )


def validate_domain(value: str) -> None:
    if value != value.strip().lower() or value.startswith("www.") or not _DOMAIN_RE.match(value):
        suggestion = normalize_domain(value)
        hint = f" Did you mean {suggestion}?" if suggestion != value and _DOMAIN_RE.match(suggestion) else ""
        raise ValidationError(
            "%(value)s is not a bare domain; write it in lower case without scheme, path or www, such as acme.com."
            + hint,
            code="invalid_domain",
            params={"value": value},
        )


def normalize_domain(value: str) -> str:
    """Turn what people paste (``https://www.Acme.com/about``) into ``acme.com``."""
    value = value.strip().lower()
    value = re.sub(r"^[a-z][a-z0-9+.-]*://", "", value)
    value = value.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    value = value.rsplit("@", 1)[-1].split(":", 1)[0].rstrip(".")
    if value.startswith("www."):
        value = value[4:]
    return value
