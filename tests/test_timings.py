"""Phase timings of an attempt on every platform: step-side times and the platform's own."""

from datetime import UTC, datetime, timedelta

import pytest

from container_manager.engine import steps
from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost
from tests.conftest import wait_for
from tests.fakes.aws import moto, moto_server  # noqa: F401 - fixtures
from tests.fakes.cloudrun import cloudrun_fake  # noqa: F401 - fixture
from tests.fakes.scaleway import scaleway_fake  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)
PHASES = ["submitted", "launch requested", "accepted", "container started", "finished", "harvested"]


def run_to_the_end(job, rounds=8, launched=False):
    """Launch, then check until the job is terminal, playing the transport."""
    assert launched or steps.launch(job.pk) == "launched"
    for _ in range(rounds):
        ContainerJob.objects.filter(pk=job.pk).update(next_check_at=None)
        steps.check(job.pk)
        if ContainerJob.objects.get(pk=job.pk).is_terminal_status:
            break
    return ContainerJob.objects.get(pk=job.pk)


def attempt_of(job):
    execution = ContainerExecution.objects.select_related("job").get(job=job, attempt=1)
    names = [name for name, _ in execution.phases()]
    assert names == PHASES, names
    step_side = [execution.job.created_at, execution.started_at, execution.accepted_at]
    assert step_side == sorted(step_side) and execution.accepted_at <= execution.harvested_at
    assert execution.container_started_at == job.started_at
    return execution


def platform_time(execution, name):
    return datetime.fromisoformat(execution.platform_times[name])


def test_mock_attempt_records_every_phase(recording, mock_host):
    done = run_to_the_end(ContainerJob.objects.create_job(image="x", docker_host=mock_host))
    assert done.status == "completed"
    execution = attempt_of(done)
    assert execution.platform_times == {}


def test_phases_are_in_the_order_they_happened(recording, mock_host):
    # The mock starts its "container" inside the launch call, as Docker does: the platform
    # accepted the launch no later than that start, so "accepted" never comes after it.
    done = run_to_the_end(ContainerJob.objects.create_job(image="x", docker_host=mock_host))
    times = [at for _, at in attempt_of(done).phases()]
    assert times == sorted(times)


@pytest.mark.docker
def test_docker_attempt_keeps_created_started_finished(local, docker_host, docker_ready):
    job = ContainerJob.objects.create_job(
        image=docker_ready, command="sh -c 'sleep 0.2'", docker_host=docker_host
    )
    wait_for(lambda: ContainerJob.objects.get(pk=job.pk).is_terminal_status, timeout=60)
    done = ContainerJob.objects.get(pk=job.pk)
    execution = attempt_of(done)
    created, started, finished = (
        platform_time(execution, name) for name in ("Created", "StartedAt", "FinishedAt")
    )
    assert created <= started < finished
    assert started == execution.container_started_at and finished == execution.finished_at
    assert execution.started_at <= created  # the launch was requested before the engine made it


@pytest.mark.parametrize(
    ("fake", "kind", "times", "end"),
    [
        (
            "cloudrun_fake",
            "cloudrun",
            {"createTime", "startTime", "completionTime"},
            "completionTime",
        ),
        (
            "scaleway_fake",
            "scaleway",
            {"created_at", "started_at", "terminated_at"},
            "terminated_at",
        ),
    ],
)
def test_cloud_fake_attempt_keeps_the_platform_times(recording, request, fake, kind, times, end):
    config = request.getfixturevalue(fake).config()
    host = ExecutorHost.objects.create(name=kind, executor_type=kind, executor_config=config)
    done = run_to_the_end(
        ContainerJob.objects.create_job(image="busybox", command="true", docker_host=host)
    )
    assert done.status == "completed"
    execution = attempt_of(done)
    assert set(execution.platform_times) == times
    assert platform_time(execution, end) == execution.finished_at


def test_fargate_attempt_keeps_the_task_times(recording, moto):  # noqa: F811
    stack = moto.stack()
    host = ExecutorHost.objects.create(name="fg", executor_type="fargate", executor_config=stack)
    job = ContainerJob.objects.create_job(image="busybox", command="true", docker_host=host)
    assert steps.launch(job.pk) == "launched"
    arn = ContainerJob.objects.get(pk=job.pk).execution_id
    # moto reports no task timestamps over HTTP: set them in-process, ten seconds apart.
    task = moto.backend().tasks[stack["cluster"]][arn]
    base = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    names = ("created_at", "pull_started_at", "pull_stopped_at", "started_at", "stopped_at")
    for n, name in enumerate(names):
        setattr(task, name, base + timedelta(seconds=10 * n))
    done = run_to_the_end(job, launched=True)
    assert done.status == "completed"
    execution = attempt_of(done)
    ecs = ("createdAt", "pullStartedAt", "pullStoppedAt", "startedAt", "stoppedAt")
    assert [platform_time(execution, name) for name in ecs] == [
        base + timedelta(seconds=10 * n) for n in range(5)
    ]
    assert execution.container_started_at == base + timedelta(seconds=30)
    assert execution.finished_at == base + timedelta(seconds=40)


def test_the_api_returns_phases_and_cost_as_its_schema_says(
    client, settings, recording, make_mock_host
):
    from django.urls import reverse

    from tests.test_api import BEARER, TOKEN, conforms

    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}
    host = make_mock_host(name="api-priced", prices={"currency": "EUR", "vcpu_hour": 3600})
    done = run_to_the_end(ContainerJob.objects.create_job(image="x", docker_host=host, cpu_limit=1))
    body = client.get(reverse("container_manager:api-job", args=[done.pk]), headers=BEARER).json()
    assert (body["estimated_cost"], body["cost_currency"]) == (str(done.estimated_cost), "EUR")
    [attempt] = body["timings"]
    # The API's keys are the phases' names without spaces.
    api_keys = ["submitted", "launch_requested", "accepted", "container_started", "finished"]
    assert list(attempt["phases"]) == [*api_keys, "harvested"] and attempt["attempt"] == 1
    document = client.get(reverse("container_manager:api-openapi")).json()
    assert conforms(document, "Job", body)
