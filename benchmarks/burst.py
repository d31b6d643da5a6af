"""A burst of functions against one small database: 200 step workers, 2,000 mock jobs.

Deployed, every function instance keeps its own connection (``CONN_MAX_AGE`` 600). Here 200
worker threads of the local backend play 200 instances, each with its own Django connection,
against a throwaway PostgreSQL with ``max_connections = 40`` (own data directory and port,
removed at the end), once through PgBouncer in transaction mode (``infra/pgbouncer.sh`` on its
own port, 30 server connections) and once straight to the server, rounds alternated. Per
round: steps that failed (the runner's "database unavailable, retry" verdicts), jobs not
finished when the workers went idle, the peak of server connections (``pg_stat_activity``,
sampled every 20 ms by a superuser connection), the time from the first submit to the last
final state; then sweeps until every job is final (at most ``--max-sweeps``), to see whether
the sweep recovers what the failures left. Writes results/burst.json.

    python benchmarks/burst.py [--jobs 2000] [--workers 200] [--rounds 3]

Needs root (initdb and PgBouncer run as ``postgres``), PostgreSQL's server binaries and
Debian's ``pgbouncer``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, write_result  # noqa: E402

SERVER_PORT = 5440
POOLER_PORT = 6440
POOL_SIZE = 30
MAX_CONNECTIONS = 40
ROLE = "container_manager"


def main() -> None:
    """Parse flags; as the parent, run the rounds in child processes; as a child, one burst."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-sweeps", type=int, default=20)
    parser.add_argument("--child", choices=["pooled", "direct"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_burst(args.child, args.jobs, args.workers, args.max_sweeps)))
        return
    with _throwaway_cluster() as monitor_url:
        runs = []
        for index in range(args.rounds):
            for mode in ("pooled", "direct") if index % 2 == 0 else ("direct", "pooled"):
                runs.append({"round": index + 1, **_child(mode, args, monitor_url)})
                print(json.dumps(runs[-1]), file=sys.stderr)
    write_result(
        "burst",
        {
            "jobs": args.jobs,
            "workers": args.workers,
            "max_connections": MAX_CONNECTIONS,
            "pgbouncer_pool_size": POOL_SIZE,
            "runs": runs,
            "medians": _medians(runs),
        },
    )


def _child(mode: str, args: argparse.Namespace, monitor_url: str) -> dict[str, Any]:
    port = POOLER_PORT if mode == "pooled" else SERVER_PORT
    env = {
        **os.environ,
        "BURST_DATABASE_URL": f"postgres://{ROLE}:{ROLE}@127.0.0.1:{port}/{ROLE}",
        "BURST_MONITOR_URL": monitor_url,
        # PgBouncer is on another port than 6432 here: say so, as RDS Proxy deployments do.
        "CM_DB_POOLER": "transaction" if mode == "pooled" else "none",
    }
    load = os.getloadavg()[0]
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--jobs", str(args.jobs)]
        + ["--workers", str(args.workers), "--max-sweeps", str(args.max_sweeps)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"burst {mode} failed:\n{done.stderr[-3000:]}")
    return {"mode": mode, "load_1min": round(load, 1), **json.loads(done.stdout.splitlines()[-1])}


