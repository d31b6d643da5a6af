"""Stops that never wait, outcomes that follow the stop, reconciled launches, unreachable hosts.

The mock executor and the recording backend; the rows' times are the clock, moved, never slept.
"""

import threading
from collections import defaultdict
from datetime import timedelta
from importlib import import_module

import pytest
from django.utils import timezone

from container_manager.conf import setting
from container_manager.dispatch.local import LocalBackend
from container_manager.engine import flow, steps, sweep, transitions
from container_manager.engine.steps.check import KILL_BACKSTOP_MARGIN
from container_manager.executors import factory
from container_manager.executors.exceptions import ExecutorConnectionError
from container_manager.executors.mock import MockExecutor
from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost
from tests.support import row, submit

# The launch step's module (the package's ``launch`` is the step function itself).
launching = import_module("container_manager.engine.steps.launch")


pytestmark = pytest.mark.django_db(transaction=True)


def host_row(host):
    return ExecutorHost.objects.get(pk=host.pk)


def attempts(job):
    return list(
        ContainerExecution.objects.filter(job=job).values_list("attempt", "status", "error")
    )


def past_deadline(job):
    ContainerJob.objects.filter(pk=job.pk).update(
        started_at=timezone.now() - timedelta(seconds=job.timeout_seconds + 1)
    )


def past_grace(job):
    grace = setting("STOP_GRACE_SECONDS")
    ContainerJob.objects.filter(pk=job.pk).update(
        stop_requested_at=timezone.now() - timedelta(seconds=grace + 0.1), next_check_at=None
    )


# -- 1. a stop is asked for, never waited for ------------------------------------------------


def test_timeout_asks_to_stop_returns_and_a_later_check_kills(recording, make_mock_host):
    job = submit(make_mock_host(duration=600, ignore_sigterm=True), timeout_seconds=1)
    assert steps.launch(job.pk) == "launched"
    recording.take()
    past_deadline(job)
    assert steps.check(job.pk) == "stopping"
    stopping = row(job)
    grace = setting("STOP_GRACE_SECONDS")
    assert (stopping.status, stopping.stop_reason) == ("running", "timeout")
    assert stopping.next_check_at == stopping.stop_requested_at + timedelta(seconds=grace)
    assert recording.take() == [("check", str(job.pk), float(grace))]
    assert steps.check(job.pk) == "not-due"  # a duplicate sends nothing
    assert recording.take() == []
    ContainerJob.objects.filter(pk=job.pk).update(next_check_at=None)
    assert steps.check(job.pk) == "stopping"  # early: still within the grace, no kill yet
    [(_, _, delay)] = recording.take()
    assert 0 < delay <= grace
    past_grace(job)
    assert steps.check(job.pk) == "timeout"
    done = row(job)
    assert (done.status, done.exit_code) == ("timeout", 137)
    assert done.last_error == "timed out after 1 seconds; the container was stopped"
    assert host_row(done.docker_host).current_job_count == 0
    assert attempts(job) == [(1, "timeout", done.last_error)]


def test_the_backstop_check_waits_longer_when_the_platform_kills_and_events_flow(
    recording, make_mock_host, monkeypatch
):
    host = make_mock_host(duration=600, ignore_sigterm=True)
    monkeypatch.setattr(MockExecutor, "stop_kills_after_grace", True)
    grace = float(setting("STOP_GRACE_SECONDS"))
    first, second = submit(host, timeout_seconds=1), submit(host, timeout_seconds=1)
    for job in (first, second):
        assert steps.launch(job.pk) == "launched"
        past_deadline(job)
    recording.take()
    assert steps.check(first.pk) == "stopping"  # no events: the check after the grace kills
    assert recording.take() == [("check", str(first.pk), grace)]
    flow.mark_following(host.pk, True)
    try:
        assert steps.check(second.pk) == "stopping"
    finally:
        flow.mark_following(host.pk, False)
    assert recording.take() == [("check", str(second.pk), grace + KILL_BACKSTOP_MARGIN)]
    # The platform did not kill it after all: the backstop check does.
    past_grace(second)
    assert steps.check(second.pk) == "timeout"


