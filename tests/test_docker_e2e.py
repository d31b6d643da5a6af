"""Jobs on a real Docker engine through the whole path: row, commit, local dispatch, steps.

Needs the engine and the local image (``infra/test-image.sh``); CI requires both.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from container_manager import clock, dispatch, steps, transitions
from container_manager.conf import setting
from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost
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


def test_missing_image_fails_clearly_and_keeps_the_job(local, docker_host):
    done = finished(run(docker_host, "no-such-image:never", "true"))
    assert done.status == "failed"
    assert "image 'no-such-image:never' not found" in done.last_error
    execution = ContainerExecution.objects.get(job=done)
    assert execution.status == "failed" and "not found" in execution.error
    assert slots_held(docker_host) == 0


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
