"""URLs of the functions project: the admin and container_manager's endpoints under cm/."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("cm/", include("container_manager.urls")),
]
