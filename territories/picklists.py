"""Fixed picklists that routing depends on.

Standardization maps free-text input onto these values, and territory criteria
and rules may only name values from them, so a typo cannot create a segment that
never matches.
"""

from dataclasses import dataclass

INDUSTRIES: list[tuple[str, str]] = [
    ("agriculture", "Agriculture"),
    ("automotive", "Automotive"),
    ("banking", "Banking"),
    ("construction", "Construction"),
    ("consulting", "Consulting & Professional Services"),
    ("consumer_goods", "Consumer Goods"),
    ("education", "Education"),
    ("energy", "Energy & Utilities"),
    ("financial_services", "Financial Services"),
    ("government", "Government & Public Sector"),
    ("healthcare", "Healthcare"),
    ("hospitality", "Hospitality & Travel"),
    ("insurance", "Insurance"),
    ("logistics", "Transportation & Logistics"),
    ("manufacturing", "Manufacturing"),
    ("media", "Media & Entertainment"),
    ("nonprofit", "Non-profit"),
    ("pharma", "Pharma & Life Sciences"),
    ("real_estate", "Real Estate"),
    ("retail", "Retail & E-commerce"),
    ("software", "Software & Internet"),
    ("telecom", "Telecommunications"),
    ("other", "Other"),
]
INDUSTRY_CODES = frozenset(code for code, _ in INDUSTRIES)


@dataclass(frozen=True)
class SizeBand:
    code: str
    label: str
    min_employees: int
    max_employees: int | None  # None: no upper bound


SIZE_BANDS: list[SizeBand] = [
    SizeBand("1-10", "1–10 employees", 1, 10),
    SizeBand("11-50", "11–50 employees", 11, 50),
    SizeBand("51-200", "51–200 employees", 51, 200),
    SizeBand("201-1000", "201–1,000 employees", 201, 1000),
    SizeBand("1001-5000", "1,001–5,000 employees", 1001, 5000),
    SizeBand("5001+", "5,001+ employees", 5001, None),
]
SIZE_BAND_CODES = frozenset(band.code for band in SIZE_BANDS)
SIZE_BAND_CHOICES = [(band.code, band.label) for band in SIZE_BANDS]


def size_band_for(employees: int | None) -> str:
    """The band code for a head count, or "" when it is unknown."""
    if employees is None or employees < 1:
        return ""
    for band in SIZE_BANDS:
        if band.max_employees is None or employees <= band.max_employees:
            return band.code
    return ""
