"""Times stored as ISO 8601 text (in a routing receipt) shown like every other time on a page: in the zone the
reader sees times in, labelled."""

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def iso_local(value: object) -> object:
    """``2026-11-09T08:20:00+00:00`` as ``2026-11-09 09:20:00 CET`` for a reader in Berlin; anything that is not an
    ISO time with an offset is shown as it is."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if timezone.is_naive(moment):
        return value
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}"
