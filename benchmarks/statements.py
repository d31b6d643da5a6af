"""Statements per job on PostgreSQL over whole lifecycles, each with the step that issued it.

Inline dispatch, mock jobs (duration 0), N jobs with enough slots and with a backlog.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
from collections import Counter, deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import setup_django, write_result  # noqa: E402

_step = threading.local()


def main() -> None:
    """Count statements of N jobs (no backlog, then a backlog of N on one slot) per N.

    Inline dispatch runs one job at a time, so only a one-slot host is full when a job ends.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL URL")
    parser.add_argument("--n", type=int, nargs="+", default=[20, 100])
    args = parser.parse_args()
    os.environ["CM_DISPATCH_BACKEND"] = "immediate"
    setup_django(args.database_url, workers=1)
    from django.conf import settings
    from django.core.management import call_command

    settings.CONTAINER_MANAGER["DISPATCH"] = {
        "BACKEND": "container_manager.dispatch.immediate.ImmediateBackend",
        "OPTIONS": {"SLEEP": True},
    }
    # The first check finds the job finished; 10 ms, so the inline dispatch's wait is short.
    settings.CONTAINER_MANAGER["CHECK_DELAY_INITIAL"] = 0.01
    call_command("migrate", verbosity=0, interactive=False)
    _wrap_steps()
    runs = [_measure(n, backlog) for backlog in (False, True) for n in args.n]
    write_result("statements", {"runs": runs})


def _measure(n: int, backlog: bool) -> dict[str, Any]:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from container_manager import dispatch
    from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost

    dispatch.reset_backend()
    ContainerExecution.objects.all().delete()
    ContainerJob.objects.all().delete()
    ExecutorHost.objects.all().delete()
    host = ExecutorHost.objects.create(
        name="bench-statements", executor_type="mock", connection_string="mock://",
        executor_config={"duration": 0}, max_concurrent_jobs=1 if backlog else n,
    )  # fmt: skip
    connection.close()  # a new connection, as a new process would open: its set-up counts too
    labels: Counter[str] = Counter()
    with CaptureQueriesContext(connection) as captured:
        if backlog:
            # Submitted in one transaction, so every launch arrives while the host is full.
            with transaction.atomic():
                _step.name = "submit"
                for _ in range(n):
                    ContainerJob.objects.create_job(image="x", command="true", docker_host=host)
        else:
            for _ in range(n):
                _step.name = "submit"
                ContainerJob.objects.create_job(image="x", command="true", docker_host=host)
    for query in captured.captured_queries:
        labels[f"{query.get('step', '?')}: {_label(query['sql'])}"] += 1
    done = ContainerJob.objects.filter(status="completed").count()
    return {
        "n": n,
        "backlog": backlog,
        "completed": done,
        "statements": len(captured.captured_queries),
        "statements_per_job": round(len(captured.captured_queries) / n, 2),
        "by_step": {label: round(count / n, 2) for label, count in sorted(labels.items())},
    }


def _wrap_steps() -> None:
    """Tag each logged query with the step running when it was sent."""
    from django.db import connection

    from container_manager.engine import steps

    real_run_step = steps.run_step

    def run_step(step: str, job_id: Any) -> str:
        _step.name = step
        try:
            return real_run_step(step, job_id)
        finally:
            _step.name = "after a step (commit hooks)"

    steps.run_step = run_step
    connection.queries_log = _TaggedLog(maxlen=connection.queries_log.maxlen)


class _TaggedLog(deque):
    """Django's query log (statements, BEGIN and COMMIT alike), each entry tagged with its step."""

    def append(self, entry: dict[str, Any]) -> None:
        super().append({**entry, "step": getattr(_step, "name", "?")})


def _label(sql: str) -> str:
    """``UPDATE containerjob`` and the like: the verb and the table, or the CTE's first name."""
    text = " ".join(sql.split())
    if text.startswith("WITH"):
        return "WITH " + text.split()[1] + " … (one statement)"
    verb = text.split()[0]
    outer = None
    while outer != text:  # the statement's own table, not a subquery's (EXISTS annotations)
        outer, text = text, re.sub(r"\([^()]*\)", "", text)
    table = re.search(r'(?:FROM|INTO|UPDATE) "?container_manager_(\w+)"?', text)
    return f"{verb} {table.group(1) if table else ''}".strip()


if __name__ == "__main__":
    main()
