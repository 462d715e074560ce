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
    """Requests made with one API key (an intake source)."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not isinstance(request.user, IntakeClient):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.api_key.pk}


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
