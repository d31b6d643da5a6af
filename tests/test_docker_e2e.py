"""Jobs on a real Docker engine through the whole path: row, commit, local dispatch, steps.

Needs the engine and the local image (``infra/test-image.sh``); CI requires both.
"""

import time
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from container_manager import clock, dispatch
from container_manager.conf import setting
from container_manager.engine import steps, transitions
from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost
from container_manager.rules.logtext import strip_timestamps
from tests.backends import RecordingBackend
from tests.conftest import containers_for, slots_held, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def run(host, image, command, **kwargs):
    return ContainerJob.objects.create_job(image=image, command=command, docker_host=host, **kwargs)


def finished(job, timeout=60):
    wait_for(lambda: ContainerJob.objects.get(pk=job.pk).is_terminal_status, timeout=timeout)
    return ContainerJob.objects.get(pk=job.pk)


def test_success_keeps_stdout_and_stderr_apart(local, docker_host, docker_ready):
    job = run(
        docker_host, docker_ready, "sh -c 'echo out-line; echo err-line >&2'", memory_limit=64
    )
    done = finished(job)
    assert (done.status, done.exit_code) == ("completed", 0)
    assert done.clean_output == "out-line\n"
    assert "out-line" in done.stdout_log and "err-line" not in done.stdout_log
    assert "err-line" in done.stderr_log and "out-line" not in done.stderr_log
    assert done.stdout_log.startswith("20")  # the engine's timestamp is kept in the raw log
    assert done.duration is not None and done.duration.total_seconds() >= 0
    execution = ContainerExecution.objects.get(job=done)
    assert (execution.status, execution.execution_id) == ("completed", done.execution_id)
    # Removed right after the results were stored (the status is written first).
    wait_for(lambda: containers_for(done.pk) == [], timeout=15)
    assert slots_held(docker_host) == 0


def test_nonzero_exit_fails(local, docker_host, docker_ready):
    done = finished(run(docker_host, docker_ready, "sh -c 'echo bad >&2; exit 3'"))
    assert (done.status, done.exit_code, done.last_error) == ("failed", 3, "exited with code 3")
    assert "bad" in done.stderr_log


def test_memory_limit_kill_is_shown_clearly(local, docker_host, docker_ready):
    command = "sh -c 'x=$(head -c 50000000 /dev/zero | tr \"\\0\" a); echo ${#x}'"
    done = finished(run(docker_host, docker_ready, command, memory_limit=8))
    assert (done.status, done.exit_code) == ("failed", 137)
    assert "memory limit (8 MB)" in done.last_error and "OOMKilled" in done.last_error
    assert "oom_killed=true" in done.docker_log


def test_timeout_stops_container_and_keeps_logs(local, docker_host, docker_ready):
    job = run(docker_host, docker_ready, "sh -c 'echo started; sleep 60'", timeout_seconds=2)
    done = finished(job, timeout=30)
    assert done.status == "timeout"
    assert done.clean_output == "started\n"
    assert "timed out after 2 seconds" in done.last_error
    assert done.duration.total_seconds() < 15
    wait_for(lambda: containers_for(done.pk) == [], timeout=15)


def test_cancel_while_running_stops_the_container(local, docker_host, docker_ready):
    ExecutorHost.objects.filter(pk=docker_host.pk).update(
        executor_config={"remove_containers": False}
    )
    docker_host.refresh_from_db()
    job = run(docker_host, docker_ready, "sh -c 'echo up; sleep 60'")
    wait_for(lambda: ContainerJob.objects.get(pk=job.pk).status == "running")
    job.refresh_from_db()
    assert job.cancel() is True
    done = finished(job, timeout=30)
    assert done.status == "cancelled"
    assert done.last_error == "cancelled on request"
    import docker

    container = docker.from_env().containers.get(done.execution_id)
    assert container.status == "exited"
    container.remove(force=True)


