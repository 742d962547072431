"""URL routes: the site at /, the admin at /admin/."""

from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Deepfake detector administration"
admin.site.site_title = "Deepfake detector"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("ml_app.urls")),
]
