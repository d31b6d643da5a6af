"""The ``harvest`` step: store the results of an execution that stopped, and the final move.

Also how a stopped execution is settled for the ``check`` step (``settle``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from container_manager import clock
from container_manager.conf import setting
from container_manager.engine import cost, timings, workflows
from container_manager.engine.steps.common import check_failed, fail_running, load, result_fields
from container_manager.engine.transitions import move
from container_manager.executors import base as ex
from container_manager.executors.exceptions import ExecutorError
from container_manager.executors.factory import ExecutorFactory
from container_manager.executors.types import ExecutionState, HarvestResult
from container_manager.models import ContainerJob
from container_manager.rules import status as st
from container_manager.rules import taskwire
from container_manager.rules.logtext import strip_timestamps

logger = logging.getLogger(__name__)


def harvest(job_id: Any) -> str:
    """Store the results of a job whose execution has finished; a running one is left alone.

    Sent by platform events, which may arrive while a check is stopping the job for a
    cancel request or its timeout: the job then ends as that check would end it.
    """
    job = load(job_id)
    if job is None or job.status != st.RUNNING or job.is_array_parent:
        return "nothing-to-do"
    executor = ExecutorFactory().get_executor(job)
    state = executor.check_status(job.execution_id)
    if state == ExecutionState.RUNNING:
        return "not-finished"
    deadline = job.started_at + timedelta(seconds=job.timeout_seconds)
    intended = ""
    if state != ExecutionState.NOT_FOUND and job.cancel_requested_at:
        intended = st.CANCELLED
    elif state != ExecutionState.NOT_FOUND and clock.now() >= deadline:
        intended = st.TIMEOUT
    return settle(job, executor, state, intended)


def settle(
    job: ContainerJob, executor: ex.ContainerExecutor, state: ExecutionState, intended: str = ""
) -> str:
    """The execution stopped running: store its results, or fail the job if it vanished.

    A job asked to stop ends as ``stop_reason`` says, even when its execution is gone;
    ``intended`` (a harvest seeing a cancel request or a passed deadline first) else.
    """
    if state == ExecutionState.NOT_FOUND and not job.stop_reason:
        return fail_running(job, _vanished(job))
    if state == ExecutionState.NOT_FOUND:
        return _finish(job, executor, None)
    return _harvest(job, executor, intended)


def _harvest(job: ContainerJob, executor: ex.ContainerExecutor, intended: str = "") -> str:
    try:
        result = executor.collect(job.execution_id)
    except ExecutorError as exc:
        if exc.retryable:
            check_failed(job, clock.now(), exc, what="harvest")
            return "harvest-error"
        if not job.stop_reason:
            return fail_running(job, f"results could not be read: {exc}")
        result = None
    if result is None and not job.stop_reason:
        return fail_running(job, "results could not be read from the platform")
    return _finish(job, executor, result, intended)


def _finish(
    job: ContainerJob,
    executor: ex.ContainerExecutor,
    result: HarvestResult | None,
    intended: str = "",
) -> str:
    """The final move: the status and reason follow from the result and the row's stop_reason.

    The move is guarded by the ``stop_reason`` this step read: if a stop was asked meanwhile
    (so the exit code may be the stop's own 137), the row's reason wins and the move is redone.
    A job with ``returns_result`` stores its result in that same move, or ends failed without
    one (``workflows.produced``).
    """
    accepted = job.started_at  # the launch step's stamp, before the platform's start time
    fields = result_fields(job, result) if result is not None else {}
    fields.pop("last_error", None)
    for name, value in fields.items():
        setattr(job, name, value)
    now = clock.now()
    # The platform's own clock says when it ran; never let the end precede the start.
    completed_at = max(job.completed_at or now, job.started_at)
    # The logs are written once, on the job: its last attempt reads them there.
    logs = {
        "stdout_log": job.stdout_log,
        "stderr_log": job.stderr_log,
        "docker_log": job.docker_log,
    }
    results = {
        "exit_code": job.exit_code,
        "max_memory_usage": job.max_memory_usage,
        "cpu_usage_percent": job.cpu_usage_percent,
    }
    for _ in range(2):
        status = job.stop_reason or intended or (st.COMPLETED if job.exit_code == 0 else st.FAILED)
        status, outputs = workflows.produced(job, status)
        last_error = outputs.pop("last_error", None) or final_reason(job, status, result)
        moved = move(
            job, st.RUNNING, status,
            guard={"attempt_count": job.attempt_count, "stop_reason": job.stop_reason},
            clean_output=job.clean_output, started_at=job.started_at, completed_at=completed_at,
            **outputs,
            next_check_at=None, last_error=last_error, waiting_for_host_since=None, **results,
            **logs, **cost.fields(job, completed_at),
            execution={**results, "status": status, "finished_at": completed_at,
                       "error": last_error, **timings.harvested(job, result, accepted)},
        )  # fmt: skip
        if moved:
            _cleanup(executor, job)
            return status
        current = (
            ContainerJob.objects.filter(
                pk=job.pk, status=st.RUNNING, attempt_count=job.attempt_count
            )
            .values_list("stop_reason", flat=True)
            .first()
        )
        if current is None or current == job.stop_reason:
            return "taken"
        job.stop_reason = current
    return "taken"


def final_reason(job: ContainerJob, status: str, result: HarvestResult | None) -> str:
    """The job's final ``last_error``: why it ended as ``status``; empty for success."""
    if status == st.COMPLETED:
        return ""
    if status == st.TIMEOUT:
        return _timed_out(job)
    if status == st.CANCELLED:
        return "cancelled on request"
    reason = (result.reason if result else "") or f"exited with code {job.exit_code}"
    raised = task_exception(job)
    return f"{raised} ({reason})" if raised else reason


def task_exception(job: ContainerJob) -> str:
    """A task job's raised exception as its runner reported it (``ValueError: bad input``), or "".

    Bounded by ``TASK_ERROR_MAX_CHARS``; read from stderr, then stdout (Fargate's awslogs mixes
    both streams). A job that carries no task payload answers "" whatever its logs print.
    """
    if taskwire.PAYLOAD_ENV not in (job.override_environment or ""):
        return ""
    limit = int(setting("TASK_ERROR_MAX_CHARS"))
    return taskwire.read_error_message(
        strip_timestamps(job.stderr_log), limit
    ) or taskwire.read_error_message(strip_timestamps(job.stdout_log), limit)


def _timed_out(job: ContainerJob) -> str:
    return f"timed out after {job.timeout_seconds} seconds; the container was stopped"


def _vanished(job: ContainerJob) -> str:
    return (
        f"execution {job.execution_id!r} is no longer on host {job.docker_host.name!r}; "
        "its results could not be collected"
    )


def _cleanup(executor: ex.ContainerExecutor, job: ContainerJob) -> None:
    try:
        executor.cleanup(job.execution_id)
    except Exception:  # noqa: BLE001 - the results are stored; cleanup_containers removes leftovers
        logger.warning("cleanup of job %s execution %s failed", job.pk, job.execution_id)
