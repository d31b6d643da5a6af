"""Workflows with edge conditions under faults, on PostgreSQL: every node ends as its rules say.

Worker processes (``tests.workflow_fault_worker``) SIGKILL themselves at seeded points of
releases, skips, final moves and arrays' ends while two of them run and sweep; all messages of a
workflow lost while two sweepers run at once. Each node ends in the status its edges give,
each container is launched once, each release and skip happens once.
"""

import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from container_manager import dispatch
from container_manager.dispatch.base import DispatchBackend
from container_manager.engine import steps
from container_manager.models import (
    ArrayCounts,
    ContainerExecution,
    ContainerJob,
    JobDependency,
    JobTally,
    Workflow,
)
from tests.conftest import slots_held, wait_for
from tests.support import race
from tests.workflow_fault_worker import read_ledger

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

REPOSITORY = Path(__file__).resolve().parent.parent
ARRAY = 12
#: Kill points of the workers, one per worker started, in this order (then workers that live).
KILLS = ["release", "skip", "final", "array_end", "release", "skip", "final", "array_end"]


def node(host, *depends_on, **fields):
    """A node on ``host``; each of ``depends_on`` a name, or ``(name, condition)``."""
    edges = [d if isinstance(d, str) else {"node": d[0], "on": d[1]} for d in depends_on]
    job = {"docker_image": "x", "command": "true", "host": host.name}
    return {**job, "depends_on": edges, **fields}


def faulty(number, ok, failing):
    """A workflow with a failing node, failure and always handlers, skipped chains, arrays.

    Returns the document and how each node ends by the edge rules.
    """
    nodes = {
        "extract": (node(ok), "completed"),
        "load": (node(failing, "extract"), "failed"),
        "report": (node(ok, "load"), "skipped"),
        "publish": (node(ok, "report"), "skipped"),
        "page": (node(ok, ("load", "failure")), "completed"),
        "tidy": (node(ok, ("publish", "always")), "completed"),
        "retry_hint": (node(ok, ("extract", "failure")), "skipped"),
        "after_hint": (node(ok, "retry_hint"), "skipped"),
        "shards": (node(ok, "extract", array_size=ARRAY), "completed"),
        "merge": (node(ok, "shards", "page"), "completed"),
        "unused": (node(ok, "report", array_size=ARRAY), "skipped"),
        "close": (
            node(ok, ("merge", "always"), ("unused", "always"), ("tidy", "always")), "completed"
        ),
    }  # fmt: skip
    spec = {"name": f"faults-{number}", "nodes": {name: n for name, (n, _) in nodes.items()}}
    return spec, {name: status for name, (_, status) in nodes.items()}


def test_workers_killed_during_releases_skips_and_final_moves(
    postgres_only, make_mock_host, tmp_path
):
    ok = make_mock_host(duration=0.2, max_concurrent_jobs=8)
    failing = make_mock_host(duration=0.2, exit_code=1, max_concurrent_jobs=8)
    ledger = str(tmp_path / "launches")
    rng = random.Random(29)
    plans = [f"{point}:{rng.randint(1, 2)}" for point in KILLS]
    pool = Workers(ledger)
    submitted, killed = [], []
    try:
        pool.start(plans.pop(0))
        pool.start(plans.pop(0))
        # At least one workflow per planned kill; more (up to three per kill) while a planned
        # point has not fired yet, since which worker takes a step is up to the scheduler.
        while len(submitted) < len(KILLS) or (
            _kinds(pool, killed) != set(KILLS) and len(submitted) < 3 * len(KILLS)
        ):
            with dispatch.use_backend(Dropped({})):  # the workers' sweeps launch them
                submitted.append(Workflow.objects.submit(faulty(len(submitted), ok, failing)[0]))
            # Each wave runs until one worker was killed or its workflow ended.
            wait_for(lambda: pool.reap(killed) or _ended(submitted[-1]), timeout=60, interval=0.1)
            while pool.alive() < 2:
                pool.start(plans.pop(0) if plans else "")
        wait_for(lambda: all(_ended(w) for w in submitted), timeout=120, interval=0.2)
        pool.reap(killed)
    finally:
        pool.stop()
    launches = Counter(job_id for job_id, _, _ in read_ledger(ledger))
    # Every kind of point killed a worker (each worker's point is random, its wave too).
    assert _kinds(pool, killed) == set(KILLS), killed

    for workflow in submitted:
        assert_ended_by_the_rules(workflow, faulty(0, ok, failing)[1], launches)
    assert slots_held(ok) == 0 and slots_held(failing) == 0
    assert_each_final_move_counted_once()


def test_all_messages_lost_two_sweepers_at_once_finish_the_workflow(
    postgres_only, settings, make_mock_host
):
    settings.CONTAINER_MANAGER = {"DISPATCH": {"BACKEND": "tests.test_workflow_faults.PerThread"}}
    ok, failing = make_mock_host(), make_mock_host(exit_code=1)
    spec, expected = faulty(0, ok, failing)
    workflow = Workflow.objects.submit(spec)
    later = timezone.now()
    for _ in range(30):
        later += timedelta(seconds=60)
        _two_sweepers(later)
        if _ended(workflow):
            break
    launches = Counter(str(pk) for pk in ContainerExecution.objects.values_list("job", flat=True))
    assert_ended_by_the_rules(workflow, expected, launches)
    assert slots_held(ok) == 0 and slots_held(failing) == 0
    assert_each_final_move_counted_once()


