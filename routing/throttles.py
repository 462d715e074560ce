"""API rate limits: per API key, per signed-in user, and per address for anonymous calls.

Each throttle counts only its own kind of requester, so an API key's id and a user's id never share a
counter. The rates are ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (THROTTLE_RATE_* in the environment); over
the rate DRF answers 429 with Retry-After. The counters live in the default cache, so every web process on a
shared cache (CACHE_URL) counts together.
"""

from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from routing.authentication import IntakeClient


class _SettingsRateThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        # DRF copies the rates into a class attribute when the module is imported; reading them here
        # lets a changed setting (a test's override_settings) take effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class ApiKeyRateThrottle(_SettingsRateThrottle):
    """Requests made with one API key (an intake source).

    An intake source may post a hundred leads a second, so this count is kept in time slots rather than in
    DRF's list of every request's time: that list grows with the rate, and the default file cache pickles,
    compresses and rewrites all of it on every request (6,000 requests a minute cost more CPU than storing the
    lead). The window is cut into ``SLOTS`` slots, each holding how many requests it saw and when its last one
    came; a slot counts until that last request has left the window. A request is so remembered at most one
    slot (a sixtieth of the window) longer than DRF would remember it, never shorter: the limit is never looser.
    """

    scope = "api_key"
    # Not DRF's key: the stored value has another shape.
    cache_format = "throttle_%(scope)s_slots_%(ident)s"
    SLOTS = 60

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not isinstance(request.user, IntakeClient):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.api_key.pk}

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        # [slot, requests, last request's time], oldest first; a slot whose last request left the window is gone.
        self.slots: list[list[float]] = [
            slot for slot in self.cache.get(self.key, []) if slot[2] > self.now - self.duration
        ]
        if sum(slot[1] for slot in self.slots) >= self.num_requests:
            return self.throttle_failure()
        current = int(self.now * self.SLOTS // self.duration)
        if self.slots and self.slots[-1][0] == current:
            self.slots[-1][1] += 1
            self.slots[-1][2] = self.now
        else:
            self.slots.append([current, 1, self.now])
        self.cache.set(self.key, self.slots, self.duration)
        return True

    def wait(self) -> float | None:
        """Seconds until the oldest slot leaves the window, shared among the requests then allowed (as DRF's)."""
        remaining = self.duration - (self.now - self.slots[0][2]) if self.slots else self.duration
        available = self.num_requests - sum(slot[1] for slot in self.slots) + 1
        if available <= 0:
            return None
        return remaining / available


class UserRateThrottle(_SettingsRateThrottle):
    """Requests made by one signed-in person (the pages' calls, Swagger UI)."""

    scope = "user"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        if isinstance(user, IntakeClient) or not (user and user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.pk}


class AnonymousRateThrottle(_SettingsRateThrottle):
    """Anonymous requests, per client address (see TRUSTED_PROXY_COUNT for proxies)."""

    scope = "anon"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class FormPostRateThrottle(_SettingsRateThrottle):
    """Website form posts (``routing.form_posts``), per client address, whatever the form: a script hammering
    a form's public token is held back without slowing the API's own clients."""

    scope = "form"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
