"""The ``check`` step: look at a running job; finish it, stop it on timeout or cancel, or
send the next check.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from container_manager import clock, dispatch
from container_manager.conf import setting
from container_manager.engine import flow
from container_manager.engine.steps.common import check_failed, host_answered, load, schedule_check
from container_manager.engine.steps.harvest import settle
from container_manager.engine.transitions import end_array
from container_manager.executors import base as ex
from container_manager.executors.exceptions import ExecutorError
from container_manager.executors.factory import ExecutorFactory
from container_manager.executors.types import ExecutionState
from container_manager.models import ContainerJob
from container_manager.rules import status as st

logger = logging.getLogger(__name__)


#: A check arriving more than this before the row's ``next_check_at`` is ignored as a duplicate.
EARLY_CHECK_TOLERANCE = 0.25


#: Seconds past the grace the backstop check waits when the platform kills on its own clock
#: and its stop events flow: the event's harvest normally ends the job first.
KILL_BACKSTOP_MARGIN = 1.0


def check(job_id: Any) -> str:
    """Look at a running job: finish it if it exited, timed out or was cancelled; else re-check.

    An array parent runs nothing: its check ends it if its children did (``end_array``).
    """
    job = load(job_id)
    if job is not None and job.is_array_parent:
        return end_array(job)  # sent by the sweep when its counts say every child ended
    if job is None or job.status != st.RUNNING:
        return "nothing-to-do"
    executor = ExecutorFactory().get_executor(job)
    now = clock.now()
    if job.cancel_requested_at and not job.stop_requested_at:
        return _request_stop(job, executor, now, st.CANCELLED)
    if job.next_check_at and job.next_check_at > now + timedelta(seconds=EARLY_CHECK_TOLERANCE):
        # A duplicate, or a transport that delivers early: the check that is due comes
        # anyway, and if it was lost the sweep sends one. Re-sending here would let
        # duplicates live on as parallel chains.
        return "not-due"
    deadline = job.started_at + timedelta(seconds=job.timeout_seconds)
    try:
        state = executor.check_status(job.execution_id)
    except ExecutorError as exc:
        return check_failed(job, now, exc)
    host_answered(job, now)
    if state != ExecutionState.RUNNING:
        return settle(job, executor, state)
    if job.stop_requested_at:
        return _see_stop_through(job, executor, now)
    if now >= deadline:
        return _request_stop(job, executor, now, st.TIMEOUT)
    usage = _sample(executor, job, now)
    schedule_check(job, now, deadline, usage=usage, ends_in=executor.seconds_left(job.execution_id))
    return "running"


def _request_stop(
    job: ContainerJob, executor: ex.ContainerExecutor, now: datetime, final: str
) -> str:
    """Record why the job stops, ask the platform to stop it, and return without waiting.

    ``stop_reason`` on the row decides the final status whichever step then sees the
    execution gone; the check due after STOP_GRACE_SECONDS kills it if it still runs. A
    platform that kills on its own clock (``stop_kills_after_grace``) and whose stop events
    flow is harvested on its event: that check then comes KILL_BACKSTOP_MARGIN later.
    """
    backstop = float(setting("STOP_GRACE_SECONDS"))
    if executor.stop_kills_after_grace and flow.events_flow(job.docker_host):
        backstop += KILL_BACKSTOP_MARGIN
    recorded = ContainerJob.objects.filter(
        pk=job.pk, status=st.RUNNING, attempt_count=job.attempt_count, stop_requested_at=None
    ).update(
        stop_requested_at=now, stop_reason=final, next_check_at=now + timedelta(seconds=backstop)
    )
    if not recorded:
        return "taken"
    job.stop_requested_at, job.stop_reason = now, final
    job.next_check_at = now + timedelta(seconds=backstop)
    try:
        # A platform that says it is still stopping saves looking at it now.
        state = executor.request_stop(job.execution_id) or executor.check_status(job.execution_id)
    except ExecutorError as exc:
        # The row has the request: the check after the grace kills, or retries on its own.
        logger.warning("stop request for job %s failed: %s", job.pk, exc)
        state = ExecutionState.RUNNING
    if state != ExecutionState.RUNNING:
        return settle(job, executor, state)
    dispatch.send_on_commit("check", job.pk, delay=backstop)
    return "stopping"


def _see_stop_through(job: ContainerJob, executor: ex.ContainerExecutor, now: datetime) -> str:
    """A stop was asked and the execution still runs: kill it once the grace has passed."""
    kill_at = job.stop_requested_at + timedelta(seconds=float(setting("STOP_GRACE_SECONDS")))
    if now >= kill_at:
        try:
            executor.kill(job.execution_id)
            state = executor.check_status(job.execution_id)
        except ExecutorError as exc:
            return check_failed(job, now, exc)
        if state != ExecutionState.RUNNING:
            return settle(job, executor, state)
        delay = float(setting("CHECK_DELAY_INITIAL"))
    else:
        delay = (kill_at - now).total_seconds()
    schedule_check(job, now, now, delay=delay)
    return "stopping"


def _sample(executor: ex.ContainerExecutor, job: ContainerJob, now: Any) -> dict[str, float] | None:
    """Usage now, if a sample is due: some platforms take a second to answer one."""
    interval = setting("USAGE_SAMPLE_INTERVAL")
    if not interval or (now - job.started_at).total_seconds() < 1.0:
        return None
    last = job.executor_metadata.get("usage_sampled_at")
    if last and (now - datetime.fromisoformat(last)).total_seconds() < interval:
        return None
    try:
        return executor.sample_usage(job.execution_id)
    except Exception:  # noqa: BLE001 - usage is best effort and must not stop the check
        logger.debug("usage sample of job %s failed", job.pk, exc_info=True)
        return None
