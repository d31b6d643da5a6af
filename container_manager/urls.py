"""URLs of container_manager: step and sweep push targets, and the JSON API.

Mount with ``path("cm/", include("container_manager.urls"))``.
"""

from django.urls import path

from container_manager import api, api_schedules, endpoints

app_name = "container_manager"

urlpatterns = [
    path("steps/<str:step>/", endpoints.step_view, name="step"),
    path("sweep/", endpoints.sweep_view, name="sweep"),
    path("api/jobs/", api.jobs_view, name="api-jobs"),
    path("api/jobs/<uuid:job_id>/", api.job_view, name="api-job"),
    path("api/jobs/<uuid:job_id>/logs/", api.job_logs_view, name="api-job-logs"),
    path("api/jobs/<uuid:job_id>/cancel/", api.job_cancel_view, name="api-job-cancel"),
    path("api/schedules/", api_schedules.schedules_view, name="api-schedules"),
    path("api/openapi.json", api.openapi_view, name="api-openapi"),
]
