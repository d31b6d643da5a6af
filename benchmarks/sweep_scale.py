"""One sweep over a large job table on PostgreSQL: its time, its queries and their plans.

Tables of 10k and 100k rows (10% running, 1% due for a check); writes results/sweep_scale.json.
Rerun (under a minute; any PostgreSQL database of its own)::

    .venv-bench/bin/python benchmarks/sweep_scale.py --database-url postgres://USER:PW@HOST/DB

``queries`` counts every statement the sweep sends, BEGIN and COMMIT of its one transaction
included (``transaction_control``); each statement's plan is taken with ``EXPLAIN (ANALYZE,
BUFFERS)`` and rolled back. The 1-minute load average is recorded with each size.
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
    COMMAND,
    DOCKER_URL,
    IMAGE,
    copy_rows,
    setup_django_migrated,
    write_result,
)
from tqdm import tqdm  # noqa: E402

_TABLE = "container_manager_containerjob"


def main() -> None:
    """Parse flags, fill the table at each size, time the sweep, write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL URL")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    setup_django_migrated(args.database_url)
    runs = [measure(size, args.repeat) for size in tqdm(args.sizes, desc="sweep at scale")]
    write_result("sweep_scale", {"target_ms": 100, "runs": runs})


def measure(size: int, repeat: int) -> dict[str, Any]:
    """Fill ``size`` rows (size/10 running, size/100 of them due), then sweep ``repeat`` times."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from container_manager import dispatch
    from container_manager.engine import steps

    running, due = size // 10, size // 100
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    _fill(size, running, due)
    fill_seconds = time.perf_counter() - began
    backend = _Counting({})
    timings, captured = [], None
    with dispatch.use_backend(backend):
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                began = time.perf_counter()
                sent = steps.sweep()
                timings.append(time.perf_counter() - began)
            captured = captured or queries.captured_queries
    plans = [_explain(query["sql"]) for query in captured]
    return {
        "rows": size,
        "running": running,
        "due": due,
        "fill_seconds": round(fill_seconds, 2),
        "sweep_ms_median": round(statistics.median(timings) * 1000, 2),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "sweep_ms_first": round(timings[0] * 1000, 2),
        "sweep_ms_all": [round(t * 1000, 2) for t in timings],
        "queries": len(captured),
        "transaction_control": sum(plan is None for plan in plans),
        "sent": sent,
        "messages_per_sweep": backend.count // repeat,
        "plans": [{"sql": q["sql"], "plan": p} for q, p in zip(captured, plans, strict=True)],
        "plans_use_index": all(f"Seq Scan on {_TABLE}" not in (plan or "") for plan in plans),
    }


class _Counting:
    """A dispatch backend that only counts: the sweep's sends cost nothing here."""

    def __init__(self, options: dict[str, Any]):
        self.count = 0

    def send(self, step: str, job_id: str, delay: float) -> None:
        self.count += 1

    def send_many(self, messages: list[tuple[str, str, float]]) -> None:
        self.count += len(messages)

    def close(self) -> None:
        """Nothing to release."""


def _fill(size: int, running: int, due: int) -> None:
    """One template row through the ORM, the rest copied from it by generate_series."""
    from django.db import connection

    from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost, HostSlot

    ContainerExecution.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {ContainerJob._meta.db_table} CASCADE")
    ExecutorHost.objects.all().delete()
    host = ExecutorHost.objects.create(
        name="bench-scale", executor_type="docker", host_type="unix",
        connection_string=DOCKER_URL, max_concurrent_jobs=size,
    )  # fmt: skip
    template = ContainerJob(docker_host=host, docker_image=IMAGE, command=COMMAND)
    template.status = "completed"
    ContainerJob.objects.bulk_create([template])  # no signal: nothing is dispatched
    table = ContainerJob._meta.db_table
    special = {
        "id": "gen_random_uuid()",
        "status": f"CASE WHEN i <= {running} THEN 'running' ELSE 'completed' END",
        "execution_id": "'bench-' || i",
        "created_at": "now() - make_interval(secs => i)",
        "started_at": "now() - make_interval(secs => i)",
        "completed_at": f"CASE WHEN i <= {running} THEN NULL ELSE now() END",
        "attempt_count": "1",
        # The first ``due`` running jobs are past their check (and the sweep's grace).
        "next_check_at": (
            f"CASE WHEN i <= {due} THEN now() - interval '1 minute' "
            f"WHEN i <= {running} THEN now() + make_interval(secs => i) ELSE NULL END"
        ),
    }
    copy_rows(ContainerJob, template, special, size - 1)
    with connection.cursor() as cursor:
        # The running jobs hold slot rows 0 .. running - 1, as their launches left them.
        slots = HostSlot._meta.db_table
        cursor.execute(
            f"UPDATE {slots} SET job_id = held.id FROM ("
            f"SELECT id, row_number() OVER (ORDER BY created_at) - 1 AS number FROM {table} "
            "WHERE status = 'running') AS held "
            f"WHERE {slots}.host_id = %s AND {slots}.number = held.number",
            [host.pk],
        )
        cursor.execute(f"ANALYZE {table}")


def _explain(sql: str) -> str | None:
    """The plan of one captured statement, run and rolled back; None for BEGIN, COMMIT, …."""
    from django.db import connection, transaction

    if sql.split(None, 1)[0].upper() not in ("SELECT", "WITH", "UPDATE", "DELETE", "INSERT"):
        return None
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    return plan


if __name__ == "__main__":
    main()
