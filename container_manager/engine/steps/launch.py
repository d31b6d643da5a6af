"""The ``launch`` step: claim a slot and start the container, reconcile a quiet launch, or take
over one whose lease expired.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from container_manager import clock, dispatch
from container_manager.conf import setting
from container_manager.engine import flow, workflows
from container_manager.engine.steps.common import (
    build_launch_request,
    cancel_pending,
    host_answered,
    load,
    mark_unreachable,
    retry_delay,
    unreachable_delay,
    unreachable_message,
)
from container_manager.engine.transitions import ArrayFull, HostFull, begin_launch, move
from container_manager.executors.exceptions import ExecutorConnectionError, ExecutorError
from container_manager.executors.factory import ExecutorFactory
from container_manager.models import ContainerJob
from container_manager.rules import status as st

logger = logging.getLogger(__name__)


def launch(job_id: Any, *, quiet: bool = False) -> str:
    """Start the job's container, reconcile a launch whose launcher went quiet, or take it over.

    A launch not recorded ``LAUNCH_RECONCILE_SECONDS`` after it began (at once if ``quiet``:
    its launcher may have stopped with its worker, see ``resume``) is looked up on the
    platform by its launch key and recorded as running if found. If nothing is found it is
    taken over with the same key: then if the executor is ``concurrent_launch_safe`` (a
    launcher that is only slow gets the same execution), else once its lease has expired.
    Taking over renews the lease by a compare-and-set on the old one, so one caller does it.
    Before the platform is called, a launch hint due at that delay is sent
    (``send_backstop``): if this launcher dies, that message reconciles the launch or takes
    it over; on a job recorded running by then it is one SELECT and ``nothing-to-do``.
    """
    job = load(job_id)
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
            return cancel_pending(job)
        try:  # begin_launch finds a free slot row or raises HostFull, in one statement
            if not begin_launch(job, lease):
                return "taken"
        except HostFull:
            return "waiting-for-slot"
        except ArrayFull:  # a child ending, or the sweep, sends it again
            return "waiting-for-array"
    elif job.status == st.LAUNCHING:
        if job.lease_expires_at and job.lease_expires_at > now:
            waiting = _reconcile(job, now, quiet)
            if waiting:
                return waiting
        guard = {"attempt_count": job.attempt_count, "lease_expires_at": job.lease_expires_at}
        if not move(job, st.LAUNCHING, st.LAUNCHING, guard=guard, lease_expires_at=lease):
            return "taken"
    else:
        return "nothing-to-do"
    dispatch.send_backstop("launch", job.pk, delay=setting("LAUNCH_RECONCILE_SECONDS"))
    return _start(job)


def resume(job_id: Any) -> str:
    """``launch`` for a job whose launcher may have stopped with its worker: looked at now.

    A worker sends it at its start for every launching job (``sweep.resuming``): each launch
    is reconciled, or taken over, at once rather than LAUNCH_RECONCILE_SECONDS after it began.
    Taking over is still only for ``concurrent_launch_safe`` executors: a launcher of another
    worker may still be in ``start``. A pending job is launched as ``launch`` would.
    """
    return launch(job_id, quiet=True)


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


def _record_running(
    job: ContainerJob, execution_id: str, now: datetime, look_now: bool = False
) -> str:
    """The platform accepted the attempt: running, with the temporary messages of launching gone.

    ``look_now`` sends the first check at once: a reconciled launch's execution may have
    ended while no one listened for its stop event.
    """
    first_check = 0.0 if look_now else _first_check(job, execution_id)
    moved = move(
        job, st.LAUNCHING, st.RUNNING, guard={"attempt_count": job.attempt_count},
        execution_id=execution_id, started_at=now, lease_expires_at=None, last_error="",
        next_check_at=now + timedelta(seconds=first_check), waiting_for_host_since=None,
        execution={"status": st.RUNNING, "execution_id": execution_id, "error": "",
                   "accepted_at": now},
    )  # fmt: skip
    if not moved:
        return "taken"
    host_answered(job, now)
    # A cancel requested during the launch is carried out by this first check.
    dispatch.send_on_commit("check", job.pk, delay=first_check)
    if first_check and flow.stopped_while_recording(execution_id):
        dispatch.send_on_commit("harvest", job.pk)
    return "launched"


def _first_check(job: ContainerJob, execution_id: str) -> float:
    """Seconds from the launch to the first check: sooner when the run is known to end sooner."""
    first_check = flow.first_check_delay(job, execution_id, setting("CHECK_DELAY_INITIAL"))
    known = ExecutorFactory().get_executor(job).seconds_left(execution_id)
    return first_check if known is None else min(first_check, known)


def _reconcile(job: ContainerJob, now: datetime, quiet: bool = False) -> str:
    """A launch still under lease: after LAUNCH_RECONCILE_SECONDS (or if ``quiet``), find it.

    Returns the launch step's answer, or "" when the launch is to be taken over now: nothing
    was found and the executor is ``concurrent_launch_safe``, so the launcher, if only slow,
    gets the same execution as the caller. Never starts one itself. On other platforms a
    launcher still in ``start`` could start a second execution, so ``in-progress`` until the
    lease's expiry takes the launch over.
    """
    began = job.lease_expires_at - timedelta(seconds=setting("LAUNCH_LEASE_SECONDS"))
    if not quiet and now < began + timedelta(seconds=setting("LAUNCH_RECONCILE_SECONDS")):
        return "in-progress"
    executor = ExecutorFactory().get_executor(job)
    try:
        found = executor.find_launched(build_launch_request(job))
    except ExecutorError as exc:
        logger.warning("reconcile of job %s: lookup failed: %s", job.pk, exc)
        return "in-progress"
    if found:
        logger.info("launch of job %s reconciled to execution %s", job.pk, found)
        recorded = _record_running(job, found, now, look_now=True)
        return "reconciled" if recorded == "launched" else "taken"
    if not executor.concurrent_launch_safe:
        return "in-progress"
    logger.info("launch of job %s went quiet and started nothing: taking it over", job.pk)
    return ""


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
    mark_unreachable(job, exc, now)
    since = job.waiting_for_host_since or now
    waited = (now - since).total_seconds()
    limit = float(setting("HOST_UNREACHABLE_TIMEOUT"))
    guard = {"attempt_count": job.attempt_count}
    if waited >= limit:
        error = unreachable_message(job, limit, exc)
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
