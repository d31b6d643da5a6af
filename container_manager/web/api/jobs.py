"""The JSON API for other services: submit a job, read its status and logs, cancel it.

Bearer tokens: users' ``ApiToken`` or service ``API_TOKENS``; the body rules: ``rules.contract``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import HttpRequest, JsonResponse
from django.urls import Resolver404, resolve, reverse
from django.views.decorators.csrf import csrf_exempt

from container_manager.engine import timings, workflows
from container_manager.executors.exceptions import ExecutorError
from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost
from container_manager.models.idempotency import IdempotencyConflict
from container_manager.models.limits import QuotaExceeded
from container_manager.rules import contract, results
from container_manager.rules.idempotency import check_key
from container_manager.rules.logtext import read_offsets
from container_manager.web import errors, openapi, quotas
from container_manager.web.api import listing
from container_manager.web.auth import ApiCaller, AuthError, authenticate_api
from container_manager.web.errors import error as _error

logger = logging.getLogger(__name__)

#: The most rows of the schedules list (``api.schedules``); the jobs list pages (``listing``).
LIST_LIMIT = 100


def api_view(*methods: str) -> Callable[[Callable[..., JsonResponse]], Callable[..., JsonResponse]]:
    """Allow ``methods``, authenticate the caller, answer every failure as JSON.

    The view receives the ``ApiCaller`` after the request, once counted against
    the caller's requests per minute (``web.quotas``). Bad input is a 400 naming
    the field, a reused idempotency key a 409, a quota a 429 with ``Retry-After``,
    an unexpected error a logged 500 (a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``
    is the URLconf's 413). Every error body is bounded (``web.errors``).
    """

    def decorate(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method not in methods:
                response = _error(405, f"method {request.method} not allowed here")
                response["Allow"] = ", ".join(methods)
                return response
            try:
                caller = authenticate_api(request)
                quotas.count_request(caller)
                return view(request, caller, *args, **kwargs)
            except AuthError as exc:
                return _error(exc.status, exc.reason)
            except QuotaExceeded as exc:
                return quotas.refused(exc)
            except IdempotencyConflict as exc:
                return _error(409, "; ".join(exc.messages), fields=exc.message_dict)
            except ValidationError as exc:
                return errors.invalid(exc)
            except Exception:
                job = kwargs.get("job_id", "-")
                logger.exception("API %s %s failed (job %s)", request.method, request.path, job)
                return _error(500, "internal error; it was logged")

        return wrapper

    return decorate


@api_view("GET", "POST")
def jobs_view(request: HttpRequest, caller: ApiCaller) -> JsonResponse:
    """GET: a page of jobs, newest first (filters and cursor: ``listing``); POST: submit one."""
    if request.method == "POST":
        _require(caller, "add")
        key = idempotency_key(request)
        job = _submit(caller, json_object(request.body), idempotency_key=key)
        replayed = getattr(job, "replayed", False)
        return JsonResponse(_job_json(request, job), status=200 if replayed else 201)
    _require(caller, "view")
    jobs = _with_attempts(caller.visible(ContainerJob.objects.select_related("docker_host")))
    rows, next_cursor = listing.page(jobs, request.GET)
    return JsonResponse(
        {"jobs": [_job_json(request, job) for job in rows], "next_cursor": next_cursor}
    )


@api_view("GET")
def job_view(request: HttpRequest, caller: ApiCaller, job_id: str) -> JsonResponse:
    """A job's status and results summary."""
    _require(caller, "view")
    job = _job_or_none(caller, job_id)
    return JsonResponse(_job_json(request, job)) if job else _not_found(job_id)


@api_view("GET")
def job_logs_view(request: HttpRequest, caller: ApiCaller, job_id: str) -> JsonResponse:
    """A job's stdout and stderr after ``?stdout_offset=&stderr_offset=``: live, then stored."""
    _require(caller, "view")
    offsets = read_offsets(request.GET)
    job = _job_or_none(caller, job_id, attempts=False)
    if job is None:
        return _not_found(job_id)
    try:
        logs = job.read_logs(**offsets)
    except ExecutorError:
        logger.warning("logs of job %s could not be read from its platform", job.pk, exc_info=True)
        return _error(503, "the platform's logs cannot be read now; ask again later")
    return JsonResponse({"id": str(job.pk), "status": job.status, **logs.as_json()})


@api_view("POST")
def job_cancel_view(request: HttpRequest, caller: ApiCaller, job_id: str) -> JsonResponse:
    """Ask for a job to be cancelled (202), or say it already finished (409)."""
    _require(caller, "change")
    job = _job_or_none(caller, job_id)
    if job is None:
        return _not_found(job_id)
    if not job.cancel():
        return _error(409, f"job is already {job.status}")
    return JsonResponse(_job_json(request, job), status=202)


@csrf_exempt
def openapi_view(request: HttpRequest) -> JsonResponse:
    """The OpenAPI 3 description of this API, with the server URL of this deployment."""
    if request.method not in ("GET", "HEAD"):
        response = _error(405, f"method {request.method} not allowed here")
        response["Allow"] = "GET, HEAD"
        return response
    root = request.build_absolute_uri(reverse("container_manager:api-jobs")).rsplit("jobs/", 1)[0]
    return JsonResponse(openapi.schema(server_url=root.rstrip("/")))


@csrf_exempt
def not_found_view(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any other path under ``api/``: a JSON 404, or a JSON 308 to the path with its slash."""
    if not request.path.endswith("/"):
        match = _resolve_or_none(request.path + "/")
        if match is not None and match.url_name != "api-not-found":
            response = _error(308, "this path ends with a slash")
            response["Location"] = request.get_full_path(force_append_slash=True)
            return response
    return _error(404, "no such API path; see api/openapi.json")


def _resolve_or_none(path: str):
    """The URL match of ``path``, or None."""
    try:
        return resolve(path)
    except Resolver404:
        return None


def _require(caller: ApiCaller, action: str) -> None:
    if not caller.may(action):
        raise AuthError(403, f"this token's user may not {action} container jobs")


def _submit(caller: ApiCaller, payload: dict[str, Any], **options: Any) -> ContainerJob:
    fields = contract.from_json(payload)
    environment = fields.pop("environment_vars", None) or {}
    host_name = fields.pop("host", None)
    if host_name is not None:
        fields["docker_host"] = host_named(host_name)
    return ContainerJob.objects.create_job(
        image=fields.pop("docker_image", ""),
        environment_vars=environment,
        created_by=caller.user,
        limited=quotas.applies(caller),
        **options,
        **fields,
    )


def idempotency_key(request: HttpRequest) -> str | None:
    """The request's ``Idempotency-Key`` header, None without one; a 400 naming it if bad."""
    key = request.headers.get("Idempotency-Key")
    return None if key is None else check_key(key, field="Idempotency-Key")


def host_named(name: str) -> ExecutorHost:
    """The executor host called ``name``; a ValidationError on ``host`` when there is none."""
    host = ExecutorHost.objects.filter(name=name).first()
    if host is None:
        raise ValidationError({"host": [f"host: no executor host named {name[:100]!r}."]})
    return host


def job_json(request: HttpRequest, job: ContainerJob) -> dict[str, Any]:
    """``job`` as ``GET api/jobs/{id}/`` shows it, read again with its attempts and links."""
    loaded = _with_attempts(ContainerJob.objects.select_related("docker_host")).get(pk=job.pk)
    return _job_json(request, loaded)


def json_object(body: bytes) -> dict[str, Any]:
    """A request body parsed as a JSON object; a ValidationError when it is not one."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        raise ValidationError("the body is not valid JSON") from None
    except RecursionError:
        raise ValidationError("the body is nested too deeply") from None
    if not isinstance(payload, dict):
        raise ValidationError("the body must be a JSON object")
    return payload


def _job_or_none(caller: ApiCaller, job_id: str, attempts: bool = True) -> ContainerJob | None:
    """The job if the caller may see it; with its attempts and dependencies loaded if asked."""
    try:
        pk = uuid.UUID(job_id)
    except ValueError:
        return None
    jobs = caller.visible(ContainerJob.objects.select_related("docker_host"))
    return (_with_attempts(jobs) if attempts else jobs).filter(pk=pk).first()


def _with_attempts(jobs: Any) -> Any:
    """Jobs with their attempts' timings and their dependencies loaded, one query each."""
    attempts = ContainerExecution.objects.defer("stdout_log", "stderr_log", "docker_log")
    return jobs.prefetch_related(
        Prefetch("containerexecution_set", queryset=attempts), "dependency_links"
    )


def _not_found(job_id: str) -> JsonResponse:
    return _error(404, f"no job {job_id[:40]}")


def _job_json(request: HttpRequest, job: ContainerJob) -> dict[str, Any]:
    def link(name: str) -> str:
        return request.build_absolute_uri(reverse(f"container_manager:{name}", args=[job.pk]))

    duration = job.duration
    return {
        "id": str(job.pk),
        "name": job.name,
        "status": job.status,
        "docker_image": job.docker_image,
        "command": job.command,
        "host": job.docker_host.name,
        "labels": job.labels,
        "exit_code": job.exit_code,
        "returns_result": job.returns_result,
        "result": results.as_value(job.result),
        "attempts": job.attempt_count,
        "last_error": job.last_error,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
        "duration_seconds": duration.total_seconds() if duration else None,
        "estimated_cost": str(job.estimated_cost) if job.estimated_cost is not None else None,
        "cost_currency": job.cost_currency,
        "timings": [timings.as_json(e) for e in job.containerexecution_set.all()],
        **workflows.api_fields(job),
        "links": {
            "self": link("api-job"),
            "logs": link("api-job-logs"),
            "cancel": link("api-job-cancel"),
        },
    }
