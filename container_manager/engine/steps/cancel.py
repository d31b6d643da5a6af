"""The ``cancel`` step: carry out a cancel request; a pending job ends at once, a running one
is stopped by its check.
"""

from __future__ import annotations

from typing import Any

from container_manager.engine import workflows
from container_manager.engine.steps.check import check
from container_manager.engine.steps.common import cancel_pending, load
from container_manager.rules import status as st


def cancel(job_id: Any) -> str:
    """Carry out a cancel request: a pending job ends at once, a running one is stopped."""
    job = load(job_id)
    if job is None or not job.cancel_requested_at:
        return "nothing-to-do"
    if job.is_array_parent and job.status in (*st.LIVE, st.FAILED):
        # A failed parent with a cancel request failed early: its live children are cancelled.
        return workflows.cancel_array(job)
    if job.status == st.PENDING:
        return cancel_pending(job)
    if job.status == st.RUNNING:
        return check(job_id)
    if job.status == st.LAUNCHING:
        # The first check after the launch records the execution carries it out.
        return "after-launch"
    return "nothing-to-do"
