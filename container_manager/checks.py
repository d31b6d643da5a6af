"""System checks: ``manage.py check`` reports a misconfigured dispatch backend, executor,
price table or webhook allow list, and a development SECRET_KEY used with DEBUG off.

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
