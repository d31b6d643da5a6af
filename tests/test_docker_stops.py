"""On the real Docker engine: stops that never wait, failed starts, reconciled launches, outages.

Where the engine decides (a signal's effect), the test waits for it with a generous bound.
"""

import json
import subprocess
import uuid
from datetime import timedelta
from importlib import import_module

import pytest
from django.utils import timezone

from container_manager.conf import setting
from container_manager.engine import steps, transitions
from container_manager.executors.docker import DockerExecutor
from container_manager.models import ContainerJob, ExecutorHost
from tests.conftest import containers_for, wait_for
from tests.support import row

# The launch step's module (the package's ``launch`` is the step function itself).
launching = import_module("container_manager.engine.steps.launch")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def jobs(docker_host, recording):
    """Submit jobs on the Docker host; their containers are removed afterwards."""
    made = []

    def submit(command, host=None, **kwargs):
        job = ContainerJob.objects.create_job(
            image="cm-busybox:latest", command=command, docker_host=host or docker_host, **kwargs
        )
        made.append(job)
        return job

    yield submit
    for job in made:
        for name in containers_for(job.pk):
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def state(container):
    out = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, check=False
    )
    return json.loads(out.stdout)[0]["State"] if out.returncode == 0 else None


def docker_id(name):
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True
    )
    return out.stdout.strip()


def past_deadline(job):
    ContainerJob.objects.filter(pk=job.pk).update(
        started_at=timezone.now() - timedelta(seconds=job.timeout_seconds + 1)
    )


def past_grace(job):
    ContainerJob.objects.filter(pk=job.pk).update(
        stop_requested_at=timezone.now() - timedelta(seconds=setting("STOP_GRACE_SECONDS") + 1),
        next_check_at=None,
    )


def stopping(jobs):
    """A job past its deadline whose check asked the engine to stop it; the container id."""
    job = jobs("sleep 300", timeout_seconds=1)
    assert steps.launch(job.pk) == "launched"
    container = row(job).execution_id
    past_deadline(job)
    assert steps.check(job.pk) == "stopping"
    # The step returned with the container still running: it did not wait out the grace.
    assert state(container)["Running"] is True
    return job, container


def test_timeout_of_a_process_ignoring_sigterm_is_killed_by_a_later_check(jobs):
    job, container = stopping(jobs)
    assert row(job).stop_reason == "timeout"
    past_grace(job)
    assert steps.check(job.pk) == "timeout"
    done = row(job)
    assert (done.status, done.exit_code) == ("timeout", 137)
    assert done.last_error == "timed out after 1 seconds; the container was stopped"
    assert state(container) is None or state(container)["Running"] is False


def test_the_engine_kills_after_the_grace_with_no_step_involved(jobs):
    job, container = stopping(jobs)
    # No kill from a step: the engine's own clock ends it once the grace has passed.
    wait_for(
        lambda: state(container)["Running"] is False, timeout=setting("STOP_GRACE_SECONDS") + 20
    )
    assert state(container)["ExitCode"] == 137
    assert steps.harvest(job.pk) == "timeout"  # what the die event sends
    assert row(job).exit_code == 137


def test_a_job_that_exits_on_sigterm_still_ends_as_timeout(jobs):
    job = jobs("sh -c 'trap \"exit 0\" TERM; while true; do sleep 0.1; done'", timeout_seconds=1)
    steps.launch(job.pk)
    container = row(job).execution_id
    past_deadline(job)
    assert steps.check(job.pk) in {"stopping", "timeout"}
    wait_for(lambda: (state(container) or {}).get("Running") is not True, timeout=30)
    ContainerJob.objects.filter(pk=job.pk, status="running").update(next_check_at=None)
    steps.check(job.pk)
    done = row(job)
    assert done.status == "timeout" and "timed out" in done.last_error


def test_cancel_is_asked_then_seen_through(jobs):
    job = jobs("sleep 300")
    steps.launch(job.pk)
    job.cancel()
    assert steps.cancel(job.pk) == "stopping"
    past_grace(job)
    assert steps.check(job.pk) == "cancelled"
    assert (row(job).last_error, row(job).exit_code) == ("cancelled on request", 137)


def test_a_failed_start_leaves_no_created_container(jobs):
    job = jobs("/no/such/binary")
    assert steps.launch(job.pk) == "failed"
    done = row(job)
    assert "no/such/binary" in done.last_error and done.attempt_count == 1
    assert containers_for(job.pk) == []


def launch_began(job, seconds_ago):
    lease = setting("LAUNCH_LEASE_SECONDS")
    ContainerJob.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() + timedelta(seconds=lease - seconds_ago)
    )


def test_launch_crashed_after_start_is_reconciled_to_its_container(jobs, monkeypatch):
    job = jobs("sleep 300")
    real_move = transitions.move

    def crash_on_running(job_arg, old, new, **kwargs):
        if new == "running":
            raise RuntimeError("launcher died after the start")
        return real_move(job_arg, old, new, **kwargs)

    monkeypatch.setattr(launching, "move", crash_on_running)
    with pytest.raises(RuntimeError):
        steps.launch(job.pk)
    monkeypatch.setattr(launching, "move", real_move)
    [name] = containers_for(job.pk)
    launch_began(job, setting("LAUNCH_RECONCILE_SECONDS") + 1)
    assert steps.launch(job.pk) == "reconciled"
    running = row(job)
    assert running.status == "running" and containers_for(job.pk) == [name]
    assert state(name)["Running"] is True
    assert running.execution_id == docker_id(name)


def test_launch_crashed_between_create_and_start_is_started_once(jobs, monkeypatch):
    job = jobs("sleep 300")
    monkeypatch.setattr(
        DockerExecutor,
        "_ensure_started",
        lambda self, container, request: (_ for _ in ()).throw(SystemExit("killed")),
    )
    with pytest.raises(SystemExit):
        steps.launch(job.pk)
    monkeypatch.undo()
    [name] = containers_for(job.pk)
    assert state(name)["Status"] == "created"
    launch_began(job, setting("LAUNCH_RECONCILE_SECONDS") + 1)
    assert steps.launch(job.pk) == "reconciled"
    assert containers_for(job.pk) == [name] and state(name)["Running"] is True


def test_missing_socket_keeps_the_job_pending_and_marks_the_host(jobs, db):
    host = ExecutorHost.objects.create(
        name=f"gone-{uuid.uuid4().hex[:8]}",
        executor_type="docker",
        host_type="unix",
        connection_string=f"unix:///tmp/cm-no-such-{uuid.uuid4().hex[:8]}.sock",
    )
    job = jobs("true", host=host, max_attempts=1)
    assert steps.launch(job.pk) == "host-unreachable"
    waiting = row(job)
    assert (waiting.status, waiting.attempt_count) == ("pending", 0)
    sick = ExecutorHost.objects.get(pk=host.pk)
    assert sick.last_health_ok is False and sick.unreachable_since is not None
    assert sick.current_job_count == 0
