"""Scoring: fit and intent points, and the threshold that decides sales, nurture or disqualified.

Pure over the engine's ``LeadFacts`` (no ORM, no clock), so intake, simulate and
replay score alike:

1. Every active scoring rule whose condition holds adds its points to its kind
   (fit or intent); a rule may take points away.
2. The total is fit + intent.
3. At or above the sales threshold the lead goes to sales routing; at or above
   the nurture threshold it goes to nurture; below, it is disqualified.
   Nurture and disqualified leads never reach a rep, so they take no capacity.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from routing.engine import ConditionGroup, LeadFacts, evaluate
from routing.records import quick_init

Disposition = Literal["sales", "nurture", "disqualified"]


@dataclass(frozen=True)
class ScoringRuleInfo:
    name: str
    kind: Literal["fit", "intent"]
    condition: ConditionGroup
    points: int


@dataclass(frozen=True)
class Thresholds:
    sales_min: int
    nurture_min: int


@quick_init  # Made for every routed lead (routing/records.py).
@dataclass(frozen=True)
class ScoreResult:
    fit: int
    intent: int
    disposition: Disposition
    matched: tuple[tuple[str, int], ...] = field(default=())

    @property
    def total(self) -> int:
        return self.fit + self.intent

    def as_receipt(self) -> dict[str, Any]:
        return {
            "fit": self.fit,
            "intent": self.intent,
            "total": self.total,
            "disposition": self.disposition,
            "matched": [{"rule": name, "points": points} for name, points in self.matched],
        }


def score_lead(lead: LeadFacts, rules: Iterable[ScoringRuleInfo], thresholds: Thresholds) -> ScoreResult:
    points = {"fit": 0, "intent": 0}
    matched: list[tuple[str, int]] = []
    for rule in rules:
        if evaluate(rule.condition, lead)[0]:
            points[rule.kind] += rule.points
            matched.append((rule.name, rule.points))
    total = points["fit"] + points["intent"]
    disposition: Disposition
    if total >= thresholds.sales_min:
        disposition = "sales"
    elif total >= thresholds.nurture_min:
        disposition = "nurture"
    else:
        disposition = "disqualified"
    return ScoreResult(fit=points["fit"], intent=points["intent"], disposition=disposition, matched=tuple(matched))
