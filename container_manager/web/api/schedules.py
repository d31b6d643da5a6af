"""The JSON API of schedules: list them with their next run, and create one.

Same tokens and error shape as the job API (``api.api_view``). A user's token needs the
user's ``view_jobschedule`` permission to list and sees the schedules the job rule lets it see
(``models.owners``: its own, or all with ``view_all_jobs``); to create, ``add_jobschedule``
and ``add_containerjob`` (a schedule submits jobs), and the schedule is the user's. A service
token may do both and makes schedules without an owner.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse

from container_manager.models import EnvironmentVariableTemplate, idempotency
from container_manager.models.owners import owned_by
from container_manager.models.schedules import JobSchedule
from container_manager.rules import contract
from container_manager.rules.envtext import format_env_text
from container_manager.web.api.jobs import (
    LIST_LIMIT,
    api_view,
    host_named,
    idempotency_key,
    json_object,
)
from container_manager.web.auth import ApiCaller, AuthError

#: What a create may say; ``image``, ``host``, ``environment_*`` are mapped to model fields.
CREATE_FIELDS = {
    "name", "cron", "timezone", "enabled", "overlap", "catchup", "job_name", "image", "command",
    "host", "memory_limit", "cpu_limit", "timeout_seconds", "environment_template",
    "environment_vars",
}  # fmt: skip


@api_view("GET", "POST")
def schedules_view(request: HttpRequest, caller: ApiCaller) -> JsonResponse:
    """GET: the schedules the caller may see (by name); POST: create one (201), or a 400.

    A POST with an ``Idempotency-Key`` the caller used before for the same body answers
    200 with the schedule it made (``models.idempotency``); for another body, 409.
    """
    if request.method == "POST":
        _require(caller, "add", "jobschedule")
        _require(caller, "add", "containerjob")
        key, payload = idempotency_key(request), json_object(request.body)
        if key is None:
            return JsonResponse(schedule_json(_create(payload, caller.user)), status=201)
        schedule, created = idempotency.once(
            idempotency.scope_of(caller.user),
            key,
            {"kind": "schedule", "body": payload},
            lambda: _create(payload, caller.user),
        )
        return JsonResponse(schedule_json(schedule), status=201 if created else 200)
    _require(caller, "view", "jobschedule")
    rows = owned_by(JobSchedule.objects.select_related("docker_host"), caller.user, "owner")
    return JsonResponse(
        {"schedules": [schedule_json(s) for s in rows.order_by("name", "pk")[:LIST_LIMIT]]}
    )


def schedule_json(schedule: JobSchedule) -> dict[str, Any]:
    """A schedule as the API shows it."""

    def when(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": schedule.pk,
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "overlap": schedule.overlap,
        "catchup": schedule.catchup,
        "image": schedule.docker_image,
        "command": schedule.command,
        "host": schedule.docker_host.name if schedule.docker_host else None,
        "next_run_at": when(schedule.next_run_at),
        "last_run_at": when(schedule.last_run_at),
        "last_outcome": schedule.last_outcome,
    }


def _require(caller: ApiCaller, action: str, model: str) -> None:
    user = caller.user
    if user is not None and not user.has_perm(f"container_manager.{action}_{model}"):
        things = {"jobschedule": "job schedules", "containerjob": "container jobs"}[model]
        raise AuthError(403, f"this token's user may not {action} {things}")


def _check_types(payload: dict[str, Any]) -> None:
    """Each field has its JSON type and bounds, or a 400 names it.

    The job fields are checked by the submit contract of ``create_job`` (``rules.contract``);
    ``catchup`` must be an integer from 0 to 100 (2.5, "2" or true are refused, not rounded).
    """
    errors = {}
    for name, value in payload.items():
        if value is None and name in _NULLABLE:
            continue
        if name in _CONTRACT:
            problem = contract.BY_NAME[_CONTRACT[name]].error(value)
        elif name == "catchup":
            whole = isinstance(value, int) and not isinstance(value, bool)
            problem = None if whole and 0 <= value <= 100 else "must be an integer from 0 to 100."
        elif name == "enabled":
            problem = None if isinstance(value, bool) else "must be true or false."
        else:
            problem = None if isinstance(value, str) else f"wrong type {type(value).__name__}"
        if problem:
            errors[name] = [f"{name}: {problem}"]
    if errors:
        raise ValidationError(errors)


#: The create fields that are submit fields of a job, with the contract field each one is.
_CONTRACT = {
    "image": "docker_image", "command": "command", "job_name": "name",
    "memory_limit": "memory_limit", "cpu_limit": "cpu_limit", "timeout_seconds": "timeout_seconds",
    "host": "host", "environment_template": "environment_template",
    "environment_vars": "environment_vars",
}  # fmt: skip
#: Fields that may be null (left empty).
_NULLABLE = {"host", "environment_template", "environment_vars", "memory_limit", "cpu_limit"}


def _create(payload: dict[str, Any], owner: Any) -> JobSchedule:
    unknown = sorted(set(payload) - CREATE_FIELDS)
    if unknown:
        raise ValidationError({name: [f"{name}: unknown field"] for name in unknown})
    _check_types(payload)
    fields = dict(payload)
    fields["docker_image"] = fields.pop("image", "")
    host = fields.pop("host", None)
    fields["docker_host"] = host_named(host) if host else None
    template = fields.pop("environment_template", None)
    if template:
        fields["environment_template"] = EnvironmentVariableTemplate.objects.filter(
            name=str(template)
        ).first()
        if fields["environment_template"] is None:
            raise ValidationError(
                {"environment_template": [f"environment_template: no template named {template!r}"]}
            )
    environment = fields.pop("environment_vars", None) or {}
    fields["override_environment"] = format_env_text(environment)
    schedule = JobSchedule(owner=owner, **fields)
    schedule.full_clean()
    try:
        with transaction.atomic():
            schedule.save()
    except IntegrityError:
        # The same owner saved the same name concurrently, after full_clean's check.
        clash = schedule.name_clash()
        if clash is None:
            raise
        raise ValidationError({"name": [clash]}) from None
    return schedule
