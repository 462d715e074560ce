"""Which time zone a user reads times in.

Times are stored in UTC and shown in the reader's zone (``leadrouter.middleware`` activates it for each page):

1. a rep's own zone (``Rep.time_zone``), the one their working hours and time off are read in;
2. else the zone in the user's profile (``Profile.time_zone``), when set;
3. else, and for anyone signed out, the site default (``LEADROUTER_DEFAULT_TIME_ZONE``).
"""

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.auth import get_user_model

from territories.validators import time_zone_names

User = get_user_model()


def user_time_zone(*, user: Any) -> str:
    """The IANA name of the zone ``user`` reads times in, in at most one query."""
    default: str = settings.LEADROUTER_DEFAULT_TIME_ZONE
    if user is None or not user.is_authenticated:
        return default
    zones = User.objects.filter(pk=user.pk).values_list("rep__time_zone", "profile__time_zone").first()
    rep_zone, profile_zone = zones or (None, None)
    return rep_zone or profile_zone or default


def zone_info(name: str) -> ZoneInfo:
    """The zone called ``name``; the site default when no such zone exists (a row written past validation, or a
    zone dropped from the system's time zone data), so a page still renders."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.LEADROUTER_DEFAULT_TIME_ZONE)


def local_instant(wall: datetime, zone_name: str) -> datetime:
    """``wall``, a wall-clock time without an offset, in the zone called ``zone_name``, as an aware instant.

    ValueError says what is wrong: an unknown zone, or a time the zone skips (the hour the clocks jump over in
    spring). A time the zone repeats (the autumn hour) is its first occurrence."""
    if wall.tzinfo is not None:
        raise ValueError("Give a wall-clock time without an offset; the time zone says where it is.")
    if zone_name not in time_zone_names():
        raise ValueError(f"{zone_name} is not an IANA time zone; use a name such as Europe/Berlin.")
    zone = ZoneInfo(zone_name)
    instant = wall.replace(tzinfo=zone)
    # A skipped time does not survive the round trip through UTC.
    if instant.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        raise ValueError(f"{wall:%Y-%m-%d %H:%M} does not exist in {zone_name}: the clocks skip it.")
    return instant
