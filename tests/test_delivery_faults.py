"""Messages delivered three times at once, lost, or cut short by a crash: every job ends right.

PostgreSQL (real row locks) and worker threads on a real Docker engine; CI requires both.
"""

import os
import threading
import time
from collections import Counter
from datetime import timedelta
from importlib import import_module

import pytest
from django.utils import timezone

from container_manager import dispatch
from container_manager.dispatch.local import LocalBackend
from container_manager.engine import steps, transitions
from container_manager.executors.base import LABEL_JOB_ID, LABEL_MANAGED
from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost
from tests.conftest import FAST_STEPS, slots_held, wait_for

# The launch step's module (the package's ``launch`` is the step function itself).
launching = import_module("container_manager.engine.steps.launch")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker, pytest.mark.postgres]

FAULT_JOBS = int(os.environ.get("CM_FAULT_JOBS", "200"))


class TriplingBackend(LocalBackend):
    """Every message arrives three times, to three worker threads at once."""

    def send(self, step, job_id, delay):
        for _ in range(3):
            super().send(step, job_id, delay)


class SweepOnlyBackend(LocalBackend):
    """Every message is lost except those the test's sweep sends."""

    sweeping = threading.local()

    def send(self, step, job_id, delay):
        if getattr(self.sweeping, "on", False):
            super().send(step, job_id, 0)


def use_backend(settings, path, **options):
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        "LAUNCH_LEASE_SECONDS": 2,
        "DISPATCH": {"BACKEND": path, "OPTIONS": {"WORKERS": 8, "SWEEP_INTERVAL": 0, **options}},
    }
    return dispatch.get_backend()


@pytest.fixture
def keeping_host(docker_host):
    """The Docker host, keeping finished containers so each job's can be counted."""
    ExecutorHost.objects.filter(pk=docker_host.pk).update(
        executor_config={"remove_containers": False}, max_concurrent_jobs=10
    )
    docker_host.refresh_from_db()
    yield docker_host
    import docker

    client = docker.from_env()
    for job_id in containers_per_job():
        for container in client.containers.list(
            all=True, filters={"label": f"{LABEL_JOB_ID}={job_id}"}
        ):
            container.remove(force=True)


def containers_per_job():
    """Containers per job, for this test's jobs only (the engine may hold others)."""
    import docker

    ours = {str(pk) for pk in ContainerJob.objects.values_list("pk", flat=True)}
    rows = docker.from_env().api.containers(all=True, filters={"label": LABEL_MANAGED})
    return Counter(r["Labels"][LABEL_JOB_ID] for r in rows if r["Labels"][LABEL_JOB_ID] in ours)


def submit(host, image, count, command="true"):
    return [
        ContainerJob.objects.create_job(image=image, command=command, docker_host=host)
        for _ in range(count)
    ]


def all_terminal(jobs):
    return not ContainerJob.objects.filter(pk__in=[j.pk for j in jobs]).live().exists()


def test_every_step_delivered_three_times(postgres_only, settings, keeping_host, docker_ready):
    backend = use_backend(settings, "tests.test_delivery_faults.TriplingBackend", SWEEP_INTERVAL=1)
    jobs = submit(keeping_host, docker_ready, FAULT_JOBS)
    wait_for(lambda: all_terminal(jobs), timeout=600, interval=0.5)
    # Tripled messages must die out once the jobs are done: no check chains run on.
    assert backend.wait_idle(timeout=60), "messages kept circulating after every job finished"
    statuses = Counter(
        ContainerJob.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True)
    )
    assert statuses == {"completed": FAULT_JOBS}
    per_job = containers_per_job()
    assert len(per_job) == FAULT_JOBS
    assert set(per_job.values()) == {1}, "a job got more than one container"
    assert slots_held(keeping_host) == 0
    assert set(ContainerJob.objects.values_list("attempt_count", flat=True)) == {1}


