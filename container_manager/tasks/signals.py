"""The framework's ``task_started`` and ``task_finished``, sent when a task's job moves.

Connected by the app to ``post_save`` of jobs; it sends in whichever process ran the step.
"""

from __future__ import annotations

import logging
from typing import Any

from container_manager import status as st
from container_manager import taskwire

logger = logging.getLogger(__name__)


def job_moved(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    """``post_save`` receiver: a task's job became running or terminal, tell the framework."""
    update_fields = kwargs.get("update_fields") or ()
    if created or "status" not in update_fields:
        return
    if instance.status not in (st.RUNNING, *st.TERMINAL):
        return
    if taskwire.PAYLOAD_ENV not in (instance.override_environment or ""):
        return
    try:
        _send(instance)
    except Exception:  # noqa: BLE001 - a receiver's failure must not undo or stop the step
        logger.exception("task signal for job %s could not be sent", instance.pk)


def _send(job: Any) -> None:
    from container_manager.tasks import results
    from container_manager.tasks.backend import ContainerTaskBackend
    from container_manager.tasks.compat import task_backends, task_finished, task_started

    payload = results.payload_of(job)
    if payload is None:
        return
    backend = task_backends[payload["backend"]]
    if not isinstance(backend, ContainerTaskBackend):
        return
    signal = task_started if job.status == st.RUNNING else task_finished
    signal.send(type(backend), task_result=backend.get_result(job.pk))
