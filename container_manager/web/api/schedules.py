"""The JSON API of schedules: list them with their next run, and create one.

Same tokens and error shape as the job API (``api.api_view``); a user's token needs the
user's ``view_jobschedule`` / ``add_jobschedule`` permission, a service token may do both.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, JsonResponse

from container_manager.models import EnvironmentVariableTemplate, idempotency
from container_manager.models.schedules import JobSchedule
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
    """GET: the schedules (by name); POST: create one (201), or 400 naming the field.

    A POST with an ``Idempotency-Key`` the caller used before for the same body answers
    200 with the schedule it made (``models.idempotency``); for another body, 409.
    """
    _require(caller, "add" if request.method == "POST" else "view")
    if request.method == "POST":
        key, payload = idempotency_key(request), json_object(request.body)
        if key is None:
            return JsonResponse(schedule_json(_create(payload)), status=201)
        schedule, created = idempotency.once(
            idempotency.scope_of(caller.user),
            key,
            {"kind": "schedule", "body": payload},
            lambda: _create(payload),
        )
        return JsonResponse(schedule_json(schedule), status=201 if created else 200)
    rows = JobSchedule.objects.select_related("docker_host").order_by("name")[:LIST_LIMIT]
    return JsonResponse({"schedules": [schedule_json(s) for s in rows]})


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


def _require(caller: ApiCaller, action: str) -> None:
    user = caller.user
    if user is not None and not user.has_perm(f"container_manager.{action}_jobschedule"):
        raise AuthError(403, f"this token's user may not {action} job schedules")


def _check_types(payload: dict[str, Any]) -> None:
    """Each field has its JSON type (numbers within 32-bit range), or a 400 names it."""
    errors = {}
    for name, value in payload.items():
        if name in _NUMBERS:
            ok = value is None or (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and abs(value) < 2**31
            )
        elif name == "enabled":
            ok = isinstance(value, bool)
        elif name == "environment_vars":
            ok = value is None or isinstance(value, dict)
        else:
            ok = isinstance(value, str) or (value is None and name in _NULLABLE)
        if not ok:
            errors[name] = [f"{name}: wrong type {type(value).__name__}"]
    if errors:
        raise ValidationError(errors)


_NUMBERS = {"catchup", "memory_limit", "cpu_limit", "timeout_seconds"}
_NULLABLE = {"host", "environment_template"}


def _create(payload: dict[str, Any]) -> JobSchedule:
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
    if not isinstance(environment, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in environment.items()
    ):
        raise ValidationError({"environment_vars": ["environment_vars: must map names to strings"]})
    fields["override_environment"] = format_env_text(environment)
    schedule = JobSchedule(**fields)
    schedule.full_clean()
    with transaction.atomic():
        schedule.save()
    return schedule
