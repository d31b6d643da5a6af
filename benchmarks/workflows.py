"""A 3-stage workflow submitted as one object against the same from single create_job calls.

Mock executor (``duration: 0``), one host with a slot per job, local dispatch (``--workers``
threads, sweep timer off: no message is lost). Stage 1 is one node; stage 2 ``--n`` jobs that
depend on it; stage 3 one fan-in node depending on stage 2 (``--stage2 n-to-n``: stage 1 is an
array of ``--n`` too, and child i of stage 2 waits for child i of stage 1). Two shapes of the
same work:

- ``workflow``: ``Workflow.objects.submit`` of three nodes, stage 2 an array node of ``--n``;
- ``single``: 1 + n + 1 ``create_job`` calls with ``depends_on`` (stage 2 n plain jobs, the
  fan-in depending on all of them).

Per round both shapes run, their order alternated; each is timed from its submit's start:
submit seconds, seconds until no job is live, and the statements of the whole run (the
submit's and every step's, counted in each worker thread) over the nodes that ran a
container. ``--stage2`` chooses stage 2's dependency (``STAGE2``: ``fan-out`` or
``n-to-n``). Medians with the 1-minute load average go to
``results/workflows_<db><label>.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_mock_host, fresh_sqlite_url, setup_django, write_result  # noqa: E402

#: Statements counted so far: the submits' (this thread) and the steps' (every worker thread).
_statements = {"submit": 0, "steps": 0}
_lock = threading.Lock()


def fan_out_document(host: str, n: int) -> dict[str, Any]:
    """Stage 2 an array of ``n`` children, each waiting for stage 1 (a fan-out)."""
    job = {"docker_image": "x", "command": "true", "host": host}
    return {
        "name": "bench-3-stage",
        "nodes": {
            "first": job,
            "middle": {**job, "array_size": n, "depends_on": ["first"]},
            "last": {**job, "depends_on": ["middle"]},
        },
    }


def fan_out_singles(host: Any, n: int) -> None:
    """The same from single calls: stage 2 ``n`` jobs waiting for stage 1, the fan-in for all."""
    from container_manager.models import ContainerJob

    def submit(**kwargs: Any) -> Any:
        job = {"image": "x", "command": "true", "docker_host": host}
        return ContainerJob.objects.create_job(**job, **kwargs)

    first = submit()
    middle = [submit(depends_on=[first]) for _ in range(n)]
    submit(depends_on=middle)


def n_to_n_document(host: str, n: int) -> dict[str, Any]:
    """Stage 1 an array of ``n``; stage 2 an array of ``n``, child i waiting for child i."""
    job = {"docker_image": "x", "command": "true", "host": host}
    return {
        "name": "bench-3-stage-n-to-n",
        "nodes": {
            "first": {**job, "array_size": n},
            "middle": {
                **job,
                "array_size": n,
                "depends_on": [{"node": "first", "type": "n_to_n"}],
            },
            "last": {**job, "depends_on": ["middle"]},
        },
    }


def n_to_n_singles(host: Any, n: int) -> None:
    """The same from single calls: ``n`` jobs, ``n`` each waiting for its own, the fan-in."""
    from container_manager.models import ContainerJob

    def submit(**kwargs: Any) -> Any:
        job = {"image": "x", "command": "true", "docker_host": host}
        return ContainerJob.objects.create_job(**job, **kwargs)

    first = [submit() for _ in range(n)]
    middle = [submit(depends_on=[job]) for job in first]
    submit(depends_on=middle)


#: Stage 2's dependency: the workflow document and the single-call submit that build it.
STAGE2: dict[str, tuple[Callable[[str, int], dict[str, Any]], Callable[[Any, int], None]]] = {
    "fan-out": (fan_out_document, fan_out_singles),
    "n-to-n": (n_to_n_document, n_to_n_singles),
}


def main() -> None:
    """Parse flags, run the rounds, write results/workflows_<db><label>.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--database-url", help="required for --db postgres")
    parser.add_argument("--n", type=int, default=1000, help="jobs of stage 2")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stage2", choices=sorted(STAGE2), default="fan-out")
    parser.add_argument("--label", default="", help="suffix of the result file")
    args = parser.parse_args()
    url = args.database_url if args.db == "postgres" else fresh_sqlite_url("cm-workflows-")
    setup_django(url, args.workers, sweep_interval=0)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    _count_step_statements()
    shapes = ["workflow", "single"]
    runs = []
    for number in range(args.rounds):
        for shape in shapes if number % 2 == 0 else shapes[::-1]:
            runs.append({"round": number, **measure(shape, args.n, args.stage2)})
            print(runs[-1])
    summary = summarise(runs)
    print(summary)
    config = {"db": args.db, "workers": args.workers, "n": args.n, "stage2": args.stage2}
    write_result(f"workflows_{args.db}{args.label}", {**config, "summary": summary, "runs": runs})


