"""Django tasks run as containers on the real engine, in the Python image of infra/python-image.sh.

Through local dispatch, and the serverless path: Cloud Tasks emulator pushes to a live server.
"""

import importlib
import os
import threading

import pytest

pytest.importorskip(
    "container_manager.tasks.compat",
    reason="needs Django 6 or, on Django 5.2, django-tasks: pip install 'container_manager[tasks]'",
)

from container_manager.models import ContainerJob, EnvironmentVariableTemplate
from container_manager.tasks.compat import TaskResultStatus, task_finished, task_started
from container_manager.tasks.exceptions import TaskTimedOut
from tests.conftest import missing_service, wait_for
from tests.test_cloudtasks import emulator, pushed_by_emulator  # noqa: F401 - fixtures

PYTHON_IMAGE = os.environ.get("CM_PYTHON_IMAGE", "cm-python:latest")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


@pytest.fixture(scope="session")
def python_image(docker_ready):
    """The local Python image, or a skip (a failure in CI): built by infra/python-image.sh."""
    import docker

    try:
        docker.from_env(timeout=10).images.get(PYTHON_IMAGE)
    except Exception as exc:  # noqa: BLE001 - any failure means: not usable here
        missing_service(f"image {PYTHON_IMAGE!r} not available (run infra/python-image.sh): {exc}")
    return PYTHON_IMAGE


@pytest.fixture
def examples(settings, python_image, docker_host):
    """``TASKS`` runs tasks on the Docker host in the Python image; the example tasks module."""
    EnvironmentVariableTemplate.objects.create(
        name="task-container",
        environment_variables_text="DJANGO_SETTINGS_MODULE=tests.task_settings",
    )
    settings.TASKS = {
        "default": {
            "BACKEND": "container_manager.tasks.ContainerTaskBackend",
            "OPTIONS": {
                "image": python_image,
                "host": docker_host.name,
                "environment_template": "task-container",
                "memory_limit": 256,
            },
        }
    }
    return importlib.import_module("tests.task_examples")


def finished(result, timeout=120):
    def done():
        result.refresh()
        return result.is_finished

    wait_for(done, timeout=timeout, interval=0.2)
    return result


def check_outcomes(add, failed, slow):
    """What the three example runs must end as, whatever carried their steps."""
    assert (add.status, add.return_value, add.attempts) == (TaskResultStatus.SUCCESSFUL, 5, 1)
    assert add.started_at <= add.finished_at
    assert failed.status == TaskResultStatus.FAILED
    [error] = failed.errors
    assert error.exception_class is ValueError
    assert "ValueError: boom" in error.traceback and "task_examples.py" in error.traceback
    assert ContainerJob.objects.get(pk=failed.id).last_error == (
        "ValueError: boom (exited with code 1)"
    )
    assert slow.status == TaskResultStatus.FAILED
    [reason] = slow.errors
    assert reason.exception_class is TaskTimedOut
    assert "timed out after 3 seconds" in reason.traceback
    assert ContainerJob.objects.get(pk=slow.id).status == "timeout"


def test_tasks_run_in_containers(local, examples):
    started, ended = [], threading.Event()

    def on_started(sender, task_result, **kwargs):
        started.append(task_result.id)

    def on_finished(sender, task_result, **kwargs):
        if task_result.id == add.id:
            ended.set()

    task_started.connect(on_started)
    task_finished.connect(on_finished)
    try:
        add = examples.add.enqueue(2, 3)
        failed = examples.fail.enqueue("boom")
        slow = examples.sleep.enqueue(60)
        context = examples.whoami.enqueue("hello")
        for result in (add, failed, slow, context):
            finished(result)
        assert ended.wait(timeout=30)
    finally:
        task_started.disconnect(on_started)
        task_finished.disconnect(on_finished)
    check_outcomes(add, failed, slow)
    assert context.return_value == {"id": context.id, "attempt": 1, "greeting": "hello"}
    assert add.id in started
    job = ContainerJob.objects.get(pk=add.id)
    assert (job.memory_limit, job.exit_code) == (256, 0)
    assert "ValueError: boom" in ContainerJob.objects.get(pk=failed.id).stderr_log


def test_tasks_run_through_cloud_tasks_pushes(pushed_by_emulator, examples):  # noqa: F811
    add = examples.add.enqueue(2, 3)
    failed = examples.fail.enqueue("boom")
    slow = examples.sleep.enqueue(60)
    check_outcomes(finished(add), finished(failed), finished(slow))
