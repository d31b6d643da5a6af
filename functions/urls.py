"""URLs of the functions project: the admin and container_manager's endpoints under cm/."""

from django.contrib import admin
from django.urls import include, path

# The admin index links to container_manager's dashboard.
admin.site.index_template = "admin/container_manager/site_index.html"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("cm/", include("container_manager.urls")),
]
