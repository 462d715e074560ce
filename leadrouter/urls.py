from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from routing.views import healthz

admin.site.site_header = "Lead Router"
admin.site.site_title = "Lead Router admin"
admin.site.index_title = "Coverage model"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("routing.urls")),
]
