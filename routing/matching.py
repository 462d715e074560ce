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

The index is loaded once per routing batch; matching a lead is then pure.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rapidfuzz import fuzz, process

from routing.standardize import company_key
from territories.models import Account, AccountDomain

SHORT_KEY = 4


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
        # Fuzzy matching is the costly step; one index serves a routing batch, where names repeat.
        self._by_name_cache: dict[str, AccountMatch] = {}

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
        if email_domain and not is_free_email:
            found = self._by_domain(email_domain)
            if found is not None:
                return AccountMatch(found[0], "email_domain", 100.0, matched_on=found[1])
        if website:
            found = self._by_domain(website)
            if found is not None:
                return AccountMatch(found[0], "website", 100.0, matched_on=found[1])
        return self._by_name(company_key(company) if company else "")

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
            self._by_name_cache[key] = self._fuzzy_by_name(key)
        return self._by_name_cache[key]

    def _fuzzy_by_name(self, key: str) -> AccountMatch:
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
        best = process.extractOne(key, self.names.keys(), scorer=fuzz.WRatio, score_cutoff=self.weak)
        if best is None:
            return AccountMatch()
        matched_key, score, _ = best
        if len(matched_key) < SHORT_KEY:
            return AccountMatch()
        account_id, name = self.names[matched_key]
        return AccountMatch(account_id, "company_name", float(score), weak=score < self.strong, matched_on=name)
