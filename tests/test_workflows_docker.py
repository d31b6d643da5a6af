"""Chains, diamonds and arrays on a real Docker engine, through local dispatch and the steps.

Each job's container starts only after the containers it waits for have exited.
"""

import pytest

from container_manager.models import ContainerJob
from tests.conftest import slots_held, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def run(host, image, command, **kwargs):
    return ContainerJob.objects.create_job(image=image, command=command, docker_host=host, **kwargs)


def all_finished(*jobs, timeout=120):
    ids = [job.pk for job in jobs]
    wait_for(lambda: not ContainerJob.objects.filter(pk__in=ids).live().exists(), timeout=timeout)
    return [ContainerJob.objects.get(pk=pk) for pk in ids]


def test_chain_and_diamond(local, docker_host, docker_ready):
    a = run(docker_host, docker_ready, "sh -c 'sleep 1; echo a'")
    b = run(docker_host, docker_ready, "echo b", depends_on=[a])
    c = run(docker_host, docker_ready, "echo c", depends_on=[a])
    d = run(docker_host, docker_ready, "echo d", depends_on=[b, c])
    a, b, c, d = all_finished(a, b, c, d)
    assert [j.clean_output for j in (a, b, c, d)] == ["a\n", "b\n", "c\n", "d\n"]
    assert {j.status for j in (a, b, c, d)} == {"completed"}
    # The engine's own clock: each container started after the ones it waits for exited.
    assert b.started_at >= a.completed_at and c.started_at >= a.completed_at
    assert d.started_at >= max(b.completed_at, c.completed_at)
    assert slots_held(docker_host) == 0


def test_a_failed_container_cancels_what_waits_for_it(local, docker_host, docker_ready):
    a = run(docker_host, docker_ready, "sh -c 'exit 4'")
    b = run(docker_host, docker_ready, "echo never", depends_on=[a])
    c = run(docker_host, docker_ready, "echo never", depends_on=[b])
    a, b, c = all_finished(a, b, c)
    assert (a.status, b.status, c.status) == ("failed", "cancelled", "cancelled")
    assert b.last_error == f"dependency {a.pk} ended failed"
    assert not b.containerexecution_set.exists() and not c.containerexecution_set.exists()


def test_array_children_see_their_index_then_the_merge_runs(local, docker_host, docker_ready):
    parent = run(
        docker_host, docker_ready, "sh -c 'echo $CM_ARRAY_INDEX/$CM_ARRAY_SIZE'", array_size=4
    )
    merge = run(docker_host, docker_ready, "echo merged", depends_on=[parent])
    parent, merge = all_finished(parent, merge)
    outputs = sorted(parent.array_children.values_list("clean_output", flat=True))
    assert outputs == [f"{i}/4\n" for i in range(4)]
    assert (parent.status, merge.status, merge.clean_output) == (
        "completed",
        "completed",
        "merged\n",
    )
    assert not parent.containerexecution_set.exists()
    last = max(parent.array_children.values_list("completed_at", flat=True))
    assert merge.started_at >= last