def test_missing_image_uses_the_attempts_and_fails_naming_it(local, docker_host):
    done = finished(run(docker_host, "no-such-image:never", "true", max_attempts=2))
    assert (done.status, done.attempt_count) == ("failed", 2)
    assert done.last_error.startswith("launch failed after 2 attempts: ")
    assert "image 'no-such-image:never' not found" in done.last_error
    assert "auto_pull_images is off" in done.last_error
    executions = ContainerExecution.objects.filter(job=done).values_list("status", "error")
    assert [status for status, _ in executions] == ["failed", "failed"]
    assert all("no-such-image:never" in error for _, error in executions)
    assert slots_held(docker_host) == 0


def test_a_missing_image_fails_as_the_jobs_fault_and_the_host_goes_on(local, docker_ready):
    """Issue 24 as reported: one slot; ``no-such-image:2``, then ``sleep``, then ``echo hi``.

    Runs on the database of the run: CI runs the suite on SQLite and on PostgreSQL.

    Whatever the registry answers the engine's pull (404, or no answer without a network),
    the bad job uses its attempts and fails naming the image, and the others run in turn.
    Before, the pull's error was "host unreachable": the bad job went back to pending under
    its attempt number, and the hand-over that claimed it inserted that attempt's row again
    (SQLite: the UNIQUE error wedged ``sleep`` running and ``echo`` pending) or it waited
    HOST_UNREACHABLE_TIMEOUT (PostgreSQL).
    """
    host = ExecutorHost.objects.create(
        name=f"docker-{uuid.uuid4().hex[:8]}",
        executor_type="docker",
        connection_string="unix:///var/run/docker.sock",
        max_concurrent_jobs=1,
    )
    assert host.auto_pull_images  # the default: the engine is asked to pull the missing image
    bad = run(host, "no-such-image:2", "true")
    sleeper = run(host, docker_ready, "sleep 2")
    echo = run(host, docker_ready, "echo hi")
    bad, sleeper, echo = (finished(job) for job in (bad, sleeper, echo))
    assert (sleeper.status, echo.status, echo.clean_output) == ("completed", "completed", "hi\n")
    assert (bad.status, bad.attempt_count) == ("failed", bad.max_attempts)
    assert bad.last_error.startswith(f"launch failed after {bad.max_attempts} attempts: ")
    assert "image 'no-such-image:2' could not be pulled" in bad.last_error
    rows = ContainerExecution.objects.filter(job=bad).values_list("attempt", "status")
    assert list(rows) == [(n, "failed") for n in range(1, bad.max_attempts + 1)]
    host.refresh_from_db()
    assert host.unreachable_since is None
    assert slots_held(host) == 0


def test_host_at_capacity_jobs_wait_their_turn(local, docker_host, docker_ready):
    ExecutorHost.objects.filter(pk=docker_host.pk).update(max_concurrent_jobs=1)
    docker_host.refresh_from_db()
    jobs = [run(docker_host, docker_ready, "sleep 0.5") for _ in range(3)]
    most_active = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = list(
            ContainerJob.objects.filter(pk__in=[j.pk for j in jobs]).values_list(
                "status", flat=True
            )
        )
        most_active = max(most_active, sum(s in ("launching", "running") for s in statuses))
        if all(s == "completed" for s in statuses):
            break
        time.sleep(0.02)
    assert all(ContainerJob.objects.get(pk=j.pk).status == "completed" for j in jobs)
    assert most_active == 1


def test_a_launch_killed_before_its_container_existed_resumes_at_the_reconcile_delay(
    local, docker_host, docker_ready, monkeypatch
):
    with dispatch.use_backend(RecordingBackend({})):  # the worker that is killed
        job = run(docker_host, docker_ready, "echo resumed")
        lease = clock.now() + timedelta(seconds=setting("LAUNCH_LEASE_SECONDS"))
        assert transitions.begin_launch(job, lease)  # it took the slot, then died
    assert containers_for(job.pk) == [] and slots_held(docker_host) == 1
    reconcile = setting("LAUNCH_RECONCILE_SECONDS")
    assert steps.sweep(now=timezone.now() + timedelta(seconds=reconcile - 1))["relaunch"] == 0
    later = timedelta(seconds=reconcile)
    monkeypatch.setattr("container_manager.clock.now", lambda: timezone.now() + later)
    assert steps.sweep()["relaunch"] == 1  # taken over now, not when the lease ends
    done = finished(job, timeout=30)
    assert (done.status, done.attempt_count, done.clean_output) == ("completed", 1, "resumed\n")
    wait_for(lambda: containers_for(done.pk) == [], timeout=15)
    assert slots_held(docker_host) == 0


