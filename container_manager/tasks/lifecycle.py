"""The framework's ``task_started`` and ``task_finished``, sent when a task's job moves.

Connected by the app to ``post_save`` of jobs; it sends in whichever process ran the step.
"""

from __future__ import annotations

import logging
from typing import Any

from container_manager.rules import taskwire

logger = logging.getLogger(__name__)


def job_moved(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    """``post_save`` receiver: a task's job started running or ended; tell the framework.

    Told apart by what the move wrote: every move to a terminal status writes
    ``completed_at``, the move to running writes ``started_at``. (The instance's
    ``status`` may already be further on when a committed move is announced.)
    """
    update_fields = kwargs.get("update_fields") or ()
    if created or "status" not in update_fields:
        return
    if "completed_at" in update_fields:
        finished = True
    elif "started_at" in update_fields:
        finished = False
    else:
        return
    if taskwire.PAYLOAD_ENV not in (instance.override_environment or ""):
        return
    try:
        _send(instance, finished)
    except Exception:  # noqa: BLE001 - a receiver's failure must not undo or stop the step
        logger.exception("task signal for job %s could not be sent", instance.pk)


def _send(job: Any, finished: bool) -> None:
    from container_manager.tasks import results
    from container_manager.tasks.backend import ContainerTaskBackend
    from container_manager.tasks.compat import task_backends, task_finished, task_started

    payload = results.payload_of(job)
    if payload is None:
        return
    backend = task_backends[payload["backend"]]
    if not isinstance(backend, ContainerTaskBackend):
        return
    signal = task_finished if finished else task_started
    signal.send(type(backend), task_result=backend.get_result(job.pk))
