"""Business-time arithmetic: pure tests, no database.

Expected instants are written out in UTC, worked out by hand from the rules in
``sla.calendar``'s docstring. Berlin is UTC+1 in winter (CET) and UTC+2 in
summer (CEST); New York is UTC-5 (EST) and UTC-4 (EDT). In 2026 Europe switches
on 29 March and 25 October, the US on 8 March and 1 November.
"""

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sla.calendar import (
    CalendarSpec,
    WeeklyWindow,
    add_business_time,
    business_time_between,
    is_open,
    next_open,
    open_intervals,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def weekdays(start: time, end: time) -> tuple[WeeklyWindow, ...]:
    return tuple(WeeklyWindow(weekday, start, end) for weekday in range(5))


def every_day(start: time, end: time) -> tuple[WeeklyWindow, ...]:
    return tuple(WeeklyWindow(weekday, start, end) for weekday in range(7))


BERLIN_OFFICE = CalendarSpec("Europe/Berlin", weekdays(time(9), time(18)))
BAVARIAN_OFFICE = CalendarSpec("Europe/Berlin", weekdays(time(9), time(18)), "DE", "BY")
NIGHT_DESK = CalendarSpec("Europe/Berlin", weekdays(time(22), time(6)))
BAVARIAN_NIGHT_DESK = CalendarSpec("Europe/Berlin", weekdays(time(22), time(6)), "DE", "BY")
BERLIN_EARLY_HOURS = CalendarSpec("Europe/Berlin", every_day(time(0), time(6)))
BERLIN_NINE_TO_FIVE = CalendarSpec("Europe/Berlin", weekdays(time(9), time(17)))
NEW_YORK_EARLY_HOURS = CalendarSpec("America/New_York", every_day(time(0), time(6)))
NEW_YORK_NINE_TO_FIVE = CalendarSpec("America/New_York", weekdays(time(9), time(17)), "US", "CA")
NEW_YORK_WEEKEND_NIGHTS = CalendarSpec("America/New_York", (WeeklyWindow(5, time(22), time(6)),))
BERLIN_ALWAYS = CalendarSpec("Europe/Berlin", ())


# Ordinary office hours


def test_lead_before_opening_is_due_target_after_opening():
    # Tuesday 07:00 in Berlin (05:00 UTC): the clock starts at 09:00 (07:00 UTC).
    arrived = datetime(2026, 6, 2, 7, 0, tzinfo=BERLIN)

    assert add_business_time(BERLIN_OFFICE, arrived, 60 * MINUTE) == utc(2026, 6, 2, 8, 0)


def test_late_friday_lead_is_due_on_monday_morning():
    # Friday 17:30: 30 minutes on Friday, 30 more from Monday 09:00 CEST.
    arrived = datetime(2026, 6, 5, 17, 30, tzinfo=BERLIN)

    assert add_business_time(BERLIN_OFFICE, arrived, 60 * MINUTE) == utc(2026, 6, 8, 7, 30)


def test_target_running_out_at_closing_time_is_due_at_closing_time():
    arrived = datetime(2026, 6, 5, 17, 0, tzinfo=BERLIN)

    assert add_business_time(BERLIN_OFFICE, arrived, 60 * MINUTE) == utc(2026, 6, 5, 16, 0)


def test_zero_amount_is_next_opening():
    saturday = datetime(2026, 6, 6, 12, 0, tzinfo=BERLIN)

    assert add_business_time(BERLIN_OFFICE, saturday, timedelta(0)) == utc(2026, 6, 8, 7, 0)
    assert next_open(BERLIN_OFFICE, saturday) == utc(2026, 6, 8, 7, 0)


def test_next_open_while_open_is_the_same_instant_in_utc():
    tuesday_noon = datetime(2026, 6, 2, 12, 0, tzinfo=BERLIN)

    opened = next_open(BERLIN_OFFICE, tuesday_noon)

    assert opened == utc(2026, 6, 2, 10, 0)
    assert opened.tzinfo is UTC


def test_window_start_is_open_and_window_end_is_closed():
    assert is_open(BERLIN_OFFICE, datetime(2026, 6, 2, 9, 0, tzinfo=BERLIN))
    assert not is_open(BERLIN_OFFICE, datetime(2026, 6, 2, 8, 59, 59, 999999, tzinfo=BERLIN))
    assert is_open(BERLIN_OFFICE, datetime(2026, 6, 2, 17, 59, 59, 999999, tzinfo=BERLIN))
    assert not is_open(BERLIN_OFFICE, datetime(2026, 6, 2, 18, 0, tzinfo=BERLIN))
    assert not is_open(BERLIN_OFFICE, datetime(2026, 6, 6, 12, 0, tzinfo=BERLIN))


def test_business_time_between_counts_only_open_time():
    # Friday 16:00 to Monday 10:00: two hours on Friday, one on Monday.
    friday = datetime(2026, 6, 5, 16, 0, tzinfo=BERLIN)
    monday = datetime(2026, 6, 8, 10, 0, tzinfo=BERLIN)

    assert business_time_between(BERLIN_OFFICE, friday, monday) == 3 * HOUR
    assert business_time_between(BERLIN_OFFICE, monday, friday) == -3 * HOUR
    assert business_time_between(BERLIN_OFFICE, friday, friday) == timedelta(0)


def test_breach_in_business_seconds_ignores_the_weekend():
    due = utc(2026, 6, 5, 15, 59, 30)  # Friday 17:59:30 CEST
    now = utc(2026, 6, 8, 7, 0, 45)  # Monday 09:00:45 CEST

    assert business_time_between(BERLIN_OFFICE, due, now).total_seconds() == 75


def test_open_intervals_are_clipped_and_in_utc():
    start = datetime(2026, 6, 5, 12, 0, tzinfo=BERLIN)
    end = datetime(2026, 6, 8, 10, 0, tzinfo=BERLIN)

    assert list(open_intervals(BERLIN_OFFICE, start, end)) == [
        (utc(2026, 6, 5, 10, 0), utc(2026, 6, 5, 16, 0)),
        (utc(2026, 6, 8, 7, 0), utc(2026, 6, 8, 8, 0)),
    ]
    assert list(open_intervals(BERLIN_OFFICE, end, start)) == []


def test_open_intervals_merge_adjacent_and_overlapping_windows():
    spec = CalendarSpec(
        "Europe/Berlin",
        (
            WeeklyWindow(0, time(9), time(12)),
            WeeklyWindow(0, time(12), time(14)),
            WeeklyWindow(0, time(13), time(15)),
            WeeklyWindow(0, time(16), time(17)),
        ),
    )
    monday = datetime(2026, 6, 8, 0, 0, tzinfo=BERLIN)

    assert list(open_intervals(spec, monday, monday + timedelta(days=1))) == [
        (utc(2026, 6, 8, 7, 0), utc(2026, 6, 8, 13, 0)),
        (utc(2026, 6, 8, 14, 0), utc(2026, 6, 8, 15, 0)),
    ]
    # Overlap is counted once.
    assert business_time_between(spec, monday, monday + timedelta(days=1)) == 7 * HOUR


# Holidays and closed dates


def test_bavarian_holiday_is_skipped():
    # Corpus Christi (Thursday 4 June 2026) is a holiday in Bavaria.
    wednesday_late = datetime(2026, 6, 3, 17, 30, tzinfo=BERLIN)

    assert add_business_time(BAVARIAN_OFFICE, wednesday_late, 60 * MINUTE) == utc(2026, 6, 5, 7, 30)
    assert not is_open(BAVARIAN_OFFICE, datetime(2026, 6, 4, 12, 0, tzinfo=BERLIN))


def test_holiday_of_another_subdivision_does_not_close():
    # Corpus Christi is not a holiday in Berlin (the state) nor nationwide.
    wednesday_late = datetime(2026, 6, 3, 17, 30, tzinfo=BERLIN)
    berlin_state = CalendarSpec("Europe/Berlin", weekdays(time(9), time(18)), "DE", "BE")
    germany = CalendarSpec("Europe/Berlin", weekdays(time(9), time(18)), "DE")

    assert add_business_time(berlin_state, wednesday_late, 60 * MINUTE) == utc(2026, 6, 4, 7, 30)
    assert add_business_time(germany, wednesday_late, 60 * MINUTE) == utc(2026, 6, 4, 7, 30)


def test_christmas_eve_is_open_and_christmas_is_closed_in_bavaria():
    # 24 December is a working day; 25 (Friday) and 26 December are holidays.
    christmas_eve_late = datetime(2026, 12, 24, 17, 30, tzinfo=BERLIN)

    assert is_open(BAVARIAN_OFFICE, datetime(2026, 12, 24, 10, 0, tzinfo=BERLIN))
    assert add_business_time(BAVARIAN_OFFICE, christmas_eve_late, 60 * MINUTE) == utc(2026, 12, 28, 8, 30)


def test_new_years_day_across_the_year_boundary():
    # Thursday 31 December 17:30 CET; Friday 1 January 2027 is a holiday.
    new_years_eve_late = datetime(2026, 12, 31, 17, 30, tzinfo=BERLIN)

    assert add_business_time(BAVARIAN_OFFICE, new_years_eve_late, 60 * MINUTE) == utc(2027, 1, 4, 8, 30)


def test_custom_closed_date_is_skipped():
    # Closed on Monday 8 June for a company event: Friday's lead waits until Tuesday.
    spec = CalendarSpec("Europe/Berlin", weekdays(time(9), time(18)), closed_dates=frozenset({date(2026, 6, 8)}))
    friday_late = datetime(2026, 6, 5, 17, 30, tzinfo=BERLIN)

    assert add_business_time(spec, friday_late, 60 * MINUTE) == utc(2026, 6, 9, 7, 30)


def test_calendar_closed_for_good_raises():
    closed = frozenset(date(2026, 1, 1) + timedelta(days=n) for n in range(500))
    spec = CalendarSpec("Europe/Berlin", weekdays(time(9), time(18)), closed_dates=closed)
    start = utc(2026, 1, 1, 0, 0)

    with pytest.raises(ValueError, match="no open time"):
        next_open(spec, start)
    with pytest.raises(ValueError, match="no open time"):
        add_business_time(spec, start, HOUR)
    # A bounded question has an answer all the same. The closure ends on 15 May 2027,
    # then 11 weekdays of May (17–21, 24–28 and 31) are 99 open hours.
    assert business_time_between(spec, start, utc(2027, 5, 1, 0, 0)) == timedelta(0)
    assert business_time_between(spec, start, utc(2027, 6, 1, 0, 0)) == 99 * HOUR
    assert not is_open(spec, utc(2026, 6, 1, 10, 0))


# Hours past midnight


def test_overnight_desk_runs_into_the_next_day():
    # Tuesday 23:00 CEST + 3 hours of the 22:00–06:00 desk: Wednesday 02:00 CEST.
    tuesday_night = datetime(2026, 6, 2, 23, 0, tzinfo=BERLIN)

    assert add_business_time(NIGHT_DESK, tuesday_night, 3 * HOUR) == utc(2026, 6, 3, 0, 0)


def test_overnight_desk_early_morning_belongs_to_the_previous_nights_window():
    # Tuesday 05:00: one hour left of Monday night's shift, two more from Tuesday 22:00.
    tuesday_morning = datetime(2026, 6, 2, 5, 0, tzinfo=BERLIN)

    assert is_open(NIGHT_DESK, tuesday_morning)
    assert add_business_time(NIGHT_DESK, tuesday_morning, 3 * HOUR) == utc(2026, 6, 2, 22, 0)
    # Monday 03:00 is closed: Sunday has no night shift.
    assert not is_open(NIGHT_DESK, datetime(2026, 6, 1, 3, 0, tzinfo=BERLIN))
    # Saturday 03:00 is open: Friday night's shift runs into Saturday.
    assert is_open(NIGHT_DESK, datetime(2026, 6, 6, 3, 0, tzinfo=BERLIN))


def test_holiday_closes_the_shift_that_starts_on_it_not_the_one_running_into_it():
    # Wednesday night's shift runs into Corpus Christi morning; Thursday night's does not run.
    assert is_open(BAVARIAN_NIGHT_DESK, datetime(2026, 6, 4, 3, 0, tzinfo=BERLIN))
    assert not is_open(BAVARIAN_NIGHT_DESK, datetime(2026, 6, 4, 23, 0, tzinfo=BERLIN))
    assert not is_open(BAVARIAN_NIGHT_DESK, datetime(2026, 6, 5, 3, 0, tzinfo=BERLIN))
    # Wednesday 23:00 + 8 hours: 7 until Thursday 06:00, then 1 from Friday 22:00 CEST.
    wednesday_night = datetime(2026, 6, 3, 23, 0, tzinfo=BERLIN)
    assert add_business_time(BAVARIAN_NIGHT_DESK, wednesday_night, 8 * HOUR) == utc(2026, 6, 5, 21, 0)


def test_twenty_four_hour_window():
    spec = CalendarSpec("Europe/Berlin", (WeeklyWindow(2, time(8), time(8)),))
    wednesday = datetime(2026, 6, 3, 7, 0, tzinfo=BERLIN)

    assert list(open_intervals(spec, wednesday, wednesday + timedelta(days=2))) == [
        (utc(2026, 6, 3, 6, 0), utc(2026, 6, 4, 6, 0)),
    ]


# Daylight-saving transitions


def test_berlin_spring_forward_early_hours_are_five_real_hours():
    # Sunday 29 March 00:00 CET (23:00 UTC) to 06:00 CEST (04:00 UTC).
    saturday = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
    monday = datetime(2026, 3, 30, 0, 0, tzinfo=BERLIN)

    assert list(open_intervals(BERLIN_EARLY_HOURS, saturday, monday)) == [
        (utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 4, 0)),
    ]
    assert business_time_between(BERLIN_EARLY_HOURS, saturday, monday) == 5 * HOUR
    assert add_business_time(BERLIN_EARLY_HOURS, saturday, 4 * HOUR) == utc(2026, 3, 29, 3, 0)
    assert add_business_time(BERLIN_EARLY_HOURS, saturday, 6 * HOUR) == utc(2026, 3, 29, 23, 0)


