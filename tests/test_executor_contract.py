"""One contract for every executor, driven through the real steps with the recording backend.

Each platform is a small adapter: how to make a host, how a fake plays the job, how to count
remote executions, make one vanish, make a launch fail. The same assertions hold for all.
"""

import subprocess
import time
import uuid
from datetime import timedelta
from importlib import import_module

import pytest
from django.utils import timezone

from container_manager.conf import setting
from container_manager.engine import steps, transitions
from container_manager.executors import factory
from container_manager.executors.exceptions import ExecutorConfigurationError
from container_manager.executors.mock import MockExecutor
from container_manager.models import ContainerJob, ExecutorHost
from tests.conftest import containers_for
from tests.fakes import script
from tests.fakes.aws import moto, moto_server  # noqa: F401 - fixtures
from tests.fakes.cloudrun import cloudrun_fake  # noqa: F401 - fixture
from tests.fakes.scaleway import scaleway_fake  # noqa: F401 - fixture
from tests.support import row

# The launch step's module (the package's ``launch`` is the step function itself).
launching = import_module("container_manager.engine.steps.launch")

pytestmark = pytest.mark.django_db(transaction=True)

COMMANDS = {
    "ok": "sh -c 'echo hello'",
    "exit3": "sh -c 'echo hello; echo boom >&2; exit 3'",
    "forever": "sleep 300",
}


def _host(executor_type, config, **fields):
    return ExecutorHost.objects.create(
        name=f"{executor_type}-{uuid.uuid4().hex[:8]}",
        executor_type=executor_type,
        connection_string=fields.pop("connection_string", f"{executor_type}://contract"),
        executor_config=config,
        **fields,
    )


def _submit(host, scenario, image="busybox", **kwargs):
    return ContainerJob.objects.create_job(
        image=image, command=COMMANDS[scenario], docker_host=host, **kwargs
    )


class MockPlatform:
    """The mock executor: outcomes come from the host's executor_config."""

    name = "mock"
    logs = separate_stderr = True
    CONFIG = {
        "ok": {"stdout": "hello\n"},
        "exit3": {"stdout": "hello\n", "stderr": "boom\n", "exit_code": 3},
        "forever": {"duration": 300},
    }

    def submit(self, scenario, **kwargs):
        return _submit(_host("mock", self.CONFIG[scenario]), scenario, **kwargs)

    def started(self, job):
        pass

    def executions(self, job):
        return MockExecutor.execution_count(job.pk)

    def vanish(self, job):
        ExecutorHost.objects.filter(pk=job.docker_host_id).update(executor_config={"vanish": True})
        factory.clear_cache()

    def refused(self, kind):
        mode = "unreachable" if kind == "retryable" else kind
        return _submit(_host("mock", {"launch_error": mode}), "ok")

    def bad_config(self):
        return {"durration": 1}, "durration"


class DockerPlatform:
    """The local Docker engine and the test image; containers are kept so they can be counted."""

    name = "docker"
    logs = separate_stderr = True

    def __init__(self, image):
        self.image = image
        self.jobs = []

    def _docker_host(self, **fields):
        return _host(
            "docker",
            {"remove_containers": False},
            host_type=fields.pop("host_type", "unix"),
            connection_string=fields.pop("connection_string", "unix:///var/run/docker.sock"),
            auto_pull_images=False,
        )

    def submit(self, scenario, **kwargs):
        job = _submit(self._docker_host(), scenario, image=self.image, **kwargs)
        self.jobs.append(job)
        return job

    def started(self, job):
        pass

    def executions(self, job):
        return len(containers_for(job.pk))

    def vanish(self, job):
        subprocess.run(["docker", "rm", "-f", job.execution_id], capture_output=True, check=True)

    def refused(self, kind):
        if kind == "retryable":
            host = self._docker_host(host_type="tcp", connection_string="tcp://127.0.0.1:9")
            return _submit(host, "ok", image=self.image)
        # A missing image is retried as the job's fault (tests/test_image_pull.py); a missing
        # network never appears by itself.
        networks = [{"network_name": "cm-no-such-network"}]
        return _submit(self._docker_host(), "ok", image=self.image, network_configuration=networks)

    def bad_config(self):
        return {"timeout": "soon"}, "timeout"

    def close(self):
        for job in self.jobs:
            for name in containers_for(job.pk):
                subprocess.run(["docker", "rm", "-f", name], capture_output=True)


