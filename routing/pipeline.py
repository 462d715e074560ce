"""From a raw lead to a routing decision, without writing anything.

Simulate calls ``evaluate_lead``; the routing worker (routing/dispatch.py) calls
``match_leads`` for a batch outside its lock (steps 1–3, with every read they
make), then ``Matched.prepared`` (step 4) and ``route_prepared`` under it, lead
by lead, and writes what the decision says. Together they give each lead what
``prepare_lead`` gives it alone, doing the work a batch shares once
(``prepare_leads`` does both steps for a whole batch). The steps, in the order
the practice prescribes:

1. Standardize the raw fields (unknown values are flagged, not dropped).
2. Enrich blank company fields by domain.
3. Match the lead to an account (domain, then name with a confidence).
4. Score fit and intent. When scoring rules exist, a total below the sales
   threshold sends the lead to nurture or disqualifies it: no rep, no capacity.
5. Route with the engine over the coverage snapshot.
"""

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from operator import itemgetter
from typing import Any

from routing.engine import AccountFacts, Decision, LeadFacts, Snapshot, route_lead
from routing.engine.facts import LEAD_FIELDS
from routing.enrich import EnrichmentProvider, EnrichmentResult, configured_providers, enrich, lookup_domain
from routing.matching import AccountIndex, AccountMatch
from routing.records import frozen_build, quick_init
from routing.scoring import ScoreResult, ScoringRuleInfo, Thresholds, score_lead
from routing.standardize import StandardizedLead, standardize
from territories.picklists import size_band_for

logger = logging.getLogger(__name__)


@quick_init  # Made for every routed lead (routing/records.py).
@dataclass(frozen=True)
class Prepared:
    """A lead after steps 1–4: everything that does not depend on queues, pointers or rep load."""

    standardized: StandardizedLead
    enrichment: EnrichmentResult
    account: AccountMatch
    score: ScoreResult | None  # None: no scoring rules, every lead goes to sales routing
    facts: LeadFacts

    @property
    def goes_to_sales(self) -> bool:
        return self.score is None or self.score.disposition == "sales"


@quick_init  # Made for every routed lead (routing/records.py).
@dataclass(frozen=True)
class Evaluation:
    standardized: StandardizedLead
    enrichment: EnrichmentResult
    account: AccountMatch
    score: ScoreResult | None  # None: no scoring rules, every lead goes to sales routing
    decision: Decision | None  # None: scoring sent the lead to nurture or disqualified it

    @property
    def outcome(self) -> str:
        if self.decision is not None:
            return self.decision.outcome
        assert self.score is not None
        return self.score.disposition

    def receipt(self) -> dict[str, Any]:
        """Everything that decided this lead, for the lead's page, simulate and the API."""
        return {
            "outcome": self.outcome,
            "standardization_flags": dict(self.standardized.flags),
            "enrichment": self.enrichment.as_receipt(),
            "account": self.account.as_receipt(),
            "score": self.score.as_receipt() if self.score else {"result": "no scoring rules: routed to sales"},
            "routing": self.decision.receipt if self.decision else {"result": f"not routed: {self.outcome}"},
        }


def prepare_lead(
    raw: Mapping[str, Any],
    *,
    accounts: AccountIndex,
    account_facts: Callable[[int], AccountFacts | None],
    scoring: tuple[list[ScoringRuleInfo], Thresholds],
    providers: Sequence[EnrichmentProvider] | None = None,
) -> Prepared:
    """Steps 1–4 for ``raw``: standardize, enrich, match an account, score. Reads only what it is given
    (``providers`` default to the configured enrichment providers)."""
    standardized, enrichment, values = _standardize_and_enrich(raw, providers)
    account = accounts.match(**_match_fields(standardized, values))
    facts = account_facts(account.account_id) if account.account_id is not None else None
    return _match_and_score(standardized, enrichment, values, account, facts, scoring)


def prepare_leads(
    raws: Sequence[Mapping[str, Any]],
    *,
    accounts: AccountIndex,
    accounts_facts: Callable[[Collection[int]], Mapping[int, AccountFacts]],
    scoring: tuple[list[ScoringRuleInfo], Thresholds],
    providers: Sequence[EnrichmentProvider] | None = None,
) -> list[Prepared | Exception]:
    """Steps 1–4 for a routing batch: for each raw lead, in order, what ``prepare_lead`` gives it, or the
    exception its preparation raised (the caller keeps the lead and sends it to the catch-all with the
    error; the exception carries its traceback). Reads only what it is given: ``match_leads``, then
    ``Matched.prepared`` for each lead."""
    return [
        matched if isinstance(matched, Exception) else matched.prepared_or_error(scoring)
        for matched in match_leads(raws, accounts=accounts, accounts_facts=accounts_facts, providers=providers)
    ]


