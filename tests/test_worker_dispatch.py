"""The default dispatch: steps run only in the process that started the worker's threads.

A web process or a shell that submits a job sends nothing it would have to finish; the worker
(``process_container_jobs``, which starts the backend) runs the job.
"""

import pytest

from container_manager import dispatch
from container_manager.conf import DEFAULTS
from container_manager.dispatch.worker import WorkerBackend
from container_manager.models import ContainerJob
from tests.conftest import FAST_STEPS
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
