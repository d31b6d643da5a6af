"""The default dispatch: steps run only in the process that started the worker's threads.

A web process or a shell that submits a job sends nothing it would have to finish; the worker
(``process_container_jobs``, which starts the backend) runs the job.
"""

import io
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from container_manager import dispatch
from container_manager.conf import DEFAULTS
from container_manager.dispatch.worker import WorkerBackend
from container_manager.engine import pickup as pickup_module
from container_manager.engine.pickup import Pickup
from container_manager.management.commands import process_container_jobs
from container_manager.models import ContainerJob
from tests.conftest import FAST_STEPS, wait_for
from tests.support import row, submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(settings):
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        "DISPATCH": {
            "BACKEND": "container_manager.dispatch.worker.WorkerBackend",
            "OPTIONS": {"WORKERS": 2, "SWEEP_INTERVAL": 0, "DOCKER_EVENTS": False},
        },
    }
    backend = dispatch.get_backend()
    yield backend
    backend.close()


def test_it_is_the_default():
    assert DEFAULTS["DISPATCH"]["BACKEND"] == "container_manager.dispatch.worker.WorkerBackend"


def test_a_process_that_did_not_start_it_runs_no_step_and_starts_no_thread(worker, mock_host):
    assert isinstance(worker, WorkerBackend)
    job = submit(mock_host)
    assert row(job).status == "pending"
    assert worker._threads == []  # a shell that exits now leaves nothing half-done
    assert worker.wait_idle(timeout=5)


def test_the_process_that_started_it_runs_the_jobs_found_by_the_sweep(worker, mock_host):
    job = submit(mock_host)
    worker.start()  # what process_container_jobs does
    dispatch.send("launch", job.pk)
    assert worker.wait_idle(timeout=30)
    assert row(job).status == "completed"
    assert ContainerJob.objects.filter(status="pending").count() == 0


# -- the worker picks up new jobs between its sweeps ----------------------------------------


def test_a_look_sends_each_new_pending_job_once_and_leaves_children_to_their_parent(
    recording, clock, mock_host
):
    pickup = Pickup(clock.now())
    first = submit(mock_host)
    parent = submit(mock_host, array_size=3)
    assert sorted(pickup.due()) == sorted(
        [("launch", str(first.pk), 0.0), ("launch", str(parent.pk), 0.0)]
    )
    assert pickup.due() == []  # each job once
    second = submit(mock_host)
    assert pickup.due() == [("launch", str(second.pk), 0.0)]


def test_a_look_is_one_select_and_its_memory_stays_within_the_window(recording, clock, mock_host):
    pickup = Pickup(clock.now())
    jobs = [submit(mock_host) for _ in range(3)]
    with CaptureQueriesContext(connection) as captured:
        assert len(pickup.due()) == 3
    assert len(captured.captured_queries) == 1
    assert set(pickup.sent) == {job.pk for job in jobs}
    pickup.since = timezone.now() + timedelta(seconds=pickup_module.OVERLAP_SECONDS + 1)
    assert pickup.due() == []
    assert pickup.sent == {}  # older than the window: forgotten, as no look returns them again


def test_the_worker_starts_a_job_nobody_announced_before_its_next_sweep(worker, clock, mock_host):
    """Sweeps are an hour apart and the frozen clock keeps the job "fresh" for the sweep: only
    the pickup can launch it (a web process's submit, which sends nothing here)."""
    command = process_container_jobs.Command()
    thread = threading.Thread(
        target=call_command,
        args=(command, "--poll-interval", "3600", "--pickup-interval", "0.05"),
        kwargs={"stdout": io.StringIO()},
    )
    thread.start()
    try:
        [job] = ContainerJob.objects.bulk_create(
            [ContainerJob(docker_host=mock_host, docker_image="x", command="true")]
        )  # the row alone, as another process's submit leaves it
        wait_for(lambda: row(job).status != "pending", timeout=30)
    finally:
        command.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
