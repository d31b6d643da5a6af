"""The Fargate executor against moto in server mode: what it sends to ECS, sizes, logs, limits."""

import pytest
from botocore.exceptions import ClientError

from container_manager.engine import steps
from container_manager.executors.exceptions import ExecutorError, ExecutorResourceError
from container_manager.executors.factory import ExecutorFactory
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.rules.cost import fargate_size
from tests.fakes.aws import moto, moto_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stack(moto):  # noqa: F811 - the fixture imported above
    return moto.stack()


def make_job(config, **kwargs):
    host = ExecutorHost.objects.create(
        name=f"fargate-{config['cluster']}", executor_type="fargate", executor_config=config
    )
    fields = {"image": "busybox", "command": "echo hi", "docker_host": host, **kwargs}
    return ContainerJob.objects.create_job(**fields)


def test_run_task_carries_token_tags_overrides_and_size(recording, moto, stack):  # noqa: F811
    job = make_job(stack, override_environment="GREETING=hello", cpu_limit=0.5, memory_limit=600)
    assert steps.launch(job.pk) == "launched"
    arn = ContainerJob.objects.get(pk=job.pk).execution_id
    task = moto.ecs.describe_tasks(cluster=stack["cluster"], tasks=[arn], include=["TAGS"])
    task = task["tasks"][0]
    key = f"{job.id.hex}-1"
    assert task["startedBy"] == f"cm-{key}" and task["launchType"] == "FARGATE"
    assert {"key": "container_manager.job_id", "value": str(job.id)} in task["tags"]
    overrides = task["overrides"]
    assert (overrides["cpu"], overrides["memory"]) == ("512", "1024")
    [container] = overrides["containerOverrides"]
    assert (container["name"], container["command"]) == ("job", ["echo", "hi"])
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env == {"GREETING": "hello", "CM_LAUNCH_KEY": key}


def test_the_jobs_labels_are_the_tasks_tags(recording, moto, stack):  # noqa: F811
    job = make_job(stack, labels={"team": "data", "example.com/app": "etl"})
    assert steps.launch(job.pk) == "launched"
    arn = ContainerJob.objects.get(pk=job.pk).execution_id
    [task] = moto.ecs.describe_tasks(cluster=stack["cluster"], tasks=[arn], include=["TAGS"])[
        "tasks"
    ]
    tags = {tag["key"]: tag["value"] for tag in task["tags"]}
    assert (tags["team"], tags["example.com/app"]) == ("data", "etl")
    assert tags["container_manager.job_id"] == str(job.id)


def test_a_client_token_in_use_names_the_task_that_is_adopted(recording, stack, monkeypatch):
    job = make_job(stack)
    assert steps.launch(job.pk) == "launched"
    job = ContainerJob.objects.get(pk=job.pk)
    executor = ExecutorFactory().get_executor(job)
    ecs, request = executor.client("ecs"), steps.build_launch_request(job)

    def conflict(resource_ids):
        error = {"Error": {"Code": "ConflictException", "Message": "clientToken in use"}}
        failing = ClientError({**error, "resourceIds": resource_ids}, "RunTask")
        return lambda **_: (_ for _ in ()).throw(failing)

    # Another launch of the key got the task first (ECS answers so when a parameter differs).
    monkeypatch.setattr(ecs, "run_task", conflict([job.execution_id]))
    assert executor.start_execution(request) == job.execution_id
    monkeypatch.setattr(ecs, "run_task", conflict([]))
    with pytest.raises(ExecutorError, match="clientToken in use"):
        executor.start_execution(request)


def test_impossible_size_fails_the_launch_clearly(recording, stack):
    job = make_job(stack, cpu_limit=32)
    assert steps.launch(job.pk) == "failed"
    assert "no Fargate size has 32 vCPU" in ContainerJob.objects.get(pk=job.pk).last_error


@pytest.mark.parametrize(
    ("cpu", "memory", "size"),
    [(None, 512, (256, 512)), (1, None, (1024, 2048)), (4, 30000, (4096, 30720)),
     (2, 20000, (4096, 20480)), (16, 122880, (16384, 122880))],
)  # fmt: skip
def test_fargate_sizes(cpu, memory, size):
    assert fargate_size(cpu, memory) == size


def test_memory_beyond_every_size_is_refused():
    with pytest.raises(ExecutorResourceError, match="123000 MiB"):
        fargate_size(None, 123000)


