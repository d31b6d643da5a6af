"""The steps and the status machine on the mock executor, message by message.

The recording backend delivers nothing by itself: each test plays the transport, and the
clock stands still (the ``clock`` fixture) unless the test moves it.
"""

import uuid
from datetime import timedelta
from importlib import import_module

import pytest

from container_manager.engine import steps, transitions
from container_manager.executors.mock import MockExecutor
from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost
from container_manager.rules.status import InvalidTransition
from tests.support import SWEEP_STATEMENTS, row, submit

# The launch step's module (the package's ``launch`` is the step function itself).
launching = import_module("container_manager.engine.steps.launch")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clock")]


def slots(host):
    return ExecutorHost.objects.get(pk=host.pk).current_job_count


def deliver_all(backend, limit=200):
    """Deliver recorded messages (ignoring delays) until none are left."""
    for _ in range(limit):
        batch = backend.take()
        if not batch:
            return
        for step, job_id, _delay in batch:
            steps.run_step(step, job_id)
    pytest.fail("messages kept coming")


def test_create_sends_launch_on_commit(recording, mock_host):
    job = submit(mock_host)
    assert recording.take() == [("launch", str(job.pk), 0.0)]


def test_success_path_launch_check_harvest(recording, mock_host):
    job = submit(mock_host)
    recording.take()
    assert steps.launch(job.pk) == "launched"
    launched = row(job)
    assert (launched.status, launched.attempt_count) == ("running", 1)
    assert launched.execution_id.startswith("mock-")
    assert slots(mock_host) == 1
    [(step, _, delay)] = recording.take()
    assert step == "check" and delay == 0  # the mock's execution is already over
    assert steps.check(job.pk) == "completed"
    done = row(job)
    assert (done.status, done.exit_code, done.last_error) == ("completed", 0, "")
    assert done.completed_at >= done.started_at
    assert "simulated" in done.clean_output
    assert slots(mock_host) == 0
    execution = ContainerExecution.objects.get(job=job)
    assert (execution.status, execution.exit_code, execution.execution_id) == (
        "completed", 0, done.execution_id,
    )  # fmt: skip


def test_duplicate_and_out_of_order_messages(recording, make_mock_host, clock):
    host = make_mock_host(duration=0.3)
    job = submit(host)
    recording.take()
    assert steps.harvest(job.pk) == "nothing-to-do"  # harvest before launch
    assert steps.launch(job.pk) == "launched"
    assert steps.launch(job.pk) == "nothing-to-do"  # launch twice
    assert steps.harvest(job.pk) == "not-finished"  # harvest before the container exits
    assert row(job).status == "running"
    clock.advance(0.35)
    assert steps.harvest(job.pk) == "completed"  # harvest before check
    assert steps.check(job.pk) == "nothing-to-do"
    assert steps.harvest(job.pk) == "nothing-to-do"
    assert MockExecutor.execution_count(job.pk) == 1
    assert slots(host) == 0


def test_nonzero_exit_fails_with_reason(recording, make_mock_host):
    job = submit(make_mock_host(exit_code=3, stderr="boom\n"))
    deliver_all(recording)
    done = row(job)
    assert (done.status, done.exit_code, done.stderr_log) == ("failed", 3, "boom\n")
    assert done.last_error == "exited with code 3"


def test_retryable_launch_error_backs_off_then_succeeds(recording, make_mock_host, clock):
    host = make_mock_host(launch_failures=1)
    job = submit(host)
    recording.take()
    assert steps.launch(job.pk) == "retrying"
    waiting = row(job)
    assert (waiting.status, waiting.attempt_count) == ("pending", 1)
    assert clock.now() < waiting.run_after <= clock.now() + timedelta(seconds=0.05)
    assert "retrying" in waiting.last_error and "unavailable" in waiting.last_error
    assert slots(host) == 0
    sends = recording.take()
    assert [(s, d > 0) for s, _, d in sends] == [("launch", True)]
    clock.advance((waiting.run_after - clock.now()).total_seconds() - 0.001)
    assert steps.launch(job.pk) == "not-due"
    clock.advance(0.001)
    assert steps.launch(job.pk) == "launched"
    assert row(job).attempt_count == 2
    attempts = list(ContainerExecution.objects.filter(job=job).values_list("attempt", "status"))
    assert attempts == [(1, "failed"), (2, "running")]