def test_berlin_fall_back_early_hours_are_seven_real_hours():
    # Sunday 25 October 00:00 CEST (22:00 UTC on Saturday) to 06:00 CET (05:00 UTC).
    saturday = datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)
    monday = datetime(2026, 10, 26, 0, 0, tzinfo=BERLIN)

    assert list(open_intervals(BERLIN_EARLY_HOURS, saturday, monday)) == [
        (utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 5, 0)),
    ]
    assert business_time_between(BERLIN_EARLY_HOURS, saturday, monday) == 7 * HOUR
    # The repeated hour is open both times round.
    assert is_open(BERLIN_EARLY_HOURS, utc(2026, 10, 25, 0, 30))  # 02:30 CEST
    assert is_open(BERLIN_EARLY_HOURS, utc(2026, 10, 25, 1, 30))  # 02:30 CET
    assert add_business_time(BERLIN_EARLY_HOURS, saturday, 6 * HOUR) == utc(2026, 10, 25, 4, 0)


def test_berlin_office_days_across_both_transitions():
    # Friday 16:00 CET + 2 hours: 1 on Friday, 1 from Monday 09:00 CEST.
    before_spring = datetime(2026, 3, 27, 16, 0, tzinfo=BERLIN)
    assert add_business_time(BERLIN_NINE_TO_FIVE, before_spring, 2 * HOUR) == utc(2026, 3, 30, 8, 0)
    # Friday 16:00 CEST + 2 hours: Monday 10:00 CET.
    before_autumn = datetime(2026, 10, 23, 16, 0, tzinfo=BERLIN)
    assert add_business_time(BERLIN_NINE_TO_FIVE, before_autumn, 2 * HOUR) == utc(2026, 10, 26, 9, 0)
    # An office day on the spring-forward Sunday is still the full 10 hours.
    sunday_office = CalendarSpec("Europe/Berlin", (WeeklyWindow(6, time(8), time(18)),))
    sunday = datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
    assert business_time_between(sunday_office, sunday, sunday + timedelta(days=1)) == 10 * HOUR


