"""API-key authentication for intake sources: ``Authorization: Token <key>``."""

from dataclasses import dataclass

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from routing.models import ApiKey
from routing.services import apikey_authenticate


@dataclass(frozen=True)
class IntakeClient:
    """The requester behind an API key: a system, not a person.

    It can post leads and read the leads it posted; it is never a user, so no
    page or admin permission applies to it.
    """

    api_key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False

    @property
    def pk(self) -> int:
        return self.api_key.pk

    def __str__(self) -> str:
        return f"intake source {self.api_key.name}"


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
