"""How steps take a platform event: a harvest racing a stopping check, checks while events flow.

The mock executor and the recording backend: the test plays the transport and the platform.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from container_manager.engine import flow, steps
from container_manager.executors.mock import MockExecutor
from container_manager.models import ContainerJob

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(recording, make_mock_host):
    """A job whose mock execution has already exited, still running in its row."""
    job = ContainerJob.objects.create_job(image="x", docker_host=make_mock_host(duration=0))
    assert steps.launch(job.pk) == "launched"
    recording.take()
    return ContainerJob.objects.get(pk=job.pk)


def test_a_harvest_after_a_cancel_request_ends_the_job_cancelled(running):
    ContainerJob.objects.filter(pk=running.pk).update(cancel_requested_at=timezone.now())
    assert steps.harvest(running.pk) == "cancelled"
    assert ContainerJob.objects.get(pk=running.pk).last_error == "cancelled on request"


def test_a_harvest_past_the_deadline_ends_the_job_timed_out(running):
    late = timezone.now() - timedelta(seconds=running.timeout_seconds + 1)
    ContainerJob.objects.filter(pk=running.pk).update(started_at=late)
    assert steps.harvest(running.pk) == "timeout"
    assert "timed out after" in ContainerJob.objects.get(pk=running.pk).last_error


def test_a_second_harvest_changes_nothing(running):
    assert steps.harvest(running.pk) == "completed"
    done = ContainerJob.objects.get(pk=running.pk)
    assert steps.harvest(running.pk) == "nothing-to-do"
    assert ContainerJob.objects.get(pk=running.pk).updated_at == done.updated_at


def test_checks_are_sparse_while_events_flow_but_never_past_the_deadline(
    recording, settings, make_mock_host
):
    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER,
        "PLATFORM_EVENTS": ["cloudrun"],
        "CHECK_DELAY_WITH_EVENTS": 60.0,
    }
    host = make_mock_host(duration=3600)
    job = ContainerJob.objects.create_job(image="x", docker_host=host, timeout_seconds=7200)
    assert not flow.events_flow(host)
    assert flow.check_delay(job, 0.5) == 0.5
    flow.mark_following(host.pk, True)
    try:
        assert flow.events_flow(host)
        assert flow.check_delay(job, 0.5) == 60.0
        short = ContainerJob.objects.create_job(image="x", docker_host=host, timeout_seconds=10)
        assert flow.first_check_delay(short, "exec-1", 0.5) == 10.0
        flow.note_stopped("exec-2")
        assert flow.first_check_delay(short, "exec-2", 0.5) == 0.0  # died during its launch
        assert flow.first_check_delay(short, "exec-2", 0.5) == 10.0  # the note is used once
    finally:
        flow.mark_following(host.pk, False)


def test_a_stop_event_during_the_launchs_move_is_harvested_again(
    recording, make_mock_host, monkeypatch
):
    job = ContainerJob.objects.create_job(image="x", docker_host=make_mock_host(duration=0))
    recording.take()
    looked = flow.first_check_delay

    def then_the_container_dies(job, execution_id, delay):
        found = looked(job, execution_id, delay)
        flow.note_stopped(execution_id)  # the event comes after the look, before the move
        assert steps.harvest(job.pk) == "nothing-to-do"  # its harvest finds the job launching
        return found

    monkeypatch.setattr(flow, "first_check_delay", then_the_container_dies)
    monkeypatch.setattr(MockExecutor, "seconds_left", lambda self, execution_id: None)
    assert steps.launch(job.pk) == "launched"
    assert [step for step, _, delay in recording.take() if not delay] == ["harvest"]
    assert steps.harvest(job.pk) == "completed"


def test_a_launch_with_no_stop_event_sends_no_harvest(recording, make_mock_host, monkeypatch):
    monkeypatch.setattr(MockExecutor, "seconds_left", lambda self, execution_id: None)
    job = ContainerJob.objects.create_job(image="x", docker_host=make_mock_host(duration=0))
    recording.take()
    assert steps.launch(job.pk) == "launched"
    assert [step for step, _, _ in recording.take()] == ["check"]


def test_a_check_is_never_sent_past_a_known_end(recording, clock, make_mock_host):
    job = ContainerJob.objects.create_job(image="x", docker_host=make_mock_host(duration=2))
    recording.take()
    assert steps.launch(job.pk) == "launched"
    waited = 0.0
    while delays := [delay for step, _, delay in recording.take() if step == "check"]:
        waited += delays[-1]
        clock.advance(delays[-1])
        if steps.check(job.pk) != "running":
            break
    assert waited == pytest.approx(2.0)  # the check that finished it came when the run ended
    assert ContainerJob.objects.get(pk=job.pk).status == "completed"
