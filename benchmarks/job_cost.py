"""Client CPU and statements per mock job: submit, launch and check run inline, one job at a time.

No dispatch and no worker threads: the steps are called directly (``run_step``), so the
figure is the client's own cost per job (Python and driver), not the database's.
``--profile`` prints the cProfile of the measured jobs instead of writing a result.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import setup_django, write_result  # noqa: E402


def main() -> None:
    """Run ``--warm`` jobs, then ``--n`` measured jobs; print ms of CPU and statements a job."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="", help="PostgreSQL URL; SQLite if empty")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--label", default="", help="a name for this run in the result file")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(os.environ.get('TMPDIR', '/tmp')) / 'job_cost.db'}"
    setup_django(url, workers=1)
    from django.core.management import call_command

    os.environ["CM_DISPATCH_BACKEND"] = "immediate"
    call_command("migrate", verbosity=0, interactive=False)
    host = _host()
    _jobs(host, args.warm)
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(_jobs, host, args.n)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        return
    figures = _measure(host, args.n)
    figures.update(label=args.label, database="postgresql" if args.database_url else "sqlite")
    print(figures)
    write_result(f"job_cost_{figures['database']}{'_' + args.label if args.label else ''}", figures)


def _host() -> Any:
    from django.conf import settings

    from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost

    # No message is sent anywhere: the script plays the transport.
    settings.CONTAINER_MANAGER["DISPATCH"] = {"BACKEND": "tests.backends.RecordingBackend"}
    ContainerExecution.objects.all().delete()
    ContainerJob.objects.all().delete()
    ExecutorHost.objects.filter(name="bench-job-cost").delete()
    return ExecutorHost.objects.create(
        name="bench-job-cost", executor_type="mock", connection_string="mock://",
        executor_config={"duration": 0}, max_concurrent_jobs=1000,
    )  # fmt: skip


def _jobs(host: Any, n: int) -> None:
    from container_manager.engine import steps
    from container_manager.models import ContainerJob

    for _ in range(n):
        job = ContainerJob.objects.create_job(image="x", command="true", docker_host=host)
        assert steps.run_step("launch", job.pk) == "launched"
        assert steps.run_step("check", job.pk) == "completed"


def _measure(host: Any, n: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cpu, wall = time.process_time(), time.perf_counter()
    _jobs(host, n)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    with CaptureQueriesContext(connection) as captured:
        _jobs(host, 10)
    return {
        "n": n,
        "cpu_ms_per_job": round(cpu * 1000 / n, 2),
        "wall_ms_per_job": round(wall * 1000 / n, 2),
        "statements_per_job": len(captured.captured_queries) / 10,
        "load": os.getloadavg()[0],
    }


if __name__ == "__main__":
    main()
