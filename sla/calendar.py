"""Business calendars and business-time arithmetic for SLAs (pure code, no ORM).

A ``CalendarSpec`` is weekly working hours in an IANA time zone, minus public
holidays (from the ``holidays`` package, by country and subdivision) and extra
closed dates. Everything else here is derived from the open intervals it
produces:

1. Windows. A ``WeeklyWindow`` belongs to the local date it starts on. When its
   end is not after its start it runs past midnight into the next day (22:00 to
   06:00); when end equals start it lasts 24 wall-clock hours. A spec without
   windows is open around the clock, as if every day had a 00:00 to 00:00
   window (holidays and closed dates still close their days).
2. Closed days. A holiday or closed date closes the windows that START on that
   local date. An overnight window that starts the evening before a holiday
   still runs into the holiday morning, and one that starts on the holiday
   evening does not run at all, even into the next (working) morning: a shift
   is worked or skipped as a whole.
3. Wall time to instant. Both ends of a window are local wall times on a local
   date; each maps to the earliest instant at which the local clock on that
   date reads that time or later. So an ambiguous time (the repeated hour
   after the clocks go back) is its first occurrence (``fold=0``) for starts
   and ends alike, and a time that does not exist (02:30 when the clocks jump
   from 02:00 to 03:00) is the instant the clocks jump, i.e. 03:00 after the
   gap. Hence 00:00 to 06:00 is 5 real hours on a spring-forward day, 7 on a
   fall-back day, and 08:00 to 18:00 stays 10.
4. Intervals. Day by day (never minute by minute) the windows starting on each
   local date become UTC intervals, sorted by start. They may overlap or touch;
   the functions below walk them with a cursor, so overlap is never counted
   twice. ``open_intervals`` merges them for display.
5. Arithmetic. ``add_business_time`` consumes open time from ``start`` until
   ``amount`` is used up (an amount that runs out exactly at a closing time
   gives that closing time); ``business_time_between`` sums open time in
   ``[start, end)``, so it is the inverse of ``add_business_time``. All
   datetimes in must be timezone-aware; all datetimes out are in UTC. When no
   open time turns up for 400 consecutive days, a search gives up with
   ``ValueError`` rather than loop for ever.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

__all__ = [
    "CalendarSpec",
    "WeeklyWindow",
    "add_business_time",
    "business_time_between",
    "is_open",
    "next_open",
    "open_intervals",
]

# A search for open time gives up after this many consecutive days without any.
SEARCH_HORIZON_DAYS = 400

ONE_DAY = timedelta(days=1)
ALL_DAY = time(0, 0)


@dataclass(frozen=True)
class WeeklyWindow:
    """Working hours on one weekday, in local wall-clock time.

    ``weekday`` is 0 for Monday to 6 for Sunday, the day the window starts on.
    ``end <= start`` means the window runs past midnight into the next day;
    ``end == start`` means 24 hours.
    """

    weekday: int
    start: time
    end: time

    def __post_init__(self) -> None:
        if isinstance(self.weekday, bool) or not isinstance(self.weekday, int) or not 0 <= self.weekday <= 6:
            raise ValueError(f"Weekday must be 0 (Monday) to 6 (Sunday), got {self.weekday!r}.")
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, time):
                raise ValueError(f"Window {name} must be a datetime.time, got {value!r}.")
            if value.tzinfo is not None:
                raise ValueError(f"Window {name} is a local wall-clock time and must not carry a time zone.")


@dataclass(frozen=True)
class CalendarSpec:
    """A business calendar: weekly windows in a time zone, minus holidays and closed dates."""

    time_zone: str
    windows: tuple[WeeklyWindow, ...]
    holiday_country: str = ""
    holiday_subdivision: str = ""
    closed_dates: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        # Callers building a spec from model rows often have lists; keep the spec hashable.
        object.__setattr__(self, "windows", tuple(self.windows))
        object.__setattr__(self, "closed_dates", frozenset(self.closed_dates))
        _zone(self.time_zone)
        for window in self.windows:
            if not isinstance(window, WeeklyWindow):
                raise ValueError(f"Windows must be WeeklyWindow instances, got {window!r}.")
        for closed in self.closed_dates:
            if not isinstance(closed, date) or isinstance(closed, datetime):
                raise ValueError(f"Closed dates must be datetime.date values, got {closed!r}.")
        _check_holiday_region(self.holiday_country, self.holiday_subdivision)


def is_open(spec: CalendarSpec, at: datetime) -> bool:
    """Whether ``at`` falls inside an open window (a window's start is open, its end is closed)."""
    at = _to_utc(at, "at")
    for start, end in _raw_intervals(spec, at, until=at):
        if start > at:
            break
        if start <= at < end:
            return True
    return False


def next_open(spec: CalendarSpec, at: datetime) -> datetime:
    """``at`` (in UTC) when the calendar is open then, else the next instant it opens.

    Raises ``ValueError`` when it does not open within 400 days.
    """
    at = _to_utc(at, "at")
    for start, end in _raw_intervals(spec, at):
        if end > at:
            return max(start, at)
    raise AssertionError("unreachable: the unbounded interval search ends only by raising")  # pragma: no cover


def add_business_time(spec: CalendarSpec, start: datetime, amount: timedelta) -> datetime:
    """The instant (in UTC) at which ``amount`` of open time has elapsed after ``start``.

    An amount of zero gives ``next_open(spec, start)``. Raises ``ValueError`` for a
    negative amount, or when the calendar stays closed for 400 days on the way.
    """
    start = _to_utc(start, "start")
    if amount < timedelta(0):
        raise ValueError(f"Business time to add must not be negative, got {amount}.")
    remaining = amount
    cursor = start
    for interval_start, interval_end in _raw_intervals(spec, start):
        if interval_end <= cursor:
            continue
        interval_start = max(interval_start, cursor)
        available = interval_end - interval_start
        if remaining <= available:
            return interval_start + remaining
        remaining -= available
        cursor = interval_end
    raise AssertionError("unreachable: the unbounded interval search ends only by raising")  # pragma: no cover


def business_time_between(spec: CalendarSpec, start: datetime, end: datetime) -> timedelta:
    """Open time in ``[start, end)``; negative (``-between(end, start)``) when ``end < start``."""
    start = _to_utc(start, "start")
    end = _to_utc(end, "end")
    if end < start:
        return -business_time_between(spec, end, start)
    return sum((e - s for s, e in _clipped(spec, start, end)), timedelta(0))


def open_intervals(spec: CalendarSpec, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The open stretches within ``[start, end)`` in UTC, in order, merged when they touch or overlap."""
    # Check the arguments now rather than on the first ``next()``.
    start = _to_utc(start, "start")
    end = _to_utc(end, "end")
    return _merged(_clipped(spec, start, end))


def _merged(intervals: Iterator[tuple[datetime, datetime]]) -> Iterator[tuple[datetime, datetime]]:
    current: tuple[datetime, datetime] | None = None
    for s, e in intervals:
        if current is not None and s <= current[1]:
            current = (current[0], max(current[1], e))
            continue
        if current is not None:
            yield current
        current = (s, e)
    if current is not None:
        yield current


def _clipped(spec: CalendarSpec, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Non-overlapping, non-empty open intervals clipped to ``[start, end)`` (UTC arguments)."""
    if end <= start:
        return
    cursor = start
    for s, e in _raw_intervals(spec, start, until=end):
        if s >= end:
            break
        if e <= cursor:
            continue
        s = max(s, cursor)
        e = min(e, end)
        yield s, e
        cursor = e


def _raw_intervals(
    spec: CalendarSpec, start: datetime, until: datetime | None = None
) -> Iterator[tuple[datetime, datetime]]:
    """Open intervals in UTC, sorted by start, from the windows that can reach ``start`` onwards.

    Intervals may overlap or touch. With ``until`` the walk stops after the local
    date of ``until``; without it, it raises ``ValueError`` after 400 consecutive
    days without open time.
    """
    zone = _zone(spec.time_zone)
    windows = spec.windows or tuple(WeeklyWindow(weekday, ALL_DAY, ALL_DAY) for weekday in range(7))
    by_weekday: dict[int, list[WeeklyWindow]] = {weekday: [] for weekday in range(7)}
    for window in windows:
        by_weekday[window.weekday].append(window)
    # A window is at most one day long, so the one that started the day before may still be open.
    day = start.astimezone(zone).date() - ONE_DAY
    last_day = until.astimezone(zone).date() if until is not None else None
    days_without_open_time = 0
    while last_day is None or day <= last_day:
        intervals = []
        if not _is_closed_day(spec, day):
            for window in by_weekday[day.weekday()]:
                window_start = _instant(zone, day, window.start)
                window_end = _instant(zone, day + ONE_DAY if window.end <= window.start else day, window.end)
                # A window inside a daylight-saving gap has no real time in it.
                if window_end > window_start:
                    intervals.append((window_start, window_end))
        if intervals:
            days_without_open_time = 0
            yield from sorted(intervals)
        else:
            days_without_open_time += 1
            if last_day is None and days_without_open_time > SEARCH_HORIZON_DAYS:
                raise ValueError(
                    f"The calendar has no open time in the {SEARCH_HORIZON_DAYS} days before {day.isoformat()}."
                )
        day += ONE_DAY


def _instant(zone: ZoneInfo, day: date, wall: time) -> datetime:
    """The earliest UTC instant at which the local clock on ``day`` reads ``wall`` or later.

    For an ambiguous wall time that is its first occurrence (``fold=0``); for a
    wall time in a daylight-saving gap it is the instant the clocks jump.
    """
    local = datetime.combine(day, wall, tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    # In a gap, fold=1 reads the wall time with the offset after the jump (an
    # instant before it) and fold=0 with the offset before it (an instant after
    # it). Bisect between them, to the second, for the instant the offset changes.
    before_offset = local.replace(fold=1).astimezone(UTC).astimezone(zone).utcoffset()
    low = math.floor(local.replace(fold=1).astimezone(UTC).timestamp())
    high = math.ceil(instant.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == before_offset:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _is_closed_day(spec: CalendarSpec, day: date) -> bool:
    if day in spec.closed_dates:
        return True
    if not spec.holiday_country:
        return False
    return day in _holiday_dates(spec.holiday_country, spec.holiday_subdivision, day.year)


@lru_cache(maxsize=256)
def _holiday_dates(country: str, subdivision: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdivision or None, years=year))


@lru_cache(maxsize=1)
def _supported_regions() -> dict[str, list[str]]:
    return holidays.list_supported_countries()


def holiday_regions_load() -> None:
    """Load the holiday countries and their subdivisions now rather than at the first calendar's check (it
    imports every country's module): for a process warming up before it serves (leadrouter/warmup.py)."""
    _supported_regions()


def _check_holiday_region(country: str, subdivision: str) -> None:
    if not country:
        if subdivision:
            raise ValueError(f"Holiday subdivision {subdivision!r} needs a holiday country.")
        return
    supported = _supported_regions()
    if country not in supported:
        raise ValueError(
            f"Unknown holiday country {country!r}: use an ISO 3166-1 alpha-2 code the holidays package supports, "
            "such as 'DE' or 'US'."
        )
    if subdivision and subdivision not in supported[country]:
        raise ValueError(
            f"Unknown holiday subdivision {subdivision!r} for {country}: "
            f"expected one of {', '.join(supported[country])}."
        )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"Unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'.") from None


def _to_utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {value!r}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got the naive {value.isoformat()}.")
    return value.astimezone(UTC)
