"""The management commands: process_container_jobs, cleanup_containers, create_sample_data, demo.

In-process through ``call_command``; those that run worker threads also as ``manage.py`` on SQLite.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from contextlib import closing, suppress
from datetime import timedelta
from importlib import import_module
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connections
from django.utils import timezone

from container_manager import dispatch
from container_manager.dispatch.base import DispatchBackend
from container_manager.engine import steps, transitions
from container_manager.executors.base import (
    LABEL_ATTEMPT,
    LABEL_INSTANCE,
    LABEL_JOB_ID,
    LABEL_MANAGED,
)
from container_manager.executors.docker import DockerExecutor
from container_manager.executors.factory import ExecutorFactory
from container_manager.management.commands import process_container_jobs
from container_manager.models import (
    ContainerExecution,
    ContainerJob,
    EnvironmentVariableTemplate,
    ExecutorHost,
)
from tests.backends import RecordingBackend
from tests.conftest import FAST_STEPS, TEST_IMAGE, containers_for, wait_for

launching = import_module("container_manager.engine.steps.launch")


class LostMessages(DispatchBackend):
    """Every message is lost: only the rows (and a sweep) can move a job."""

    def send(self, step, job_id, delay):
        pass


@pytest.fixture
def lost(settings):
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        "DISPATCH": {"BACKEND": f"{__name__}.LostMessages"},
    }


@pytest.fixture
def local_settings(settings):
    """The local backend as the command builds it; the command starts and closes it.

    One worker: writers on the in-memory test database fail at once instead of waiting.
    """
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        "DISPATCH": {
            "BACKEND": "container_manager.dispatch.local.LocalBackend",
            "OPTIONS": {"WORKERS": 1, "SWEEP_INTERVAL": 0},
        },
    }


MANAGE = Path(__file__).resolve().parent.parent / "manage.py"
JOBS = "container_manager_containerjob"
DEMO_JOBS_SQL = (
    "SELECT h.name, j.name, j.status FROM container_manager_containerjob j "
    "JOIN container_manager_executorhost h ON h.id = j.docker_host_id "
    "WHERE j.name = 'demo-hello-world'"
)


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite file after ``manage.py migrate``, made once and copied by ``sqlite_file``."""
    path = tmp_path_factory.mktemp("sqlite") / "migrated.sqlite3"
    result = manage(path, "migrate", "--noinput")
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def sqlite_file(migrated_sqlite, tmp_path) -> Path:
    """A fresh, migrated SQLite file for commands run in their own process.

    Commands that run the local backend's threads get a file database, as
    deployments do: the in-memory test database has no busy wait for writers.
    """
    path = tmp_path / "db.sqlite3"
    shutil.copy(migrated_sqlite, path)
    return path


