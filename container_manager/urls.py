"""URLs of container_manager: step, sweep and platform event push targets, the JSON API, metrics.

Mount with ``path("cm/", include("container_manager.urls"))``. Each view's module is imported
at its first request, so a process that serves only the admin never loads the API. Every view
here answers a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` with a JSON 413 (``LazyView``).
"""

from typing import Any

from django.urls import path, re_path
from django.utils.module_loading import import_string

app_name = "container_manager"


class LazyView:
    """A view named by its dotted path, imported when it is first called or looked at.

    Attributes the middleware reads (``csrf_exempt`` …) are the view's own; those of a
    class-based view, which the URL resolver looks for on every pattern, are absent. A body
    whose length is over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` gets the JSON 413 of
    ``web.errors.too_large`` before the view runs, unread (the length Django itself checks
    when a view reads the body; none of these views takes a file upload).

    >>> view = LazyView("container_manager.web.endpoints.sweep_view")
    >>> (view.__module__, view.__name__, view.csrf_exempt)
    ('container_manager.web.endpoints', 'sweep_view', True)
    """

    def __init__(self, dotted: str):
        self.__module__, self.__name__ = dotted.rsplit(".", 1)
        self.__qualname__ = self.__name__
        self._dotted = dotted
        self._view: Any = None

    def _resolved(self) -> Any:
        if self._view is None:
            self._view = import_string(self._dotted)
        return self._view

    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        from container_manager.web import errors

        if errors.oversized(request):
            return errors.too_large()
        return self._resolved()(request, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("view_class", "view_initkwargs"):
            raise AttributeError(name)
        return getattr(self._resolved(), name)


urlpatterns = [
    path("steps/<str:step>/", LazyView("container_manager.web.endpoints.step_view"), name="step"),
    path("sweep/", LazyView("container_manager.web.endpoints.sweep_view"), name="sweep"),
    path(
        "events/cloudrun/",
        LazyView("container_manager.web.endpoints.cloudrun_event_view"),
        name="events-cloudrun",
    ),
    path("api/jobs/", LazyView("container_manager.web.api.jobs.jobs_view"), name="api-jobs"),
    path(
        "api/jobs/<str:job_id>/",
        LazyView("container_manager.web.api.jobs.job_view"),
        name="api-job",
    ),
    path(
        "api/jobs/<str:job_id>/logs/",
        LazyView("container_manager.web.api.jobs.job_logs_view"),
        name="api-job-logs",
    ),
    path(
        "api/jobs/<str:job_id>/cancel/",
        LazyView("container_manager.web.api.jobs.job_cancel_view"),
        name="api-job-cancel",
    ),
    path(
        "api/jobs/<str:job_id>/retry/",
        LazyView("container_manager.web.api.retry.job_retry_view"),
        name="api-job-retry",
    ),
    path(
        "api/schedules/",
        LazyView("container_manager.web.api.schedules.schedules_view"),
        name="api-schedules",
    ),
    path(
        "api/schedules/<str:schedule_id>/",
        LazyView("container_manager.web.api.schedules.schedule_view"),
        name="api-schedule",
    ),
    path(
        "api/schedules/<str:schedule_id>/run/",
        LazyView("container_manager.web.api.schedules.schedule_run_view"),
        name="api-schedule-run",
    ),
    path(
        "api/webhooks/",
        LazyView("container_manager.web.api.webhooks.webhooks_view"),
        name="api-webhooks",
    ),
    path(
        "api/webhooks/<str:webhook_id>/",
        LazyView("container_manager.web.api.webhooks.webhook_view"),
        name="api-webhook",
    ),
    path(
        "api/webhooks/<str:webhook_id>/rotate/",
        LazyView("container_manager.web.api.webhooks.webhook_rotate_view"),
        name="api-webhook-rotate",
    ),
    path(
        "api/workflows/",
        LazyView("container_manager.web.api.workflows.workflows_view"),
        name="api-workflows",
    ),
    path(
        "api/workflows/<str:workflow_id>/",
        LazyView("container_manager.web.api.workflows.workflow_view"),
        name="api-workflow",
    ),
    path(
        "api/workflows/<str:workflow_id>/cancel/",
        LazyView("container_manager.web.api.workflows.workflow_cancel_view"),
        name="api-workflow-cancel",
    ),
    path(
        "api/workflows/<str:workflow_id>/retry/",
        LazyView("container_manager.web.api.workflows.workflow_retry_view"),
        name="api-workflow-retry",
    ),
    path(
        "api/openapi.json",
        LazyView("container_manager.web.api.jobs.openapi_view"),
        name="api-openapi",
    ),
    path("metrics/", LazyView("container_manager.web.metrics.metrics_view"), name="metrics"),
    re_path(
        r"^api/(?P<rest>.*)$",
        LazyView("container_manager.web.api.jobs.not_found_view"),
        name="api-not-found",
    ),
]
