"""The steps' entry points as the models call them, bound by ``container_manager.steps``.

The models sit below the steps and cannot import them. The modules that bind the hooks are
imported at the first call, not at start-up, so a process that only serves the admin or the
API's reads never loads the steps.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_bound: dict[str, Callable[..., Any]] = {}
#: The modules whose import binds the hooks (each calls ``bind`` at its end).
PROVIDERS = ("container_manager.steps", "container_manager.workflows")


def bind(**functions: Callable[..., Any]) -> None:
    """Register the functions the models delegate to (``launch``, ``harvest`` …) by name."""
    _bound.update(functions)


def call(name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the function bound as ``name``; ``ImproperlyConfigured`` when none is.

    >>> call("no-such-hook")
    Traceback (most recent call last):
    ...
    django.core.exceptions.ImproperlyConfigured: container_manager: no step bound as \
'no-such-hook'; is 'container_manager' in INSTALLED_APPS?
    """
    if name not in _bound:
        for module in PROVIDERS:
            importlib.import_module(module)
    try:
        function = _bound[name]
    except KeyError:
        raise ImproperlyConfigured(
            f"container_manager: no step bound as {name!r}; "
            "is 'container_manager' in INSTALLED_APPS?"
        ) from None
    return function(*args, **kwargs)
