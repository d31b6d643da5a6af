"""System checks: ``manage.py check`` reports a misconfigured dispatch backend or executor.

``manage.py check --database default`` also checks every host's ``executor_config``.
"""

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.utils.module_loading import import_string

from container_manager.conf import DEFAULTS, setting


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check the ``CONTAINER_MANAGER`` keys, the dispatch backend path and executor paths."""
    from django.conf import settings

    errors: list[checks.CheckMessage] = []
    configured = getattr(settings, "CONTAINER_MANAGER", {}) or {}
    for key in sorted(set(configured) - set(DEFAULTS)):
        errors.append(
            checks.Error(
                f"CONTAINER_MANAGER[{key!r}] is not a known setting.",
                hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.",
                id="container_manager.E001",
            )
        )
    dispatch = setting("DISPATCH")
    if not isinstance(dispatch, dict) or "BACKEND" not in dispatch:
        errors.append(
            checks.Error(
                "CONTAINER_MANAGER['DISPATCH'] needs a 'BACKEND' dotted path.",
                hint="e.g. {'BACKEND': 'container_manager.dispatch.local.LocalBackend'}",
                id="container_manager.E002",
            )
        )
    else:
        where = "CONTAINER_MANAGER['DISPATCH']['BACKEND']"
        found = _importable(dispatch["BACKEND"], where)
        errors.extend(found or _backend_problems(dispatch, where))
    for name, path in (setting("EXECUTORS") or {}).items():
        errors.extend(_importable(path, f"CONTAINER_MANAGER['EXECUTORS'][{name!r}]"))
    return errors


@checks.register(checks.Tags.database)
def check_hosts(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list:
    """Each active host's ``executor_type`` and ``executor_config`` against the declared keys."""
    from container_manager.models import ExecutorHost

    if not databases:
        return []
    try:
        hosts = list(ExecutorHost.objects.filter(is_active=True))
    except DatabaseError:
        return []  # not migrated yet: nothing to check
    return [
        checks.Error(
            f"executor host {host.name!r}: {problem}",
            hint="Fix it in the admin; docs/executors.md lists each executor's keys.",
            obj=host,
            id="container_manager.E005",
        )
        for host in hosts
        if (problem := host.config_problem()) is not None
    ]


def _backend_problems(dispatch: dict, where: str) -> list[checks.CheckMessage]:
    try:
        backend = import_string(dispatch["BACKEND"])(dispatch.get("OPTIONS", {}))
        problems = backend.check()
    except (ImproperlyConfigured, ValueError, TypeError) as exc:
        problems = [str(exc)]
    return [
        checks.Error(f"{where}: {problem}", id="container_manager.E004") for problem in problems
    ]


def _importable(path: str, where: str) -> list[checks.CheckMessage]:
    try:
        import_string(path)
    except ImportError as exc:
        return [
            checks.Error(
                f"{where} = {path!r} cannot be imported: {exc}",
                hint="Check the dotted path and that the extra it needs is installed.",
                id="container_manager.E003",
            )
        ]
    return []