def test_new_york_spring_forward_early_hours_are_five_real_hours():
    # Sunday 8 March 00:00 EST (05:00 UTC) to 06:00 EDT (10:00 UTC).
    saturday = datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK)
    monday = datetime(2026, 3, 9, 0, 0, tzinfo=NEW_YORK)

    assert list(open_intervals(NEW_YORK_EARLY_HOURS, saturday, monday)) == [
        (utc(2026, 3, 8, 5, 0), utc(2026, 3, 8, 10, 0)),
    ]
    assert business_time_between(NEW_YORK_EARLY_HOURS, saturday, monday) == 5 * HOUR


def test_new_york_fall_back_early_hours_are_seven_real_hours():
    # Sunday 1 November 00:00 EDT (04:00 UTC) to 06:00 EST (11:00 UTC).
    saturday = datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK)
    monday = datetime(2026, 11, 2, 0, 0, tzinfo=NEW_YORK)

    assert list(open_intervals(NEW_YORK_EARLY_HOURS, saturday, monday)) == [
        (utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 11, 0)),
    ]
    assert business_time_between(NEW_YORK_EARLY_HOURS, saturday, monday) == 7 * HOUR


def test_new_york_overnight_window_across_both_transitions():
    # Saturday 22:00 EST (03:00 UTC) to Sunday 06:00 EDT (10:00 UTC): 7 hours.
    march = datetime(2026, 3, 7, 0, 0, tzinfo=NEW_YORK)
    assert list(open_intervals(NEW_YORK_WEEKEND_NIGHTS, march, march + timedelta(days=3))) == [
        (utc(2026, 3, 8, 3, 0), utc(2026, 3, 8, 10, 0)),
    ]
    # Saturday 22:00 EDT (02:00 UTC) to Sunday 06:00 EST (11:00 UTC): 9 hours.
    october = datetime(2026, 10, 31, 0, 0, tzinfo=NEW_YORK)
    assert list(open_intervals(NEW_YORK_WEEKEND_NIGHTS, october, october + timedelta(days=3))) == [
        (utc(2026, 11, 1, 2, 0), utc(2026, 11, 1, 11, 0)),
    ]


