"""Firing schedules: the sweep makes the jobs that are due, once per schedule and scheduled time.

A compare-and-set on ``next_run_at`` claims a schedule's due times; the jobs commit with it.
Jobs are made as the schedule's owner, who must be active and hold ``add_containerjob``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from container_manager.conf import setting
from container_manager.models import ContainerJob
from container_manager.models.schedules import ALLOW, REPLACE, SKIP, JobSchedule
from container_manager.rules import cron
from container_manager.rules import status as st

logger = logging.getLogger(__name__)

#: The permission a schedule's owner needs for it to fire: its jobs are the owner's submits.
ADD_JOBS = "container_manager.add_containerjob"


def fire_due(now: datetime | None = None) -> int:
    """Make the jobs of every enabled schedule that is due at ``now``; return how many.

    One indexed query finds the due schedules, so schedules that are not due cost nothing.
    """
    now = now or timezone.now()
    due = JobSchedule.objects.filter(enabled=True, next_run_at__lte=now).order_by("next_run_at")
    made = 0
    for schedule in due.select_related("last_job", "owner")[: setting("SWEEP_BATCH_SIZE")]:
        made += len(fire(schedule, now))
    return made


def fire(schedule: JobSchedule, now: datetime) -> list[ContainerJob]:
    """Claim the due times of ``schedule`` (as loaded) and make their jobs; [] if already claimed.

    Another sweep that claimed them first moved ``next_run_at``, so this claim changes no
    row and makes nothing. Times missed by more than ``SCHEDULE_MISFIRE_GRACE_SECONDS``
    are made only up to ``catchup`` (the newest ones). While the owner may not submit jobs
    (``refusal``), the claimed times make nothing and ``last_outcome`` says why; the schedule
    stays enabled and fires again at its next time once the owner may.
    """
    if schedule.next_run_at is None or schedule.next_run_at > now:
        return []
    times = runs_due(schedule, now)
    upcoming = [t.astimezone(UTC) for t in schedule.upcoming(now, 1)]
    with transaction.atomic():
        claimed = JobSchedule.objects.filter(
            pk=schedule.pk, enabled=True, next_run_at=schedule.next_run_at
        ).update(next_run_at=upcoming[0] if upcoming else None, updated_at=now)
        if not claimed:
            return []
        refused = refusal(schedule)
        if refused:
            _record(
                schedule, None, f"no run made for {schedule.next_run_at.isoformat()}: {refused}"
            )
            return []
        if not times:
            _record(schedule, None, "no run made: every due time was missed and catchup is 0")
            return []
        return _make_runs(schedule, times)


def run_now(schedule: JobSchedule, limited: bool = False) -> ContainerJob | None:
    """Make one job of ``schedule`` now, as overlap and its owner allow; None if none was made.

    With ``limited`` (a run asked for by a user's API token) the job is held to the quotas of
    ``models.limits`` as an API submit is: ``QuotaExceeded`` when it would go over one.
    """
    refused = refusal(schedule)
    if refused:
        _record(schedule, None, f"no run made now: {refused}")
        return None
    with transaction.atomic():
        made = _make_runs(schedule, [timezone.now()], manual=True, limited=limited)
    return made[0] if made else None


def refusal(schedule: JobSchedule) -> str | None:
    """Why the owner of ``schedule`` may not have jobs made now, or None (no owner: trusted).

    One permission check (the authentication backends' queries) per call.
    """
    owner = schedule.owner
    if owner is None:
        return None
    if not owner.is_active:
        return f"its owner {owner.get_username()!r} is inactive"
    if not owner.has_perm(ADD_JOBS):
        return f"its owner {owner.get_username()!r} may not add container jobs ({ADD_JOBS})"
    return None


def runs_due(schedule: JobSchedule, now: datetime) -> list[datetime]:
    """The times to run, oldest first: those on time, then up to ``catchup`` missed ones."""
    grace = now - timedelta(seconds=setting("SCHEDULE_MISFIRE_GRACE_SECONDS"))
    on_time: list[datetime] = []
    missed: list[datetime] = []
    for moment in cron.due_between(schedule.cron, schedule.timezone, schedule.next_run_at, now):
        if moment >= grace:
            on_time.append(moment)
        elif len(missed) < schedule.catchup:
            missed.append(moment)
        else:
            break
    return sorted(missed + on_time)


def _make_runs(
    schedule: JobSchedule, times: list[datetime], manual: bool = False, limited: bool = False
) -> list[ContainerJob]:
    """Make a job per time, as ``overlap`` says; record the last outcome on the schedule."""
    if schedule.overlap != ALLOW:
        times = times[-1:]  # runs due together would overlap each other
    previous = schedule.last_job
    live = previous is not None and _is_live(previous)
    if schedule.overlap == SKIP and live:
        note = f"skipped the run for {times[-1].isoformat()}: job {previous.pk} is still live"
        _record(schedule, None, note, times[-1])
        return []
    if schedule.overlap == REPLACE and live:
        previous.cancel()
    made = []
    for moment in times:
        try:
            made.append(_submit(schedule, moment, manual, limited))
        except ValidationError as exc:
            logger.warning("schedule %s could not make its job for %s: %s", schedule, moment, exc)
            _record(schedule, None, f"could not make the job for {moment.isoformat()}: {exc}")
    if made:
        _record(schedule, made[-1], f"made job {made[-1].pk}", times[-1])
    return made


def _submit(schedule: JobSchedule, moment: datetime, manual: bool, limited: bool) -> ContainerJob:
    mark: dict[str, Any] = {
        "id": schedule.pk,
        "name": schedule.name,
        "scheduled_for": moment.astimezone(UTC).isoformat(),
    }
    if manual:
        mark["manual"] = True
    return ContainerJob.objects.create_job(
        image=schedule.docker_image,
        command=schedule.command,
        name=schedule.job_name or schedule.name,
        environment_template=schedule.environment_template,
        docker_host=schedule.docker_host,
        override_environment=schedule.override_environment,
        memory_limit=schedule.memory_limit,
        cpu_limit=schedule.cpu_limit,
        timeout_seconds=schedule.timeout_seconds,
        created_by=schedule.owner,
        executor_metadata={"schedule": mark},
        limited=limited,
    )


def _is_live(job: ContainerJob) -> bool:
    return ContainerJob.objects.filter(pk=job.pk, status__in=st.LIVE).exists()


def _record(
    schedule: JobSchedule, job: ContainerJob | None, outcome: str, moment: datetime | None = None
) -> None:
    fields: dict[str, Any] = {"last_outcome": outcome}
    if job is not None:
        fields["last_job"] = job
    if moment is not None:
        fields["last_run_at"] = moment
    JobSchedule.objects.filter(pk=schedule.pk).update(**fields)
    for name, value in fields.items():
        setattr(schedule, name, value)
