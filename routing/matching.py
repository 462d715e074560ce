"""Lead-to-account matching.

1. The e-mail domain, unless it is free mail: an exact account domain, or the
   domain it is a subdomain of (``eu.acme.com`` → ``acme.com``). Certain.
2. The website's domain, the same way. Certain.
3. The company name: the lead's normalized company key against every account's
   (legal suffixes and punctuation gone), scored with rapidfuzz's WRatio.
   At or above ``LEADROUTER_ACCOUNT_MATCH_STRONG`` the match is trusted; between
   that and ``LEADROUTER_ACCOUNT_MATCH_WEAK`` it is a weak match: recorded and
   flagged for RevOps review, never used to hand the lead to the account's
   owner. Keys shorter than four characters are never compared letter by
   letter ("IBM" and "IBX" are different companies); a lead whose name starts
   with such a key as a whole word ("IBM India" for account "IBM") is a weak
   match.

The index is loaded once and kept by the routing worker until the accounts
change (``dispatch.CoverageCache`` drops it with the coverage version, which
every Account and AccountDomain write bumps). Matching a lead is then pure, and
a company key's name match is remembered, so a company that comes back in a
later batch costs a dictionary lookup.

Name matching is the costly step: WRatio against every account name costs
about a microsecond per name. ``match_many`` (and ``prime``) match a routing
batch's distinct new keys together and score WRatio only against the names
that can reach the weak threshold (see ``_candidates``), with the same results
as scoring every name.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from rapidfuzz import fuzz, process
from rapidfuzz.distance import LCSseq

from routing.records import quick_init
from routing.standardize import company_key
from territories.models import Account, AccountDomain

SHORT_KEY = 4
# Remembered name matches per index; past this the memo starts over, so a worker's memory stays bounded.
MEMO_LIMIT = 100_000
# Key-by-name cells scored in one cdist call: bounds the batch's memory whatever the number of accounts.
CDIST_CELLS = 2_000_000
# Float slack when comparing the WRatio bound with the threshold: prune only what certainly scores below.
_SLACK = 1e-6
# A key as company_key writes it: word characters in words separated by single spaces.
_PLAIN_KEY = re.compile(r"\w+(?: \w+)*")


@quick_init  # Made for every routed lead (routing/records.py).
@dataclass(frozen=True)
class AccountMatch:
    account_id: int | None = None
    method: str = ""  # "email_domain", "website" or "company_name"
    confidence: float = 0.0  # 0–100
    weak: bool = False
    matched_on: str = ""  # the domain or account name that matched

    def as_receipt(self) -> dict[str, Any]:
        if self.account_id is None:
            return {"result": "no account matched"}
        return {
            "account_id": self.account_id,
            "method": self.method,
            "matched_on": self.matched_on,
            "confidence": round(self.confidence, 1),
            "weak": self.weak,
        }


class AccountIndex:
    def __init__(self, *, domains: dict[str, int], names: dict[str, tuple[int, str]]) -> None:
        self.domains = domains
        # company key → (account id, account name)
        self.names = names
        self.strong = float(settings.LEADROUTER_ACCOUNT_MATCH_STRONG)
        self.weak = float(settings.LEADROUTER_ACCOUNT_MATCH_WEAK)
        self._by_name_cache: dict[str, AccountMatch] = {}
        # What the prefilter reads, per account key in the order WRatio ties are broken (the first wins).
        self._keys = list(names)
        self._letters = ["".join(sorted(key)) for key in self._keys]
        self._lengths = np.array([len(key) for key in self._keys], dtype=np.float64)
        self._by_word: dict[str, list[int]] = {}
        self._needed_by_length: dict[int, Any] = {}
        # Keys the bound does not cover (a repeated word, or not in company_key's form): always scored.
        self._always: list[int] = []
        for position, key in enumerate(self._keys):
            if not _bound_applies(key):
                self._always.append(position)
            for word in set(key.split(" ")):
                self._by_word.setdefault(word, []).append(position)

    @classmethod
    def load(cls) -> "AccountIndex":
        domains = dict(AccountDomain.objects.values_list("domain", "account_id"))
        names: dict[str, tuple[int, str]] = {}
        for account_id, name in Account.objects.order_by("id").values_list("id", "name"):
            key = company_key(name)
            if key:
                # Two accounts with one key: the older keeps it, so matching stays stable.
                names.setdefault(key, (account_id, name))
        return cls(domains=domains, names=names)

    def match(
        self, *, email_domain: str = "", is_free_email: bool = False, website: str = "", company: str = ""
    ) -> AccountMatch:
        found = self._by_domains(email_domain, is_free_email, website)
        if found is not None:
            return found
        return self._by_name(company_key(company) if company else "")

    def match_many(self, leads: Sequence[Mapping[str, Any]]) -> list[AccountMatch]:
        """``match`` for each lead (a mapping with ``email_domain``, ``is_free_email``, ``website`` and
        ``company``, as a standardized lead's values have them), with the names of the leads no domain
        matched scored together (``prime``)."""
        by_domain = [
            self._by_domains(lead.get("email_domain", ""), lead.get("is_free_email", False), lead.get("website", ""))
            for lead in leads
        ]
        self.prime(lead.get("company", "") for lead, found in zip(leads, by_domain, strict=True) if found is None)
        return [
            found if found is not None else self._by_name(company_key(lead["company"]) if lead.get("company") else "")
            for lead, found in zip(leads, by_domain, strict=True)
        ]

    def prime(self, companies: Iterable[str]) -> None:
        """Match these company names' keys not matched before, together, and remember the results."""
        keys = {company_key(company) for company in companies if company}
        self._remember(key for key in keys if key not in self._by_name_cache)

    def _by_domains(self, email_domain: str, is_free_email: bool, website: str) -> AccountMatch | None:
        if email_domain and not is_free_email:
            found = self._by_domain(email_domain)
            if found is not None:
                return AccountMatch(found[0], "email_domain", 100.0, matched_on=found[1])
        if website:
            found = self._by_domain(website)
            if found is not None:
                return AccountMatch(found[0], "website", 100.0, matched_on=found[1])
        return None

    def _by_domain(self, domain: str) -> tuple[int, str] | None:
        labels = domain.lower().strip(".").split(".")
        # acme.com, then for eu.sales.acme.com: sales.acme.com, acme.com (never the bare TLD).
        for start in range(len(labels) - 1):
            candidate = ".".join(labels[start:])
            if candidate in self.domains:
                return self.domains[candidate], candidate
        return None

    def _by_name(self, key: str) -> AccountMatch:
        if key not in self._by_name_cache:
            self._remember([key])
        return self._by_name_cache[key]

    def _remember(self, keys: Iterable[str]) -> None:
        """Match ``keys`` by name and remember the results: exact and short keys directly, the others
        by WRatio against their candidates, found for all of them at once."""
        if len(self._by_name_cache) > MEMO_LIMIT:
            self._by_name_cache.clear()
        fuzzy = []
        for key in keys:
            found = self._without_scoring(key)
            if found is None:
                fuzzy.append(key)
            else:
                self._by_name_cache[key] = found
        for key, candidates in zip(fuzzy, self._candidates(fuzzy), strict=True):
            self._by_name_cache[key] = self._best(key, candidates)

    def _without_scoring(self, key: str) -> AccountMatch | None:
        """The answer for a key that needs no fuzzy scoring, or None when it does."""
        if not key or not self.names:
            return AccountMatch()
        if key in self.names:
            account_id, name = self.names[key]
            return AccountMatch(account_id, "company_name", 100.0, matched_on=name)
        first_word = key.split(" ", 1)[0]
        if len(first_word) < SHORT_KEY and first_word in self.names:
            account_id, name = self.names[first_word]
            return AccountMatch(account_id, "company_name", self.weak, weak=True, matched_on=name)
        if len(key) < SHORT_KEY:
            return AccountMatch()
        return None

    def _best(self, key: str, candidates: list[int]) -> AccountMatch:
        """The best WRatio match among the candidates, taken in index order so that ties go where
        scoring every name would send them."""
        choices = [self._keys[position] for position in candidates]
        best = process.extractOne(key, choices, scorer=fuzz.WRatio, score_cutoff=self.weak)
        if best is None:
            return AccountMatch()
        matched_key, score, _ = best
        if len(matched_key) < SHORT_KEY:
            return AccountMatch()
        account_id, name = self.names[matched_key]
        return AccountMatch(account_id, "company_name", float(score), weak=score < self.strong, matched_on=name)

    def _candidates(self, keys: list[str]) -> list[list[int]]:
        """For each key, the positions of the account keys whose WRatio can reach the weak threshold.

        1. An account key that shares a word with the lead's key is a candidate: WRatio's token set
           score can reach 100 then ("siemens" in "siemens healthineers").
        2. Otherwise every part of WRatio compares strings made of the two keys' letters (the keys
           themselves, their words sorted, or a piece of the longer one as long as the shorter), so
           it is bounded by the letters the keys have in common (counted with repeats, found in one
           ``cdist`` over the batch as the LCS of the keys' sorted letters): see ``_wratio_bound``.
           An account key with fewer letters in common than its bound needs is not scored.
        3. Keys outside that argument (a repeated word, or not in company_key's form) are scored
           against everything, as before.
        """
        rows: list[list[int]] = []
        everything = list(range(len(self._keys)))
        chunk = max(1, CDIST_CELLS // max(1, len(self._keys)))
        for start in range(0, len(keys), chunk):
            part = keys[start : start + chunk]
            common = process.cdist(
                ["".join(sorted(key)) for key in part], self._letters, scorer=LCSseq.similarity, dtype=np.int32
            )
            needed = np.stack([self._letters_needed(len(key)) for key in part])
            found: list[set[int]] = [set() for _ in part]
            for row, position in zip(*(axis.tolist() for axis in np.nonzero(common >= needed)), strict=True):
                found[row].add(position)
            for key, candidates in zip(part, found, strict=True):
                if not _bound_applies(key):
                    rows.append(everything)
                    continue
                candidates.update(self._always)
                for word in key.split(" "):
                    candidates.update(self._by_word.get(word, ()))
                rows.append(sorted(candidates))
        return rows

    def _letters_needed(self, length: int) -> Any:
        """For a lead key of ``length`` letters, the fewest letters in common with each account key at which
        WRatio's bound reaches the weak threshold (more than the shorter key has: never). Worked out once
        per length."""
        if length not in self._needed_by_length:
            common = np.arange(length + 2, dtype=np.float64)[:, np.newaxis]
            reaches = _wratio_bound(common, float(length), self._lengths[np.newaxis, :]) >= self.weak - _SLACK
            self._needed_by_length[length] = np.where(reaches.any(axis=0), reaches.argmax(axis=0), length + 2)
        return self._needed_by_length[length]


def _bound_applies(key: str) -> bool:
    """Whether ``_wratio_bound`` holds for this key: company_key's form, no word twice (WRatio's token
    set score drops repeated words, which the letter count does not see)."""
    words = key.split(" ")
    return bool(_PLAIN_KEY.fullmatch(key)) and len(set(words)) == len(words)


def _wratio_bound(common: Any, lead_lengths: Any, account_lengths: Any) -> Any:
    """An upper bound of WRatio for keys that share no word, from their lengths and the number of letters
    they have in common (``common``); arrays broadcast.

    WRatio is the largest of: ratio; when the longer key is under 1.5 times the shorter, 0.95 × the token
    sort and token set ratios; otherwise 0.9 (0.6 beyond 8 times) × partial ratio and 0.95 × that × partial
    token ratio. Without a shared word, each is 2·LCS / (length + length) over strings made of the keys'
    letters: for the ratios those strings have the keys' full lengths, so at most 200·c / (L + N); the
    partial ones compare the shorter (length m) with a piece of the longer no longer than m, so at most
    200·c / (m + c).
    """
    shorter = np.minimum(lead_lengths, account_lengths)
    longer = np.maximum(lead_lengths, account_lengths)
    ratio = 200.0 * common / (lead_lengths + account_lengths)
    length_ratio = longer / shorter
    scale = np.where(length_ratio <= 8.0, 0.9, 0.6)
    partial = np.where(length_ratio >= 1.5, scale * 200.0 * common / (shorter + common), 0.0)
    return np.maximum(ratio, partial)
