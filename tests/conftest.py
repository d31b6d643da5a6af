"""Shared fixtures: dispatch backends, mock and Docker hosts, and the service requirements.

With ``CM_REQUIRE_SERVICES=1`` (set by CI) a missing Docker engine or PostgreSQL fails the test.
"""

import os
import subprocess
import time
import uuid
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from container_manager import dispatch
from container_manager.executors import factory
from container_manager.executors.mock import MockExecutor

TEST_IMAGE = os.environ.get("CM_TEST_IMAGE", "cm-busybox:latest")
REQUIRE_SERVICES = os.environ.get("CM_REQUIRE_SERVICES") == "1"

FAST_STEPS = {
    "CHECK_DELAY_INITIAL": 0.05,
    "CHECK_DELAY_MAX": 0.5,
    "RETRY_BACKOFF_BASE": 0.05,
    "RETRY_BACKOFF_MAX": 0.2,
    "STOP_GRACE_SECONDS": 1,
    # A lost platform event costs a test a second, not a minute.
    "CHECK_DELAY_WITH_EVENTS": 1.0,
}


def missing_service(reason: str) -> None:
    """Skip, or fail when CI requires every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing (CM_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


def docker_engine_problem() -> str | None:
    """Why the Docker engine or the test image cannot be used here, or None."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        client.images.get(TEST_IMAGE)
    except Exception as exc:  # noqa: BLE001 - any failure means: not usable here
        return f"Docker engine or image {TEST_IMAGE!r} not available: {exc}"
    return None


@pytest.fixture(scope="session", autouse=True)
def _static_root(tmp_path_factory):
    """STATIC_ROOT exists, as collectstatic leaves it: WhiteNoise warns at each start otherwise."""
    from django.test import override_settings

    with override_settings(STATIC_ROOT=str(tmp_path_factory.mktemp("staticfiles"))):
        yield


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Each test starts with no dispatch backend, no cached executors, no mock history."""
    dispatch.reset_backend()
    factory.clear_cache()
    MockExecutor._executions.clear()
    MockExecutor._launch_calls.clear()
    yield
    dispatch.reset_backend()
    factory.clear_cache()


class FrozenClock:
    """A clock that stands still until the test moves it with ``advance``."""

    def __init__(self, start: datetime):
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds`` and return the new time."""
        self.current += timedelta(seconds=seconds)
        return self.current


@pytest.fixture
def clock(monkeypatch):
    """Stop ``container_manager.clock`` (steps, status moves, mock executions) at the current time.

    Nothing is due, late or finished until the test says so with ``clock.advance(seconds)``.
    Rows' automatic timestamps (``created_at``, ``updated_at``) keep Django's own clock.
    """
    frozen = FrozenClock(timezone.now())
    monkeypatch.setattr("container_manager.clock.now", frozen.now)
    return frozen


@pytest.fixture
def immediate(settings):
    """Steps run inline, in the sending thread, delays waited out (short in tests)."""
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        "DISPATCH": {"BACKEND": "container_manager.dispatch.immediate.ImmediateBackend"},
    }
    return settings.CONTAINER_MANAGER


@pytest.fixture
def local(settings):
    """The embedded local backend with worker threads and no sweep timer; yields the backend."""
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        "DISPATCH": {
            "BACKEND": "container_manager.dispatch.local.LocalBackend",
            "OPTIONS": {"WORKERS": 4, "SWEEP_INTERVAL": 0},
        },
    }
    backend = dispatch.get_backend()
    yield backend
    backend.close()


@pytest.fixture
def recording(settings):
    """A backend that records messages and delivers none: the test plays the transport."""
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        "DISPATCH": {"BACKEND": "tests.backends.RecordingBackend"},
    }
    return dispatch.get_backend()


@pytest.fixture(scope="module")
def issuer():
    """A local OIDC issuer for the module's pushes (tests.push_support), closed afterwards."""
    from tests.push_support import LocalIssuer

    local = LocalIssuer()
    yield local
    local.close()


@pytest.fixture
def make_mock_host(db):
    """Create a mock host with the given ``executor_config``."""
    from container_manager.models import ExecutorHost

    def make(name=None, max_concurrent_jobs=10, **config):
        return ExecutorHost.objects.create(
            name=name or f"mock-{uuid.uuid4().hex[:8]}",
            executor_type="mock",
            connection_string="mock://localhost",
            max_concurrent_jobs=max_concurrent_jobs,
            executor_config=config,
        )

    return make


@pytest.fixture
def hold_slots(db):
    """``hold(host, n)``: ``n`` running jobs take free slots of ``host``, as launches would."""
    from container_manager.models import ContainerJob, HostSlot

    def hold(host, n):
        free = HostSlot.objects.filter(host=host, job__isnull=True).order_by("number")[:n]
        for slot in list(free):
            job = ContainerJob.objects.create(docker_image="x", command="true", docker_host=host)
            ContainerJob.objects.filter(pk=job.pk).update(status="running")
            HostSlot.objects.filter(pk=slot.pk).update(job=job)

    return hold


def slots_held(host):
    """The exact slots in use on ``host``, after checking ``current_job_count`` agrees."""
    from container_manager.models import ExecutorHost

    row = ExecutorHost.objects.get(pk=host.pk)
    assert row.current_job_count == row.slots_in_use()
    return row.slots_in_use()


@pytest.fixture
def mock_host(make_mock_host):
    """A mock host whose executions finish at once with exit code 0."""
    return make_mock_host(name="mock-host")


@pytest.fixture(scope="session")
def docker_ready():
    """The Docker engine and the local test image, or a skip (a failure in CI)."""
    problem = docker_engine_problem()
    if problem:
        missing_service(problem)
    return TEST_IMAGE


@pytest.fixture
def docker_host(docker_ready, db):
    """An ExecutorHost on the local Docker socket that keeps containers so tests can count them."""
    from container_manager.models import ExecutorHost

    return ExecutorHost.objects.create(
        name=f"docker-{uuid.uuid4().hex[:8]}",
        executor_type="docker",
        host_type="unix",
        connection_string="unix:///var/run/docker.sock",
        auto_pull_images=False,
        max_concurrent_jobs=10,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark ``postgres`` every test that asks for ``postgres_only``, before ``-m`` selects.

    So CI's SQLite pass (``-m "not postgres"``) deselects it even when its mark was forgotten.
    """
    for item in items:
        if "postgres_only" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
def postgres_only(db):
    """Skip (fail in CI) unless the test database is PostgreSQL.

    CI's SQLite pass deselects these tests with ``-m "not postgres"`` (each is marked
    ``postgres`` at collection, by ``pytest_collection_modifyitems``).
    """
    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL: run with DATABASE_URL=postgres://... (CI does)")


def wait_for(predicate, timeout=30.0, interval=0.05):
    """Poll ``predicate`` until it is true; fail the test with a message on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")


def containers_for(job_id) -> list[str]:
    """Names of the Docker containers labelled with this job id (all states)."""
    out = subprocess.run(
        [
            "docker", "ps", "-a", "--filter", f"label=container_manager.job_id={job_id}",
            "--format", "{{.Names}}",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [line for line in out.stdout.splitlines() if line]