def test_cancel_of_a_process_ignoring_sigterm(recording, make_mock_host):
    job = submit(make_mock_host(duration=600, ignore_sigterm=True))
    steps.launch(job.pk)
    recording.take()
    assert job.cancel() is True
    assert steps.cancel(job.pk) == "stopping"
    assert row(job).stop_reason == "cancelled"
    assert steps.cancel(job.pk) == "not-due"  # the sweep's cancel re-send forks no chain
    past_grace(job)
    assert steps.check(job.pk) == "cancelled"
    assert (row(job).status, row(job).last_error) == ("cancelled", "cancelled on request")


def test_a_cancel_after_a_timeout_stop_keeps_timeout(recording, make_mock_host):
    job = submit(make_mock_host(duration=600, ignore_sigterm=True), timeout_seconds=1)
    steps.launch(job.pk)
    past_deadline(job)
    assert steps.check(job.pk) == "stopping"
    job.cancel()
    past_grace(job)
    assert steps.check(job.pk) == "timeout"


# -- 2. the outcome follows the stop, whichever step sees the container gone -----------------


def test_harvest_that_read_the_row_before_the_stop_records_timeout(recording, make_mock_host):
    """Harvest B loads the row, then check A asks to stop and kills: B sees exit 137."""
    job = submit(make_mock_host(duration=600, ignore_sigterm=True), timeout_seconds=1)
    steps.launch(job.pk)
    past_deadline(job)
    real_status = MockExecutor.check_status
    interleaved = []

    def check_a_runs_in_between(self, execution_id):
        if not interleaved:
            interleaved.append("b-read-the-row")
            interleaved.append(steps.check(job.pk))  # A: records the stop
            self.kill(execution_id)  # A's later kill lands before B reads the result
        return real_status(self, execution_id)

    MockExecutor.check_status = check_a_runs_in_between
    try:
        outcome = steps.harvest(job.pk)  # B
    finally:
        MockExecutor.check_status = real_status
    assert interleaved == ["b-read-the-row", "stopping"]
    done = row(job)
    assert (outcome, done.status, done.exit_code) == ("timeout", "timeout", 137)
    assert "timed out" in done.last_error
    assert attempts(job)[0][1] == "timeout"


def test_harvest_after_the_stop_and_a_vanished_execution_both_end_as_asked(
    recording, make_mock_host
):
    killed = submit(make_mock_host(duration=600, ignore_sigterm=True))
    steps.launch(killed.pk)
    killed.cancel()
    assert steps.cancel(killed.pk) == "stopping"
    MockExecutor(row(killed).docker_host).kill(row(killed).execution_id)
    assert steps.harvest(killed.pk) == "cancelled"  # exit 137 is not "failed"

    gone = submit(make_mock_host(duration=600, ignore_sigterm=True), timeout_seconds=1)
    steps.launch(gone.pk)
    past_deadline(gone)
    assert steps.check(gone.pk) == "stopping"
    ExecutorHost.objects.filter(pk=gone.docker_host_id).update(executor_config={"vanish": True})
    factory.clear_cache()
    past_grace(gone)
    assert steps.check(gone.pk) == "timeout"
    assert row(gone).last_error.startswith("timed out after 1 seconds")


# -- 3. a crashed launch is reconciled by its launch key -------------------------------------


def launch_began(job, seconds_ago):
    lease = setting("LAUNCH_LEASE_SECONDS")
    ContainerJob.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() + timedelta(seconds=lease - seconds_ago)
    )


def crash_after_start(monkeypatch):
    real_move = transitions.move

    def crash_on_running(job_arg, old, new, **kwargs):
        if new == "running":
            raise RuntimeError("launcher died after the start, before recording it")
        return real_move(job_arg, old, new, **kwargs)

    monkeypatch.setattr(launching, "move", crash_on_running)
    return lambda: monkeypatch.setattr(launching, "move", real_move)


