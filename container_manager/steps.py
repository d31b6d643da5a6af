"""The steps (launch, check, harvest, cancel; notify for webhooks) and the sweep that re-sends them.

Each step reloads the row, acts only if the row says so, and is safe to run twice.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber

from container_manager import (
    clock,
    cost,
    counters,
    dispatch,
    hooks,
    logs,
    notify,
    scheduler,
    timings,
    workflows,
)
from container_manager import status as st
from container_manager.conf import setting
from container_manager.events import flow
from container_manager.executors import base as ex
from container_manager.executors.exceptions import ExecutorError
from container_manager.executors.factory import ExecutorFactory
from container_manager.executors.types import ExecutionState, HarvestResult, LaunchRequest, Network
from container_manager.logtext import strip_timestamps
from container_manager.models import ContainerJob
from container_manager.transitions import HostFull, begin_launch, move

logger = logging.getLogger(__name__)

#: Seconds the sweep leaves a due job alone, so it does not race the message already on its way.
SWEEP_GRACE_SECONDS = 2
#: A check arriving more than this before the row's ``next_check_at`` is ignored as a duplicate.
EARLY_CHECK_TOLERANCE = 0.25


def launch(job_id: Any) -> str:
    """Start the job's container, or take over a launch whose lease expired."""
    job = _load(job_id)
    if job is None:
        return "missing"
    now = clock.now()
    lease = now + timedelta(seconds=setting("LAUNCH_LEASE_SECONDS"))
    if job.status == st.PENDING:
        if job.run_after and job.run_after > now:
            return "not-due"
        waiting = workflows.launch_gate(job)
        if waiting:
            return waiting
        if job.cancel_requested_at:
            return _cancel_pending(job)
        if not job.docker_host.is_available():
            return "waiting-for-slot"  # cheap answer; begin_launch re-checks atomically
        try:
            if not begin_launch(job, lease):
                return "taken"
        except HostFull:
            return "waiting-for-slot"
    elif job.status == st.LAUNCHING:
        if job.lease_expires_at and job.lease_expires_at > now:
            return "in-progress"
        guard = {"attempt_count": job.attempt_count, "lease_expires_at": job.lease_expires_at}
        if not move(job, st.LAUNCHING, st.LAUNCHING, guard=guard, lease_expires_at=lease):
            return "taken"
    else:
        return "nothing-to-do"
    return _start(job)


def check(job_id: Any) -> str:
    """Look at a running job: finish it if it exited, timed out or was cancelled; else re-check."""
    job = _load(job_id)
    if job is None or job.status != st.RUNNING or job.is_array_parent:
        return "nothing-to-do"
    executor = ExecutorFactory().get_executor(job)
    now = clock.now()
    if job.cancel_requested_at:
        return _stop_and_finish(job, executor, st.CANCELLED, "cancelled on request")
    if job.next_check_at and job.next_check_at > now + timedelta(seconds=EARLY_CHECK_TOLERANCE):
        # A duplicate, or a transport that delivers early: the check that is due comes
        # anyway, and if it was lost the sweep sends one. Re-sending here would let
        # duplicates live on as parallel chains.
        return "not-due"
    deadline = job.started_at + timedelta(seconds=job.timeout_seconds)
    try:
        state = executor.check_status(job.execution_id)
    except ExecutorError as exc:
        if not exc.retryable:
            return _fail_running(job, f"status check failed: {exc}")
        _schedule_check(job, now, deadline, last_error=f"status check failed, will retry: {exc}")
        return "check-error"
    if state == ExecutionState.RUNNING and now >= deadline:
        return _stop_and_finish(job, executor, st.TIMEOUT, _timed_out(job))
    if state == ExecutionState.RUNNING:
        _schedule_check(job, now, deadline, usage=_sample(executor, job, now))
        return "running"
    return _settle(job, executor, state)


def harvest(job_id: Any) -> str:
    """Store the results of a job whose execution has finished; a running one is left alone.

    Sent by platform events, which may arrive while a check is stopping the job for a
    cancel request or its timeout: the job then ends as that check would end it.
    """
    job = _load(job_id)
    if job is None or job.status != st.RUNNING or job.is_array_parent:
        return "nothing-to-do"
    executor = ExecutorFactory().get_executor(job)
    state = executor.check_status(job.execution_id)
    if state == ExecutionState.RUNNING:
        return "not-finished"
    if state != ExecutionState.NOT_FOUND and job.cancel_requested_at:
        return _harvest(job, executor, final=st.CANCELLED, reason="cancelled on request")
    deadline = job.started_at + timedelta(seconds=job.timeout_seconds)
    if state != ExecutionState.NOT_FOUND and clock.now() >= deadline:
        return _harvest(job, executor, final=st.TIMEOUT, reason=_timed_out(job))
    return _settle(job, executor, state)


