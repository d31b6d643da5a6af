"""This project's mock jobs against django-tasks-db's no-op tasks: same PostgreSQL, same windows.

Rerun (after ``bash benchmarks/setup.sh``; 3 rounds × K = 1, 4, 8 × two windows × three
sides: 8 minutes at a load average of 20–40, not timed on a quiet machine)::

    .venv-bench/bin/python benchmarks/tasks_db.py

Three sides: this project (mock jobs), django-tasks-db (no-op tasks) and the floor
(``pg_floor.py``: psycopg alone, three statements a job). Each run has K worker processes of
one side on N jobs; in each round a side's processes are started and set up (Django, a
connection; for us the local dispatch threads; for them a ``Worker`` of ``db_worker``, polling
every 0.1 s) before any clock starts, given one run in each window, and stopped. Two windows,
the same definition on every side:

- ``submit`` (the headline): at the go signal each process submits its share (our
  ``create_job`` on a mock host at ``duration: 0``; their ``noop.enqueue()``) while its
  workers run; the window is the first submit (``created_at`` / ``enqueued_at``) to the last
  final state (our job row's ``updated_at``, their ``finished_at``).
- ``queued``: every process submits its share before it reports ready (our launch messages
  are held until the go signal); the window is the go signal to the last final state.

CPU is each worker process's ``process_time`` from the go signal: the start-up (interpreter,
Django, worker set up) is reported apart and left out of ``jobs_per_cpu_s`` on every side
(``..._with_start_up`` adds it to each run on every side, as if each run started its
processes). Rounds alternate the sides (ours, theirs, floor, ours, theirs, floor, …) within
each K; the medians of the rounds are reported with the 1-minute load average before and
after each run and the ratios of our medians to theirs and to the floor's. Databases
``cm_bench_ours``, ``cm_bench_theirs`` and ``cm_bench_floor`` (created if missing); result
``results/tasks_db_compare.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_floor  # noqa: E402
from _common import REPO, write_result  # noqa: E402

HERE = Path(__file__).resolve().parent
THEIR_PYTHON = HERE / ".venv-tasks" / "bin" / "python"
SERVER = "postgres://container_manager:container_manager@127.0.0.1:5432"
THEIR_TABLE = "django_tasks_database_dbtaskresult"
MODES = ("submit", "queued")
#: django-tasks-db's connection OPTIONS: Django's default (nothing prepared, parameters bound
#: on the client), or what functions/settings.py gives ours on a direct connection.
THEIR_OPTIONS = {
    "default": {},
    "prepared": {"server_side_binding": True, "prepare_threshold": 5},
}
SIDES = ("ours", "theirs", "floor")


def main() -> None:
    """Parent: the alternated rounds; ``--child SIDE`` is one worker process of one side."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default=SERVER, help="PostgreSQL URL without a database")
    parser.add_argument("--n", type=int, default=100, help="jobs per run")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 4, 8], help="worker processes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="our local worker threads")
    parser.add_argument("--floor-n", type=int, default=200, help="jobs per run of the floor")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--name", default="tasks_db_compare", help="result file's name")
    parser.add_argument(
        "--their-options", choices=sorted(THEIR_OPTIONS), default="default",
        help="django-tasks-db's connection OPTIONS: Django's default, or ours (prepared)",
    )  # fmt: skip
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    urls = {side: f"{args.server}/cm_bench_{side}" for side in SIDES}
    if args.child:
        _serve(args.child, urls[args.child], args)
        return
    for side in args.sides:
        _create_database(args.server, f"cm_bench_{side}")
    if "ours" in args.sides:
        _setup_ours(urls["ours"], args.workers)
    if "theirs" in args.sides:
        _migrate_theirs(urls["theirs"])
    runs = []
    for k in args.k:
        for round_ in range(1, args.rounds + 1):
            for side in args.sides:
                # One side's processes at a time: K = 8 of ours hold ~50 connections.
                pool = _Pool(side, k, args)
                for mode in MODES:
                    run = _run(args, pool, mode, urls[side])
                    run["round"] = round_
                    print(json.dumps(run), flush=True)  # noqa: T201 - progress of a long run
                    runs.append(run)
                pool.close()
    write_result(
        args.name,
        {"n": args.n, "k": args.k, "rounds": args.rounds, "our_local_workers": args.workers,
         "floor_n": args.floor_n, "sides": args.sides, "their_interval_s": 0.1,
         "their_options": THEIR_OPTIONS[args.their_options],
         "package": "django-tasks-db", "version": _their_version() if "theirs" in args.sides
         else None, "loaded": True, "medians": _medians(runs, args.sides), "runs": runs},
    )  # fmt: skip


