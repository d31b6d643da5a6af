"""Helpers shared by the benchmark scripts: statistics, Docker times, result files, Django setup.

Not part of the package: the scripts under benchmarks/ import it from their own folder.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
IMAGE = os.environ.get("CM_TEST_IMAGE", "cm-busybox:latest")
COMMAND = "true"
DOCKER_URL = "unix:///var/run/docker.sock"


def percentile(values: list[float], pct: float) -> float | None:
    """Linear-interpolated percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(seconds: list[float]) -> dict[str, float | None]:
    """p50 / p95 / max of a list of latencies in seconds, as milliseconds."""
    return {
        "p50_ms": _ms(percentile(seconds, 50)),
        "p95_ms": _ms(percentile(seconds, 95)),
        "max_ms": _ms(max(seconds) if seconds else None),
        "samples": len(seconds),
    }


def docker_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 nanosecond time as an aware datetime (its zero time is None)."""
    if not value or value.startswith("0001-"):
        return None
    return datetime.fromisoformat(value).astimezone(UTC)


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the machine it ran on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {**data, "machine": machine(), "written_at": datetime.now(UTC).isoformat()}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "executable": sys.executable,
    }


def setup_django(database_url: str, workers: int, sweep_interval: float = 0) -> None:
    """Configure ``functions.settings`` for a benchmark process and call ``django.setup()``."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "functions.settings"
    os.environ["DATABASE_URL"] = database_url
    os.environ["CM_DISPATCH_BACKEND"] = "local"
    os.environ["CM_LOCAL_WORKERS"] = str(workers)
    os.environ["CM_SWEEP_INTERVAL"] = str(sweep_interval)
    os.environ.setdefault("CM_LOG_LEVEL", "ERROR")
    # As deployed: DEBUG on would record every query (and on SQLite add a SELECT QUOTE per query).
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def setup_django_migrated(database_url: str) -> None:
    """``setup_django`` for a one-process benchmark (one worker), then ``migrate``."""
    setup_django(database_url, workers=1)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def fresh_mock_host(slots: int) -> Any:
    """Delete every job and host, then make one mock host (``duration: 0``) of ``slots`` slots."""
    from container_manager.models import ContainerJob, ExecutorHost

    ContainerJob.objects.all().delete()
    ExecutorHost.objects.all().delete()
    return ExecutorHost.objects.create(
        name="bench-mock",
        executor_type="mock",
        connection_string="mock://",
        executor_config={"duration": 0},
        max_concurrent_jobs=slots,
    )


def server_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this machine's ``postgres`` processes.

    Read from ``/proc``: the local PostgreSQL server's backends, WAL writer and autovacuum.
    A backend that exits between two readings takes its share with it, so compare readings
    taken while the measured connections are open.
    """
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if comm.startswith("postgres"):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def fresh_sqlite_url(prefix: str) -> str:
    """The URL of a new SQLite file in a new temporary directory named ``prefix`` and more."""
    return f"sqlite:///{tempfile.mkdtemp(prefix=prefix)}/bench.sqlite3"


def copy_rows(model: Any, template: Any, special: dict[str, str], count: int) -> None:
    """Insert ``count`` copies of ``template``'s row by ``generate_series`` (``i`` from 1).

    ``special`` maps a column to the SQL expression that replaces the template's value.
    """
    from django.db import connection

    table = model._meta.db_table
    columns = [field.column for field in model._meta.concrete_fields]
    values = [special.get(column, f"tpl.{column}") for column in columns]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM {table} AS tpl, generate_series(1, %s) AS i "
            "WHERE tpl.id = %s",
            [count, template.pk],
        )


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)
