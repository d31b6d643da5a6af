"""System checks: ``manage.py check`` reports a misconfigured backend, executor or price table."""

from typing import Any

from django.core import checks
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
        errors.extend(_importable(dispatch["BACKEND"], "CONTAINER_MANAGER['DISPATCH']['BACKEND']"))
    for name, path in (setting("EXECUTORS") or {}).items():
        errors.extend(_importable(path, f"CONTAINER_MANAGER['EXECUTORS'][{name!r}]"))
    errors.extend(_importable(setting("METRICS_AUTH"), "CONTAINER_MANAGER['METRICS_AUTH']"))
    errors.extend(_price_errors())
    return errors


def _price_errors() -> list[checks.CheckMessage]:
    from container_manager.cost import entry_errors, price_table

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
