"""Timeouts and cancels in bulk on the Docker engine: on time, containers gone, others unhindered.

20 jobs time out together, then 10 are cancelled together, while 5 `echo hi` jobs run on
another host; their latency is compared with the same 5 run alone. Writes results/stops.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DOCKER_URL, IMAGE, latency_summary, setup_django, write_result  # noqa: E402

#: A shell's `sleep` as the container's first process ignores SIGTERM: only the kill ends it.
STUBBORN = "sleep 600"


def main() -> None:
    """Parse flags, run the three phases, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeouts", type=int, default=20)
    parser.add_argument("--cancels", type=int, default=10)
    parser.add_argument("--others", type=int, default=5)
    parser.add_argument("--timeout-seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--name", default="stops", help="results/<name>.json")
    args = parser.parse_args()
    database = Path(tempfile.mkdtemp(prefix="cm-stops-")) / "db.sqlite3"
    setup_django(f"sqlite:///{database}", args.workers)
    _count_engine_requests()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from container_manager.conf import setting

    grace = float(setting("STOP_GRACE_SECONDS"))
    stops, others = _host("stops", 100), _host("others", 10)
    result: dict[str, Any] = {"workers": args.workers, "stop_grace_seconds": grace}
    result["others_alone"] = latency_summary(_run_others(others, args.others))
    result["timeouts"], timed_out = _timeouts(stops, others, args, grace)
    result["cancels"], cancelled = _cancels(stops, others, args, grace)
    result["containers_left"] = _containers_left(timed_out + cancelled)
    path = write_result(args.name, result)
    print(path.read_text())


def _host(name: str, slots: int) -> Any:
    from container_manager.models import ExecutorHost

    return ExecutorHost.objects.create(
        name=name, executor_type="docker", connection_string=DOCKER_URL,
        auto_pull_images=False, max_concurrent_jobs=slots,
    )  # fmt: skip


def _submit(host: Any, command: str, **kwargs: Any) -> Any:
    from container_manager.models import ContainerJob

    return ContainerJob.objects.create_job(image=IMAGE, command=command, docker_host=host, **kwargs)


def _wait(jobs: list[Any], statuses: set[str], limit: float = 120.0) -> list[Any]:
    from container_manager.models import ContainerJob

    ids = [job.pk for job in jobs]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        rows = list(ContainerJob.objects.filter(pk__in=ids))
        if all(row.status in statuses for row in rows):
            return rows
        time.sleep(0.05)
    raise SystemExit(f"jobs not {statuses} within {limit}s")


def _run_others(host: Any, n: int) -> list[float]:
    jobs = [_submit(host, "echo hi") for _ in range(n)]
    rows = _wait(jobs, {"completed", "failed"})
    return [(row.updated_at - row.created_at).total_seconds() for row in rows]


def _timeouts(stops: Any, others: Any, args: Any, grace: float) -> tuple[dict, list[str]]:
    jobs = [
        _submit(stops, STUBBORN, timeout_seconds=args.timeout_seconds) for _ in range(args.timeouts)
    ]
    # The deadline the checks use: the launch step's started_at plus the timeout.
    running = _wait(jobs, {"running"})
    deadlines = {row.pk: row.started_at.timestamp() + row.timeout_seconds for row in running}
    # The others start as the timeouts fall due, so they run while the stops are seen through.
    time.sleep(max(0.0, min(deadlines.values()) - time.time()))
    others_latency = _run_others(others, args.others)
    rows = _wait(jobs, {"timeout", "failed", "completed", "cancelled"})
    late = [row.updated_at.timestamp() - deadlines[row.pk] for row in rows]
    summary = _summary(rows, "timeout", late, grace, others_latency)
    summary["engine_requests_per_job"] = _requests_after(rows, deadlines)
    if hasattr(rows[0], "stop_requested_at"):  # not on code before issue 12
        summary["stop_asked_after_deadline_s"] = latency_summary(
            [row.stop_requested_at.timestamp() - deadlines[row.pk] for row in rows]
        )
    return summary, [str(r.pk) for r in rows]


def _cancels(stops: Any, others: Any, args: Any, grace: float) -> tuple[dict, list[str]]:
    from container_manager.models import ContainerJob

    jobs = [_submit(stops, STUBBORN) for _ in range(args.cancels)]
    _wait(jobs, {"running"})
    for job in jobs:
        ContainerJob.objects.get(pk=job.pk).cancel()
    others_latency = _run_others(others, args.others)
    rows = _wait(jobs, {"timeout", "failed", "completed", "cancelled"})
    late = [(row.updated_at - row.cancel_requested_at).total_seconds() for row in rows]
    summary = _summary(rows, "cancelled", late, grace, others_latency)
    asked = {row.pk: row.cancel_requested_at.timestamp() for row in rows}
    summary["engine_requests_per_job"] = _requests_after(rows, asked)
    return summary, [str(r.pk) for r in rows]


def _summary(
    rows: list[Any], expected: str, late: list[float], grace: float, others: list[float]
) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    return {
        "done_after_grace_s": latency_summary(
            [
                (r.updated_at - r.stop_requested_at).total_seconds() - grace
                for r in rows
                if getattr(r, "stop_requested_at", None)
            ]
        ),
        "statuses": statuses,
        "all_expected": statuses == {expected: len(rows)},
        "after_request_s": latency_summary(late),
        "within_grace_plus_1s": all(value <= grace + 1 for value in late),
        "others_meanwhile": latency_summary(others),
    }


_REQUESTS: list[tuple[float, str]] = []


def _count_engine_requests() -> None:
    """Note the time and URL of every Docker API request (docker-py's client is a Session)."""
    from docker.api.client import APIClient

    send = APIClient.send

    def counted(self: Any, request: Any, **kwargs: Any) -> Any:
        _REQUESTS.append((time.time(), request.url))
        return send(self, request, **kwargs)

    APIClient.send = counted


def _requests_after(rows: list[Any], since: dict[Any, float]) -> dict[str, float]:
    """Engine requests naming each job's container from ``since`` (deadline or cancel) on."""
    counts = [
        sum(1 for at, url in list(_REQUESTS) if at >= since[row.pk] and row.execution_id in url)
        for row in rows
    ]
    return {"mean": round(sum(counts) / len(counts), 2), "max": max(counts)}


def _containers_left(job_ids: list[str], limit: float = 10.0) -> dict[str, Any]:
    """Containers, in any state, still on the engine for these jobs: at the last final status
    (a step removes its container just after its status move) and ``limit`` seconds on."""
    import docker

    client = docker.DockerClient(base_url=DOCKER_URL)

    def count() -> int:
        rows = client.api.containers(all=True, filters={"label": "container_manager.managed"})
        return sum(1 for row in rows if row["Labels"].get("container_manager.job_id") in job_ids)

    at_status, started = count(), time.monotonic()
    left = at_status
    while left and time.monotonic() - started < limit:
        time.sleep(0.1)
        left = count()
    return {
        "at_last_status": at_status,
        "gone_after_s": round(time.monotonic() - started, 2) if not left else None,
        "after_wait": left,
    }


if __name__ == "__main__":
    main()