@quick_init  # Made for every routed lead (routing/records.py).
@dataclass(frozen=True)
class Matched:
    """A lead after steps 1–3 as a batch prepares it (``match_leads``): everything step 4 needs, read. What is
    left (the matched account's facts on the lead, scoring) reads nothing, so a routing batch does it part by
    part, while the database writes the part before (routing/dispatch.py)."""

    standardized: StandardizedLead
    enrichment: EnrichmentResult
    values: dict[str, Any]  # The standardized values with what enrichment filled in.
    account: AccountMatch
    account_facts: AccountFacts | Exception | None  # The matched account's, as read; the error if that failed.

    def prepared(self, scoring: tuple[list[ScoringRuleInfo], Thresholds]) -> Prepared:
        """Step 4 (and the account's facts on the lead): what ``prepare_lead`` gives the lead. Raises what
        reading the account's facts raised."""
        facts = self.account_facts
        if isinstance(facts, Exception):
            raise facts
        return _match_and_score(self.standardized, self.enrichment, self.values, self.account, facts, scoring)

    def prepared_or_error(self, scoring: tuple[list[ScoringRuleInfo], Thresholds]) -> Prepared | Exception:
        """``prepared``, or the exception it raised (a bug must not stop the batch nor lose the lead)."""
        try:
            return self.prepared(scoring)
        except Exception as error:
            return error


def match_leads(
    raws: Sequence[Mapping[str, Any]],
    *,
    accounts: AccountIndex,
    accounts_facts: Callable[[Collection[int]], Mapping[int, AccountFacts]],
    providers: Sequence[EnrichmentProvider] | None = None,
) -> list[Matched | Exception]:
    """Steps 1–3 for a routing batch, with every read they make: for each raw lead, in order, its
    ``Matched``, or the exception its preparation raised.

    What the batch shares is done once: the providers are read once, and those that look up many domains
    at once (``prefetch``) get the batch's domains together; the companies no domain matched are matched
    together (``AccountIndex.match_many``); the matched accounts' facts are read together
    (``accounts_facts``), each account once.
    """
    providers = configured_providers() if providers is None else providers
    failed: dict[int, Exception] = {}
    # Step 1 for every lead first, so that step 2 can look the batch's domains up together.
    standardized: dict[int, StandardizedLead] = {}
    for position, raw in enumerate(raws):
        try:
            standardized[position] = standardize(raw)
        except Exception as error:  # A bug must not stop the batch nor lose the lead.
            failed[position] = error
    # The record's own dict holds its fields (and the flags, which lookup_domain does not read).
    domains = {lookup_domain(lead.__dict__) for lead in standardized.values()} - {""}
    for provider in providers:
        prefetch = getattr(provider, "prefetch", None)
        try:
            if prefetch is not None:
                prefetch(domains=domains)
        except Exception:  # As with a failed lookup: enrichment records each lead's failure and goes on.
            logger.warning("Enrichment provider %s could not prefetch the batch.", provider.name, exc_info=True)
    enriched: dict[int, tuple[EnrichmentResult, dict[str, Any]]] = {}
    for position, lead in standardized.items():
        try:
            enriched[position] = _enrich(lead, providers)
        except Exception as error:
            failed[position] = error

    matches = _match_all(
        accounts,
        {position: _match_fields(standardized[position], values) for position, (_, values) in enriched.items()},
    )
    facts_by_id = _facts_all(
        accounts_facts,
        {match.account_id for match in matches.values() if isinstance(match, AccountMatch) and match.account_id},
    )
    matched: dict[int, Matched] = {}
    for position, (enrichment, values) in enriched.items():
        account = matches[position]
        if isinstance(account, Exception):
            failed[position] = account
            continue
        facts = facts_by_id.get(account.account_id) if account.account_id is not None else None
        matched[position] = Matched(standardized[position], enrichment, values, account, facts)
    return [matched[position] if position in matched else failed[position] for position in range(len(raws))]


def _standardize_and_enrich(
    raw: Mapping[str, Any], providers: Sequence[EnrichmentProvider] | None
) -> tuple[StandardizedLead, EnrichmentResult, dict[str, Any]]:
    standardized = standardize(raw)
    return (standardized, *_enrich(standardized, providers))


