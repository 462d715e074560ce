"""Which territory a lead falls in, and who covers it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from routing.engine.facts import LeadFacts, TerritoryInfo


@dataclass(frozen=True)
class TerritoryMatch:
    """The chosen territory (None when none matched), the node whose queue or rep covers it, and the receipt part."""

    territory: TerritoryInfo | None
    coverage: TerritoryInfo | None
    receipt: dict[str, Any]


def normalize_postal_code(value: str) -> str:
    return "".join(value.split()).upper()


def meets_own_criteria(lead: LeadFacts, territory: TerritoryInfo) -> bool:
    """Every kind must hold; the values of one kind are alternatives. No criteria: everything matches."""
    for kind, values in territory.criteria.items():
        if not values:
            continue
        if kind == "postal_prefix":
            postal_code = normalize_postal_code(lead.postal_code)
            prefixes = [normalize_postal_code(value) for value in values if value.strip()]
            if not postal_code or not any(postal_code.startswith(prefix) for prefix in prefixes):
                return False
            continue
        lead_value = _lead_value(lead, kind).strip().casefold()
        if not lead_value or lead_value not in {value.strip().casefold() for value in values}:
            return False
    return True


def _lead_value(lead: LeadFacts, kind: str) -> str:
    return lead.product_interest if kind == "product_line" else str(getattr(lead, kind) or "")


def ancestors(territory: TerritoryInfo, by_id: Mapping[int, TerritoryInfo]) -> list[TerritoryInfo]:
    """Parent first, root last. A broken or cyclic parent chain stops where it breaks."""
    chain: list[TerritoryInfo] = []
    seen = {territory.id}
    parent_id = territory.parent_id
    while parent_id is not None and parent_id not in seen and parent_id in by_id:
        parent = by_id[parent_id]
        chain.append(parent)
        seen.add(parent_id)
        parent_id = parent.parent_id
    return chain


def match_territory(lead: LeadFacts, by_id: Mapping[int, TerritoryInfo]) -> TerritoryMatch:
    """The deepest territory whose criteria and all ancestors' criteria the lead meets.

    Ties go to the territory with more criteria kinds of its own, then the
    lowest id. Coverage is the territory's own queue or rep, else the nearest
    covered ancestor's.
    """
    own = {tid: meets_own_criteria(lead, territory) for tid, territory in by_id.items()}
    candidates: list[tuple[int, int, int, TerritoryInfo]] = []
    for territory in by_id.values():
        if not own[territory.id]:
            continue
        chain = ancestors(territory, by_id)
        if all(own[parent.id] for parent in chain):
            kinds = sum(1 for values in territory.criteria.values() if values)
            candidates.append((-len(chain), -kinds, territory.id, territory))
    candidates.sort(key=lambda candidate: candidate[:3])
    receipt: dict[str, Any] = {
        "candidates": [{"id": t.id, "name": t.name, "depth": -depth} for depth, _, _, t in candidates],
        "chosen": None,
        "covered_by": None,
    }
    if not candidates:
        return TerritoryMatch(None, None, receipt)
    chosen = candidates[0][3]
    receipt["chosen"] = {"id": chosen.id, "name": chosen.name}
    coverage = next(
        (t for t in [chosen, *ancestors(chosen, by_id)] if t.queue_id is not None or t.rep_id is not None), None
    )
    if coverage is not None:
        receipt["covered_by"] = {
            "territory_id": coverage.id,
            "territory": coverage.name,
            "queue_id": coverage.queue_id,
            "rep_id": coverage.rep_id,
        }
    return TerritoryMatch(chosen, coverage, receipt)
