"""This project end to end: create_job -> local dispatch -> executor -> harvest, measured.

Latency (one job at a time), throughput (a burst of N), CPU and queries per step: ours_*.json.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    COMMAND,
    DOCKER_URL,
    IMAGE,
    latency_summary,
    setup_django,
    write_result,
)
from tqdm import tqdm  # noqa: E402

TERMINAL_RESULTS = {"completed", "failed", "timeout", "cancelled"}


def main() -> None:
    """Parse flags, run the chosen measurements, write results/ours_<executor>_<db>.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--database-url", help="required for --db postgres")
    parser.add_argument("--executor", choices=["docker", "mock"], default="docker")
    parser.add_argument("--n", type=int, nargs="+", default=[200], help="burst sizes")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency-n", type=int, default=50, help="0: skip the latency run")
    args = parser.parse_args()
    url = args.database_url if args.db == "postgres" else _fresh_sqlite_url()
    setup_django(url, args.workers)
    bench = Bench(args.executor, args.workers)
    result: dict[str, Any] = {
        "db": args.db,
        "executor": args.executor,
        "workers": args.workers,
        "image": IMAGE,
        "command": COMMAND,
        "settings": bench.settings_used(),
    }
    if args.latency_n:
        result["sequential"] = bench.sequential(args.latency_n)
    result["bursts"] = [bench.burst(n) for n in args.n]
    bench.close()
    write_result(f"ours_{args.executor}_{args.db}", result)


class Bench:
    """One process, one database: a host, the local backend, and counters around every step."""

    def __init__(self, executor: str, workers: int):
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        self.executor = executor
        self.workers = workers
        self.recorder = StepRecorder()
        self.recorder.install(executor)

    def settings_used(self) -> dict[str, Any]:
        """The settings that shape the figures (check delay, dispatch options)."""
        from container_manager.conf import setting

        keys = ("CHECK_DELAY_INITIAL", "CHECK_DELAY_FACTOR", "USAGE_SAMPLE_INTERVAL")
        return {"DISPATCH": setting("DISPATCH"), **{key: setting(key) for key in keys}}

    def sequential(self, n: int) -> dict[str, Any]:
        """Submit one job, wait until everything is idle, repeat: latency without queueing."""
        from container_manager import dispatch

        host = self._reset(max_concurrent=self.workers)
        dispatch.get_backend().start()
        latencies, totals = [], []
        for _ in tqdm(range(n), desc=f"ours {self.executor} sequential", unit="job"):
            job = self._submit(host)
            # Not wait_idle: while engine events flow, a finished job's check stays queued.
            self.recorder.wait_done([str(job.pk)], timeout=120)
            start, done = self._job_latencies(job)
            latencies.append(start)
            totals.append(done)
        return {
            "jobs": n,
            "submit_to_start": latency_summary(latencies),
            "submit_to_done": latency_summary(totals),
            "steps": self.recorder.summary(n),
            "outcomes": self._outcomes(),
        }

    def burst(self, n: int) -> dict[str, Any]:
        """Submit ``n`` jobs as fast as create_job goes; measure until every step has run."""
        from container_manager import dispatch

        host = self._reset(max_concurrent=max(n, self.workers))
        dispatch.get_backend().start()
        self.recorder.bar = tqdm(total=n, desc=f"ours {self.executor} burst of {n}", unit="job")
        cpu_before = time.process_time()
        began = time.perf_counter()
        jobs = [self._submit(host) for _ in range(n)]
        submitted = time.perf_counter() - began
        self.recorder.wait_done([str(job.pk) for job in jobs], timeout=600)
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu_before
        self.recorder.bar.close()
        self.recorder.bar = None
        pairs = [self._job_latencies(job) for job in jobs]
        return {
            "jobs": n,
            "seconds": round(elapsed, 3),
            "submit_seconds": round(submitted, 3),
            "jobs_per_s": round(n / elapsed, 2),
            "cpu_s_per_job": round(cpu / n, 5),
            "submit_to_start": latency_summary([p[0] for p in pairs]),
            "submit_to_done": latency_summary([p[1] for p in pairs]),
            "steps": self.recorder.summary(n),
            "outcomes": self._outcomes(),
        }

    def close(self) -> None:
        """Stop the worker threads."""
        from container_manager import dispatch

        dispatch.reset_backend()

    def _reset(self, max_concurrent: int) -> Any:
        from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost

        ContainerExecution.objects.all().delete()
        ContainerJob.objects.all().delete()
        ExecutorHost.objects.all().delete()
        self.recorder.reset()
        if self.executor == "mock":
            return ExecutorHost.objects.create(
                name="bench-mock",
                executor_type="mock",
                host_type="unix",
                connection_string="mock://",
                executor_config={"duration": 0},
                max_concurrent_jobs=max_concurrent,
            )
        return ExecutorHost.objects.create(
            name="bench-docker",
            executor_type="docker",
            host_type="unix",
            connection_string=DOCKER_URL,
            max_concurrent_jobs=max_concurrent,
        )

    def _submit(self, host: Any) -> Any:
        from django.db import connection

        from container_manager.models import ContainerJob

        with self.recorder.step("submit"), connection.execute_wrapper(self.recorder.query):
            return ContainerJob.objects.create_job(image=IMAGE, command=COMMAND, docker_host=host)

    def _job_latencies(self, job: Any) -> tuple[float, float]:
        job.refresh_from_db()
        start = (job.started_at - job.created_at).total_seconds()
        done = self.recorder.done_at[str(job.pk)] - job.created_at.timestamp()
        return start, done

    def _outcomes(self) -> dict[str, int]:
        from django.db.models import Count

        from container_manager.models import ContainerJob

        rows = ContainerJob.objects.values("status").annotate(count=Count("pk"))
        return {row["status"]: row["count"] for row in rows}


