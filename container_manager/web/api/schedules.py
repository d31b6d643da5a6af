"""The JSON API of schedules: list, create, read, change, delete, and run one now.

Same tokens and error shape as the job API (``api.api_view``). A user's token acts with the
user's permissions: ``view_jobschedule`` to list and read, ``add_jobschedule`` to create,
``change_jobschedule`` to change or run now, ``delete_jobschedule`` to delete; creating,
changing and running also need ``add_containerjob`` (a schedule submits jobs, as its owner).
It sees the schedules the job rule lets it see (``models.owners``: its own, or all with
``view_all_jobs``); any other id answers 404 like an unknown one. A service token may do
everything and makes schedules without an owner.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from container_manager.engine import firing
from container_manager.models import EnvironmentVariableTemplate, idempotency
from container_manager.models.owners import owned_by
from container_manager.models.schedules import JOB_FIELDS, JobSchedule
from container_manager.rules import contract
from container_manager.rules.envtext import format_env_text, parse_env_text
from container_manager.rules.secrets import MASK
from container_manager.web import quotas
from container_manager.web.api.jobs import (
    api_view,
    host_named,
    idempotency_key,
    job_json,
    json_object,
)
from container_manager.web.api.rows import TEXT, checked, not_found, one_object, row_id
from container_manager.web.auth import ApiCaller
from container_manager.web.errors import error

#: Schedules listed at most, by name.
LIST_LIMIT = 100

#: What a create or a change may say; ``host`` and ``environment_*`` are mapped to model fields.
WRITABLE = {
    "name", "cron", "timezone", "enabled", "overlap", "catchup", "job_name", "docker_image",
    "command", "host", "memory_limit", "cpu_limit", "timeout_seconds", "environment_template",
    "environment_vars",
}  # fmt: skip
#: Names a body may no longer use, with the name that replaced each.
RENAMED = {"image": "docker_image"}


@api_view("GET", "POST")
def schedules_view(request: HttpRequest, caller: ApiCaller) -> JsonResponse:
    """GET: the schedules the caller may see (by name); POST: create one (201), or a 400.

    A POST with an ``Idempotency-Key`` the caller used before for the same body answers
    200 with the schedule it made (``models.idempotency``); for another body, 409.
    """
    if request.method == "POST":
        caller.require("add", "jobschedule")
        caller.require("add", "containerjob")
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
    caller.require("view", "jobschedule")
    rows = _visible(caller).order_by("name", "pk")[:LIST_LIMIT]
    return JsonResponse({"schedules": [schedule_json(s) for s in rows]})


@api_view("GET", "PATCH", "DELETE")
def schedule_view(request: HttpRequest, caller: ApiCaller, schedule_id: str) -> HttpResponse:
    """GET: one schedule; PATCH: change the fields the body names (200); DELETE: 204.

    A PATCH is checked as a create is (the submit contract at save, errors naming the
    field) and writes only the fields it names, so it never undoes another change made
    meanwhile; ``enabled`` turns the schedule on or off. Deleting keeps the jobs it made.
    """
    also = (("add", "containerjob"),)
    return one_object(request, caller, _visible(caller), schedule_id, _update, schedule_json, also)


@api_view("POST")
def schedule_run_view(request: HttpRequest, caller: ApiCaller, schedule_id: str) -> JsonResponse:
    """Make one job of the schedule now, as the sweep would (201 with the job), or say why not.

    The job is made by ``engine.firing.run_now``: as the schedule's owner, as ``overlap``
    allows, held to the quotas as an API submit is. When none is made (overlap ``skip`` with
    a live job, an owner who may not submit, a job the contract refuses) the answer is a 409
    with the reason and nothing changes. With an ``Idempotency-Key`` used before for this
    schedule, 200 with the job the first call made.
    """
    caller.require("change", "jobschedule")
    caller.require("add", "containerjob")
    rows = _visible(caller).select_related("last_job", "owner")
    schedule = rows.filter(pk=row_id(schedule_id)).first()
    if schedule is None:
        return not_found("job schedule", schedule_id)
    key, limited = idempotency_key(request), quotas.applies(caller)
    try:
        if key is None:
            job, created = _run(schedule, limited), True
        else:
            job, created = idempotency.once(
                idempotency.scope_of(caller.user),
                key,
                {"kind": "schedule run", "schedule": schedule.pk},
                lambda: _run(schedule, limited),
            )
    except _NotRun as refused:
        return error(409, f"no job was made: {refused}")
    return JsonResponse(job_json(request, job), status=201 if created else 200)


def schedule_json(schedule: JobSchedule) -> dict[str, Any]:
    """A schedule as the API shows it; its environment by names only, every value masked.

    Each field has its model name but ``host`` (the executor host's name, as a job's) and
    ``environment_vars`` (``override_environment`` as an object, as a job's submit).
    """

    def when(value: Any) -> str | None:
        return value.isoformat() if value else None

    template = schedule.environment_template
    return {
        "id": schedule.pk,
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "overlap": schedule.overlap,
        "catchup": schedule.catchup,
        "job_name": schedule.job_name,
        "docker_image": schedule.docker_image,
        "command": schedule.command,
        "host": schedule.docker_host.name if schedule.docker_host else None,
        "memory_limit": schedule.memory_limit,
        "cpu_limit": schedule.cpu_limit,
        "timeout_seconds": schedule.timeout_seconds,
        "environment_template": template.name if template else None,
        "environment_vars": dict.fromkeys(parse_env_text(schedule.override_environment), MASK),
        "next_run_at": when(schedule.next_run_at),
        "last_run_at": when(schedule.last_run_at),
        "last_outcome": schedule.last_outcome,
        "last_job": str(schedule.last_job_id) if schedule.last_job_id else None,
        "created_at": when(schedule.created_at),
        "updated_at": when(schedule.updated_at),
    }


class _NotRun(Exception):
    """A run now that made no job; the message says why."""


def _visible(caller: ApiCaller) -> Any:
    """The schedules the caller may see, with what ``schedule_json`` reads joined."""
    rows = JobSchedule.objects.select_related("docker_host", "environment_template")
    return owned_by(rows, caller.user, "owner")


def _run(schedule: JobSchedule, limited: bool) -> Any:
    """The job ``run_now`` made; ``_NotRun`` (rolling back what it did) when it made none."""
    with transaction.atomic():
        job = firing.run_now(schedule, limited)
        if job is None:
            raise _NotRun(schedule.last_outcome)
    return job


def _check_fields(payload: dict[str, Any]) -> None:
    """Each field is writable and has its JSON type and bounds, or a 400 names it.

    The job fields are checked by the submit contract of ``create_job`` (``rules.contract``);
    ``catchup`` must be an integer from 0 to 100 (2.5, "2" or true are refused, not rounded).
    """
    errors = {}
    for name, value in payload.items():
        if name in RENAMED:
            problem = f"renamed {RENAMED[name]}"
        elif name not in WRITABLE:
            problem = "unknown field"
        elif value is None and name in _NULLABLE:
            continue
        elif name in _CONTRACT:
            problem = contract.BY_NAME[_CONTRACT[name]].error(value)
        elif name == "catchup":
            whole = isinstance(value, int) and not isinstance(value, bool)
            problem = None if whole and 0 <= value <= 100 else "must be an integer from 0 to 100."
        elif name == "enabled":
            problem = None if isinstance(value, bool) else "must be true or false."
        else:
            problem = TEXT.error(value)
        if problem:
            errors[name] = [f"{name}: {problem}"]
    if errors:
        raise ValidationError(errors)


#: The writable fields that are submit fields of a job, with the contract field each one is.
_CONTRACT = {
    **JOB_FIELDS,
    "host": "host",
    "environment_template": "environment_template",
    "environment_vars": "environment_vars",
}
#: Fields that may be null (left empty).
_NULLABLE = {"host", "environment_template", "environment_vars", "memory_limit", "cpu_limit"}


def _model_values(payload: dict[str, Any], stored_environment: str = "") -> dict[str, Any]:
    """The model fields a checked body sets: host and template found by name, variables as text.

    A variable sent with the mask as its value (as ``schedule_json`` shows it) keeps its
    stored value.
    """
    _check_fields(payload)
    values = dict(payload)
    if "host" in values:
        host = values.pop("host")
        values["docker_host"] = host_named(host) if host else None
    if "environment_template" in values:
        values["environment_template"] = _template(values["environment_template"])
    if "environment_vars" in values:
        variables = _unmasked(values.pop("environment_vars") or {}, stored_environment)
        values["override_environment"] = format_env_text(variables)
    return values


def _unmasked(variables: dict[str, str], stored_text: str) -> dict[str, str]:
    """``variables`` with each value left as the mask replaced by the stored value."""
    stored = parse_env_text(stored_text)
    lost = sorted(name for name, value in variables.items() if value == MASK and name not in stored)
    if lost:
        raise ValidationError(
            {
                "environment_vars": f"environment_vars: {', '.join(lost)[:200]} holds the mask "
                f"{MASK} but has no stored value; send the whole value"
            }
        )
    return {name: stored[name] if value == MASK else value for name, value in variables.items()}


def _template(name: str | None) -> EnvironmentVariableTemplate | None:
    if not name:
        return None
    template = EnvironmentVariableTemplate.objects.filter(name=name).first()
    if template is None:
        raise ValidationError(
            {"environment_template": [f"environment_template: no template named {name!r}"]}
        )
    return template


def _create(payload: dict[str, Any], owner: Any) -> JobSchedule:
    schedule = JobSchedule(owner=owner, **_model_values(payload))
    checked(schedule)
    _save(schedule)
    return schedule


def _update(schedule: JobSchedule, payload: dict[str, Any]) -> None:
    """Set the fields ``payload`` names, check the whole schedule, write only those fields."""
    values = _model_values(payload, schedule.override_environment)
    for name, value in values.items():
        setattr(schedule, name, value)
    checked(schedule)
    _save(schedule, update_fields=[*values, "updated_at"])


def _save(schedule: JobSchedule, **options: Any) -> None:
    try:
        with transaction.atomic():
            schedule.save(**options)
    except IntegrityError:
        # The same owner saved the same name concurrently, after full_clean's check.
        clash = schedule.name_clash()
        if clash is None:
            raise
        raise ValidationError({"name": [clash]}) from None
