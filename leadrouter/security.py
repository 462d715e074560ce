"""Who is asking, as far as rate limits go: the client's address, and the answer to a locked-out login."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


def client_ip(request: HttpRequest) -> str:
    """The client's address: the TCP peer, or behind ``TRUSTED_PROXY_COUNT`` proxies the address the outermost
    of them saw.

    Each proxy appends the address it received the request from to X-Forwarded-For, so the trustworthy entries
    are the last ones; anything further left was written by the client and may be forged. DRF's throttles read
    the header the same way (``NUM_PROXIES`` is set to the same count), so the login lock-out and the API
    limits always agree on who the client is.
    """
    remote_addr = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies <= 0 or not forwarded:
        return remote_addr
    addresses = [address.strip() for address in forwarded.split(",") if address.strip()]
    if not addresses:
        return remote_addr
    return addresses[-min(proxies, len(addresses))]


def lockout_response(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """The page a locked-out login gets: 429, what happened, when to try again (also as Retry-After)."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    response = TemplateResponse(
        request,
        "registration/locked_out.html",
        {"failure_limit": settings.AXES_FAILURE_LIMIT, "cooloff_minutes": minutes},
        status=429,
    )
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response.render()
