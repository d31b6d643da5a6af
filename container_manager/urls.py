"""URLs of container_manager: step, sweep and platform event push targets, the JSON API, metrics.

Mount with ``path("cm/", include("container_manager.urls"))``.
"""

from django.urls import path, re_path

from container_manager import api, api_schedules, endpoints, metrics

app_name = "container_manager"

urlpatterns = [
    path("steps/<str:step>/", endpoints.step_view, name="step"),
    path("sweep/", endpoints.sweep_view, name="sweep"),
    path("events/cloudrun/", endpoints.cloudrun_event_view, name="events-cloudrun"),
    path("api/jobs/", api.jobs_view, name="api-jobs"),
    path("api/jobs/<str:job_id>/", api.job_view, name="api-job"),
    path("api/jobs/<str:job_id>/logs/", api.job_logs_view, name="api-job-logs"),
    path("api/jobs/<str:job_id>/cancel/", api.job_cancel_view, name="api-job-cancel"),
    path("api/schedules/", api_schedules.schedules_view, name="api-schedules"),
    path("api/openapi.json", api.openapi_view, name="api-openapi"),
    path("metrics/", metrics.metrics_view, name="metrics"),
    re_path(r"^api/(?P<rest>.*)$", api.not_found_view, name="api-not-found"),
]
