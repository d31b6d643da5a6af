"""Where steps are sent: ``send(step, job_id, delay)`` to the backend the settings name.

A message only says "look at job X now"; sends made inside a transaction wait for its commit.
"""

from __future__ import annotations

import logging
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
from container_manager.telemetry import counters

logger = logging.getLogger(__name__)

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
    try:
        get_backend().send(step, str(job_id), max(float(delay), 0.0))
    except Exception:
        counters.send_failed(step)
        raise


def send_backstop(step: str, job_id: Any, delay: float) -> None:
    """Send now a hint due in ``delay`` seconds in case the work under way dies; never raises.

    A failed send is logged: the sweep finds the same work from the rows.
    """
    try:
        get_backend().send_backstop(step, str(job_id), max(float(delay), 0.0))
    except Exception:  # noqa: BLE001 - the hint is optional; the work under way must go on
        counters.send_failed(step)
        logger.warning("sending the %s hint for job %s failed", step, job_id, exc_info=True)


def send_on_commit(step: str, job_id: Any, delay: float = 0, using: str | None = None) -> None:
    """Send once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: send(step, job_id, delay), using=using)


def send_many_on_commit(messages: list[tuple[str, Any, float]], using: str | None = None) -> None:
    """Send many ``(step, job_id, delay)`` messages once the transaction commits."""
    batch = [(step, str(job_id), max(float(delay), 0.0)) for step, job_id, delay in messages]
    if batch:
        transaction.on_commit(lambda: _send_many(batch), using=using)


def _send_many(batch: list[tuple[str, str, float]]) -> None:
    """Send a batch; if it raises, each of its messages counts as failed (which went is unknown)."""
    try:
        get_backend().send_many(batch)
    except Exception:
        for step, _, _ in batch:
            counters.send_failed(step)
        raise


@receiver(setting_changed)
def _settings_changed(setting: str, **kwargs: Any) -> None:
    if setting == "CONTAINER_MANAGER":
        reset_backend()
