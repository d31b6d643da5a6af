"""The floor: the same trivial containers run straight through docker-py, nothing else.

Create, start, wait, logs, remove, one after another and from N threads; writes results/floor.json.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docker  # noqa: E402 - after the path setup, like every benchmark script
from _common import (  # noqa: E402
    COMMAND,
    DOCKER_URL,
    IMAGE,
    docker_time,
    latency_summary,
    write_result,
)
from tqdm import tqdm  # noqa: E402


def run_floor(n: int, threads: int, latency_n: int) -> dict[str, Any]:
    """Sequential (``latency_n`` jobs, one at a time) and threaded (``n`` jobs) runs."""
    client = docker.DockerClient(base_url=DOCKER_URL, timeout=120)
    client.images.get(IMAGE)
    _one_job(client, time.time())  # warm the connection pool and the image
    return {
        "image": IMAGE,
        "command": COMMAND,
        "sequential": _sequential(client, latency_n),
        "threaded": _threaded(client, n, threads),
    }


def main() -> None:
    """Parse flags, run, write results/floor.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--latency-n", type=int, default=50)
    args = parser.parse_args()
    result = run_floor(args.n, args.threads, args.latency_n)
    result.update(n=args.n, threads=args.threads)
    write_result("floor", result)


def _sequential(client: docker.DockerClient, n: int) -> dict[str, Any]:
    latencies, totals = [], []
    began = time.perf_counter()
    for _ in tqdm(range(n), desc="floor sequential", unit="job"):
        submitted = time.time()
        start_latency = _one_job(client, submitted)
        latencies.append(start_latency)
        totals.append(time.time() - submitted)
    elapsed = time.perf_counter() - began
    return {
        "jobs": n,
        "seconds": round(elapsed, 3),
        "jobs_per_s": round(n / elapsed, 2),
        "submit_to_start": latency_summary(latencies),
        "submit_to_done": latency_summary(totals),
    }


def _threaded(client: docker.DockerClient, n: int, threads: int) -> dict[str, Any]:
    """All ``n`` jobs submitted at once to ``threads`` workers, like a burst of create_job."""
    bar = tqdm(total=n, desc=f"floor {threads} threads", unit="job")
    lock = threading.Lock()
    cpu_before = time.process_time()
    submitted = time.time()
    began = time.perf_counter()

    def job(_: int) -> tuple[float, float]:
        start_latency = _one_job(client, submitted)
        done = time.time() - submitted
        with lock:
            bar.update()
        return start_latency, done

    with ThreadPoolExecutor(max_workers=threads) as pool:
        outcomes = list(pool.map(job, range(n)))
    elapsed = time.perf_counter() - began
    bar.close()
    return {
        "jobs": n,
        "threads": threads,
        "seconds": round(elapsed, 3),
        "jobs_per_s": round(n / elapsed, 2),
        "cpu_s_per_job": round((time.process_time() - cpu_before) / n, 4),
        "submit_to_start": latency_summary([o[0] for o in outcomes]),
        "submit_to_done": latency_summary([o[1] for o in outcomes]),
    }


def _one_job(client: docker.DockerClient, submitted: float) -> float:
    """Run one container to its end; seconds from ``submitted`` to the container's StartedAt."""
    container = client.containers.create(IMAGE, COMMAND, detach=True)
    try:
        container.start()
        container.wait()
        container.logs(stdout=True, stderr=True)
        container.reload()
        started = docker_time(container.attrs["State"]["StartedAt"])
    finally:
        container.remove(force=True)
    return (started - datetime.fromtimestamp(submitted, tz=UTC)).total_seconds()


if __name__ == "__main__":
    main()