def test_new_york_office_days_across_both_transitions():
    # Friday 16:00 EST + 2 hours: Monday 10:00 EDT.
    before_spring = datetime(2026, 3, 6, 16, 0, tzinfo=NEW_YORK)
    assert add_business_time(NEW_YORK_NINE_TO_FIVE, before_spring, 2 * HOUR) == utc(2026, 3, 9, 14, 0)
    # Friday 16:00 EDT + 2 hours: Monday 10:00 EST.
    before_autumn = datetime(2026, 10, 30, 16, 0, tzinfo=NEW_YORK)
    assert add_business_time(NEW_YORK_NINE_TO_FIVE, before_autumn, 2 * HOUR) == utc(2026, 11, 2, 15, 0)


def test_wall_time_in_the_spring_gap_maps_to_the_jump():
    # 02:30 does not exist on 29 March in Berlin: the window opens at 03:00 CEST (01:00 UTC).
    spec = CalendarSpec("Europe/Berlin", (WeeklyWindow(6, time(2, 30), time(4)),))
    sunday = datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
    assert list(open_intervals(spec, sunday, sunday + timedelta(days=1))) == [
        (utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0)),
    ]
    # A window wholly inside the gap has no time in it that day.
    inside_gap = CalendarSpec("Europe/Berlin", (WeeklyWindow(6, time(2, 15), time(2, 45)),))
    assert list(open_intervals(inside_gap, sunday, sunday + timedelta(days=1))) == []
    # A window ending in the gap closes at the jump: 00:00 CET to 03:00 CEST is 2 real hours.
    ends_in_gap = CalendarSpec("Europe/Berlin", (WeeklyWindow(6, time(0), time(2, 30)),))
    assert business_time_between(ends_in_gap, sunday, sunday + timedelta(days=1)) == 2 * HOUR


