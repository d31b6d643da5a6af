"""Crashed work resuming: a launch killed before its container existed, a worker restarted.

With this checkout's ``manage.py process_container_jobs`` on the Docker engine (SQLite file,
``--poll-interval`` sweeps): (1) launchers die after taking a slot while the worker lives on:
seconds from the launch's begin until its container is accepted and until the job is done;
(2) the worker is SIGKILLed while jobs run (each one's next check due after its run ends) and
launches are in flight (before any container); the running jobs' containers end, then a worker
starts: seconds from its start until each job is done. Writes results/<name>.json; run it in
an older checkout for the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DOCKER_URL, IMAGE, REPO, setup_django, write_result  # noqa: E402

TERMINAL = {"completed", "failed", "timeout", "cancelled"}


def main() -> None:
    """Parse flags, run both faults, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=3, help="jobs of each kind per fault")
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--run-seconds", type=int, default=20, help="run of the restart's jobs")
    parser.add_argument("--docker-events", action="store_true", help="follow the engine's events")
    parser.add_argument("--name", default="resume", help="results/<name>.json")
    args = parser.parse_args()
    database = Path(tempfile.mkdtemp(prefix="cm-resume-")) / "db.sqlite3"
    setup_django(f"sqlite:///{database}", workers=4)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    result = {"args": vars(args), "loadavg_before": _loadavg()}
    result["killed_launch"] = _killed_launch(database, args)
    result["restart"] = _restart(database, args)
    result["loadavg_after"] = _loadavg()
    print(write_result(args.name, result).read_text())


def _killed_launch(database: Path, args: Any) -> dict[str, Any]:
    """Launchers die after taking their slots; the worker lives on and sweeps."""
    worker = _worker(database, args)
    try:
        jobs, began = _launches_killed(_host("killed"), args.jobs)
        rows = _wait(jobs)
    finally:
        _stop(worker, signal.SIGTERM)
    return {
        "accepted_after_s": [round(_accepted(row) - began, 2) for row in rows],
        "done_after_s": [round(row.updated_at.timestamp() - began, 2) for row in rows],
        "statuses": [row.status for row in rows],
    }


def _restart(database: Path, args: Any) -> dict[str, Any]:
    """A worker killed while jobs run and launch; their containers end; a new worker starts."""
    host = _host("restart")
    worker = _worker(database, args)
    running = _submit(host, f"sleep {args.run_seconds}", args.jobs)
    _wait(running, {"running"})
    _wait_checks_after_the_end(running, args.run_seconds)
    _stop(worker, signal.SIGKILL)
    launching, _ = _launches_killed(host, args.jobs)
    _wait_exited(_rows(running))
    restarted = time.time()
    worker = _worker(database, args)
    try:
        done = {"running": _wait(running), "launching": _wait(launching)}
    finally:
        _stop(worker, signal.SIGTERM)
    return {
        f"{kind}_done_after_s": [round(row.updated_at.timestamp() - restarted, 2) for row in rows]
        for kind, rows in done.items()
    } | {"statuses": sorted({row.status for rows in done.values() for row in rows})}


def _worker(database: Path, args: Any) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "CM_SWEEP_INTERVAL": "0",
        "CM_DISPATCH_OPTIONS": json.dumps({"DOCKER_EVENTS": args.docker_events}),
    }
    command = ["manage.py", "process_container_jobs", "--poll-interval", str(args.poll_interval)]
    worker = subprocess.Popen(
        [sys.executable, *command], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    worker.stdout.readline()  # "processing jobs with …": started (and, if it does, resumed)
    return worker


def _stop(worker: subprocess.Popen, signum: int) -> None:
    worker.send_signal(signum)
    worker.wait(timeout=60)


def _host(name: str) -> Any:
    from container_manager.models import ExecutorHost

    return ExecutorHost.objects.create(
        name=name, executor_type="docker", connection_string=DOCKER_URL,
        auto_pull_images=False, max_concurrent_jobs=50,
    )  # fmt: skip


def _submit(host: Any, command: str, n: int) -> list[Any]:
    """Jobs whose launch message this process drops: the worker's sweep launches them."""
    from container_manager import dispatch
    from container_manager.dispatch.base import DispatchBackend
    from container_manager.models import ContainerJob

    class Dropped(DispatchBackend):
        def send(self, step: str, job_id: str, delay: float) -> None:
            pass

    with dispatch.use_backend(Dropped({})):
        return [
            ContainerJob.objects.create_job(image=IMAGE, command=command, docker_host=host)
            for _ in range(n)
        ]


def _launches_killed(host: Any, n: int) -> tuple[list[Any], float]:
    """``n`` launches that took their slots and whose launchers died: ``(jobs, began)``."""
    from django.utils import timezone

    from container_manager.conf import setting
    from container_manager.engine import transitions

    jobs = _submit(host, "echo resumed", n)
    began = time.time()
    lease = timezone.now() + timedelta(seconds=setting("LAUNCH_LEASE_SECONDS"))
    for job in jobs:
        assert transitions.begin_launch(job, lease)
    return jobs, began


def _rows(jobs: list[Any]) -> list[Any]:
    from container_manager.models import ContainerJob

    return list(ContainerJob.objects.filter(pk__in=[job.pk for job in jobs]))


def _wait(jobs: list[Any], statuses: set[str] = TERMINAL, limit: float = 300.0) -> list[Any]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        rows = _rows(jobs)
        if all(row.status in statuses for row in rows):
            return rows
        time.sleep(0.05)
    raise SystemExit(f"jobs not {statuses} within {limit}s")


def _wait_checks_after_the_end(jobs: list[Any], run_seconds: int) -> None:
    """Until every job's next check is due after its run ends (the checks spread out)."""
    end = timedelta(seconds=run_seconds)
    while not all(row.next_check_at > row.started_at + end for row in _rows(jobs)):
        time.sleep(0.05)


def _wait_exited(rows: list[Any]) -> None:
    import docker

    client = docker.DockerClient(base_url=DOCKER_URL)
    for row in rows:
        client.api.wait(row.execution_id, timeout=120)


def _accepted(row: Any) -> float:
    from container_manager.models import ContainerExecution

    execution = ContainerExecution.objects.get(job=row, attempt=row.attempt_count)
    return execution.accepted_at.timestamp()


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


if __name__ == "__main__":
    main()
