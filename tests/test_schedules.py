"""Schedules fired by the sweep under an injected clock: DST changes, downtime, racing sweeps.

The recording backend delivers nothing, so the jobs made stay pending and can be counted.
"""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from container_manager.engine import firing, steps
from container_manager.models import ContainerJob
from container_manager.models.schedules import JobSchedule

pytestmark = pytest.mark.django_db


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def make(host, now, **fields):
    """A schedule whose ``next_run_at`` is computed as of ``now`` (the injected clock)."""
    values = {"name": "nightly", "cron": "30 2 * * *", "docker_image": "x", "docker_host": host}
    schedule = JobSchedule(**{**values, **fields})
    schedule.full_clean()
    schedule.reschedule(now)
    schedule.save()
    return schedule


def runs(schedule):
    """The scheduled times of the schedule's jobs, oldest first."""
    jobs = ContainerJob.objects.filter(executor_metadata__schedule__id=schedule.pk)
    return sorted(
        datetime.fromisoformat(j.executor_metadata["schedule"]["scheduled_for"]) for j in jobs
    )


def sweep_every(step, start, end):
    now = start
    while now <= end:
        steps.sweep(now=now)
        now += step


def test_bad_cron_and_timezone_name_the_field(mock_host):
    for fields, field in (
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * *"}, "cron"),
        ({"cron": "@sometimes"}, "cron"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
    ):
        schedule = JobSchedule(name="bad", docker_image="x", **{"cron": "@daily", **fields})
        with pytest.raises(ValidationError) as caught:
            schedule.full_clean()
        assert list(caught.value.message_dict) == [field]
        assert caught.value.message_dict[field][0].startswith(f"{field}: ")
        with pytest.raises(ValidationError):
            schedule.save()
    assert not JobSchedule.objects.exists()


def test_aliases_and_next_run_computed_on_save(mock_host):
    schedule = JobSchedule.objects.create(name="h", cron="@hourly", docker_image="x")
    assert schedule.next_run_at is not None and schedule.next_run_at.minute == 0
    schedule.enabled = False
    schedule.save()
    assert JobSchedule.objects.get(pk=schedule.pk).next_run_at is None
    schedule.enabled = True
    schedule.save()
    assert JobSchedule.objects.get(pk=schedule.pk).next_run_at is not None


def test_daily_run_across_spring_forward_runs_once_after_the_gap(recording, mock_host):
    # Europe/Berlin skips 02:00-03:00 on 2026-03-29: the 02:30 run happens at 03:00 CEST.
    schedule = make(mock_host, utc(2026, 3, 27, 12), timezone="Europe/Berlin")
    sweep_every(timedelta(minutes=15), utc(2026, 3, 27, 12), utc(2026, 3, 31, 12))
    assert runs(schedule) == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST, right after the gap
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_fall_back_daily_runs_once_hourly_runs_every_real_hour(recording, mock_host):
    # Europe/Berlin repeats 02:00-03:00 on 2026-10-25.
    start, end = utc(2026, 10, 24, 21, 45), utc(2026, 10, 25, 4, 15)
    daily = make(mock_host, start, timezone="Europe/Berlin")
    hourly = make(mock_host, start, name="hourly", cron="@hourly", timezone="Europe/Berlin")
    sweep_every(timedelta(minutes=15), start, end)
    assert runs(daily) == [utc(2026, 10, 25, 0, 30)]  # the first 02:30 (CEST) only
    assert runs(hourly) == [utc(2026, 10, 24, h) for h in (22, 23)] + [
        utc(2026, 10, 25, h) for h in range(5)
    ]  # 02:00 CEST and 02:00 CET are both there: a real hour apart


@pytest.mark.parametrize(("catchup", "expected_hours"), [(0, []), (1, [14]), (3, [12, 13, 14])])
def test_downtime_makes_up_to_catchup_missed_runs(recording, mock_host, catchup, expected_hours):
    schedule = make(mock_host, utc(2026, 6, 1, 9, 59), cron="0 * * * *", catchup=catchup)
    # The sweep was down from 09:59 to 14:20: the runs of 10:00 to 14:00 were missed.
    steps.sweep(now=utc(2026, 6, 1, 14, 20))
    assert runs(schedule) == [utc(2026, 6, 1, h) for h in expected_hours]
    assert JobSchedule.objects.get(pk=schedule.pk).next_run_at == utc(2026, 6, 1, 15)
    steps.sweep(now=utc(2026, 6, 1, 14, 21))
    assert len(runs(schedule)) == len(expected_hours)


def test_run_within_the_grace_is_on_time_and_made_with_catchup_zero(recording, mock_host):
    schedule = make(mock_host, utc(2026, 6, 1, 9, 59), cron="0 * * * *", catchup=0)
    steps.sweep(now=utc(2026, 6, 1, 10, 3))
    assert runs(schedule) == [utc(2026, 6, 1, 10)]
    job = ContainerJob.objects.get(executor_metadata__schedule__id=schedule.pk)
    assert job.executor_metadata["schedule"]["name"] == "nightly"
    assert job.docker_host == mock_host and job.status == "pending"


def test_two_sweeps_with_the_same_snapshot_make_each_run_once(recording, mock_host):
    schedule = make(mock_host, utc(2026, 6, 1, 9, 59), cron="0 * * * *")
    now = utc(2026, 6, 1, 10, 1)
    first, second = JobSchedule.objects.get(pk=schedule.pk), JobSchedule.objects.get(pk=schedule.pk)
    assert len(firing.fire(first, now)) == 1
    assert firing.fire(second, now) == []  # its compare-and-set finds next_run_at moved
    steps.sweep(now=now)
    assert runs(schedule) == [utc(2026, 6, 1, 10)]


def test_editing_a_stale_copy_does_not_refire(recording, mock_host):
    schedule = make(mock_host, utc(2026, 6, 1, 9, 59), cron="0 * * * *")
    stale = JobSchedule.objects.get(pk=schedule.pk)
    steps.sweep(now=utc(2026, 6, 1, 10, 1))
    stale.command = "echo changed"
    stale.save()
    steps.sweep(now=utc(2026, 6, 1, 10, 2))
    assert runs(schedule) == [utc(2026, 6, 1, 10)]
    assert JobSchedule.objects.get(pk=schedule.pk).command == "echo changed"


def test_rescheduling_an_existing_schedule_is_saved(recording, mock_host):
    schedule = make(mock_host, utc(2026, 6, 1, 9, 59), cron="0 * * * *")
    schedule.reschedule(utc(2026, 6, 2, 9, 59))
    schedule.save()
    assert JobSchedule.objects.get(pk=schedule.pk).next_run_at == utc(2026, 6, 2, 10)


def test_schedules_not_due_cost_one_query(recording, mock_host, django_assert_num_queries):
    now = utc(2026, 6, 1, 9, 59)
    for n in range(40):
        make(mock_host, now, name=f"s{n}", cron="0 * * * *")
    with django_assert_num_queries(1):
        assert firing.fire_due(now + timedelta(seconds=30)) == 0


def test_a_job_that_cannot_be_made_is_recorded_and_the_schedule_moves_on(recording, mock_host):
    schedule = make(mock_host, utc(2026, 6, 1, 9, 59), cron="0 * * * *")
    mock_host.is_active = False  # after the save: bad limits are refused at save now
    mock_host.save()
    steps.sweep(now=utc(2026, 6, 1, 10, 1))
    row = JobSchedule.objects.get(pk=schedule.pk)
    assert "docker_host" in row.last_outcome and row.next_run_at == utc(2026, 6, 1, 11)
    assert runs(schedule) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_on_postgres_make_each_run_once(postgres_only, recording, mock_host):
    now = utc(2026, 6, 1, 9, 59)
    schedules = [
        make(mock_host, now, name=f"race-{n}", cron="0 * * * *", catchup=2) for n in range(20)
    ]
    later = utc(2026, 6, 1, 12, 1)  # 10:00 and 11:00 missed, 12:00 on time
    barrier = threading.Barrier(4)
    made, errors = [], []

    def sweep():
        try:
            barrier.wait(timeout=30)
            made.append(firing.fire_due(later))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(made) == 20 * 3
    for schedule in schedules:
        assert runs(schedule) == [utc(2026, 6, 1, h) for h in (10, 11, 12)]