def test_ambiguous_wall_time_is_its_first_occurrence():
    # 02:30 happens twice on 25 October in Berlin; both ends use the first (CEST, 00:30 UTC).
    sunday = datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN)
    ends_in_fold = CalendarSpec("Europe/Berlin", (WeeklyWindow(6, time(0), time(2, 30)),))
    assert list(open_intervals(ends_in_fold, sunday, sunday + timedelta(days=1))) == [
        (utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 0, 30)),
    ]
    starts_in_fold = CalendarSpec("Europe/Berlin", (WeeklyWindow(6, time(2, 30), time(4)),))
    assert list(open_intervals(starts_in_fold, sunday, sunday + timedelta(days=1))) == [
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3, 0)),
    ]
    # 01:30 happens twice on 1 November in New York; the first is 01:30 EDT (05:30 UTC).
    new_york = CalendarSpec("America/New_York", (WeeklyWindow(6, time(1, 30), time(3)),))
    sunday_ny = datetime(2026, 11, 1, 0, 0, tzinfo=NEW_YORK)
    assert list(open_intervals(new_york, sunday_ny, sunday_ny + timedelta(days=1))) == [
        (utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 8, 0)),
    ]


# Around the clock


def test_always_open_is_plain_arithmetic_even_across_dst():
    start = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)  # 11:00 UTC
    amount = timedelta(days=3, minutes=5, seconds=7)

    assert is_open(BERLIN_ALWAYS, start)
    assert add_business_time(BERLIN_ALWAYS, start, amount) == utc(2026, 3, 31, 11, 5, 7)
    assert business_time_between(BERLIN_ALWAYS, start, utc(2026, 3, 31, 11, 5, 7)) == amount
    assert list(open_intervals(BERLIN_ALWAYS, start, utc(2026, 3, 31, 11, 0))) == [
        (utc(2026, 3, 28, 11, 0), utc(2026, 3, 31, 11, 0)),
    ]


