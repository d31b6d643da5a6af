"""The steps' shared parts: the job load, the launch request, a harvest's fields, and the
outcomes several steps reach (a failed check, the next check, an unreachable host).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connections

from container_manager import clock, dispatch
from container_manager.conf import setting
from container_manager.engine import flow, outbox, statements, workflows
from container_manager.engine.transitions import move
from container_manager.executors import base as ex
from container_manager.executors.exceptions import ExecutorConnectionError, ExecutorError
from container_manager.executors.types import HarvestResult, LaunchRequest, Network
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.rules import status as st
from container_manager.rules.backoff import backoff
from container_manager.rules.logtext import strip_timestamps


def build_launch_request(job: ContainerJob) -> LaunchRequest:
    """What the executor gets to start the job's current attempt: the one place it is built.

    Raises ``ExecutorError`` (not retryable) when the command cannot be parsed, or when the
    results of the jobs it depends on exceed ``WORKFLOW_INPUTS_MAX_BYTES``. Those results are
    variables of this request only (``workflows.input_environment``), never of the job's row.
    """
    inputs, problem = workflows.input_environment(job)
    if problem:
        raise ExecutorError(problem, retryable=False)
    return LaunchRequest(
        job_id=str(job.id),
        attempt=job.attempt_count,
        launch_key=ex.launch_key(job.id, job.attempt_count),
        image=job.docker_image,
        command=tuple(ex.parse_command(job.command) or ()) or None,
        environment={
            **job.get_all_environment_variables(),
            **workflows.array_environment(job),
            **inputs,
        },
        memory_limit_mb=job.memory_limit,
        cpu_limit=job.cpu_limit,
        networks=tuple(
            Network(net["network_name"], tuple(net.get("aliases") or ()))
            for net in job.network_configuration or []
        ),
        working_directory=job.working_directory or "",
        # The job's own labels, then the app's (which a user's key may not take).
        labels={**job.labels, **ex.labels(job.id, job.attempt_count)},
        timeout_seconds=job.timeout_seconds,
    )


def result_fields(job: ContainerJob, result: HarvestResult) -> dict[str, Any]:
    """The job fields a harvest result sets; usage sampled while it ran is kept unless beaten."""
    memory = result.usage.memory_bytes
    fields = {
        "exit_code": result.exit_code,
        "stdout_log": result.stdout,
        "stderr_log": result.stderr,
        "docker_log": result.platform_log,
        "clean_output": (
            strip_timestamps(result.stdout) if result.clean_output is None else result.clean_output
        ),
        "started_at": result.started_at or job.started_at,
        "completed_at": result.finished_at,
        "max_memory_usage": job.max_memory_usage if memory is None else int(memory),
        "cpu_usage_percent": (
            job.cpu_usage_percent if result.usage.cpu_percent is None else result.usage.cpu_percent
        ),
    }
    if result.reason:
        fields["last_error"] = result.reason
    return fields


def load(job_id: Any) -> ContainerJob | None:
    """The job with its host and template, and what spares the launch and the events a read.

    One SELECT, compiled once per process (``statements.fetch``).
    """
    connection = connections[ContainerJob.objects.db]
    found = statements.fetch("step load", connection, _load_query, job_id)
    return found[0] if found else None


def _load_query(job_id: Any) -> Any:
    return (
        ContainerJob.objects.select_related("docker_host", "environment_template")
        .annotate(**workflows.annotations(), **outbox.annotations())
        .filter(pk=job_id)
        .order_by()[:1]
    )


def check_failed(
    job: ContainerJob, now: datetime, exc: ExecutorError, what: str = "status check"
) -> str:
    """A status check (or stop, or harvest) failed: fail the job, or look again with backoff.

    An unreachable host marks the host unhealthy; the job fails only once it has waited
    HOST_UNREACHABLE_TIMEOUT for it.
    """
    if not exc.retryable:
        return fail_running(job, f"{what} failed: {exc}")
    waiting: dict[str, Any] = {}
    waited = 0.0
    if isinstance(exc, ExecutorConnectionError):
        mark_unreachable(job, exc, now)
        since = job.waiting_for_host_since or now
        waited = (now - since).total_seconds()
        limit = float(setting("HOST_UNREACHABLE_TIMEOUT"))
        if waited >= limit:
            return fail_running(job, unreachable_message(job, limit, exc))
        waiting["waiting_for_host_since"] = since
    delay = unreachable_delay(waited)
    schedule_check(
        job, now, now, delay=delay, last_error=f"{what} failed, will retry: {exc}", extra=waiting
    )
    return "check-error"


def schedule_check(
    job: ContainerJob,
    now: Any,
    deadline: Any,
    usage: dict[str, float] | None = None,
    last_error: str | None = None,
    delay: float | None = None,
    extra: dict[str, Any] | None = None,
    ends_in: float | None = None,
) -> None:
    """Send the next check, after ``delay`` or a growing delay capped at the deadline.

    The growing delay is also capped at ``ends_in``, when the executor knows the run ends then.
    """
    if delay is None:
        elapsed = (now - job.started_at).total_seconds()
        backoff = min(
            setting("CHECK_DELAY_MAX"),
            max(setting("CHECK_DELAY_INITIAL"), elapsed * (setting("CHECK_DELAY_FACTOR") - 1)),
        )
        delay = min(
            flow.check_delay(job, backoff), max((deadline - now).total_seconds(), 0.0) + 0.05
        )
        if ends_in is not None:
            delay = min(delay, max(ends_in, 0.01))
    fields: dict[str, Any] = {"next_check_at": now + timedelta(seconds=delay), **(extra or {})}
    if job.waiting_for_host_since and not extra:
        fields["waiting_for_host_since"] = None
    if usage:
        fields.update(_usage_fields(job, usage))
        fields["executor_metadata"] = {**job.executor_metadata, "usage_sampled_at": now.isoformat()}
    if last_error is not None:
        fields["last_error"] = last_error
    # Only the copy of a duplicated check that moves next_check_at sends the next one,
    # so duplicate messages do not multiply into parallel check chains.
    updated = ContainerJob.objects.filter(
        pk=job.pk,
        status=st.RUNNING,
        attempt_count=job.attempt_count,
        next_check_at=job.next_check_at,
    ).update(**fields)
    if updated:
        dispatch.send_on_commit("check", job.pk, delay=delay)


def _usage_fields(job: ContainerJob, usage: dict[str, float]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    memory = usage.get("memory_bytes")
    if memory is not None and memory > (job.max_memory_usage or 0):
        fields["max_memory_usage"] = int(memory)
    if usage.get("cpu_percent") is not None:
        fields["cpu_usage_percent"] = float(usage["cpu_percent"])
    return fields


def fail_running(job: ContainerJob, error: str) -> str:
    """End a running job as failed with ``error`` (its execution is not looked at again)."""
    now = clock.now()
    moved = move(
        job, st.RUNNING, st.FAILED, guard={"attempt_count": job.attempt_count},
        last_error=error, completed_at=now, next_check_at=None, waiting_for_host_since=None,
        execution={"status": st.FAILED, "error": error, "finished_at": now},
    )  # fmt: skip
    return "failed" if moved else "taken"


def cancel_pending(job: ContainerJob) -> str:
    """End a pending job that has a cancel request: cancelled, without a container."""
    now = clock.now()
    moved = move(
        job, st.PENDING, st.CANCELLED, guard={"attempt_count": job.attempt_count},
        completed_at=now, last_error="cancelled on request before it launched",
    )  # fmt: skip
    return st.CANCELLED if moved else "taken"


def mark_unreachable(job: ContainerJob, exc: ExecutorError, now: datetime) -> None:
    """Record on the host that a step could not reach it (shown in the admin and dashboard)."""
    hosts = ExecutorHost.objects.filter(pk=job.docker_host_id)
    hosts.filter(unreachable_since=None).update(unreachable_since=now)
    hosts.update(last_health_check_at=now, last_health_ok=False, last_health_error=str(exc))
    job.docker_host.unreachable_since = job.docker_host.unreachable_since or now


def host_answered(job: ContainerJob, now: datetime) -> None:
    """The platform answered a step: a host marked unreachable is healthy again (no query else)."""
    if job.docker_host.unreachable_since is None:
        return
    ExecutorHost.objects.filter(pk=job.docker_host_id).exclude(unreachable_since=None).update(
        unreachable_since=None, last_health_check_at=now, last_health_ok=True, last_health_error=""
    )
    job.docker_host.unreachable_since = None


def unreachable_message(job: ContainerJob, limit: float, exc: ExecutorError) -> str:
    """The ``last_error`` of a job whose host stayed unreachable for ``limit`` seconds."""
    return (
        f"host {job.docker_host.name!r} could not be reached for {limit:g} seconds "
        f"(HOST_UNREACHABLE_TIMEOUT); gave up waiting for it: {exc}"
    )


def unreachable_delay(waited: float) -> float:
    """Backoff while a host is unreachable: about half the time waited so far, within bounds.

    >>> unreachable_delay(0) >= 0.5 * setting("RETRY_BACKOFF_BASE")
    True
    >>> unreachable_delay(10**6) <= setting("RETRY_BACKOFF_MAX")
    True
    """
    return backoff(1, setting("RETRY_BACKOFF_BASE"), setting("RETRY_BACKOFF_MAX"), waited)


def retry_delay(attempt: int) -> float:
    """Backoff before the next attempt: exponential in ``attempt``, capped, with jitter.

    >>> base = setting("RETRY_BACKOFF_BASE")
    >>> 0.5 * base <= retry_delay(1) <= base
    True
    """
    return backoff(attempt, setting("RETRY_BACKOFF_BASE"), setting("RETRY_BACKOFF_MAX"))