def test_crashed_launch_is_reconciled_after_the_reconcile_delay(recording, mock_host, monkeypatch):
    job = submit(mock_host)
    recording.take()
    restore = crash_after_start(monkeypatch)
    with pytest.raises(RuntimeError):
        steps.launch(job.pk)
    restore()
    reconcile = setting("LAUNCH_RECONCILE_SECONDS")
    assert reconcile == 30 and setting("LAUNCH_LEASE_SECONDS") == 120
    launch_began(job, reconcile - 1)
    assert steps.launch(job.pk) == "in-progress"
    lease_end = row(job).lease_expires_at
    began = lease_end - timedelta(seconds=120)
    assert steps.sweep(now=began + timedelta(seconds=reconcile - 1))["relaunch"] == 0
    assert steps.sweep(now=began + timedelta(seconds=reconcile + 1))["relaunch"] == 1
    launch_began(job, reconcile + 1)
    assert steps.launch(job.pk) == "reconciled"
    running = row(job)
    assert (running.status, running.attempt_count, running.lease_expires_at) == ("running", 1, None)
    assert running.execution_id.startswith("mock-")
    assert (MockExecutor.execution_count(job.pk), MockExecutor.launch_count(job.pk)) == (1, 1)
    assert host_row(mock_host).current_job_count == 1
    assert steps.check(job.pk) == "completed"


def test_the_launch_hint_reconciles_a_crashed_launch_at_the_reconcile_delay(
    recording, mock_host, monkeypatch, clock
):
    job = submit(mock_host)
    recording.take()
    began = clock.now()
    restore = crash_after_start(monkeypatch)
    with pytest.raises(RuntimeError):
        steps.launch(job.pk)
    restore()
    reconcile = setting("LAUNCH_RECONCILE_SECONDS")
    # Sent before the platform was called, so it outlives the launcher.
    assert recording.backstops == [("launch", str(job.pk), float(reconcile))]
    assert row(job).status == "launching"
    clock.advance(reconcile - 0.5)
    assert steps.launch(job.pk) == "in-progress"  # a hint delivered early does nothing
    clock.advance(0.5)
    assert steps.launch(job.pk) == "reconciled"  # the hint, no sweep involved
    running = row(job)
    assert (running.status, running.attempt_count) == ("running", 1)
    assert (running.started_at - began).total_seconds() == reconcile
    assert (MockExecutor.execution_count(job.pk), MockExecutor.launch_count(job.pk)) == (1, 1)
    assert host_row(mock_host).current_job_count == 1
    assert len(recording.backstops) == 1  # reconciling sends no second hint


def test_the_launch_hint_on_a_recorded_launch_is_one_select(
    recording, mock_host, django_assert_num_queries
):
    job = submit(mock_host)
    assert steps.launch(job.pk) == "launched"
    assert recording.backstops == [
        ("launch", str(job.pk), float(setting("LAUNCH_RECONCILE_SECONDS")))
    ]
    with django_assert_num_queries(1):
        assert steps.launch(job.pk) == "nothing-to-do"
    assert row(job).status == "running"


def test_inline_dispatch_skips_the_launch_hint(immediate, make_mock_host, monkeypatch):
    slept = []
    monkeypatch.setattr("container_manager.dispatch.immediate.time.sleep", slept.append)
    job = submit(make_mock_host(duration=0.01))  # so its first check waits a little
    assert row(job).status == "completed"
    assert slept and max(slept) < setting("LAUNCH_RECONCILE_SECONDS")


def test_local_dispatch_holds_the_hint_without_wait_idle_waiting_for_it():
    backend = LocalBackend({"WORKERS": 1, "SWEEP_INTERVAL": 0, "DOCKER_EVENTS": False})
    try:
        backend.send_backstop("launch", "hint-only", 60)
        assert backend.wait_idle(timeout=1)
        assert len(backend._timers) == 1  # held, to be delivered when due
        backend.send("check", "a-delayed-step", 60)
        assert not backend.wait_idle(timeout=0.1)
    finally:
        backend.close()


