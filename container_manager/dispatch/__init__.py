"""Where steps are sent: ``send(step, job_id, delay)`` to the backend the settings name.

A message only says "look at job X now"; sends made inside a transaction wait for its commit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.signals import setting_changed
from django.db import transaction
from django.dispatch import receiver
from django.utils.module_loading import import_string

from container_manager.conf import setting
from container_manager.dispatch.base import DispatchBackend

_backend: DispatchBackend | None = None
_lock = threading.Lock()


def get_backend() -> DispatchBackend:
    """The configured backend, built once per process."""
    global _backend
    with _lock:
        if _backend is None:
            config = setting("DISPATCH")
            backend_class = import_string(config["BACKEND"])
            _backend = backend_class(config.get("OPTIONS", {}))
        return _backend


def reset_backend() -> None:
    """Stop and forget the backend; the next send builds it from the settings again."""
    global _backend
    with _lock:
        backend, _backend = _backend, None
    if backend is not None:
        backend.close()


@contextmanager
def use_backend(backend: DispatchBackend) -> Iterator[DispatchBackend]:
    """Send this process's steps to ``backend`` until the block ends (commands and tests)."""
    global _backend
    with _lock:
        previous, _backend = _backend, backend
    try:
        yield backend
    finally:
        with _lock:
            _backend = previous


def send(step: str, job_id: Any, delay: float = 0) -> None:
    """Send ``step`` for ``job_id`` now (to run after ``delay`` seconds)."""
    get_backend().send(step, str(job_id), max(float(delay), 0.0))


def send_on_commit(step: str, job_id: Any, delay: float = 0, using: str | None = None) -> None:
    """Send once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: send(step, job_id, delay), using=using)


def send_many_on_commit(messages: list[tuple[str, Any, float]], using: str | None = None) -> None:
    """Send many ``(step, job_id, delay)`` messages once the transaction commits."""
    batch = [(step, str(job_id), max(float(delay), 0.0)) for step, job_id, delay in messages]
    if batch:
        transaction.on_commit(lambda: get_backend().send_many(batch), using=using)


@receiver(setting_changed)
def _settings_changed(setting: str, **kwargs: Any) -> None:
    if setting == "CONTAINER_MANAGER":
        reset_backend()
