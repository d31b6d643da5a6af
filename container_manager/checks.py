"""System checks: ``manage.py check`` reports a misconfigured dispatch backend, executor,
price table or webhook allow list, a missing platform SDK, SQLite settings that would lock,
and a development SECRET_KEY used with DEBUG off.

``manage.py check --database default`` also checks every host's ``executor_config`` and SDK.
"""

import importlib.util
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.utils.module_loading import import_string

from container_manager.conf import DEFAULTS, setting
from container_manager.models.sqlite import missing_options

#: The module each built-in executor type imports to reach its platform, and the extra that
#: installs it.
EXECUTOR_SDKS = {
    "docker": ("docker", "docker"),
    "cloudrun": ("google.auth", "gcp"),
    "fargate": ("boto3", "aws"),
    "scaleway": ("requests", "scaleway"),
}
#: The same for the dispatch backends that talk to a cloud queue.
BACKEND_SDKS = {
    "container_manager.dispatch.cloudtasks.CloudTasksBackend": ("google.cloud.tasks_v2", "gcp"),
    "container_manager.dispatch.sqs.SQSBackend": ("boto3", "aws"),
}
#: The backends that run steps on local threads and follow the Docker engines' events.
LOCAL_BACKENDS = frozenset(
    {
        "container_manager.dispatch.local.LocalBackend",
        "container_manager.dispatch.worker.WorkerBackend",
    }
)


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check the ``CONTAINER_MANAGER`` keys, and the dispatch backend, executor, metrics auth and
    secret resolver paths."""
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
        errors.extend(_dispatch_sdk_errors(dispatch, where))
    for name, path in (setting("EXECUTORS") or {}).items():
        errors.extend(_importable(path, f"CONTAINER_MANAGER['EXECUTORS'][{name!r}]"))
    errors.extend(_importable(setting("METRICS_AUTH"), "CONTAINER_MANAGER['METRICS_AUTH']"))
    errors.extend(_importable(setting("SECRET_RESOLVER"), "CONTAINER_MANAGER['SECRET_RESOLVER']"))
    errors.extend(_price_errors())
    errors.extend(_platform_events(setting("PLATFORM_EVENTS")))
    errors.extend(_allowed_networks(setting("WEBHOOK_ALLOWED_NETWORKS")))
    return errors


def _price_errors() -> list[checks.CheckMessage]:
    from container_manager.rules.cost import entry_errors, price_table

    messages = [
        message
        for platform, regions in price_table().items()
        for region, entry in regions.items()
        for message in entry_errors(entry, f"PRICES[{platform!r}][{region!r}]")
    ]
    return [
        checks.Error(
            message,
            hint="Rates are numbers per second or per hour; see docs/settings.md (PRICES).",
            id="container_manager.E020",
        )
        for message in messages
    ]


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
    errors = []
    for host in hosts:
        module, extra = EXECUTOR_SDKS.get(host.executor_type, (None, ""))
        if module and not _installed(module):
            where = f"executor host {host.name!r} (executor_type {host.executor_type!r})"
            errors.append(_sdk_error(where, module, extra, "container_manager.E041", obj=host))
        elif (problem := host.config_problem()) is not None:
            errors.append(
                checks.Error(
                    f"executor host {host.name!r}: {problem}",
                    hint="Fix it in the admin; docs/executors.md lists each executor's keys.",
                    obj=host,
                    id="container_manager.E005",
                )
            )
    return errors


@checks.register()
def check_sqlite_options(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A SQLite database without ``transaction_mode`` IMMEDIATE: the exact OPTIONS to add.

    The app gives every SQLite connection WAL and a 30 s busy timeout itself
    (``models.sqlite``); a connection cannot be given its transaction mode once open.
    Settings only: it runs with every ``manage.py check``, ``runserver`` and ``migrate``.
    """
    from django.conf import settings

    return [
        checks.Warning(
            f"DATABASES[{alias!r}] is SQLite without {missing}: a web process and "
            "process_container_jobs side by side would fail with 'database is locked'.",
            hint=f'Add to its OPTIONS: DATABASES["{alias}"]["OPTIONS"] |= {missing!r}',
            id="container_manager.W040",
        )
        for alias, database in settings.DATABASES.items()
        if (missing := missing_options(database))
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


#: Keys that are public: local development's and Django's ``startproject`` placeholder.
INSECURE_KEY_PREFIXES = ("insecure-local-development", "django-insecure-")


@checks.register(checks.Tags.security)
def check_secret_key(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """With DEBUG off, a SECRET_KEY known to the world is an error (sessions could be forged)."""
    from django.conf import settings

    key = str(getattr(settings, "SECRET_KEY", ""))
    if settings.DEBUG or not key.startswith(INSECURE_KEY_PREFIXES):
        return []
    return [
        checks.Error(
            "SECRET_KEY is a development key while DEBUG is off.",
            hint="Set DJANGO_SECRET_KEY to a long random value (it signs sessions and CSRF).",
            id="container_manager.E006",
        )
    ]


def _platform_events(value: Any) -> list[checks.CheckMessage]:
    from container_manager.engine.flow import EVENT_SOURCES

    known = ", ".join(sorted(EVENT_SOURCES))
    if not isinstance(value, list | tuple) or not set(value) <= EVENT_SOURCES:
        return [
            checks.Error(
                f"CONTAINER_MANAGER['PLATFORM_EVENTS'] = {value!r}: must be a list of {known}.",
                hint="Docker's events need no entry: the local backend follows the engines.",
                id="container_manager.E007",
            )
        ]
    return []


def _allowed_networks(value: Any) -> list[checks.CheckMessage]:
    import ipaddress

    where = "CONTAINER_MANAGER['WEBHOOK_ALLOWED_NETWORKS']"
    problems = [] if isinstance(value, list | tuple) else [f"{where} = {value!r}: must be a list"]
    for network in value if not problems else ():
        try:
            ipaddress.ip_network(network)
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: {network!r} is not a network in CIDR notation ({exc})")
    hint = "A list of networks in CIDR notation, e.g. ['10.20.0.0/16', 'fd12:3456::/48']."
    return [checks.Error(problem, hint=hint, id="container_manager.E030") for problem in problems]


def _dispatch_sdk_errors(dispatch: dict, where: str) -> list[checks.CheckMessage]:
    """The SDK a cloud backend needs, and Docker's for the local backends following its events."""
    path = dispatch["BACKEND"]
    if path in BACKEND_SDKS and not _installed(BACKEND_SDKS[path][0]):
        module, extra = BACKEND_SDKS[path]
        return [_sdk_error(f"{where} = {path!r}", module, extra, "container_manager.E040")]
    follows_docker = (dispatch.get("OPTIONS") or {}).get("DOCKER_EVENTS", True)
    if path in LOCAL_BACKENDS and follows_docker and not _installed("docker"):
        return [
            _sdk_error(
                f"{where} = {path!r} runs Docker jobs (OPTIONS['DOCKER_EVENTS'] is on)",
                "docker",
                "docker",
                "container_manager.E040",
                also=" or, if no job of this deployment runs on Docker, set "
                "OPTIONS['DOCKER_EVENTS'] = False",
            )
        ]
    return []


def _sdk_error(
    where: str, module: str, extra: str, check_id: str, obj: Any = None, also: str = ""
) -> checks.Error:
    return checks.Error(
        f"{where} needs the Python module {module!r}, which is not installed.",
        hint=f'Install the extra: pip install "container-manager[{extra}]"{also}.',
        obj=obj,
        id=check_id,
    )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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
