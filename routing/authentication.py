"""API-key authentication for intake sources: ``Authorization: Token <key>``."""

from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from routing.access import IntakeClient
from routing.models import ApiKey
from routing.services import apikey_authenticate


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[IntakeClient, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # Not ours: let other authenticators try.
        if len(header) != 2:
            raise AuthenticationFailed("Send the key as 'Authorization: Token <key>', with no spaces in the key.")
        try:
            raw_key = header[1].decode()
        except UnicodeError as error:
            raise AuthenticationFailed("The API key contains characters that are not allowed.") from error
        api_key = apikey_authenticate(raw_key=raw_key)
        if api_key is None:
            raise AuthenticationFailed("Unknown API key.")
        if api_key.is_revoked:
            raise AuthenticationFailed("This API key was revoked; ask RevOps for a new one.")
        return IntakeClient(api_key=api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) with a WWW-Authenticate header.
        return self.keyword


class ApiKeyScopes(BasePermission):
    """An API key must hold one of ``scopes``; people signing in are not scoped (their permissions and the
    selectors decide). The 403 names the first scope, the one the endpoint is meant for."""

    scopes: tuple[str, ...] = ()

    def has_permission(self, request: Request, view: Any) -> bool:
        client = request.user
        if not isinstance(client, IntakeClient):
            return True
        if any(client.api_key.has_scope(scope) for scope in self.scopes):
            return True
        self.message = f"This API key lacks the scope {self.scopes[0]}."
        return False


def scope_required(*scopes: str) -> type[ApiKeyScopes]:
    """A permission class for an endpoint an API key may call with any of ``scopes``."""
    return type("ApiKeyScopes", (ApiKeyScopes,), {"scopes": scopes})
