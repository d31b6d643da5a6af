"""Cloud Tasks dispatch: the tasks it creates, and jobs finished by real pushes from the emulator.

The emulator (``gcloud-tasks-emulator`` from PyPI) is started here and POSTs to a live server.
"""

import socket
import subprocess
import sys
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError
from google.api_core.exceptions import AlreadyExists

from container_manager import dispatch
from container_manager.dispatch.cloudtasks import CloudTasksBackend
from container_manager.engine import steps
from container_manager.models import ContainerJob
from tests.conftest import FAST_STEPS, missing_service, wait_for
from tests.push_support import HMAC_SECRET

QUEUE = "projects/test-project/locations/here/queues/steps"
OPTIONS = {
    "PROJECT": "test-project",
    "LOCATION": "here",
    "QUEUE": "steps",
    "TARGET_BASE_URL": "https://cm.example.com/cm/",
    "SERVICE_ACCOUNT_EMAIL": "tasks@test-project.iam.gserviceaccount.com",
}


class StubClient:
    """Stands in for CloudTasksClient in unit tests: records tasks, can refuse duplicates."""

    def __init__(self):
        self.tasks = []

    def create_task(self, parent, task):
        if any(t["name"] == task["name"] for t in self.tasks):
            raise AlreadyExists("task exists")
        self.tasks.append({**task, "parent": parent})


@pytest.fixture
def backend():
    stub = CloudTasksBackend(OPTIONS)
    stub._client = StubClient()
    return stub


def test_task_pushes_to_the_step_with_an_oidc_token(backend, monkeypatch):
    monkeypatch.setattr("container_manager.dispatch.cloudtasks.time.time", lambda: 1700000000.2)
    backend.send("check", "job-1", 30)
    [task] = backend.client.tasks
    request = task["http_request"]
    assert task["parent"] == QUEUE
    assert request["url"] == "https://cm.example.com/cm/steps/check/"
    assert request["oidc_token"] == {
        "service_account_email": "tasks@test-project.iam.gserviceaccount.com",
        "audience": "https://cm.example.com/cm/",
    }
    assert request["body"] == b'{"job_id": "job-1", "step": "check"}'
    assert task["dispatch_deadline"].seconds == 25
    assert task["schedule_time"].seconds == 1700000030
    assert task["name"].startswith(QUEUE + "/tasks/") and task["name"].endswith(
        "-check-job-1-" + str(task["schedule_time"].seconds)
    )


def test_duplicate_send_is_one_task_and_already_exists_is_success(backend, monkeypatch):
    monkeypatch.setattr("container_manager.dispatch.cloudtasks.time.time", lambda: 1700000000.2)
    backend.send("launch", "job-1", 0)
    backend.send("launch", "job-1", 0)  # same step, job and second: AlreadyExists, no error
    backend.send("launch", "job-1", 5)  # due later: a task of its own
    assert len(backend.client.tasks) == 2


def test_hmac_signing_instead_of_oidc(settings, backend):
    settings.CONTAINER_MANAGER = {"AUTH": {"HMAC_SECRET": HMAC_SECRET}}
    signed = CloudTasksBackend({**OPTIONS, "SIGN_WITH_HMAC": True})
    signed._client = StubClient()
    signed.send("launch", "job-2", 0)
    request = signed.client.tasks[0]["http_request"]
    assert "oidc_token" not in request
    assert set(request["headers"]) == {"Content-Type", "X-CM-Timestamp", "X-CM-Signature"}


def test_delays_beyond_thirty_days_are_left_to_the_sweep(backend):
    backend.send("launch", "job-3", 31 * 24 * 3600)
    assert backend.client.tasks == []


def test_missing_options_are_named():
    with pytest.raises(ImproperlyConfigured, match="QUEUE, TARGET_BASE_URL"):
        CloudTasksBackend({"PROJECT": "p", "LOCATION": "l", "SERVICE_ACCOUNT_EMAIL": "a@b"})


def test_client_is_built_once(settings):
    real = CloudTasksBackend({**OPTIONS, "EMULATOR_HOST": "127.0.0.1:1"})
    assert real.client is real.client


# -- against the emulator --------------------------------------------------------------


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    command = [sys.executable, "-m", "gcloud_tasks_emulator", "start", "-p", str(port), "-d", QUEUE]
    try:
        with open(log, "w") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    except OSError as exc:
        missing_service(f"cannot start gcloud-tasks-emulator: {exc}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if process.poll() is not None:
            missing_service(f"gcloud-tasks-emulator exited: {log.read_text()[-500:]}")
        time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def pushed_by_emulator(settings, emulator, live_server):
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        "CHECK_DELAY_INITIAL": 1.0,
        "DISPATCH": {
            "BACKEND": "container_manager.dispatch.cloudtasks.CloudTasksBackend",
            "OPTIONS": {
                **OPTIONS,
                "EMULATOR_HOST": emulator,
                "TARGET_BASE_URL": f"{live_server.url}/cm/",
                "SIGN_WITH_HMAC": True,
            },
        },
        "AUTH": {"HMAC_SECRET": HMAC_SECRET},
    }
    return dispatch.get_backend()


def test_jobs_finish_through_emulator_pushes_with_delays_and_a_retry(
    transactional_db, pushed_by_emulator, make_mock_host, monkeypatch
):
    host = make_mock_host(duration=1.5)
    calls = []
    real = steps.run_step

    def flaky(step, job_id):
        calls.append((step, job_id))
        if len(calls) == 1:
            raise OperationalError("database restarting")  # the endpoint answers 503
        return real(step, job_id)

    monkeypatch.setattr(steps, "run_step", flaky)
    jobs = [ContainerJob.objects.create_job(image="x", docker_host=host) for _ in range(3)]
    ids = [j.pk for j in jobs]

    def done():
        return set(ContainerJob.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
            "completed"
        }

    wait_for(done, timeout=60, interval=0.2)
    first_step, first_job = calls[0]
    assert first_step == "launch"
    assert calls.count(("launch", first_job)) >= 2  # the emulator pushed it again after the 503
    checks = [c for c in calls if c[0] == "check"]
    assert len(checks) >= len(jobs)  # delayed checks arrived
    assert all(ContainerJob.objects.get(pk=i).attempt_count == 1 for i in ids)


def test_send_many_creates_every_task(backend):
    backend.send_many([("check", f"job-{n}", 0) for n in range(40)])
    assert (
        sorted(t["http_request"]["url"] for t in backend.client.tasks)
        == ["https://cm.example.com/cm/steps/check/"] * 40
    )
