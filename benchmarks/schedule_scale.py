"""Firing schedules with many that are not due, on PostgreSQL: time, queries and the plan.

Prints one JSON line per size (0, 10k, 100k enabled schedules, none due, one due), and the
queries of firing one due schedule that has an owner (its permission check included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import setup_django  # noqa: E402


def main() -> None:
    """Fill the schedule table at each size and time ``firing.fire_due``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL URL")
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    setup_django(args.database_url, workers=1)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    for size in args.sizes:
        print(json.dumps(measure(size, args.repeat)))


def measure(size: int, repeat: int) -> dict:
    """``size`` schedules due in a day: fire with none due, then with one due, ``repeat`` times."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from container_manager import dispatch
    from container_manager.engine import firing
    from container_manager.models import ContainerJob, ExecutorHost
    from container_manager.models.schedules import JobSchedule
    from tests.backends import RecordingBackend

    ContainerJob.objects.all().delete()
    JobSchedule.objects.all().delete()
    host, _ = ExecutorHost.objects.get_or_create(
        name="bench-mock", defaults={"executor_type": "mock", "connection_string": "mock://x"}
    )
    now = timezone.now()
    later = now + timedelta(days=1)
    JobSchedule.objects.bulk_create(
        JobSchedule(name=f"s{n}", cron="0 0 * * *", docker_image="x", next_run_at=later)
        for n in range(size)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE container_manager_jobschedule")
    timings, idle, made = [], [], 0
    with dispatch.use_backend(RecordingBackend({})):
        for _ in range(repeat):
            began = time.perf_counter()
            firing.fire_due(now)
            idle.append(time.perf_counter() - began)
        for _ in range(repeat):
            due = JobSchedule(name=f"due-{time.monotonic_ns()}", cron="* * * * *",
                              docker_image="x", docker_host=host)  # fmt: skip
            due.reschedule(now - timedelta(minutes=1))
            due.save()
            with CaptureQueriesContext(connection) as queries:
                began = time.perf_counter()
                made += firing.fire_due(now)
                timings.append(time.perf_counter() - began)
        owned = JobSchedule(name=f"owned-{time.monotonic_ns()}", cron="* * * * *",
                            docker_image="x", docker_host=host, owner=_owner())  # fmt: skip
        owned.reschedule(now - timedelta(minutes=1))
        owned.save()
        with CaptureQueriesContext(connection) as owned_queries:
            made += firing.fire_due(now)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + queries.captured_queries[0]["sql"])
        plan = [row[0] for row in cursor.fetchall()]
    return {
        "not_due": size,
        "jobs_made": made,
        "none_due_median_ms": round(statistics.median(idle) * 1000, 2),
        "one_due_median_ms": round(statistics.median(timings) * 1000, 2),
        "queries_per_fire": len(queries.captured_queries),
        "queries_per_fire_owned": len(owned_queries.captured_queries),
        "plan": plan,
    }


def _owner():
    """A user who may submit jobs, as the owner of a schedule must."""
    from django.contrib.auth.models import Permission, User

    user, _ = User.objects.get_or_create(username="bench-owner")
    user.user_permissions.add(Permission.objects.get(codename="add_containerjob"))
    return User.objects.get(pk=user.pk)


if __name__ == "__main__":
    main()
