"""Which capability each job field needs: checked when a job is submitted, naming the field.

A job asking for what its host's platform cannot do is refused before it is stored: limits,
networks, an image no platform job of the host runs, and secret references of a kind the
platform cannot use.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from container_manager.executors.secretresolver import WHERE, unsupported_references
from container_manager.rules.envtext import parse_env_text

#: Job field -> (capability it needs, what to say when the platform lacks it).
NEEDS: dict[str, tuple[str, str]] = {
    "memory_limit": ("supports_resource_limits", "cannot limit memory"),
    "cpu_limit": ("supports_resource_limits", "cannot limit CPU"),
    "network_configuration": ("supports_networking", "cannot attach networks"),
}


def missing(job: Any, capabilities: dict[str, bool]) -> dict[str, str]:
    """``{field: reason}`` for each field ``job`` sets whose capability the platform lacks.

    >>> from types import SimpleNamespace as Job
    >>> missing(Job(memory_limit=256, cpu_limit=None, network_configuration=[]), {})
    {'memory_limit': 'cannot limit memory'}
    """
    found = {}
    for field, (capability, reason) in NEEDS.items():
        if getattr(job, field, None) not in (None, [], {}) and not capabilities.get(capability):
            found[field] = reason
    return found


def refusals(job: Any, executor_class: Any) -> dict[str, str]:
    """``{field: reason}`` for each thing ``job`` asks that ``executor_class``'s platform cannot do.

    ``missing``'s fields; ``docker_image`` when no platform job of the job's host runs it
    (``ContainerExecutor.image_refusal``: Cloud Run, Fargate, Scaleway); and
    ``override_environment`` or ``environment_template`` for a variable (after the override)
    whose secret reference is of a kind the platform cannot use
    (``ContainerExecutor.secret_kinds``). Reads the template and host the job holds: no
    query when they were given as instances.
    """
    found = missing(job, executor_class.capabilities)
    host = getattr(job, "docker_host", None) if getattr(job, "docker_host_id", None) else None
    if host is not None:
        why = executor_class.image_refusal(host.executor_config or {}, job.docker_image or "")
        if why:
            found["docker_image"] = why
    template = getattr(job, "environment_template", None)
    template_vars = _variables(template.environment_variables_text if template else "")
    override_vars = _variables(getattr(job, "override_environment", "") or "")
    merged = {**template_vars, **override_vars}
    for name, kind in unsupported_references(merged, executor_class.secret_kinds()).items():
        field = "override_environment" if name in override_vars else "environment_template"
        why = f"cannot use {name}'s secret reference of kind {kind}: {WHERE[kind]}"
        found.setdefault(field, why)
    return found


def _variables(text: str) -> dict[str, str]:
    try:
        return parse_env_text(text)
    except ValidationError:
        return {}  # the field's own validator names what is wrong with it