def manage_env(db: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", **extra}
    env.pop("CM_DISPATCH_BACKEND", None)
    return env


def manage(db: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``manage.py`` in its own process on the SQLite file ``db``."""
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        cwd=MANAGE.parent,
        env=manage_env(db, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def sql(db: Path, query: str) -> list[tuple]:
    with closing(sqlite3.connect(db, timeout=30)) as connection:
        return connection.execute(query).fetchall()


def settled(jobs) -> set[str]:
    """The jobs' statuses; empty while the in-memory test database is busy with a write."""
    try:
        return set(statuses(jobs))
    except OperationalError:
        return set()


def run(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


def backdate(jobs, seconds=60):
    """Move creation into the past, so the sweep's grace period does not hold the jobs back."""
    ContainerJob.objects.filter(pk__in=[j.pk for j in jobs]).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )


def statuses(jobs) -> list[str]:
    return [ContainerJob.objects.get(pk=j.pk).status for j in jobs]


def bulk_pending(host, count, **fields):
    """Pending jobs stored with bulk_create: no post_save signal, so nothing is sent."""
    return ContainerJob.objects.bulk_create(
        [
            ContainerJob(docker_image="img", command="true", docker_host=host, **fields)
            for _ in range(count)
        ]
    )


def set_status(job, status, **fields):
    """Put a job in a state for a test; the app itself only moves it through the steps."""
    ContainerJob.objects.filter(pk=job.pk).update(status=status, **fields)


# -- process_container_jobs --------------------------------------------------------


class TestProcessOnce:
    def test_repeated_once_finishes_jobs_whose_messages_were_lost(
        self, transactional_db, lost, make_mock_host, clock
    ):
        host = make_mock_host(duration=0.2)
        created = [
            ContainerJob.objects.create_job(image="img", command="true", docker_host=host)
            for _ in range(2)
        ]
        bulk = bulk_pending(host, 2)
        jobs = created + bulk
        backdate(jobs)
        outputs = []
        for _ in range(5):
            outputs.append(run("process_container_jobs", "--once"))
            if set(statuses(jobs)) == {"completed"}:
                break
            clock.advance(3)  # past the runs' end, the checks' due time and the sweep's grace
        assert set(statuses(jobs)) == {"completed"}, statuses(jobs)
        assert len(outputs) == 2  # one run launches all four, the next finds them finished
        first = outputs[0].splitlines()
        assert first[0] == "launch: 4 due, 4 run (launched 4)"
        assert first[1].startswith("check: 0 due") and first[2].startswith("cancel: 0 due")
        assert any("(completed " in out for out in outputs)
        assert all(ContainerJob.objects.get(pk=j.pk).exit_code == 0 for j in jobs)

    def test_once_with_nothing_due_reports_zero(self, transactional_db, lost, mock_host):
        bulk_pending(mock_host, 1)  # just created: the sweep leaves it alone for its grace
        assert run("process_container_jobs", "--once").splitlines() == [
            "launch: 0 due, 0 run",
            "check: 0 due, 0 run",
            "cancel: 0 due, 0 run",
        ]

    def test_once_carries_out_a_cancel_request(self, transactional_db, lost, mock_host):
        job = bulk_pending(mock_host, 1)[0]
        ContainerJob.objects.filter(pk=job.pk).update(
            cancel_requested_at=timezone.now() - timedelta(seconds=10)
        )
        backdate([job])
        out = run("process_container_jobs", "--once")
        assert "cancel: 1 due" in out
        assert statuses([job]) == ["cancelled"]

    def test_once_leaves_the_configured_backend_alone(self, transactional_db, lost, mock_host):
        from container_manager import dispatch

        before = dispatch.get_backend()
        run("process_container_jobs", "--once")
        assert dispatch.get_backend() is before


class TestProcessContinuously:
    def test_runs_until_stopped(self, transactional_db, local_settings, make_mock_host):
        jobs = bulk_pending(make_mock_host(duration=0.1), 2)
        backdate(jobs)
        command = process_container_jobs.Command()
        out = io.StringIO()
        errors = []

        def target():
            try:
                call_command(command, "--poll-interval", "0.2", stdout=out)
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                errors.append(exc)
            finally:
                connections.close_all()  # this thread's own, or the test database stays in use

        thread = threading.Thread(target=target)
        thread.start()
        try:
            wait_for(lambda: settled(jobs) == {"completed"}, timeout=30)
        finally:
            command.stop()
            thread.join(timeout=30)
        assert not thread.is_alive() and not errors
        text = out.getvalue()
        assert "sweeping every 0.2s" in text
        assert text.rstrip().endswith("kept in the rows for the next run")

    def test_sigterm_stops_it_after_create_sample_data(self, sqlite_file):
        created = manage(sqlite_file, "create_sample_data", "--jobs", "3")
        assert created.returncode == 0, created.stderr
        process = subprocess.Popen(
            [sys.executable, str(MANAGE), "process_container_jobs", "--poll-interval", "0.5"],
            cwd=MANAGE.parent,
            env=manage_env(sqlite_file),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(
                lambda: sql(sqlite_file, "SELECT DISTINCT status FROM " + JOBS) == [("completed",)],
                timeout=60,
                interval=0.2,
            )
        finally:
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert stdout.rstrip().endswith("kept in the rows for the next run")

    def test_refuses_a_backend_that_is_not_local(self, immediate):
        with pytest.raises(CommandError, match="serverless deployments do not need it"):
            run("process_container_jobs")


@pytest.mark.docker
class TestProcessAfterARestart:
    """Jobs a stopped worker left in progress are looked at when the next one starts."""

    @pytest.fixture
    def left_behind(self, transactional_db, docker_host, monkeypatch):
        """Three jobs of a worker that stopped: its messages and timers went with it.

        ``running``: its container exited; its next check is an hour away (as while events
        flowed). ``started``: its launcher died after starting the container, which exited.
        ``slot_only``: its launcher died after taking the slot, before any container existed.
        """
        with dispatch.use_backend(RecordingBackend({})):
            jobs = {
                name: ContainerJob.objects.create_job(
                    image=TEST_IMAGE, command="true", docker_host=docker_host
                )
                for name in ("running", "started", "slot_only")
            }
            assert steps.launch(jobs["running"].pk) == "launched"
            real_move = transitions.move

            def crash_on_running(job, old, new, **kwargs):
                if new == "running":
                    raise RuntimeError("the worker stopped after the start")
                return real_move(job, old, new, **kwargs)

            monkeypatch.setattr(launching, "move", crash_on_running)
            with pytest.raises(RuntimeError):
                steps.launch(jobs["started"].pk)
            monkeypatch.setattr(launching, "move", real_move)
            lease = timezone.now() + timedelta(seconds=120)
            assert transitions.begin_launch(jobs["slot_only"], lease)
        ContainerJob.objects.filter(pk=jobs["running"].pk).update(
            next_check_at=timezone.now() + timedelta(hours=1)
        )
        wait_for(lambda: exited(jobs["running"]) and exited(jobs["started"]), timeout=60)
        yield jobs
        for job in jobs.values():
            for name in containers_for(job.pk):
                subprocess.run(["docker", "rm", "-f", name], capture_output=True)

    @pytest.mark.parametrize("events", [True, False], ids=["docker-events", "no-events"])
    def test_jobs_left_in_progress_finish_at_once(self, left_behind, settings, events):
        settings.CONTAINER_MANAGER = {
            **FAST_STEPS,
            "DISPATCH": {
                "BACKEND": "container_manager.dispatch.local.LocalBackend",
                "OPTIONS": {"WORKERS": 1, "SWEEP_INTERVAL": 0, "DOCKER_EVENTS": events},
            },
        }
        assert statuses(left_behind.values()) == ["running", "launching", "launching"]
        command = process_container_jobs.Command()
        thread = threading.Thread(
            target=call_command,
            args=(command, "--poll-interval", "3600"),  # one sweep, at the start
            kwargs={"stdout": io.StringIO()},
        )
        thread.start()
        try:
            # LAUNCH_RECONCILE_SECONDS is 30: the launches must not wait for it, nor the
            # running job for its next check.
            wait_for(lambda: settled(left_behind.values()) == {"completed"}, timeout=20)
        finally:
            command.stop()
            thread.join(timeout=30)
            connections.close_all()
        assert [len(containers_for(job.pk)) for job in left_behind.values()] == [0, 0, 0]
        rows = ContainerJob.objects.filter(pk__in=[job.pk for job in left_behind.values()])
        assert set(rows.values_list("attempt_count", flat=True)) == {1}


def exited(job) -> bool:
    """True when the job's container has stopped running."""
    [name] = containers_for(job.pk)
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Status}}", name], capture_output=True, text=True
    )
    return state.stdout.strip() == "exited"