@pytest.fixture
def held_steps(monkeypatch):
    """Steps run by the local backend are noted; one for job ``busy`` waits for ``release``."""
    from container_manager.engine import runner

    started, release, ran, seen = (
        threading.Event(),
        threading.Event(),
        [],
        defaultdict(threading.Event),
    )

    def run(step, job_id):
        ran.append((step, job_id))
        seen[job_id].set()
        if job_id == "busy":
            started.set()
            release.wait(10)
        return runner.StepOutcome(runner.Verdict.DONE)

    monkeypatch.setattr(runner, "run", run)
    yield started, release, ran, seen
    release.set()


def busy_backend(held_steps, step_workers):
    """A local backend with one worker, held by the launch of job ``busy``."""
    backend = LocalBackend({"WORKERS": 1, "STEP_WORKERS": step_workers, "SWEEP_INTERVAL": 0,
                            "DOCKER_EVENTS": False})  # fmt: skip
    backend.send("launch", "busy", 0)
    assert held_steps[0].wait(10)
    return backend


def test_local_dispatch_runs_harvests_and_checks_before_queued_launches(held_steps):
    _, release, ran, _ = held_steps
    backend = busy_backend(held_steps, step_workers=0)
    try:
        queued, queue = threading.Event(), backend._queue

        def noting(step, job_id, tries):
            queue(step, job_id, tries)
            if job_id == "due":
                queued.set()

        backend._queue = noting
        backend.send("launch", "a", 0)
        backend.send("harvest", "d", 0)
        backend.send("check", "at-once", 0)  # the launch's own look at a run that ended
        backend.send("launch", "c", 0)
        backend.send("check", "due", 0.01)  # a scheduled check (a deadline): first when due
        assert queued.wait(10)  # the timer has moved "due" to the queue
        release.set()
        assert backend.wait_idle(timeout=10)
    finally:
        backend.close()
    assert ran == [("launch", "busy"), ("harvest", "d"), ("check", "at-once"), ("check", "due"),
                   ("launch", "a"), ("launch", "c")]  # fmt: skip


def test_local_dispatch_step_worker_runs_a_harvest_while_launches_hold_every_worker(held_steps):
    _, release, ran, seen = held_steps
    backend = busy_backend(held_steps, step_workers=1)
    try:
        backend.send("launch", "waits", 0)
        backend.send("harvest", "b", 0)
        assert seen["b"].wait(10)
        assert ran == [("launch", "busy"), ("harvest", "b")]  # the launch still waits
        release.set()
        assert backend.wait_idle(timeout=10)
    finally:
        backend.close()
    assert ran[-1] == ("launch", "waits")


def launcher_died_after_the_slot(job, clock):
    """The launch took a slot and its launcher died before calling the platform."""
    lease = clock.now() + timedelta(seconds=setting("LAUNCH_LEASE_SECONDS"))
    assert transitions.begin_launch(job, lease)


def test_launcher_dead_before_the_start_is_taken_over_at_the_reconcile_delay(
    recording, make_mock_host, clock
):
    host = make_mock_host(duration=5)
    job = submit(host)
    launcher_died_after_the_slot(job, clock)
    reconcile = setting("LAUNCH_RECONCILE_SECONDS")
    assert reconcile < setting("LAUNCH_LEASE_SECONDS")
    clock.advance(reconcile - 0.5)
    assert steps.sweep()["relaunch"] == 0
    assert steps.launch(job.pk) == "in-progress"  # an early hint: the launcher may be slow
    clock.advance(0.5)
    assert steps.sweep()["relaunch"] == 1
    assert steps.launch(job.pk) == "launched"  # nothing found: taken over, the lease not waited
    running = row(job)
    assert (running.status, running.attempt_count) == ("running", 1)
    assert (running.started_at - running.created_at).total_seconds() >= reconcile - 1
    assert (MockExecutor.execution_count(job.pk), MockExecutor.launch_count(job.pk)) == (1, 1)
    assert host_row(host).current_job_count == 1
    clock.advance(5)
    assert steps.check(job.pk) == "completed"
    assert host_row(host).current_job_count == 0


