"""Django signals about jobs: ``job_started`` and ``job_finished``, sent after the move commits.

Each is sent once per status move (moves are compare-and-set), with ``job`` and ``status``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

from container_manager.rules import status as st

logger = logging.getLogger(__name__)

#: The job's container started (launching -> running). Arguments: ``job``, ``status``.
job_started = Signal()
#: The job reached a terminal status. Arguments: ``job``, ``status``.
job_finished = Signal()


def announce_move(job: Any, status: str) -> None:
    """Send the signal for a committed move of ``job`` to ``status``, if there is one.

    Called by ``transitions`` after each move it made; a receiver that raises is
    logged and does not disturb the step or the other receivers.
    """
    signal = (
        job_started if status == st.RUNNING else job_finished if status in st.TERMINAL else None
    )
    if signal is None:
        return

    def send() -> None:
        for receiver, result in signal.send_robust(sender=type(job), job=job, status=status):
            if isinstance(result, Exception):
                logger.error(
                    "receiver %r of %s for job %s raised: %r", receiver, status, job.pk, result
                )

    transaction.on_commit(send)