def measure(shape: str, n: int, stage2: str) -> dict[str, Any]:
    """Submit the three stages as ``shape``; wait until no job is live; times and statements."""
    from django.db import connection

    from container_manager import dispatch
    from container_manager.models import ContainerJob, Workflow

    Workflow.objects.all().delete()
    host = fresh_mock_host(2 * n + 2)
    document, singles = STAGE2[stage2]
    backend = dispatch.get_backend()
    backend.wait_idle(timeout=60)
    first = dict(_statements)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    with connection.execute_wrapper(_counter("submit")):
        if shape == "workflow":
            Workflow.objects.submit(document(host.name, n))
        else:
            singles(host, n)
    submitted = time.perf_counter() - began
    while ContainerJob.objects.live().exists():
        backend.wait_idle(timeout=1)
    done = time.perf_counter() - began
    submit_statements = _statements["submit"] - first["submit"]
    statements = submit_statements + _statements["steps"] - first["steps"]
    ran = ContainerJob.objects.filter(status="completed", containerexecution__isnull=False)
    nodes = ran.distinct().count()
    return {
        "shape": shape,
        "nodes_run": nodes,
        "jobs": ContainerJob.objects.count(),
        "completed": ContainerJob.objects.filter(status="completed").count(),
        "submit_seconds": round(submitted, 3),
        "submit_statements": submit_statements,
        "seconds_until_all_done": round(done, 3),
        "statements": statements,
        "statements_per_node": round(statements / nodes, 2),
        "load": [round(load, 1), round(os.getloadavg()[0], 1)],
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per shape the medians; per round the ratio single / workflow, and their medians."""
    summary: dict[str, Any] = {}
    keys = ("submit_seconds", "seconds_until_all_done", "statements_per_node")
    for shape in ("workflow", "single"):
        mine = [r for r in runs if r["shape"] == shape]
        summary[shape] = {
            f"{key}_median": round(statistics.median(r[key] for r in mine), 3) for key in keys
        }
        summary[shape]["submit_statements"] = sorted({r["submit_statements"] for r in mine})
    for key in keys:
        ratios = []
        for number in sorted({r["round"] for r in runs}):
            pair = {r["shape"]: r[key] for r in runs if r["round"] == number}
            if len(pair) == 2 and pair["workflow"]:
                ratios.append(round(pair["single"] / pair["workflow"], 2))
        summary[f"{key}_single_over_workflow"] = {
            "per_round": ratios,
            "median": round(statistics.median(ratios), 2) if ratios else None,
        }
    summary["load"] = [r["load"] for r in runs]
    return summary


def _count_step_statements() -> None:
    """Wrap ``steps.run_step`` (the local workers look it up when they start) to count."""
    from django.db import connection

    from container_manager.engine import steps

    real_run_step = steps.run_step

    def run_step(step: str, job_id: Any) -> str:
        with connection.execute_wrapper(_counter("steps")):
            return real_run_step(step, job_id)

    steps.run_step = run_step


def _counter(kind: str) -> Callable[..., Any]:
    """A ``connection.execute_wrapper`` hook adding each statement to ``_statements[kind]``."""

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        with _lock:
            _statements[kind] += 1
        return execute(sql, params, many, context)

    return count


if __name__ == "__main__":
    main()
