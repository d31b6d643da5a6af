"""The steps (launch, check, harvest, cancel; notify for webhooks) and the sweep that re-sends them.

Each step reloads the row, acts only if the row says so, and is safe to run twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Case, F, Q, Value, When, Window
from django.db.models.functions import RowNumber

from container_manager import clock, dispatch, notify, outbox, scheduler, timings, workflows
from container_manager.conf import setting
from container_manager.engine import cost
from container_manager.events import flow
from container_manager.executors import base as ex
from container_manager.executors.exceptions import ExecutorConnectionError, ExecutorError
from container_manager.executors.factory import ExecutorFactory
from container_manager.executors.types import ExecutionState, HarvestResult, LaunchRequest, Network
from container_manager.models import ContainerJob, ExecutorHost, HostSlot
from container_manager.models.manager import LAUNCH_ORDER
from container_manager.rules import status as st
from container_manager.rules.backoff import backoff
from container_manager.rules.logtext import strip_timestamps
from container_manager.telemetry import counters
from container_manager.telemetry import logging as telemetry_logging
from container_manager.transitions import HostFull, begin_launch, move

logger = logging.getLogger(__name__)

#: Seconds the sweep leaves a due job alone, so it does not race the message already on its way.
SWEEP_GRACE_SECONDS = 2
#: A check arriving more than this before the row's ``next_check_at`` is ignored as a duplicate.
EARLY_CHECK_TOLERANCE = 0.25
#: Seconds past the grace the backstop check waits when the platform kills on its own clock
#: and its stop events flow: the event's harvest normally ends the job first.
KILL_BACKSTOP_MARGIN = 1.0


def launch(job_id: Any) -> str:
    """Start the job's container, reconcile a launch whose launcher went quiet, or take it over.

    A launch not recorded ``LAUNCH_RECONCILE_SECONDS`` after it began is looked up on the
    platform by its launch key and recorded as running if found; one whose lease expired
    is taken over with the same key, so it finds the container already started. Before
    the platform is called, a launch hint due at that delay is sent (``send_backstop``):
    if this launcher dies, that message reconciles the launch; on a job recorded running
    by then it is one SELECT and ``nothing-to-do``.
    """
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
        try:  # begin_launch finds a free slot row or raises HostFull, in one statement
            if not begin_launch(job, lease):
                return "taken"
        except HostFull:
            return "waiting-for-slot"
    elif job.status == st.LAUNCHING:
        if job.lease_expires_at and job.lease_expires_at > now:
            return _reconcile(job, now)
        guard = {"attempt_count": job.attempt_count, "lease_expires_at": job.lease_expires_at}
        if not move(job, st.LAUNCHING, st.LAUNCHING, guard=guard, lease_expires_at=lease):
            return "taken"
    else:
        return "nothing-to-do"
    dispatch.send_backstop("launch", job.pk, delay=setting("LAUNCH_RECONCILE_SECONDS"))
    return _start(job)


def check(job_id: Any) -> str:
    """Look at a running job: finish it if it exited, timed out or was cancelled; else re-check."""
    job = _load(job_id)
    if job is None or job.status != st.RUNNING or job.is_array_parent:
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
        return _check_failed(job, now, exc)
    _host_answered(job, now)
    if state != ExecutionState.RUNNING:
        return _settle(job, executor, state)
    if job.stop_requested_at:
        return _see_stop_through(job, executor, now)
    if now >= deadline:
        return _request_stop(job, executor, now, st.TIMEOUT)
    usage = _sample(executor, job, now)
    _schedule_check(
        job, now, deadline, usage=usage, ends_in=executor.seconds_left(job.execution_id)
    )
    return "running"


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
    deadline = job.started_at + timedelta(seconds=job.timeout_seconds)
    intended = ""
    if state != ExecutionState.NOT_FOUND and job.cancel_requested_at:
        intended = st.CANCELLED
    elif state != ExecutionState.NOT_FOUND and clock.now() >= deadline:
        intended = st.TIMEOUT
    return _settle(job, executor, state, intended)


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


def sweep(now: Any = None) -> dict[str, int]:
    """Find every job with work due, from the rows alone, and send its step again.

    Pending jobs that are due, whose dependencies completed and whose host has a
    free slot; pending jobs whose dependency ended badly (their launch cancels
    them); launches not recorded ``LAUNCH_RECONCILE_SECONDS`` after they began (to
    reconcile) or whose lease expired (to take over); running jobs whose check is
    due (timeouts included, as a check is always due by the deadline); cancel
    requests; webhook deliveries whose attempt is due. Then it fires the
    schedules that are due (``scheduler.fire_due``) and sets every host's
    ``current_job_count`` that differs from its slot rows. A fixed number of
    indexed queries, whatever the table size, plus the work of what is due.
    """
    now = now or clock.now()
    settled = now - timedelta(seconds=SWEEP_GRACE_SECONDS)
    batch = setting("SWEEP_BATCH_SIZE")
    jobs = ContainerJob.objects
    due = {
        "launch": _launchable(settled, batch),
        "settle": workflows.doomed(settled),
        # Most overdue first: when more is due than one batch, the oldest goes now.
        "relaunch": jobs.filter(
            status=st.LAUNCHING, lease_expires_at__lte=now + _reconcile_margin()
        ).order_by("lease_expires_at"),
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
    HostSlot.objects.refresh_counts()
    counters.sweep_found(sent)
    return sent


def _launchable(settled: Any, batch: int) -> Any:
    """Due pending jobs, at most as many per host as it has free slots, best first.

    The free slots are counted once per host (``HostSlot.objects.free_by_host``), not per
    job, and only up to ``batch``: no more launches than that are sent anyway.
    """
    free = HostSlot.objects.free_by_host(batch)
    room = Case(*(When(docker_host_id=host, then=Value(n)) for host, n in free.items()), default=0)
    place = Window(RowNumber(), partition_by=[F("docker_host_id")], order_by=LAUNCH_ORDER)
    # A job just submitted is its own launch's for the grace period, not the sweep's.
    fresh = Q(run_after__isnull=True, created_at__gt=settled)
    return (
        ContainerJob.objects.launchable(settled)
        .exclude(fresh)
        .filter(docker_host_id__in=list(free))
        .annotate(place=place, free=room)
        .filter(place__lte=F("free"))
    )


#: The steps a message may name: ``name -> function(job_id) -> outcome text``. ``start`` is
#: ``launch`` as a hand-over sends it (``transitions.hand_over``), for transports that rank steps.
STEPS: dict[str, Callable[[Any], str]] = {
    "launch": launch,
    "start": launch,
    "check": check,
    "harvest": harvest,
    "cancel": cancel,
    "notify": notify.notify,
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
    with telemetry_logging.step_context(step, job_id):
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
    """The job with its host and template, and what spares the launch and the events a read."""
    return (
        ContainerJob.objects.select_related("docker_host", "environment_template")
        .annotate(**workflows.annotations(), **outbox.annotations())
        .filter(pk=job_id)
        .first()
    )


def _start(job: ContainerJob) -> str:
    attempt_guard = {"attempt_count": job.attempt_count}
    try:
        executor = ExecutorFactory().get_executor(job)
        launched, result = True, executor.start(build_launch_request(job))
    except ExecutorConnectionError as exc:
        return _host_unreachable(job, exc)
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
            waiting_for_host_since=None,
            execution={"status": st.FAILED, "error": result, "finished_at": now},
        )  # fmt: skip
        return "failed"
    return _record_running(job, result, now)


def _record_running(job: ContainerJob, execution_id: str, now: datetime) -> str:
    """The platform accepted the attempt: running, with the temporary messages of launching gone."""
    first_check = flow.first_check_delay(job, execution_id, setting("CHECK_DELAY_INITIAL"))
    known = ExecutorFactory().get_executor(job).seconds_left(execution_id)
    if known is not None:
        first_check = min(first_check, known)
    moved = move(
        job, st.LAUNCHING, st.RUNNING, guard={"attempt_count": job.attempt_count},
        execution_id=execution_id, started_at=now, lease_expires_at=None, last_error="",
        next_check_at=now + timedelta(seconds=first_check), waiting_for_host_since=None,
        execution={"status": st.RUNNING, "execution_id": execution_id, "error": "",
                   "accepted_at": now},
    )  # fmt: skip
    if not moved:
        return "taken"
    _host_answered(job, now)
    # A cancel requested during the launch is carried out by this first check.
    dispatch.send_on_commit("check", job.pk, delay=first_check)
    if first_check and flow.stopped_while_recording(execution_id):
        dispatch.send_on_commit("harvest", job.pk)
    return "launched"


def _reconcile(job: ContainerJob, now: datetime) -> str:
    """A launch still under lease: after LAUNCH_RECONCILE_SECONDS, find its execution by key.

    Never starts one: a launcher that is only slow records the same execution, and one that
    died before starting leaves nothing to find, so the lease's expiry takes the launch over.
    """
    began = job.lease_expires_at - timedelta(seconds=setting("LAUNCH_LEASE_SECONDS"))
    if now < began + timedelta(seconds=setting("LAUNCH_RECONCILE_SECONDS")):
        return "in-progress"
    try:
        found = ExecutorFactory().get_executor(job).find_launched(build_launch_request(job))
    except ExecutorError as exc:
        logger.warning("reconcile of job %s: lookup failed: %s", job.pk, exc)
        return "in-progress"
    if not found:
        return "in-progress"
    logger.info("launch of job %s reconciled to execution %s", job.pk, found)
    return "reconciled" if _record_running(job, found, now) == "launched" else "taken"


def _retry_or_fail(job: ContainerJob, error: str) -> str:
    now = clock.now()
    guard = {"attempt_count": job.attempt_count}
    execution = {"status": st.FAILED, "error": error, "finished_at": now}
    if job.attempt_count >= job.max_attempts:
        move(
            job, st.LAUNCHING, st.FAILED, guard=guard, completed_at=now, lease_expires_at=None,
            last_error=f"launch failed after {job.attempt_count} attempts: {error}",
            waiting_for_host_since=None, execution=execution,
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


def _host_unreachable(job: ContainerJob, exc: ExecutorError) -> str:
    """The host could not be reached: not the job's fault, so the attempt is not used up.

    The job goes back to pending with the same attempt number (a retried launch then finds
    anything the lost call started), with backoff, until HOST_UNREACHABLE_TIMEOUT has
    passed since it first met the outage; then it fails saying so.
    """
    now = clock.now()
    _mark_unreachable(job, exc, now)
    since = job.waiting_for_host_since or now
    waited = (now - since).total_seconds()
    limit = float(setting("HOST_UNREACHABLE_TIMEOUT"))
    guard = {"attempt_count": job.attempt_count}
    if waited >= limit:
        error = _unreachable_message(job, limit, exc)
        move(
            job, st.LAUNCHING, st.FAILED, guard=guard, completed_at=now, lease_expires_at=None,
            last_error=error, waiting_for_host_since=None,
            execution={"status": st.FAILED, "error": error, "finished_at": now},
        )  # fmt: skip
        return "failed"
    delay = min(unreachable_delay(waited), limit - waited)
    moved = move(
        job, st.LAUNCHING, st.PENDING, guard=guard, attempt_count=job.attempt_count - 1,
        lease_expires_at=None, run_after=now + timedelta(seconds=delay),
        waiting_for_host_since=since,
        last_error=f"host {job.docker_host.name!r} unreachable, launch retried in {delay:.1f}s: "
        f"{exc}",
        execution={"status": st.PENDING, "error": f"host unreachable: {exc}"},
    )  # fmt: skip
    if moved:
        dispatch.send_on_commit("launch", job.pk, delay=delay)
    return "host-unreachable"


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


def _schedule_check(
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
        return _settle(job, executor, state)
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
            return _check_failed(job, now, exc)
        if state != ExecutionState.RUNNING:
            return _settle(job, executor, state)
        delay = float(setting("CHECK_DELAY_INITIAL"))
    else:
        delay = (kill_at - now).total_seconds()
    _schedule_check(job, now, now, delay=delay)
    return "stopping"


def _check_failed(
    job: ContainerJob, now: datetime, exc: ExecutorError, what: str = "status check"
) -> str:
    """A status check (or stop, or harvest) failed: fail the job, or look again with backoff.

    An unreachable host marks the host unhealthy; the job fails only once it has waited
    HOST_UNREACHABLE_TIMEOUT for it.
    """
    if not exc.retryable:
        return _fail_running(job, f"{what} failed: {exc}")
    waiting: dict[str, Any] = {}
    waited = 0.0
    if isinstance(exc, ExecutorConnectionError):
        _mark_unreachable(job, exc, now)
        since = job.waiting_for_host_since or now
        waited = (now - since).total_seconds()
        limit = float(setting("HOST_UNREACHABLE_TIMEOUT"))
        if waited >= limit:
            return _fail_running(job, _unreachable_message(job, limit, exc))
        waiting["waiting_for_host_since"] = since
    delay = unreachable_delay(waited)
    _schedule_check(
        job, now, now, delay=delay, last_error=f"{what} failed, will retry: {exc}", extra=waiting
    )
    return "check-error"


def _settle(
    job: ContainerJob, executor: ex.ContainerExecutor, state: ExecutionState, intended: str = ""
) -> str:
    """The execution stopped running: store its results, or fail the job if it vanished.

    A job asked to stop ends as ``stop_reason`` says, even when its execution is gone;
    ``intended`` (a harvest seeing a cancel request or a passed deadline first) else.
    """
    if state == ExecutionState.NOT_FOUND and not job.stop_reason:
        return _fail_running(job, _vanished(job))
    if state == ExecutionState.NOT_FOUND:
        return _finish(job, executor, None)
    return _harvest(job, executor, intended)


def _harvest(job: ContainerJob, executor: ex.ContainerExecutor, intended: str = "") -> str:
    try:
        result = executor.collect(job.execution_id)
    except ExecutorError as exc:
        if exc.retryable:
            _check_failed(job, clock.now(), exc, what="harvest")
            return "harvest-error"
        if not job.stop_reason:
            return _fail_running(job, f"results could not be read: {exc}")
        result = None
    if result is None and not job.stop_reason:
        return _fail_running(job, "results could not be read from the platform")
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
    """
    fields = result_fields(job, result) if result is not None else {}
    fields.pop("last_error", None)
    for name, value in fields.items():
        setattr(job, name, value)
    now = clock.now()
    # The platform's own clock says when it ran; never let the end precede the start.
    completed_at = max(job.completed_at or now, job.started_at)
    results = {
        "exit_code": job.exit_code,
        "stdout_log": job.stdout_log,
        "stderr_log": job.stderr_log,
        "docker_log": job.docker_log,
        "max_memory_usage": job.max_memory_usage,
        "cpu_usage_percent": job.cpu_usage_percent,
    }
    for _ in range(2):
        status = job.stop_reason or intended or (st.COMPLETED if job.exit_code == 0 else st.FAILED)
        last_error = final_reason(job, status, result)
        moved = move(
            job, st.RUNNING, status,
            guard={"attempt_count": job.attempt_count, "stop_reason": job.stop_reason},
            clean_output=job.clean_output, started_at=job.started_at, completed_at=completed_at,
            next_check_at=None, last_error=last_error, waiting_for_host_since=None, **results,
            **cost.fields(job, completed_at),
            execution={**results, "status": status, "finished_at": completed_at,
                       "error": last_error, **timings.harvested(job, result)},
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
    return (result.reason if result else "") or f"exited with code {job.exit_code}"


def _fail_running(job: ContainerJob, error: str) -> str:
    now = clock.now()
    moved = move(
        job, st.RUNNING, st.FAILED, guard={"attempt_count": job.attempt_count},
        last_error=error, completed_at=now, next_check_at=None, waiting_for_host_since=None,
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


def _reconcile_margin() -> timedelta:
    """How long before its lease expires a launch is due for reconciling."""
    lease, reconcile = setting("LAUNCH_LEASE_SECONDS"), setting("LAUNCH_RECONCILE_SECONDS")
    return timedelta(seconds=max(0.0, float(lease) - float(reconcile)))


def _mark_unreachable(job: ContainerJob, exc: ExecutorError, now: datetime) -> None:
    """Record on the host that a step could not reach it (shown in the admin and dashboard)."""
    hosts = ExecutorHost.objects.filter(pk=job.docker_host_id)
    hosts.filter(unreachable_since=None).update(unreachable_since=now)
    hosts.update(last_health_check_at=now, last_health_ok=False, last_health_error=str(exc))
    job.docker_host.unreachable_since = job.docker_host.unreachable_since or now


def _host_answered(job: ContainerJob, now: datetime) -> None:
    """The platform answered a step: a host marked unreachable is healthy again (no query else)."""
    if job.docker_host.unreachable_since is None:
        return
    ExecutorHost.objects.filter(pk=job.docker_host_id).exclude(unreachable_since=None).update(
        unreachable_since=None, last_health_check_at=now, last_health_ok=True, last_health_error=""
    )
    job.docker_host.unreachable_since = None


def _unreachable_message(job: ContainerJob, limit: float, exc: ExecutorError) -> str:
    return (
        f"host {job.docker_host.name!r} could not be reached for {limit:g} seconds "
        f"(HOST_UNREACHABLE_TIMEOUT); gave up waiting for it: {exc}"
    )


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