def test_always_open_still_closes_on_holidays():
    spec = CalendarSpec("Europe/Berlin", (), "DE", "BY")
    # Christmas Day from 00:00 CET (23:00 UTC on the 24th) until the 27th at 00:00 CET.
    assert not is_open(spec, datetime(2026, 12, 25, 12, 0, tzinfo=BERLIN))
    assert next_open(spec, datetime(2026, 12, 25, 12, 0, tzinfo=BERLIN)) == utc(2026, 12, 26, 23, 0)


# Input checks


def test_unknown_time_zone_is_rejected():
    with pytest.raises(ValueError, match="Unknown time zone 'Mars/Olympus_Mons'"):
        CalendarSpec("Mars/Olympus_Mons", ())
    with pytest.raises(ValueError, match="Unknown time zone"):
        CalendarSpec("", ())


def test_unknown_holiday_country_and_subdivision_are_rejected():
    with pytest.raises(ValueError, match="Unknown holiday country 'XX'"):
        CalendarSpec("Europe/Berlin", (), "XX")
    with pytest.raises(ValueError, match="Unknown holiday subdivision 'ZZ' for DE"):
        CalendarSpec("Europe/Berlin", (), "DE", "ZZ")
    with pytest.raises(ValueError, match="needs a holiday country"):
        CalendarSpec("Europe/Berlin", (), "", "BY")


def test_weekday_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="Weekday must be 0"):
        WeeklyWindow(7, time(9), time(17))
    with pytest.raises(ValueError, match="Weekday must be 0"):
        WeeklyWindow(-1, time(9), time(17))


def test_naive_datetimes_are_rejected():
    naive = datetime(2026, 6, 2, 9, 0)
    aware = utc(2026, 6, 2, 9, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(BERLIN_OFFICE, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_open(BERLIN_OFFICE, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_time(BERLIN_OFFICE, naive, HOUR)
    with pytest.raises(ValueError, match="timezone-aware"):
        business_time_between(BERLIN_OFFICE, aware, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        open_intervals(BERLIN_OFFICE, naive, aware)


def test_negative_amount_is_rejected():
    with pytest.raises(ValueError, match="must not be negative"):
        add_business_time(BERLIN_OFFICE, utc(2026, 6, 2, 9, 0), -MINUTE)


# Properties

SPECS = [
    BAVARIAN_OFFICE,
    BAVARIAN_NIGHT_DESK,
    BERLIN_EARLY_HOURS,
    NEW_YORK_EARLY_HOURS,
    NEW_YORK_NINE_TO_FIVE,
    NEW_YORK_WEEKEND_NIGHTS,
    BERLIN_ALWAYS,
    # Ends in and around the DST gaps and folds of both zones.
    CalendarSpec("Europe/Berlin", every_day(time(2, 30), time(2, 15))),
    CalendarSpec(
        "America/New_York",
        (
            WeeklyWindow(6, time(1, 30), time(1, 45)),
            WeeklyWindow(6, time(2, 15), time(3)),
            *weekdays(time(23), time(1)),
        ),
        closed_dates=frozenset({date(2026, 3, 9), date(2026, 11, 2)}),
    ),
]

instants = st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2027, 1, 31), timezones=st.just(UTC)).map(
    lambda value: value.astimezone(UTC)
)
amounts = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10))


@settings(max_examples=300, deadline=None)
@given(spec=st.sampled_from(SPECS), start=instants, amount=amounts)
def test_business_time_between_inverts_add_business_time(spec, start, amount):
    due = add_business_time(spec, start, amount)

    assert due >= start
    assert business_time_between(spec, start, due) == amount
    assert business_time_between(spec, due, start) == -amount


@settings(max_examples=200, deadline=None)
@given(spec=st.sampled_from(SPECS), start=instants, length=st.timedeltas(timedelta(0), timedelta(days=15)))
def test_open_intervals_are_sorted_disjoint_and_sum_to_business_time(spec, start, length):
    end = start + length
    intervals = list(open_intervals(spec, start, end))

    for (_, end_before), (start_after, _) in pairwise(intervals):
        assert end_before < start_after
    for s, e in intervals:
        assert start <= s < e <= end
        assert is_open(spec, s)
        assert s.tzinfo is UTC
    assert sum((e - s for s, e in intervals), timedelta(0)) == business_time_between(spec, start, end)