def cancel(job_id: Any) -> str:
    """Carry out a cancel request: a pending job ends at once, a running one is stopped."""
    job = _load(job_id)
    if job is None or not job.cancel_requested_at:
        return "nothing-to-do"
    if job.is_array_parent and job.status in st.LIVE:
        return workflows.cancel_array(job)
    if job.status == st.PENDING:
        return _cancel_pending(job)
    if job.status == st.RUNNING:
        return check(job_id)
    if job.status == st.LAUNCHING:
        # The first check after the launch records the execution carries it out.
        return "after-launch"
    return "nothing-to-do"


def submitted(job: ContainerJob, using: str | None = None) -> None:
    """A new job's row was inserted: send its first launch once the row commits."""
    dispatch.send_on_commit("launch", job.pk, using=using)


def request_cancel(job_id: Any) -> bool:
    """Record a cancel request and send the cancel step; False if the job is already terminal."""
    now = clock.now()
    recorded = ContainerJob.objects.filter(
        pk=job_id, status__in=st.LIVE, cancel_requested_at__isnull=True
    ).update(cancel_requested_at=now, updated_at=now)
    if not recorded:
        return ContainerJob.objects.filter(pk=job_id, status__in=st.LIVE).exists()
    dispatch.send_on_commit("cancel", job_id)
    return True


def sweep(now: Any = None) -> dict[str, int]:
    """Find every job with work due, from the rows alone, and send its step again.

    Pending jobs that are due, whose dependencies completed and whose host has a
    free slot; pending jobs whose dependency ended badly (their launch cancels
    them); launches whose lease expired; running jobs whose check is due
    (timeouts included, as a check is always due by the deadline); cancel
    requests; webhook deliveries whose attempt is due. Then it fires the
    schedules that are due (``scheduler.fire_due``). A fixed number of indexed
    queries, whatever the table size, plus the work of what is due.
    """
    now = now or clock.now()
    settled = now - timedelta(seconds=SWEEP_GRACE_SECONDS)
    batch = setting("SWEEP_BATCH_SIZE")
    jobs = ContainerJob.objects
    due = {
        "launch": _launchable(settled),
        "settle": workflows.doomed(settled),
        # Most overdue first: when more is due than one batch, the oldest goes now.
        "relaunch": jobs.filter(status=st.LAUNCHING, lease_expires_at__lte=now).order_by(
            "lease_expires_at"
        ),
        "check": jobs.filter(status=st.RUNNING, next_check_at__lte=settled).order_by(
            "next_check_at"
        ),
        "cancel": jobs.filter(cancel_requested_at__lte=settled, status__in=st.LIVE).order_by(
            "cancel_requested_at"
        ),
    }
    sent = {}
    messages = []
    for kind, queryset in due.items():
        ids = list(queryset.values_list("pk", flat=True)[:batch])
        step = "launch" if kind in ("relaunch", "settle") else kind
        messages.extend((step, job_id, 0) for job_id in ids)
        sent[kind] = len(ids)
    sent["notify"] = len(notifications := notify.due(settled, batch))
    messages.extend(("notify", delivery_id, 0) for delivery_id in notifications)
    dispatch.send_many_on_commit(messages)
    sent["scheduled"] = scheduler.fire_due(now)
    counters.sweep_found(sent)
    return sent


def _launchable(settled: Any) -> Any:
    """Due pending jobs, at most as many per host as it has free slots, best first."""
    place = Window(
        RowNumber(),
        partition_by=[F("docker_host_id")],
        order_by=[F("priority").desc(), F("created_at").asc()],
    )
    return (
        ContainerJob.objects.filter(
            Q(run_after__lte=settled) | Q(run_after__isnull=True, created_at__lte=settled),
            *workflows.launchable(),
            status=st.PENDING,
            docker_host__is_active=True,
            docker_host__current_job_count__lt=F("docker_host__max_concurrent_jobs"),
        )
        .annotate(
            place=place,
            free=F("docker_host__max_concurrent_jobs") - F("docker_host__current_job_count"),
        )
        .filter(place__lte=F("free"))
        .order_by("-priority", "created_at")
    )


#: The steps a message may name: ``name -> function(job_id) -> outcome text``.
STEPS: dict[str, Callable[[Any], str]] = {
    "launch": launch,
    "check": check,
    "harvest": harvest,
    "cancel": cancel,
}