def test_retry_stops_at_max_attempts(recording, make_mock_host):
    job = submit(make_mock_host(launch_error="retryable"), max_attempts=2)
    for _ in range(2):
        ContainerJob.objects.filter(pk=job.pk).update(run_after=None)
        steps.launch(job.pk)
    done = row(job)
    assert (done.status, done.attempt_count) == ("failed", 2)
    assert done.last_error.startswith("launch failed after 2 attempts")


def test_permanent_launch_error_fails_at_once(recording, make_mock_host):
    host = make_mock_host(launch_error="permanent")
    job = submit(host)
    assert steps.launch(job.pk) == "failed"
    done = row(job)
    assert done.status == "failed" and "launch refused" in done.last_error
    assert slots(host) == 0


def test_bad_executor_config_fails_the_job_naming_the_key(recording, make_mock_host):
    job = submit(make_mock_host(durration=1))
    assert steps.launch(job.pk) == "failed"
    assert "durration" in row(job).last_error


def test_timeout_stops_and_keeps_logs(recording, make_mock_host, clock):
    host = make_mock_host(duration=60, stdout="partial output\n")
    job = submit(host, timeout_seconds=1)
    steps.launch(job.pk)
    clock.advance(0.99)
    assert steps.check(job.pk) == "running"
    clock.advance(1.01)
    assert steps.check(job.pk) == "timeout"
    done = row(job)
    assert (done.status, done.exit_code, done.stdout_log) == ("timeout", 137, "partial output\n")
    assert "timed out after 1 seconds" in done.last_error
    assert slots(host) == 0


def test_check_is_never_scheduled_past_the_deadline(recording, make_mock_host, clock):
    job = submit(make_mock_host(duration=60), timeout_seconds=2)
    steps.launch(job.pk)
    clock.advance(1.9)
    recording.take()
    assert steps.check(job.pk) == "running"
    [(_, _, delay)] = recording.take()
    assert delay <= 0.2
    assert delay == pytest.approx(0.15)  # what is left of the 2 s, plus 50 ms


def test_cancel_pending_running_and_terminal(recording, make_mock_host):
    host = make_mock_host(duration=60)
    pending = submit(host)
    assert pending.cancel() is True
    deliver_all(recording)
    assert row(pending).status == "cancelled"
    running = submit(host)
    steps.launch(running.pk)
    recording.take()
    assert running.cancel() is True
    assert [s for s, _, _ in recording.messages] == ["cancel"]
    deliver_all(recording)
    done = row(running)
    assert (done.status, done.last_error) == ("cancelled", "cancelled on request")
    assert slots(host) == 0
    assert done.cancel() is False


def test_cancel_during_launch_is_carried_out_after_it(recording, make_mock_host):
    job = submit(make_mock_host(duration=60))
    recording.take()
    original = MockExecutor.launch_job

    def launch_and_cancel(self, job_arg):
        result = original(self, job_arg)
        ContainerJob.objects.get(pk=job_arg.job_id).cancel()
        assert steps.cancel(job_arg.job_id) == "after-launch"
        return result

    MockExecutor.launch_job = launch_and_cancel
    try:
        steps.launch(job.pk)
    finally:
        MockExecutor.launch_job = original
    deliver_all(recording)
    assert row(job).status == "cancelled"


def test_vanished_execution_fails_without_guessing(recording, make_mock_host):
    job = submit(make_mock_host(vanish=True))
    steps.launch(job.pk)
    assert steps.check(job.pk) == "failed"
    done = row(job)
    assert done.exit_code is None and "no longer on host" in done.last_error


def test_host_at_capacity_job_waits_then_runs(recording, make_mock_host):
    host = make_mock_host(max_concurrent_jobs=1)
    first, second = submit(host), submit(host)
    recording.take()
    assert steps.launch(first.pk) == "launched"
    assert steps.launch(second.pk) == "waiting-for-slot"
    assert (row(second).status, row(second).attempt_count) == ("pending", 0)
    assert not ContainerExecution.objects.filter(job=second).exists()
    recording.take()
    assert steps.check(first.pk) == "completed"
    assert ("start", str(second.pk), 0.0) in recording.take()  # the slot was handed over
    assert steps.launch(second.pk) == "launched"


