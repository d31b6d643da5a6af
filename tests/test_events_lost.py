"""Events are hints: with every one of them lost, the checks and the sweep still finish each job.

A real Docker engine whose events are dropped, a platform whose events never come, and the
system check of PLATFORM_EVENTS, which only wired platforms may be in.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from container_manager import dispatch
from container_manager.engine import flow, steps
from container_manager.events.docker import EngineFollower
from container_manager.models import ContainerJob
from container_manager.rules import status as st
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.docker
def test_docker_jobs_finish_by_their_checks_when_every_event_is_dropped(
    local, settings, docker_host, docker_ready, monkeypatch
):
    seen = []
    monkeypatch.setattr(EngineFollower, "_on_event", lambda self, event: seen.append(event))
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "CHECK_DELAY_WITH_EVENTS": 1.0}
    # The first job starts the backend and its follower; the others launch while events flow.
    first = ContainerJob.objects.create_job(
        image=docker_ready, command="sleep 3", docker_host=docker_host
    )
    wait_for(lambda: flow.events_flow(docker_host), timeout=30)
    jobs = [first] + [
        ContainerJob.objects.create_job(image=docker_ready, command="true", docker_host=docker_host)
        for _ in range(3)
    ]
    ids = [job.pk for job in jobs]
    wait_for(
        lambda: not ContainerJob.objects.filter(pk__in=ids, status__in=st.LIVE).exists(),
        timeout=60,
    )
    assert set(ContainerJob.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        "completed"
    }
    assert seen, "the engine sent events; the test dropped them"


def test_the_sweep_finishes_jobs_whose_events_and_messages_were_all_lost(
    recording, settings, make_mock_host
):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "PLATFORM_EVENTS": ["mock"]}
    host = make_mock_host(duration=0)
    jobs = [ContainerJob.objects.create_job(image="x", docker_host=host) for _ in range(5)]
    ids = [job.pk for job in jobs]
    backend = dispatch.get_backend()  # the settings changed: a fresh recording backend
    for _ in range(10):
        backend.take()  # every message and every event: lost
        if not ContainerJob.objects.filter(pk__in=ids, status__in=st.LIVE).exists():
            break
        # Time passes: what was due later is due now, as the rows say.
        past = timezone.now() - timedelta(hours=1)
        ContainerJob.objects.filter(pk__in=ids).update(created_at=past)
        ContainerJob.objects.filter(pk__in=ids, status=st.RUNNING).update(next_check_at=past)
        steps.sweep()
        for step, job_id, _delay in backend.take():
            steps.run_step(step, job_id)
    statuses = ContainerJob.objects.filter(pk__in=ids).values_list("status", flat=True)
    assert list(statuses) == ["completed"] * 5


@pytest.mark.parametrize("value", [["docker"], "fargate", ["fargate", "scaleway"]])
def test_unknown_platform_events_are_a_system_check_error(settings, value):
    from container_manager.checks import check_settings

    settings.CONTAINER_MANAGER = {"PLATFORM_EVENTS": value}
    [error] = check_settings()
    assert error.id == "container_manager.E007" and "fargate" in error.msg


def test_known_platform_events_pass_the_system_check(settings):
    from container_manager.checks import check_settings

    settings.CONTAINER_MANAGER = {"PLATFORM_EVENTS": ["fargate", "cloudrun"]}
    assert check_settings() == []
