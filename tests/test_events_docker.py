"""Docker engine events: a dying container is harvested at once, a broken stream catches up.

A real engine; the recording backend plays the transport, so the test sees each message sent.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from container_manager.engine import flow, steps
from container_manager.events.docker import DockerEventWatcher, EngineFollower
from container_manager.models import ContainerJob, ExecutorHost
from tests.conftest import FAST_STEPS, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def submit(host, image, command):
    return ContainerJob.objects.create_job(image=image, command=command, docker_host=host)


@pytest.fixture
def follower(recording, docker_host):
    follower = EngineFollower(docker_host, recording)
    follower.start()
    assert follower.caught_up.wait(30), "the event stream did not open"
    yield follower
    follower.close()
    follower.join(10)
    assert not follower.is_alive()


def harvests(recording, job):
    return [m for m in recording.messages if m[:2] == ("harvest", str(job.pk))]


def deliver(recording):
    """Run the recorded messages as the transport would, delays skipped."""
    for step, job_id, _delay in recording.take():
        steps.run_step(step, job_id)


def test_a_dying_container_is_harvested_without_a_check(
    recording, docker_host, docker_ready, follower
):
    recording.take()  # the catch-up of the connection
    job = submit(docker_host, docker_ready, "sh -c 'echo done'")
    deliver(recording)  # the launch
    wait_for(lambda: harvests(recording, job), timeout=30)
    checks = [m for m in recording.messages if m[0] == "check"]
    deliver(recording)
    done = ContainerJob.objects.get(pk=job.pk)
    assert (done.status, done.clean_output.strip()) == ("completed", "done")
    # The launch's own check, if any, is one and spaced for events: they flow for this host.
    sparse = pytest.approx(FAST_STEPS["CHECK_DELAY_WITH_EVENTS"])
    assert all(delay == 0 or delay == sparse for _, _, delay in checks)
    assert len(checks) <= 1


def test_checks_wait_long_while_events_flow(recording, docker_host, docker_ready, follower):
    assert flow.events_flow(docker_host)
    job = submit(docker_host, docker_ready, "sleep 30")
    for step, job_id, _ in recording.take():
        if step == "launch":
            steps.run_step(step, job_id)
    [check] = [m for m in recording.take() if m[0] == "check"]
    assert check[2] == pytest.approx(FAST_STEPS["CHECK_DELAY_WITH_EVENTS"])
    ContainerJob.objects.get(pk=job.pk).cancel()
    deliver(recording)  # SIGTERM asked; `sleep` ignores it and no step waits out the grace
    ContainerJob.objects.filter(pk=job.pk, status="running").update(
        stop_requested_at=timezone.now() - timedelta(seconds=FAST_STEPS["STOP_GRACE_SECONDS"] + 1),
        next_check_at=None,
    )
    steps.check(job.pk)
    assert ContainerJob.objects.get(pk=job.pk).status == "cancelled"


def test_after_a_break_the_follower_reconnects_and_catches_up(
    recording, docker_host, docker_ready, follower, monkeypatch
):
    recording.take()
    job = submit(docker_host, docker_ready, "sleep 0.2")
    deliver(recording)
    running = ContainerJob.objects.get(pk=job.pk)
    assert running.status == "running"
    # Lose the stream and the job's end with it: no event comes for this container.
    monkeypatch.setattr(follower, "_on_event", lambda event: None)
    follower.break_stream()
    wait_for(lambda: follower.connections >= 2, timeout=30)
    import docker

    docker.from_env().containers.get(running.execution_id).wait(timeout=30)
    follower.break_stream()
    wait_for(lambda: follower.connections >= 3, timeout=30)
    wait_for(lambda: harvests(recording, job), timeout=30)
    deliver(recording)
    assert ContainerJob.objects.get(pk=job.pk).status == "completed"


def test_the_watcher_follows_active_docker_hosts_and_closes_at_once(recording, docker_host):
    watcher = DockerEventWatcher(recording, refresh_seconds=3600)
    watcher.start()
    wait_for(lambda: docker_host.pk in watcher.followers, timeout=30)
    follower = watcher.followers[docker_host.pk]
    assert follower.connected.wait(30)
    watcher.close(timeout=10)
    assert not follower.is_alive() and not flow.events_flow(docker_host)


def test_hosts_on_one_engine_share_one_stream_and_a_death_is_harvested_once(
    recording, docker_host, docker_ready
):
    twin = ExecutorHost.objects.create(
        name=f"{docker_host.name}-twin", executor_type="docker", host_type="unix",
        connection_string=docker_host.connection_string, auto_pull_images=False,
    )  # fmt: skip
    watcher = DockerEventWatcher(recording, refresh_seconds=3600)
    watcher.start()
    try:
        wait_for(lambda: {docker_host.pk, twin.pk} <= set(watcher.followers), timeout=30)
        follower = watcher.followers[docker_host.pk]
        assert watcher.followers[twin.pk] is follower
        assert follower.caught_up.wait(30)
        assert flow.events_flow(docker_host) and flow.events_flow(twin)
        recording.take()  # the catch-up of the connection, sent by now
        job = submit(twin, docker_ready, "true")
        deliver(recording)  # the launch
        wait_for(lambda: harvests(recording, job), timeout=30)
    finally:
        watcher.close(timeout=10)
    assert len(harvests(recording, job)) == 1
    assert not flow.events_flow(docker_host) and not flow.events_flow(twin)
    deliver(recording)  # the harvest, which removes the container
    assert ContainerJob.objects.get(pk=job.pk).status == "completed"