def test_inactive_host_holds_jobs_until_reactivated(recording, mock_host):
    job = submit(mock_host)
    ExecutorHost.objects.filter(pk=mock_host.pk).update(is_active=False)
    assert steps.launch(job.pk) == "waiting-for-slot"
    ExecutorHost.objects.filter(pk=mock_host.pk).update(is_active=True)
    assert steps.launch(job.pk) == "launched"


def test_crash_after_start_is_reconciled_to_the_same_execution(
    recording, mock_host, monkeypatch, clock
):
    job = submit(mock_host)
    recording.take()
    real_move = transitions.move

    def crash_on_running(job_arg, old, new, **kwargs):
        if new == "running":
            raise RuntimeError("process died between container start and database write")
        return real_move(job_arg, old, new, **kwargs)

    monkeypatch.setattr(launching, "move", crash_on_running)
    with pytest.raises(RuntimeError):
        steps.launch(job.pk)
    monkeypatch.setattr(launching, "move", real_move)
    stuck = row(job)
    assert (stuck.status, MockExecutor.execution_count(job.pk)) == ("launching", 1)
    assert steps.launch(job.pk) == "in-progress"  # the lease still holds
    assert steps.sweep()["relaunch"] == 0
    ContainerJob.objects.filter(pk=job.pk).update(lease_expires_at=clock.now())
    assert steps.sweep(now=clock.now() + timedelta(seconds=3))["relaunch"] == 1
    deliver_all(recording)
    done = row(job)
    assert (done.status, done.attempt_count) == ("completed", 1)
    assert MockExecutor.execution_count(job.pk) == 1
    assert MockExecutor.launch_count(job.pk) == 2
    assert slots(mock_host) == 0


def test_sweep_alone_finishes_jobs_whose_messages_were_lost(recording, make_mock_host, clock):
    host = make_mock_host(max_concurrent_jobs=3)
    jobs = [submit(host) for _ in range(7)]
    pending_cancel = submit(host)
    pending_cancel.cancel()
    for _ in range(30):
        recording.take()  # every message is lost...
        steps.sweep(now=clock.now() + timedelta(seconds=5))
        for step, job_id, _ in recording.take():  # ...except the sweep's own
            steps.run_step(step, job_id)
        if not ContainerJob.objects.live().exists():
            break
    assert {row(j).status for j in jobs} == {"completed"}
    assert row(pending_cancel).status == "cancelled"
    assert slots(host) == 0


def test_sweep_ignores_work_that_is_not_due(recording, make_mock_host, clock):
    host = make_mock_host(duration=60)
    later = submit(host, run_after=clock.now() + timedelta(hours=1))
    running = submit(host)
    steps.launch(running.pk)
    recording.take()
    sent = steps.sweep(now=clock.now() + timedelta(seconds=3))
    assert sent == {
        "launch": 0,
        "settle": 0,
        "relaunch": 0,
        "check": 1,
        "cancel": 0,
        "notify": 0,
        "scheduled": 0,
    }
    assert recording.take() == [("check", str(running.pk), 0.0)]
    assert row(later).status == "pending"


def test_sweep_query_count_does_not_grow_with_rows(
    recording, make_mock_host, django_assert_num_queries, clock
):
    """A fixed number of queries however many rows (no count refresh: it is computed)."""
    host = make_mock_host()
    for _ in range(3):
        submit(host)
    with django_assert_num_queries(SWEEP_STATEMENTS):
        steps.sweep()
    for _ in range(30):
        submit(host)
    with django_assert_num_queries(SWEEP_STATEMENTS):
        steps.sweep(now=clock.now() + timedelta(seconds=5))


def test_terminal_status_never_changes(recording, mock_host):
    job = submit(mock_host)
    deliver_all(recording)
    assert row(job).status == "completed"
    for new in ("running", "failed", "cancelled", "pending"):
        with pytest.raises(InvalidTransition):
            transitions.move(job, "completed", new)
    assert transitions.move(row(job), "running", "failed") is False  # stale old status
    assert row(job).status == "completed"


def test_unknown_job_ids_are_harmless(recording):
    for step in ("launch", "check", "harvest", "cancel"):
        assert steps.run_step(step, uuid.uuid4()) in {"missing", "nothing-to-do"}


