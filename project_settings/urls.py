"""URL routes. The upload site and the API arrive with their issues; the admin is here from the start."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
