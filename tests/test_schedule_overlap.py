"""The three overlap policies on a real Docker engine: allow, skip and replace a live job.

Schedules are fired with an injected clock; the jobs run through the local dispatch backend.
"""

from datetime import UTC, datetime

import pytest

from container_manager.engine import firing
from container_manager.models import ContainerJob
from container_manager.models.schedules import JobSchedule
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

FIRST, SECOND = (
    datetime(2026, 6, 1, 10, 0, 30, tzinfo=UTC),
    datetime(2026, 6, 1, 11, 0, 30, tzinfo=UTC),
)


def status(job):
    return ContainerJob.objects.get(pk=job.pk).status


def scheduled_jobs(schedule):
    return list(
        ContainerJob.objects.filter(executor_metadata__schedule__id=schedule.pk).order_by(
            "created_at"
        )
    )


def fire_at(schedule_id, now):
    return firing.fire(JobSchedule.objects.select_related("last_job").get(pk=schedule_id), now)


def finish(jobs):
    for job in jobs:
        ContainerJob.objects.get(pk=job.pk).cancel()
    wait_for(lambda: all(ContainerJob.objects.get(pk=j.pk).is_terminal_status for j in jobs), 60)


@pytest.mark.parametrize("overlap", ["allow", "skip", "replace"])
def test_overlap_policy_with_a_live_job(local, docker_host, docker_ready, overlap):
    schedule = JobSchedule(
        name=f"every-hour-{overlap}", cron="0 * * * *", overlap=overlap, docker_host=docker_host,
        docker_image=docker_ready, command="sleep 60", timeout_seconds=120,
    )  # fmt: skip
    schedule.reschedule(datetime(2026, 6, 1, 9, 59, tzinfo=UTC))
    schedule.save()
    (first,) = fire_at(schedule.pk, FIRST)
    wait_for(lambda: status(first) == "running", 60)
    second = fire_at(schedule.pk, SECOND)
    row = JobSchedule.objects.get(pk=schedule.pk)
    try:
        if overlap == "skip":
            assert second == []
            assert "skipped" in row.last_outcome and row.last_job_id == first.pk
            assert status(first) == "running"
        else:
            (second,) = second
            assert row.last_job_id == second.pk
            wait_for(lambda: status(second) == "running", 60)
            if overlap == "allow":
                assert status(first) == "running"  # both run at once
            else:
                wait_for(lambda: status(first) == "cancelled", 60)
        assert len(scheduled_jobs(schedule)) == (1 if overlap == "skip" else 2)
    finally:
        finish(scheduled_jobs(schedule))
