from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from routing.selectors import heartbeat_status


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and operators: the database answers, and
    whether a worker has run the periodic heartbeat recently. Reveals no data."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    worker = heartbeat_status()
    return JsonResponse({"database": "ok", "worker": {"ok": worker["ok"], "age_seconds": worker["age_seconds"]}})