class FargatePlatform:
    """moto in server mode; exit codes and forgotten tasks through its in-process backend."""

    name = "fargate"
    logs = True
    separate_stderr = False  # awslogs puts both streams in one CloudWatch stream

    def __init__(self, moto_fixture):
        self.moto = moto_fixture
        self.config = moto_fixture.stack()

    def submit(self, scenario, **kwargs):
        # A task that never stops: describes never move it on.
        self.moto.set_task_progression(10**9 if scenario == "forever" else 1)
        return _submit(_host("fargate", self.config), scenario, **kwargs)

    def started(self, job):
        """Play the task: write its log lines and set its exit code (HTTP cannot)."""
        played = script.outcome(ContainerJob.objects.get(pk=job.pk).command)
        for task in self.moto.tasks(self.config["cluster"], f"cm-{job.id.hex}-"):
            # moto cannot set a container's exit code over HTTP: in-process backend.
            task.containers[0].exitCode = played.exit_code
            stream = f"cm/job/{task.id}"
            self.moto.write_logs("cm-jobs", stream, played.stdout + played.stderr)

    def executions(self, job):
        return len(self.moto.tasks(self.config["cluster"], f"cm-{job.id.hex}-"))

    def vanish(self, job):
        # ECS forgets stopped tasks after about an hour; moto never does: drop it in-process.
        self.moto.backend().tasks[self.config["cluster"]].pop(job.execution_id)

    def refused(self, kind):
        if kind == "retryable":
            config = {**self.config, "endpoint_url": "http://127.0.0.1:9"}
        else:
            config = {**self.config, "task_definition": "never-registered"}
        return _submit(_host("fargate", config), "ok")

    def bad_config(self):
        config = dict(self.config)
        del config["cluster"]
        return config, "cluster"


class FakeServerPlatform:
    """Cloud Run or Scaleway against a local fake server that plays the command itself."""

    def __init__(self, name, fake):
        self.name, self.fake = name, fake
        # Scaleway's Jobs API returns no logs (they are in Cockpit).
        self.logs = self.separate_stderr = name != "scaleway"

    def submit(self, scenario, **kwargs):
        return _submit(_host(self.name, self.fake.config()), scenario, **kwargs)

    def started(self, job):
        pass

    def executions(self, job):
        return self.fake.execution_count(job.id.hex)

    def vanish(self, job):
        self.fake.forget(job.execution_id)

    def refused(self, kind):
        self.fake.fail_next_launch(503 if kind == "retryable" else 400)
        return _submit(_host(self.name, self.fake.config()), "ok")

    def bad_config(self):
        return self.fake.bad_config()


@pytest.fixture(params=["mock", "docker", "fargate", "cloudrun", "scaleway"])
def platform(request, recording):
    """Each executor in turn, behind the same adapter interface."""
    if request.param == "mock":
        yield MockPlatform()
    elif request.param == "docker":
        adapter = DockerPlatform(request.getfixturevalue("docker_ready"))
        yield adapter
        adapter.close()
    elif request.param == "fargate":
        yield FargatePlatform(request.getfixturevalue("moto"))
    elif request.param == "cloudrun":
        yield FakeServerPlatform("cloudrun", request.getfixturevalue("cloudrun_fake"))
    else:
        yield FakeServerPlatform("scaleway", request.getfixturevalue("scaleway_fake"))


def launch(platform, job):
    result = steps.launch(job.pk)
    if result == "launched":
        platform.started(job)
    return result


