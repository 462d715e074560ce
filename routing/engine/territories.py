"""Which territory a lead falls in, and who covers it.

A snapshot compiles its territories once (``Snapshot.territory_index``): each
territory's criteria trimmed and case-folded into sets, its ancestor chain
walked, and every territory filed under the values of one of its criteria kinds,
so that a lead is tested only against the territories that can match it and
never folds a territory's values again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from routing.engine.facts import LeadFacts, TerritoryInfo

POSTAL_PREFIX = "postal_prefix"


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
        if kind == POSTAL_PREFIX:
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
    """The deepest territory whose criteria and all ancestors' criteria the lead meets (see
    ``TerritoryIndex.match``). Routing a batch uses the snapshot's compiled ``territory_index`` instead."""
    return TerritoryIndex(by_id).match(lead)


# How many distinct sets of lead values a territory index remembers the answer for (then it starts again).
MATCHES_REMEMBERED = 10_000


class TerritoryIndex:
    """Territories compiled for matching: the same answers as ``meets_own_criteria`` over every territory.

    1. Each kind with values becomes one test: postal prefixes normalized (blank ones dropped), other
       values trimmed and case-folded into a set. A kind without values is no test.
    2. A territory without tests matches every lead. Any other is filed under one of its tests (an
       exact-value kind when it has one, else its postal prefixes): a lead can meet the territory only
       if its own value is among those, so the lead's values find every territory it can meet.
    3. Each territory's ancestor chain and number of criteria kinds are worked out once.
    """

    def __init__(self, by_id: Mapping[int, TerritoryInfo]) -> None:
        self.by_id = by_id
        self._tests: dict[int, tuple[tuple[str, frozenset[str] | tuple[str, ...]], ...]] = {}
        self._kinds: dict[int, int] = {}
        self._chains: dict[int, tuple[TerritoryInfo, ...]] = {}
        self._always: list[int] = []
        self._by_value: dict[tuple[str, str], list[int]] = {}
        self._by_prefix: dict[str, list[int]] = {}
        for territory in by_id.values():
            tests = tuple(_compile(kind, values) for kind, values in territory.criteria.items() if values)
            self._tests[territory.id] = tests
            self._kinds[territory.id] = len(tests)
            self._chains[territory.id] = tuple(ancestors(territory, by_id))
            if not tests:
                self._always.append(territory.id)
                continue
            kind, accepted = min(tests, key=lambda test: (test[0] == POSTAL_PREFIX, len(test[1])))
            if kind == POSTAL_PREFIX:
                for prefix in accepted:
                    self._by_prefix.setdefault(prefix, []).append(territory.id)
            else:
                for value in accepted:
                    self._by_value.setdefault((kind, value), []).append(territory.id)
        self._value_kinds = sorted({kind for kind, _ in self._by_value})
        self._tested_kinds = sorted({kind for tests in self._tests.values() for kind, _ in tests})
        self._prefix_lengths = sorted({len(prefix) for prefix in self._by_prefix})
        # Answers already worked out, by the lead's folded values (see ``_candidates``).
        self._found: dict[tuple[str, ...], TerritoryMatch] = {}

    def match(self, lead: LeadFacts) -> TerritoryMatch:
        """The deepest territory whose criteria and all ancestors' criteria the lead meets.

        Ties go to the territory with more criteria kinds of its own, then the
        lowest id. Coverage is the territory's own queue or rep, else the nearest
        covered ancestor's.
        """
        folded = {kind: _folded(lead, kind) for kind in self._tested_kinds}
        key = tuple(folded.values())
        found = self._found.get(key)
        if found is None:
            found = _match_of(*self._candidates(folded))
            if len(self._found) >= MATCHES_REMEMBERED:
                self._found.clear()
            self._found[key] = found
        # Leads alike in these values share the answer, its receipt part included: a receipt is written as it
        # is decided and never changed in place (building it again cost ~2 µs a lead).
        return found

    def _candidates(
        self, folded: Mapping[str, str]
    ) -> tuple[tuple[tuple[int, TerritoryInfo], ...], TerritoryInfo | None, TerritoryInfo | None]:
        """The matching territories (depth, territory) in order, the chosen one and its coverage, for the
        lead's folded values: all a match depends on, so it is worked out once per distinct set of values."""
        possible = set(self._always)
        for kind in self._value_kinds:
            possible.update(self._by_value.get((kind, folded[kind]), ()))
        if self._prefix_lengths and (postal_code := folded[POSTAL_PREFIX]):
            for length in self._prefix_lengths:
                possible.update(self._by_prefix.get(postal_code[:length], ()))
        own = {tid for tid in possible if all(_passes(test, folded) for test in self._tests[tid])}
        candidates: list[tuple[int, int, int, TerritoryInfo]] = []
        for tid in own:
            chain = self._chains[tid]
            if all(parent.id in own for parent in chain):
                candidates.append((-len(chain), -self._kinds[tid], tid, self.by_id[tid]))
        candidates.sort(key=lambda candidate: candidate[:3])
        ordered = tuple((-depth, territory) for depth, _, _, territory in candidates)
        if not candidates:
            return ordered, None, None
        chosen = candidates[0][3]
        coverage = next(
            (t for t in (chosen, *self._chains[chosen.id]) if t.queue_id is not None or t.rep_id is not None), None
        )
        return ordered, chosen, coverage


def _match_of(
    candidates: tuple[tuple[int, TerritoryInfo], ...], chosen: TerritoryInfo | None, coverage: TerritoryInfo | None
) -> TerritoryMatch:
    """The match for ``TerritoryIndex._candidates``'s answer, with its receipt part."""
    receipt: dict[str, Any] = {
        "candidates": [{"id": t.id, "name": t.name, "depth": depth} for depth, t in candidates],
        "chosen": None,
        "covered_by": None,
    }
    if chosen is None:
        return TerritoryMatch(None, None, receipt)
    receipt["chosen"] = {"id": chosen.id, "name": chosen.name}
    if coverage is not None:
        receipt["covered_by"] = {
            "territory_id": coverage.id,
            "territory": coverage.name,
            "queue_id": coverage.queue_id,
            "rep_id": coverage.rep_id,
        }
    return TerritoryMatch(chosen, coverage, receipt)


def _compile(kind: str, values: frozenset[str]) -> tuple[str, frozenset[str] | tuple[str, ...]]:
    if kind == POSTAL_PREFIX:
        return kind, tuple(sorted({normalize_postal_code(value) for value in values if value.strip()}))
    return kind, frozenset(value.strip().casefold() for value in values) - {""}


def _folded(lead: LeadFacts, kind: str) -> str:
    """The lead's value for a criteria kind as the compiled tests compare it."""
    if kind == POSTAL_PREFIX:
        return normalize_postal_code(lead.postal_code)
    return _lead_value(lead, kind).strip().casefold()


def _passes(test: tuple[str, frozenset[str] | tuple[str, ...]], folded: Mapping[str, str]) -> bool:
    kind, accepted = test
    value = folded[kind]
    if not value:
        return False
    if kind == POSTAL_PREFIX:
        return any(value.startswith(prefix) for prefix in accepted)
    return value in accepted
