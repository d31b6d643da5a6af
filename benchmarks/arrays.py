"""A 1,000-child array against 1,000 separate create_job calls, on the mock executor.

Per round: the submit time of arrays of each ``--submit-sizes`` (not run: due in a day), then
both shapes run to the end, their order alternated; the load average is recorded with each
figure. The medians and the run ratio (separate / array) go to arrays_<db><label>.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    fresh_mock_host,
    fresh_sqlite_url,
    server_cpu_seconds,
    setup_django,
    write_result,
)


def main() -> None:
    """Parse flags, run both shapes at each slot count, write results/arrays_<db>.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--database-url", help="required for --db postgres")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--slots", type=int, nargs="+", default=[1000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--submit-sizes", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--sweep-interval", type=float, default=30, help="the local default")
    parser.add_argument("--shapes", nargs="+", default=["array", "separate"])
    parser.add_argument("--label", default="", help="suffix of the result file")
    args = parser.parse_args()
    url = args.database_url if args.db == "postgres" else fresh_sqlite_url("cm-arrays-")
    setup_django(url, args.workers, sweep_interval=args.sweep_interval)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    runs, submits = [], []
    for number in range(args.rounds):
        for size in args.submit_sizes:
            submits.append({"round": number, **submit_only(size)})
            print(submits[-1])
        shapes = args.shapes if number % 2 == 0 else args.shapes[::-1]
        for slots in args.slots:
            for shape in shapes:
                runs.append({"round": number, **measure(shape, args.n, slots)})
                print(runs[-1])
    config = {"db": args.db, "workers": args.workers, "sweep_interval": args.sweep_interval}
    summary = summarise(runs, submits)
    print(summary)
    result = {**config, "summary": summary, "runs": runs, "submits": submits}
    write_result(f"arrays_{args.db}{args.label}", result)


def submit_only(size: int) -> dict[str, Any]:
    """Submit an array of ``size`` children due in a day (nothing runs); its time and statements."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from container_manager.models import ContainerJob

    host = fresh_mock_host(1)
    queries = [0]

    def count(execute, sql, params, many, context):
        queries[0] += 1
        return execute(sql, params, many, context)

    later = timezone.now() + timedelta(days=1)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    with connection.execute_wrapper(count):
        ContainerJob.objects.create_job(
            image="x", docker_host=host, array_size=size, run_after=later
        )
    seconds = time.perf_counter() - began
    return {
        "size": size, "submit_seconds": round(seconds, 3), "statements": queries[0],
        "load": round(load, 1),
    }  # fmt: skip


def summarise(runs: list[dict[str, Any]], submits: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per shape and slot count, the run ratio per round and its median, submit medians."""
    summary: dict[str, Any] = {"submit_seconds_median": {}, "run": {}}
    for size in sorted({s["size"] for s in submits}):
        times = [s["submit_seconds"] for s in submits if s["size"] == size]
        summary["submit_seconds_median"][size] = round(statistics.median(times), 3)
    for slots in sorted({r["host_slots"] for r in runs}):
        done = {
            shape: {r["round"]: r["seconds_until_all_done"] for r in runs
                    if r["shape"] == shape and r["host_slots"] == slots}
            for shape in ("array", "separate")
        }  # fmt: skip
        ratios = [
            round(done["separate"][n] / done["array"][n], 2)
            for n in done["array"]
            if n in done["separate"]
        ]
        summary["run"][slots] = {
            "array_median_s": round(statistics.median(done["array"].values()), 2),
            "separate_median_s": round(statistics.median(done["separate"].values()), 2),
            "ratio_per_round": ratios,
            "ratio_median": round(statistics.median(ratios), 2) if ratios else None,
            "load": [r["load"] for r in runs if r["host_slots"] == slots],
        }
    return summary


def measure(shape: str, n: int, slots: int) -> dict[str, Any]:
    """Submit ``n`` jobs as one array or one by one; wait until none is live."""
    from django.db import connection

    from container_manager import dispatch
    from container_manager.models import ContainerJob

    host = fresh_mock_host(slots)
    backend = dispatch.get_backend()
    queries = [0]

    def count(execute, sql, params, many, context):
        queries[0] += 1
        return execute(sql, params, many, context)

    load = os.getloadavg()[0]
    cpu_before, server_before = time.process_time(), server_cpu_seconds()
    began, began_at = time.perf_counter(), time.time()
    with connection.execute_wrapper(count):
        if shape == "array":
            ContainerJob.objects.create_job(image="x", docker_host=host, array_size=n)
        else:
            for _ in range(n):
                ContainerJob.objects.create_job(image="x", docker_host=host)
    submitted = time.perf_counter() - began
    while ContainerJob.objects.live().exists():
        backend.wait_idle(timeout=1)
    done = time.perf_counter() - began
    cpu = time.process_time() - cpu_before
    server_cpu = server_cpu_seconds() - server_before
    # Separate jobs only, so that the baseline runs on code without arrays too.
    jobs = ContainerJob.objects.filter(status="completed")
    if shape == "array":
        jobs = jobs.filter(array_parent__isnull=False)
    return {
        "shape": shape,
        "jobs": n,
        "host_slots": slots,
        "submit_seconds": round(submitted, 3),
        "submit_queries": queries[0],
        "seconds_until_all_done": round(done, 3),
        "cpu_seconds": round(cpu, 2),
        "server_cpu_seconds": round(server_cpu, 2),
        "completed": jobs.count(),
        "done_after_submit_s": _spread(jobs, began_at),
        "load": [round(load, 1), round(os.getloadavg()[0], 1)],
    }


def _spread(jobs: Any, began_at: float) -> dict[str, float]:
    """When the jobs were stored as done, in seconds after the submit began: p50, p90, max."""
    ends = sorted(
        (row.timestamp() - began_at for row in jobs.values_list("updated_at", flat=True)),
    )
    return {
        name: round(ends[int(fraction * (len(ends) - 1))], 2)
        for name, fraction in (("p50", 0.5), ("p90", 0.9), ("max", 1.0))
    }


if __name__ == "__main__":
    main()