def run_to_end(job, timeout=30.0):
    """Deliver checks (the recording backend delivers none) until the job is terminal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ContainerJob.objects.filter(pk=job.pk, status="running").update(next_check_at=None)
        steps.check(job.pk)
        done = row(job)
        if done.is_terminal_status:
            return done
        time.sleep(0.05)
    pytest.fail(f"job still {row(job).status} after {timeout}s")


def test_success(platform):
    job = platform.submit("ok")
    assert launch(platform, job) == "launched"
    done = run_to_end(job)
    assert (done.status, done.exit_code, done.last_error) == ("completed", 0, "")
    if platform.logs:
        assert "hello" in done.clean_output and "hello" in done.stdout_log
    assert done.started_at and done.completed_at >= done.started_at
    assert done.docker_log
    assert platform.executions(job) == 1


def test_nonzero_exit(platform):
    job = platform.submit("exit3")
    launch(platform, job)
    done = run_to_end(job)
    assert (done.status, done.exit_code) == ("failed", 3)
    assert done.last_error == "exited with code 3"
    if platform.logs:
        assert "boom" in (done.stderr_log if platform.separate_stderr else done.stdout_log)


def test_timeout_stops_the_execution(platform):
    job = platform.submit("forever", timeout_seconds=1)
    launch(platform, job)
    assert steps.check(job.pk) in {"running", "not-due"}
    ContainerJob.objects.filter(pk=job.pk).update(
        started_at=timezone.now() - timedelta(seconds=2), next_check_at=None
    )
    first = steps.check(job.pk)
    assert first in {"timeout", "stopping"}
    if first == "stopping":  # the process ignores SIGTERM: no step waits out the grace
        assert (row(job).status, row(job).stop_reason) == ("running", "timeout")
        past_grace = timezone.now() - timedelta(seconds=10)
        ContainerJob.objects.filter(pk=job.pk).update(
            stop_requested_at=past_grace, next_check_at=None
        )
        assert steps.check(job.pk) == "timeout"
    done = row(job)
    assert done.status == "timeout" and "timed out after 1 seconds" in done.last_error
    assert ExecutorHost.objects.get(pk=job.docker_host_id).current_job_count == 0


def test_cancel_stops_the_execution(platform, recording):
    job = platform.submit("forever")
    launch(platform, job)
    recording.take()
    assert job.cancel() is True
    for step, job_id, _ in recording.take():
        steps.run_step(step, job_id)
    if row(job).stop_requested_at and row(job).status == "running":
        past_grace = timezone.now() - timedelta(seconds=10)
        ContainerJob.objects.filter(pk=job.pk).update(stop_requested_at=past_grace)
    done = run_to_end(job)
    assert (done.status, done.last_error) == ("cancelled", "cancelled on request")
    assert platform.executions(job) == 1


def test_launch_retried_after_a_crash_starts_no_second_execution(platform, monkeypatch):
    job = platform.submit("ok")
    real_move = transitions.move

    def crash_on_running(job_arg, old, new, **kwargs):
        if new == "running":
            raise RuntimeError("process died between the remote start and the database write")
        return real_move(job_arg, old, new, **kwargs)

    monkeypatch.setattr(launching, "move", crash_on_running)
    with pytest.raises(RuntimeError):
        steps.launch(job.pk)
    monkeypatch.setattr(launching, "move", real_move)
    assert (row(job).status, platform.executions(job)) == ("launching", 1)
    ContainerJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now())
    assert launch(platform, job) == "launched"
    done = run_to_end(job)
    assert (done.status, done.attempt_count) == ("completed", 1)
    assert platform.executions(job) == 1


def test_crashed_launch_is_reconciled_by_its_launch_key(platform, monkeypatch):
    job = platform.submit("forever")
    real_move = transitions.move

    def crash_on_running(job_arg, old, new, **kwargs):
        if new == "running":
            raise RuntimeError("process died between the remote start and the database write")
        return real_move(job_arg, old, new, **kwargs)

    monkeypatch.setattr(launching, "move", crash_on_running)
    with pytest.raises(RuntimeError):
        steps.launch(job.pk)
    monkeypatch.setattr(launching, "move", real_move)
    began = setting("LAUNCH_RECONCILE_SECONDS") + 1  # seconds ago; the lease still runs
    ContainerJob.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() + timedelta(seconds=setting("LAUNCH_LEASE_SECONDS") - began)
    )
    assert steps.launch(job.pk) == "reconciled"
    platform.started(job)
    assert (row(job).status, row(job).attempt_count) == ("running", 1)
    assert platform.executions(job) == 1


def test_launcher_dead_before_calling_the_platform_is_taken_over(platform):
    job = platform.submit("ok")
    lease, reconcile = setting("LAUNCH_LEASE_SECONDS"), setting("LAUNCH_RECONCILE_SECONDS")
    # It took the slot LAUNCH_RECONCILE_SECONDS ago and died: no execution exists.
    assert transitions.begin_launch(job, timezone.now() + timedelta(seconds=lease - reconcile))
    if not factory.ExecutorFactory().get_executor(job).concurrent_launch_safe:
        # A launcher still in the platform's start could start a second execution.
        assert steps.launch(job.pk) == "in-progress" and platform.executions(job) == 0
        ContainerJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now())
    assert launch(platform, job) == "launched"
    done = run_to_end(job)
    assert (done.status, done.attempt_count) == ("completed", 1)
    assert platform.executions(job) == 1


def test_vanished_execution_fails_without_guessing(platform):
    job = platform.submit("forever")
    launch(platform, job)
    platform.vanish(row(job))
    done = run_to_end(job)
    assert (done.status, done.exit_code) == ("failed", None)
    assert done.execution_id in done.last_error and "no longer" in done.last_error


@pytest.mark.parametrize("kind", ["retryable", "permanent"])
def test_api_error_on_launch(platform, kind):
    job = platform.refused(kind)
    before = timezone.now()
    result = steps.launch(job.pk)
    failed = row(job)
    if kind == "retryable":  # unreachable, 5xx: the host's fault, no attempt used up
        assert (result, failed.status, failed.attempt_count) == ("host-unreachable", "pending", 0)
        assert "unreachable, launch retried in" in failed.last_error
        # Retried later than the launch began, whatever the load makes the launch take.
        assert failed.run_after > before and failed.waiting_for_host_since
        host = ExecutorHost.objects.get(pk=job.docker_host_id)
        assert (host.last_health_ok, host.current_job_count) == (False, 0)
        assert host.unreachable_since and host.last_health_error
    else:
        assert (result, failed.status) == ("failed", "failed")
        assert failed.last_error.startswith("launch failed")
    assert platform.executions(job) == 0


def test_malformed_config_names_the_key(platform):
    config, key = platform.bad_config()
    host = _host(platform.name, config)
    with pytest.raises(ExecutorConfigurationError) as caught:
        factory.ExecutorFactory().get_executor(host)
    assert caught.value.key == key and key in str(caught.value)
    job = _submit(host, "ok")
    assert steps.launch(job.pk) == "failed"
    assert key in row(job).last_error