# -- cleanup_containers --------------------------------------------------------------


class TestCleanupJobs:
    @pytest.fixture
    def jobs(self, db, mock_host):
        old = timezone.now() - timedelta(days=40)
        recent = timezone.now() - timedelta(days=2)
        made = dict(
            zip(
                ["old_done", "old_no_finish", "recent_done", "old_live", "old_running"],
                bulk_pending(mock_host, 5),
                strict=True,
            )
        )
        set_status(made["old_done"], "completed", completed_at=old)
        set_status(made["old_no_finish"], "cancelled", created_at=old)
        set_status(made["recent_done"], "failed", completed_at=recent)
        ContainerJob.objects.filter(pk=made["old_live"].pk).update(created_at=old)
        set_status(made["old_running"], "running", started_at=timezone.now(), created_at=old)
        ContainerExecution.objects.create(job=made["old_done"], attempt=1, status="completed")
        return made

    def test_days_deletes_old_terminal_jobs_with_their_executions(self, jobs):
        out = run("cleanup_containers", "--days", "30")
        assert "old jobs: deleted 2 (1 executions)" in out
        left = set(ContainerJob.objects.values_list("pk", flat=True))
        assert left == {jobs[k].pk for k in ("recent_done", "old_live", "old_running")}
        assert not ContainerExecution.objects.exists()

    def test_fewer_days_reach_recent_jobs(self, jobs):
        run("cleanup_containers", "--days", "1")
        assert not ContainerJob.objects.filter(pk=jobs["recent_done"].pk).exists()

    def test_dry_run_deletes_nothing(self, jobs):
        out = run("cleanup_containers", "--days", "30", "--dry-run")
        assert "old jobs: would delete 2 (1 executions)" in out
        assert ContainerJob.objects.count() == 5 and ContainerExecution.objects.count() == 1

    def test_force_cancels_stuck_jobs(self, transactional_db, lost, mock_host):
        stuck_running, stuck_pending, fresh_running, scheduled = bulk_pending(mock_host, 4)
        long_ago = timezone.now() - timedelta(days=2)
        set_status(
            stuck_running,
            "running",
            started_at=timezone.now() - timedelta(seconds=60 + 301),
            timeout_seconds=60,
            attempt_count=1,
            execution_id=f"mock-{stuck_running.pk.hex}-1-{time.time() - 361:.6f}",
        )
        set_status(stuck_pending, "pending", updated_at=long_ago)
        set_status(fresh_running, "running", started_at=timezone.now(), attempt_count=1)
        set_status(
            scheduled, "pending", updated_at=long_ago, run_after=timezone.now() + timedelta(days=1)
        )
        dry = run("cleanup_containers", "--force", "--dry-run")
        assert "stuck jobs: would request cancel for 2" in dry
        assert not ContainerJob.objects.filter(cancel_requested_at__isnull=False).exists()
        out = run("cleanup_containers", "--force")
        assert "stuck jobs: cancel requested for 2 (cancelled 2)" in out
        assert statuses([stuck_running, stuck_pending, fresh_running, scheduled]) == [
            "cancelled",
            "cancelled",
            "running",
            "pending",
        ]

    def test_negative_days_is_refused(self, db):
        with pytest.raises(CommandError, match="--days"):
            run("cleanup_containers", "--days", "-1")


