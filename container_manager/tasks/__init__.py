"""A backend for Django's tasks framework that runs each task in its own container.

The backend is imported on first use, so importing this package costs nothing.
"""

from typing import Any

__all__ = ["ContainerTask", "ContainerTaskBackend"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from container_manager.tasks import backend

        return getattr(backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