def assert_ended_by_the_rules(workflow, expected, launches):
    """Each node as ``expected``; each ran job launched once, each skip with no launch at all."""
    jobs = {job.workflow_node: job for job in workflow.jobs.all()}
    assert {name: job.status for name, job in jobs.items()} == expected
    assert workflow.status == "failed"
    for name, job in jobs.items():
        ran = expected[name] in ("completed", "failed") and not job.is_array_parent
        assert launches.get(str(job.pk), 0) == int(ran), name
        assert job.attempt_count == int(ran), name
        assert job.containerexecution_set.count() == int(ran), name
        if expected[name] == "skipped":
            assert job.started_at is None and job.completed_at is not None, name
            assert job.last_error.startswith("dependency "), name
    for link in JobDependency.objects.filter(
        job__workflow=workflow, job__status="completed", job__array_parent__isnull=True
    ).select_related("job", "depends_on"):
        if link.job.started_at:  # released after what it waited for had ended
            assert link.job.started_at >= link.depends_on.completed_at
    shards, unused = jobs["shards"], jobs["unused"]
    counts = ArrayCounts.objects.get(parent=shards)
    assert (counts.completed, counts.finished) == (ARRAY, ARRAY)
    children = Counter(shards.array_children.values_list("status", flat=True))
    assert children == {"completed": ARRAY}
    for child in shards.array_children.all():
        assert launches.get(str(child.pk), 0) == 1 and child.attempt_count == 1
    assert set(unused.array_children.values_list("status", "attempt_count")) == {("cancelled", 0)}
    never = unused.array_children.values_list("pk", flat=True)
    assert not any(launches.get(str(pk)) for pk in never)


def assert_each_final_move_counted_once():
    """The metrics' tallies, written by the compare-and-set of a final move, match the rows."""
    statuses = Counter(
        ContainerJob.objects.exclude(
            array_size__isnull=False, array_parent__isnull=True
        ).values_list("status", flat=True)
    )
    parents = Counter(
        ContainerJob.objects.filter(
            array_size__isnull=False, array_parent__isnull=True
        ).values_list("status", flat=True)
    )
    tallied = Counter()
    for kind, jobs in JobTally.objects.filter(bucket=0).values_list("kind", "jobs"):
        tallied[kind] += jobs
    assert +tallied == statuses + parents


class Dropped(DispatchBackend):
    """Loses every message: what is submitted under it waits for a sweep."""

    def send(self, step, job_id, delay):
        pass


class PerThread(DispatchBackend):
    """Keeps each thread's messages apart, so each sweeper runs only what its sweep found."""

    box = threading.local()

    def send(self, step, job_id, delay):
        self.box.__dict__.setdefault("messages", []).append((step, job_id))


def _two_sweepers(now):
    """Two threads at once: each sweeps, runs the steps its sweep sent, loses what they send."""

    def sweeper():
        PerThread.box.messages = []
        steps.sweep(now=now)
        found, PerThread.box.messages = PerThread.box.messages, []
        for step, job_id in found:
            steps.run_step(step, job_id)

    race(sweeper, 2)


def _kinds(pool, killed):
    """The kinds of kill point (``release``, ``skip``, ``final``…) that killed a worker so far."""
    return {pool.plans[pid].partition(":")[0] for pid in killed}


def _ended(workflow):
    return not workflow.jobs.filter(status__in=("pending", "launching", "running")).exists() and (
        not ContainerJob.objects.filter(
            array_parent__workflow=workflow, status__in=("pending", "launching", "running")
        ).exists()
    )


class Workers:
    """``tests.workflow_fault_worker`` processes on the test database, started and reaped."""

    def __init__(self, ledger):
        params = connection.settings_dict
        url = (
            f"postgres://{params['USER']}:{params['PASSWORD']}@{params['HOST'] or '127.0.0.1'}"
            f":{params['PORT'] or 5432}/{params['NAME']}"
        )
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "functions.settings",
            "DATABASE_URL": url,
            "CM_DISPATCH_BACKEND": "local",
            "CM_LOCAL_WORKERS": "4",
            "CM_SWEEP_INTERVAL": "0",
            "CM_LOG_LEVEL": "CRITICAL",
            "CM_FAULT_LEDGER": ledger,
        }
        self.processes = []
        self.plans = {}

    def start(self, kill):
        """Start a worker that SIGKILLs itself at ``kill`` (``<point>:<n>``; empty: never)."""
        env = {**self.env, "CM_FAULT_KILL": kill}
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.workflow_fault_worker"],
            cwd=REPOSITORY, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.processes.append(process)
        self.plans[process.pid] = kill

    def alive(self):
        return sum(1 for process in self.processes if process.poll() is None)

    def reap(self, killed):
        """Add the workers that died of SIGKILL since the last call to ``killed``; any new?"""
        before = len(killed)
        for process in self.processes:
            if process.poll() == -signal.SIGKILL and process.pid not in killed:
                killed.append(process.pid)
        dead = [p for p in self.processes if p.poll() not in (None, -signal.SIGKILL)]
        assert not dead, f"a worker exited with {dead[0].returncode}"
        return len(killed) > before

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
