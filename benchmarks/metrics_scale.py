"""The ``cm/metrics/`` scrape over a large job table on PostgreSQL: its time and its queries.

Rerun (3 minutes at the defaults at a load average of 17–21, most of it filling the million
rows)::

    .venv-bench/bin/python benchmarks/metrics_scale.py

Job rows on four hosts, created evenly over the last 48 h (twice the default
``METRICS_WINDOW_HOURS``, so half of them fall in the window): 1 % pending, 1 % running, 3 %
failed, the rest completed, each started 0–29 s after its submit and finished 0–599 s after
its start. One template row goes through the ORM, the rest is copied from it by
``INSERT … SELECT … generate_series`` and analysed. At each size the whole view
(``web.metrics.metrics_view``, behind an auth that accepts the request) is timed ``--repeat``
times; the first scrape is reported apart, the median of the others is the figure. The
machine is shared with other work: the load average is recorded with each size. Database
``cm_bench_metrics``; result ``results/metrics_scale.json``.
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
from _common import copy_rows, setup_django_migrated, write_result  # noqa: E402

SERVER = "postgres://container_manager:container_manager@127.0.0.1:5432"
DATABASE = "cm_bench_metrics"


def main() -> None:
    """Parse flags, fill the table at each size, time the scrape, write the result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default=SERVER, help="PostgreSQL URL without a database")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    _create_database(args.server)
    setup_django_migrated(f"{args.server}/{DATABASE}")
    from django.conf import settings

    settings.CONTAINER_MANAGER = {
        **(getattr(settings, "CONTAINER_MANAGER", {}) or {}),
        "METRICS_AUTH": "metrics_scale.accept",
    }
    runs = [measure(size, args.repeat) for size in args.sizes]
    base = runs[0]["scrape_ms_median"]
    for run in runs:
        run["over_first_size"] = round(run["scrape_ms_median"] / base, 2)
    write_result("metrics_scale", {"loaded": True, "repeat": args.repeat, "runs": runs})


def accept(request: Any) -> None:
    """The ``METRICS_AUTH`` of this benchmark: every request may scrape."""


def measure(size: int, repeat: int) -> dict[str, Any]:
    """Fill ``size`` rows, then scrape ``repeat`` times: milliseconds and queries."""
    from django.db import connection
    from django.test import RequestFactory
    from django.test.utils import CaptureQueriesContext

    from container_manager.web.metrics import metrics_view

    began = time.perf_counter()
    _fill(size)
    fill_seconds = time.perf_counter() - began
    load_before = os.getloadavg()[0]
    timings, queries = [], []
    for _ in range(repeat):
        request = RequestFactory().get("/cm/metrics/")
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            response = metrics_view(request)
            timings.append(time.perf_counter() - began)
        assert response.status_code == 200, response.content
        queries.append(len(captured.captured_queries))
    result = {
        "rows": size,
        "fill_seconds": round(fill_seconds, 1),
        "scrape_ms_first": round(timings[0] * 1000, 1),
        "scrape_ms_median": round(statistics.median(timings[1:] or timings) * 1000, 1),
        "scrape_ms_all": [round(t * 1000, 1) for t in timings],
        "queries": sorted(set(queries)),
        "response_bytes": len(response.content),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    print(result, flush=True)  # noqa: T201 - progress of a benchmark run
    return result


def _fill(size: int) -> None:
    """Four hosts; one template job through the ORM, ``size - 1`` copies by generate_series."""
    from django.db import connection

    from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost

    table = ContainerJob._meta.db_table
    ContainerExecution.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table} CASCADE")
    ExecutorHost.objects.all().delete()
    hosts = [
        ExecutorHost.objects.create(
            name=f"bench-metrics-{index}",
            executor_type="mock",
            connection_string="mock://",
            max_concurrent_jobs=10,
        )  # fmt: skip
        for index in range(4)
    ]
    template = ContainerJob(docker_host=hosts[0], docker_image="x", command="true")
    template.status = "completed"
    ContainerJob.objects.bulk_create([template])  # no signal: nothing is dispatched
    created = f"now() - make_interval(secs => i * {48 * 3600 / size})"
    started = f"{created} + make_interval(secs => i %% 30)"
    special = {
        "id": "gen_random_uuid()",
        "docker_host_id": f"(ARRAY[{', '.join(str(h.pk) for h in hosts)}])[1 + i %% 4]",
        "status": (
            "CASE WHEN i %% 100 = 0 THEN 'pending' WHEN i %% 100 = 1 THEN 'running' "
            "WHEN i %% 100 < 5 THEN 'failed' ELSE 'completed' END"
        ),
        "execution_id": "CASE WHEN i %% 100 = 0 THEN '' ELSE 'bench-' || i END",
        "created_at": created,
        "started_at": f"CASE WHEN i %% 100 = 0 THEN NULL ELSE {started} END",
        "completed_at": (
            f"CASE WHEN i %% 100 IN (0, 1) THEN NULL "
            f"ELSE {started} + make_interval(secs => i %% 600) END"
        ),
        "attempt_count": "CASE WHEN i %% 100 = 0 THEN 0 ELSE 1 END",
    }
    copy_rows(ContainerJob, template, special, size - 1)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


def _create_database(server: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{DATABASE}"')


if __name__ == "__main__":
    main()
