"""The local backend's queue order: steps of jobs holding a slot before launches.

One worker thread and steps replaced by probes, so the order is the queue's alone.
"""

import threading

import pytest

from container_manager import dispatch, steps
from tests.conftest import FAST_STEPS


@pytest.fixture
def one_worker(settings):
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        "DISPATCH": {
            "BACKEND": "container_manager.dispatch.local.LocalBackend",
            "OPTIONS": {"WORKERS": 1, "SWEEP_INTERVAL": 0, "DOCKER_EVENTS": False},
        },
    }
    backend = dispatch.get_backend()
    yield backend
    backend.close()


def test_checks_run_before_launches_queued_earlier_and_launches_keep_their_order(
    one_worker, monkeypatch
):
    ran, release = [], threading.Event()

    def probe(job_id):
        if job_id == "finishing":
            release.wait(30)
            one_worker.send("launch", "handed-over", 0)  # sent by the running step, last
        ran.append(job_id)
        return "ok"

    monkeypatch.setitem(steps.STEPS, "launch", probe)
    monkeypatch.setitem(steps.STEPS, "check", probe)
    one_worker.send("check", "finishing", 0)
    one_worker.send("launch", "new-1", 0)
    one_worker.send("launch", "new-2", 0)
    one_worker.send("check", "running", 0)
    release.set()
    assert one_worker.wait_idle(timeout=30)
    assert ran == ["finishing", "running", "new-1", "new-2", "handed-over"]