@pytest.mark.docker
class TestCleanupContainers:
    """Real containers on the real engine, removed by the command.

    The command sees every managed container on the engine, and to this test's
    database all of them are orphans; so the listing is narrowed to the
    containers this test made, leaving other tests' containers alone.
    """

    @pytest.fixture
    def client(self, docker_host):
        return ExecutorFactory().get_executor(docker_host).client

    @pytest.fixture
    def ours(self, monkeypatch):
        made_here: set[str] = set()
        listing = DockerExecutor.list_managed_containers

        def only_ours(executor):
            return [c for c in listing(executor) if c["id"] in made_here]

        monkeypatch.setattr(DockerExecutor, "list_managed_containers", only_ours)
        return made_here

    @pytest.fixture
    def make_container(self, client, ours):
        made = []

        def make(labels, start=False):
            container = client.containers.create(
                TEST_IMAGE, ["sleep", "60"], name=f"cm-test-{uuid.uuid4().hex[:12]}", labels=labels
            )
            made.append(container)
            ours.add(container.id)
            if start:
                container.start()
            return container.id

        yield make
        for container in made:
            with suppress(Exception):  # already removed by the command
                container.remove(force=True)

    def exists(self, client, container_id) -> bool:
        # One request for this id: the high-level list inspects every container on the shared
        # engine, and fails when another test removes one in between.
        return bool(client.api.containers(all=True, filters={"id": container_id}))

    def labels(self, job_id, attempt):
        return {
            LABEL_MANAGED: "true",
            LABEL_INSTANCE: "default",
            LABEL_JOB_ID: str(job_id),
            LABEL_ATTEMPT: str(attempt),
        }

    def test_orphans_go_and_owned_containers_stay(self, client, make_container, docker_host):
        live = bulk_pending(docker_host, 1)[0]
        set_status(live, "running", started_at=timezone.now(), attempt_count=2)
        no_job = make_container(self.labels(uuid.uuid4(), 1))
        old_attempt = make_container(self.labels(live.pk, 1))
        current = make_container(self.labels(live.pk, 2), start=True)
        running_orphan = make_container(self.labels(uuid.uuid4(), 1), start=True)
        unlabelled = make_container({"container_manager.test": "true"})

        dry = run("cleanup_containers", "--dry-run")
        assert "orphaned containers: would remove 2, kept 1 running" in dry
        assert all(self.exists(client, c) for c in (no_job, old_attempt, current, running_orphan))

        out = run("cleanup_containers")
        assert "orphaned containers: removed 2, kept 1 running (--force removes them)" in out
        assert not self.exists(client, no_job) and not self.exists(client, old_attempt)
        assert self.exists(client, running_orphan)

        out = run("cleanup_containers", "--force")
        assert "orphaned containers: removed 1" in out
        assert not self.exists(client, running_orphan)
        assert self.exists(client, current) and self.exists(client, unlabelled)

    def test_container_of_a_terminal_job_goes(self, client, make_container, docker_host):
        done = bulk_pending(docker_host, 1)[0]
        set_status(done, "completed", completed_at=timezone.now(), attempt_count=1)
        container = make_container(self.labels(done.pk, 1))
        run("cleanup_containers")
        assert not self.exists(client, container)
        assert ContainerJob.objects.filter(pk=done.pk).exists()