def test_logs_are_paged_to_the_end(recording, moto, stack):  # noqa: F811
    job = make_job(stack)
    steps.launch(job.pk)
    arn = ContainerJob.objects.get(pk=job.pk).execution_id
    # More than one page: get_log_events answers at most 10,000 events at a time.
    lines = [f"line {i}" for i in range(10_050)]
    for chunk in range(0, len(lines), 5_000):
        stream = f"cm/job/{arn.rsplit('/', 1)[-1]}"
        moto.write_logs("cm-jobs", stream, lines[chunk : chunk + 5_000], first=chunk)
    stdout, stderr = ExecutorFactory().get_executor(job).get_logs(arn)
    assert [line.split(" ", 1)[1] for line in stdout.splitlines()] == lines
    assert stderr == ""


def test_a_running_task_logs_are_followed_from_cloudwatch(recording, moto, stack):  # noqa: F811
    job = make_job(stack)
    steps.launch(job.pk)
    running = ContainerJob.objects.get(pk=job.pk)
    stream = f"cm/job/{running.execution_id.rsplit('/', 1)[-1]}"
    moto.write_logs("cm-jobs", stream, ["first", "second"])
    logs = running.read_logs()
    assert (logs.source, logs.complete) == ("live", False)
    assert [line.split(" ", 1)[1] for line in logs.stdout.text.splitlines()] == ["first", "second"]
    moto.write_logs("cm-jobs", stream, ["third"], first=2)
    more = running.read_logs(logs.stdout.offset)
    assert [line.split(" ", 1)[1] for line in more.stdout.text.splitlines()] == ["third"]


def test_forgotten_task_is_harvested_from_cloudwatch_never_completed(recording, moto, stack):  # noqa: F811
    job = make_job(stack)
    steps.launch(job.pk)
    arn = ContainerJob.objects.get(pk=job.pk).execution_id
    moto.write_logs("cm-jobs", f"cm/job/{arn.rsplit('/', 1)[-1]}", ["partial result"])
    moto.backend().tasks[stack["cluster"]].pop(arn)  # ECS forgets tasks ~1h after they stop
    assert steps.check(job.pk) == "failed"
    done = ContainerJob.objects.get(pk=job.pk)
    assert (done.status, done.exit_code) == ("failed", None)
    assert "partial result" in done.clean_output
    assert "no longer describes" in done.last_error


def stop_in_process(moto, stack, arn, stop_code, reason, exit_code=None):  # noqa: F811
    """Stop the task as ECS would; moto sets no stopCode nor container reason over HTTP."""
    task = moto.backend().tasks[stack["cluster"]][arn]
    task.stop_code, task.stopped_reason = stop_code, reason
    task.containers[0].exitCode = exit_code
    task.containers[0].reason = reason


def check_until_final(job):
    for _ in range(5):
        ContainerJob.objects.filter(pk=job.pk).update(next_check_at=None)
        steps.check(job.pk)
    return ContainerJob.objects.get(pk=job.pk)


def test_stop_reason_and_stop_code_reach_last_error(recording, moto, stack):  # noqa: F811
    job = make_job(stack)
    steps.launch(job.pk)
    arn = ContainerJob.objects.get(pk=job.pk).execution_id
    stop_in_process(moto, stack, arn, "EssentialContainerExited", "OutOfMemoryError: killed")
    done = check_until_final(job)
    assert (done.status, done.exit_code) == ("failed", None)
    assert done.last_error.startswith("ECS EssentialContainerExited: OutOfMemoryError: killed")


def test_an_image_ecs_cannot_pull_fails_the_job_naming_the_image(recording, moto, stack):  # noqa: F811
    """ECS starts the task, cannot pull its image and stops it: the job's fault, named."""
    job = make_job(stack)
    steps.launch(job.pk)
    arn = ContainerJob.objects.get(pk=job.pk).execution_id
    reason = (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to "
        "resolve ref docker.io/library/busybox:latest: docker.io/library/busybox:latest: not found"
    )
    stop_in_process(moto, stack, arn, "TaskFailedToStart", reason)
    done = check_until_final(job)
    assert (done.status, done.exit_code, done.attempt_count) == ("failed", None, 1)
    assert done.last_error == (
        f"image 'busybox' could not be pulled: ECS TaskFailedToStart: {reason}"
    )
    assert done.waiting_for_host_since is None


def test_clients_are_built_once_per_host_config(stack):
    host = ExecutorHost.objects.create(name="f1", executor_type="fargate", executor_config=stack)
    executor = ExecutorFactory().get_executor(host)
    assert executor.client("ecs") is executor.client("ecs")
    assert ExecutorFactory().get_executor(host) is executor
    assert executor.get_health_status()["healthy"] is True
    capabilities = executor.get_capabilities()
    assert capabilities["supports_idempotent_launch"] and not capabilities["supports_gpu"]
    assert capabilities["supports_separate_stderr"] is False
