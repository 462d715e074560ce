"""Every page in the reader's own time zone.

Times are stored in UTC. For each request this middleware activates the zone of the signed-in user
(``territories.time_zones.user_time_zone``: a rep's own zone, else their profile's, else the site default), so
every ``{{ value }}`` and ``|date`` in a template, Django's forms and the admin read and write times in it, and
``base.html`` names it. A rep's working hours and time off are a different matter: a page showing them shows
them in the rep's zone, whoever reads it (``{{ value|timezone:rep.time_zone }}``).

The API is left in UTC: its clients parse ISO 8601 times, and one client must not see another offset because a
person with a different zone happens to be signed in in the same browser.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from territories.time_zones import user_time_zone, zone_info

API_PREFIX = "/api/"


class UserTimeZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        timezone.activate(zone_info(user_time_zone(user=getattr(request, "user", None))))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
