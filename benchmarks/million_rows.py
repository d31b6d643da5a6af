"""The admin job list and the metrics scrape at 10k and 1M jobs on PostgreSQL: time and queries.

Seeds N jobs with one ``INSERT … SELECT generate_series`` (statuses, hosts, times over 60 days),
then times the changelist (page 1, a status filter, a search) and ``cm/metrics/``.
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
from _common import IMAGE, setup_django, write_result  # noqa: E402

_TOKEN = "million-rows-bench"
_HOSTS = 4
_DAYS = 60
#: What is timed: a name and the URL's query string (the admin list) or None (the scrape).
CASES = (
    ("list", "admin", ""),
    ("list_failed", "admin", "status__exact=failed"),
    ("list_search", "admin", "q=job-4242"),
    ("scrape", "metrics", ""),
)


def main() -> None:
    """Parse flags, seed each size (unless ``--reuse``), time every case, write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL URL")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--label", default="run", help="names the result file")
    parser.add_argument("--reuse", action="store_true", help="time the rows already there")
    args = parser.parse_args()
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    os.environ["CM_API_TOKENS"] = _TOKEN
    setup_django(args.database_url, workers=1)
    from django.core.management import call_command
    from django.test.utils import override_settings

    # The admin's pages name static files: plain names, no collectstatic manifest needed.
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    override_settings(STORAGES={"default": plain, "staticfiles": plain}).enable()

    call_command("migrate", verbosity=0, interactive=False)
    runs = []
    for size in args.sizes:
        seed = None if args.reuse else fill(size)
        runs.append({"rows": size, "seed": seed, "load": _load(), **measure(args.repeat)})
        print(_line(args.label, runs[-1]), flush=True)  # noqa: T201 - a benchmark's output
    write_result(f"million_rows_{args.label}", {"runs": runs})


def measure(repeat: int) -> dict[str, Any]:
    """Median, all timings (ms) and query count of each case, ``repeat`` times after a warm-up."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = _admin_client()
    found: dict[str, Any] = {}
    for name, kind, query in CASES:
        url = "/admin/container_manager/containerjob/" if kind == "admin" else "/cm/metrics/"
        headers = {"Authorization": f"Bearer {_TOKEN}"} if kind == "metrics" else {}
        getter = client if kind == "admin" else Client()
        getter.get(
            f"{url}?{query}", headers=headers, secure=True
        )  # warm-up: caches, plans, imports
        timings, queries = [], 0
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                response = getter.get(f"{url}?{query}", headers=headers, secure=True)
                timings.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (name, response.status_code)
            queries = len(captured.captured_queries)
        found[name] = {
            "ms_median": round(statistics.median(timings), 1),
            "ms_all": [round(t, 1) for t in timings],
            "queries": queries,
        }
    return found


def fill(size: int) -> dict[str, Any]:
    """Replace every job with ``size`` generated ones; returns the seconds spent.

    The newest 0.05 % are live (pending or running); the others completed (85 %), failed
    (10 %), timed out (2 %) or were cancelled (3 %), with a wait of 0–60 s and a run of
    0–2 h, on four hosts, created evenly over 60 days. Pre-aggregated figures, where the
    code has them, are rebuilt from the rows afterwards (timed apart).
    """
    from django.db import connection

    from container_manager.models import ContainerJob, ExecutorHost

    began = time.perf_counter()
    table = ContainerJob._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table} CASCADE")
    ExecutorHost.objects.filter(name__startswith="bench-million").delete()
    hosts = [
        ExecutorHost.objects.create(
            name=f"bench-million-{n}", executor_type="mock", host_type="unix",
            connection_string="mock://", max_concurrent_jobs=10_000,
        ).pk
        for n in range(_HOSTS)
    ]  # fmt: skip
    template = ContainerJob(docker_host_id=hosts[0], docker_image=IMAGE, command="true")
    template.status = "completed"
    ContainerJob.objects.bulk_create([template])  # no signal: nothing is dispatched
    live = max(size // 2000, 1)
    status = (
        f"CASE WHEN i <= {live} THEN (CASE WHEN i %% 2 = 0 THEN 'running' ELSE 'pending' END) "
        "WHEN i %% 100 < 85 THEN 'completed' WHEN i %% 100 < 95 THEN 'failed' "
        "WHEN i %% 100 < 97 THEN 'timeout' ELSE 'cancelled' END"
    )
    created = f"now() - make_interval(secs => i * {_DAYS * 86400.0 / size})"
    started = f"{created} + make_interval(secs => (i * 7) %% 61)"
    ran = "make_interval(secs => (i::bigint * 7919) %% 7200)"
    special = {
        "id": "gen_random_uuid()",
        "docker_host_id": f"(ARRAY{hosts})[1 + i %% {_HOSTS}]",
        "name": f"'job-' || (i %% {max(size // 10, 1)})",
        "docker_image": "'busybox:1.' || (i %% 10)",
        "status": status,
        "execution_id": "'bench-' || i",
        "created_at": created,
        "updated_at": created,
        "attempt_count": "1",
        "started_at": f"CASE WHEN i <= {live} AND i %% 2 = 1 THEN NULL "
        f"WHEN i > {live} AND i %% 100 >= 98 THEN NULL ELSE {started} END",
        "completed_at": f"CASE WHEN i <= {live} THEN NULL ELSE {started} + {ran} END",
        "exit_code": f"CASE WHEN i <= {live} THEN NULL WHEN i %% 100 < 85 THEN 0 ELSE 1 END",
        "estimated_cost": f"CASE WHEN i > {live} AND i %% 100 < 85 "
        "THEN ((i::bigint * 7919) %% 7200) * 0.00001 END",
        "cost_currency": f"CASE WHEN i > {live} AND i %% 100 < 85 THEN 'USD' ELSE '' END",
    }
    columns = [field.column for field in ContainerJob._meta.concrete_fields]
    values = [special.get(column, f"tpl.{column}") for column in columns]
    _insert(table, columns, values, size)
    seeded = time.perf_counter() - began
    began = time.perf_counter()
    rebuilt = _rebuild()
    return {
        "seconds": round(seeded, 1),
        "rebuild_seconds": round(time.perf_counter() - began, 1) if rebuilt else None,
    }


def _insert(table: str, columns: list[str], values: list[str], size: int) -> None:
    """Copy the one template row ``size`` times with generated values, then analyse."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE bench_tpl AS SELECT * FROM {table}")
        cursor.execute(f"TRUNCATE {table} CASCADE")
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM bench_tpl AS tpl, generate_series(1, %s) AS i",
            [size],
        )
        cursor.execute("DROP TABLE bench_tpl")
        cursor.execute(f"VACUUM ANALYZE {table}")


def _rebuild() -> bool:
    """Rebuild the pre-aggregated metrics from the rows, when the code has them."""
    from django.core.management import call_command, get_commands

    if "rebuild_metrics" not in get_commands():
        return False
    call_command("rebuild_metrics", verbosity=0)
    return True


def _admin_client() -> Any:
    from django.contrib.auth.models import User
    from django.test import Client

    user, _ = User.objects.get_or_create(
        username="bench-million", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _line(label: str, run: dict[str, Any]) -> str:
    cases = ", ".join(
        f"{name} {run[name]['ms_median']} ms/{run[name]['queries']}q" for name, _, _ in CASES
    )
    return f"{label} rows={run['rows']} load={run['load']} seed={run['seed']}: {cases}"


if __name__ == "__main__":
    main()
