"""Enrichment: fill what a lead left blank from what we know about its company, before the rules fire.

Providers sit behind a small interface so a data vendor can be added next to the
built-in firmographic table. Enrichment never overwrites what the lead said, and
a provider that fails is recorded and skipped: routing continues with what is
known.

1. Pick the domain to look up: the e-mail domain, unless it is a free-mail
   domain (gmail.com says nothing about the company); then the website's domain.
2. Ask each configured provider in order; the first answer for a field wins.
3. Fill only blank fields; report which fields came from which provider.
4. A provider that raises is named in ``failures`` with its error.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.db import connection
from django.utils.module_loading import import_string

from routing.bulk import pg_execute, typed_array
from routing.models import Firmographic

logger = logging.getLogger(__name__)

ENRICHED_FIELDS = ("company", "employees", "industry", "country")


@dataclass(frozen=True)
class CompanyFacts:
    """What a provider knows about the company behind a domain; None or "" where it does not know."""

    company: str = ""
    employees: int | None = None
    industry: str = ""
    country: str = ""


class EnrichmentProvider(Protocol):
    name: str

    def lookup(self, *, domain: str) -> CompanyFacts | None:
        """Facts for ``domain``, or None when the provider has no record. May raise on failure."""
        ...


class FirmographicTableProvider:
    """The built-in provider: the firmographic table RevOps import from CSV."""

    name = "firmographics"

    def __init__(self) -> None:
        self._known: dict[str, CompanyFacts | None] = {}

    def prefetch(self, *, domains: Iterable[str]) -> None:
        """Load the rows for many domains in one query (a routing batch), so ``lookup`` needs none for them."""
        wanted = {domain for domain in domains if domain} - self._known.keys()
        if not wanted:
            return
        found: dict[str, CompanyFacts]
        if connection.vendor == "postgresql":
            # The domains as one array (routing.bulk), not a thousand parameters spelled into the statement.
            rows = pg_execute(
                f"SELECT domain, company, employees, industry, country FROM {Firmographic._meta.db_table} "
                "WHERE domain = ANY(%b::varchar[])",
                [typed_array("varchar", sorted(wanted))],
                fetch=True,
            )
            found = {
                domain: CompanyFacts(company=company, employees=employees, industry=industry, country=country)
                for domain, company, employees, industry, country in rows
            }
        else:
            found = {row.domain: _facts(row) for row in Firmographic.objects.filter(domain__in=wanted)}
        self._known.update({domain: found.get(domain) for domain in wanted})

    def lookup(self, *, domain: str) -> CompanyFacts | None:
        if domain not in self._known:
            row = Firmographic.objects.filter(domain=domain).first()
            self._known[domain] = _facts(row) if row is not None else None
        return self._known[domain]


def _facts(row: Firmographic) -> CompanyFacts:
    return CompanyFacts(company=row.company, employees=row.employees, industry=row.industry, country=row.country)


@dataclass
class EnrichmentResult:
    domain: str
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def as_receipt(self) -> dict[str, Any]:
        """The part of a lead's receipt that explains enrichment."""
        return {"domain": self.domain, "filled": self.sources, "failures": self.failures}


def configured_providers() -> list[EnrichmentProvider]:
    return [import_string(path)() for path in settings.LEADROUTER_ENRICHMENT_PROVIDERS]


def lookup_domain(lead: Mapping[str, Any]) -> str:
    """The company domain to look up for a standardized lead, or "" when there is none."""
    if lead.get("email_domain") and not lead.get("is_free_email"):
        return str(lead["email_domain"])
    return str(lead.get("website") or "")


def enrich(*, lead: Mapping[str, Any], providers: Sequence[EnrichmentProvider] | None = None) -> EnrichmentResult:
    """Values for the lead's blank company fields. Reads providers; writes nothing."""
    result = EnrichmentResult(domain=lookup_domain(lead))
    if not result.domain:
        return result
    missing = [name for name in ENRICHED_FIELDS if lead.get(name) in (None, "")]
    for provider in configured_providers() if providers is None else providers:
        if not missing:
            break
        try:
            facts = provider.lookup(domain=result.domain)
        except Exception as error:  # A provider's failure must never stop routing.
            logger.warning("Enrichment provider %s failed for %s", provider.name, result.domain, exc_info=True)
            result.failures[provider.name] = f"{type(error).__name__}: {error}"
            continue
        if facts is None:
            continue
        for name in list(missing):
            value = getattr(facts, name)
            if value not in (None, ""):
                result.values[name] = value
                result.sources[name] = provider.name
                missing.remove(name)
    return result
