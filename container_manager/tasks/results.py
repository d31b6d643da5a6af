"""A task's ``TaskResult`` as a view of its job: status, times, attempts, return value, errors.

Read from the stored rows only (the job and its executions), never from an executor.
"""

from __future__ import annotations

from typing import Any

from container_manager.models import ContainerExecution, ContainerJob
from container_manager.rules import status as st
from container_manager.rules import taskwire
from container_manager.rules.envtext import parse_env_text
from container_manager.rules.logtext import strip_timestamps
from container_manager.tasks.compat import Task, TaskError, TaskResult, TaskResultStatus
from container_manager.tasks.exceptions import ContainerTaskError, TaskCancelled, TaskTimedOut

#: Job statuses as the framework names them.
STATUS_MAP = {
    st.PENDING: TaskResultStatus.READY,
    st.LAUNCHING: TaskResultStatus.RUNNING,
    st.RUNNING: TaskResultStatus.RUNNING,
    st.COMPLETED: TaskResultStatus.SUCCESSFUL,
    st.FAILED: TaskResultStatus.FAILED,
    st.TIMEOUT: TaskResultStatus.FAILED,
    st.CANCELLED: TaskResultStatus.FAILED,
    st.SKIPPED: TaskResultStatus.FAILED,
}
#: How much of the end of stderr an error without a traceback of its own carries.
STDERR_TAIL_CHARS = 4000

#: A skipped job never ran, as a cancelled one: its task was cancelled.
_REASONS = {st.TIMEOUT: TaskTimedOut, st.CANCELLED: TaskCancelled, st.SKIPPED: TaskCancelled}


def payload_of(job: ContainerJob) -> dict[str, Any] | None:
    """The task payload in the job's environment, or None for a job that is not a task."""
    text = job.override_environment or ""
    if taskwire.PAYLOAD_ENV not in text:
        return None
    try:
        return taskwire.decode_payload(parse_env_text(text).get(taskwire.PAYLOAD_ENV, ""))
    except (ValueError, taskwire.PayloadError):
        return None


def from_job(
    job: ContainerJob, task: Task, alias: str, executions: list[ContainerExecution] | None = None
) -> TaskResult:
    """Build the result of ``task`` from its job row (and its executions, read if not given)."""
    if executions is None:
        executions = list(job.containerexecution_set.select_related("host").order_by("attempt"))
    payload = payload_of(job) or {"args": [], "kwargs": {}}
    status = STATUS_MAP[job.status]
    found, value = False, None
    if job.status == st.COMPLETED:
        found, value = taskwire.read_result(job.clean_output or strip_timestamps(job.stdout_log))
        if not found:
            status = TaskResultStatus.FAILED
    result = TaskResult(
        task=task,
        id=str(job.pk),
        status=status,
        enqueued_at=job.created_at,
        started_at=executions[0].started_at if executions else None,
        finished_at=job.completed_at if job.is_terminal_status else None,
        last_attempted_at=executions[-1].started_at if executions else None,
        args=payload["args"],
        kwargs=payload["kwargs"],
        backend=alias,
        errors=_errors(job, executions, found),
        worker_ids=[e.execution_id or f"{job.pk.hex}-{e.attempt}" for e in executions],
    )
    if found:
        object.__setattr__(result, "_return_value", value)
    return result


def _errors(job: ContainerJob, executions: list[ContainerExecution], found: bool) -> list:
    """One error per attempt that failed: the task's own exception, or why its container ended."""
    errors = [
        _error(ContainerTaskError, execution.error)
        for execution in executions[:-1]
        if execution.status == st.FAILED and execution.error
    ]
    if job.status in (st.PENDING, st.LAUNCHING, st.RUNNING) or (
        job.status == st.COMPLETED and found
    ):
        return errors
    stderr = strip_timestamps(job.stderr_log)
    # Fargate's awslogs mixes both streams into stdout, so the error line may be there.
    raised = taskwire.read_error(stderr) or taskwire.read_error(strip_timestamps(job.stdout_log))
    if raised and job.status == st.FAILED:
        errors.append(TaskError(**raised))
        return errors
    reason = job.last_error or (
        "the container exited without a result line" if job.status == st.COMPLETED else job.status
    )
    tail = stderr[-STDERR_TAIL_CHARS:]
    errors.append(
        _error(_REASONS.get(job.status, ContainerTaskError), reason + ("\n" + tail if tail else ""))
    )
    return errors


def _error(exception: type[BaseException], text: str) -> Any:
    return TaskError(
        exception_class_path=f"{exception.__module__}.{exception.__qualname__}", traceback=text
    )