def test_retry_delay_grows_and_is_capped(settings):
    settings.CONTAINER_MANAGER = {"RETRY_BACKOFF_BASE": 2.0, "RETRY_BACKOFF_MAX": 10.0}
    assert 1.0 <= steps.retry_delay(1) <= 2.0
    assert 4.0 <= steps.retry_delay(3) <= 8.0
    assert 5.0 <= steps.retry_delay(10) <= 10.0
    assert len({steps.retry_delay(3) for _ in range(20)}) > 1  # jitter


def test_sweep_sends_no_more_launches_than_free_slots(recording, make_mock_host, clock, hold_slots):
    small, big = make_mock_host(max_concurrent_jobs=2), make_mock_host(max_concurrent_jobs=5)
    hold_slots(big, 4)
    urgent = submit(small, priority=10)
    for _ in range(6):
        submit(small), submit(big)
    recording.take()
    sent = steps.sweep(now=clock.now() + timedelta(seconds=3))
    assert sent["launch"] == 3  # 2 free on the small host, 1 on the big one
    launched = [job_id for _, job_id, _ in recording.take()]
    assert launched[0] == str(urgent.pk)


def test_status_moves_send_post_save_with_update_fields(recording, mock_host):
    from django.db.models.signals import post_save

    seen = []

    def on_save(sender, instance, created, update_fields=None, **kwargs):
        if not created and update_fields and "status" in update_fields:
            seen.append(instance.status)

    post_save.connect(on_save, sender=ContainerJob)
    try:
        job = submit(mock_host)
        deliver_all(recording)
    finally:
        post_save.disconnect(on_save, sender=ContainerJob)
    assert seen == ["launching", "running", "completed"]
    assert row(job).status == "completed"


def test_the_first_check_comes_when_the_executor_says_the_run_ends(
    recording, make_mock_host, settings, clock
):
    from container_manager import dispatch

    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "CHECK_DELAY_INITIAL": 5.0}
    recording = dispatch.get_backend()  # the settings change built a new one
    short, long = submit(make_mock_host(duration=2)), submit(make_mock_host(duration=60))
    recording.take()
    assert steps.launch(short.pk) == steps.launch(long.pk) == "launched"
    delays = {job_id: delay for step, job_id, delay in recording.take() if step == "check"}
    assert delays == {str(short.pk): pytest.approx(2.0), str(long.pk): 5.0}


def test_copies_of_a_check_arriving_one_after_another_do_not_fork_the_chain(
    recording, make_mock_host, settings, clock
):
    from container_manager import dispatch

    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "CHECK_DELAY_INITIAL": 5.0}
    recording = dispatch.get_backend()  # the settings change built a new one
    job = submit(make_mock_host(duration=60))
    steps.launch(job.pk)
    ContainerJob.objects.filter(pk=job.pk).update(next_check_at=clock.now())
    recording.take()
    assert [steps.check(job.pk) for _ in range(3)] == ["running", "not-due", "not-due"]
    assert [step for step, _, _ in recording.take()] == ["check"]


def test_a_finished_job_on_a_host_with_room_sends_no_launch(recording, make_mock_host):
    host = make_mock_host(max_concurrent_jobs=50)
    running = submit(host)
    steps.launch(running.pk)
    for _ in range(10):
        submit(host)  # their own launches are already on the way, and find room
    recording.take()
    assert steps.check(running.pk) == "completed"
    assert [step for step, _, _ in recording.take()] == []


def test_sweep_sends_the_most_overdue_checks_first(recording, make_mock_host, settings, clock):
    from container_manager import dispatch

    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "SWEEP_BATCH_SIZE": 2}
    backend = dispatch.get_backend()
    host = make_mock_host(duration=60)
    jobs = [submit(host) for _ in range(3)]
    for job in jobs:
        steps.launch(job.pk)
    now = clock.now()
    for minutes, job in zip((1, 30, 10), jobs, strict=True):
        ContainerJob.objects.filter(pk=job.pk).update(
            next_check_at=now - timedelta(minutes=minutes)
        )
    backend.take()
    steps.sweep()
    assert [job_id for step, job_id, _ in backend.take() if step == "check"] == [
        str(jobs[1].pk), str(jobs[2].pk),
    ]  # fmt: skip
