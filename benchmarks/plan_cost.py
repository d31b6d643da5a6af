"""Planning against execution of each statement of a plain mock job's steps (PostgreSQL).

One job is submitted and run (``launch``, ``check``) with the statements captured; each
``SELECT``/``WITH``/``UPDATE``/``INSERT`` of the steps is then run again under
``EXPLAIN (ANALYZE, SUMMARY)`` inside a transaction that is rolled back, ``--repeat`` times, and
the medians of its planning and execution times are kept. Planning is what a prepared statement
saves on every run after the first (``functions/settings.py``, ``PREPARE_THRESHOLD``).
Writes ``results/plan_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import setup_django, write_result  # noqa: E402

SERVER = "postgres://container_manager:container_manager@127.0.0.1:5432/cm_bench_plan"


def main() -> None:
    """Run one job with its statements captured, then explain each of them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=SERVER)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    setup_django(args.database_url, workers=1)
    from django.core.management import call_command

    os.environ["CM_DISPATCH_BACKEND"] = "immediate"
    call_command("migrate", verbosity=0, interactive=False)
    rows = [
        {"step": step, "statement": _name(sql), "length": len(sql), **_explain(sql, args.repeat)}
        for step, sql in _statements()
    ]
    for row in rows:
        print(json.dumps(row))  # noqa: T201 - the report
    write_result("plan_cost", {"repeat": args.repeat, "load": os.getloadavg()[0], "rows": rows})


def _statements() -> list[tuple[str, str]]:
    """Each step's statements of one plain mock job, as sent (parameters inlined)."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from container_manager.engine import steps
    from container_manager.models import ContainerJob, ExecutorHost

    settings.CONTAINER_MANAGER["DISPATCH"] = {"BACKEND": "tests.backends.RecordingBackend"}
    host, _ = ExecutorHost.objects.get_or_create(
        name="bench-plan-cost", executor_type="mock",
        defaults={"connection_string": "mock://", "executor_config": {"duration": 0},
                  "max_concurrent_jobs": 10},
    )  # fmt: skip
    job = ContainerJob.objects.create_job(image="x", command="true", docker_host=host)
    found = []
    for step in ("launch", "check"):
        with CaptureQueriesContext(connection) as captured:
            steps.run_step(step, job.pk)
        found += [(step, query["sql"]) for query in captured.captured_queries]
    return [(step, sql) for step, sql in found if _name(sql) in ("SELECT", "WITH", "UPDATE")]


def _explain(sql: str, repeat: int) -> dict[str, Any]:
    """Median planning and execution ms of ``sql`` over ``repeat`` rolled-back runs."""
    from django.db import connection, transaction

    planning, execution = [], []
    for _ in range(repeat):
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, SUMMARY, FORMAT JSON) {sql}")
                plan = cursor.fetchone()[0][0]
            transaction.set_rollback(True)
        planning.append(plan["Planning Time"])
        execution.append(plan["Execution Time"])
    return {
        "planning_ms": round(statistics.median(planning), 3),
        "execution_ms": round(statistics.median(execution), 3),
    }


def _name(sql: str) -> str:
    return sql.split()[0].upper()


if __name__ == "__main__":
    main()
