"""URL routes: the site at /, the API under /api/, the admin at /admin/."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import include, path
from django.views.defaults import bad_request, page_not_found, server_error
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ml_app import health
from ml_app.api.errors import json_not_found, json_server_error, refusal_from
from ml_app.metrics import metrics_view
from ml_app.views import refused

admin.site.site_header = "Deepfake detector administration"
admin.site.site_title = "Deepfake detector"


def favicon(request):
    """/favicon.ico for the pages that name no icon (the admin): a missing one logs an error on every page."""
    icon = (settings.BASE_DIR / "static" / "favicon.svg").read_bytes()
    response = HttpResponse(icon, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    path("health/", health.live, name="health-live"),
    path("health/ready/", health.ready, name="health-ready"),
    path("metrics", metrics_view, name="metrics"),
    path("api/v1/", include("ml_app.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("ml_app.urls")),
]


def handler404(request, exception):
    """JSON in the API's error shape under /api/, the site's page elsewhere."""
    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return page_not_found(request, exception)


def handler400(request, exception):
    """What still reaches Django as a bad request (ml_app.middleware answers the body's failures before): the
    refusal's own message in the one error shape, or the site's page."""
    refusal = refusal_from(exception)
    return refused(request, refusal) if refusal is not None else bad_request(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return json_server_error(request)
    return server_error(request)