def test_one_caller_takes_a_quiet_launch_over(recording, mock_host, clock, monkeypatch):
    job = submit(mock_host)
    launcher_died_after_the_slot(job, clock)
    clock.advance(setting("LAUNCH_RECONCILE_SECONDS"))
    real_start, meanwhile = launching._start, []

    def start_while_a_copy_arrives(job_arg):
        meanwhile.append(steps.launch(job_arg.pk))  # the sweep's copy of the hint
        return real_start(job_arg)

    monkeypatch.setattr(launching, "_start", start_while_a_copy_arrives)
    assert steps.launch(job.pk) == "launched"
    assert meanwhile == ["in-progress"]  # the renewed lease is the new launcher's
    assert MockExecutor.launch_count(job.pk) == 1


def test_a_launcher_only_slow_gets_the_execution_of_the_takeover(recording, mock_host, clock):
    job = submit(mock_host)
    launcher_died_after_the_slot(job, clock)  # not dead: ``job`` is its copy, about to start
    clock.advance(setting("LAUNCH_RECONCILE_SECONDS"))
    assert steps.launch(job.pk) == "launched"
    execution_id = row(job).execution_id
    assert launching._start(job) == "taken"  # the slow launcher's start, with the same key
    assert (MockExecutor.execution_count(job.pk), MockExecutor.launch_count(job.pk)) == (1, 2)
    assert row(job).execution_id == execution_id


def test_a_platform_unsafe_to_launch_twice_waits_for_the_lease(
    recording, mock_host, clock, monkeypatch
):
    monkeypatch.setattr(MockExecutor, "concurrent_launch_safe", False)
    job = submit(mock_host)
    launcher_died_after_the_slot(job, clock)
    clock.advance(setting("LAUNCH_RECONCILE_SECONDS"))
    assert steps.launch(job.pk) == "in-progress"  # nothing to find, and never started here
    assert steps.resume(job.pk) == "in-progress"
    assert MockExecutor.launch_count(job.pk) == 0
    clock.advance(setting("LAUNCH_LEASE_SECONDS") - setting("LAUNCH_RECONCILE_SECONDS"))
    assert steps.launch(job.pk) == "launched"
    assert MockExecutor.execution_count(job.pk) == 1


def test_resume_reconciles_or_takes_over_a_launch_however_recent(
    recording, make_mock_host, clock, monkeypatch
):
    host = make_mock_host(duration=600)
    died, started = submit(host), submit(host)
    launcher_died_after_the_slot(died, clock)
    restore = crash_after_start(monkeypatch)
    with pytest.raises(RuntimeError):
        steps.launch(started.pk)  # its launcher died after the start
    restore()
    clock.advance(1)
    assert steps.launch(died.pk) == steps.launch(started.pk) == "in-progress"
    assert sorted(sweep.resuming()) == sorted(("resume", str(j.pk), 0.0) for j in (died, started))
    assert steps.resume(died.pk) == "launched"
    assert steps.resume(started.pk) == "reconciled"
    assert [MockExecutor.execution_count(job.pk) for job in (died, started)] == [1, 1]
    assert {row(job).status for job in (died, started)} == {"running"}


def test_a_reconciled_launch_is_checked_at_once_even_while_events_flow(
    recording, make_mock_host, monkeypatch, clock
):
    host = make_mock_host(duration=600)
    job = submit(host)
    restore = crash_after_start(monkeypatch)
    with pytest.raises(RuntimeError):
        steps.launch(job.pk)
    restore()
    flow.mark_following(host.pk, True)
    try:
        clock.advance(setting("LAUNCH_RECONCILE_SECONDS"))
        recording.take()
        assert steps.launch(job.pk) == "reconciled"
    finally:
        flow.mark_following(host.pk, False)
    # Its stop event may have come while no one listened: the first check does not wait for it.
    assert recording.take() == [("check", str(job.pk), 0.0)]


