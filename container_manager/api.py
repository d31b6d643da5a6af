"""The JSON API for other services: submit a job, read its status and logs, cancel it.

Bearer-token authenticated (``CONTAINER_MANAGER["API_TOKENS"]``); described by ``openapi.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from container_manager import openapi, workflows
from container_manager.auth import AuthError, authenticate_api
from container_manager.logtext import is_truncated
from container_manager.models import ContainerJob, ExecutorHost

#: What a submit may say, mapped to ``create_job`` arguments.
SUBMIT_FIELDS = {
    "image", "command", "name", "description", "memory_limit", "cpu_limit", "timeout_seconds",
    "working_directory", "environment_template", "environment_vars", "network_configuration",
    "host", "priority", "max_attempts", "run_after", "depends_on", "array_size",
}  # fmt: skip
LIST_LIMIT = 100


def api_view(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
    """Authenticate the bearer token and turn bad input into a 400 naming the field."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        try:
            authenticate_api(request)
            return view(request, *args, **kwargs)
        except AuthError as exc:
            return JsonResponse({"error": exc.reason}, status=exc.status)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            return JsonResponse({"error": "invalid input", "fields": errors}, status=400)

    return wrapper


@api_view
@require_http_methods(["GET", "POST"])
def jobs_view(request: HttpRequest) -> JsonResponse:
    """GET: the latest jobs (``?status=``); POST: submit a job."""
    if request.method == "POST":
        job = _submit(request, _json_object(request.body))
        return JsonResponse(_job_json(request, job), status=201)
    jobs = ContainerJob.objects.select_related("docker_host").order_by("-created_at")
    jobs = jobs.prefetch_related("dependency_links")
    status = request.GET.get("status")
    if status:
        jobs = jobs.filter(status=status)
    return JsonResponse({"jobs": [_job_json(request, job) for job in jobs[:LIST_LIMIT]]})


@api_view
@require_GET
def job_view(request: HttpRequest, job_id: str) -> JsonResponse:
    """A job's status and results summary."""
    job = _job_or_none(job_id)
    return JsonResponse(_job_json(request, job)) if job else _not_found(job_id)


@api_view
@require_GET
def job_logs_view(request: HttpRequest, job_id: str) -> JsonResponse:
    """A job's stored stdout, stderr and timestamp-free output."""
    job = _job_or_none(job_id)
    if job is None:
        return _not_found(job_id)
    return JsonResponse(
        {
            "id": str(job.pk),
            "status": job.status,
            "stdout": job.stdout_log,
            "stderr": job.stderr_log,
            "clean_output": job.clean_output_processed,
            "truncated": is_truncated(job.stdout_log) or is_truncated(job.stderr_log),
        }
    )


@api_view
@require_POST
def job_cancel_view(request: HttpRequest, job_id: str) -> JsonResponse:
    """Ask for a job to be cancelled (202), or say it already finished (409)."""
    job = _job_or_none(job_id)
    if job is None:
        return _not_found(job_id)
    if not job.cancel():
        return JsonResponse({"error": f"job is already {job.status}"}, status=409)
    return JsonResponse(_job_json(request, job), status=202)


@require_GET
def openapi_view(request: HttpRequest) -> JsonResponse:
    """The OpenAPI 3 description of this API, with the server URL of this deployment."""
    root = request.build_absolute_uri(reverse("container_manager:api-jobs")).rsplit("jobs/", 1)[0]
    return JsonResponse(openapi.schema(server_url=root.rstrip("/")))


def _submit(request: HttpRequest, payload: dict[str, Any]) -> ContainerJob:
    unknown = sorted(set(payload) - SUBMIT_FIELDS)
    if unknown:
        raise ValidationError({name: [f"{name}: unknown field"] for name in unknown})
    fields = dict(payload)
    environment = fields.pop("environment_vars", None) or {}
    if not isinstance(environment, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in environment.items()
    ):
        raise ValidationError({"environment_vars": ["environment_vars: must map names to strings"]})
    host_name = fields.pop("host", None)
    if host_name is not None:
        fields["docker_host"] = _host(host_name)
    if "run_after" in fields:
        fields["run_after"] = _datetime("run_after", fields["run_after"])
    return ContainerJob.objects.create_job(
        image=fields.pop("image", ""), environment_vars=environment, **fields
    )


def _host(name: Any) -> ExecutorHost:
    host = ExecutorHost.objects.filter(name=str(name)).first()
    if host is None:
        raise ValidationError({"host": [f"host: no executor host named {name!r}"]})
    return host


def _datetime(field: str, value: Any) -> Any:
    parsed = parse_datetime(str(value)) if value else None
    if value and parsed is None:
        raise ValidationError({field: [f"{field}: not an ISO 8601 date-time"]})
    return parsed


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        raise ValidationError("the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ValidationError("the body must be a JSON object")
    return payload


def _job_or_none(job_id: str) -> ContainerJob | None:
    return ContainerJob.objects.select_related("docker_host").filter(pk=job_id).first()


def _not_found(job_id: str) -> JsonResponse:
    return JsonResponse({"error": f"no job {job_id}"}, status=404)


def _job_json(request: HttpRequest, job: ContainerJob) -> dict[str, Any]:
    def link(name: str) -> str:
        return request.build_absolute_uri(reverse(f"container_manager:{name}", args=[job.pk]))

    duration = job.duration
    return {
        "id": str(job.pk),
        "name": job.name,
        "status": job.status,
        "image": job.docker_image,
        "command": job.command,
        "host": job.docker_host.name,
        "exit_code": job.exit_code,
        "attempts": job.attempt_count,
        "last_error": job.last_error,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
        "duration_seconds": duration.total_seconds() if duration else None,
        **workflows.api_fields(job),
        "links": {
            "self": link("api-job"),
            "logs": link("api-job-logs"),
            "cancel": link("api-job-cancel"),
        },
    }