def register_step(name: str, function: Callable[[Any], str]) -> None:
    """Add a step that messages may name (e.g. ``notify``); it must be idempotent like these."""
    if name == "sweep":
        raise ValueError("'sweep' is the sweep's name, not a step's")
    STEPS[name] = function


def run_step(step: str, job_id: Any) -> str:
    """Run a step by name (``"sweep"`` ignores ``job_id``); ``KeyError`` for an unknown one.

    Exceptions propagate; ``container_manager.runner.run`` decides what they mean.
    """
    if step == "sweep":
        return str(sweep())
    with logs.step_context(step, job_id):
        return counters.observed(step, STEPS[step], job_id)


def build_launch_request(job: ContainerJob) -> LaunchRequest:
    """What the executor gets to start the job's current attempt: the one place it is built.

    Raises ``ExecutorError`` (not retryable) when the command cannot be parsed.
    """
    return LaunchRequest(
        job_id=str(job.id),
        attempt=job.attempt_count,
        launch_key=ex.launch_key(job.id, job.attempt_count),
        image=job.docker_image,
        command=tuple(ex.parse_command(job.command) or ()) or None,
        environment={**job.get_all_environment_variables(), **workflows.array_environment(job)},
        memory_limit_mb=job.memory_limit,
        cpu_limit=job.cpu_limit,
        networks=tuple(
            Network(net["network_name"], tuple(net.get("aliases") or ()))
            for net in job.network_configuration or []
        ),
        working_directory=job.working_directory or "",
        labels=ex.labels(job.id, job.attempt_count),
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


# -- helpers --------------------------------------------------------------------


def _load(job_id: Any) -> ContainerJob | None:
    return (
        ContainerJob.objects.select_related("docker_host", "environment_template")
        .filter(pk=job_id)
        .first()
    )


def _start(job: ContainerJob) -> str:
    attempt_guard = {"attempt_count": job.attempt_count}
    try:
        executor = ExecutorFactory().get_executor(job)
        launched, result = True, executor.start(build_launch_request(job))
    except ExecutorError as exc:
        if exc.retryable:
            return _retry_or_fail(job, str(exc))
        launched, result = False, str(exc)
    except Exception as exc:  # noqa: BLE001 - an unexpected crash is worth another attempt
        logger.exception("launch of job %s crashed", job.pk)
        return _retry_or_fail(job, f"{type(exc).__name__}: {exc}")
    now = clock.now()
    if not launched:
        move(
            job, st.LAUNCHING, st.FAILED, guard=attempt_guard,
            last_error=f"launch failed: {result}", completed_at=now, lease_expires_at=None,
            execution={"status": st.FAILED, "error": result, "finished_at": now},
        )  # fmt: skip
        return "failed"
    first_check = flow.first_check_delay(job, result, setting("CHECK_DELAY_INITIAL"))
    moved = move(
        job, st.LAUNCHING, st.RUNNING, guard=attempt_guard,
        execution_id=result, started_at=now, lease_expires_at=None,
        next_check_at=now + timedelta(seconds=first_check),
        execution={"status": st.RUNNING, "execution_id": result, "accepted_at": now},
    )  # fmt: skip
    if not moved:
        return "taken"
    # A cancel requested during the launch is carried out by this first check.
    dispatch.send_on_commit("check", job.pk, delay=first_check)
    return "launched"


def _retry_or_fail(job: ContainerJob, error: str) -> str:
    now = clock.now()
    guard = {"attempt_count": job.attempt_count}
    execution = {"status": st.FAILED, "error": error, "finished_at": now}
    if job.attempt_count >= job.max_attempts:
        move(
            job, st.LAUNCHING, st.FAILED, guard=guard, completed_at=now, lease_expires_at=None,
            last_error=f"launch failed after {job.attempt_count} attempts: {error}",
            execution=execution,
        )  # fmt: skip
        return "failed"
    delay = retry_delay(job.attempt_count)
    moved = move(
        job, st.LAUNCHING, st.PENDING, guard=guard, lease_expires_at=None,
        run_after=now + timedelta(seconds=delay),
        last_error=f"attempt {job.attempt_count} failed, retrying in {delay:.1f}s: {error}",
        execution=execution,
    )  # fmt: skip
    if moved:
        dispatch.send_on_commit("launch", job.pk, delay=delay)
    return "retrying"


def retry_delay(attempt: int) -> float:
    """Backoff before the next attempt: exponential in ``attempt``, capped, with jitter.

    >>> base = setting("RETRY_BACKOFF_BASE")
    >>> 0.5 * base <= retry_delay(1) <= base
    True
    """
    ceiling = min(setting("RETRY_BACKOFF_MAX"), setting("RETRY_BACKOFF_BASE") * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)


def _schedule_check(
    job: ContainerJob,
    now: Any,
    deadline: Any,
    usage: dict[str, float] | None = None,
    last_error: str | None = None,
) -> None:
    elapsed = (now - job.started_at).total_seconds()
    backoff = min(
        setting("CHECK_DELAY_MAX"),
        max(setting("CHECK_DELAY_INITIAL"), elapsed * (setting("CHECK_DELAY_FACTOR") - 1)),
    )
    delay = min(flow.check_delay(job, backoff), max((deadline - now).total_seconds(), 0.0) + 0.05)
    fields: dict[str, Any] = {"next_check_at": now + timedelta(seconds=delay)}
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


def _usage_fields(job: ContainerJob, usage: dict[str, float]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    memory = usage.get("memory_bytes")
    if memory is not None and memory > (job.max_memory_usage or 0):
        fields["max_memory_usage"] = int(memory)
    if usage.get("cpu_percent") is not None:
        fields["cpu_usage_percent"] = float(usage["cpu_percent"])
    return fields


def _stop_and_finish(
    job: ContainerJob, executor: ex.ContainerExecutor, final: str, reason: str
) -> str:
    try:
        executor.stop(job.execution_id)
    except ExecutorError as exc:
        if exc.retryable:
            _schedule_check(job, clock.now(), clock.now(), last_error=f"stop failed: {exc}")
            return "stop-error"
    return _harvest(job, executor, final=final, reason=reason)


def _settle(job: ContainerJob, executor: ex.ContainerExecutor, state: ExecutionState) -> str:
    """The execution stopped running: store its results, or fail the job if it vanished."""
    if state == ExecutionState.NOT_FOUND:
        return _fail_running(job, _vanished(job))
    return _harvest(job, executor)


def _harvest(
    job: ContainerJob, executor: ex.ContainerExecutor, final: str | None = None, reason: str = ""
) -> str:
    try:
        result = executor.collect(job.execution_id)
    except ExecutorError as exc:
        if exc.retryable:
            now = clock.now()
            _schedule_check(job, now, now + timedelta(seconds=60), last_error=f"harvest: {exc}")
            return "harvest-error"
        result, reason = None, f"results could not be read: {exc}"
    if result is None and final is None:
        return _fail_running(job, reason or "results could not be read from the platform")
    if result is not None:
        for name, value in result_fields(job, result).items():
            setattr(job, name, value)
    now = clock.now()
    # The platform's own clock says when it ran; never let the end precede the start.
    completed_at = max(job.completed_at or now, job.started_at)
    status = final or (st.COMPLETED if job.exit_code == 0 else st.FAILED)
    last_error = reason or job.last_error or ""
    if status == st.FAILED and not last_error:
        last_error = f"exited with code {job.exit_code}"
    results = {
        "exit_code": job.exit_code,
        "stdout_log": job.stdout_log,
        "stderr_log": job.stderr_log,
        "docker_log": job.docker_log,
        "max_memory_usage": job.max_memory_usage,
        "cpu_usage_percent": job.cpu_usage_percent,
    }
    moved = move(
        job, st.RUNNING, status, guard={"attempt_count": job.attempt_count},
        clean_output=job.clean_output, started_at=job.started_at, completed_at=completed_at,
        next_check_at=None, last_error=last_error, **results, **cost.fields(job, completed_at),
        execution={**results, "status": status, "finished_at": completed_at,
                   "error": last_error if status != st.COMPLETED else "",
                   **timings.harvested(job, result)},
    )  # fmt: skip
    if not moved:
        return "taken"
    _cleanup(executor, job)
    return status


def _fail_running(job: ContainerJob, error: str) -> str:
    now = clock.now()
    moved = move(
        job, st.RUNNING, st.FAILED, guard={"attempt_count": job.attempt_count},
        last_error=error, completed_at=now, next_check_at=None,
        execution={"status": st.FAILED, "error": error, "finished_at": now},
    )  # fmt: skip
    return "failed" if moved else "taken"


def _cancel_pending(job: ContainerJob) -> str:
    now = clock.now()
    moved = move(
        job, st.PENDING, st.CANCELLED, guard={"attempt_count": job.attempt_count},
        completed_at=now, last_error="cancelled on request before it launched",
    )  # fmt: skip
    return st.CANCELLED if moved else "taken"


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


def handed_over(job_id: Any) -> None:
    """A freed slot was given to ``job_id`` (``transitions.hand_over``): send its launch."""
    dispatch.send_on_commit("launch", job_id)


hooks.bind(
    launch=launch,
    harvest=harvest,
    request_cancel=request_cancel,
    submitted=submitted,
    handed_over=handed_over,
)
