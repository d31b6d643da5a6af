"""Scale-out on PostgreSQL: K worker processes, one or four hosts, with and without a backlog.

Mock jobs (duration 0 unless ``--duration``), a one-minute sweep; slots in use, lock waits,
connections, steps per job: scale_out.json. With ``--duration D`` a backlog run is also
compared with what its slots allow at most, capacity / D jobs per second.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import setup_django, write_result  # noqa: E402

HERE = Path(__file__).resolve().parent
SESSIONS = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
LOCK_WAITS = (
    "SELECT wait_event, count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock' GROUP BY wait_event"
)


def main() -> None:
    """Parent: every (hosts, K) pair of runs in turn; child (``--child``): one worker process.

    For each hosts and K, a run without a backlog and one with it alternate ``--repeat`` times,
    so that the machine's drift between runs falls on both alike.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL URL")
    parser.add_argument("--n", type=int, default=400, help="jobs per run")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8], help="processes")
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--capacity", type=int, default=50, help="slots in all, with a backlog")
    parser.add_argument("--workers", type=int, default=4, help="local worker threads a process")
    parser.add_argument("--sweep", type=float, default=60, help="sweep interval, seconds")
    parser.add_argument("--duration", type=float, default=0, help="seconds a mock job runs")
    parser.add_argument(
        "--repeat", type=int, default=1, help="pairs (without, then with a backlog) per hosts and K"
    )
    parser.add_argument("--label", default="", help="suffix of the result file's name")
    parser.add_argument("--child", nargs=2, metavar=("SHARE", "GO_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    setup_django(args.database_url, args.workers, sweep_interval=args.sweep)
    if args.child:
        _child(int(args.child[0]), Path(args.child[1]))
        return
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    runs = [
        _run(args, k, hosts, backlog)
        for hosts in args.hosts
        for k in args.k
        for _ in range(args.repeat)
        for backlog in (False, True)
    ]
    write_result(
        f"scale_out{args.label}",
        {"n": args.n, "capacity": args.capacity, "workers": args.workers, "duration": args.duration,
         "sweep_interval": args.sweep, "debug": _debug(), "repeat": args.repeat,
         "backlog_ratios": _ratios(runs), "runs": runs,
         "conn_max_age": settings.DATABASES["default"]["CONN_MAX_AGE"]},
    )  # fmt: skip


def _run(args: argparse.Namespace, k: int, hosts: int, backlog: bool) -> dict[str, Any]:
    from django.db.models import Max, Min

    from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost, HostSlot

    capacity = args.capacity if backlog else args.n
    _reset(hosts, capacity, args.duration)
    sessions = _sessions()
    go = Path(f"/tmp/cm-scale-out-go-{os.getpid()}")
    go.unlink(missing_ok=True)
    shares = [args.n // k + (1 if i < args.n % k else 0) for i in range(k)]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--database-url",
                args.database_url,
                "--workers",
                str(args.workers),
                "--sweep",
                str(args.sweep),
                "--child",
                str(share),
                str(go),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for share in shares
    ]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    sampler = _Sampler()
    sampler.start()
    go.touch()
    reports = [json.loads(child.stdout.readline()) for child in children]
    for child in children:
        child.wait()
    sampler.stop()
    go.unlink(missing_ok=True)
    sessions = _sessions() - sessions
    # Until the last job's final move (its row's updated_at): a mock run's completed_at is the
    # platform's end, which precedes its harvest, so it would not count harvests left queued.
    span = ContainerJob.objects.aggregate(
        first=Min("created_at"), submitted=Max("created_at"), last=Max("updated_at")
    )
    seconds = (span["last"] - span["first"]).total_seconds()
    # Until the last job left pending: while jobs waited, every slot could be busy.
    last_launch = ContainerExecution.objects.aggregate(at=Max("started_at"))["at"]
    waiting = (last_launch - span["first"]).total_seconds()
    backlogged = sampler.slots_while_backlogged(capacity)
    cpu = sum(report["cpu_s"] for report in reports)
    done = ContainerJob.objects.filter(status="completed").count()
    in_use = sampler.slots_during(seconds)
    while_waiting = sampler.slots_during(waiting)
    result = {
        "k": k,
        "hosts": hosts,
        "backlog": backlog,
        "capacity": capacity,
        "completed": done,
        "seconds": round(seconds, 2),
        "submit_seconds": round((span["submitted"] - span["first"]).total_seconds(), 2),
        "jobs_per_s": round(done / seconds, 2),
        "jobs_per_s_per_process": round(done / seconds / k, 2),
        "jobs_per_cpu_s": round(done / cpu, 1),
        "cpu_s_per_job_ms": round(cpu / done * 1000, 2),
        "mean_slots_in_use": round(statistics.fmean(in_use), 1) if in_use else None,
        "slots_in_use_pct": _pct(in_use, capacity),
        "seconds_jobs_waited": round(waiting, 2),
        "slots_in_use_pct_until_last_launch": _pct(while_waiting, capacity),
        "samples_with_more_pending_than_free_slots": len(backlogged),
        "slots_in_use_pct_while_more_pending_than_free": _pct(backlogged, capacity),
        **_hold_times(),
        **_slot_bound(capacity, args.duration, done / seconds, backlog),
        "steps_per_job": _steps_per_job(reports, done),
        "new_connections_per_job": round(sessions / done, 2),
        "lock_wait_samples": sampler.waits,
        "mean_backends_waiting_on_locks": round(sampler.mean_waiting(), 3),
        "samples": sampler.count,
        "max_count_seen": sampler.max_slots,
        # As the runs left it (PostgreSQL: refreshed without waiting, so it may lag until a sweep).
        "host_counts_after": list(ExecutorHost.objects.values_list("current_job_count", flat=True)),
        "slots_held_after": HostSlot.objects.filter(job__isnull=False).count(),
    }
    print(json.dumps(result), flush=True)  # noqa: T201 - progress of a benchmark run
    return result


def _ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per hosts and K: each pair's jobs/s with a backlog over that without, and the median."""
    pairs: dict[tuple[int, int], list[float]] = {}
    for without, with_ in zip(runs[::2], runs[1::2], strict=True):
        key = (without["hosts"], without["k"])
        pairs.setdefault(key, []).append(round(with_["jobs_per_s"] / without["jobs_per_s"], 3))
    return [
        {"hosts": hosts, "k": k, "ratios": ratios, "median": round(statistics.median(ratios), 3)}
        for (hosts, k), ratios in pairs.items()
    ]


def _slot_bound(capacity: int, duration: float, rate: float, backlog: bool) -> dict[str, float]:
    """With a backlog of jobs that run ``duration`` s: the slots' ceiling and the share reached."""
    if not (backlog and duration):
        return {}
    ceiling = capacity / duration
    return {"slot_bound_jobs_per_s": round(ceiling, 2), "of_slot_bound": round(rate / ceiling, 3)}


def _steps_per_job(reports: list[dict[str, Any]], done: int) -> dict[str, float]:
    """Each ``step:outcome`` the processes counted, per completed job."""
    totals: dict[str, float] = {}
    for report in reports:
        for name, number in report["outcomes"].items():
            totals[name] = totals.get(name, 0) + number
    return {name: round(number / done, 2) for name, number in sorted(totals.items())}


def _pct(samples: list[int], capacity: int) -> float | None:
    return round(100 * statistics.fmean(samples) / capacity, 1) if samples else None


def _sessions() -> int:
    """Connections the server has accepted for this database so far (PostgreSQL 14+)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(SESSIONS)
        return cursor.fetchone()[0]


def _hold_times() -> dict[str, float]:
    """Mean seconds of a slot's hold: hand-off or launch to running, end to harvest, in all."""
    from django.db.models import Avg, F

    from container_manager.models import ContainerExecution

    parts = {
        "launch_s": F("accepted_at") - F("started_at"),
        "harvest_after_end_s": F("harvested_at") - F("finished_at"),
        "hold_s": F("harvested_at") - F("started_at"),
    }
    means = ContainerExecution.objects.aggregate(**{k: Avg(v) for k, v in parts.items()})
    return {f"mean_{k}": round(v.total_seconds(), 3) for k, v in means.items() if v is not None}


def _reset(hosts: int, capacity: int, duration: float) -> None:
    from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost

    ContainerExecution.objects.all().delete()
    ContainerJob.objects.all().delete()
    ExecutorHost.objects.all().delete()
    for index in range(hosts):
        ExecutorHost.objects.create(
            name=f"bench-scale-{index}", executor_type="mock", connection_string="mock://",
            executor_config={"duration": duration},
            max_concurrent_jobs=capacity // hosts + (1 if index < capacity % hosts else 0),
        )  # fmt: skip


class _Sampler(threading.Thread):
    """Every 0.1 s: held slot rows of all hosts, pending jobs, backends waiting on a lock."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self._stop_event = threading.Event()
        self.slots: list[tuple[float, int, int]] = []
        self.waits: dict[str, int] = {}
        self.waiting_total = 0
        self.count = 0
        self.max_slots = 0

    def run(self) -> None:
        from django.db import connection

        from container_manager.models import ContainerJob, HostSlot

        began = time.monotonic()
        while not self._stop_event.wait(0.1):
            used = HostSlot.objects.filter(job__isnull=False).count()
            pending = ContainerJob.objects.filter(status="pending").count()
            with connection.cursor() as cursor:
                cursor.execute(LOCK_WAITS)
                rows = cursor.fetchall()
            self.slots.append((time.monotonic() - began, used, pending))
            self.max_slots = max(self.max_slots, used)
            for event, number in rows:
                self.waits[event] = self.waits.get(event, 0) + number
                self.waiting_total += number
            self.count += 1
        connection.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def slots_during(self, seconds: float) -> list[int]:
        """Slot samples from the first submission to the last completion."""
        return [used for at, used, _ in self.slots if at <= seconds]

    def slots_while_backlogged(self, capacity: int) -> list[int]:
        """Slot samples taken while more jobs were pending than slots were free."""
        return [used for _, used, pending in self.slots if pending > capacity - used]

    def mean_waiting(self) -> float:
        return self.waiting_total / self.count if self.count else 0.0


def _child(share: int, go: Path) -> None:
    """Submit ``share`` jobs round-robin over the hosts, then run steps until none is live."""
    from django.db import close_old_connections

    from container_manager import dispatch
    from container_manager.models import ContainerJob, ExecutorHost
    from container_manager.telemetry import counters

    hosts = list(ExecutorHost.objects.order_by("name"))
    dispatch.get_backend().start()
    print("ready", flush=True)  # noqa: T201 - the parent waits for it
    while not go.exists():
        time.sleep(0.01)
    cpu = time.process_time()
    for index in range(share):
        ContainerJob.objects.create_job(
            image="x", command="true", docker_host=hosts[index % len(hosts)]
        )
    while ContainerJob.objects.live().exists():
        close_old_connections()
        time.sleep(0.2)
    cpu = time.process_time() - cpu
    dispatch.reset_backend()
    outcomes = {":".join(labels): n for labels, n in counters.STEP_OUTCOMES.snapshot().items()}
    report = {"cpu_s": cpu, "submitted": share, "outcomes": outcomes}
    print(json.dumps(report), flush=True)  # noqa: T201 - to the parent


def _debug() -> bool:
    from django.conf import settings

    return settings.DEBUG


if __name__ == "__main__":
    main()
