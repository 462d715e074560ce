"""Error answers: JSON under /api/, plain pages elsewhere, and never settings, environment or tracebacks.

Django's own 404/500 views render templates/404.html and templates/500.html for pages. API clients parse JSON
whatever went wrong, so a URL under /api/ that matches nothing, or an error Django handles outside DRF, is
answered in DRF's shape (``{"detail": ...}``) instead. Inside API views DRF answers 4xx as JSON itself;
``api_exception_handler`` adds the one case it would otherwise turn into a 500: a database that refuses
connections (or drops them), which is a 503 with Retry-After, so clients retry later instead of giving up or
hammering a full server.
"""

import logging
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

logger = logging.getLogger(__name__)

# Seconds a client should wait before retrying while the database is unavailable: long enough for a
# connection slot to free up, short enough that a web form's retry still feels immediate.
DATABASE_RETRY_AFTER_SECONDS = 5


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Server error: the request was not completed. It has been logged."}, status=500)
    return defaults.server_error(request)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus 503 with Retry-After when the database is unavailable.

    Other unexpected exceptions still propagate, so Django logs them with their traceback and ``handler500``
    answers JSON.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        request = context.get("request")
        logger.error(
            "Database unavailable while answering %s %s; answered 503.",
            getattr(request, "method", "?"),
            getattr(request, "path", "?"),
            exc_info=exc,
        )
        # As DRF does for its own errors: under ATOMIC_REQUESTS the request's transaction is rolled back.
        set_rollback()
        return Response(
            {"detail": "The database is not available right now. Nothing was stored; retry in a few seconds."},
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    return exception_handler(exc, context)