def _enrich(
    standardized: StandardizedLead, providers: Sequence[EnrichmentProvider] | None
) -> tuple[EnrichmentResult, dict[str, Any]]:
    """Step 2, and the lead's values with what enrichment filled in."""
    values = standardized.as_values()  # A copy of its own: enrichment's values go into it.
    enrichment = enrich(lead=values, providers=providers)
    values.update(enrichment.values)
    if "employees" in enrichment.values and not standardized.size_band:
        values["size_band"] = size_band_for(values["employees"])
    return enrichment, values


def _match_fields(standardized: StandardizedLead, values: Mapping[str, Any]) -> dict[str, Any]:
    """What account matching reads: the lead's own domains, and its company, enriched when it was blank."""
    return {
        "email_domain": standardized.email_domain,
        "is_free_email": standardized.is_free_email,
        "website": standardized.website,
        "company": values["company"],
    }


def _match_all(accounts: AccountIndex, fields: dict[int, dict[str, Any]]) -> dict[int, AccountMatch | Exception]:
    """Step 3 for the batch, together; should that fail, lead by lead, so one lead's failure stays its own."""
    try:
        return dict(zip(fields, accounts.match_many(list(fields.values())), strict=True))
    except Exception:
        logger.exception("Matching a batch's accounts together failed; matching lead by lead.")
    matches: dict[int, AccountMatch | Exception] = {}
    for position, lead_fields in fields.items():
        try:
            matches[position] = accounts.match(**lead_fields)
        except Exception as error:
            matches[position] = error
    return matches


def _facts_all(
    accounts_facts: Callable[[Collection[int]], Mapping[int, AccountFacts]], account_ids: set[int]
) -> dict[int, AccountFacts | Exception]:
    """The facts of the batch's matched accounts, read together; should that fail, account by account, so
    that an account that cannot be read fails only its own leads (with the error, kept for each)."""
    try:
        return dict(accounts_facts(account_ids)) if account_ids else {}
    except Exception:
        logger.exception("Reading a batch's account facts together failed; reading account by account.")
    facts: dict[int, AccountFacts | Exception] = {}
    for account_id in account_ids:
        try:
            found = accounts_facts([account_id])
        except Exception as error:
            facts[account_id] = error
        else:
            if account_id in found:
                facts[account_id] = found[account_id]
    return facts


def _match_and_score(
    standardized: StandardizedLead,
    enrichment: EnrichmentResult,
    values: dict[str, Any],
    account: AccountMatch,
    facts: AccountFacts | None,
    scoring: tuple[list[ScoringRuleInfo], Thresholds],
) -> Prepared:
    """Steps 3 (the matched account's facts, ``facts``) and 4."""
    if facts is not None and account.weak:
        facts = replace(facts, weak_match=True)

    fact_values = dict(zip(LEAD_FACT_FIELDS, _lead_fact_values(values), strict=True))
    fact_values["account"] = facts
    lead = frozen_build(LeadFacts, fact_values)
    rules, thresholds = scoring
    score = score_lead(lead, rules, thresholds) if rules else None
    if score is not None:
        lead = replace(lead, score=score.total)
    return Prepared(standardized, enrichment, account, score, lead)


def route_prepared(prepared: Prepared, *, now: datetime, snapshot: Snapshot) -> Evaluation:
    """Step 5: route a prepared lead, unless scoring sent it to nurture or disqualified it."""
    decision = route_lead(prepared.facts, snapshot, now=now) if prepared.goes_to_sales else None
    return Evaluation(prepared.standardized, prepared.enrichment, prepared.account, prepared.score, decision)


def evaluate_lead(
    raw: Mapping[str, Any],
    *,
    now: datetime,
    snapshot: Snapshot,
    accounts: AccountIndex,
    account_facts: Callable[[int], AccountFacts | None],
    scoring: tuple[list[ScoringRuleInfo], Thresholds],
) -> Evaluation:
    """Decide where ``raw`` goes. Reads only what it is given; writes nothing."""
    prepared = prepare_lead(raw, accounts=accounts, account_facts=account_facts, scoring=scoring)
    return route_prepared(prepared, now=now, snapshot=snapshot)


# The engine's lead fields that come from the lead itself; the score is added after scoring.
LEAD_FACT_FIELDS = tuple(name for name in LEAD_FIELDS if name != "score")
_lead_fact_values = itemgetter(*LEAD_FACT_FIELDS)
