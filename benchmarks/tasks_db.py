"""django-tasks-db's db_worker running N no-op tasks on the same PostgreSQL: what a user would pick.

Run with benchmarks/.venv-tasks (benchmarks/setup.sh); K workers in --batch mode: tasks_db.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402


def main() -> None:
    """Enqueue N no-op tasks, run K ``db_worker --batch`` processes until the queue is empty."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL URL")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    project = Path(tempfile.mkdtemp(prefix="cm-tasks-db-"))
    _write_project(project, args.database_url)
    sys.path.insert(0, str(project))
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    runs = [_run(project, args.n, k) for k in args.k]
    write_result("tasks_db", {"package": "django-tasks-db", "version": _version(), "runs": runs})


def _run(project: Path, n: int, k: int) -> dict[str, float]:
    from bench_tasks import noop
    from django.db.models import Max, Min
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.all().delete()
    for _ in range(n):
        noop.enqueue()
    env = {**os.environ, "PYTHONPATH": str(project)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "django",
                "db_worker",
                "--batch",
                "--interval",
                "0.1",
                "--no-startup-delay",
            ],
            env=env,
            cwd=project,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(k)
    ]
    for worker in workers:
        worker.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    span = DBTaskResult.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
    seconds = (span["last"] - span["first"]).total_seconds()
    done = DBTaskResult.objects.filter(finished_at__isnull=False).count()
    result = {
        "k": k,
        "tasks": n,
        "finished": done,
        "seconds": round(seconds, 2),
        "tasks_per_s": round(done / seconds, 2),
        "tasks_per_s_per_process": round(done / seconds / k, 2),
        # Whole worker processes, start-up included: an upper bound of its cost per task.
        "tasks_per_cpu_s": round(done / cpu, 1),
    }
    print(result, flush=True)  # noqa: T201 - progress of a benchmark run
    return result


def _write_project(project: Path, database_url: str) -> None:
    from urllib.parse import urlparse

    url = urlparse(database_url)
    (project / "bench_settings.py").write_text(
        f"""
SECRET_KEY = "benchmark-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_tasks", "django_tasks_db"]
DATABASES = {{"default": {{
    "ENGINE": "django.db.backends.postgresql", "NAME": {url.path.lstrip("/")!r},
    "USER": {url.username!r}, "PASSWORD": {url.password!r}, "HOST": {url.hostname!r},
    "PORT": {url.port or 5432}, "CONN_MAX_AGE": 600,
}}}}
TASKS = {{"default": {{"BACKEND": "django_tasks_db.DatabaseBackend"}}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""
    )
    (project / "bench_tasks.py").write_text(
        "from django_tasks import task\n\n\n@task()\ndef noop():\n    return None\n"
    )


def _version() -> str:
    from importlib.metadata import version

    return version("django-tasks-db")


if __name__ == "__main__":
    main()
