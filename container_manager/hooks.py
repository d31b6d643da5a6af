"""The steps' entry points as the models call them, bound by ``container_manager.steps``.

The models sit below the steps and cannot import them; the app's ``ready()`` imports the steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_bound: dict[str, Callable[..., Any]] = {}


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
    try:
        function = _bound[name]
    except KeyError:
        raise ImproperlyConfigured(
            f"container_manager: no step bound as {name!r}; "
            "is 'container_manager' in INSTALLED_APPS?"
        ) from None
    return function(*args, **kwargs)