def test_catch_up_harvests_running_jobs_of_the_hosts_asked(recording, make_mock_host, clock):
    first, second = make_mock_host(duration=600), make_mock_host(duration=600)
    jobs = [submit(first), submit(second)]
    for job in jobs:
        assert steps.launch(job.pk) == "launched"
    assert sweep.catch_up([first.pk]) == [("harvest", str(jobs[0].pk), 0.0)]
    assert sorted(sweep.catch_up()) == sorted(("harvest", str(job.pk), 0.0) for job in jobs)


# -- 4. an unreachable host does not use up attempts ------------------------------------------


def test_unreachable_host_keeps_the_job_pending_without_using_attempts(recording, make_mock_host):
    host = make_mock_host(launch_error="unreachable")
    job = submit(host, max_attempts=1)
    for _ in range(3):
        ContainerJob.objects.filter(pk=job.pk).update(run_after=None)
        assert steps.launch(job.pk) == "host-unreachable"
    waiting = row(job)
    assert (waiting.status, waiting.attempt_count) == ("pending", 0)
    assert "unreachable" in waiting.last_error and waiting.waiting_for_host_since
    assert attempts(job) == [(1, "pending", "host unreachable: " + _unreachable_text())]
    sick = host_row(host)
    assert (sick.last_health_ok, sick.current_job_count) == (False, 0)
    assert sick.unreachable_since and "unreachable" in sick.last_health_error
    ExecutorHost.objects.filter(pk=host.pk).update(executor_config={})
    factory.clear_cache()
    ContainerJob.objects.filter(pk=job.pk).update(run_after=None)
    assert steps.launch(job.pk) == "launched"
    running = row(job)
    assert (running.attempt_count, running.last_error, running.waiting_for_host_since) == (
        1, "", None,
    )  # fmt: skip
    assert attempts(job) == [(1, "running", "")]
    healthy = host_row(host)
    assert (healthy.last_health_ok, healthy.unreachable_since) == (True, None)


def _unreachable_text():
    return "mock executor: host unreachable (simulated)"


def test_backoff_while_unreachable_grows_and_stays_bounded(settings):
    settings.CONTAINER_MANAGER = {"RETRY_BACKOFF_BASE": 5.0, "RETRY_BACKOFF_MAX": 600.0}
    assert 2.5 <= steps.unreachable_delay(0) <= 5.0
    assert 50 <= steps.unreachable_delay(200) <= 100
    assert steps.unreachable_delay(10**6) <= 600


def test_waiting_for_an_unreachable_host_is_bounded_by_a_setting(recording, make_mock_host):
    job = submit(make_mock_host(launch_error="unreachable"))
    assert steps.launch(job.pk) == "host-unreachable"
    limit = setting("HOST_UNREACHABLE_TIMEOUT")
    assert limit == 3600
    ContainerJob.objects.filter(pk=job.pk).update(
        run_after=None, waiting_for_host_since=timezone.now() - timedelta(seconds=limit)
    )
    assert steps.launch(job.pk) == "failed"
    done = row(job)
    assert done.status == "failed" and done.attempt_count == 1
    assert done.last_error.startswith(
        f"host {done.docker_host.name!r} could not be reached for 3600 seconds "
        "(HOST_UNREACHABLE_TIMEOUT); gave up waiting for it"
    )


def test_a_job_fault_still_counts_against_max_attempts(recording, make_mock_host):
    job = submit(make_mock_host(launch_error="retryable"), max_attempts=1)
    assert steps.launch(job.pk) == "failed"
    assert row(job).last_error.startswith("launch failed after 1 attempts")