def test_all_messages_lost_the_sweep_alone_finishes(
    postgres_only, settings, keeping_host, docker_ready
):
    backend = use_backend(settings, "tests.test_delivery_faults.SweepOnlyBackend")
    jobs = submit(keeping_host, docker_ready, 15, command="sh -c 'sleep 1; echo done'")
    deadline = time.monotonic() + 180
    while not all_terminal(jobs) and time.monotonic() < deadline:
        SweepOnlyBackend.sweeping.on = True
        try:
            steps.sweep(now=timezone.now() + timedelta(seconds=3))
        finally:
            SweepOnlyBackend.sweeping.on = False
        backend.wait_idle(timeout=30)
        time.sleep(0.2)
    done = ContainerJob.objects.filter(pk__in=[j.pk for j in jobs])
    assert {(j.status, j.clean_output) for j in done} == {("completed", "done\n")}
    assert set(containers_per_job().values()) == {1}
    assert slots_held(keeping_host) == 0


def test_crash_between_container_start_and_database_write(
    postgres_only, settings, keeping_host, docker_ready, monkeypatch
):
    crashed = set()
    real_move = transitions.move

    def crash_once(job, old, new, **kwargs):
        if new == "running" and job.pk not in crashed:
            crashed.add(job.pk)
            raise RuntimeError("injected: process died after the container started")
        return real_move(job, old, new, **kwargs)

    monkeypatch.setattr(launching, "move", crash_once)
    use_backend(settings, "container_manager.dispatch.local.LocalBackend", SWEEP_INTERVAL=0.5)
    jobs = submit(keeping_host, docker_ready, 5, command="sh -c 'echo once'")
    wait_for(lambda: all_terminal(jobs), timeout=120, interval=0.2)
    assert crashed == {j.pk for j in jobs}
    done = ContainerJob.objects.filter(pk__in=[j.pk for j in jobs])
    assert {(j.status, j.attempt_count, j.clean_output) for j in done} == {
        ("completed", 1, "once\n")
    }
    assert set(containers_per_job().values()) == {1}


def test_crashed_launch_reconciled_by_its_hint_before_any_sweep(
    postgres_only, settings, keeping_host, docker_ready, monkeypatch
):
    """The launcher dies after the container started; the launch hint, not the sweep, recovers.

    The sweep runs every 60 s as deployed and the lease is 120 s; a reconcile delay of
    3 s keeps the test short. Each job must be running within the delay plus a margin
    for the engine, with one container, never two.
    """
    reconcile = 3
    real_move = transitions.move
    crashed_at, reconciled_at = {}, {}

    def crash_once(job, old, new, **kwargs):
        if new == "running" and job.pk not in crashed_at:
            crashed_at[job.pk] = timezone.now()
            raise RuntimeError("injected: launcher died after the container started")
        if new == "running":
            reconciled_at.setdefault(job.pk, timezone.now())
        return real_move(job, old, new, **kwargs)

    monkeypatch.setattr(launching, "move", crash_once)
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        "LAUNCH_RECONCILE_SECONDS": reconcile,
        "DISPATCH": {
            "BACKEND": "container_manager.dispatch.local.LocalBackend",
            "OPTIONS": {"WORKERS": 4, "SWEEP_INTERVAL": 60},
        },
    }
    backend = dispatch.get_backend()
    started = time.monotonic()
    jobs = submit(keeping_host, docker_ready, 3, command="sh -c 'echo once'")
    wait_for(lambda: all_terminal(jobs), timeout=reconcile + 20, interval=0.1)
    assert time.monotonic() - started < 60  # so no sweep ran: the hints did it
    assert set(crashed_at) == {j.pk for j in jobs}
    done = ContainerJob.objects.filter(pk__in=[j.pk for j in jobs])
    for job in done:
        assert (job.status, job.attempt_count, job.clean_output) == ("completed", 1, "once\n")
        # Due `reconcile` seconds after the launch began, which was before the crash.
        assert 0 < (reconciled_at[job.pk] - crashed_at[job.pk]).total_seconds() <= reconcile + 5
        # The attempt's "accepted" is the container's start (the harvest puts it there), which
        # the crash came after.
        accepted = ContainerExecution.objects.get(job=job, attempt=1).accepted_at
        assert accepted <= crashed_at[job.pk]
    assert set(containers_per_job().values()) == {1}
    assert slots_held(keeping_host) == 0
    backend.close()
