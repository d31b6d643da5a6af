"""DockerExecutor against a real Docker engine and the local busybox image.

Skips when the engine or image is missing, unless CM_REQUIRE_SERVICES=1 (then fails).
The tests reach the engine only through ``DockerExecutor.client``: no ``import docker`` here.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from django.test import override_settings

from container_manager.engine.steps import build_launch_request, result_fields
from container_manager.executors.base import (
    EXITED,
    LABEL_ATTEMPT,
    LABEL_JOB_ID,
    LABEL_MANAGED,
    NOT_FOUND,
    RUNNING,
    labels,
)
from container_manager.executors.docker import DockerExecutor
from container_manager.executors.exceptions import (
    ExecutorConfigurationError,
    ExecutorConnectionError,
    ExecutorError,
    ImagePullError,
)
from container_manager.rules.logtext import is_truncated
from tests.conftest import missing_service

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("CM_TEST_IMAGE", "cm-busybox:latest")
DOCKER_URL = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
TEST_NETWORK_LABEL = "container_manager.test"
# Short grace so stopping a shell that ignores SIGTERM (PID 1) takes one second.
FAST = {"STOP_GRACE_SECONDS": 1}


def make_host(**overrides) -> SimpleNamespace:
    values = {
        "name": "test-docker",
        "host_type": "unix" if DOCKER_URL.startswith("unix") else "tcp",
        "connection_string": DOCKER_URL,
        "tls_enabled": False,
        "tls_verify": False,
        "auto_pull_images": False,
        "executor_config": {},
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def make_job(command: str, *, env: dict[str, str] | None = None, **overrides) -> SimpleNamespace:
    values = {
        "id": uuid.uuid4(),
        "attempt_count": 1,
        "name": "test job",
        "docker_image": IMAGE,
        "command": command,
        "working_directory": "",
        "memory_limit": None,
        "cpu_limit": None,
        "timeout_seconds": 60,
        "network_configuration": [],
        "get_all_environment_variables": lambda: dict(env or {}),
        "array_parent_id": None,
        "execution_id": "",
        "exit_code": None,
        "stdout_log": "",
        "stderr_log": "",
        "clean_output": "",
        "docker_log": "",
        "completed_at": None,
        "max_memory_usage": None,
        "cpu_usage_percent": None,
        "last_error": "",
        "labels": {},
        "has_inputs": False,  # as the steps load it (``annotations()``): no dependency result
    }
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.fixture(scope="module")
def engine_executor() -> DockerExecutor:
    executor = DockerExecutor(make_host())
    try:
        executor.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no engine to test against
        missing_service(f"Docker engine not reachable at {DOCKER_URL}: {exc}")
    if not executor.client.images.list(name=IMAGE):
        missing_service(f"test image {IMAGE} missing; build it with docker import (see infra/)")
    return executor


@pytest.fixture
def executor(engine_executor) -> DockerExecutor:
    """An executor whose cleanup keeps containers (the fixtures below remove them)."""
    return DockerExecutor(make_host(executor_config={"remove_containers": False}))


@pytest.fixture
def jobs(executor):
    """Make jobs and remember them, so their containers can be removed by label."""
    made: list[SimpleNamespace] = []

    def factory(command: str, **kwargs) -> SimpleNamespace:
        job = make_job(command, **kwargs)
        made.append(job)
        return job

    yield factory
    for job in made:
        _remove_job_containers(executor.client, job)


@pytest.fixture
def network(executor):
    """Create labelled test networks on demand; remove them after the test."""
    created = []

    def factory() -> str:
        name = f"cm-test-{uuid.uuid4().hex[:10]}"
        created.append(executor.client.networks.create(name, labels={TEST_NETWORK_LABEL: "1"}))
        return name

    yield factory
    for net in created:
        net.reload()
        for container in net.containers:
            container.remove(force=True)
        net.remove()


def _remove_job_containers(client, job) -> None:
    for container in client.containers.list(
        all=True, filters={"label": f"{LABEL_JOB_ID}={job.id}"}
    ):
        container.remove(force=True)


def launch(executor: DockerExecutor, job) -> tuple[bool, str]:
    """Launch the request the steps build: ``(True, id)``, or ``(False, why)`` when refused."""
    try:
        return True, executor.launch_job(build_launch_request(job))
    except ExecutorError as exc:
        if exc.retryable:
            raise
        return False, str(exc)


def harvest(executor: DockerExecutor, job) -> bool:
    """Harvest into ``job`` as the steps write it; False when there is nothing to harvest."""
    result = executor.harvest_job(job.execution_id)
    if result is None:
        return False
    for name, value in result_fields(job, result).items():
        setattr(job, name, value)
    return True


def run_to_end(executor: DockerExecutor, job, timeout: float = 30) -> SimpleNamespace:
    ok, execution_id = launch(executor, job)
    assert ok, execution_id
    job.execution_id = execution_id
    wait_for(lambda: executor.check_status(execution_id) != RUNNING, timeout)
    assert harvest(executor, job)
    return job


def wait_for(condition, timeout: float = 30, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)


def containers_of(executor: DockerExecutor, job) -> list:
    return executor.client.containers.list(all=True, filters={"label": f"{LABEL_JOB_ID}={job.id}"})


# --- results --------------------------------------------------------------------------


def test_success_keeps_streams_apart_and_strips_timestamps(executor, jobs):
    job = run_to_end(executor, jobs("sh -c 'echo hello; echo oops >&2; echo world'"))
    assert executor.check_status(job.execution_id) == EXITED
    assert job.exit_code == 0
    assert "hello" in job.stdout_log and "oops" not in job.stdout_log
    assert "oops" in job.stderr_log and "hello" not in job.stderr_log
    assert job.stdout_log.startswith("20")  # timestamps kept in the raw log
    assert job.clean_output == "hello\nworld\n"
    assert job.completed_at is not None and job.completed_at.tzinfo is not None
    assert "exit_code=0" in job.docker_log and "oom_killed=false" in job.docker_log
    assert job.last_error == ""


def test_non_zero_exit_code_with_exec_form(executor, jobs):
    job = run_to_end(executor, jobs('["sh", "-c", "echo failing >&2; exit 3"]'))
    assert job.exit_code == 3
    assert "failing" in job.stderr_log
    assert job.clean_output == ""


def test_oom_kill_is_reported(executor, jobs):
    command = "sh -c 'x=$(head -c 50000000 /dev/zero | tr \"\\0\" a); echo ${#x}'"
    job = run_to_end(executor, jobs(command, memory_limit=8))
    assert job.exit_code == 137
    assert "memory" in job.last_error and "8 MB" in job.last_error
    assert "OOMKilled" in job.last_error
    assert "oom_killed=true" in job.docker_log


class RacingContainer:
    """A container killed at its limit whose engine records ``OOMKilled`` one inspect late."""

    id = "racing"

    def __init__(self):
        self.attrs = {"State": {"ExitCode": 137, "OOMKilled": False}}
        self.reloads = 0

    def reload(self):
        self.reloads += 1
        self.attrs = {"State": {"ExitCode": 137, "OOMKilled": True}}


def test_harvest_reads_an_oom_kill_the_engine_records_late(executor):
    container = RacingContainer()
    assert executor._settled_state(container, 8 * 1024 * 1024)["OOMKilled"] is True
    assert container.reloads == 1
    unlimited = RacingContainer()
    assert executor._settled_state(unlimited, 0)["OOMKilled"] is False
    assert unlimited.reloads == 0


def test_stop_then_harvest_keeps_logs(executor, jobs):
    job = jobs("sh -c 'echo before; echo err-before >&2; sleep 60'")
    ok, job.execution_id = launch(executor, job)
    assert ok
    wait_for(lambda: "before" in executor.get_logs(job.execution_id)[0])
    with override_settings(CONTAINER_MANAGER=FAST):
        assert executor.stop(job.execution_id)
    assert executor.check_status(job.execution_id) == EXITED
    job.max_memory_usage, job.cpu_usage_percent = 1234, 5.0  # sampled earlier
    assert harvest(executor, job)
    assert job.exit_code in (137, 143)
    assert job.clean_output == "before\n"
    assert "err-before" in job.stderr_log
    assert (job.max_memory_usage, job.cpu_usage_percent) == (1234, 5.0)


def test_env_vars_and_working_directory_arrive(executor, jobs):
    job = jobs(
        "sh -c 'echo \"$GREETING|$(pwd)\"'",
        env={"GREETING": "hi there"},
        working_directory="/tmp",
    )
    run_to_end(executor, job)
    assert job.clean_output == "hi there|/tmp\n"


def test_log_cap_marker(executor, jobs):
    command = "sh -c 'i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done'"
    with override_settings(CONTAINER_MANAGER={"LOG_MAX_BYTES": 2000}):
        job = run_to_end(executor, jobs(command))
    assert is_truncated(job.stdout_log)
    assert job.stdout_log.rstrip().endswith("line-399")
    assert "line-0\n" not in job.stdout_log
    assert is_truncated(job.clean_output)


# --- launch -----------------------------------------------------------------------------


def test_missing_image_is_the_jobs_fault_with_its_name(executor, jobs):
    job = jobs("true", docker_image="cm-no-such-image:never")
    with pytest.raises(ImagePullError) as caught:
        launch(executor, job)
    assert "cm-no-such-image:never" in str(caught.value) and "test-docker" in str(caught.value)
    assert containers_of(executor, job) == []


def test_an_image_the_engine_cannot_pull_is_the_jobs_fault_not_the_hosts(jobs):
    """The engine answers the pull (404 from a registry, 500 when it cannot reach one)."""
    puller = DockerExecutor(make_host(auto_pull_images=True))
    job = jobs("true", docker_image="cm-no-such-image:2")
    with pytest.raises(ImagePullError) as caught:
        launch(puller, job)
    assert not isinstance(caught.value, ExecutorConnectionError) and caught.value.retryable
    assert str(caught.value).startswith(
        "image 'cm-no-such-image:2' could not be pulled on host 'test-docker': "
    )


def test_launch_is_idempotent(executor, jobs):
    job = jobs("sleep 30")
    first = launch(executor, job)
    second = launch(executor, job)
    assert first[0] and first == second
    assert len(containers_of(executor, job)) == 1
    job.attempt_count = 2  # a new attempt is a new container
    third = launch(executor, job)
    assert third[0] and third[1] != first[1]
    assert len(containers_of(executor, job)) == 2


def test_concurrent_launches_make_one_container(executor, jobs):
    job = jobs("sleep 30")
    barrier = threading.Barrier(5)
    results: list[tuple[bool, str]] = []

    def race() -> None:
        own = DockerExecutor(executor.host)  # as separate workers would
        own.client  # noqa: B018 - connect before the race, not during it
        barrier.wait()
        results.append(launch(own, job))

    threads = [threading.Thread(target=race) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 5
    assert {r for r in results} == {results[0]} and results[0][0]
    [container] = containers_of(executor, job)
    assert container.name == executor.container_name(build_launch_request(job))
    assert container.status == "running"


def test_the_jobs_labels_are_the_containers_beside_the_apps_own(executor, jobs):
    job = jobs("true", labels={"team": "data", "example.com/app": "etl"})
    assert launch(executor, job)[0]
    [container] = containers_of(executor, job)
    labels = container.labels
    assert (labels["team"], labels["example.com/app"]) == ("data", "etl")
    assert labels[LABEL_JOB_ID] == str(job.id)


def test_a_failed_start_leaves_the_container_another_launch_started(executor, jobs, monkeypatch):
    job = jobs("sleep 30")
    request = build_launch_request(job)
    slow = DockerExecutor(executor.host)  # a launcher that created the container, then stalled
    created = slow._create_container(request, executor.container_name(request))
    assert launch(executor, job)[0]  # the launch that took it over started it
    failing = RuntimeError("the engine took too long to answer the start")
    monkeypatch.setattr(type(created), "start", lambda *_, **__: (_ for _ in ()).throw(failing))
    with pytest.raises(RuntimeError):
        slow._ensure_started(created, request)  # its copy still says "created"
    [container] = containers_of(executor, job)
    assert container.status == "running"


def test_created_container_is_started_by_next_launch(executor, jobs):
    job = jobs("sleep 30")
    pre = executor.client.containers.create(
        IMAGE,
        ["sleep", "30"],
        name=executor.container_name(build_launch_request(job)),
        labels=labels(job.id, job.attempt_count),
    )
    assert executor.check_status(pre.id) == RUNNING  # created counts as running
    assert launch(executor, job) == (True, pre.id)
    pre.reload()
    assert pre.status == "running"


def test_networks_with_aliases(executor, jobs, network):
    first, second = network(), network()
    job = jobs(
        "sleep 30",
        network_configuration=[
            {"network_name": first, "aliases": ["svc-a"]},
            {"network_name": second, "aliases": ["svc-b"]},
        ],
    )
    ok, execution_id = launch(executor, job)
    assert ok, execution_id
    attached = executor.client.containers.get(execution_id).attrs["NetworkSettings"]["Networks"]
    assert set(attached) == {first, second}
    assert "svc-a" in attached[first]["Aliases"]
    assert "svc-b" in attached[second]["Aliases"]


def test_missing_network_is_refused(executor, jobs):
    job = jobs("true", network_configuration=[{"network_name": "cm-no-such-net", "aliases": []}])
    assert launch(executor, job) == (False, "network 'cm-no-such-net' does not exist")
    assert containers_of(executor, job) == []


def test_resource_limits_in_host_config(executor, jobs):
    job = jobs("sleep 30", memory_limit=64, cpu_limit=0.5)
    ok, execution_id = launch(executor, job)
    assert ok, execution_id
    host_config = executor.client.containers.get(execution_id).attrs["HostConfig"]
    assert host_config["Memory"] == 64 * 1024 * 1024
    assert host_config["MemorySwap"] == 64 * 1024 * 1024
    assert host_config["NanoCpus"] == 500_000_000


def test_labels_and_listing(executor, jobs):
    job = jobs("true", attempt_count=3)
    ok, execution_id = launch(executor, job)
    assert ok
    labels = executor.client.containers.get(execution_id).labels
    assert labels[LABEL_MANAGED] == "true" and labels[LABEL_ATTEMPT] == "3"
    rows = [r for r in executor.list_managed_containers() if r["id"] == execution_id]
    assert rows == [
        {
            "id": execution_id,
            "name": executor.container_name(build_launch_request(job)),
            "status": rows[0]["status"],
            "job_id": str(job.id),
            "attempt": "3",
        }
    ]


# --- usage, cleanup, errors -----------------------------------------------------------


def test_sample_usage_of_running_container(executor, jobs):
    job = jobs("sleep 30")
    ok, execution_id = launch(executor, job)
    assert ok
    usage = executor.sample_usage(execution_id)
    assert usage is not None
    assert usage["memory_bytes"] > 0
    # Average since start: startup work makes an early sample noisy, never impossible.
    assert 0 <= usage["cpu_percent"] <= (os.cpu_count() or 1) * 100
    with override_settings(CONTAINER_MANAGER=FAST):
        executor.stop(execution_id)
    assert executor.sample_usage(execution_id) is None


def test_cleanup_removes_or_keeps(executor, jobs):
    remover = DockerExecutor(make_host())
    job = jobs("sleep 30")
    ok, execution_id = launch(remover, job)
    assert ok
    assert remover.cleanup(execution_id)
    assert containers_of(executor, job) == []
    assert remover.check_status(execution_id) == NOT_FOUND

    kept = jobs("sleep 30")
    ok, kept_id = launch(executor, kept)
    assert ok
    assert executor.cleanup(kept_id)
    [container] = containers_of(executor, kept)
    assert container.status == "exited"


def test_gone_container_answers(executor):
    missing = "0" * 64
    assert executor.check_status(missing) == NOT_FOUND
    assert executor.get_logs(missing) == ("", "")
    assert executor.stop(missing) is True
    assert executor.cleanup(missing) is True
    assert executor.sample_usage(missing) is None
    assert harvest(executor, make_job("true", execution_id=missing)) is False


def test_logs_of_a_container_being_removed_answer_empty(executor, jobs, monkeypatch):
    from container_manager.executors import docker as docker_module

    ok, execution_id = launch(executor, jobs("sleep 30"))
    assert ok
    # What the engine answers while a removal is under way (seen racing the cleanup).
    response = SimpleNamespace(status_code=409, reason="Conflict", url="/containers/x/logs")
    explanation = "can not get logs from container which is dead or marked for removal"
    conflict = docker_module.docker.errors.APIError("409", response, explanation)

    def being_removed(container):
        raise conflict

    monkeypatch.setattr(executor, "_read_logs", being_removed)
    assert executor.get_logs(execution_id) == ("", "")


def test_unreachable_engine_is_retryable():
    executor = DockerExecutor(make_host(connection_string="unix:///nonexistent/docker.sock"))
    with pytest.raises(ExecutorConnectionError) as caught:
        executor.check_status("abc")
    assert caught.value.retryable
    with pytest.raises(ExecutorConnectionError):
        launch(executor, make_job("true"))
    health = executor.get_health_status()
    assert health["healthy"] is False and health["error"]


def test_missing_tls_file_names_the_key(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    host = make_host(
        connection_string="tcp://127.0.0.1:2376",
        tls_enabled=True,
        tls_verify=True,
        executor_config={
            "tls_ca_cert": str(ca),
            "tls_client_cert": "/nonexistent/cert.pem",
            "tls_client_key": str(ca),
        },
    )
    with pytest.raises(ExecutorConfigurationError) as caught:
        DockerExecutor(host)
    assert caught.value.key == "tls_client_cert"
    assert "executor_config['tls_client_cert']: file /nonexistent/cert.pem not found" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"timeout": "slow"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"remove_containers": "no"}, "remove_containers"),
    ],
)
def test_wrong_config_type_names_the_key(config, key):
    with pytest.raises(ExecutorConfigurationError) as caught:
        DockerExecutor(make_host(executor_config=config))
    assert caught.value.key == key
    assert f"executor_config['{key}']" in str(caught.value)


def test_capabilities():
    caps = DockerExecutor(make_host()).get_capabilities()
    assert caps["supports_idempotent_launch"] and caps["supports_resource_usage"]
    assert not caps["supports_secrets"] and not caps["supports_scaling"]