def test_a_missing_image_uses_the_attempts_and_never_waits_for_the_host(recording, make_mock_host):
    host = make_mock_host(launch_error="image")
    job = ContainerJob.objects.create_job(image="no-such-image:2", command="true", docker_host=host)
    pulled = "image 'no-such-image:2' could not be pulled: no such image (simulated)"
    for attempt in (1, 2):
        assert steps.launch(job.pk) == "retrying"
        waiting = row(job)
        assert (waiting.status, waiting.attempt_count) == ("pending", attempt)
        assert waiting.last_error.endswith(pulled) and waiting.waiting_for_host_since is None
        ContainerJob.objects.filter(pk=job.pk).update(run_after=None)
    assert steps.launch(job.pk) == "failed"
    done = row(job)
    assert (done.status, done.attempt_count) == ("failed", 3)
    assert done.last_error == f"launch failed after 3 attempts: {pulled}"
    assert attempts(job) == [(n, "failed", pulled) for n in (1, 2, 3)]
    assert (host_row(host).unreachable_since, host_row(host).current_job_count) == (None, 0)


def test_running_job_on_an_unreachable_host_backs_off_then_gives_up(
    recording, make_mock_host, monkeypatch
):
    host = make_mock_host(duration=600)
    job = submit(host)
    steps.launch(job.pk)
    recording.take()

    def unreachable(self, execution_id):
        raise ExecutorConnectionError("connection refused")

    monkeypatch.setattr(MockExecutor, "check_status", unreachable)
    assert steps.check(job.pk) == "check-error"
    [(_, _, delay)] = recording.take()
    assert delay >= 0.5 * setting("RETRY_BACKOFF_BASE")  # no hot loop of checks
    assert row(job).waiting_for_host_since and host_row(host).last_health_ok is False
    ContainerJob.objects.filter(pk=job.pk).update(
        next_check_at=None, waiting_for_host_since=timezone.now() - timedelta(seconds=3600)
    )
    assert steps.check(job.pk) == "failed"
    assert "could not be reached for 3600 seconds" in row(job).last_error


# -- 5. the final error tells the final truth -----------------------------------------------


def test_retried_launch_then_exit_3_ends_with_the_exit_reason(recording, make_mock_host):
    job = submit(make_mock_host(launch_failures=1, exit_code=3))
    assert steps.launch(job.pk) == "retrying"
    ContainerJob.objects.filter(pk=job.pk).update(run_after=None)
    assert steps.launch(job.pk) == "launched"
    assert row(job).last_error == ""  # running: the retry message is gone
    assert steps.check(job.pk) == "failed"
    assert row(job).last_error == "exited with code 3"
    assert attempts(job) == [
        (1, "failed", "mock executor: platform unavailable (simulated)"),
        (2, "failed", "exited with code 3"),
    ]


def test_failed_check_then_exit_3_and_retry_then_success(recording, make_mock_host, monkeypatch):
    job = submit(make_mock_host(exit_code=3))
    steps.launch(job.pk)
    real_status = MockExecutor.check_status
    calls = []

    def fails_once(self, execution_id):
        calls.append(1)
        if len(calls) == 1:
            raise ExecutorConnectionError("engine restarting")
        return real_status(self, execution_id)

    monkeypatch.setattr(MockExecutor, "check_status", fails_once)
    assert steps.check(job.pk) == "check-error"
    assert "will retry" in row(job).last_error
    ContainerJob.objects.filter(pk=job.pk).update(next_check_at=None)
    assert steps.check(job.pk) == "failed"
    assert row(job).last_error == "exited with code 3"

    ok = submit(make_mock_host(launch_failures=1))
    steps.launch(ok.pk)
    ContainerJob.objects.filter(pk=ok.pk).update(run_after=None)
    steps.launch(ok.pk)
    assert steps.check(ok.pk) == "completed"
    assert row(ok).last_error == ""
    assert [a[2] for a in attempts(ok)] == ["mock executor: platform unavailable (simulated)", ""]
