"""A fan-out of 200 children and fan-ins on PostgreSQL, with worker threads and tripled messages.

Every message arrives three times, to three threads at once: each child still runs once,
the merge jobs launch once, after the last child, and the parent's counts are exact.
"""

import os
from collections import Counter

import pytest

from container_manager import dispatch
from container_manager.executors.mock import MockExecutor
from container_manager.models import ArrayCounts, ContainerJob, ExecutorHost
from tests.conftest import FAST_STEPS, slots_held, wait_for
from tests.test_delivery_faults import containers_per_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

FAN_OUT = int(os.environ.get("CM_FAULT_JOBS", "200"))


def tripling(settings):
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        "LAUNCH_LEASE_SECONDS": 5,
        "DISPATCH": {
            "BACKEND": "tests.test_delivery_faults.TriplingBackend",
            "OPTIONS": {"WORKERS": 8, "SWEEP_INTERVAL": 1},
        },
    }
    return dispatch.get_backend()


def fan_out_and_in(host, image, command):
    parent = ContainerJob.objects.create_job(
        image=image, command=command, docker_host=host, array_size=FAN_OUT
    )
    children = list(parent.array_children.all())
    merge = ContainerJob.objects.create_job(
        image=image, command=command, docker_host=host, depends_on=[parent]
    )
    # Two hundred dependencies finishing at once: none may miss the others' moves.
    join = ContainerJob.objects.create_job(
        image=image, command=command, docker_host=host, depends_on=children
    )
    return parent, children, merge, join


def assert_ran_once_in_order(backend, host, parent, children, merge, join):
    everything = [parent, merge, join, *children]
    wait_for(lambda: not ContainerJob.objects.live().exists(), timeout=600, interval=0.5)
    assert backend.wait_idle(timeout=60), "messages kept circulating after every job finished"
    statuses = Counter(
        ContainerJob.objects.filter(pk__in=[j.pk for j in everything]).values_list(
            "status", flat=True
        )
    )
    assert statuses == {"completed": FAN_OUT + 3}
    counts = ArrayCounts.objects.get(parent=parent)
    assert (counts.completed, counts.finished) == (FAN_OUT, FAN_OUT)
    last_child = max(ContainerJob.objects.filter(array_parent=parent).values_list("completed_at"))[
        0
    ]
    for waiting in (merge, join):
        waiting.refresh_from_db()
        assert waiting.started_at >= last_child
        assert waiting.attempt_count == 1
    assert not parent.containerexecution_set.exists()
    assert slots_held(host) == 0


def test_fan_out_and_fan_in_on_the_mock_executor(postgres_only, settings, make_mock_host):
    backend = tripling(settings)
    host = make_mock_host(duration=0.05, max_concurrent_jobs=20)
    parent, children, merge, join = fan_out_and_in(host, "x", "true")
    assert_ran_once_in_order(backend, host, parent, children, merge, join)
    for job in [*children, merge, join]:
        assert MockExecutor.launch_count(job.pk) == 1
        assert MockExecutor.execution_count(job.pk) == 1
    assert MockExecutor.launch_count(parent.pk) == 0


@pytest.mark.docker
def test_fan_out_and_fan_in_on_docker(postgres_only, settings, docker_host, docker_ready):
    ExecutorHost.objects.filter(pk=docker_host.pk).update(
        executor_config={"remove_containers": False}
    )
    backend = tripling(settings)
    try:
        jobs = fan_out_and_in(docker_host, docker_ready, "sh -c 'echo $CM_ARRAY_INDEX'")
        assert_ran_once_in_order(backend, docker_host, *jobs)
        parent, children, merge, join = jobs
        per_job = containers_per_job()
        assert len(per_job) == FAN_OUT + 2 and set(per_job.values()) == {1}
        outputs = set(parent.array_children.values_list("clean_output", flat=True))
        assert outputs == {f"{index}\n" for index in range(FAN_OUT)}
    finally:
        _remove_containers()


def _remove_containers():
    import docker

    from container_manager.executors.base import LABEL_JOB_ID

    client = docker.from_env()
    for job_id in ContainerJob.objects.values_list("pk", flat=True):
        for container in client.containers.list(
            all=True, filters={"label": f"{LABEL_JOB_ID}={job_id}"}
        ):
            container.remove(force=True)