class StepRecorder:
    """Wall time, DB queries and time, and executor time of every step, by step name."""

    def __init__(self):
        self._local = threading.local()
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)
        self.bar: tqdm | None = None
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded so far."""
        self.calls: dict[str, int] = defaultdict(int)
        self.totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.results: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.done_at: dict[str, float] = {}

    def install(self, executor: str) -> None:
        """Wrap ``steps.run_step`` (the local workers look it up at start) and the executor."""
        from container_manager.engine import steps

        real_run_step = steps.run_step

        def run_step(step: str, job_id: Any) -> str:
            from django.db import connection

            with self.step(step), connection.execute_wrapper(self.query):
                result = real_run_step(step, job_id)
            with self._lock:
                self.results[step][result] += 1
                if result in TERMINAL_RESULTS:
                    self.done_at[str(job_id)] = time.time()
                    self._finished.notify_all()
                    if self.bar is not None:
                        self.bar.update()
            return result

        steps.run_step = run_step
        self._wrap_executor(executor)

    def wait_done(self, job_ids: list[str], timeout: float) -> None:
        """Wait until a step has finished every one of ``job_ids``; RuntimeError after timeout."""
        deadline = time.monotonic() + timeout
        with self._finished:
            while not all(job_id in self.done_at for job_id in job_ids):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"jobs not finished within {timeout}s")
                self._finished.wait(remaining)

    def step(self, name: str) -> _StepTimer:
        """Context manager timing one step in this thread."""
        return _StepTimer(self, name)

    def query(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        """``connection.execute_wrapper`` hook: count and time each query of the current step."""
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self._add("queries", 1)
            self._add("db_s", time.perf_counter() - began)

    def summary(self, jobs: int) -> dict[str, Any]:
        """Per step: calls, queries per call and per job, milliseconds split DB / engine / ours."""
        out = {}
        for name, calls in self.calls.items():
            totals = self.totals[name]
            wall, db, engine = totals["wall_s"], totals["db_s"], totals["engine_s"]
            out[name] = {
                "calls": calls,
                "calls_per_job": round(calls / jobs, 3),
                "queries_per_call": round(totals["queries"] / calls, 2),
                "queries_per_job": round(totals["queries"] / jobs, 2),
                "ms_per_call": round(wall / calls * 1000, 2),
                "db_ms_per_call": round(db / calls * 1000, 2),
                "engine_ms_per_call": round(engine / calls * 1000, 2),
                "own_ms_per_call": round((wall - db - engine) / calls * 1000, 2),
                "results": dict(self.results.get(name, {})) if name != "submit" else {},
            }
        out["total"] = {
            "queries_per_job": round(sum(t["queries"] for t in self.totals.values()) / jobs, 2),
        }
        return out

    def _wrap_executor(self, executor: str) -> None:
        if executor == "docker":
            from container_manager.executors.docker import DockerExecutor as cls
        else:
            from container_manager.executors.mock import MockExecutor as cls
        for name in ("launch_job", "check_status", "harvest_job", "cleanup", "sample_usage"):
            setattr(cls, name, self._timed(getattr(cls, name)))

    def _timed(self, method: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._add("engine_s", time.perf_counter() - began)

        return timed

    def _add(self, key: str, value: float) -> None:
        name = getattr(self._local, "step", None)
        if name is None:
            return
        with self._lock:
            self.totals[name][key] += value


class _StepTimer:
    def __init__(self, recorder: StepRecorder, name: str):
        self.recorder, self.name = recorder, name

    def __enter__(self) -> None:
        self.recorder._local.step = self.name
        self.began = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        self.recorder._add("wall_s", time.perf_counter() - self.began)
        with self.recorder._lock:
            self.recorder.calls[self.name] += 1
        self.recorder._local.step = None


def _fresh_sqlite_url() -> str:
    path = Path("/tmp") / "cm-bench.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


if __name__ == "__main__":
    main()
