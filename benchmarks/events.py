"""Platform events against polling, side by side in one run: Docker latency and checks per job.

Docker: the floor, then this project polling, with engine events, and with every event dropped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docker  # noqa: E402 - after the path setup, like every benchmark script
from _common import DOCKER_URL, IMAGE, latency_summary, setup_django, write_result  # noqa: E402
from floor import _one_job, _sequential  # noqa: E402
from ours import Bench, _fresh_sqlite_url  # noqa: E402

#: How far apart checks are while events flow, in the run whose events are all dropped.
DROPPED_CHECK_DELAY = 2.0


def main() -> None:
    """Run the floor and the three Docker modes, write results/events.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50, help="jobs per mode, one at a time")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    client = docker.DockerClient(base_url=DOCKER_URL, timeout=120)
    client.images.get(IMAGE)
    _one_job(client, time.time())
    result: dict[str, Any] = {"image": IMAGE, "jobs": args.n}
    result["floor"] = _sequential(client, args.n)
    setup_django(_fresh_sqlite_url(), args.workers)
    bench = Bench("docker", args.workers)
    result["polling"] = docker_mode(bench, args.n, events=False)
    result["events"] = docker_mode(bench, args.n, events=True)
    result["events_dropped"] = docker_mode(bench, args.n, events=True, drop=True)
    result["floor_again"] = _sequential(client, args.n)
    bench.close()
    write_result("events", result)
    _print(result)


def docker_mode(bench: Bench, n: int, events: bool, drop: bool = False) -> dict[str, Any]:
    """Jobs one at a time through the local backend; latency, checks and harvests per job."""
    from django.conf import settings

    from container_manager import dispatch
    from container_manager import events as platform_events
    from container_manager.events.docker import EngineFollower

    config = {**settings.CONTAINER_MANAGER, "INSTANCE": "bench-events"}
    config["DISPATCH"] = {
        **config["DISPATCH"],
        "OPTIONS": {**config["DISPATCH"]["OPTIONS"], "DOCKER_EVENTS": events},
    }
    if drop:
        config["CHECK_DELAY_WITH_EVENTS"] = DROPPED_CHECK_DELAY
    settings.CONTAINER_MANAGER = config
    real_on_event = EngineFollower._on_event
    if drop:
        EngineFollower._on_event = lambda self, event: None
    dispatch.reset_backend()
    try:
        host = bench._reset(max_concurrent=bench.workers)
        dispatch.get_backend().start()
        deadline = time.monotonic() + 30
        while events and not platform_events.events_flow(host):
            if time.monotonic() > deadline:
                raise RuntimeError("the Docker event stream did not open")
            time.sleep(0.01)
        totals = []
        for _ in range(n):
            job = bench._submit(host)
            _wait_done(bench, str(job.pk))
            totals.append(bench._job_latencies(job)[1])
        calls = bench.recorder.calls
        return {
            "submit_to_done": latency_summary(totals),
            "checks_per_job": round(calls.get("check", 0) / n, 3),
            "harvests_per_job": round(calls.get("harvest", 0) / n, 3),
            "check_results": dict(bench.recorder.results.get("check", {})),
            "harvest_results": dict(bench.recorder.results.get("harvest", {})),
            "outcomes": bench._outcomes(),
            "check_delay_with_events": config.get("CHECK_DELAY_WITH_EVENTS", 60.0),
        }
    finally:
        EngineFollower._on_event = real_on_event
        dispatch.reset_backend()


def _wait_done(bench: Bench, job_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while job_id not in bench.recorder.done_at:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} did not finish in {timeout}s")
        time.sleep(0.005)


def _print(result: dict[str, Any]) -> None:
    floor = result["floor"]["submit_to_done"]["p50_ms"]
    again = result["floor_again"]["submit_to_done"]["p50_ms"]
    print(f"floor p50 {floor} ms (again after the runs: {again} ms)")
    for mode in ("polling", "events", "events_dropped"):
        part = result[mode]
        p50 = part["submit_to_done"]["p50_ms"]
        print(f"{mode:15} p50 {p50} ms (floor + {p50 - floor:.0f} ms), "
              f"checks/job {part['checks_per_job']}, harvests/job {part['harvests_per_job']}, "
              f"outcomes {part['outcomes']}")  # fmt: skip


if __name__ == "__main__":
    main()
