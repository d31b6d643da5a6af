"""The local backend's two lanes: launches and the sweep on one, every other step on the other.

The steps are stand-ins that wait on events; no test waits for time to pass.
"""

import threading

import pytest

from container_manager import runner
from container_manager.dispatch.local import LocalBackend


@pytest.fixture
def stand_in_steps(monkeypatch):
    """Launches block until released; every other step records itself."""
    release, harvested = threading.Event(), threading.Event()
    ran, started = [], threading.Semaphore(0)

    def run(step, job_id):
        if step == "launch":
            started.release()
            release.wait(30)
        ran.append((step, job_id))
        if step == "harvest":
            harvested.set()
        return runner.StepOutcome(runner.Verdict.DONE)

    monkeypatch.setattr(runner, "run", run)
    yield release, harvested, ran, started
    release.set()


def test_a_check_runs_while_every_launch_worker_is_busy(stand_in_steps):
    release, harvested, ran, started = stand_in_steps
    backend = LocalBackend(
        {"WORKERS": 2, "STEP_WORKERS": 1, "SWEEP_INTERVAL": 0, "DOCKER_EVENTS": False}
    )
    try:
        for n in range(3):
            backend.send("launch", f"slow-{n}", 0)
        assert started.acquire(timeout=30) and started.acquire(timeout=30)
        backend.send("check", "timed-out", 0)
        backend.send("harvest", "finished", 0)
        # Both launch workers are held and the third launch waits: the check and harvest did not.
        assert harvested.wait(30), "the check and harvest waited behind the launches"
        assert ran == [("check", "timed-out"), ("harvest", "finished")]
        release.set()
        assert backend.wait_idle(timeout=30)
        launched = sorted(job for step, job in ran if step == "launch")
        assert launched == ["slow-0", "slow-1", "slow-2"]
    finally:
        backend.close()


def test_both_thread_counts_are_checked():
    backend = LocalBackend({"WORKERS": 1, "STEP_WORKERS": 0})
    assert backend.check() == ["OPTIONS['STEP_WORKERS'] must be at least 1, got 0"]
