"""From a raw lead to a routing decision, without writing anything.

Simulate calls ``evaluate_lead``; the routing worker (routing/dispatch.py) calls
``prepare_lead`` for a batch outside its lock, then ``route_prepared`` under it,
and writes what the decision says. The steps, in the order the practice prescribes:

1. Standardize the raw fields (unknown values are flagged, not dropped).
2. Enrich blank company fields by domain.
3. Match the lead to an account (domain, then name with a confidence).
4. Score fit and intent. When scoring rules exist, a total below the sales
   threshold sends the lead to nurture or disqualifies it: no rep, no capacity.
5. Route with the engine over the coverage snapshot.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from routing.engine import AccountFacts, Decision, LeadFacts, Snapshot, route_lead
from routing.engine.facts import LEAD_FIELDS
from routing.enrich import EnrichmentProvider, EnrichmentResult, enrich
from routing.matching import AccountIndex, AccountMatch
from routing.scoring import ScoreResult, ScoringRuleInfo, Thresholds, score_lead
from routing.standardize import StandardizedLead, standardize
from territories.picklists import size_band_for


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
    standardized = standardize(raw)
    values = standardized.as_values()
    enrichment = enrich(lead=values, providers=providers)
    values = {**values, **enrichment.values}
    if "employees" in enrichment.values and not standardized.size_band:
        values["size_band"] = size_band_for(values["employees"])

    account = accounts.match(
        email_domain=standardized.email_domain,
        is_free_email=standardized.is_free_email,
        website=standardized.website,
        company=values["company"],
    )
    facts = account_facts(account.account_id) if account.account_id is not None else None
    if facts is not None and account.weak:
        facts = replace(facts, weak_match=True)

    lead = LeadFacts(**{name: values[name] for name in LEAD_FACT_FIELDS}, account=facts)
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
