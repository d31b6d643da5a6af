"""The one command: every benchmark part, then the table and plot of docs/performance.md.

``python benchmarks/run.py [--n 200] [--quick] [--only PART ...]``; benchmarks/setup.sh first.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEER_PYTHON = REPO / ".venv-peer" / "bin" / "python"
PARTS = (
    "floor",
    "ours",
    "mock",
    "arrays",
    "sweep",
    "statements",
    "scale_out",
    "tasks_db",
    "metrics",
    "schedules",
    "peer",
    "cold_start",
    "events",
    "stops",
    "imports",
    "bundle_size",
)
#: The parts that run on PostgreSQL.
ON_POSTGRES = frozenset(PARTS) - {"floor", "peer", "cold_start", "events", "stops", "imports",
                                   "bundle_size"}  # fmt: skip
logger = logging.getLogger("benchmarks")


def main() -> None:
    """Run the chosen parts in order (each in its own process), then render."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="jobs per burst")
    parser.add_argument("--workers", type=int, default=4, help="floor threads = our workers")
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--database-url", help="PostgreSQL URL (default: infra/postgres.sh)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    n = 20 if args.quick else args.n
    latency_n = 5 if args.quick else 50
    pg_url = None
    if ON_POSTGRES & set(args.only):
        pg_url = args.database_url or _bench_database()
    failures = []
    for part in args.only:
        for command in _commands(part, n, latency_n, args.workers, args.quick, pg_url):
            logger.info("== %s", " ".join(str(c) for c in command))
            began = time.perf_counter()
            code = subprocess.call(command, cwd=REPO)
            logger.info("   %s: exit %s in %.0f s", part, code, time.perf_counter() - began)
            if code:
                failures.append(part)
    subprocess.check_call([sys.executable, str(HERE / "render.py")], cwd=REPO)
    if failures:
        sys.exit(f"parts that failed: {', '.join(failures)}")


def _commands(
    part: str, n: int, latency_n: int, workers: int, quick: bool, pg_url: str | None
) -> list[list[str]]:
    py = sys.executable
    w = ["--workers", str(workers)]
    if part == "floor":
        return [[py, f"{HERE}/floor.py", "--n", str(n), "--threads", str(workers),
                 "--latency-n", str(latency_n)]]  # fmt: skip
    if part == "ours":
        base = [py, f"{HERE}/ours.py", "--executor", "docker", "--n", str(n), *w,
                "--latency-n", str(latency_n)]  # fmt: skip
        return [[*base, "--db", "sqlite"], [*base, "--db", "postgres", "--database-url", pg_url]]
    if part == "mock":
        sizes = ["20", "40"] if quick else [str(n // 2), str(n), str(n * 2)]
        base = [py, f"{HERE}/ours.py", "--executor", "mock", "--n", *sizes, *w, "--latency-n", "0"]
        return [[*base, "--db", "sqlite"], [*base, "--db", "postgres", "--database-url", pg_url]]
    if part == "arrays":
        size = ["--n", "100", "--slots", "100", "10"] if quick else []
        base = [py, f"{HERE}/arrays.py", *size, *w]
        return [[*base, "--db", "sqlite"], [*base, "--db", "postgres", "--database-url", pg_url]]
    if part == "sweep":
        sizes = ["10000"] if quick else ["10000", "100000"]
        return [[py, f"{HERE}/sweep_scale.py", "--database-url", pg_url, "--sizes", *sizes]]
    if part == "statements":
        sizes = ["10", "30"] if quick else ["20", "100"]
        return [[py, f"{HERE}/statements.py", "--database-url", pg_url, "--n", *sizes]]
    if part == "scale_out":
        # K processes on one and four hosts, with and without a backlog (pairs alternated,
        # three of each in full), a one-minute sweep; then jobs that run 2 s, slots the limit.
        ks = ["1", "4"] if quick else ["1", "2", "4", "8"]
        base = [py, f"{HERE}/scale_out.py", "--database-url", pg_url]
        return [[*base, "--n", str(n if quick else 2 * n), "--k", *ks,
                 "--repeat", "1" if quick else "3"],
                [*base, "--n", str(n if quick else 2 * n), "--k", "1", "4", "--duration", "2",
                 "--capacity", "5" if quick else "50", "--label", "_slot_bound"]]  # fmt: skip
    if part == "tasks_db":
        tasks_python = HERE / ".venv-tasks" / "bin" / "python"
        if not tasks_python.exists():
            logger.warning("no benchmarks/.venv-tasks: run benchmarks/setup.sh; tasks_db skipped")
            return []
        # Its own databases (cm_bench_ours, cm_bench_theirs, cm_bench_floor) on the same server.
        server = pg_url.rsplit("/", 1)[0]
        size = ["--n", "40", "--floor-n", "100", "--k", "1", "4", "--rounds", "1"] if quick else []
        return [[py, f"{HERE}/tasks_db.py", "--server", server, *size]]
    if part == "metrics":
        server = pg_url.rsplit("/", 1)[0]
        sizes = ["--sizes", "10000", "100000", "--repeat", "3"] if quick else []
        return [[py, f"{HERE}/metrics_scale.py", "--server", server, *sizes]]
    if part == "schedules":
        sizes = ["0", "10000"] if quick else ["0", "10000", "100000"]
        return [[py, f"{HERE}/schedule_scale.py", "--database-url", pg_url, "--sizes", *sizes]]
    if part == "stops":
        size = ["--timeouts", "4", "--cancels", "2", "--others", "2"] if quick else []
        return [[py, f"{HERE}/stops.py", *size, *w]]
    if part == "imports":
        return [[py, f"{HERE}/import_graph.py"]]
    if part == "bundle_size":
        # Builds the zappa bundle of the aws stage (infra/lambda-bundle.sh) and measures it.
        return [[py, f"{HERE}/bundle_size.py"]]
    if part == "peer":
        if not PEER_PYTHON.exists():
            logger.warning("no .venv-peer: run benchmarks/setup.sh; the peer is skipped")
            return []
        stall = "10" if quick else "20"
        return [[str(PEER_PYTHON), f"{HERE}/peer.py", "--n", str(n), "--max-jobs", str(workers),
                 "--stall", stall, "--latency-n", "5" if quick else "20"]]  # fmt: skip
    if part == "events":
        fargate = "4" if quick else "20"
        return [[py, f"{HERE}/events.py", "--n", str(latency_n), *w, "--fargate-n", fargate]]
    if part == "cold_start":
        if not (HERE / "cold_start.py").exists():
            logger.warning("no benchmarks/cold_start.py yet: the cold start is skipped")
            return []
        # It times the project's own interpreter and finds django-admin beside it.
        main_python = str(REPO / ".venv" / "bin" / "python")
        return [[main_python, f"{HERE}/cold_start.py", "--runs", "5" if quick else "15"]]
    raise ValueError(part)


def _bench_database() -> str:
    """PostgreSQL from infra/postgres.sh, with a database of its own (cm_bench) for benchmarks."""
    url = subprocess.check_output(["bash", "infra/postgres.sh"], cwd=REPO, text=True)
    url = url.strip().splitlines()[-1]
    base, _, name = url.rpartition("/")
    env = {**os.environ, "PGPASSWORD": "container_manager"}
    exists = subprocess.run(
        ["psql", url, "-Atc", "SELECT 1 FROM pg_database WHERE datname = 'cm_bench'"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if exists != "1":
        subprocess.run(["psql", url, "-c", "CREATE DATABASE cm_bench"], env=env, check=True)
    return f"{base}/cm_bench"


if __name__ == "__main__":
    main()
