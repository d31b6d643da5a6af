"""What a platform event does: find the job whose execution it names and harvest it now.

The ECS and Cloud Run handlers end here; the step runner carries out the harvest.
"""

from __future__ import annotations

import logging
from typing import Any

from container_manager import dispatch
from container_manager.conf import setting
from container_manager.engine import runner
from container_manager.models import ContainerJob
from container_manager.rules import status as st

logger = logging.getLogger(__name__)


def running_job(execution_id: str) -> ContainerJob | None:
    """The running job whose current execution is ``execution_id``, if any."""
    if not execution_id:
        return None
    return ContainerJob.objects.filter(execution_id=execution_id, status=st.RUNNING).first()


def harvest_now(job_id: Any, source: str) -> runner.StepOutcome:
    """Run ``harvest`` through the step runner for a job an event says has stopped.

    When the platform's own view still says running (its event came first), one more
    harvest is sent ``EVENT_RECHECK_DELAY`` seconds later; the checks remain behind both.
    """
    outcome = runner.run("harvest", job_id)
    if outcome.result == "not-finished":
        dispatch.send_on_commit("harvest", job_id, delay=setting("EVENT_RECHECK_DELAY"))
    logger.info("%s event for job %s: harvest %s", source, job_id, outcome)
    return outcome


def answered(result: str) -> runner.StepOutcome:
    """The outcome of an event that needed no step: acknowledged, with what was found."""
    return runner.StepOutcome(runner.Verdict.DONE, result=result)