class _Pool:
    """K worker processes of one side, started together and given one run after another."""

    def __init__(self, side: str, k: int, args: argparse.Namespace):
        self.side, self.k = side, k
        python = str(THEIR_PYTHON) if side == "theirs" else sys.executable
        command = [python, __file__, "--server", args.server, "--workers", str(args.workers)]
        command += ["--their-options", args.their_options]
        self.children = [
            subprocess.Popen(
                [*command, "--child", side],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )  # fmt: skip
            for _ in range(k)
        ]
        self.start_up_cpu = [self._read(child)["start_up_cpu_s"] for child in self.children]

    def prepare(self, mode: str, n: int) -> float:
        """Each process's share; the CPU seconds spent submitting before the go (queued)."""
        shares = [n // self.k + (1 if i < n % self.k else 0) for i in range(self.k)]
        for child, share in zip(self.children, shares, strict=True):
            self._write(child, {"mode": mode, "share": share})
        return sum(self._read(child)["submit_cpu_s"] for child in self.children)

    def go(self) -> float:
        """Release every process; wait until all are done; their CPU seconds from the go."""
        for child in self.children:
            self._write(child, {"go": True})
        return sum(self._read(child)["cpu_s"] for child in self.children)

    def close(self) -> None:
        for child in self.children:
            child.stdin.close()
        for child in self.children:
            child.wait()

    @staticmethod
    def _write(child: subprocess.Popen, message: dict[str, Any]) -> None:
        child.stdin.write(json.dumps(message) + "\n")
        child.stdin.flush()

    @staticmethod
    def _read(child: subprocess.Popen) -> dict[str, Any]:
        line = child.stdout.readline()
        if not line:
            raise RuntimeError(f"a worker process ended (exit status {child.wait()})")
        return json.loads(line)


def _run(args: argparse.Namespace, pool: _Pool, mode: str, url: str) -> dict[str, Any]:
    """One run of one side's K processes on N jobs in one mode: windows, CPU, load."""
    side, k = pool.side, pool.k
    n = args.floor_n if side == "floor" else args.n
    if side == "ours":
        _reset_ours(n)
    elif side == "theirs":
        _sql(url, f"TRUNCATE {THEIR_TABLE}")
    else:
        pg_floor.prepare(url)
    submit_cpu = pool.prepare(mode, n)
    load_before = os.getloadavg()[0]
    began = time.time()
    work_cpu = pool.go()
    first, last, done = _span(side, url)
    start = first if mode == "submit" else began
    seconds = last - start
    start_up_cpu = sum(pool.start_up_cpu)
    return {
        "side": side,
        "mode": mode,
        "k": k,
        "jobs": n,
        "done": done,
        "seconds": round(seconds, 3),
        "go_to_first_submit_s": round(first - began, 3),
        "jobs_per_s": round(done / seconds, 2),
        "jobs_per_s_per_process": round(done / seconds / k, 2),
        "jobs_per_cpu_s": round(done / work_cpu, 1),
        # The processes' start-up spread over this run's jobs, as if each run started them.
        "jobs_per_cpu_s_with_start_up": round(done / (work_cpu + start_up_cpu), 1),
        "cpu_ms_per_job": round(work_cpu / done * 1000, 2),
        "start_up_cpu_s_per_process": round(start_up_cpu / k, 3),
        "submit_cpu_s_before_go": round(submit_cpu, 3),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def _span(side: str, url: str) -> tuple[float, float, int]:
    """Epoch seconds of the first submit and the last final state, and the jobs done."""
    if side == "floor":
        return pg_floor.span(url)
    if side == "ours":
        from django.db.models import Count, Max, Min, Q

        from container_manager.models import ContainerJob

        row = ContainerJob.objects.aggregate(
            first=Min("created_at"), last=Max("updated_at"),
            done=Count("pk", filter=Q(status="completed")),
        )  # fmt: skip
        return row["first"].timestamp(), row["last"].timestamp(), row["done"]
    sql = (
        "SELECT extract(epoch FROM min(enqueued_at)), extract(epoch FROM max(finished_at)), "
        f"count(*) FILTER (WHERE status = 'SUCCESSFUL') FROM {THEIR_TABLE}"
    )
    first, last, done = _sql(url, sql)
    return float(first), float(last), done


def _medians(runs: list[dict[str, Any]], sides: list[str]) -> list[dict[str, Any]]:
    """Per K and mode: each side's medians, and ours over each other side's median."""
    keys = ("jobs_per_s", "jobs_per_s_per_process", "jobs_per_cpu_s",
            "jobs_per_cpu_s_with_start_up", "cpu_ms_per_job",
            "start_up_cpu_s_per_process")  # fmt: skip
    out = []
    for k in sorted({run["k"] for run in runs}):
        for mode in [mode for mode in MODES if any(r["mode"] == mode for r in runs)]:
            row: dict[str, Any] = {"k": k, "mode": mode}
            for side in sides:
                mine = [r for r in runs if r["k"] == k and r["mode"] == mode and r["side"] == side]
                if not mine:
                    continue
                row[side] = {key: round(statistics.median(r[key] for r in mine), 2) for key in keys}
                row[side]["loads"] = [(r["load_before"], r["load_after"]) for r in mine]
                row[side]["all_jobs_per_s"] = [r["jobs_per_s"] for r in mine]
            for other in ("theirs", "floor"):
                if "ours" in row and other in row:
                    row[f"ours_over_{other}"] = {
                        key: round(row["ours"][key] / row[other][key], 3)
                        for key in ("jobs_per_s", "jobs_per_s_per_process", "jobs_per_cpu_s",
                                    "jobs_per_cpu_s_with_start_up")
                    }  # fmt: skip
            out.append(row)
    return out


# -- our side: this project's Django, in the parent and in our worker processes ---------------


def _setup_ours(url: str, workers: int) -> None:
    from _common import setup_django

    setup_django(url, workers, sweep_interval=60)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _reset_ours(n: int) -> None:
    from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost

    ContainerExecution.objects.all().delete()
    ContainerJob.objects.all().delete()
    ExecutorHost.objects.all().delete()
    ExecutorHost.objects.create(
        name="bench-tasks-db", executor_type="mock", connection_string="mock://",
        executor_config={"duration": 0}, max_concurrent_jobs=n,
    )  # fmt: skip


class _Held:
    """A dispatch backend that keeps the messages, to be sent once the go signal came."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str, float]] = []

    def send(self, step: str, job_id: str, delay: float) -> None:
        self.messages.append((step, job_id, delay))

    def send_many(self, messages: list[tuple[str, str, float]]) -> None:
        self.messages.extend(messages)

    def close(self) -> None:
        """Nothing to release."""


class _Ours:
    """One of our worker processes: the local dispatch threads, mock jobs."""

    def __init__(self, url: str, args: argparse.Namespace):
        from _common import setup_django

        setup_django(url, args.workers, sweep_interval=60)
        from container_manager import dispatch
        from container_manager.models import ExecutorHost

        self.backend = dispatch.get_backend()
        self.backend.start()
        ExecutorHost.objects.exists()  # the connection, opened before the clock starts
        self.held = _Held()

    def prepare(self, mode: str, share: int) -> None:
        from container_manager import dispatch
        from container_manager.models import ExecutorHost

        self.host = ExecutorHost.objects.get()
        self.held = _Held()
        if mode == "queued":
            with dispatch.use_backend(self.held):
                self._submit(share)

    def run(self, mode: str, share: int) -> None:
        from django.db import close_old_connections

        from container_manager.models import ContainerJob

        for message in self.held.messages:
            self.backend.send(*message)
        if mode == "submit":
            self._submit(share)
        while ContainerJob.objects.live().exists():
            close_old_connections()
            time.sleep(0.1)

    def _submit(self, share: int) -> None:
        from container_manager.models import ContainerJob

        for _ in range(share):
            ContainerJob.objects.create_job(image="x", command="true", docker_host=self.host)


# -- their side: a throwaway project in benchmarks/.venv-tasks ----------------------------------


class _Theirs:
    """One of their worker processes: a ``db_worker`` ``Worker`` in a thread, no-op tasks."""

    def __init__(self, url: str, args: argparse.Namespace):
        _setup_theirs(url, args.their_options)
        from django_tasks_db.models import DBTaskResult

        DBTaskResult.objects.exists()  # the connection, opened before the clock starts

    def prepare(self, mode: str, share: int) -> None:
        if mode == "queued":
            self._submit(share)

    def run(self, mode: str, share: int) -> None:
        from django.db import close_old_connections
        from django_tasks_db.management.commands.db_worker import Worker
        from django_tasks_db.models import DBTaskResult

        worker = Worker(
            queue_names=["default"], interval=0.1, batch=False, backend_name="default",
            startup_delay=False, max_tasks=None, worker_id=f"bench-{os.getpid()}",
            excluded_queue_names=[],
        )  # fmt: skip
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        if mode == "submit":
            self._submit(share)
        while DBTaskResult.objects.filter(finished_at__isnull=True).exists():
            close_old_connections()
            time.sleep(0.1)
        worker.running = False
        thread.join()

    @staticmethod
    def _submit(share: int) -> None:
        from bench_tasks import noop

        for _ in range(share):
            noop.enqueue()


def _setup_theirs(url: str, options: str = "default") -> None:
    import tempfile

    project = Path(tempfile.mkdtemp(prefix="cm-tasks-db-"))
    parsed = urlparse(url)
    (project / "bench_settings.py").write_text(
        f"""
SECRET_KEY = "benchmark-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_tasks", "django_tasks_db"]
DATABASES = {{"default": {{
    "ENGINE": "django.db.backends.postgresql", "NAME": {parsed.path.lstrip("/")!r},
    "USER": {parsed.username!r}, "PASSWORD": {parsed.password!r}, "HOST": {parsed.hostname!r},
    "PORT": {parsed.port or 5432}, "CONN_MAX_AGE": 600, "OPTIONS": {THEIR_OPTIONS[options]!r},
}}}}
TASKS = {{"default": {{"BACKEND": "django_tasks_db.DatabaseBackend"}}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""
    )
    (project / "bench_tasks.py").write_text(
        "from django_tasks import task\n\n\n@task()\ndef noop():\n    return None\n"
    )
    sys.path.insert(0, str(project))
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_settings"
    import django

    django.setup()


def _migrate_theirs(url: str) -> None:
    code = (
        "import sys; sys.argv = ['tasks_db.py']; "
        f"sys.path.insert(0, {str(HERE)!r}); import tasks_db; tasks_db._setup_theirs({url!r}); "
        "from django.core.management import call_command; "
        "call_command('migrate', verbosity=0, interactive=False)"
    )
    subprocess.run([str(THEIR_PYTHON), "-c", code], check=True, cwd=REPO)


def _their_version() -> str:
    code = "from importlib.metadata import version; print(version('django-tasks-db'))"
    return subprocess.run(
        [str(THEIR_PYTHON), "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


# -- all sides ------------------------------------------------------------------------------


def _serve(side: str, url: str, args: argparse.Namespace) -> None:
    """A worker process: set up, then prepare and run what the parent sends until its EOF."""
    cpu = time.process_time()
    worker = {"ours": _Ours, "theirs": _Theirs, "floor": pg_floor.FloorWorker}[side](url, args)
    _say(start_up_cpu_s=time.process_time() - cpu)
    for line in sys.stdin:
        task = json.loads(line)
        cpu = time.process_time()
        worker.prepare(task["mode"], task["share"])
        _say(submit_cpu_s=time.process_time() - cpu)
        json.loads(sys.stdin.readline())  # the go
        cpu = time.process_time()
        worker.run(task["mode"], task["share"])
        _say(cpu_s=time.process_time() - cpu)


def _say(**message: float) -> None:
    print(json.dumps(message), flush=True)  # noqa: T201 - to the parent


def _sql(url: str, sql: str) -> Any:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(sql)
        return cursor.fetchone() if cursor.description else None


def _create_database(server: str, name: str) -> None:
    """CREATE DATABASE ``name`` unless it exists."""
    if not _sql(f"{server}/postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        _sql(f"{server}/postgres", f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    main()