def _burst(mode: str, jobs: int, workers: int, max_sweeps: int) -> dict[str, Any]:
    """One burst in this process: 2,000 jobs submitted, 200 workers, sweeps until all final."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="functions.settings",
        DATABASE_URL=os.environ["BURST_DATABASE_URL"],
        CM_DISPATCH_BACKEND="local",
        CM_LOCAL_WORKERS=str(workers),
        CM_SWEEP_INTERVAL="0",
        CM_LOG_LEVEL="CRITICAL",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="benchmark-only",
    )
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    from container_manager import dispatch
    from container_manager.models import ContainerJob, ExecutorHost

    call_command("migrate", verbosity=0, interactive=False)
    ContainerJob.objects.all().delete()
    ExecutorHost.objects.all().delete()
    host = ExecutorHost.objects.create(
        name="burst-mock",
        executor_type="mock",
        host_type="unix",
        connection_string="mock://",
        executor_config={"duration": 0},
        max_concurrent_jobs=jobs,
    )
    verdicts = _count_verdicts()
    peak = _PeakConnections(os.environ["BURST_MONITOR_URL"])
    backend = dispatch.get_backend()
    began = time.perf_counter()
    ids = [
        ContainerJob.objects.create_job(image="burst", command="true", docker_host=host).pk
        for _ in range(jobs)
    ]
    submitted = time.perf_counter() - began
    backend.wait_idle(timeout=1800)
    burst_seconds = time.perf_counter() - began
    failed = dict(verdicts)
    unfinished = _unfinished(ids)
    sweeps = 0
    while _unfinished(ids) and sweeps < max_sweeps:
        dispatch.send("sweep", "", 0)
        backend.wait_idle(timeout=600)
        sweeps += 1
    total = time.perf_counter() - began
    peak.stop()
    backend.close()
    return {
        "submit_s": round(submitted, 1),
        "burst_s": round(burst_seconds, 1),
        "failed_steps": failed.get("database unavailable, retry", 0),
        "other_retries": sum(v for k, v in failed.items() if k != "database unavailable, retry"),
        "unfinished_after_burst": unfinished,
        "sweeps": sweeps,
        "unfinished_after_sweeps": _unfinished(ids),
        "failed_steps_with_sweeps": verdicts.get("database unavailable, retry", 0),
        "total_s": round(total, 1),
        "peak_server_connections": peak.peak,
        "pooled_settings": mode == "pooled",
    }


def _count_verdicts() -> dict[str, int]:
    """Count the runner's retry verdicts by reason (the local workers look runner.run up)."""
    from container_manager.engine import runner

    counts: dict[str, int] = {}
    lock = threading.Lock()
    original = runner.run

    def counted(step: str, job_id: Any) -> Any:
        outcome = original(step, job_id)
        if not outcome.done:
            with lock:
                counts[outcome.reason] = counts.get(outcome.reason, 0) + 1
        return outcome

    runner.run = counted
    return counts


def _unfinished(ids: list[Any]) -> int:
    from container_manager.models import ContainerJob
    from container_manager.rules import status as st

    return ContainerJob.objects.filter(pk__in=ids).exclude(status__in=st.TERMINAL).count()


class _PeakConnections:
    """Sample the server's client backends every 20 ms on a connection of its own."""

    def __init__(self, url: str):
        import psycopg

        self.peak = 0
        self._stop = threading.Event()
        self._connection = psycopg.connect(url, autocommit=True)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        query = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        while not self._stop.wait(0.02):
            (count,) = self._connection.execute(query).fetchone()
            self.peak = max(self.peak, count)

    def stop(self) -> None:
        """Stop sampling and close the monitor connection."""
        self._stop.set()
        self._thread.join()
        self._connection.close()


@contextmanager
def _throwaway_cluster():
    """A PostgreSQL with max_connections = 40 on its own port and directory, PgBouncer in front;
    yields the superuser URL the monitor uses; stops both and removes the directory."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not binaries:
        sys.exit("no PostgreSQL server binaries under /usr/lib/postgresql")
    bindir = binaries[-1].parent
    root = Path(tempfile.mkdtemp(prefix="cm-burst-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    shutil.chown(root, "postgres")
    shutil.chown(sockets, "postgres")
    state = Path(os.environ.get("CM_INFRA_DIR", "/tmp/cm-infra")) / f"pgbouncer-{POOLER_PORT}"

    def as_postgres(*command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], cwd="/", check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip

    try:
        as_postgres(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
        options = (
            f"-p {SERVER_PORT} -c listen_addresses=127.0.0.1 -c max_connections={MAX_CONNECTIONS}"
            f" -c unix_socket_directories={sockets} -c fsync=off -c TimeZone=UTC"
        )
        as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                    "-l", str(root / "server.log"), "start")  # fmt: skip
        monitor = f"postgres://postgres@127.0.0.1:{SERVER_PORT}/postgres"
        _psql(monitor, f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE}'")
        _psql(monitor, f"CREATE DATABASE {ROLE} OWNER {ROLE}")
        pooler = {"CM_PGBOUNCER_PORT": str(POOLER_PORT),
                  "CM_PGBOUNCER_SERVER_PORT": str(SERVER_PORT),
                  "CM_PGBOUNCER_POOL_SIZE": str(POOL_SIZE)}  # fmt: skip
        subprocess.run(["bash", str(REPO / "infra" / "pgbouncer.sh")], env={**os.environ, **pooler},
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        yield monitor
    finally:
        pid_file = state / "pgbouncer.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        if (data / "postmaster.pid").exists():
            as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


def _psql(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)


def _medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = ("failed_steps", "unfinished_after_burst", "sweeps", "unfinished_after_sweeps",
            "burst_s", "total_s", "peak_server_connections", "load_1min")  # fmt: skip
    return {
        mode: {key: statistics.median(r[key] for r in runs if r["mode"] == mode) for key in keys}
        for mode in ("pooled", "direct")
    }


if __name__ == "__main__":
    main()