# -- create_sample_data --------------------------------------------------------------


class TestCreateSampleData:
    def test_mock_creates_host_template_and_pending_jobs(self, transactional_db, local_settings):
        out = run("create_sample_data", "--jobs", "6")
        host = ExecutorHost.objects.get(name="sample-mock")
        assert host.executor_type == "mock" and host.executor_config == {"duration": 1.0}
        assert EnvironmentVariableTemplate.objects.filter(name="sample-env").exists()
        jobs = ContainerJob.objects.filter(docker_host=host)
        assert jobs.count() == 6
        assert set(jobs.values_list("status", flat=True)) == {"pending"}
        assert all(j.memory_limit and j.cpu_limit for j in jobs)
        assert len(set(jobs.values_list("command", flat=True))) == 6
        assert "run `manage.py process_container_jobs` to run them" in out

    def test_again_reuses_host_and_template(self, db):
        run("create_sample_data", "--jobs", "2")
        run("create_sample_data", "--jobs", "3")
        assert ExecutorHost.objects.filter(name="sample-mock").count() == 1
        assert ContainerJob.objects.count() == 5

    def test_docker_host_settings(self, db):
        run("create_sample_data", "--jobs", "1", "--executor-type", "docker")
        host = ExecutorHost.objects.get(name="sample-docker")
        assert host.connection_string == "unix:///var/run/docker.sock"
        assert host.executor_type == "docker" and host.auto_pull_images is False

    def test_run_waits_for_the_jobs(self, sqlite_file):
        result = manage(sqlite_file, "create_sample_data", "--jobs", "3", "--run")
        assert result.returncode == 0, result.stderr
        assert "sample-1-echo" in result.stdout and "seconds" in result.stdout
        assert sql(sqlite_file, "SELECT DISTINCT status FROM " + JOBS) == [("completed",)]


# -- demo ------------------------------------------------------------------------------


class TestDemo:
    """The demo as ``make demo`` runs it: its own process, a fresh SQLite file after migrate."""

    def test_falls_back_to_the_mock(self, sqlite_file):
        result = manage(sqlite_file, "demo", "--jobs-timeout", "60", CM_TEST_IMAGE="cm-no:such")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "notice:" in result.stdout and "mock executor" in result.stdout
        assert "every job reached its expected status" in result.stdout
        assert sql(sqlite_file, DEMO_JOBS_SQL) == [("demo-mock", "demo-hello-world", "completed")]

    @pytest.mark.docker
    def test_runs_on_docker(self, sqlite_file, docker_ready):
        result = manage(sqlite_file, "demo", "--jobs-timeout", "90", CM_TEST_IMAGE=docker_ready)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "notice:" not in result.stdout
        assert "every job reached its expected status" in result.stdout
        assert "{'answer': 42, 'ok': True}" in result.stdout
        outcomes = sql(
            sqlite_file,
            f"SELECT name, status, exit_code, clean_output FROM {JOBS} ORDER BY created_at",
        )
        assert outcomes == [
            ("demo-hello-world", "completed", 0, "Hello, world!\n"),
            ("demo-stdout-stderr", "completed", 0, "to stdout\n"),
            ("demo-json-result", "completed", 0, '{"answer": 42, "ok": true}\n'),
            ("demo-non-zero-exit", "failed", 3, "about to fail\n"),
            ("demo-timeout", "timeout", 137, ""),
            (
                "demo-template-env",
                "completed",
                0,
                "Hello from the demo-env template, TARGET=world\n",
            ),
        ]

    def test_unfinished_jobs_fail_the_demo(self, sqlite_file):
        result = manage(sqlite_file, "demo", "--jobs-timeout", "0.1", CM_TEST_IMAGE="cm-no:such")
        assert result.returncode == 1
        assert "not every job finished within 0.1s" in result.stderr
