"""E-mail addresses as email_validator reads them, at a fraction of its cost for the common address.

email_validator takes ~30 µs an address, most of it checking the domain, and a routing batch brings a new
address with nearly every lead. For a plain address (a local part of ASCII atoms, a domain of ASCII letters,
digits, dots and hyphens) it accepts the local part as it is, so its answer depends on the domain, checked
once per domain and remembered, and on the address's length. A plain domain seen for the first time is
checked here with email_validator's own rules and constants (the checks it makes of a domain of ASCII
letters, digits, dots and hyphens without Punycode, about 1 µs instead of ~30), and anything those checks do
not accept goes to email_validator itself, so this never accepts a domain it would refuse. Any other
address is validated whole. The tests compare the two ways on generated addresses.
"""

import re
from functools import lru_cache

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import (
    DNS_LABEL_LENGTH_LIMIT,
    DOMAIN_MAX_LENGTH,
    DOMAIN_NAME_REGEX,
    DOT_ATOM_TEXT,
    DOT_ATOM_TEXT_HOSTNAME,
    EMAIL_MAX_LENGTH,
)


def email_and_domain(text: str) -> tuple[str, str] | None:
    """The address with its domain normalized (the local part as typed), and the ASCII domain; None when the
    address is not valid."""
    local, at, domain_part = text.rpartition("@")
    if not (at and DOT_ATOM_TEXT.match(local) and _PLAIN_DOMAIN.fullmatch(domain_part)):
        return _validated_email(text)
    domain = _email_domain(domain_part)
    if domain is None:
        return None
    unicode_domain, ascii_domain = domain
    longest_domain = max(len(domain_part), len(unicode_domain.encode()), len(ascii_domain))
    if len(local) + 1 + longest_domain > EMAIL_MAX_LENGTH:
        return None
    return f"{local}@{unicode_domain}", ascii_domain


_PLAIN_DOMAIN = re.compile(r"[A-Za-z0-9.-]+")


@lru_cache(maxsize=16_384)
def _email_domain(domain: str) -> tuple[str, str] | None:
    """A plain address domain as email_validator normalizes it, and in ASCII; None when it is not valid."""
    plain = _plain_domain(domain)
    if plain is not None:
        return plain, plain
    validated = _validated_email(f"a@{domain}")
    return None if validated is None else (validated[0].removeprefix("a@"), validated[1])


# email_validator's "two letters and two dashes" (R-LDH labels other than Punycode's).
_RESERVED_LABEL = re.compile(r"(?!xn)..--", re.IGNORECASE)


def _plain_domain(domain: str) -> str | None:
    """The domain, normalized, when email_validator's checks of an ASCII domain without Punycode all pass
    (in its order: length, hostname syntax, reserved labels, label length, a period, a top-level domain ending
    in a letter, not a special-use name); None when any does not, and email_validator decides."""
    # For ASCII letters, digits, dots and hyphens, its UTS-46 normalization only lowercases.
    domain = domain.lower()
    if len(domain) > DOMAIN_MAX_LENGTH or "xn--" in domain or not DOT_ATOM_TEXT_HOSTNAME.match(domain):
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not DOMAIN_NAME_REGEX.search(domain):
        return None
    if any(len(label) > DNS_LABEL_LENGTH_LIMIT or _RESERVED_LABEL.match(label) for label in labels):
        return None
    # A special-use name is the domain or its last labels ("test", "x.test"): the domain's endings, checked
    # against the names at once rather than each name against the domain.
    if any(".".join(labels[start:]) in _SPECIAL_USE for start in range(len(labels))):
        return None
    return domain


_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)


@lru_cache(maxsize=4096)  # The same address comes back with every form its owner fills in.
def _validated_email(text: str) -> tuple[str, str] | None:
    try:
        validated = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    return f"{text.rsplit('@', 1)[0]}@{validated.domain}", validated.ascii_domain
