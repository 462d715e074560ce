from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from leadrouter.replay_views import ReplayView, replay_csv, replay_page, replay_result
from leadrouter.views import team_board
from routing.views import healthz

# JSON for unknown /api/ URLs and API server errors, plain pages elsewhere (see leadrouter/errors.py).
handler404 = "leadrouter.errors.handler404"
handler500 = "leadrouter.errors.handler500"

admin.site.site_header = "Lead Router"
admin.site.site_title = "Lead Router admin"
admin.site.index_title = "Coverage model"

urlpatterns = [
    # Signing in lands each person on their own page (see sla.views.LoginView).
    path("", RedirectView.as_view(pattern_name="login", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("", include("sla.urls_pages")),
    path("", include("routing.urls_pages")),
    path("", include("routing.urls_reports")),
    # The manager's team board combines all three apps, so the project serves it (see leadrouter/views.py).
    path("team/", team_board, name="team-board"),
    path("", include("routing.urls_team")),
    # Replay spans the coverage model and every app's leads, so the project serves it (leadrouter/replay_views.py).
    path("replay/", replay_page, name="replay"),
    path("replay/<int:run_id>/", replay_result, name="replay-result"),
    path("replay/<int:run_id>/changed.csv", replay_csv, name="replay-csv"),
    path("admin/", admin.site.urls),
    path("api/v1/routing/replay/", ReplayView.as_view(), name="api-replay"),
    path("api/v1/", include("routing.urls")),
    path("api/v1/", include("sla.urls")),
    # The schema and its docs are public on purpose: they describe the API and hold no data.
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file, so the page needs no inline script
    # (see CONTENT_SECURITY_POLICY).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
]