def test_environment_workdir_and_network_alias(local, docker_host, docker_ready):
    import docker

    client = docker.from_env()
    network = client.networks.create("cm-e2e-net", labels={"container_manager.test": "1"})
    try:
        job = run(
            docker_host, docker_ready, "sh -c 'echo $GREETING; pwd; cat /etc/hostname'",
            environment_vars={"GREETING": "hello world"}, working_directory="/tmp",
            network_configuration=[{"network_name": "cm-e2e-net", "aliases": ["worker"]}],
        )  # fmt: skip
        done = finished(job)
        assert done.status == "completed"
        assert done.clean_output.splitlines()[:2] == ["hello world", "/tmp"]
    finally:
        network.remove()


def test_resource_use_is_sampled_while_running(local, docker_host, docker_ready, settings):
    # Usage is sampled by checks, which are sparse while engine events flow.
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "CHECK_DELAY_WITH_EVENTS": 0.5}
    done = finished(run(docker_host, docker_ready, "sh -c 'sleep 3'", memory_limit=32))
    assert done.status == "completed"
    assert done.max_memory_usage and done.max_memory_usage > 0
    assert done.cpu_usage_percent is not None


class LogFollower:
    """A client of the logs API that passes the offsets back and keeps every answer."""

    def __init__(self, client, job):
        self.client, self.url = client, reverse("container_manager:api-job-logs", args=[job.pk])
        self.offsets, self.answers = {}, []

    def read(self):
        """One more answer; returns it."""
        token = {"Authorization": "Bearer e2e-token"}
        response = self.client.get(self.url, self.offsets, headers=token)
        assert response.status_code == 200, response.content
        body = response.json()
        self.offsets = {name: body[name] for name in ("stdout_offset", "stderr_offset")}
        self.answers.append(body)
        return body

    def text(self, stream):
        """Everything received on ``stream``, in order."""
        return "".join(answer[stream] for answer in self.answers)


def test_logs_api_follows_a_running_container_to_its_end(
    local, docker_host, docker_ready, client, settings
):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": ["e2e-token"]}
    script = (
        "for i in 1 2 3; do echo early $i; done; echo warn >&2; "
        "while [ ! -e /tmp/go ]; do sleep 0.05; done; "
        "for i in $(seq 1 40); do echo late $i; sleep 0.01; done"
    )
    job = run(docker_host, docker_ready, f"sh -c '{script}'")
    follower = LogFollower(client, job)

    def early_lines_read():
        follower.read()
        return "early 3\n" in strip_timestamps(follower.text("stdout"))

    wait_for(early_lines_read, timeout=60)
    # The container waits for /tmp/go: these lines were read live from a running container.
    assert (follower.answers[-1]["source"], follower.answers[-1]["status"]) == ("live", "running")
    import docker

    running = ContainerJob.objects.get(pk=job.pk)
    docker.from_env().containers.get(running.execution_id).exec_run(["touch", "/tmp/go"])
    wait_for(lambda: follower.read()["complete"], timeout=60)
    done = ContainerJob.objects.get(pk=job.pk)
    assert done.status == "completed"
    assert follower.text("stdout") == done.stdout_log and follower.text("stderr") == done.stderr_log
    expected = [f"early {i}" for i in (1, 2, 3)] + [f"late {i}" for i in range(1, 41)]
    assert strip_timestamps(follower.text("stdout")).splitlines() == expected
    assert strip_timestamps(done.stderr_log) == "warn\n"
